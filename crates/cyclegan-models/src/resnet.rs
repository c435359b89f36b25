//! The ResNet generator (`resnet_6blocks`, `resnet_9blocks`, any number of blocks).

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use cyclegan_layers::{
    Activation, Conv2d, ConvTranspose2d, Deferred, Norm, Pad2d, ResnetBlock, SharedRng,
};

use crate::config::GeneratorConfig;

/// Downsamplings (and upsamplings) of the reference's ResnetGenerator.
const SAMPLINGS: usize = 2;

/// The reflection padding before each 7x7 convolution.
const PAD_7X7: Pad2d = Pad2d {
    pad: 3,
    mode: cyclegan_layers::PaddingType::Reflect,
};

/// `ResnetGenerator`: reflection pad 3, 7x7 conv, two stride-2 convs, `blocks` residual blocks,
/// two transposed convs, reflection pad 3, 7x7 conv, tanh. Parameters sit at the reference's
/// `model.{i}` indices: convs at 1, 4, 7, blocks at 10.., transposed convs at 10+n and 13+n, the
/// output conv at 17+n.
#[derive(Debug, Clone)]
pub struct ResnetGenerator {
    stem: (Conv2d, Norm),
    down: Vec<(Conv2d, Norm)>,
    blocks: Vec<ResnetBlock>,
    up: Vec<(ConvTranspose2d, Norm)>,
    head: Conv2d,
}

impl ResnetGenerator {
    /// Builds it under `vb` with `blocks` residual blocks, taking the channels, `ngf`, norm,
    /// dropout and padding type from `config` (its `arch` is not read); `rng` drives the blocks'
    /// dropout, if any.
    pub(crate) fn new(
        vb: VarBuilder,
        config: &GeneratorConfig,
        blocks: usize,
        rng: &SharedRng,
    ) -> Result<Self> {
        let vb = vb.pp("model");
        let (ngf, norm, bias) = (config.ngf, config.norm, config.norm.conv_bias());
        let stem = (
            Conv2d::new(vb.pp(1), config.input_nc, ngf, 7, 1, 0, bias)?,
            Norm::new(norm, vb.pp(2), ngf)?,
        );
        // Each sampling stage is [conv, norm, ReLU]: three sequential slots.
        let mut down = Vec::with_capacity(SAMPLINGS);
        for i in 0..SAMPLINGS {
            let (c_in, c_out) = (ngf << i, ngf << (i + 1));
            let at = 4 + 3 * i;
            down.push((
                Conv2d::new(vb.pp(at), c_in, c_out, 3, 2, 1, bias)?,
                Norm::new(norm, vb.pp(at + 1), c_out)?,
            ));
        }
        let dim = ngf << SAMPLINGS;
        let blocks_at = 4 + 3 * SAMPLINGS;
        let blocks = (0..blocks)
            .map(|i| {
                ResnetBlock::new(
                    vb.pp(blocks_at + i),
                    dim,
                    config.padding_type,
                    norm,
                    config.use_dropout,
                    rng,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let mut up = Vec::with_capacity(SAMPLINGS);
        for i in 0..SAMPLINGS {
            let (c_in, c_out) = (dim >> i, dim >> (i + 1));
            let at = blocks_at + blocks.len() + 3 * i;
            up.push((
                ConvTranspose2d::new(vb.pp(at), c_in, c_out, 3, 2, 1, 1, bias)?,
                Norm::new(norm, vb.pp(at + 1), c_out)?,
            ));
        }
        // [pad, conv, tanh] after the last [convT, norm, ReLU].
        let head_at = blocks_at + blocks.len() + 3 * SAMPLINGS + 1;
        let head = Conv2d::new(vb.pp(head_at), ngf, config.output_nc, 7, 1, 0, true)?;
        Ok(Self {
            stem,
            down,
            blocks,
            up,
            head,
        })
    }
}

impl ModuleT for ResnetGenerator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        // Each norm (and padding) is left to the convolution after it, which applies it inside
        // its op (`Deferred`); the residual blocks take a computed tensor, which they add.
        let relu = Activation::Relu;
        let (conv, norm) = &self.stem;
        let h = conv.forward_before(&Deferred::from(x).pad(PAD_7X7)?, norm)?;
        let mut h = norm.defer(h, relu, train)?;
        for (conv, norm) in &self.down {
            h = norm.defer(conv.forward_before(&h, norm)?, relu, train)?;
        }
        let mut h = Deferred::from(
            self.blocks
                .iter()
                .try_fold(h.materialize()?, |h, block| block.forward_t(&h, train))?,
        );
        for (conv, norm) in &self.up {
            h = norm.defer(conv.forward_before(&h, norm)?, relu, train)?;
        }
        Activation::Tanh.apply(&self.head.forward_deferred(&h.pad(PAD_7X7)?)?)
    }
}
