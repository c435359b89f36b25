//! Fast CPU kernels behind the public operations of [`super`], as candle custom ops.
//!
//! candle's stock CPU backward passes are shaped badly for CycleGAN's layers (the weight gradient
//! is a convolution with the batch as channels, the transposed convolution a direct loop), so
//! these kernels recast every convolution pass as a few large GEMMs ([`conv`]; the residual
//! blocks' 3x3 convolutions by Winograd's minimal filtering, [`winograd`]) and fuse the
//! elementwise layers into single passes over each `(n, c)` plane ([`norm`], [`pad`]) or over the
//! whole tensor ([`activation`]).
//!
//! The kernels are generic over [`Float`] (`f32`, `f64`) and read contiguous inputs only: the
//! public functions make their arguments contiguous before applying an op. The norm, padding and
//! activation ops also run on CUDA devices: their `cuda_fwd` calls the kernels of `super::cuda`.

pub(crate) mod activation;
pub(crate) mod adam;
pub(crate) mod conv;
mod gemm;
pub(crate) mod norm;
pub(crate) mod pad;
mod scratch;
pub(crate) mod winograd;

use candle_core::{CpuStorage, Layout, Result, WithDType};

/// The element types of the fast kernels.
pub(crate) trait Float: WithDType + Default + std::fmt::Debug {
    fn tanh(self) -> Self;
    fn sqrt(self) -> Self;
    /// The calling thread's pool of scratch buffers of this type.
    fn pool() -> &'static scratch::Pool<Self>;
}

impl Float for f32 {
    fn tanh(self) -> Self {
        f32::tanh(self)
    }
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    fn pool() -> &'static scratch::Pool<Self> {
        &scratch::POOL_F32
    }
}

impl Float for f64 {
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn pool() -> &'static scratch::Pool<Self> {
        &scratch::POOL_F64
    }
}

/// The elements of a contiguous tensor argument of a custom op.
fn contiguous<'a, T: Float>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [T]> {
    Ok(&storage.as_slice::<T>()?[super::contiguous_range(layout)?])
}

/// Calls `$f::<T>` with `T` the element type of `$storage` (`f32` or `f64`), and wraps the
/// returned `Vec<T>` back into a `CpuStorage`.
macro_rules! dispatch_float {
    ($storage:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => {
                $f::<f32>($($arg),*).map(candle_core::CpuStorage::F32)
            }
            candle_core::CpuStorage::F64(_) => {
                $f::<f64>($($arg),*).map(candle_core::CpuStorage::F64)
            }
            other => {
                use candle_core::backend::BackendStorage;
                candle_core::bail!("fast CPU kernels take f32 or f64, got {:?}", other.dtype())
            }
        }
    };
}
pub(crate) use dispatch_float;

/// Threads the kernels may use: candle's own thread count, so that GEMMs and plane loops never
/// oversubscribe the cores candle's ops use. Asked once: candle works it out by reading
/// `/proc/cpuinfo` unless `RAYON_NUM_THREADS` is set (see [`super::configure_threads`]).
fn num_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| candle_core::utils::get_num_threads().max(1))
}
