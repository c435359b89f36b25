//! Affine-free instance normalisation fused with the activation that follows it.
//!
//! The stock composition makes about ten passes over the tensor (mean, centring, square, mean,
//! sqrt, divide, activation) and as many again backward. Here each `(n, c)` plane is one task:
//! two reads for the statistics, one write, and the plane stays in the L2 cache in between.
//! The backward pass recomputes the statistics from the input instead of saving them.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::activation::{with_act, Act};
use super::pad::{fill_row_borders, sources, Pad2d, Pad2dBackward};
use super::{contiguous, dispatch_float, Float};
use crate::ops::Activation;

/// Independent partial sums, so that the reductions vectorise.
const LANES: usize = 8;

/// Elements summed in the element type before the partial sum moves to `f64`: short enough
/// that `f32` loses nothing that matters, long enough to amortise the conversion.
const CHUNK: usize = 256;

/// `sum f(a_i, b_i)`: lane-wise in `T` within chunks (a loop of plain arithmetic, which the
/// compiler vectorises; converting every element to `f64` defeats that), then in `f64`.
fn sum_pairs<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T) -> f64 {
    let mut total = 0.0f64;
    for (a, b) in a.chunks(CHUNK).zip(b.chunks(CHUNK)) {
        let mut acc = [T::zero(); LANES];
        let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
        for (&a, &b) in ca.remainder().iter().zip(cb.remainder()) {
            acc[0] += f(a, b);
        }
        for (ca, cb) in ca.zip(cb) {
            for i in 0..LANES {
                acc[i] += f(ca[i], cb[i]);
            }
        }
        total += acc.iter().map(|v| v.to_f64()).sum::<f64>();
    }
    total
}

/// `sum f(x_i)`, as [`sum_pairs`].
fn sum<T: Float>(xs: &[T], f: impl Fn(T) -> T) -> f64 {
    sum_pairs(xs, xs, |x, _| f(x))
}

/// Mean and `1 / sqrt(var + eps)` (biased variance) of one plane, in two passes.
fn moments<T: Float>(plane: &[T], eps: f64) -> (T, T) {
    let len = plane.len() as f64;
    let mean = T::from_f64(sum(plane, |x| x) / len);
    let var = sum(plane, |x| (x - mean) * (x - mean)) / len;
    (mean, T::from_f64(1.0 / (var + eps).sqrt()))
}

/// One plane of the forward pass.
fn forward_plane<T: Float>(act: impl Act<T>, eps: f64, x: &[T], y: &mut [T]) {
    let (mean, rstd) = moments(x, eps);
    for (y, &x) in y.iter_mut().zip(x) {
        *y = act.f((x - mean) * rstd);
    }
}

/// One plane `x` `[h, w]` of the forward pass followed by padding (`rows`, `cols`: the source
/// of every padded row and column, `None` for zeros): each padded row is normalised from its
/// source row, its border columns copied from its own interior. `y` starts zeroed.
fn forward_plane_padded<T: Float>(
    act: impl Act<T>,
    eps: f64,
    (x, w): (&[T], usize),
    (rows, cols): (&[Option<usize>], &[Option<usize>]),
    y: &mut [T],
) {
    let (mean, rstd) = moments(x, eps);
    let ow = cols.len();
    let pad = (ow - w) / 2;
    for (out, src) in y.chunks_exact_mut(ow).zip(rows) {
        let Some(r) = *src else { continue };
        for (o, &x) in out[pad..pad + w].iter_mut().zip(&x[r * w..][..w]) {
            *o = act.f((x - mean) * rstd);
        }
        fill_row_borders(out, cols, pad);
    }
}

/// One plane of the backward pass: with `dz = dy * act'(z)`,
/// `dx = rstd * (dz - mean(dz) - z * mean(dz * z))`.
fn backward_plane<T: Float>(act: impl Act<T>, eps: f64, x: &[T], dy: &[T], dx: &mut [T]) {
    let (mean, rstd) = moments(x, eps);
    // dx holds dz between the passes; each pass is plain arithmetic, so it vectorises.
    for ((d, &x), &dy) in dx.iter_mut().zip(x).zip(dy) {
        *d = act.grad((x - mean) * rstd, dy);
    }
    let len = x.len() as f64;
    let mean_dz = T::from_f64(sum(dx, |d| d) / len);
    let mean_dz_z = T::from_f64(sum_pairs(dx, x, |d, x| d * ((x - mean) * rstd)) / len);
    for (d, &x) in dx.iter_mut().zip(x) {
        let z = (x - mean) * rstd;
        *d = rstd * (*d - mean_dz - z * mean_dz_z);
    }
}

/// `activation(instance_norm(x))` over the last two dimensions of `x` `[n, c, h, w]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InstanceNorm {
    pub eps: f64,
    pub activation: Activation,
}

impl InstanceNorm {
    fn plane(layout: &Layout) -> Result<usize> {
        let (_, _, h, w) = layout.shape().dims4()?;
        Ok(h * w)
    }
}

fn instance_norm_forward<T: Float>(
    op: &InstanceNorm,
    x: &CpuStorage,
    xl: &Layout,
) -> Result<Vec<T>> {
    let x = contiguous::<T>(x, xl)?;
    let plane = InstanceNorm::plane(xl)?;
    let mut y = vec![T::zero(); x.len()];
    let planes = y.par_chunks_mut(plane).zip(x.par_chunks(plane));
    with_act!(op.activation, T, |act| planes
        .for_each(|(y, x)| forward_plane(act, op.eps, x, y)));
    Ok(y)
}

/// `pad(activation(instance_norm(x)))` in one pass over each plane, without the unpadded
/// intermediate: the same numbers as the two ops in turn.
pub(crate) fn instance_norm_pad_forward(
    norm: &InstanceNorm,
    pad: &Pad2d,
    x: &CpuStorage,
    xl: &Layout,
) -> Result<(CpuStorage, Shape)> {
    fn run<T: Float>(
        norm: &InstanceNorm,
        pad: &Pad2d,
        x: &CpuStorage,
        xl: &Layout,
    ) -> Result<Vec<T>> {
        let x = contiguous::<T>(x, xl)?;
        let (h, w) = Pad2d::hw(xl)?;
        let (rows, cols) = (sources(h, pad.pad, pad.mode), sources(w, pad.pad, pad.mode));
        let out_plane = rows.len() * cols.len();
        let mut y = vec![T::zero(); x.len() / (h * w).max(1) * out_plane];
        let planes = y.par_chunks_mut(out_plane).zip(x.par_chunks(h * w));
        with_act!(norm.activation, T, |act| planes.for_each(|(y, x)| {
            forward_plane_padded(act, norm.eps, (x, w), (&rows, &cols), y)
        }));
        Ok(y)
    }
    let y = dispatch_float!(x, run(norm, pad, x, xl))?;
    Ok((y, pad.out_shape(xl)))
}

impl CustomOp1 for InstanceNorm {
    fn name(&self) -> &'static str {
        "fast-instance-norm"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = dispatch_float!(x, instance_norm_forward(self, x, xl))?;
        Ok((y, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (eps, act) = (self.eps, self.activation);
        let y = crate::ops::cuda::instance_norm_forward((x, xl), eps, act, None, false)?;
        Ok((y, xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let op = InstanceNormBackward {
            norm: *self,
            pad: None,
        };
        x.apply_op2_no_bwd(&grad, &op).map(Some)
    }
}

/// The input gradient of an [`InstanceNorm`], from `(x, grad)`; with `pad`, that of the norm
/// followed by the padding, from the padded output's gradient (on the CPU the padding's backward
/// pass, then the norm's; on CUDA one kernel).
pub(crate) struct InstanceNormBackward {
    pub norm: InstanceNorm,
    pub pad: Option<Pad2d>,
}

fn instance_norm_backward<T: Float>(
    op: &InstanceNorm,
    (x, xl): (&CpuStorage, &Layout),
    (g, gl): (&CpuStorage, &Layout),
) -> Result<Vec<T>> {
    let (x, g) = (contiguous::<T>(x, xl)?, contiguous::<T>(g, gl)?);
    let plane = InstanceNorm::plane(xl)?;
    let mut dx = vec![T::zero(); x.len()];
    let planes = dx
        .par_chunks_mut(plane)
        .zip(x.par_chunks(plane).zip(g.par_chunks(plane)));
    with_act!(op.activation, T, |act| planes
        .for_each(|(dx, (x, dy))| backward_plane(act, op.eps, x, dy, dx)));
    Ok(dx)
}

impl CustomOp2 for InstanceNormBackward {
    fn name(&self) -> &'static str {
        "fast-instance-norm-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let dx = match self.pad {
            Some(pad) => {
                let (h, w) = Pad2d::hw(xl)?;
                let (dy, shape) = Pad2dBackward { pad, h, w }.cpu_fwd(g, gl)?;
                let dyl = Layout::contiguous(shape);
                dispatch_float!(x, instance_norm_backward(&self.norm, (x, xl), (&dy, &dyl)))?
            }
            None => dispatch_float!(x, instance_norm_backward(&self.norm, (x, xl), (g, gl)))?,
        };
        Ok((dx, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (eps, act) = (self.norm.eps, self.norm.activation);
        let padding = self.pad.map(|p| (p.pad, p.mode));
        let norm = (eps, act);
        let dx = crate::ops::cuda::instance_norm_backward((x, xl), (g, gl), norm, padding, false)?;
        Ok((dx, xl.shape().clone()))
    }
}
