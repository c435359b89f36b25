//! The PatchGAN discriminator (`basic` = 3 layers, `n_layers`).

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use cyclegan_layers::ops::LEAKY_RELU_SLOPE;
use cyclegan_layers::{Activation, Conv2d, Deferred, Norm};

use crate::config::DiscriminatorConfig;

/// Channel multiplier cap of the reference (`min(2 ** n, 8)`).
const MAX_MULT: usize = 8;

/// One `[conv, (norm), (LeakyReLU)]` stage.
#[derive(Debug, Clone)]
struct Stage {
    conv: Conv2d,
    norm: Option<Norm>,
    activation: Activation,
}

/// `NLayerDiscriminator(input_nc, ndf, n_layers)`: 4x4 convolutions, `n_layers` of them with
/// stride 2, giving a map of patch scores (30x30 for a 256x256 input with `n_layers` = 3).
/// Parameters sit at `model.{i}` (basic: 0, 2, 5, 8, 11).
#[derive(Debug, Clone)]
pub struct NLayerDiscriminator {
    stages: Vec<Stage>,
}

impl NLayerDiscriminator {
    /// Builds it under `vb` with `n_layers` stride-2 convolutions, taking the channels, `ndf`
    /// and norm from `config` (its `arch` is not read).
    pub(crate) fn new(
        vb: VarBuilder,
        config: &DiscriminatorConfig,
        n_layers: usize,
    ) -> Result<Self> {
        let vb = vb.pp("model");
        let (ndf, bias) = (config.ndf, config.norm.conv_bias());
        let lrelu = Activation::LeakyRelu(LEAKY_RELU_SLOPE);
        let mut stages = vec![Stage {
            conv: Conv2d::new(vb.pp(0), config.input_nc, ndf, 4, 2, 1, true)?,
            norm: None,
            activation: lrelu,
        }];
        let mut at = 2;
        let mut mult = 1;
        for n in 1..=n_layers {
            let (prev, stride) = (mult, if n < n_layers { 2 } else { 1 });
            mult = (1 << n).min(MAX_MULT);
            stages.push(Stage {
                conv: Conv2d::new(vb.pp(at), ndf * prev, ndf * mult, 4, stride, 1, bias)?,
                norm: Some(Norm::new(config.norm, vb.pp(at + 1), ndf * mult)?),
                activation: lrelu,
            });
            at += 3;
        }
        stages.push(Stage {
            conv: Conv2d::new(vb.pp(at), ndf * mult, 1, 4, 1, 1, true)?,
            norm: None,
            activation: Activation::Identity,
        });
        Ok(Self { stages })
    }
}

impl ModuleT for NLayerDiscriminator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // Each norm is left to the next convolution, which applies it inside its op.
        let mut h = Deferred::from(x);
        for stage in &self.stages {
            h = match &stage.norm {
                Some(norm) => {
                    let y = stage.conv.forward_before(&h, norm)?;
                    norm.defer(y, stage.activation, train)?
                }
                None => stage
                    .activation
                    .apply(&stage.conv.forward_deferred(&h)?)?
                    .into(),
            };
        }
        h.materialize()
    }
}
