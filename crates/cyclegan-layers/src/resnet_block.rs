//! The residual block of the ResNet generator.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::VarBuilder;

use crate::{Activation, Conv2d, Deferred, Dropout, Norm, NormKind, Pad2d, PaddingType, SharedRng};

/// `ResnetBlock(dim, padding_type, norm_layer, use_dropout, use_bias)`:
/// `x + [pad, conv3x3, norm, ReLU, (dropout 0.5), pad, conv3x3, norm](x)`.
///
/// Parameters live under `conv_block.{i}` with the reference's `nn.Sequential` indices: with
/// reflect or replicate padding the convolutions are at 1 and 5 (6 with dropout), with zero
/// padding (folded into the convolutions) at 0 and 3 (4 with dropout).
#[derive(Debug, Clone)]
pub struct ResnetBlock {
    pad: Option<Pad2d>,
    conv1: Conv2d,
    norm1: Norm,
    dropout: Option<Dropout>,
    conv2: Conv2d,
    norm2: Norm,
}

impl ResnetBlock {
    /// `vb` is the block's own path (for example `model.10`); `rng` drives its dropout.
    pub fn new(
        vb: VarBuilder,
        dim: usize,
        padding: PaddingType,
        norm: NormKind,
        use_dropout: bool,
        rng: &SharedRng,
    ) -> Result<Self> {
        let vb = vb.pp("conv_block");
        let use_bias = norm.conv_bias();
        let (pad, conv_pad) = match padding {
            PaddingType::Zero => (None, 1),
            mode => (Some(Pad2d::new(1, mode)), 0),
        };
        // Sequential indices: [pad] conv norm relu [dropout] [pad] conv norm.
        let pad_slots = usize::from(pad.is_some());
        let conv1_at = pad_slots;
        let relu_at = conv1_at + 2;
        let conv2_at = relu_at + 1 + usize::from(use_dropout) + pad_slots;
        let conv1 = Conv2d::new(vb.pp(conv1_at), dim, dim, 3, 1, conv_pad, use_bias)?;
        let norm1 = Norm::new(norm, vb.pp(conv1_at + 1), dim)?;
        let dropout = use_dropout.then(|| Dropout::new(0.5, rng.clone()));
        let conv2 = Conv2d::new(vb.pp(conv2_at), dim, dim, 3, 1, conv_pad, use_bias)?;
        let norm2 = Norm::new(norm, vb.pp(conv2_at + 1), dim)?;
        Ok(Self {
            pad,
            conv1,
            norm1,
            dropout,
            conv2,
            norm2,
        })
    }

    /// `x` padded (deferred) when the block pads explicitly.
    fn padded(&self, x: Deferred) -> Result<Deferred> {
        match self.pad {
            Some(pad) => x.pad(pad),
            None => Ok(x),
        }
    }
}

impl ModuleT for ResnetBlock {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let h = self
            .conv1
            .forward_before(&self.padded(x.into())?, &self.norm1)?;
        let mut h = self.norm1.defer(h, Activation::Relu, train)?;
        if let Some(dropout) = &self.dropout {
            h = dropout.forward_t(&h.materialize()?, train)?.into();
        }
        let h = self.conv2.forward_before(&self.padded(h)?, &self.norm2)?;
        self.norm2.forward_residual(&h, x, train)
    }
}
