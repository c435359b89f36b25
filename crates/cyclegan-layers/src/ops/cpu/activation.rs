//! Pointwise activations (identity, ReLU, LeakyReLU, tanh) with their derivatives, for the fused
//! norm kernels ([`super::norm`]) and as one op each way on their own ([`Activate`]): the stock
//! LeakyReLU takes five passes and two full-size temporaries forward (a comparison, a type
//! conversion, two affine maps, a product), and ReLU's and tanh's backward passes three or four.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{contiguous, dispatch_float, Float};
use crate::ops::Activation;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// An activation with its derivative, one type per variant so that the per-element loops are
/// monomorphised, branch-free and vectorised (a `match` inside them defeats all three).
pub(super) trait Act<T: Float>: Copy + Send + Sync {
    /// The activation of `z` (a normalised value, in the norm kernels).
    fn f(self, z: T) -> T;
    /// `dy * f'(z)`, with PyTorch's convention at 0: (Leaky)ReLU takes the negative side.
    fn grad(self, z: T, dy: T) -> T;
}

#[derive(Clone, Copy)]
pub(super) struct Identity;
#[derive(Clone, Copy)]
pub(super) struct Relu;
#[derive(Clone, Copy)]
pub(super) struct LeakyRelu<T>(pub T);
#[derive(Clone, Copy)]
pub(super) struct Tanh;

impl<T: Float> Act<T> for Identity {
    #[inline(always)]
    fn f(self, z: T) -> T {
        z
    }
    #[inline(always)]
    fn grad(self, _: T, dy: T) -> T {
        dy
    }
}

impl<T: Float> Act<T> for Relu {
    #[inline(always)]
    fn f(self, z: T) -> T {
        if z > T::zero() {
            z
        } else {
            T::zero()
        }
    }
    #[inline(always)]
    fn grad(self, z: T, dy: T) -> T {
        if z > T::zero() {
            dy
        } else {
            T::zero()
        }
    }
}

impl<T: Float> Act<T> for LeakyRelu<T> {
    #[inline(always)]
    fn f(self, z: T) -> T {
        if z > T::zero() {
            z
        } else {
            z * self.0
        }
    }
    #[inline(always)]
    fn grad(self, z: T, dy: T) -> T {
        if z > T::zero() {
            dy
        } else {
            dy * self.0
        }
    }
}

impl<T: Float> Act<T> for Tanh {
    #[inline(always)]
    fn f(self, z: T) -> T {
        z.tanh()
    }
    #[inline(always)]
    fn grad(self, z: T, dy: T) -> T {
        let t = z.tanh();
        dy * (T::one() - t * t)
    }
}

/// Runs `$body` with `$act` bound to the [`Act`] of `$activation`.
macro_rules! with_act {
    ($activation:expr, $t:ty, |$act:ident| $body:expr) => {{
        use $crate::ops::cpu::activation::{Identity, LeakyRelu, Relu, Tanh};
        use $crate::ops::Activation;
        match $activation {
            Activation::Identity => {
                let $act = Identity;
                $body
            }
            Activation::Relu => {
                let $act = Relu;
                $body
            }
            Activation::LeakyRelu(slope) => {
                let $act = LeakyRelu(<$t>::from_f64(slope));
                $body
            }
            Activation::Tanh => {
                let $act = Tanh;
                $body
            }
        }
    }};
}
pub(super) use with_act;

fn forward<T: Float>(activation: Activation, x: &CpuStorage, xl: &Layout) -> Result<Vec<T>> {
    let x = contiguous::<T>(x, xl)?;
    let mut y = vec![T::zero(); x.len()];
    with_act!(activation, T, |act| y
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(y, x)| {
            for (y, &x) in y.iter_mut().zip(x) {
                *y = act.f(x);
            }
        }));
    Ok(y)
}

/// `f(a_i, b_i)` for every element, in parallel chunks.
fn zip_map<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync) -> Vec<T> {
    let mut out = vec![T::zero(); a.len()];
    out.par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(out, (a, b))| {
            for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
                *o = f(a, b);
            }
        });
    out
}

/// The input gradient from `from` (the input; the output for tanh) and the output gradient.
fn backward<T: Float>(
    activation: Activation,
    (from, fl): (&CpuStorage, &Layout),
    (g, gl): (&CpuStorage, &Layout),
) -> Result<Vec<T>> {
    let (from, g) = (contiguous::<T>(from, fl)?, contiguous::<T>(g, gl)?);
    Ok(match activation {
        Activation::Tanh => zip_map(from, g, |y, g| g * (T::one() - y * y)),
        _ => with_act!(activation, T, |act| zip_map(from, g, |x, g| act.grad(x, g))),
    })
}

/// `activation(x)` as one pass; its backward pass is one more ([`ActivateBackward`]), from the
/// input (from the output for tanh: `1 - y^2`, without evaluating tanh again). The numbers are
/// PyTorch's (and the stock ops'): the same formulas per element.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Activate(pub Activation);

impl CustomOp1 for Activate {
    fn name(&self) -> &'static str {
        "fast-activation"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = dispatch_float!(x, forward(self.0, x, xl))?;
        Ok((y, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let y = crate::ops::cuda::activation_forward(x, xl, self.0)?;
        Ok((y, xl.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let from = if self.0 == Activation::Tanh { res } else { x };
        from.apply_op2_no_bwd(&grad.contiguous()?, &ActivateBackward(self.0))
            .map(Some)
    }
}

/// The input gradient of [`Activate`] from its input `x` (its output `y` for tanh) and output
/// gradient `g`: `g * f'(x)` (`g * (1 - y^2)`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ActivateBackward(pub Activation);

impl ActivateBackward {
    /// The gradient must have one element per input element, on every device.
    fn check_lengths(xl: &Layout, gl: &Layout) -> Result<()> {
        let (n, m) = (xl.shape().elem_count(), gl.shape().elem_count());
        if n != m {
            candle_core::bail!("activation backward: {n} inputs, {m} gradients")
        }
        Ok(())
    }
}

impl CustomOp2 for ActivateBackward {
    fn name(&self) -> &'static str {
        "fast-activation-backward"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        Self::check_lengths(xl, gl)?;
        let dx = dispatch_float!(x, backward(self.0, (x, xl), (g, gl)))?;
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
        Self::check_lengths(xl, gl)?;
        let dx = crate::ops::cuda::activation_backward((x, xl), (g, gl), self.0)?;
        Ok((dx, xl.shape().clone()))
    }
}
