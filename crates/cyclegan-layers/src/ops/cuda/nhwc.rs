//! Launchers of the channels-last kernels (`*_nhwc` in `kernels.cu`): padding, instance norm
//! with its activation, padding and residual, forward and backward, and a convolution's channel
//! bias, on contiguous NHWC tensors `[n, h, w, c]` (padded: `[n, h + 2 pad, w + 2 pad, c]`).
//!
//! The norm kernels work on tiles of [`TILE`] positions by 32 channels, so that a warp reads 32
//! consecutive channels of a position (coalesced): each tile's statistics, combined per `(n, c)`
//! plane by a small kernel (a warp a plane), then the normalisation. The backward pass sums each tile's gradient
//! terms the same way. Every sum runs in a fixed order: the same result at every run.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, DeviceRepr, LaunchConfig, PushKernelArg,
};
use candle_core::cuda_backend::{CudaDType, CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout, Result};

use super::{activation_code, kernel, output, pad_mode, view, NormKernels, NormPass, Operand};
use super::{MAX_PAD, THREADS};
use crate::ops::Activation;
use crate::padding::PaddingType;

/// Positions per tile of the norm kernels (`NORM_NHWC_TILE` in `kernels.cu`): 8 rows of a block's
/// 256 threads, 16 positions each.
const TILE: usize = 128;

/// Channels per block of the norm and bias-gradient kernels: one per lane of a warp.
const CHANNELS_PER_BLOCK: usize = 32;

/// Rows of the bias gradient that one block sums per channel, when a tensor has more.
#[cfg(feature = "cudnn")]
const BIAS_GRAD_ROWS: usize = 2048;

/// The dimensions `[n, h, w, c]` of a channels-last tensor.
fn nhwc(dims: &[usize], what: &str) -> Result<[usize; 4]> {
    dims.try_into()
        .map_err(|_| candle_core::Error::Msg(format!("{what} needs [n, h, w, c], got {dims:?}")))
}

/// Runs padding kernel `pad2d_forward_nhwc` (`forward`) or `pad2d_backward_nhwc` of images
/// `[n, h, w, c]` (`dims`) padded by `pad` from contiguous `src` into fresh elements: forward
/// over the padded rows, backward over the unpadded ones.
fn pad_kernel(
    forward: bool,
    (src, layout): Operand,
    [n, h, w, c]: [usize; 4],
    pad: usize,
    mode: PaddingType,
) -> Result<CudaStorage> {
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        (forward, src, layout): (bool, &CudaStorage, &Layout),
        [n, h, w, c]: [usize; 4],
        (pad, mode): (usize, PaddingType),
    ) -> Result<CudaSlice<T>> {
        let dev = &src.device;
        let src = view::<T>(src, layout)?;
        let (oh, ow) = (h + 2 * pad, w + 2 * pad);
        let (name, rows, row_len, total) = if forward {
            ("pad2d_forward_nhwc", n * oh, ow * c, n * oh * ow * c)
        } else {
            ("pad2d_backward_nhwc", n * h, w * c, n * h * w * c)
        };
        let mut dst = output::<T>(dev, total)?;
        let func = kernel(dev, name, suffix)?;
        let images = n as i64;
        let [h, w, c, pad] = [h, w, c, pad].map(|v| v as i32);
        let mode = pad_mode(mode);
        let mut b = func.builder();
        b.arg(&src)
            .arg(&mut dst)
            .arg(&images)
            .arg(&h)
            .arg(&w)
            .arg(&c)
            .arg(&pad)
            .arg(&mode);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { b.launch(super::plane_grid(rows, row_len)) }.w()?;
        Ok(dst)
    }
    dispatch_float!(src, run((forward, src, layout), [n, h, w, c], (pad, mode)))
}

/// `[n, h, w, c]` padded by `pad` on every side of each image.
pub(crate) fn pad2d_forward(
    x: &CudaStorage,
    xl: &Layout,
    pad: usize,
    mode: PaddingType,
) -> Result<CudaStorage> {
    let dims = nhwc(xl.dims(), "channels-last padding")?;
    pad_kernel(true, (x, xl), dims, pad, mode)
}

/// The input gradient of [`pad2d_forward`] for an `[n, h, w, c]` input, from the padded output's
/// gradient.
pub(crate) fn pad2d_backward(
    g: &CudaStorage,
    gl: &Layout,
    (h, w): (usize, usize),
    pad: usize,
    mode: PaddingType,
) -> Result<CudaStorage> {
    let [n, oh, ow, c] = nhwc(gl.dims(), "channels-last padding backward")?;
    if oh != h + 2 * pad || ow != w + 2 * pad {
        candle_core::bail!("channels-last padding backward: gradient {oh}x{ow} for {h}x{w} + {pad}")
    }
    pad_kernel(false, (g, gl), [n, h, w, c], pad, mode)
}

/// The geometry of a channels-last instance norm: `images` of `h x w` positions by `c` channels,
/// written padded by `pad` in `mode` (`pad` 0: unpadded).
#[derive(Clone, Copy)]
pub(super) struct NormGeometry {
    images: usize,
    h: usize,
    w: usize,
    c: usize,
    pad: usize,
    mode: PaddingType,
    eps: f64,
    activation: Activation,
}

impl NormGeometry {
    fn tiles(&self) -> usize {
        (self.h * self.w).div_ceil(TILE)
    }

    fn planes(&self) -> usize {
        self.images * self.c
    }

    /// The per-tile kernels' launch: tiles along x, groups of 32 channels along y, images along z.
    fn tile_grid(&self) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                self.tiles().max(1) as u32,
                self.c.div_ceil(CHANNELS_PER_BLOCK).max(1) as u32,
                self.images.max(1) as u32,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// The finalize kernels' launch: a warp per plane, eight a block (they stride past 65 535
    /// blocks).
    fn finalize_grid(&self) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                self.planes()
                    .div_ceil(THREADS as usize / 32)
                    .clamp(1, 65_535) as u32,
                1,
                1,
            ),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }
}

impl NormKernels for NormGeometry {
    fn new(
        x_dims: &[usize],
        eps: f64,
        activation: Activation,
        padding: Option<(usize, PaddingType)>,
    ) -> Result<Self> {
        let [images, h, w, c] = nhwc(x_dims, "channels-last instance norm")?;
        if images * h * w * c == 0 {
            candle_core::bail!("channels-last instance norm of an empty tensor {x_dims:?}")
        }
        let (pad, mode) = padding.unwrap_or((0, PaddingType::Zero));
        if pad > MAX_PAD {
            candle_core::bail!("instance norm: padding {pad} exceeds the CUDA kernels' {MAX_PAD}")
        }
        let tiles = (h * w).div_ceil(TILE);
        if tiles > i32::MAX as usize
            || c.div_ceil(CHANNELS_PER_BLOCK) > 65_535
            || images > 65_535
            || (h + 2 * pad) * (w + 2 * pad) > i32::MAX as usize
        {
            candle_core::bail!(
                "instance norm: {images} images of {h}x{w}x{c} exceed the CUDA kernels' grid"
            )
        }
        Ok(Self {
            images,
            h,
            w,
            c,
            pad,
            mode,
            eps,
            activation,
        })
    }

    fn padded_len(&self) -> usize {
        self.images * (self.h + 2 * self.pad) * (self.w + 2 * self.pad) * self.c
    }

    fn pad(&self) -> usize {
        self.pad
    }

    /// Runs the norm kernels of `pass` in the inputs' type on `x` and `second` (the residual, or
    /// the padded output's gradient; contiguous) into a fresh output of `out_len` elements: the
    /// tiles' statistics and their combination per plane first and, for the backward pass, the
    /// tiles' gradient sums and theirs.
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
            let g = geometry;
            let grid = g.tile_grid();
            let (planes, tiles) = (g.planes() as i64, g.tiles() as i32);
            let [h, w, c, pad] = [g.h, g.w, g.c, g.pad].map(|v| v as i32);
            let (hw, mode) = (h * w, pad_mode(g.mode));
            let (act, slope) = activation_code(g.activation);
            let finish = g.finalize_grid();

            // Each tile's mean and squared deviations, then each plane's mean and 1 / std.
            let mut partial = output::<f64>(dev, g.planes() * g.tiles() * 2)?;
            {
                let func = kernel(dev, "instance_norm_nhwc_stats", suffix)?;
                let mut b = func.builder();
                b.arg(&x).arg(&mut partial).arg(&hw).arg(&c);
                // SAFETY: the argument list matches the kernel's signature; `partial` has two
                // slots per plane and tile.
                unsafe { b.launch(grid) }.w()?;
            }
            let mut stats = output::<f64>(dev, g.planes() * 2)?;
            {
                let func = kernel(dev, "instance_norm_nhwc_finalize", suffix)?;
                let mut b = func.builder();
                b.arg(&partial).arg(&mut stats).arg(&planes).arg(&tiles);
                b.arg(&hw).arg(&g.eps);
                // SAFETY: as above; `stats` has two slots per plane.
                unsafe { b.launch(finish) }.w()?;
            }
            let mut out = output::<T>(dev, out_len)?;
            match (pass, &second) {
                (NormPass::Forward, _) => {
                    let func = kernel(dev, "instance_norm_nhwc_forward", suffix)?;
                    let mut b = func.builder();
                    b.arg(&x).arg(&mut out).arg(&stats);
                    b.arg(&h).arg(&w).arg(&c).arg(&pad).arg(&mode);
                    b.arg(&act).arg(&slope);
                    // SAFETY: the argument list matches the kernel's signature.
                    unsafe { b.launch(grid) }.w()?;
                }
                (NormPass::AddForward, Some(residual)) => {
                    let func = kernel(dev, "instance_norm_nhwc_add_forward", suffix)?;
                    let mut b = func.builder();
                    b.arg(&x).arg(residual).arg(&mut out).arg(&stats);
                    b.arg(&h).arg(&w).arg(&c).arg(&pad).arg(&mode);
                    b.arg(&act).arg(&slope);
                    // SAFETY: as above; the residual has the output's shape.
                    unsafe { b.launch(grid) }.w()?;
                }
                (NormPass::Backward, Some(grad)) => {
                    // Each tile's sums of the gradient terms (into `partial`, free again), then
                    // each plane's.
                    {
                        let func = kernel(dev, "instance_norm_nhwc_backward_sums", suffix)?;
                        let mut b = func.builder();
                        b.arg(&x).arg(grad).arg(&stats).arg(&mut partial);
                        b.arg(&h).arg(&w).arg(&c).arg(&pad).arg(&mode);
                        b.arg(&act).arg(&slope);
                        // SAFETY: the argument list matches the kernel's signature.
                        unsafe { b.launch(grid) }.w()?;
                    }
                    let mut sums = output::<f64>(dev, g.planes() * 2)?;
                    {
                        let func = kernel(dev, "instance_norm_nhwc_backward_finalize", suffix)?;
                        let mut b = func.builder();
                        b.arg(&partial).arg(&mut sums).arg(&planes).arg(&tiles);
                        // SAFETY: as above.
                        unsafe { b.launch(finish) }.w()?;
                    }
                    let func = kernel(dev, "instance_norm_nhwc_backward", suffix)?;
                    let mut b = func.builder();
                    b.arg(&x).arg(grad).arg(&mut out).arg(&stats).arg(&sums);
                    b.arg(&h).arg(&w).arg(&c).arg(&pad).arg(&mode);
                    b.arg(&act).arg(&slope);
                    // SAFETY: as above.
                    unsafe { b.launch(grid) }.w()?;
                }
                _ => candle_core::bail!("channels-last instance norm: a second operand is missing"),
            }
            Ok(out)
        }
        dispatch_float!(x.0, typed(self, (pass, x, second, out_len)))
    }
}

#[cfg(feature = "cudnn")]
/// Adds `b` `[c]` in place to every position of `y`, a fresh contiguous `[n, h, w, c]` output
/// (the cuDNN convolutions' bias).
pub(crate) fn add_channel_bias_in_place(
    y: &mut CudaStorage,
    channels: usize,
    (b, bl): Operand,
) -> Result<()> {
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        dev: &candle_core::cuda_backend::CudaDevice,
        y: &mut CudaSlice<T>,
        b: candle_core::cuda_backend::cudarc::driver::CudaView<T>,
        c: usize,
    ) -> Result<()> {
        let total = y.len();
        if b.len() != c || !total.is_multiple_of(c.max(1)) {
            candle_core::bail!("channel bias of {} for {c} channels of {total}", b.len())
        }
        let func = kernel(dev, "channel_bias_add_nhwc", suffix)?;
        let (total64, c32) = (total as i64, c as i32);
        let mut builder = func.builder();
        builder.arg(y).arg(&b).arg(&total64).arg(&c32);
        // SAFETY: the argument list matches the kernel's signature.
        unsafe { builder.launch(super::elementwise(total)) }.w()?;
        Ok(())
    }
    dispatch_in_place!("channel bias", y, b, run(view(b, bl)?, channels))
}

#[cfg(feature = "cudnn")]
/// The gradient of a channel bias: `g` `[n, h, w, c]` summed over all but `c`, in `f64`, by
/// blocks of [`BIAS_GRAD_ROWS`] positions whose sums a second kernel adds in order.
pub(crate) fn channel_bias_grad(g: &CudaStorage, gl: &Layout) -> Result<CudaStorage> {
    let [n, h, w, c] = nhwc(gl.dims(), "channels-last bias gradient")?;
    fn run<T: CudaDType + DeviceRepr>(
        suffix: &'static str,
        g: &CudaStorage,
        gl: &Layout,
        (rows, c): (usize, usize),
    ) -> Result<CudaSlice<T>> {
        let dev = &g.device;
        let g = view::<T>(g, gl)?;
        let mut db = output::<T>(dev, c)?;
        let chunks = rows.div_ceil(BIAS_GRAD_ROWS).max(1);
        let groups = c.div_ceil(CHANNELS_PER_BLOCK);
        if chunks > i32::MAX as usize || groups > 65_535 {
            candle_core::bail!("channels-last bias gradient: {rows} rows of {c} exceed the grid")
        }
        let mut partial = (chunks > 1)
            .then(|| output::<f64>(dev, c * chunks))
            .transpose()?;
        let func = kernel(dev, "channel_bias_grad_nhwc", suffix)?;
        let (rows64, c32, chunk32) = (rows as i64, c as i32, BIAS_GRAD_ROWS as i32);
        let null = 0u64;
        let mut builder = func.builder();
        builder.arg(&g).arg(&mut db);
        match &mut partial {
            Some(partial) => builder.arg(partial),
            None => builder.arg(&null),
        };
        builder.arg(&rows64).arg(&c32).arg(&chunk32);
        let config = LaunchConfig {
            grid_dim: (chunks as u32, groups as u32, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument list matches the kernel's signature; `partial` (null for one
        // chunk, which the kernel then leaves alone) has a slot for each block and channel.
        unsafe { builder.launch(config) }.w()?;
        if let Some(partial) = partial {
            super::finish_bias_grad(dev, suffix, &partial, &mut db, chunks)?;
        }
        Ok(db)
    }
    dispatch_float!(g, run(g, gl, (n * h * w, c)))
}
