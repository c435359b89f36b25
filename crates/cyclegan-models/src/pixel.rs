//! The 1x1 PixelGAN discriminator (`pixel`).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use cyclegan_layers::ops::LEAKY_RELU_SLOPE;
use cyclegan_layers::{Activation, Conv2d, Norm};

use crate::config::DiscriminatorConfig;

/// `PixelDiscriminator(input_nc, ndf)`: `net.0` 1x1 conv, LeakyReLU, `net.2` 1x1 conv,
/// `net.3` norm, LeakyReLU, `net.5` 1x1 conv to one score per pixel.
#[derive(Debug, Clone)]
pub struct PixelDiscriminator {
    conv1: Conv2d,
    conv2: Conv2d,
    norm: Norm,
    conv3: Conv2d,
}

impl PixelDiscriminator {
    /// Builds it under `vb` with the channels, `ndf` and norm of `config` (its `arch` is not
    /// read).
    pub fn new(vb: VarBuilder, config: &DiscriminatorConfig) -> Result<Self> {
        let vb = vb.pp("net");
        let (ndf, bias) = (config.ndf, config.norm.conv_bias());
        Ok(Self {
            conv1: Conv2d::new(vb.pp(0), config.input_nc, ndf, 1, 1, 0, true)?,
            conv2: Conv2d::new(vb.pp(2), ndf, ndf * 2, 1, 1, 0, bias)?,
            norm: Norm::new(config.norm, vb.pp(3), ndf * 2)?,
            conv3: Conv2d::new(vb.pp(5), ndf * 2, 1, 1, 1, 0, bias)?,
        })
    }
}

impl ModuleT for PixelDiscriminator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let lrelu = Activation::LeakyRelu(LEAKY_RELU_SLOPE);
        let h = lrelu.apply(&self.conv1.forward(x)?)?;
        let y = self.conv2.forward_before(&h.into(), &self.norm)?;
        let h = self.norm.forward_act(&y, lrelu, train)?;
        self.conv3.forward(&h)
    }
}
