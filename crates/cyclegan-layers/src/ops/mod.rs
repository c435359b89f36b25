//! Tensor operations of the CycleGAN networks.
//!
//! Each function here is differentiable and dispatches on the tensor's device and dtype:
//! contiguous `f32`/`f64` tensors on the CPU take the fast kernels of this crate (well-shaped
//! GEMMs, fused passes); everything else takes [`reference`], built from stock candle operations.
//! Both compute the same numbers as PyTorch within rounding, which the parity tests pin down.

pub mod reference;

use candle_core::{DType, Result, Tensor};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::padding::PaddingType;

/// Epsilon of the reference's normalisation layers (PyTorch's default).
pub const NORM_EPS: f64 = 1e-5;

/// Negative slope of every LeakyReLU in the reference networks.
pub const LEAKY_RELU_SLOPE: f64 = 0.2;

/// A pointwise activation, applied on its own or fused after a normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Activation {
    Identity,
    Relu,
    LeakyRelu(f64),
    Tanh,
}

impl Activation {
    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Identity => Ok(x.clone()),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(slope) => reference::leaky_relu(x, slope),
            Activation::Tanh => x.tanh(),
        }
    }
}

static FAST_CPU_KERNELS: AtomicBool = AtomicBool::new(true);

/// Turns the fast CPU kernels on or off for the whole process (on by default). With them off,
/// every operation takes the stock candle path of [`reference`]; benchmarks use this to compare.
pub fn set_fast_cpu_kernels(enabled: bool) {
    FAST_CPU_KERNELS.store(enabled, Ordering::Relaxed);
}

/// Whether the fast CPU kernels are on (see [`set_fast_cpu_kernels`]).
pub fn fast_cpu_kernels() -> bool {
    FAST_CPU_KERNELS.load(Ordering::Relaxed)
}

/// Whether `x` can take a fast CPU kernel.
#[allow(dead_code)]
fn fast_path(x: &Tensor) -> bool {
    fast_cpu_kernels() && x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// 2-d convolution of `x` `[N, C_in, H, W]` with `weight` `[C_out, C_in, kH, kW]`, zero padding
/// `padding` on every side, then `bias` `[C_out]` added per channel.
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    reference::conv2d(x, weight, bias, stride, padding)
}

/// 2-d transposed convolution of `x` `[N, C_in, H, W]` with `weight` `[C_in, C_out, kH, kW]`
/// (PyTorch's layout), then `bias` `[C_out]`. The output side is
/// `(H - 1) * stride - 2 * padding + k + output_padding`.
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    reference::conv_transpose2d(x, weight, bias, stride, padding, output_padding)
}

/// Pads the last two dimensions of `x` by `pad` on every side.
pub fn pad2d(x: &Tensor, pad: usize, mode: PaddingType) -> Result<Tensor> {
    reference::pad2d(x, pad, mode)
}

/// Affine-free instance normalisation over each `(n, c)` plane of `x` `[N, C, H, W]`, with the
/// biased variance, like `torch.nn.InstanceNorm2d(affine=False)`, followed by `activation`.
pub fn instance_norm(x: &Tensor, eps: f64, activation: Activation) -> Result<Tensor> {
    activation.apply(&reference::instance_norm(x, eps)?)
}
