//! Channels-last (NHWC) activations, for cuDNN convolutions ([`super::set_cuda_channels_last`]).
//!
//! cuDNN's tensor-core convolutions work on NHWC tensors: given NCHW ones, they transpose them in
//! and out, which took a third of the convolution time of a batch-4 training iteration on an
//! H200 (`BENCHMARKS.md`, the layout report). A convolution with a channels-last input, or any
//! cuDNN convolution of enough channels with the option on, writes its output channels last, and
//! the norm, padding, activation and residual ops keep a channels-last input's layout. The
//! networks still see `[n, c, h, w]` tensors: views with channels-last strides, which any other
//! op reads as it reads a strided tensor.
//!
//! Inside, the ops take and return contiguous `[n, h, w, c]` tensors ([`nhwc`], [`nchw_view`]):
//! `x.permute((0, 2, 3, 1))` of a channels-last view is one, without a copy, and candle's
//! backward pass carries the gradients back through the permutations in their order
//! (`vendor/README.md`). On CUDA the ops run the `*_nhwc` kernels and cuDNN with NHWC
//! descriptors; on the CPU they run the NCHW kernels between transpositions, the same numbers,
//! which lets the tests check the layout logic without a GPU.

use candle_core::backend::{BackendDevice, BackendStorage};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::cpu::norm::{InstanceNorm, InstanceNormBackward};
use super::cpu::pad::{Pad2d, Pad2dBackward};
use super::fused::Stages;

/// Whether `x` `[n, c, h, w]` lies in memory channels last: a permuted view of a contiguous
/// `[n, h, w, c]` tensor, as the ops of a channels-last path return them. (A tensor with one
/// channel, or one position, lies both ways.)
pub fn is_channels_last(x: &Tensor) -> bool {
    x.rank() == 4
        && x.layout()
            .permute(&[0, 2, 3, 1])
            .is_ok_and(|l| l.is_contiguous())
}

/// `x` `[n, c, h, w]` laid out channels last: itself when it is, else a copy (differentiable).
pub fn to_channels_last(x: &Tensor) -> Result<Tensor> {
    if x.rank() != 4 {
        candle_core::bail!(
            "channels last takes [n, c, h, w] tensors, got {:?}",
            x.dims()
        )
    }
    if is_channels_last(x) {
        return Ok(x.clone());
    }
    nchw_view(&nhwc(x)?)
}

/// The contiguous `[n, h, w, c]` tensor of `x` `[n, c, h, w]`: a view when `x` lies channels last,
/// else a transposed copy.
pub(crate) fn nhwc(x: &Tensor) -> Result<Tensor> {
    x.permute((0, 2, 3, 1))?.contiguous()
}

/// The `[n, c, h, w]` view of `y` `[n, h, w, c]`.
pub(crate) fn nchw_view(y: &Tensor) -> Result<Tensor> {
    y.permute((0, 3, 1, 2))
}

/// `x` (channels last, rank 4) through the norm and padding stages given, one op in its layout.
pub(crate) fn apply_stages(
    x: &Tensor,
    norm: Option<InstanceNorm>,
    pad: Option<Pad2d>,
) -> Result<Tensor> {
    let stages = Stages {
        norm,
        pad,
        channels_last: true,
    };
    nchw_view(&nhwc(x)?.apply_op1(stages)?)
}

/// `conv(stages(x))` by a cuDNN convolution `op` (of `weight`, plus `bias`) with its tensors
/// channels last: the input made so when it is not, the weight laid out `[k, r, s, c]` (a copy
/// per call, as small as the weight; its gradient flows back through it), the output a
/// channels-last view.
#[cfg(feature = "cudnn")]
pub(crate) fn convolve(
    stages: Stages,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    op: super::cuda::conv::CudnnConv,
) -> Result<Tensor> {
    let stages = Stages {
        channels_last: true,
        ..stages
    };
    let y = stages.apply(&nhwc(x)?, &nhwc(weight)?, bias, op.channels_last())?;
    nchw_view(&y)
}

/// The dimensions `[n, c, h, w]` of NHWC `dims`.
pub(crate) fn nchw_dims(dims: &[usize]) -> Result<[usize; 4]> {
    match *dims {
        [n, h, w, c] => Ok([n, c, h, w]),
        _ => candle_core::bail!("channels-last ops take [n, h, w, c] tensors, got {dims:?}"),
    }
}

/// A contiguous CPU tensor `[n, h, w, c]` transposed to a contiguous `[n, c, h, w]` one.
pub(crate) fn cpu_to_nchw(x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Layout)> {
    nchw_dims(xl.dims())?;
    permuted_copy(x, xl, &[0, 3, 1, 2])
}

/// A contiguous CPU tensor `[n, c, h, w]` (`shape`) transposed to a contiguous `[n, h, w, c]`
/// one.
pub(crate) fn cpu_to_nhwc(y: &CpuStorage, shape: &Shape) -> Result<(CpuStorage, Shape)> {
    let (storage, layout) = permuted_copy(y, &Layout::contiguous(shape), &[0, 2, 3, 1])?;
    Ok((storage, layout.shape().clone()))
}

/// `x` (of `layout`) with its dimensions reordered by `order`, copied contiguous.
fn permuted_copy(x: &CpuStorage, layout: &Layout, order: &[usize]) -> Result<(CpuStorage, Layout)> {
    let view = layout.permute(order)?;
    let mut out = x.device().zeros_impl(view.shape(), x.dtype())?;
    x.copy_strided_src(&mut out, 0, &view)?;
    Ok((out, Layout::contiguous(view.shape())))
}

/// The input gradient of channels-last [`Stages`] (a norm, a padding or both) from `(x, grad)`,
/// both contiguous NHWC.
pub(crate) struct StagesBackward(pub Stages);

impl CustomOp2 for StagesBackward {
    fn name(&self) -> &'static str {
        "channels-last-norm-pad-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, xl) = cpu_to_nchw(x, xl)?;
        let (g, gl) = cpu_to_nchw(g, gl)?;
        let (dx, shape) = match (self.0.norm, self.0.pad) {
            (Some(norm), pad) => InstanceNormBackward { norm, pad }.cpu_fwd(&x, &xl, &g, &gl)?,
            (None, Some(pad)) => {
                let [.., h, w] = *xl.dims() else {
                    unreachable!("checked 4-d")
                };
                candle_core::CustomOp1::cpu_fwd(&Pad2dBackward { pad, h, w }, &g, &gl)?
            }
            (None, None) => (g, gl.shape().clone()),
        };
        cpu_to_nhwc(&dx, &shape)
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda;
        let padding = self.0.pad.map(|p| (p.pad, p.mode));
        let dx = match (self.0.norm, padding) {
            (Some(norm), padding) => {
                let norm = (norm.eps, norm.activation);
                cuda::instance_norm_backward((x, xl), (g, gl), norm, padding, true)?
            }
            (None, Some((pad, mode))) => {
                let [_, _, h, w] = nchw_dims(xl.dims())?;
                cuda::nhwc::pad2d_backward(g, gl, (h, w), pad, mode)?
            }
            (None, None) => g.try_clone(gl)?,
        };
        Ok((dx, xl.shape().clone()))
    }
}
