//! The U-Net generator (`unet_128`, `unet_256`).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use cyclegan_layers::ops::LEAKY_RELU_SLOPE;
use cyclegan_layers::{Activation, Conv2d, ConvTranspose2d, Dropout, Norm, NormKind, SharedRng};

use crate::config::GeneratorConfig;

/// Where a block sits in the U-Net, which decides its layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    Outermost,
    Middle,
    Innermost,
}

/// `UnetSkipConnectionBlock`. Sequential slots (the reference's `model.{i}`):
/// outermost `[down, sub, ReLU, upconv, tanh]`; middle
/// `[LeakyReLU, down, norm, sub, ReLU, upconv, norm, (dropout)]`; innermost
/// `[LeakyReLU, down, ReLU, upconv, norm]`. Every block but the outermost returns
/// `cat([x', f(x')])`, where `x'` is the input after the block's LeakyReLU: the reference's
/// LeakyReLU is in place, so its skip connection carries the activated input.
#[derive(Debug, Clone)]
struct UnetBlock {
    position: Position,
    down: Conv2d,
    down_norm: Option<Norm>,
    sub: Option<Box<UnetBlock>>,
    up: ConvTranspose2d,
    up_norm: Option<Norm>,
    dropout: Option<Dropout>,
}

impl UnetBlock {
    #[allow(clippy::too_many_arguments)]
    fn new(
        vb: VarBuilder,
        position: Position,
        outer_nc: usize,
        inner_nc: usize,
        input_nc: usize,
        sub: Option<UnetBlock>,
        norm: NormKind,
        dropout: Option<Dropout>,
    ) -> Result<Self> {
        let vb = vb.pp("model");
        let bias = norm.conv_bias();
        let (down_at, down_norm_at, up_at, up_norm_at) = match position {
            Position::Outermost => (0, None, 3, None),
            Position::Middle => (1, Some(2), 5, Some(6)),
            Position::Innermost => (1, None, 3, Some(4)),
        };
        let down = Conv2d::new(vb.pp(down_at), input_nc, inner_nc, 4, 2, 1, bias)?;
        let down_norm = down_norm_at
            .map(|at| Norm::new(norm, vb.pp(at), inner_nc))
            .transpose()?;
        let (up_in, up_bias) = match position {
            Position::Outermost => (inner_nc * 2, true),
            Position::Middle => (inner_nc * 2, bias),
            Position::Innermost => (inner_nc, bias),
        };
        let up = ConvTranspose2d::new(vb.pp(up_at), up_in, outer_nc, 4, 2, 1, 0, up_bias)?;
        let up_norm = up_norm_at
            .map(|at| Norm::new(norm, vb.pp(at), outer_nc))
            .transpose()?;
        Ok(Self {
            position,
            down,
            down_norm,
            sub: sub.map(Box::new),
            up,
            up_norm,
            dropout,
        })
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let input = match self.position {
            Position::Outermost => x.clone(),
            _ => Activation::LeakyRelu(LEAKY_RELU_SLOPE).apply(x)?,
        };
        // A norm's convolution leaves out the bias the norm cancels.
        let mut h = match &self.down_norm {
            Some(norm) => {
                norm.forward_t(&self.down.forward_before(&(&input).into(), norm)?, train)?
            }
            None => self.down.forward(&input)?,
        };
        if let Some(sub) = &self.sub {
            h = sub.forward_t(&h, train)?;
        }
        // One op each way, with PyTorch's gradient at exactly 0 (0; candle's `relu` passes it).
        let h_relu = Activation::Relu.apply(&h)?;
        h = match &self.up_norm {
            Some(norm) => {
                norm.forward_t(&self.up.forward_before(&(&h_relu).into(), norm)?, train)?
            }
            None => self.up.forward(&h_relu)?,
        };
        if let Some(dropout) = &self.dropout {
            h = dropout.forward_t(&h, train)?;
        }
        match self.position {
            Position::Outermost => Activation::Tanh.apply(&h),
            _ => Tensor::cat(&[&input, &h], 1),
        }
    }
}

/// `UnetGenerator(input_nc, output_nc, num_downs, ngf)`, built from the innermost block out;
/// parameters nest as `model.model.1.model.3.model...`.
#[derive(Debug, Clone)]
pub struct UnetGenerator {
    root: UnetBlock,
}

impl UnetGenerator {
    /// Builds it under `vb` with `downs` downsamplings (at least 5), taking the channels, `ngf`,
    /// norm and dropout from `config` (its `arch` is not read); `rng` drives the dropout, if any.
    pub(crate) fn new(
        vb: VarBuilder,
        config: &GeneratorConfig,
        downs: usize,
        rng: &SharedRng,
    ) -> Result<Self> {
        if downs < 5 {
            candle_core::bail!("a U-Net needs at least 5 downsamplings, got {downs}");
        }
        let (ngf, norm) = (config.ngf, config.norm);
        // The path of the block at `depth` (0 = outermost): the outermost's submodule is slot 1,
        // every middle block's is slot 3.
        let path = |depth: usize| {
            let mut vb = vb.pp("model");
            for d in 0..depth {
                vb = vb.pp("model").pp(if d == 0 { 1 } else { 3 });
            }
            vb
        };
        let dropout = || config.use_dropout.then(|| Dropout::new(0.5, rng.clone()));
        let innermost = downs - 1;
        let mut block = UnetBlock::new(
            path(innermost),
            Position::Innermost,
            ngf * 8,
            ngf * 8,
            ngf * 8,
            None,
            norm,
            None,
        )?;
        // downs - 5 middle blocks of ngf * 8 (with dropout), then 8 -> 4 -> 2 -> 1 times ngf.
        for depth in (4..innermost).rev() {
            block = UnetBlock::new(
                path(depth),
                Position::Middle,
                ngf * 8,
                ngf * 8,
                ngf * 8,
                Some(block),
                norm,
                dropout(),
            )?;
        }
        for (depth, mult) in [(3, 4), (2, 2), (1, 1)] {
            block = UnetBlock::new(
                path(depth),
                Position::Middle,
                ngf * mult,
                ngf * mult * 2,
                ngf * mult,
                Some(block),
                norm,
                None,
            )?;
        }
        let root = UnetBlock::new(
            path(0),
            Position::Outermost,
            config.output_nc,
            ngf,
            config.input_nc,
            Some(block),
            norm,
            None,
        )?;
        Ok(Self { root })
    }
}

impl ModuleT for UnetGenerator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.root.forward_t(x, train)
    }
}
