//! Adam's update of one parameter on the CPU as two in-place ops: the moments (`m`, then `v`),
//! then the parameter. The unfused version makes about fourteen passes and allocations per
//! parameter; these make three. They compute exactly what the unfused candle operations
//! compute, rounding included: the same operations in the same order (products by the constants
//! rounded separately, a product by `1 / sqrt(1 - beta2^t)`). On CUDA one kernel updates many
//! parameters at once with the same operations (`adam_step_multi` in `ops/cuda/kernels.cu`).

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result};
use rayon::prelude::*;

use super::Float;
use crate::ops::contiguous_range as range;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `m = m * beta + g * (1 - beta)`, or with `g * g` when `square` (Adam's second moment).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Moment {
    pub beta: f64,
    pub square: bool,
}

/// `p = p - (m / (sqrt(v) * (1 / bias_correction2_sqrt) + eps)) * step_size`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Apply {
    pub inv_bias_correction2_sqrt: f64,
    pub eps: f64,
    pub step_size: f64,
}

fn moment<T: Float>(op: &Moment, m: &mut [T], g: &[T]) -> Result<()> {
    if m.len() != g.len() {
        candle_core::bail!("fused Adam: {} moments for {} gradients", m.len(), g.len())
    }
    let (b, c) = (T::from_f64(op.beta), T::from_f64(1.0 - op.beta));
    m.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .for_each(|(m, g)| {
            for (m, &g) in m.iter_mut().zip(g) {
                let g = if op.square { g * g } else { g };
                *m = *m * b + g * c;
            }
        });
    Ok(())
}

fn apply<T: Float>(op: &Apply, p: &mut [T], m: &[T], v: &[T]) -> Result<()> {
    if p.len() != m.len() || p.len() != v.len() {
        candle_core::bail!("fused Adam: moments of another size than the parameter")
    }
    let r = T::from_f64(op.inv_bias_correction2_sqrt);
    let (eps, step) = (T::from_f64(op.eps), T::from_f64(op.step_size));
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
        .for_each(|(p, (m, v))| {
            for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                let denom = v.sqrt() * r + eps;
                *p -= (m / denom) * step;
            }
        });
    Ok(())
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "fused-adam-moment"
    }

    fn cpu_fwd(&self, m: &mut CpuStorage, ml: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        let (mr, gr) = (range(ml)?, range(gl)?);
        match (m, g) {
            (CpuStorage::F32(m), CpuStorage::F32(g)) => moment(self, &mut m[mr], &g[gr]),
            (CpuStorage::F64(m), CpuStorage::F64(g)) => moment(self, &mut m[mr], &g[gr]),
            _ => candle_core::bail!("fused Adam takes f32 or f64 tensors of one type"),
        }
    }
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "fused-adam-apply"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let (pr, mr, vr) = (range(pl)?, range(ml)?, range(vl)?);
        match (p, m, v) {
            (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) => {
                apply(self, &mut p[pr], &m[mr], &v[vr])
            }
            (CpuStorage::F64(p), CpuStorage::F64(m), CpuStorage::F64(v)) => {
                apply(self, &mut p[pr], &m[mr], &v[vr])
            }
            _ => candle_core::bail!("fused Adam takes f32 or f64 tensors of one type"),
        }
    }
}
