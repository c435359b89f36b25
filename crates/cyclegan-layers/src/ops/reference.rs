//! The operations built from stock candle operations. They run on every device and dtype,
//! and serve as the baseline the fast kernels are tested and benchmarked against.

use candle_core::{Result, Tensor, D};

use crate::padding::PaddingType;

/// See [`super::conv2d`].
pub fn conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let y = x.conv2d(weight, padding, stride, 1, 1)?;
    add_channel_bias(&y, bias)
}

/// See [`super::conv_transpose2d`].
pub fn conv_transpose2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
) -> Result<Tensor> {
    let y = x.conv_transpose2d(weight, padding, output_padding, stride, 1)?;
    add_channel_bias(&y, bias)
}

/// Adds `bias` `[C]` to every `(n, c)` plane of `y` `[N, C, H, W]`.
pub fn add_channel_bias(y: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    match bias {
        Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
        None => Ok(y.clone()),
    }
}

/// See [`super::pad2d`]. Reflection and replication gather rows and columns with
/// `index_select`, whose backward scatters the gradient back.
pub fn pad2d(x: &Tensor, pad: usize, mode: PaddingType) -> Result<Tensor> {
    if pad == 0 {
        return Ok(x.clone());
    }
    match mode {
        PaddingType::Zero => {
            x.pad_with_zeros(D::Minus2, pad, pad)?
                .pad_with_zeros(D::Minus1, pad, pad)
        }
        PaddingType::Reflect | PaddingType::Replicate => {
            let (h, w) = (x.dim(D::Minus2)?, x.dim(D::Minus1)?);
            if mode == PaddingType::Reflect && (pad >= h || pad >= w) {
                candle_core::bail!(
                    "reflection padding {pad} needs every side larger than {pad}, got {h}x{w}"
                );
            }
            let rows = Tensor::new(pad_indices(h, pad, mode), x.device())?;
            let cols = Tensor::new(pad_indices(w, pad, mode), x.device())?;
            let last = x.rank() - 1;
            x.index_select(&cols, last)?.index_select(&rows, last - 1)
        }
    }
}

/// The source index of every position along a padded axis of length `len + 2 * pad`.
pub fn pad_indices(len: usize, pad: usize, mode: PaddingType) -> Vec<u32> {
    let last = len as i64 - 1;
    (-(pad as i64)..(len + pad) as i64)
        .map(|i| {
            let source = match mode {
                PaddingType::Reflect => {
                    if i < 0 {
                        -i
                    } else if i > last {
                        2 * last - i
                    } else {
                        i
                    }
                }
                _ => i.clamp(0, last),
            };
            source as u32
        })
        .collect()
}

/// Affine-free instance normalisation (biased variance), see [`super::instance_norm`].
pub fn instance_norm(x: &Tensor, eps: f64) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let planes = x.reshape((n, c, h * w))?;
    let mean = planes.mean_keepdim(2)?;
    let centred = planes.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(2)?;
    let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed.reshape((n, c, h, w))
}

/// `activation(x)` from stock candle operations.
pub fn activation(x: &Tensor, activation: super::Activation) -> Result<Tensor> {
    use super::Activation;
    match activation {
        Activation::Identity => Ok(x.clone()),
        Activation::Relu => x.relu(),
        Activation::LeakyRelu(slope) => leaky_relu(x, slope),
        Activation::Tanh => x.tanh(),
    }
}

/// LeakyReLU with the gradient of PyTorch (slope applied where `x <= 0`).
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    let positive = x.gt(0.0)?.to_dtype(x.dtype())?;
    // x * (positive + slope * (1 - positive)): the mask is a constant, so the gradient is the mask.
    let factor = ((&positive * (1.0 - slope))? + slope)?;
    x.mul(&factor)
}

/// See [`super::adam_step`]: the unfused version, returning new moments.
pub fn adam_step(
    param: &candle_core::Var,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    grad: &Tensor,
    step: &super::AdamStep,
) -> Result<(Tensor, Tensor)> {
    let m = ((exp_avg * step.beta1)? + (grad * (1.0 - step.beta1))?)?;
    let v = ((exp_avg_sq * step.beta2)? + (grad.sqr()? * (1.0 - step.beta2))?)?;
    let denom = ((v.sqrt()? / step.bias_correction2_sqrt)? + step.eps)?;
    let update = ((&m / denom)? * step.step_size)?;
    param.set(&(param.as_tensor() - update)?)?;
    Ok((m, v))
}
