//! CUDA kernels behind the fused ops of [`super::cpu`] (padding, instance norm + activation,
//! forward and backward, an activation on its own), Adam over many parameters at once and, with
//! the `cudnn` feature, convolutions through cuDNN ([`conv`], with execution plans of its
//! backend API from `cudnn_plan`) and their channel bias.
//!
//! The kernels live in `kernels.cu`, compiled to PTX by the build script and loaded once per
//! device; [`nhwc`] launches their channels-last variants. Like the CPU kernels they read
//! contiguous inputs only, compute in the tensor's type with statistics accumulated in `f64`,
//! and write fresh outputs.

#[cfg(feature = "cudnn")]
pub(crate) mod conv;
#[cfg(feature = "cudnn")]
mod cudnn_plan;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaFunction, CudaSlice, CudaStream, CudaView, DeviceRepr, LaunchArgs, LaunchConfig,
    PushKernelArg, SyncOnDrop,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorageSlice, DeviceId, WrapErr};
use candle_core::{CudaStorage, Layout, Result, Storage, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::ops::{contiguous_range as range, Activation, AdamStep};
use crate::padding::PaddingType;

mod ptx {
    include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
}

/// The module name the kernels are cached under on each device.
const MODULE: &str = "cyclegan_layers_kernels";

/// The key kernels are cached under: device, name and type suffix.
type KernelKey = (DeviceId, &'static str, &'static str);

/// A kernel of `kernels.cu` on a device's stream.
struct Kernel {
    func: CudaFunction,
    stream: Arc<CudaStream>,
}

impl Kernel {
    /// A launch of the kernel, to add the arguments to.
    fn builder(&self) -> LaunchArgs<'_> {
        self.stream.launch_builder(&self.func)
    }
}

thread_local! {
    /// The kernels looked up so far.
    static KERNELS: RefCell<HashMap<KernelKey, CudaFunction>> = RefCell::new(HashMap::new());
}

/// Kernel `{name}_{suffix}` on `dev`, looked up (and the module loaded) once per device and
/// thread rather than at every launch.
fn kernel(dev: &CudaDevice, name: &'static str, suffix: &'static str) -> Result<Kernel> {
    let key = (dev.id(), name, suffix);
    let func = match KERNELS.with(|k| k.borrow().get(&key).cloned()) {
        Some(func) => func,
        None => {
            let full = format!("{name}_{suffix}");
            let func = dev
                .get_or_load_custom_func(&full, MODULE, ptx::KERNELS)?
                .into_cuda_function();
            KERNELS.with(|k| k.borrow_mut().insert(key, func.clone()));
            func
        }
    };
    Ok(Kernel {
        func,
        stream: dev.cuda_stream(),
    })
}

/// Threads per block of the elementwise (padding) kernels.
const THREADS: u32 = 256;

/// The largest padding the CUDA backward kernel handles (`MAX_PAD` in `kernels.cu`).
pub(crate) const MAX_PAD: usize = 8;

/// The elements of a contiguous tensor argument.
fn view<'a, T: CudaDType>(storage: &'a CudaStorage, layout: &Layout) -> Result<CudaView<'a, T>> {
    Ok(storage.as_cuda_slice::<T>()?.slice(range(layout)?))
}

/// An output buffer of `len` elements, every one of which the kernel writes.
fn output<T: DeviceRepr>(dev: &CudaDevice, len: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the kernels write every element before anything reads it.
    unsafe { dev.alloc::<T>(len) }
}

/// A launch over `planes` planes (or rows) of `len` elements: blocks along x cover a plane, along
/// y the planes (the kernels stride past 65 535 of either).
fn plane_grid(planes: usize, len: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (
            len.div_ceil(THREADS as usize).clamp(1, 65_535) as u32,
            planes.clamp(1, 65_535) as u32,
            1,
        ),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// A grid-stride launch over `total` elements.
fn elementwise(total: usize) -> LaunchConfig {
    let blocks = total.div_ceil(THREADS as usize).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per plane of `len` elements: enough threads for a few elements each.
#[cfg(feature = "cudnn")]
fn per_plane(planes: usize, len: usize) -> LaunchConfig {
    let threads = (len.div_ceil(4).div_ceil(32) * 32).clamp(32, 1024) as u32;
    LaunchConfig {
        grid_dim: (planes as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Calls `$f::<T>` with `T` the element type of `$storage` (`f32` or `f64`) and the kernel name
/// suffix, and wraps the returned slice into a `CudaStorage`.
macro_rules! dispatch_float {
    ($storage:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match &$storage.slice {
            CudaStorageSlice::F32(_) => $f::<f32>("f32", $($arg),*)
                .map(|s| CudaStorage::wrap_cuda_slice(s, $storage.device.clone())),
            CudaStorageSlice::F64(_) => $f::<f64>("f64", $($arg),*)
                .map(|s| CudaStorage::wrap_cuda_slice(s, $storage.device.clone())),
            _ => candle_core::bail!("CUDA kernels take f32 or f64, got {:?}", $storage.dtype()),
        }
    };
}

/// Calls `$f::<T>(suffix, &device, slice, args..)` with `$target`'s slice as `&mut CudaSlice<T>`
/// (`f32` or `f64`) when `$other` has the same type; `$what` names the op in the error.
#[cfg(feature = "cudnn")]
macro_rules! dispatch_in_place {
    ($what:literal, $target:expr, $other:expr, $f:ident ( $($arg:expr),* $(,)? )) => {{
        let dev = $target.device.clone();
        match (&mut $target.slice, &$other.slice) {
            (CudaStorageSlice::F32(s), CudaStorageSlice::F32(_)) => $f::<f32>("f32", &dev, s, $($arg),*),
            (CudaStorageSlice::F64(s), CudaStorageSlice::F64(_)) => $f::<f64>("f64", &dev, s, $($arg),*),
            _ => candle_core::bail!("{} takes f32 or f64 tensors of one type", $what),
        }
    }};
}

// After the macros, which it uses.
pub(crate) mod nhwc;

fn pad_mode(mode: PaddingType) -> i32 {
    match mode {
        PaddingType::Zero => 0,
        PaddingType::Reflect => 1,
        PaddingType::Replicate => 2,
    }
}

/// `(code, slope)` of an activation for the kernels.
fn activation_code(activation: Activation) -> (i32, f64) {
    match activation {
        Activation::Identity => (0, 0.0),
        Activation::Relu => (1, 0.0),
        Activation::LeakyRelu(slope) => (2, slope),
        Activation::Tanh => (3, 0.0),
    }
}

/// The geometry of a padding: planes of `h x w` padded by `pad` in `mode`.
#[derive(Clone, Copy)]
struct PadGeometry {
    planes: usize,
    h: usize,
    w: usize,
    pad: usize,
    mode: PaddingType,
}

/// Runs padding kernel `name` (`pad2d_forward` or `pad2d_backward`, which take the same
/// arguments) from contiguous `src` into `total` fresh elements.
fn pad2d_kernel(
    name: &'static str,
    src: &CudaStorage,
    layout: &Layout,
    total: usize,
    geometry: PadGeometry,
) -> Result<CudaStorage> {
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        (name, src, layout, total): (&'static str, &CudaStorage, &Layout, usize),
        g: PadGeometry,
    ) -> Result<CudaSlice<T>> {
        let dev = &src.device;
        let src = view::<T>(src, layout)?;
        let mut dst = output::<T>(dev, total)?;
        let func = kernel(dev, name, suffix)?;
        let planes = g.planes as i64;
        let (h, w, pad, mode) = (g.h as i32, g.w as i32, g.pad as i32, pad_mode(g.mode));
        let mut b = func.builder();
        b.arg(&src)
            .arg(&mut dst)
            .arg(&planes)
            .arg(&h)
            .arg(&w)
            .arg(&pad)
            .arg(&mode);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { b.launch(plane_grid(g.planes, total / g.planes.max(1))) }.w()?;
        Ok(dst)
    }
    dispatch_float!(src, run((name, src, layout, total), geometry))
}

/// `[.., h, w]` padded by `pad` on every side.
pub(crate) fn pad2d_forward(
    x: &CudaStorage,
    xl: &Layout,
    pad: usize,
    mode: PaddingType,
) -> Result<CudaStorage> {
    let [.., h, w] = xl.dims() else {
        candle_core::bail!("pad2d needs at least 2 dimensions, got {:?}", xl.dims())
    };
    let (h, w) = (*h, *w);
    let planes = xl.shape().elem_count() / (h * w).max(1);
    let total = planes * (h + 2 * pad) * (w + 2 * pad);
    let geometry = PadGeometry {
        planes,
        h,
        w,
        pad,
        mode,
    };
    pad2d_kernel("pad2d_forward", x, xl, total, geometry)
}

/// The input gradient of [`pad2d_forward`] for an `[.., h, w]` input, from the output gradient.
pub(crate) fn pad2d_backward(
    g: &CudaStorage,
    gl: &Layout,
    (h, w): (usize, usize),
    pad: usize,
    mode: PaddingType,
) -> Result<CudaStorage> {
    let planes = gl.shape().elem_count() / ((h + 2 * pad) * (w + 2 * pad)).max(1);
    let geometry = PadGeometry {
        planes,
        h,
        w,
        pad,
        mode,
    };
    pad2d_kernel("pad2d_backward", g, gl, planes * h * w, geometry)
}

/// The geometry of an instance norm: `planes` of `h x w`, written padded by `pad` in `mode`
/// (`pad` 0: unpadded).
#[derive(Clone, Copy)]
struct NormGeometry {
    planes: usize,
    h: usize,
    w: usize,
    pad: usize,
    mode: PaddingType,
    eps: f64,
    activation: Activation,
}

impl NormGeometry {
    fn kernel_args(&self) -> NormKernelArgs {
        let (act, slope) = activation_code(self.activation);
        NormKernelArgs {
            h: self.h as i32,
            w: self.w as i32,
            pad: self.pad as i32,
            mode: pad_mode(self.mode),
            eps: self.eps,
            act,
            slope,
        }
    }

    /// The norm kernels' launch and the chunks each plane is split into: planes along x, each
    /// plane's chunks of up to [`norm_threads`] x [`NORM_PER_THREAD`] elements along y, with
    /// threads enough for a chunk.
    fn launch(&self) -> Result<(LaunchConfig, usize)> {
        let len = self.h * self.w;
        let threads = (len.div_ceil(NORM_PER_THREAD).div_ceil(32) * 32).clamp(32, norm_threads());
        let chunks = len.div_ceil(threads * NORM_PER_THREAD).max(1);
        if chunks > 65_535 || self.planes > i32::MAX as usize || len > i32::MAX as usize {
            candle_core::bail!(
                "instance norm: {} planes of {}x{} exceed the CUDA kernels' grid",
                self.planes,
                self.h,
                self.w
            )
        }
        let config = LaunchConfig {
            grid_dim: (self.planes as u32, chunks as u32, 1),
            block_dim: (threads as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        Ok((config, chunks))
    }
}

/// A tensor argument: its storage and layout.
type Operand<'a> = (&'a CudaStorage, &'a Layout);

/// A [`NormGeometry`] as the norm kernels' trailing arguments take it.
struct NormKernelArgs {
    h: i32,
    w: i32,
    pad: i32,
    mode: i32,
    eps: f64,
    act: i32,
    slope: f64,
}

impl NormKernelArgs {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(&self.h)
            .arg(&self.w)
            .arg(&self.pad)
            .arg(&self.mode)
            .arg(&self.eps)
            .arg(&self.act)
            .arg(&self.slope);
    }
}

/// Which norm kernel [`NormGeometry::run`] ends with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NormPass {
    Forward,
    AddForward,
    Backward,
}

impl NormPass {
    fn kernel(self) -> &'static str {
        match self {
            NormPass::Forward => "instance_norm_forward",
            NormPass::AddForward => "instance_norm_add_forward",
            NormPass::Backward => "instance_norm_backward",
        }
    }
}

/// The norm kernels' threads per block, at most: 256, or `CYCLEGAN_NORM_THREADS` (a
/// diagnostic, to measure other chunk sizes; rounded to a multiple of 32, at most 512: the
/// kernels take up to about 100 registers a thread).
fn norm_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("CYCLEGAN_NORM_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .map_or(256, |t| (t.div_ceil(32) * 32).clamp(32, 512))
    })
}

/// The elements of a plane each norm kernel thread holds in registers (`NORM_PER_THREAD` in
/// `kernels.cu`).
const NORM_PER_THREAD: usize = 16;

/// The geometry of the norm kernels of one layout: NCHW ([`NormGeometry`]) or channels last
/// ([`nhwc::NormGeometry`]), each with its own kernels.
trait NormKernels: Sized {
    /// The geometry of a norm of an input of `x_dims` (in the layout's order).
    fn new(
        x_dims: &[usize],
        eps: f64,
        activation: Activation,
        padding: Option<(usize, PaddingType)>,
    ) -> Result<Self>;
    /// The elements of the (padded) output.
    fn padded_len(&self) -> usize;
    /// The padding.
    fn pad(&self) -> usize;
    /// Runs the kernels of `pass` on `x` and `second` (the residual, or the output's gradient;
    /// contiguous) into a fresh output of `out_len` elements.
    fn run(
        &self,
        pass: NormPass,
        x: Operand,
        second: Option<Operand>,
        out_len: usize,
    ) -> Result<CudaStorage>;
}

impl NormKernels for NormGeometry {
    fn new(
        x_dims: &[usize],
        eps: f64,
        activation: Activation,
        padding: Option<(usize, PaddingType)>,
    ) -> Result<Self> {
        let &[n, c, h, w] = x_dims else {
            candle_core::bail!("instance norm needs [n, c, h, w], got {x_dims:?}")
        };
        let (pad, mode) = padding.unwrap_or((0, PaddingType::Zero));
        if pad > MAX_PAD {
            candle_core::bail!("instance norm: padding {pad} exceeds the CUDA kernels' {MAX_PAD}")
        }
        Ok(Self {
            planes: n * c,
            h,
            w,
            pad,
            mode,
            eps,
            activation,
        })
    }

    fn padded_len(&self) -> usize {
        self.planes * (self.h + 2 * self.pad) * (self.w + 2 * self.pad)
    }

    fn pad(&self) -> usize {
        self.pad
    }

    /// Runs the norm kernels of `pass` in the inputs' type on `x` and `second` (the residual,
    /// or the output gradient; contiguous) into a fresh output of `out_len` elements. Planes of
    /// more than one chunk first get each chunk's statistics (`instance_norm_stats`) and, for the
    /// backward pass, each chunk's gradient sums (`instance_norm_backward_sums`), which the
    /// kernel of `pass` combines per plane.
    fn run(
        &self,
        pass: NormPass,
        x: Operand,
        second: Option<Operand>,
        out_len: usize,
    ) -> Result<CudaStorage> {
        fn typed<T: CudaDType + DeviceRepr>(
            suffix: &'static str,
            geometry: &NormGeometry,
            (pass, (x, xl), second, out_len): (NormPass, Operand, Option<Operand>, usize),
        ) -> Result<CudaSlice<T>> {
            let dev = &x.device;
            let x = view::<T>(x, xl)?;
            let second = second.map(|(s, l)| view::<T>(s, l)).transpose()?;
            let (config, chunks) = geometry.launch()?;
            let args = geometry.kernel_args();
            let null = 0u64;
            let partial = if chunks > 1 {
                let mut partial = output::<f64>(dev, geometry.planes * chunks * 2)?;
                let func = kernel(dev, "instance_norm_stats", suffix)?;
                let len = args.h * args.w;
                let mut b = func.builder();
                b.arg(&x).arg(&mut partial).arg(&len);
                // SAFETY: the argument list matches the kernel's signature, and `partial` has
                // two slots for each block.
                unsafe { b.launch(config) }.w()?;
                Some(partial)
            } else {
                None
            };
            let sums = match (&partial, pass, &second) {
                (Some(partial), NormPass::Backward, Some(g)) => {
                    let mut sums = output::<f64>(dev, geometry.planes * chunks * 2)?;
                    let func = kernel(dev, "instance_norm_backward_sums", suffix)?;
                    let mut b = func.builder();
                    b.arg(&x).arg(g).arg(partial).arg(&mut sums);
                    args.push(&mut b);
                    // SAFETY: as above; `partial` holds every chunk's statistics.
                    unsafe { b.launch(config) }.w()?;
                    Some(sums)
                }
                _ => None,
            };
            let mut out = output::<T>(dev, out_len)?;
            let func = kernel(dev, pass.kernel(), suffix)?;
            let mut b = func.builder();
            b.arg(&x);
            if let Some(second) = &second {
                b.arg(second);
            }
            b.arg(&mut out);
            match &partial {
                Some(partial) => b.arg(partial),
                None => b.arg(&null),
            };
            if pass == NormPass::Backward {
                match &sums {
                    Some(sums) => b.arg(sums),
                    None => b.arg(&null),
                };
            }
            args.push(&mut b);
            // SAFETY: the argument list matches the kernel's signature; `partial` and `sums`
            // (null for planes of one chunk, which the kernels then leave alone) hold every
            // chunk's.
            unsafe { b.launch(config) }.w()?;
            Ok(out)
        }
        dispatch_float!(x.0, typed(self, (pass, x, second, out_len)))
    }
}

/// Runs norm pass `pass` of `x` (with `second`, which it needs but the forward pass) in the
/// layout's kernels, its operands' shapes checked.
fn norm_pass<G: NormKernels>(
    pass: NormPass,
    (x, xl): Operand,
    second: Option<Operand>,
    (eps, activation): (f64, Activation),
    padding: Option<(usize, PaddingType)>,
) -> Result<CudaStorage> {
    let geometry = G::new(xl.dims(), eps, activation, padding)?;
    let out_len = match (pass, second) {
        (NormPass::Forward, _) => geometry.padded_len(),
        (NormPass::AddForward, Some((_, rl))) if rl.dims() == xl.dims() => geometry.padded_len(),
        (NormPass::Backward, Some((_, gl))) if gl.shape().elem_count() == geometry.padded_len() => {
            xl.shape().elem_count()
        }
        (NormPass::AddForward, _) => candle_core::bail!(
            "instance norm + residual: residual {:?} for input {:?}",
            second.map(|(_, l)| l.dims()),
            xl.dims()
        ),
        (NormPass::Backward, _) => candle_core::bail!(
            "instance norm backward: gradient {:?} for input {:?} padded by {}",
            second.map(|(_, l)| l.dims()),
            xl.dims(),
            geometry.pad()
        ),
    };
    geometry.run(pass, (x, xl), second, out_len)
}

/// [`norm_pass`] in the layout's kernels: channels last, or NCHW.
fn norm_pass_in(
    channels_last: bool,
    pass: NormPass,
    x: Operand,
    second: Option<Operand>,
    norm: (f64, Activation),
    padding: Option<(usize, PaddingType)>,
) -> Result<CudaStorage> {
    if channels_last {
        norm_pass::<nhwc::NormGeometry>(pass, x, second, norm, padding)
    } else {
        norm_pass::<NormGeometry>(pass, x, second, norm, padding)
    }
}

/// `activation(instance_norm(x))` over each plane of `x` `[n, c, h, w]` (channels last
/// `[n, h, w, c]`), then `padding` (`(pad, mode)`), if any, in the same kernel.
pub(crate) fn instance_norm_forward(
    x: Operand,
    eps: f64,
    activation: Activation,
    padding: Option<(usize, PaddingType)>,
    channels_last: bool,
) -> Result<CudaStorage> {
    let norm = (eps, activation);
    norm_pass_in(channels_last, NormPass::Forward, x, None, norm, padding)
}

/// `residual + activation(instance_norm(x))` (no padding) in one kernel; `r` contiguous, of
/// `x`'s shape.
pub(crate) fn instance_norm_add_forward(
    x: Operand,
    r: Operand,
    (eps, activation): (f64, Activation),
    channels_last: bool,
) -> Result<CudaStorage> {
    let norm = (eps, activation);
    norm_pass_in(channels_last, NormPass::AddForward, x, Some(r), norm, None)
}

/// The input gradient of [`instance_norm_forward`] (with the same `padding`), from `(x, grad)`.
pub(crate) fn instance_norm_backward(
    x: Operand,
    g: Operand,
    (eps, activation): (f64, Activation),
    padding: Option<(usize, PaddingType)>,
    channels_last: bool,
) -> Result<CudaStorage> {
    let norm = (eps, activation);
    norm_pass_in(channels_last, NormPass::Backward, x, Some(g), norm, padding)
}

/// Adds `b` `[c]` in place to every `(n, c)` plane of `y`, a fresh contiguous `[n, c, h, w]`
/// (`dims`) output (the cuDNN convolutions' bias).
#[cfg(feature = "cudnn")]
pub(crate) fn add_channel_bias_in_place(
    y: &mut CudaStorage,
    dims: [usize; 4],
    b: &CudaStorage,
    bl: &Layout,
) -> Result<()> {
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        dev: &CudaDevice,
        y: &mut CudaSlice<T>,
        b: CudaView<T>,
        [_, c, h, w]: [usize; 4],
    ) -> Result<()> {
        let total = y.len();
        if b.len() != c || !total.is_multiple_of((c * h * w).max(1)) {
            candle_core::bail!("channel bias of {} for {c} channels of {total}", b.len())
        }
        let func = kernel(dev, "channel_bias_add", suffix)?;
        let (len, planes) = (h * w, total / (h * w).max(1));
        let (planes64, c32, len32) = (planes as i64, c as i32, len as i32);
        let mut builder = func.builder();
        builder.arg(y).arg(&b).arg(&planes64).arg(&c32).arg(&len32);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { builder.launch(plane_grid(planes, len)) }.w()?;
        Ok(())
    }
    dispatch_in_place!("channel bias", y, b, run(view(b, bl)?, dims))
}

/// Planes of a bias gradient are split between blocks of this many elements (per image) when the
/// channels are fewer than [`BIAS_GRAD_SPLIT_BELOW`], so that a convolution with few output
/// channels (the generator's last has 3) still occupies the GPU's multiprocessors.
#[cfg(feature = "cudnn")]
const BIAS_GRAD_CHUNK: usize = 2048;

/// See [`BIAS_GRAD_CHUNK`]: about the multiprocessors of the GPUs this targets (132 on an H100).
#[cfg(feature = "cudnn")]
const BIAS_GRAD_SPLIT_BELOW: usize = 128;

/// The gradient of a channel bias: `g` `[n, c, h, w]` summed over all but `c`, in `f64`. One
/// block per channel, or per part of a channel's planes when there are few channels, whose sums
/// a second kernel adds in order (no atomics: the same result at every run).
#[cfg(feature = "cudnn")]
pub(crate) fn channel_bias_grad(g: &CudaStorage, gl: &Layout) -> Result<CudaStorage> {
    let (n, c, h, w) = gl.shape().dims4()?;
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        g: &CudaStorage,
        gl: &Layout,
        (n, c, len): (usize, usize, usize),
    ) -> Result<CudaSlice<T>> {
        let dev = &g.device;
        let g = view::<T>(g, gl)?;
        let mut db = output::<T>(dev, c)?;
        let split = c < BIAS_GRAD_SPLIT_BELOW && len > BIAS_GRAD_CHUNK;
        let (chunk, chunks) = if split {
            (BIAS_GRAD_CHUNK, len.div_ceil(BIAS_GRAD_CHUNK))
        } else {
            (len, 1)
        };
        let mut partial = split.then(|| output::<f64>(dev, c * chunks)).transpose()?;
        let func = kernel(dev, "channel_bias_grad", suffix)?;
        let [n32, c32, len32, chunk32] = [n, c, len, chunk].map(|v| v as i32);
        let null = 0u64;
        let mut builder = func.builder();
        builder.arg(&g).arg(&mut db);
        match &mut partial {
            Some(partial) => builder.arg(partial),
            None => builder.arg(&null),
        };
        builder.arg(&n32).arg(&c32).arg(&len32).arg(&chunk32);
        let mut config = per_plane(1, n * chunk);
        config.grid_dim = (chunks as u32, c as u32, 1);
        // SAFETY: the argument list matches the kernel's signature; `partial` (null with one
        // block per channel, which the kernel then leaves alone) has a slot for each block.
        unsafe { builder.launch(config) }.w()?;
        if let Some(partial) = partial {
            finish_bias_grad(dev, suffix, &partial, &mut db, chunks)?;
        }
        Ok(db)
    }
    dispatch_float!(g, run(g, gl, (n, c, h * w)))
}

/// Adds each channel's `chunks` partial bias-gradient sums (`partial[c * chunks + k]`, in `f64`)
/// into `db` in order (`channel_bias_grad_finish`; both layouts' bias gradients end with it).
#[cfg(feature = "cudnn")]
fn finish_bias_grad<T: CudaDType + DeviceRepr>(
    dev: &CudaDevice,
    suffix: &'static str,
    partial: &CudaSlice<f64>,
    db: &mut CudaSlice<T>,
    chunks: usize,
) -> Result<()> {
    let func = kernel(dev, "channel_bias_grad_finish", suffix)?;
    let channels = db.len();
    let (c32, chunks32) = (channels as i32, chunks as i32);
    let mut builder = func.builder();
    builder.arg(partial).arg(db).arg(&c32).arg(&chunks32);
    // SAFETY: the argument list matches the kernel's signature; `partial` has `chunks` sums for
    // each of `db`'s channels.
    unsafe { builder.launch(elementwise(channels)) }.w()?;
    Ok(())
}

/// `activation(x)`, elementwise.
pub(crate) fn activation_forward(
    x: &CudaStorage,
    xl: &Layout,
    activation: Activation,
) -> Result<CudaStorage> {
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        x: &CudaStorage,
        xl: &Layout,
        activation: Activation,
    ) -> Result<CudaSlice<T>> {
        let dev = &x.device;
        let x = view::<T>(x, xl)?;
        let mut y = output::<T>(dev, x.len())?;
        let func = kernel(dev, "activation_forward", suffix)?;
        let ((act, slope), n) = (activation_code(activation), x.len() as i64);
        let mut b = func.builder();
        b.arg(&x).arg(&mut y).arg(&n).arg(&act).arg(&slope);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { b.launch(elementwise(n as usize)) }.w()?;
        Ok(y)
    }
    dispatch_float!(x, run(x, xl, activation))
}

/// The input gradient of [`activation_forward`] from its input `x` (its output for tanh) and
/// output gradient `g` of as many elements (`ActivateBackward` checks).
pub(crate) fn activation_backward(
    (x, xl): (&CudaStorage, &Layout),
    (g, gl): (&CudaStorage, &Layout),
    activation: Activation,
) -> Result<CudaStorage> {
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        (x, xl): (&CudaStorage, &Layout),
        (g, gl): (&CudaStorage, &Layout),
        activation: Activation,
    ) -> Result<CudaSlice<T>> {
        let dev = &x.device;
        let (x, g) = (view::<T>(x, xl)?, view::<T>(g, gl)?);
        let mut dx = output::<T>(dev, x.len())?;
        let func = kernel(dev, "activation_backward", suffix)?;
        let ((act, slope), n) = (activation_code(activation), x.len() as i64);
        let mut b = func.builder();
        b.arg(&x).arg(&g).arg(&mut dx).arg(&n).arg(&act).arg(&slope);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { b.launch(elementwise(n as usize)) }.w()?;
        Ok(dx)
    }
    dispatch_float!(x, run((x, xl), (g, gl), activation))
}

/// Parameters per launch of [`adam_step_many`] (`ADAM_MAX_TENSORS` in `kernels.cu`).
const ADAM_MAX_TENSORS: usize = 64;

/// Elements of a parameter that one block of `adam_step_multi` updates (`ADAM_BLOCK_ELEMENTS`).
const ADAM_BLOCK_ELEMENTS: usize = 2048;

/// The argument of `adam_step_multi`: `AdamTensors` of `kernels.cu`, field for field.
#[repr(C)]
#[derive(Clone, Copy)]
struct AdamTensors {
    p: [u64; ADAM_MAX_TENSORS],
    g: [u64; ADAM_MAX_TENSORS],
    m: [u64; ADAM_MAX_TENSORS],
    v: [u64; ADAM_MAX_TENSORS],
    n: [i64; ADAM_MAX_TENSORS],
    first_block: [i32; ADAM_MAX_TENSORS + 1],
    count: i32,
}

// SAFETY: plain integers, laid out as the kernel's C struct (`repr(C)`, the same fields in the
// same order), passed by value.
unsafe impl DeviceRepr for AdamTensors {}

// The size nvcc gives the kernel's parameter (`.param .align 8 .b8 adam_step_multi_f32_param_0
// [2824]` in the PTX): no padding on either side, and within the 4 KiB of kernel arguments.
const _: () = assert!(std::mem::size_of::<AdamTensors>() == 2824);

/// One Adam step of each `[parameter, gradient, m, v]` in `params` (contiguous tensors of one
/// size per parameter, all of one type on one device), in place: one launch of
/// `adam_step_multi` per [`ADAM_MAX_TENSORS`] parameters.
pub(crate) fn adam_step_many(params: &[[Tensor; 4]], step: &AdamStep) -> Result<()> {
    for group in params.chunks(ADAM_MAX_TENSORS) {
        let locked: Vec<[(candle_core::StorageRef<'_>, &Layout); 4]> = group
            .iter()
            .map(|tensors| tensors.each_ref().map(|t| t.storage_and_layout()))
            .collect();
        let Storage::Cuda(first) = &*locked[0][0].0 else {
            candle_core::bail!("fused Adam: a parameter not on a CUDA device")
        };
        let dev = first.device.clone();
        match &first.slice {
            CudaStorageSlice::F32(_) => launch_adam_group::<f32>("f32", &dev, &locked, step)?,
            CudaStorageSlice::F64(_) => launch_adam_group::<f64>("f64", &dev, &locked, step)?,
            _ => candle_core::bail!("fused Adam takes f32 or f64 tensors"),
        }
    }
    Ok(())
}

/// One launch of [`adam_step_many`] over the locked storages of up to [`ADAM_MAX_TENSORS`]
/// parameters.
fn launch_adam_group<T: CudaDType + DeviceRepr>(
    suffix: &'static str,
    dev: &CudaDevice,
    locked: &[[(candle_core::StorageRef<'_>, &Layout); 4]],
    step: &AdamStep,
) -> Result<()> {
    let stream = dev.cuda_stream();
    let mut args = AdamTensors {
        p: [0; ADAM_MAX_TENSORS],
        g: [0; ADAM_MAX_TENSORS],
        m: [0; ADAM_MAX_TENSORS],
        v: [0; ADAM_MAX_TENSORS],
        n: [0; ADAM_MAX_TENSORS],
        first_block: [0; ADAM_MAX_TENSORS + 1],
        count: 0,
    };
    // Each address's record of its use, dropped once the launch is queued.
    let mut uses: Vec<SyncOnDrop<'_>> = Vec::new();
    let mut blocks = 0usize;
    for tensors in locked {
        let mut addresses = [0u64; 4];
        let mut len = None;
        for (address, (storage, layout)) in addresses.iter_mut().zip(tensors) {
            let Storage::Cuda(storage) = &**storage else {
                candle_core::bail!("fused Adam: a tensor not on a CUDA device")
            };
            if storage.device.id() != dev.id() {
                candle_core::bail!("fused Adam: tensors on different CUDA devices")
            }
            let view = view::<T>(storage, layout)?;
            if *len.get_or_insert(view.len()) != view.len() {
                candle_core::bail!(
                    "fused Adam: moments or gradient of another size than the parameter"
                )
            }
            let (ptr, used) = view.view_ptr(&stream);
            *address = ptr;
            uses.push(used);
        }
        let len = len.unwrap_or(0);
        if len == 0 {
            continue;
        }
        let k = args.count as usize;
        [args.p[k], args.g[k], args.m[k], args.v[k]] = addresses;
        args.n[k] = len as i64;
        args.first_block[k] = blocks as i32;
        blocks += len.div_ceil(ADAM_BLOCK_ELEMENTS);
        args.count += 1;
    }
    if args.count == 0 {
        return Ok(());
    }
    args.first_block[args.count as usize] = i32::try_from(blocks).map_err(|_| {
        candle_core::Error::Msg("fused Adam: too many elements for one launch".into())
    })?;
    let func = kernel(dev, "adam_step_multi", suffix)?;
    let mut b = func.builder();
    let inv_bias_correction2_sqrt = 1.0 / step.bias_correction2_sqrt;
    b.arg(&args)
        .arg(&step.beta1)
        .arg(&step.beta2)
        .arg(&inv_bias_correction2_sqrt)
        .arg(&step.eps)
        .arg(&step.step_size);
    let config = LaunchConfig {
        grid_dim: (blocks as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the argument list matches the kernel's signature, `AdamTensors` its struct. The
    // addresses are the contiguous elements of the tensors locked in `locked`, `len` each; the
    // kernel writes the parameters and moments through them on the device's stream, which
    // orders the write after every earlier use of the buffers and before every later one (a
    // buffer freed later is freed in stream order), like any in-place op of candle's.
    unsafe { b.launch(config) }.w()?;
    drop(uses);
    Ok(())
}
