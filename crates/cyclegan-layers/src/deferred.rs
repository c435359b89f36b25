//! Tensors whose per-plane layers are not applied yet, so that the convolution reading them can
//! apply them inside its own op.

use candle_core::{Result, Tensor};

use crate::ops::Prologue;
use crate::Pad2d;

/// `prologue(source)`, not computed yet: an instance norm with its activation and a padding
/// that the next convolution ([`crate::Conv2d::forward_deferred`],
/// [`crate::ConvTranspose2d::forward_deferred`]) applies inside its own op, which recomputes
/// them in the backward pass instead of storing their outputs (see [`Prologue`]). Layers
/// that cannot take it call [`Deferred::materialize`]. [`crate::Norm::defer`] makes one.
///
/// ```
/// # fn main() -> candle_core::Result<()> {
/// use candle_core::{DType, Device, Module, Tensor};
/// use candle_nn::VarBuilder;
/// use cyclegan_layers::{Activation, Conv2d, Norm, NormKind, Pad2d};
///
/// let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
/// let conv1 = Conv2d::new(vb.pp("conv1"), 3, 8, 3, 1, 1, true)?;
/// let norm = Norm::new(NormKind::Instance, vb.pp("norm"), 8)?;
/// let conv2 = Conv2d::new(vb.pp("conv2"), 8, 8, 3, 1, 0, true)?;
/// let x = Tensor::randn(0f32, 1.0, (1, 3, 16, 16), &Device::Cpu)?;
/// // conv2(reflect_pad(relu(instance_norm(conv1(x))))), norm and padding inside conv2's op.
/// let h = norm.defer(conv1.forward(&x)?, Activation::Relu, true)?;
/// let y = conv2.forward_deferred(&h.pad(Pad2d::reflect(1))?)?;
/// assert_eq!(y.dims(), &[1, 8, 16, 16]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Deferred {
    source: Tensor,
    prologue: Prologue,
}

impl From<Tensor> for Deferred {
    fn from(source: Tensor) -> Self {
        Self::new(source, Prologue::default())
    }
}

impl From<&Tensor> for Deferred {
    fn from(source: &Tensor) -> Self {
        Self::from(source.clone())
    }
}

impl Deferred {
    /// `prologue(source)`.
    pub fn new(source: Tensor, prologue: Prologue) -> Self {
        Self { source, prologue }
    }

    /// The tensor the prologue applies to, and the prologue.
    pub fn parts(&self) -> (&Tensor, &Prologue) {
        (&self.source, &self.prologue)
    }

    /// Pads the result too: deferred, unless the prologue pads already (then the tensor is
    /// computed first).
    pub fn pad(self, pad: Pad2d) -> Result<Self> {
        let mut deferred = match self.prologue.pad {
            Some(_) => Self::from(self.materialize()?),
            None => self,
        };
        deferred.prologue.pad = Some((pad.pad, pad.mode));
        Ok(deferred)
    }

    /// Computes the tensor.
    pub fn materialize(&self) -> Result<Tensor> {
        self.prologue.apply(&self.source)
    }
}
