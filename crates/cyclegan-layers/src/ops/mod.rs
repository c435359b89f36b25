//! Tensor operations of the CycleGAN networks.
//!
//! Each function here is differentiable and dispatches on the tensor's device and dtype:
//! `f32`/`f64` tensors take this crate's fast kernels while [`fast_kernels`] is on and the
//! shapes are supported, as candle custom ops. On the CPU: convolutions as well-shaped GEMMs
//! (3x3 stride-1 ones with enough channels by Winograd's F(4x4, 3x3) on planes of 32x32 and
//! up, F(2x2, 3x3) below), fused single-pass norms,
//! padding and activations (strided inputs are made contiguous first; convolution strides 1 and
//! 2). On CUDA (feature `cuda`): the same fused norm, padding and activation ops as CUDA kernels
//! and, with the `cudnn` feature, every convolution pass through cuDNN's cached execution plans.
//! Everything else takes [`reference`](mod@reference), built from stock candle operations. Both
//! compute the same numbers as PyTorch within rounding, which the parity tests
//! (`tests/fast_kernels.rs`, and the model parity tests with `CYCLEGAN_TEST_DEVICE=cuda`) pin
//! down.
//!
//! Layout: tensors are NCHW. On CUDA, [`set_cuda_channels_last`] makes cuDNN convolutions write
//! channels-last (NHWC) views of the same shapes, which the norm, padding, activation and residual
//! ops keep ([`is_channels_last`], [`to_channels_last`]); an experimental option.
//!
//! Memory: a convolution can take the instance norm and padding before it as its [`Prologue`]
//! ([`conv2d_after`]), and the residual add can take the norm before it
//! ([`instance_norm_add`]): one op each, whose intermediate outputs are recomputed in the
//! backward pass rather than held by candle's graph until it runs. The networks use them through
//! [`crate::Deferred`]; a training iteration of the reference architecture then needs about
//! two thirds of the memory (`BENCHMARKS.md`), for one more norm and padding pass per layer.
//! [`set_recompute_prologues`] trades back: the prologues' outputs are stored, not recomputed.
//!
//! Performance note: candle 0.11.1 accumulates every gradient into a freshly allocated tensor
//! of zeros (this workspace patches that out, `vendor/README.md`), and with glibc's default
//! malloc settings large buffers are returned to the system and faulted in again on every use;
//! on the benchmark machine that cost as much as the norm and padding kernels themselves. Programs call [`configure_allocator`] (and [`configure_threads`]) first
//! thing in `main`; see `BENCHMARKS.md`.

mod channels_last;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod fused;
pub mod reference;

pub use channels_last::{is_channels_last, to_channels_last};

use candle_core::{DType, Device, Result, Tensor};
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
    /// No activation: the input as it is.
    Identity,
    /// `nn.ReLU`.
    Relu,
    /// `nn.LeakyReLU(slope)`, with the negative slope given (the reference uses
    /// [`LEAKY_RELU_SLOPE`]).
    LeakyRelu(f64),
    /// `nn.Tanh`.
    Tanh,
}

impl Activation {
    /// Applies the activation: with the fast kernels one pass forward and one backward (from
    /// the input; from the output for tanh), otherwise [`reference::activation`].
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        if self == Activation::Identity || !fast_path(x) {
            return reference::activation(x, self);
        }
        let op = cpu::activation::Activate(self);
        // Elementwise: a channels-last input keeps its layout.
        if strictly_channels_last(x) {
            return channels_last::nchw_view(&channels_last::nhwc(x)?.apply_op1(op)?);
        }
        x.contiguous()?.apply_op1(op)
    }
}

/// Fixes the process's compute thread count to candle's choice (the physical cores), by setting
/// `RAYON_NUM_THREADS` when it is unset, and makes the calling thread one of rayon's global
/// pool's threads; returns the count. Call it first thing in `main`, before any thread starts
/// and before anything uses rayon.
///
/// - Without the variable, candle re-reads `/proc/cpuinfo` on every operation that asks for its
///   thread count, which costs a quarter of a small network's training time.
/// - Without joining the pool, every parallel kernel called from `main` is handed to the pool's
///   threads while the caller sleeps until they finish: two thread wake-ups per kernel, thousands
///   per training iteration, and one thread more than there are cores. As a pool thread, the
///   caller runs its share of each kernel itself (`BENCHMARKS.md`: the embedded preset's
///   iteration 30% faster on two cores). With a single thread the pool is left as rayon makes it,
///   since a pool whose only thread is `main` would never run work handed to it by other threads
///   while `main` waits for them.
/// - candle's own element-wise operations run on a pool of its own, whose threads spin for a
///   while (25 000 pauses, about a millisecond) after each job before they sleep. Between our
///   kernels that spinning thread takes a core from rayon's; here it sleeps at once
///   (`CANDLE_BARRIER_POOL_SPIN_LIMIT=0`, when unset): the 128x128 iteration 3-8% faster on two
///   cores (`BENCHMARKS.md`).
pub fn configure_threads() -> usize {
    // candle's choice: the variable when set, else the physical cores.
    let threads = candle_core::utils::get_num_threads().max(1);
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    }
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "0");
    }
    if threads > 1 {
        // An error means the pool already exists (something used rayon first): it is kept.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .use_current_thread()
            .build_global();
    }
    threads
}

/// Keeps the memory of freed tensors mapped for the next ones (glibc only; elsewhere it does
/// nothing). Call it first thing in `main`, next to [`configure_threads`].
///
/// candle allocates every intermediate and every gradient afresh, megabytes each. With glibc's
/// default thresholds such blocks are mapped for each allocation and unmapped when freed, so
/// every training step page-faults them in again and pays a TLB shootdown per unmapping
/// (measured: a third of a small norm layer's backward pass, and 7% of a full 128x128 training
/// iteration; peak memory unchanged). Here allocations up to 32 MiB (glibc's largest threshold)
/// come from the heap, and the heap is never trimmed.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

static FAST_KERNELS: AtomicBool = AtomicBool::new(true);

/// Turns the fast kernels (CPU and CUDA) on or off for the whole process (on by default). With
/// them off, every operation takes the stock candle path of [`reference`](mod@reference);
/// benchmarks use this to compare.
pub fn set_fast_kernels(enabled: bool) {
    FAST_KERNELS.store(enabled, Ordering::Relaxed);
}

/// Whether the fast kernels are on (see [`set_fast_kernels`]).
pub fn fast_kernels() -> bool {
    FAST_KERNELS.load(Ordering::Relaxed)
}

static CUDA_TF32: AtomicBool = AtomicBool::new(true);

/// Lets `f32` convolutions on CUDA use TF32 tensor cores (on by default, like PyTorch's
/// `torch.backends.cudnn.allow_tf32`): about 3 significant digits per product instead of 7, much
/// faster. Off, cuDNN computes in full `f32` (the GPU parity tests turn it off).
pub fn set_cuda_tf32(enabled: bool) {
    CUDA_TF32.store(enabled, Ordering::Relaxed);
}

/// Whether `f32` convolutions on CUDA may use TF32 (see [`set_cuda_tf32`]).
pub fn cuda_tf32() -> bool {
    CUDA_TF32.load(Ordering::Relaxed)
}

static CUDA_DETERMINISTIC: AtomicBool = AtomicBool::new(false);

/// Restricts cuDNN convolutions on CUDA to deterministic engines and algorithms, like PyTorch's
/// `torch.backends.cudnn.deterministic`: some of the fastest backward passes sum partial
/// results with atomic additions, in an order that changes from run to run, so two runs from
/// the same seed part after a few steps. With this on, every op a CycleGAN runs on CUDA gives
/// the same bits every time (this crate's own kernels always do: they sum in a fixed order),
/// so a GPU run is reproducible and a resumed one matches an uninterrupted one. Off by default,
/// as in PyTorch; set it before the first convolution. It takes precedence over
/// [`set_cudnn_benchmark`], whose timing would pick among deterministic engines differently from
/// run to run. Without the `cudnn` feature it does nothing.
pub fn set_cuda_deterministic(enabled: bool) {
    CUDA_DETERMINISTIC.store(enabled, Ordering::Relaxed);
}

/// Whether cuDNN convolutions are restricted to deterministic engines (see
/// [`set_cuda_deterministic`]).
pub fn cuda_deterministic() -> bool {
    CUDA_DETERMINISTIC.load(Ordering::Relaxed)
}

static CUDNN_BENCHMARK: AtomicBool = AtomicBool::new(false);

/// Makes cuDNN convolutions on CUDA time the engines its heuristics rank first (up to eight per
/// pass and shape, on scratch buffers, the first time each shape runs) and keep the fastest,
/// like PyTorch's `torch.backends.cudnn.benchmark`; off by default, as there, where the
/// heuristics' first choice runs. Set it before the first convolution: a shape's choice is
/// kept for the process's life. The choice can differ between runs (timings vary), so results
/// are reproducible only with it off. Without the `cudnn` feature it does nothing.
pub fn set_cudnn_benchmark(enabled: bool) {
    CUDNN_BENCHMARK.store(enabled, Ordering::Relaxed);
}

/// Whether cuDNN convolutions pick their engines by timing them (see [`set_cudnn_benchmark`]).
pub fn cudnn_benchmark() -> bool {
    CUDNN_BENCHMARK.load(Ordering::Relaxed)
}

/// The convolution algorithms cuDNN's heuristics chose on the calling thread so far, one line
/// per pass and shape (for diagnostics; empty without the `cudnn` feature).
pub fn cudnn_algorithms() -> Vec<String> {
    #[cfg(feature = "cudnn")]
    return cuda::conv::chosen_algorithms();
    #[cfg(not(feature = "cudnn"))]
    Vec::new()
}

/// Starts afresh the count of cuDNN convolution passes that [`cudnn_layout_report`] times (a
/// diagnostic; nothing without the `cudnn` feature).
pub fn reset_cudnn_pass_counts() {
    #[cfg(feature = "cudnn")]
    cuda::conv::reset_pass_counts();
}

/// The cuDNN convolution passes run on the calling thread since [`reset_cudnn_pass_counts`],
/// timed again on `device` with their tensors laid out NCHW (this crate's default layout) and
/// channels last (NHWC, where cuDNN's tensor-core engines need no layout transposes;
/// [`set_cuda_channels_last`]): one line per pass and shape, then the totals per iteration,
/// `iterations` having run. A diagnostic, to measure what each layout costs; it synchronises
/// with the device. An error without the `cudnn` feature or on another device.
pub fn cudnn_layout_report(device: &Device, iterations: usize) -> Result<Vec<String>> {
    #[cfg(feature = "cudnn")]
    if let Device::Cuda(dev) = device {
        return cuda::conv::layout_report(dev, iterations);
    }
    let _ = (device, iterations);
    candle_core::bail!("the cuDNN layout report needs a CUDA device and the `cudnn` feature")
}

static CUDA_CHANNELS_LAST: AtomicBool = AtomicBool::new(false);

/// Input channels from which a cuDNN convolution of an NCHW input goes channels last when
/// [`set_cuda_channels_last`] is on: the networks' first layers (3 channels) keep NCHW, which
/// cuDNN runs faster there (the layout report, `BENCHMARKS.md`).
/// `CYCLEGAN_CHANNELS_LAST_MIN_CHANNELS` sets another threshold (a diagnostic, to measure them).
pub const CHANNELS_LAST_MIN_CHANNELS: usize = 8;

/// [`CHANNELS_LAST_MIN_CHANNELS`], or `CYCLEGAN_CHANNELS_LAST_MIN_CHANNELS`.
#[cfg(feature = "cudnn")]
fn channels_last_min_channels() -> usize {
    static MIN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MIN.get_or_init(|| {
        std::env::var("CYCLEGAN_CHANNELS_LAST_MIN_CHANNELS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(CHANNELS_LAST_MIN_CHANNELS)
    })
}

/// Makes cuDNN convolutions on CUDA (`cudnn` feature) of at least
/// [`CHANNELS_LAST_MIN_CHANNELS`] input channels write their outputs channels last (NHWC): views
/// `[n, c, h, w]` with channels-last strides, which the norm, padding, activation and residual
/// ops keep and the next convolution reads without a transposition. cuDNN's tensor-core engines
/// work on that layout; with NCHW tensors they transpose in and out. Off by default: an option
/// until measured faster. The numbers are those of the NCHW path up to the convolutions'
/// engines, which differ by layout. An `f32` convolution of a channels-last input writes a
/// channels-last output either way.
pub fn set_cuda_channels_last(enabled: bool) {
    CUDA_CHANNELS_LAST.store(enabled, Ordering::Relaxed);
}

/// Whether cuDNN convolutions go channels last (see [`set_cuda_channels_last`]).
pub fn cuda_channels_last() -> bool {
    CUDA_CHANNELS_LAST.load(Ordering::Relaxed)
}

static RECOMPUTE_PROLOGUES: AtomicBool = AtomicBool::new(true);

/// Whether a convolution's [`Prologue`] (norm, activation, padding) runs inside the convolution's
/// op and is recomputed in the backward pass (on, the default: the least memory), or runs as an
/// op of its own whose output candle's graph keeps for the backward pass (off: one norm and
/// padding pass less per layer and backward pass, for more memory: a training iteration's peak
/// on the CPU grew by 23% at 128x128 and 37% at 256x256, `BENCHMARKS.md`). The numbers are the
/// same either way, bit for bit; only time and memory differ.
pub fn set_recompute_prologues(enabled: bool) {
    RECOMPUTE_PROLOGUES.store(enabled, Ordering::Relaxed);
}

/// Whether convolution prologues are recomputed in the backward pass (see
/// [`set_recompute_prologues`]).
pub fn recompute_prologues() -> bool {
    RECOMPUTE_PROLOGUES.load(Ordering::Relaxed)
}

/// Whether a cuDNN convolution of `x`, whose prologue outputs `dims`, runs channels last: in
/// `f32` only (cuDNN's NHWC engines are tensor-core ones; an `f64` input is read as NCHW).
#[cfg(feature = "cudnn")]
fn conv_goes_channels_last(x: &Tensor, dims: &[usize]) -> bool {
    let wide = dims
        .get(1)
        .is_some_and(|&c| c >= channels_last_min_channels());
    x.dtype() == DType::F32 && (strictly_channels_last(x) || (cuda_channels_last() && wide))
}

/// Whether `x` lies channels last and not NCHW too (as a tensor of one channel, or one position,
/// does): the inputs the channels-last ops take, and keep in their layout.
fn strictly_channels_last(x: &Tensor) -> bool {
    is_channels_last(x) && !x.is_contiguous()
}

/// Whether this build has fast kernels for tensors on `device`.
fn has_fast_kernels(device: &Device) -> bool {
    device.is_cpu() || (cfg!(feature = "cuda") && device.is_cuda())
}

/// Whether `x` can take a fast kernel.
fn fast_path(x: &Tensor) -> bool {
    fast_kernels() && has_fast_kernels(x.device()) && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Whether `x` can take a fast kernel together with `others`, which must share its dtype
/// and device (otherwise the reference path reports the mismatch). Devices are compared by
/// location (`cuda:0`), not identity: candle gives each opening of a GPU its own identity.
fn fast_path_with(x: &Tensor, others: &[Option<&Tensor>]) -> bool {
    fast_path(x)
        && others
            .iter()
            .flatten()
            .all(|t| t.dtype() == x.dtype() && t.device().location() == x.device().location())
}

/// The element range of a contiguous custom-op argument: the fast kernels read (and the in-place
/// ones write) contiguous tensors only.
pub(crate) fn contiguous_range(layout: &candle_core::Layout) -> Result<std::ops::Range<usize>> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(start..end),
        None => candle_core::bail!("fast kernels take contiguous tensors, got {layout:?}"),
    }
}

/// Whether a convolution of `x` by `weight` plus `bias`, with `channels` output channels, can
/// take a fast kernel of `x`'s device.
fn conv_args_fit(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, channels: usize) -> bool {
    fast_path_with(x, &[Some(weight), bias]) && bias_fits(bias, channels)
}

/// Whether `bias` is absent or a vector of `channels` elements.
fn bias_fits(bias: Option<&Tensor>, channels: usize) -> bool {
    bias.is_none_or(|b| b.dims() == [channels])
}

/// The fast CPU kernel for [`conv2d`] of an input of `x_dims` (`x`'s own, or those of a
/// [`Prologue`]'s output) with `x`'s dtype and device, when the arguments can take one.
fn fast_conv2d(
    x: &Tensor,
    x_dims: &[usize],
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Option<cpu::conv::FastConv<cpu::conv::Conv2d>> {
    let op = cpu::conv::Conv2d {
        stride,
        pad: padding,
    };
    let shape = op.shape(x_dims, weight.dims())?;
    (x.device().is_cpu() && conv_args_fit(x, weight, bias, shape.cout))
        .then_some(cpu::conv::FastConv(op))
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
    conv2d_after(&Prologue::default(), x, weight, bias, stride, padding)
}

/// [`conv2d`] of `prologue(x)`: with the fast kernels, the prologue runs inside the
/// convolution's op and its outputs are recomputed in the backward pass instead of stored.
pub fn conv2d_after(
    prologue: &Prologue,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    if let Some(stages) = prologue.fast_stages(x) {
        let dims = stages.output_dims(x.dims());
        #[cfg(feature = "cudnn")]
        if let Some(op) = cuda::conv::conv2d(x, &dims, weight, bias, stride, padding) {
            if conv_goes_channels_last(x, &dims) {
                return channels_last::convolve(stages, x, weight, bias, op);
            }
            return stages.apply(x, weight, bias, op);
        }
        if let Some(op) = fast_conv2d(x, &dims, weight, bias, stride, padding) {
            return stages.apply(x, weight, bias, op);
        }
    }
    reference::conv2d(&prologue.apply(x)?, weight, bias, stride, padding)
}

/// Applies a convolution op to contiguous copies of its arguments: `op(x, weight)`, or
/// `op(x, weight, bias)` with a bias.
fn apply_conv<Op>(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, op: Op) -> Result<Tensor>
where
    Op: candle_core::CustomOp2 + candle_core::CustomOp3 + Send + Sync + 'static,
{
    let (x, weight) = (x.contiguous()?, weight.contiguous()?);
    match bias {
        Some(b) => x.apply_op3(&weight, &b.contiguous()?, op),
        None => x.apply_op2(&weight, op),
    }
}

/// The fast CPU kernel for [`conv_transpose2d`] of an input of `x_dims`, as [`fast_conv2d`].
fn fast_conv_transpose2d(
    x: &Tensor,
    x_dims: &[usize],
    weight: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding, output_padding): (usize, usize, usize),
) -> Option<cpu::conv::FastConv<cpu::conv::ConvTranspose2d>> {
    let op = cpu::conv::ConvTranspose2d {
        stride,
        pad: padding,
        output_pad: output_padding,
    };
    // The adjoint convolution's input channels are this op's output channels.
    let adjoint = op.adjoint(x_dims, weight.dims())?;
    (x.device().is_cpu() && conv_args_fit(x, weight, bias, adjoint.cin))
        .then_some(cpu::conv::FastConv(op))
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
    let geometry = (stride, padding, output_padding);
    conv_transpose2d_after(&Prologue::default(), x, weight, bias, geometry)
}

/// [`conv_transpose2d`] of `prologue(x)`, with `(stride, padding, output_padding)`; the
/// prologue runs inside the op as in [`conv2d_after`].
pub fn conv_transpose2d_after(
    prologue: &Prologue,
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geometry: (usize, usize, usize),
) -> Result<Tensor> {
    if let Some(stages) = prologue.fast_stages(x) {
        let dims = stages.output_dims(x.dims());
        #[cfg(feature = "cudnn")]
        if let Some(op) = cuda::conv::conv_transpose2d(x, &dims, weight, bias, geometry) {
            if conv_goes_channels_last(x, &dims) {
                return channels_last::convolve(stages, x, weight, bias, op);
            }
            return stages.apply(x, weight, bias, op);
        }
        if let Some(op) = fast_conv_transpose2d(x, &dims, weight, bias, geometry) {
            return stages.apply(x, weight, bias, op);
        }
    }
    let (stride, padding, output_padding) = geometry;
    let x = prologue.apply(x)?;
    reference::conv_transpose2d(&x, weight, bias, stride, padding, output_padding)
}

/// The fast kernel for [`pad2d`], when its arguments can take one.
fn fast_pad2d(x: &Tensor, pad: usize, mode: PaddingType) -> Option<cpu::pad::Pad2d> {
    let op = cpu::pad::Pad2d { pad, mode };
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() && pad > cuda::MAX_PAD {
        return None;
    }
    (pad > 0 && fast_path(x) && x.elem_count() > 0 && op.supports(x.dims())).then_some(op)
}

/// Pads the last two dimensions of `x` by `pad` on every side.
pub fn pad2d(x: &Tensor, pad: usize, mode: PaddingType) -> Result<Tensor> {
    match fast_pad2d(x, pad, mode) {
        Some(op) if strictly_channels_last(x) => channels_last::apply_stages(x, None, Some(op)),
        Some(op) => x.contiguous()?.apply_op1(op),
        None => reference::pad2d(x, pad, mode),
    }
}

/// The fast kernel for [`instance_norm`], when its arguments can take one.
fn fast_instance_norm(
    x: &Tensor,
    eps: f64,
    activation: Activation,
) -> Option<cpu::norm::InstanceNorm> {
    let op = cpu::norm::InstanceNorm { eps, activation };
    (fast_path(x) && x.rank() == 4 && x.elem_count() > 0).then_some(op)
}

/// Affine-free instance normalisation over each `(n, c)` plane of `x` `[N, C, H, W]`, with the
/// biased variance, like `torch.nn.InstanceNorm2d(affine=False)`, followed by `activation`.
pub fn instance_norm(x: &Tensor, eps: f64, activation: Activation) -> Result<Tensor> {
    match fast_instance_norm(x, eps, activation) {
        Some(op) if strictly_channels_last(x) => channels_last::apply_stages(x, Some(op), None),
        Some(op) => x.contiguous()?.apply_op1(op),
        None => reference::activation(&reference::instance_norm(x, eps)?, activation),
    }
}

/// `residual + instance_norm(x)` (affine-free, no activation), the residual blocks' last layer.
/// With the fast kernels it is one op, which does not store the norm's output for the backward
/// pass.
pub fn instance_norm_add(x: &Tensor, eps: f64, residual: &Tensor) -> Result<Tensor> {
    let fused = fast_instance_norm(x, eps, Activation::Identity)
        .filter(|_| fast_path_with(x, &[Some(residual)]) && residual.dims() == x.dims());
    match fused {
        // Channels last when the norm's input is (the residual follows).
        Some(norm) if strictly_channels_last(x) => {
            let op = fused::NormAdd::new(norm, true);
            let sum = channels_last::nhwc(x)?.apply_op2(&channels_last::nhwc(residual)?, op)?;
            channels_last::nchw_view(&sum)
        }
        Some(norm) => x
            .contiguous()?
            .apply_op2(residual, fused::NormAdd::new(norm, false)),
        None => residual + instance_norm(x, eps, Activation::Identity)?,
    }
}

/// Per-plane layers that run before a convolution, inside its op ([`conv2d_after`],
/// [`conv_transpose2d_after`]): an affine-free instance norm with its activation, then padding,
/// each optional (the default has neither). In the op, their outputs are recomputed in the
/// backward pass instead of stored, which is most of a training step's memory; the numbers are
/// those of [`instance_norm`] and [`pad2d`] applied in turn.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prologue {
    /// Instance norm with this epsilon, then the activation.
    pub norm: Option<(f64, Activation)>,
    /// Then padding by this many pixels on every side (0: none).
    pub pad: Option<(usize, PaddingType)>,
}

impl Prologue {
    /// The padding, unless it pads nothing.
    fn padding(&self) -> Option<(usize, PaddingType)> {
        self.pad.filter(|&(pad, _)| pad > 0)
    }

    /// The prologue's output on its own, as [`instance_norm`] and [`pad2d`].
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let x = match self.norm {
            Some((eps, activation)) => instance_norm(x, eps, activation)?,
            None => x.clone(),
        };
        match self.padding() {
            Some((pad, mode)) => pad2d(&x, pad, mode),
            None => Ok(x),
        }
    }

    /// The fused stages, when every stage takes a fast kernel for `x`.
    fn fast_stages(&self, x: &Tensor) -> Option<fused::Stages> {
        let norm = match self.norm {
            Some((eps, activation)) => Some(fast_instance_norm(x, eps, activation)?),
            None => None,
        };
        let pad = match self.padding() {
            Some((pad, mode)) => Some(fast_pad2d(x, pad, mode)?),
            None => None,
        };
        Some(fused::Stages {
            norm,
            pad,
            channels_last: false,
        })
    }
}

/// The constants of one Adam step (PyTorch's `torch.optim.Adam`, no weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamStep {
    /// Decay rate of the first moment (`exp_avg`), the reference's `beta1`.
    pub beta1: f64,
    /// Decay rate of the second moment (`exp_avg_sq`), 0.999 in the reference.
    pub beta2: f64,
    /// Term added to the denominator for numerical stability.
    pub eps: f64,
    /// `lr / (1 - beta1^t)`.
    pub step_size: f64,
    /// `sqrt(1 - beta2^t)`.
    pub bias_correction2_sqrt: f64,
}

impl AdamStep {
    /// The constants of step `t` (1 for the first) with learning rate `lr`.
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, t: i32) -> Self {
        Self {
            beta1,
            beta2,
            eps,
            step_size: lr / (1.0 - beta1.powi(t)),
            bias_correction2_sqrt: (1.0 - beta2.powi(t)).sqrt(),
        }
    }
}

/// One Adam step of `param` with `grad`: `m = beta1 m + (1 - beta1) g`,
/// `v = beta2 v + (1 - beta2) g^2`, `param -= step_size * m / (sqrt(v) / bias_correction2_sqrt + eps)`.
/// Returns the new `(m, v)`. With the fast kernels (f32/f64 on the CPU or CUDA, contiguous
/// moments) the update runs in place, in three fused passes on the CPU and one kernel on CUDA,
/// and the returned moments are `exp_avg` and `exp_avg_sq` themselves, updated; otherwise it
/// takes stock candle operations and returns new tensors. Both round identically on the CPU.
/// For many parameters, [`adam_step_all`] updates them together.
pub fn adam_step(
    param: &candle_core::Var,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    grad: &Tensor,
    step: &AdamStep,
) -> Result<(Tensor, Tensor)> {
    #[cfg(feature = "cuda")]
    if let Some(tensors) = cuda_adam_tensors(param, exp_avg, exp_avg_sq, grad)? {
        cuda::adam_step_many(&[tensors], step)?;
        return Ok((exp_avg.clone(), exp_avg_sq.clone()));
    }
    // CUDA tensors the kernel does not take, and CPU tensors the fused passes do not.
    if param.device().is_cuda() || !adam_fuses(param, exp_avg, exp_avg_sq, grad) {
        return reference::adam_step(param, exp_avg, exp_avg_sq, grad, step);
    }
    let p = param.as_tensor();
    let grad = grad.contiguous()?;
    let moment = |beta, square| cpu::adam::Moment { beta, square };
    exp_avg.inplace_op2(&grad, &moment(step.beta1, false))?;
    exp_avg_sq.inplace_op2(&grad, &moment(step.beta2, true))?;
    let apply = cpu::adam::Apply {
        inv_bias_correction2_sqrt: 1.0 / step.bias_correction2_sqrt,
        eps: step.eps,
        step_size: step.step_size,
    };
    p.inplace_op3(exp_avg, exp_avg_sq, &apply)?;
    Ok((exp_avg.clone(), exp_avg_sq.clone()))
}

/// Whether [`adam_step`] of these tensors takes the fused in-place kernels.
fn adam_fuses(
    param: &candle_core::Var,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    grad: &Tensor,
) -> bool {
    let p = param.as_tensor();
    fast_path_with(p, &[Some(exp_avg), Some(exp_avg_sq), Some(grad)])
        && [exp_avg, exp_avg_sq, grad]
            .iter()
            .all(|t| t.dims() == p.dims())
        && p.is_contiguous()
        && exp_avg.is_contiguous()
        && exp_avg_sq.is_contiguous()
}

/// `[param, grad, exp_avg, exp_avg_sq]`, the gradient made contiguous, when the CUDA Adam kernel
/// takes them: arguments of the fused path ([`adam_fuses`]) on one candle CUDA device, which has
/// one stream (candle gives each opening of a GPU its own). `None` otherwise.
#[cfg(feature = "cuda")]
fn cuda_adam_tensors(
    param: &candle_core::Var,
    exp_avg: &Tensor,
    exp_avg_sq: &Tensor,
    grad: &Tensor,
) -> Result<Option<[Tensor; 4]>> {
    let p = param.as_tensor();
    let fits = p.device().is_cuda()
        && adam_fuses(param, exp_avg, exp_avg_sq, grad)
        && [exp_avg, exp_avg_sq, grad]
            .iter()
            .all(|t| t.device().same_device(p.device()));
    if !fits {
        return Ok(None);
    }
    Ok(Some([
        p.clone(),
        grad.contiguous()?,
        exp_avg.clone(),
        exp_avg_sq.clone(),
    ]))
}

/// One parameter's part in [`adam_step_all`]: the variable, its moments (replaced by the updated
/// ones, which are the same tensors when updated in place) and its gradient.
#[derive(Debug)]
pub struct AdamSlot<'a> {
    /// The parameter, updated in place.
    pub param: &'a candle_core::Var,
    /// Its first moment (`exp_avg`).
    pub exp_avg: &'a mut Tensor,
    /// Its second moment (`exp_avg_sq`).
    pub exp_avg_sq: &'a mut Tensor,
    /// Its gradient.
    pub grad: &'a Tensor,
}

/// One Adam step of every parameter in `slots`, each computed exactly as [`adam_step`] computes
/// it. On a CUDA device, the parameters that take the fused kernel are updated together, one
/// launch per 64 parameters instead of one per parameter (a launch costs the host a few
/// microseconds; `BENCHMARKS.md`). Elsewhere it is [`adam_step`] in turn.
pub fn adam_step_all(slots: &mut [AdamSlot<'_>], step: &AdamStep) -> Result<()> {
    #[cfg(feature = "cuda")]
    let mut batch: Vec<[Tensor; 4]> = Vec::new();
    for slot in slots.iter_mut() {
        #[cfg(feature = "cuda")]
        if let Some(tensors) =
            cuda_adam_tensors(slot.param, slot.exp_avg, slot.exp_avg_sq, slot.grad)?
        {
            // One launch takes one type on one stream.
            let p = &tensors[0];
            let fits = batch.first().is_none_or(|first| {
                first[0].dtype() == p.dtype() && first[0].device().same_device(p.device())
            });
            if fits {
                batch.push(tensors);
                continue;
            }
        }
        let (m, v) = adam_step(slot.param, slot.exp_avg, slot.exp_avg_sq, slot.grad, step)?;
        *slot.exp_avg = m;
        *slot.exp_avg_sq = v;
    }
    #[cfg(feature = "cuda")]
    if !batch.is_empty() {
        cuda::adam_step_many(&batch, step)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Which arguments take the fast kernels; their numbers are tested in `tests/fast_kernels.rs`.
    //! No test here touches the process-wide switch, which these assertions depend on.
    use super::*;
    use candle_core::Device;

    fn zeros(dims: &[usize], dtype: DType) -> Tensor {
        Tensor::zeros(dims, dtype, &Device::Cpu).unwrap()
    }

    #[test]
    fn cpu_float_tensors_take_the_fast_kernels() {
        for dtype in [DType::F32, DType::F64] {
            let x = zeros(&[2, 3, 8, 8], dtype);
            let w = zeros(&[4, 3, 3, 3], dtype);
            let b = zeros(&[4], dtype);
            assert!(fast_conv2d(&x, x.dims(), &w, Some(&b), 2, 1).is_some());
            assert!(fast_conv2d(&x, x.dims(), &w, None, 1, 0).is_some());
            let wt = zeros(&[3, 5, 3, 3], dtype);
            let bt = zeros(&[5], dtype);
            assert!(fast_conv_transpose2d(&x, x.dims(), &wt, Some(&bt), (2, 1, 1)).is_some());
            assert!(fast_pad2d(&x, 3, PaddingType::Reflect).is_some());
            assert!(fast_instance_norm(&x, NORM_EPS, Activation::Relu).is_some());
            // Strided views take them too (made contiguous first).
            let xt = x.transpose(2, 3).unwrap();
            assert!(fast_conv2d(&xt, xt.dims(), &w, Some(&b), 1, 1).is_some());
        }
    }

    #[test]
    fn other_arguments_take_the_reference() {
        let x = zeros(&[1, 3, 8, 8], DType::F32);
        let w = zeros(&[4, 3, 3, 3], DType::F32);
        // Other dtypes, mixed dtypes, mismatched shapes.
        let x16 = zeros(&[1, 3, 8, 8], DType::F16);
        assert!(fast_conv2d(&x16, x16.dims(), &w, None, 1, 1).is_none());
        assert!(fast_conv2d(&x, x.dims(), &zeros(&[4, 3, 3, 3], DType::F64), None, 1, 1).is_none());
        assert!(fast_conv2d(&x, x.dims(), &w, Some(&zeros(&[5], DType::F32)), 1, 1).is_none());
        assert!(fast_conv2d(&x, x.dims(), &zeros(&[4, 2, 3, 3], DType::F32), None, 1, 1).is_none());
        assert!(fast_conv2d(
            &x,
            x.dims(),
            &zeros(&[4, 3, 11, 11], DType::F32),
            None,
            1,
            1
        )
        .is_none());
        assert!(fast_conv2d(&x, x.dims(), &w, None, 3, 1).is_none());
        assert!(fast_conv_transpose2d(
            &x,
            x.dims(),
            &zeros(&[3, 4, 3, 3], DType::F32),
            None,
            (2, 1, 2)
        )
        .is_none());
        // Reflection at least as wide as the input, and the empty padding.
        assert!(fast_pad2d(&x, 8, PaddingType::Reflect).is_none());
        assert!(fast_pad2d(&x, 8, PaddingType::Zero).is_some());
        assert!(fast_pad2d(&x, 0, PaddingType::Zero).is_none());
        assert!(
            fast_instance_norm(&zeros(&[3, 8, 8], DType::F32), NORM_EPS, Activation::Relu)
                .is_none()
        );
    }
}
