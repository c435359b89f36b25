"""The reference's test.py path for translating a folder, for timing against cyclegan-translate.

What `python test.py --model test --dataset_mode single --preprocess none --no_dropout` does per
image (junyanz/pytorch-CycleGAN-and-pix2pix, shared/REFERENCE.md): read it with PIL and convert
to RGB, ToTensor and Normalize((0.5,)*3, (0.5,)*3), move it to the device, run the generator in
training mode (test.py's default) under torch.no_grad(), turn real and fake back into 8-bit
images (util.tensor2im: (x + 1) / 2 * 255, truncated) and save both as PNG
(images/<stem>_real.png, images/<stem>_fake.png), one image at a time with no loader threads
(test.py sets num_threads = 0 and batch_size = 1). The HTML page is left out.

The generator is read from --checkpoint (a state_dict, as the reference saves it); with
--init-checkpoint the script first writes one, initialised as the reference does (normal, 0.02),
so that cyclegan-translate can read the same weights (it reads reference .pth files directly).
Prints one JSON line: {"images", "loop_s", "load_s"}: the seconds of the loop over the images and
of everything before it (imports excluded).
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_reference as ref  # noqa: E402

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


def generator(ngf, blocks):
    return ref.define_G({"netG": f"resnet_{blocks}blocks", "input_nc": 3, "output_nc": 3, "ngf": ngf,
                         "norm": "instance", "use_dropout": False})


def tensor2im(x):
    """util.tensor2im: [1, C, H, W] in [-1, 1] -> H x W x C uint8."""
    import numpy as np

    a = x[0].cpu().float().numpy()
    return ((np.transpose(a, (1, 2, 0)) + 1) / 2.0 * 255.0).astype(np.uint8)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--init-checkpoint", action="store_true",
                   help="write a freshly initialised generator to --checkpoint and exit")
    p.add_argument("--input", help="a folder of images (searched recursively)")
    p.add_argument("--output", help="receives images/<stem>_real.png and images/<stem>_fake.png")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--blocks", type=int, default=9)
    args = p.parse_args()
    if args.init_checkpoint:
        torch.manual_seed(0)
        net = generator(args.ngf, args.blocks)
        ref.init_weights(net)
        torch.save(net.state_dict(), args.checkpoint)
        return
    try:
        import numpy as np
        from PIL import Image
    except ImportError:
        sys.exit("translate_reference.py: the reference reads and writes images with Pillow and NumPy: "
                 "pip install pillow numpy")
    start = time.perf_counter()
    dev = torch.device(args.device)
    net = generator(args.ngf, args.blocks)
    net.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    net.to(dev).train()
    paths = sorted(os.path.join(root, f) for root, _, files in os.walk(args.input) for f in files
                   if f.lower().endswith(EXTENSIONS))
    out = os.path.join(args.output, "images")
    os.makedirs(out, exist_ok=True)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    loop = time.perf_counter()
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
        real = ((torch.from_numpy(img).permute(2, 0, 1) - 0.5) / 0.5).unsqueeze(0).to(dev)
        with torch.no_grad():
            fake = net(real)
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(tensor2im(real)).save(os.path.join(out, f"{stem}_real.png"))
        Image.fromarray(tensor2im(fake)).save(os.path.join(out, f"{stem}_fake.png"))
    end = time.perf_counter()
    print(json.dumps({"images": len(paths), "loop_s": end - loop, "load_s": loop - start}))


if __name__ == "__main__":
    main()
