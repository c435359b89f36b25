//! Reflection, replication and zero padding of the last two dimensions in one pass.
//!
//! The stock path gathers columns then rows with two `index_select`s, and its backward
//! scatters twice through `index_add`. Here each `(n, c)` plane is copied row by row (the
//! interior with one `memcpy`), and the backward pass adds every padded row back onto its
//! source row, the border columns included.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, dispatch_float, Float};
use crate::ops::reference::pad_indices;
use crate::padding::PaddingType;

/// `pad2d(x, pad, mode)` for `x` `[.., h, w]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pad2d {
    pub pad: usize,
    pub mode: PaddingType,
}

/// The source index of every padded position along an axis of `len`, `None` for zeros.
pub(super) fn sources(len: usize, pad: usize, mode: PaddingType) -> Vec<Option<usize>> {
    match mode {
        PaddingType::Zero => (0..len + 2 * pad)
            .map(|i| (pad..pad + len).contains(&i).then(|| i - pad))
            .collect(),
        _ => pad_indices(len, pad, mode)
            .into_iter()
            .map(|i| Some(i as usize))
            .collect(),
    }
}

/// Fills the border columns of a padded row whose interior `out[pad..len - pad]` is written:
/// from the interior columns `cols` names as their sources, zeros where it names none.
pub(super) fn fill_row_borders<T: Float>(out: &mut [T], cols: &[Option<usize>], pad: usize) {
    let ow = out.len();
    for j in (0..pad).chain(ow - pad..ow) {
        out[j] = cols[j].map_or(T::zero(), |c| out[pad + c]);
    }
}

impl Pad2d {
    /// Whether the op handles `dims`: at least 2-d, and reflection narrower than each side.
    pub fn supports(&self, dims: &[usize]) -> bool {
        let [.., h, w] = dims else { return false };
        self.mode != PaddingType::Reflect || (self.pad < *h && self.pad < *w)
    }

    pub(super) fn hw(layout: &Layout) -> Result<(usize, usize)> {
        match layout.dims() {
            [.., h, w] => Ok((*h, *w)),
            dims => candle_core::bail!("pad2d needs at least 2 dimensions, got {dims:?}"),
        }
    }

    /// The padded dimensions of an input of `dims` (at least 2-d).
    pub(crate) fn out_dims(&self, dims: &[usize]) -> Vec<usize> {
        let mut dims = dims.to_vec();
        let rank = dims.len();
        dims[rank - 2] += 2 * self.pad;
        dims[rank - 1] += 2 * self.pad;
        dims
    }

    pub(super) fn out_shape(&self, layout: &Layout) -> Shape {
        self.out_dims(layout.dims()).into()
    }
}

fn pad_forward<T: Float>(op: &Pad2d, x: &CpuStorage, xl: &Layout) -> Result<Vec<T>> {
    let x = contiguous::<T>(x, xl)?;
    let (h, w) = Pad2d::hw(xl)?;
    let p = op.pad;
    let (rows, cols) = (sources(h, p, op.mode), sources(w, p, op.mode));
    let (oh, ow) = (h + 2 * p, w + 2 * p);
    let mut y = vec![T::zero(); x.len() / (h * w).max(1) * oh * ow];
    y.par_chunks_mut(oh * ow)
        .zip(x.par_chunks(h * w))
        .for_each(|(y, x)| {
            for (out, src) in y.chunks_exact_mut(ow).zip(&rows) {
                let Some(r) = *src else { continue };
                out[p..p + w].copy_from_slice(&x[r * w..][..w]);
                fill_row_borders(out, &cols, p);
            }
        });
    Ok(y)
}

impl CustomOp1 for Pad2d {
    fn name(&self) -> &'static str {
        "fast-pad2d"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = dispatch_float!(x, pad_forward(self, x, xl))?;
        Ok((y, self.out_shape(xl)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let y = crate::ops::cuda::pad2d_forward(x, xl, self.pad, self.mode)?;
        Ok((y, self.out_shape(xl)))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let (h, w) = Pad2d::hw(x.layout())?;
        grad.apply_op1_no_bwd(&Pad2dBackward { pad: *self, h, w })
            .map(Some)
    }
}

/// The input gradient of a [`Pad2d`] of an `[.., h, w]` input, from the output gradient.
pub(crate) struct Pad2dBackward {
    pub pad: Pad2d,
    pub h: usize,
    pub w: usize,
}

impl Pad2dBackward {
    /// The input's shape, from the output gradient's layout.
    fn in_shape(&self, gl: &Layout) -> Shape {
        let mut dims = gl.dims().to_vec();
        let rank = dims.len();
        dims[rank - 2] = self.h;
        dims[rank - 1] = self.w;
        dims.into()
    }
}

fn pad_backward<T: Float>(op: &Pad2dBackward, g: &CpuStorage, gl: &Layout) -> Result<Vec<T>> {
    let g = contiguous::<T>(g, gl)?;
    let (h, w, p) = (op.h, op.w, op.pad.pad);
    let (rows, cols) = (sources(h, p, op.pad.mode), sources(w, p, op.pad.mode));
    let (oh, ow) = (h + 2 * p, w + 2 * p);
    let mut dx = vec![T::zero(); g.len() / (oh * ow).max(1) * h * w];
    dx.par_chunks_mut(h * w)
        .zip(g.par_chunks(oh * ow))
        .for_each(|(dx, g)| {
            for (grow, src) in g.chunks_exact(ow).zip(&rows) {
                let Some(r) = *src else { continue };
                let dst = &mut dx[r * w..][..w];
                for (d, &v) in dst.iter_mut().zip(&grow[p..p + w]) {
                    *d += v;
                }
                for j in (0..p).chain(p + w..ow) {
                    if let Some(c) = cols[j] {
                        dst[c] += grow[j];
                    }
                }
            }
        });
    Ok(dx)
}

impl CustomOp1 for Pad2dBackward {
    fn name(&self) -> &'static str {
        "fast-pad2d-backward"
    }

    fn cpu_fwd(&self, g: &CpuStorage, gl: &Layout) -> Result<(CpuStorage, Shape)> {
        let dx = dispatch_float!(g, pad_backward(self, g, gl))?;
        Ok((dx, self.in_shape(gl)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let (pad, mode) = (self.pad.pad, self.pad.mode);
        let dx = crate::ops::cuda::pad2d_backward(g, gl, (self.h, self.w), pad, mode)?;
        Ok((dx, self.in_shape(gl)))
    }
}
