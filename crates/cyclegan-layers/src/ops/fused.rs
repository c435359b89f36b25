//! Ops that apply cheap per-plane layers inside a convolution's op (or a residual add), so that
//! their outputs are never stored for the backward pass.
//!
//! candle keeps every tensor an op node refers to until the backward pass has run: a layer
//! sequence `instance norm + ReLU -> reflection pad -> convolution` stores the norm's input, its
//! output and the padded copy. As one op, only the norm's input is stored; the norm and the
//! padding run again (into temporaries) when the backward pass reaches the convolution. The
//! generator's residual blocks then hold three tensors each instead of seven, which is most of a
//! training iteration's memory, for one more norm and padding pass each backward. A norm and the
//! padding after it run as one pass, which gives the numbers of the unfused layers exactly.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::channels_last;
use super::cpu::norm::{instance_norm_pad_forward, InstanceNorm, InstanceNormBackward};
use super::cpu::pad::Pad2d;

/// The forward methods of candle's custom ops for one storage type (CPU or CUDA), so that the
/// fused ops compose their parts once for both.
trait Storage: BackendStorage {
    fn op1(op: &impl CustomOp1, x: &Self, xl: &Layout) -> Result<(Self, Shape)>;
    fn op2(op: &impl CustomOp2, a: (&Self, &Layout), b: (&Self, &Layout)) -> Result<(Self, Shape)>;
    fn op3(
        op: &impl CustomOp3,
        a: (&Self, &Layout),
        b: (&Self, &Layout),
        c: (&Self, &Layout),
    ) -> Result<(Self, Shape)>;
}

impl Storage for CpuStorage {
    fn op1(op: &impl CustomOp1, x: &Self, xl: &Layout) -> Result<(Self, Shape)> {
        op.cpu_fwd(x, xl)
    }
    fn op2(op: &impl CustomOp2, a: (&Self, &Layout), b: (&Self, &Layout)) -> Result<(Self, Shape)> {
        op.cpu_fwd(a.0, a.1, b.0, b.1)
    }
    fn op3(
        op: &impl CustomOp3,
        a: (&Self, &Layout),
        b: (&Self, &Layout),
        c: (&Self, &Layout),
    ) -> Result<(Self, Shape)> {
        op.cpu_fwd(a.0, a.1, b.0, b.1, c.0, c.1)
    }
}

#[cfg(feature = "cuda")]
impl Storage for candle_core::CudaStorage {
    fn op1(op: &impl CustomOp1, x: &Self, xl: &Layout) -> Result<(Self, Shape)> {
        op.cuda_fwd(x, xl)
    }
    fn op2(op: &impl CustomOp2, a: (&Self, &Layout), b: (&Self, &Layout)) -> Result<(Self, Shape)> {
        op.cuda_fwd(a.0, a.1, b.0, b.1)
    }
    fn op3(
        op: &impl CustomOp3,
        a: (&Self, &Layout),
        b: (&Self, &Layout),
        c: (&Self, &Layout),
    ) -> Result<(Self, Shape)> {
        op.cuda_fwd(a.0, a.1, b.0, b.1, c.0, c.1)
    }
}

/// What a [`FusedConv`] applies to its input before convolving: the instance norm (with its
/// activation), then the padding, each optional. As an op of its own, a norm and a padding run
/// as one pass over each plane (one kernel on CUDA, forward and backward; the same numbers as the
/// two ops in turn); its backward pass reads only its input.
///
/// Channels last, the op takes and returns contiguous NHWC tensors (`super::channels_last`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stages {
    pub norm: Option<InstanceNorm>,
    pub pad: Option<Pad2d>,
    pub channels_last: bool,
}

impl Stages {
    /// `conv(stages(x), weight[, bias])` as one op (the bare `conv` when there are no stages).
    pub fn apply<C>(
        self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        conv: C,
    ) -> Result<Tensor>
    where
        C: CustomOp2 + CustomOp3 + Send + Sync + 'static,
    {
        if self.norm.is_none() && self.pad.is_none() {
            return super::apply_conv(x, weight, bias, conv);
        }
        if !super::recompute_prologues() {
            // The stages' output, kept by candle's graph for the convolution's backward pass
            // (their kernels, like the convolution's, read a contiguous input).
            return super::apply_conv(&x.contiguous()?.apply_op1(self)?, weight, bias, conv);
        }
        super::apply_conv(x, weight, bias, FusedConv { stages: self, conv })
    }

    /// The shape of the stages' output for an input of `dims` (`[n, h, w, c]` channels last).
    pub fn output_dims(&self, dims: &[usize]) -> Vec<usize> {
        match (self.pad, dims) {
            (Some(pad), &[n, h, w, c]) if self.channels_last => {
                vec![n, h + 2 * pad.pad, w + 2 * pad.pad, c]
            }
            (Some(pad), _) => pad.out_dims(dims),
            (None, _) => dims.to_vec(),
        }
    }

    /// The same stages in the other layout.
    fn with_channels_last(self, channels_last: bool) -> Self {
        Self {
            channels_last,
            ..self
        }
    }

    /// The stages without a norm: the padding's op, or `x` itself.
    fn pad_only<S: Storage>(&self, x: &S, xl: &Layout) -> Result<(S, Shape)> {
        match self.pad {
            Some(pad) => S::op1(&pad, x, xl),
            None => Ok((x.try_clone(xl)?, xl.shape().clone())),
        }
    }

    /// The backward pass of `stages(x)` followed by `inner`, which gets the stages' output
    /// (recomputed, tracking gradients where `x` does) and returns its gradient with whatever
    /// else it computes.
    fn backward<R>(
        &self,
        x: &Tensor,
        inner: impl FnOnce(&Tensor) -> Result<(Option<Tensor>, R)>,
    ) -> Result<(Option<Tensor>, R)> {
        let output = x.apply_op1(*self)?;
        let (d_output, rest) = inner(&output)?;
        let dx = match d_output {
            Some(d) => self.bwd(x, &output, &d)?,
            None => None,
        };
        Ok((dx, rest))
    }
}

impl CustomOp1 for Stages {
    fn name(&self) -> &'static str {
        "instance-norm-pad"
    }

    fn cpu_fwd(&self, x: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        if self.channels_last {
            let (x, xl) = channels_last::cpu_to_nchw(x, xl)?;
            let (y, shape) = self.with_channels_last(false).cpu_fwd(&x, &xl)?;
            return channels_last::cpu_to_nhwc(&y, &shape);
        }
        match (self.norm, self.pad) {
            (Some(norm), Some(pad)) => instance_norm_pad_forward(&norm, &pad, x, xl),
            (Some(norm), None) => norm.cpu_fwd(x, xl),
            (None, _) => self.pad_only(x, xl),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        // The norm kernel applies the padding too; padding alone is its own kernel.
        let y = match (self.norm, self.pad) {
            (Some(norm), pad) => {
                let padding = pad.map(|p| (p.pad, p.mode));
                let (eps, act, last) = (norm.eps, norm.activation, self.channels_last);
                super::cuda::instance_norm_forward((x, xl), eps, act, padding, last)?
            }
            (None, Some(pad)) if self.channels_last => {
                super::cuda::nhwc::pad2d_forward(x, xl, pad.pad, pad.mode)?
            }
            (None, _) => return self.pad_only(x, xl),
        };
        Ok((y, self.output_dims(xl.dims()).into()))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if self.channels_last {
            if self.norm.is_none() && self.pad.is_none() {
                return Ok(Some(grad.clone()));
            }
            let op = channels_last::StagesBackward(*self);
            return x.apply_op2_no_bwd(&grad.contiguous()?, &op).map(Some);
        }
        match (self.norm, self.pad) {
            // The norm's backward op takes the padding's too.
            (Some(norm), pad) => {
                let op = InstanceNormBackward { norm, pad };
                x.apply_op2_no_bwd(&grad.contiguous()?, &op).map(Some)
            }
            // The padding's backward pass reads only the unpadded size, `x`'s (`res` merely
            // fills the argument).
            (None, Some(pad)) => pad.bwd(x, res, grad),
            (None, None) => Ok(Some(grad.clone())),
        }
    }
}

/// The convolution op `C` (a CPU or cuDNN convolution or transposed convolution, without or with
/// a bias: `CustomOp2` or `CustomOp3`) of `stages(x)`.
#[derive(Clone, Copy, Debug)]
struct FusedConv<C> {
    stages: Stages,
    conv: C,
}

impl<C: CustomOp2> FusedConv<C> {
    fn forward2<S: Storage>(&self, x: (&S, &Layout), w: (&S, &Layout)) -> Result<(S, Shape)> {
        let (input, shape) = S::op1(&self.stages, x.0, x.1)?;
        S::op2(&self.conv, (&input, &Layout::contiguous(shape)), w)
    }
}

impl<C: CustomOp3> FusedConv<C> {
    fn forward3<S: Storage>(
        &self,
        x: (&S, &Layout),
        w: (&S, &Layout),
        b: (&S, &Layout),
    ) -> Result<(S, Shape)> {
        let (input, shape) = S::op1(&self.stages, x.0, x.1)?;
        S::op3(&self.conv, (&input, &Layout::contiguous(shape)), w, b)
    }
}

impl<C: CustomOp2> CustomOp2 for FusedConv<C> {
    fn name(&self) -> &'static str {
        "fused-conv"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward2((x, xl), (w, wl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        w: &candle_core::CudaStorage,
        wl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.forward2((x, xl), (w, wl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.stages
            .backward(x, |input| self.conv.bwd(input, w, res, grad))
    }
}

impl<C: CustomOp3> CustomOp3 for FusedConv<C> {
    fn name(&self) -> &'static str {
        "fused-conv-bias"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        w: &CpuStorage,
        wl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward3((x, xl), (w, wl), (b, bl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        w: &candle_core::CudaStorage,
        wl: &Layout,
        b: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        self.forward3((x, xl), (w, wl), (b, bl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, (dw, db)) = self.stages.backward(x, |input| {
            let (dx, dw, db) = self.conv.bwd(input, w, b, res, grad)?;
            Ok((dx, (dw, db)))
        })?;
        Ok((dx, dw, db))
    }
}

/// `residual + instance_norm(x)` (no activation) as one op on `(x, residual)`: the residual
/// blocks' last layer, without storing the norm's output (on CUDA one kernel). The stages are
/// the norm alone, in either layout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NormAdd(Stages);

impl NormAdd {
    pub fn new(norm: InstanceNorm, channels_last: bool) -> Self {
        Self(Stages {
            norm: Some(norm),
            pad: None,
            channels_last,
        })
    }

    fn forward<S: Storage>(&self, x: (&S, &Layout), r: (&S, &Layout)) -> Result<(S, Shape)> {
        let (normed, shape) = S::op1(&self.0, x.0, x.1)?;
        // The residual first, as the reference's `x + conv_block(x)` (the sum is the same).
        let sum =
            r.0.binary_impl::<candle_core::op::Add>(&normed, r.1, &Layout::contiguous(&shape))?;
        Ok((sum, shape))
    }
}

impl CustomOp2 for NormAdd {
    fn name(&self) -> &'static str {
        "instance-norm-add"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        r: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.forward((x, xl), (r, rl))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        r: &candle_core::CudaStorage,
        rl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        // One kernel where the residual is contiguous (a strided one takes the two ops).
        if let (Some(norm), true) = (self.0.norm, rl.is_contiguous() && rl.dims() == xl.dims()) {
            let (norm, last) = ((norm.eps, norm.activation), self.0.channels_last);
            let y = super::cuda::instance_norm_add_forward((x, xl), (r, rl), norm, last)?;
            return Ok((y, xl.shape().clone()));
        }
        self.forward((x, xl), (r, rl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        r: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // The norm's backward pass reads its input only (`res` merely fills the argument).
        let dx = if x.track_op() {
            self.0.bwd(x, res, grad)?
        } else {
            None
        };
        let dr = r.track_op().then(|| grad.clone());
        Ok((dx, dr))
    }
}
