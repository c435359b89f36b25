"""The reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix) restated in PyTorch.

Written from the facts in shared/REFERENCE.md so that the fixture generators and the benchmarks
of this project build exactly the reference's modules (same classes, same nn.Sequential indices,
same state_dict keys) without importing the reference itself. Used by:
  crates/*/tests/fixtures/make_fixtures.py  (parity fixtures)
  benches/*.py                               (side-by-side speed comparisons)
"""

import functools

import torch
import torch.nn as nn


class Identity(nn.Module):
    def forward(self, x):
        return x


def norm_layer(norm):
    """The reference's get_norm_layer."""
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "instance_affine":  # this project's extra option
        return functools.partial(nn.InstanceNorm2d, affine=True, track_running_stats=False)
    if norm == "none":
        return lambda channels: Identity()
    raise ValueError(norm)


def use_bias(norm):
    return norm in ("instance", "instance_affine")


class ResnetBlock(nn.Module):
    def __init__(self, dim, padding_type, norm, use_dropout):
        super().__init__()
        layers = []
        for second in (False, True):
            p = 0
            if padding_type == "reflect":
                layers.append(nn.ReflectionPad2d(1))
            elif padding_type == "replicate":
                layers.append(nn.ReplicationPad2d(1))
            else:
                p = 1
            layers += [nn.Conv2d(dim, dim, 3, padding=p, bias=use_bias(norm)), norm_layer(norm)(dim)]
            if not second:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf, norm, use_dropout, n_blocks, padding_type="reflect"):
        super().__init__()
        nl, bias = norm_layer(norm), use_bias(norm)
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=bias), nl(ngf), nn.ReLU(True)]
        for i in range(2):
            m = 2 ** i
            model += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=bias), nl(ngf * m * 2), nn.ReLU(True)]
        for _ in range(n_blocks):
            model.append(ResnetBlock(ngf * 4, padding_type, norm, use_dropout))
        for i in range(2):
            m = 2 ** (2 - i)
            model += [
                nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                nl(ngf * m // 2),
                nn.ReLU(True),
            ]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x):
        return self.model(x)


class UnetSkipConnectionBlock(nn.Module):
    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False, innermost=False,
                 norm="instance", use_dropout=False):
        super().__init__()
        self.outermost = outermost
        nl, bias = norm_layer(norm), use_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)  # in place, as in the reference
        uprelu = nn.ReLU(True)
        if outermost:
            model = [downconv, submodule, uprelu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
        elif innermost:
            model = [downrelu, downconv, uprelu, nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=bias), nl(outer_nc)]
        else:
            model = [downrelu, downconv, nl(inner_nc), submodule, uprelu,
                     nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=bias), nl(outer_nc)]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x):
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, num_downs, ngf, norm, use_dropout):
        super().__init__()
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm=norm)

    def forward(self, x):
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, n_layers, norm):
        super().__init__()
        nl, bias = norm_layer(norm), use_bias(norm)
        seq = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias), nl(ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias), nl(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


class PixelDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf, norm):
        super().__init__()
        nl, bias = norm_layer(norm), use_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1, 1, 0), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, 1, 0, bias=bias), nl(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, 1, 0, bias=bias),
        )

    def forward(self, x):
        return self.net(x)


def define_G(cfg):
    """cfg: the Rust GeneratorConfig as a dict (netG, input_nc, output_nc, ngf, norm, use_dropout, padding_type)."""
    net_g = cfg["netG"]
    if net_g.startswith("resnet_"):
        blocks = int(net_g[len("resnet_"):-len("blocks")])
        return ResnetGenerator(cfg["input_nc"], cfg["output_nc"], cfg["ngf"], cfg["norm"], cfg["use_dropout"], blocks,
                               cfg.get("padding_type", "reflect"))
    size = int(net_g[len("unet_"):])
    return UnetGenerator(cfg["input_nc"], cfg["output_nc"], size.bit_length() - 1, cfg["ngf"], cfg["norm"], cfg["use_dropout"])


def define_D(cfg):
    """cfg: the Rust DiscriminatorConfig as a dict (netD: basic | n_layers_N | pixel, input_nc, ndf, norm)."""
    net_d = cfg["netD"]
    if net_d == "pixel":
        return PixelDiscriminator(cfg["input_nc"], cfg["ndf"], cfg["norm"])
    n = 3 if net_d == "basic" else int(net_d[len("n_layers_"):])
    return NLayerDiscriminator(cfg["input_nc"], cfg["ndf"], n, cfg["norm"])


def init_weights(net, init_type="normal", gain=0.02):
    """The reference's init_weights."""
    def init_func(m):
        name = m.__class__.__name__
        if hasattr(m, "weight") and ("Conv" in name or "Linear" in name):
            if init_type == "normal":
                nn.init.normal_(m.weight.data, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight.data, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight.data, a=0, mode="fan_in")
            elif init_type == "orthogonal":
                nn.init.orthogonal_(m.weight.data, gain=gain)
            if getattr(m, "bias", None) is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif "BatchNorm2d" in name:
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.constant_(m.bias.data, 0.0)
    net.apply(init_func)


class GANLoss(nn.Module):
    def __init__(self, gan_mode):
        super().__init__()
        self.gan_mode = gan_mode
        if gan_mode == "lsgan":
            self.loss = nn.MSELoss()
        elif gan_mode == "vanilla":
            self.loss = nn.BCEWithLogitsLoss()

    def forward(self, prediction, target_is_real):
        if self.gan_mode in ("lsgan", "vanilla"):
            target = torch.tensor(1.0 if target_is_real else 0.0, dtype=prediction.dtype,
                                  device=prediction.device).expand_as(prediction)
            return self.loss(prediction, target)
        return -prediction.mean() if target_is_real else prediction.mean()


def set_requires_grad(nets, flag):
    for net in nets:
        for p in net.parameters():
            p.requires_grad = flag


def benchmark_nets(ngf, blocks, device, discriminators=True):
    """The networks the benchmarks train: resnet_<blocks>blocks generators G_A and G_B, basic
    70x70 PatchGAN discriminators D_A and D_B (ndf = ngf), instance norm, no dropout, initialised
    as the reference does and in training mode on `device`; the first generator alone without
    `discriminators`."""
    g = {"netG": f"resnet_{blocks}blocks", "input_nc": 3, "output_nc": 3, "ngf": ngf, "norm": "instance",
         "use_dropout": False}
    d = {"netD": "basic", "input_nc": 3, "ndf": ngf, "norm": "instance"}
    nets = [define_G(g), define_G(g), define_D(d), define_D(d)] if discriminators else [define_G(g)]
    for n in nets:
        init_weights(n)
        n.to(device).train()
    return nets


class CycleGAN:
    """One training iteration of cycle_gan_model.py, pool given as a callable (identity when disabled)."""

    def __init__(self, g_a, g_b, d_a, d_b, lr=0.0002, beta1=0.5, gan_mode="lsgan",
                 lambda_a=10.0, lambda_b=10.0, lambda_identity=0.5, pool_a=None, pool_b=None):
        self.g_a, self.g_b, self.d_a, self.d_b = g_a, g_b, d_a, d_b
        self.gan = GANLoss(gan_mode)
        self.l1 = nn.L1Loss()
        self.lambda_a, self.lambda_b, self.lambda_idt = lambda_a, lambda_b, lambda_identity
        self.pool_a = pool_a or (lambda x: x)
        self.pool_b = pool_b or (lambda x: x)
        self.opt_g = torch.optim.Adam(list(g_a.parameters()) + list(g_b.parameters()), lr=lr, betas=(beta1, 0.999))
        self.opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=lr, betas=(beta1, 0.999))

    def step(self, real_a, real_b):
        fake_b = self.g_a(real_a)
        rec_a = self.g_b(fake_b)
        fake_a = self.g_b(real_b)
        rec_b = self.g_a(fake_a)
        # G step
        set_requires_grad([self.d_a, self.d_b], False)
        self.opt_g.zero_grad()
        losses = {}
        if self.lambda_idt > 0:
            idt_a = self.g_a(real_b)
            losses["idt_A"] = self.l1(idt_a, real_b) * self.lambda_b * self.lambda_idt
            idt_b = self.g_b(real_a)
            losses["idt_B"] = self.l1(idt_b, real_a) * self.lambda_a * self.lambda_idt
        else:
            losses["idt_A"] = losses["idt_B"] = torch.zeros((), dtype=real_a.dtype, device=real_a.device)
        losses["G_A"] = self.gan(self.d_a(fake_b), True)
        losses["G_B"] = self.gan(self.d_b(fake_a), True)
        losses["cycle_A"] = self.l1(rec_a, real_a) * self.lambda_a
        losses["cycle_B"] = self.l1(rec_b, real_b) * self.lambda_b
        loss_g = losses["G_A"] + losses["G_B"] + losses["cycle_A"] + losses["cycle_B"] + losses["idt_A"] + losses["idt_B"]
        loss_g.backward()
        self.opt_g.step()
        # D step
        set_requires_grad([self.d_a, self.d_b], True)
        self.opt_d.zero_grad()

        def backward_d(net_d, real, fake):
            loss = (self.gan(net_d(real), True) + self.gan(net_d(fake.detach()), False)) * 0.5
            loss.backward()
            return loss

        losses["D_A"] = backward_d(self.d_a, real_b, self.pool_b(fake_b))
        losses["D_B"] = backward_d(self.d_b, real_a, self.pool_a(fake_a))
        self.opt_d.step()
        return {k: float(v.detach()) for k, v in losses.items()}


class ImagePool:
    """The reference's ImagePool."""

    def __init__(self, pool_size):
        self.pool_size = pool_size
        self.images = []

    def query(self, images):
        import random
        if self.pool_size == 0:
            return images
        out = []
        for image in images:
            image = torch.unsqueeze(image.data, 0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.pool_size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)
