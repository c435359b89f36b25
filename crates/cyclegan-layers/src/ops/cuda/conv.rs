//! Convolutions and transposed convolutions, forward and backward, through cuDNN.
//!
//! candle's stock CUDA backward passes run its naive transposed-convolution kernel; here every
//! pass is one of cuDNN's three convolution routines of a convolution `x [n, cin, h, w]` *
//! `w [cout, cin, k, k]` -> `y [n, cout, oh, ow]` ([`Pass`]): the transposed convolution is the
//! input gradient of its adjoint convolution, so its forward is `BackwardData` and its input
//! gradient is `Forward`. Each pass runs an execution plan of cuDNN's backend API, built once
//! per shape ([`super::cudnn_plan`]; engines in cuDNN's heuristic order, what PyTorch uses
//! without `cudnn.benchmark`). Shapes without a plan, and every shape under
//! `CYCLEGAN_CUDNN_LEGACY=1`, take the legacy routines: heuristic algorithms cached per shape,
//! or in full-precision `f32` (TF32 off) fixed implicit-GEMM ones. `f32` convolutions may use
//! TF32 tensor cores unless [`super::super::set_cuda_tf32`] turns that off, as PyTorch's
//! `cudnn.allow_tf32` does. A bias is added in place to the convolution's fresh output and its
//! gradient summed by one kernel each (`channel_bias_*` in `kernels.cu`).

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::{
    sys, ConvBackwardData, ConvBackwardFilter, ConvForward, Cudnn, CudnnDataType,
};
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, CudaView, DevicePtr, DevicePtrMut, DeviceRepr, SyncOnDrop,
};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorageSlice, DeviceId};
use candle_core::{
    CpuStorage, CudaStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor,
    WithDType,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::Arc;

use super::cudnn_plan as plan;
use super::{add_channel_bias_in_place, channel_bias_grad, view};
use crate::ops::conv_args_fit;

/// The cuDNN op for `conv2d(x, w) + b` of an input of `x_dims` (`x`'s own, or those of a
/// prologue's output) with `x`'s dtype and device, when the arguments are CUDA tensors it
/// handles.
pub(crate) fn conv2d(
    x: &Tensor,
    x_dims: &[usize],
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
) -> Option<CudnnConv> {
    let (&[_, cin, h, w], &[cout, wcin, k, k2]) = (x_dims, weight.dims()) else {
        return None;
    };
    let fits = cin == wcin && k == k2 && stride > 0 && h + 2 * padding >= k && w + 2 * padding >= k;
    let op = CudnnConv {
        pass: Pass::Forward,
        stride,
        pad: padding,
        out: [0; 4],
        channels_last: false,
    };
    (x.device().is_cuda() && fits && conv_args_fit(x, weight, bias, cout)).then_some(op)
}

/// The cuDNN op for `conv_transpose2d(x, w) + b` (weight `[cin, cout, k, k]`, geometry
/// `(stride, padding, output_padding)`) of an input of `x_dims`, as [`conv2d`].
pub(crate) fn conv_transpose2d(
    x: &Tensor,
    x_dims: &[usize],
    weight: &Tensor,
    bias: Option<&Tensor>,
    (stride, padding, output_padding): (usize, usize, usize),
) -> Option<CudnnConv> {
    let (&[n, cin, h, w], &[wcin, cout, k, k2]) = (x_dims, weight.dims()) else {
        return None;
    };
    let fits = cin == wcin && k == k2 && stride > 0 && output_padding < stride;
    if !(x.device().is_cuda() && fits && conv_args_fit(x, weight, bias, cout)) {
        return None;
    }
    let side = |len: usize| ((len - 1) * stride + k + output_padding).checked_sub(2 * padding);
    let (oh, ow) = (side(h).filter(|&v| v > 0)?, side(w).filter(|&v| v > 0)?);
    Some(CudnnConv {
        pass: Pass::BackwardData,
        stride,
        pad: padding,
        out: [n, cout, oh, ow],
        channels_last: false,
    })
}

/// Which cuDNN routine a [`CudnnConv`] runs, and on what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Pass {
    /// `(x, w) -> y`.
    Forward,
    /// `(dy, w) -> dx`.
    BackwardData,
    /// `(x, dy) -> dw`.
    BackwardFilter,
}

impl Pass {
    /// The shape of what the pass computes, from the convolution's `(x, w, y)` shapes.
    fn output(self, [x, w, y]: [[usize; 4]; 3]) -> [usize; 4] {
        match self {
            Pass::Forward => y,
            Pass::BackwardData => x,
            Pass::BackwardFilter => w,
        }
    }
}

/// One cuDNN routine of the convolution with `stride` and zero padding `pad`, as a candle op on
/// two tensors; `out` is the result's shape (`x`'s for `BackwardData`, `w`'s for
/// `BackwardFilter`; `Forward` works it out), in NCHW order. Channels last, the op's tensors are
/// contiguous NHWC `[n, h, w, c]` and its weight `[k, r, s, c]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CudnnConv {
    pub pass: Pass,
    pub stride: usize,
    pub pad: usize,
    pub out: [usize; 4],
    pub channels_last: bool,
}

impl CudnnConv {
    /// The same op on channels-last tensors.
    pub fn channels_last(self) -> Self {
        Self {
            channels_last: true,
            ..self
        }
    }

    /// `dims` of one of the op's tensors, in NCHW order.
    fn nchw(&self, dims: &[usize]) -> Result<[usize; 4]> {
        let d: [usize; 4] = dims.try_into().map_err(|_| {
            candle_core::Error::Msg(format!("cuDNN convolution takes 4-d tensors, got {dims:?}"))
        })?;
        Ok(if self.channels_last {
            [d[0], d[3], d[1], d[2]]
        } else {
            d
        })
    }

    /// NCHW-ordered `dims` in the order of the op's tensors.
    fn native(&self, [n, c, h, w]: [usize; 4]) -> Shape {
        if self.channels_last {
            Shape::from(vec![n, h, w, c])
        } else {
            Shape::from(vec![n, c, h, w])
        }
    }

    /// The op running `pass`, whose result has the shape of a tensor of `out`.
    fn with(self, pass: Pass, out: &[usize]) -> Result<Self> {
        let out = self.nchw(out)?;
        Ok(Self { pass, out, ..self })
    }

    /// The `(x, w, y)` shapes of the convolution in NCHW order, from the op's two argument
    /// shapes.
    fn shapes(&self, a: &[usize], b: &[usize]) -> Result<[[usize; 4]; 3]> {
        let (a, b) = (self.nchw(a)?, self.nchw(b)?);
        Ok(match self.pass {
            Pass::Forward => {
                let [n, _, h, w] = a;
                let [cout, _, k, _] = b;
                let side = |len: usize| (len + 2 * self.pad - k) / self.stride + 1;
                [a, b, [n, cout, side(h), side(w)]]
            }
            Pass::BackwardData => [self.out, b, a],
            Pass::BackwardFilter => [a, self.out, b],
        })
    }
}

impl CudnnConv {
    fn pass_name(&self) -> &'static str {
        match self.pass {
            Pass::Forward => "cudnn-conv2d-forward",
            Pass::BackwardData => "cudnn-conv2d-backward-data",
            Pass::BackwardFilter => "cudnn-conv2d-backward-filter",
        }
    }

    /// Runs the pass on `(a, b)`: the result and its shape.
    fn run(
        &self,
        (a, al): (&CudaStorage, &Layout),
        (b, bl): (&CudaStorage, &Layout),
    ) -> Result<(CudaStorage, [usize; 4])> {
        let shapes = self.shapes(al.dims(), bl.dims())?;
        let out = self.pass.output(shapes);
        let dev = a.device.clone();
        let slice = match (&a.slice, &b.slice) {
            (CudaStorageSlice::F32(_), CudaStorageSlice::F32(_)) => {
                launch::<f32>(self, &dev, shapes, (a, al), (b, bl)).map(CudaStorageSlice::F32)
            }
            (CudaStorageSlice::F64(_), CudaStorageSlice::F64(_)) => {
                launch::<f64>(self, &dev, shapes, (a, al), (b, bl)).map(CudaStorageSlice::F64)
            }
            _ => candle_core::bail!(
                "{}: f32 or f64 tensors of one type, got {:?} and {:?}",
                self.pass_name(),
                a.dtype(),
                b.dtype()
            ),
        };
        // The channels-last path is an option: say which, should cuDNN refuse its layout.
        let slice = slice.map_err(|e| {
            if !self.channels_last {
                return e;
            }
            e.context(format!(
                "{} of {shapes:?} channels last (NHWC); without --channels-last \
                 (ops::set_cuda_channels_last(false)) it runs NCHW",
                self.pass_name()
            ))
        })?;
        Ok((CudaStorage { slice, device: dev }, out))
    }

    /// The gradients of the pass's two arguments `(a, b)` from the output gradient.
    fn grads(
        &self,
        a: &Tensor,
        b: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        match self.pass {
            // y = conv(x, w): dx = BackwardData(dy, w), dw = BackwardFilter(x, dy).
            Pass::Forward => {
                let dx = a
                    .track_op()
                    .then(|| grad.apply_op2_no_bwd(b, &self.with(Pass::BackwardData, a.dims())?))
                    .transpose()?;
                let dw = b
                    .track_op()
                    .then(|| a.apply_op2_no_bwd(grad, &self.with(Pass::BackwardFilter, b.dims())?))
                    .transpose()?;
                Ok((dx, dw))
            }
            // y = BackwardData(x, w) (a transposed convolution of x): its adjoint convolution
            // maps y's shape to x's, so dx = Forward(dy, w) and dw = BackwardFilter(dy, x).
            Pass::BackwardData => {
                let dx = a
                    .track_op()
                    .then(|| grad.apply_op2_no_bwd(b, &self.with(Pass::Forward, a.dims())?))
                    .transpose()?;
                let dw = b
                    .track_op()
                    .then(|| grad.apply_op2_no_bwd(a, &self.with(Pass::BackwardFilter, b.dims())?))
                    .transpose()?;
                Ok((dx, dw))
            }
            Pass::BackwardFilter => {
                candle_core::bail!("the cuDNN weight gradient is not differentiable again")
            }
        }
    }
}

impl CustomOp2 for CudnnConv {
    fn name(&self) -> &'static str {
        self.pass_name()
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("{} runs on CUDA devices only", self.pass_name())
    }

    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        al: &Layout,
        b: &CudaStorage,
        bl: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        let (storage, out) = self.run((a, al), (b, bl))?;
        Ok((storage, self.native(out)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        self.grads(a, b, &grad.contiguous()?)
    }
}

/// A convolution (`Forward`) or transposed convolution (`BackwardData`) plus a channel bias.
impl CustomOp3 for CudnnConv {
    fn name(&self) -> &'static str {
        self.pass_name()
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("{} runs on CUDA devices only", self.pass_name())
    }

    fn cuda_fwd(
        &self,
        a: &CudaStorage,
        al: &Layout,
        b: &CudaStorage,
        bl: &Layout,
        bias: &CudaStorage,
        bias_l: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        if self.pass == Pass::BackwardFilter {
            candle_core::bail!("a weight gradient takes no bias")
        }
        let (mut storage, out) = self.run((a, al), (b, bl))?;
        if self.channels_last {
            super::nhwc::add_channel_bias_in_place(&mut storage, out[1], (bias, bias_l))?;
        } else {
            add_channel_bias_in_place(&mut storage, out, bias, bias_l)?;
        }
        Ok((storage, self.native(out)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (da, db) = self.grads(a, b, &grad)?;
        let op = ChannelBiasGrad {
            channels_last: self.channels_last,
        };
        let dbias = bias
            .track_op()
            .then(|| grad.apply_op1_no_bwd(&op))
            .transpose()?;
        Ok((da, db, dbias))
    }
}

/// The gradient of a channel bias from its output's gradient `[n, c, h, w]` (channels last
/// `[n, h, w, c]`): the sum over all but `c`.
struct ChannelBiasGrad {
    channels_last: bool,
}

impl CustomOp1 for ChannelBiasGrad {
    fn name(&self) -> &'static str {
        "channel-bias-grad"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("{} runs on CUDA devices only", self.name())
    }

    fn cuda_fwd(&self, g: &CudaStorage, gl: &Layout) -> Result<(CudaStorage, Shape)> {
        let (_, c, _, last) = gl.shape().dims4()?;
        let (db, channels) = if self.channels_last {
            (super::nhwc::channel_bias_grad(g, gl)?, last)
        } else {
            (channel_bias_grad(g, gl)?, c)
        };
        Ok((db, Shape::from(channels)))
    }
}

thread_local! {
    // cuDNN handles are neither Send nor Sync: one per thread and device, like candle's own.
    static HANDLES: RefCell<HashMap<DeviceId, Arc<Cudnn>>> = RefCell::new(HashMap::new());
    static ALGORITHMS: RefCell<HashMap<AlgoKey, (Algo, usize)>> = RefCell::new(HashMap::new());
    // The backend API's handles (`None`: none could be made) and plans (an error: why the shape
    // keeps the legacy routine). Each plan holds its handle, so it outlives the plan.
    static PLAN_HANDLES: RefCell<HashMap<DeviceId, Option<Rc<plan::Handle>>>> =
        RefCell::new(HashMap::new());
    static PLANS: RefCell<HashMap<AlgoKey, PlanEntry>> = RefCell::new(HashMap::new());
}

/// A shape's execution plan (an error: why the shape keeps the legacy routine) and how often it
/// was asked for since the last [`reset_pass_counts`].
struct PlanEntry {
    plan: std::result::Result<Rc<plan::Plan>, String>,
    calls: u64,
}

/// What an algorithm choice depends on: the device and the problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct AlgoKey {
    device: DeviceId,
    problem: plan::Problem,
}

#[derive(Clone, Copy)]
enum Algo {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    BackwardData(sys::cudnnConvolutionBwdDataAlgo_t),
    BackwardFilter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

/// The algorithms cuDNN's heuristics chose on this thread so far, one line per shape (the
/// legacy routines' algorithms, then the backend API's engines).
pub(crate) fn chosen_algorithms() -> Vec<String> {
    let mut engines: Vec<String> = PLANS.with(|p| {
        p.borrow()
            .iter()
            .map(|(k, entry)| match &entry.plan {
                Ok(plan) => format!("{k:?}: engine {}", plan.engine),
                Err(e) => format!("{k:?}: legacy routine ({e})"),
            })
            .collect()
    });
    engines.sort();
    let mut lines = ALGORITHMS.with(|a| {
        let mut lines: Vec<String> = a
            .borrow()
            .iter()
            .map(|(AlgoKey { problem: k, .. }, (algo, _))| {
                let algo = match algo {
                    Algo::Forward(a) => format!("{a:?}"),
                    Algo::BackwardData(a) => format!("{a:?}"),
                    Algo::BackwardFilter(a) => format!("{a:?}"),
                };
                format!(
                    "{:?} x{:?} w{:?} y{:?} stride {} pad {} {}{}{}{}: {algo}",
                    k.pass,
                    k.shapes[0],
                    k.shapes[1],
                    k.shapes[2],
                    k.stride,
                    k.pad,
                    if k.double { "f64" } else { "f32" },
                    if k.tf32 { " tf32" } else { "" },
                    if k.deterministic {
                        " deterministic"
                    } else {
                        ""
                    },
                    if k.channels_last { " nhwc" } else { "" },
                )
            })
            .collect();
        lines.sort();
        lines
    });
    lines.extend(engines);
    lines
}

fn handle(dev: &CudaDevice) -> Result<Arc<Cudnn>> {
    HANDLES.with(|handles| {
        if let Some(h) = handles.borrow().get(&dev.id()) {
            return Ok(h.clone());
        }
        let h = Cudnn::new(dev.cuda_stream())?;
        handles.borrow_mut().insert(dev.id(), h.clone());
        Ok(h)
    })
}

/// The backend API's plan for `key`, built on first use; `None` where it cannot be built (said
/// once, in a warning, and in [`chosen_algorithms`]) or the path is off.
fn backend_plan(dev: &CudaDevice, key: AlgoKey) -> Option<Rc<plan::Plan>> {
    if !plan::enabled() {
        return None;
    }
    let found = PLANS.with(|p| {
        let mut plans = p.borrow_mut();
        let entry = plans.get_mut(&key)?;
        entry.calls += 1;
        Some(entry.plan.clone())
    });
    if let Some(found) = found {
        return found.ok();
    }
    let handle = plan_handle(dev)?;
    // Deterministic runs keep the heuristic's first engine: timing would choose among several
    // deterministic ones by the noise of the moment, differently from run to run.
    let limit = if crate::ops::cudnn_benchmark() && !crate::ops::cuda_deterministic() {
        BENCHMARK_ENGINES
    } else {
        1
    };
    let built = plan::Plan::build(&handle, &key.problem, limit)
        .and_then(|plans| fastest(dev, &key.problem, plans))
        .map(Rc::new)
        .map_err(|e| {
            tracing::warn!(
                "cuDNN backend plan for {key:?}: {e}; this shape keeps the legacy routine"
            );
            e.to_string()
        });
    let entry = PlanEntry {
        plan: built.clone(),
        calls: 1,
    };
    PLANS.with(|p| p.borrow_mut().insert(key, entry));
    built.ok()
}

/// The backend API's cuDNN handle for `dev` on this thread, made on first use; `None` where
/// none can be made (said once, in a warning).
fn plan_handle(dev: &CudaDevice) -> Option<Rc<plan::Handle>> {
    PLAN_HANDLES.with(|handles| {
        if let Some(h) = handles.borrow().get(&dev.id()) {
            return h.clone();
        }
        let h = plan::Handle::new(dev.cuda_stream().as_ref())
            .map(Rc::new)
            .map_err(|e| tracing::warn!("cuDNN handle for execution plans: {e}; legacy routines"))
            .ok();
        handles.borrow_mut().insert(dev.id(), h.clone());
        h
    })
}

/// How many engines, in cuDNN's heuristic order, a benchmark times per shape.
const BENCHMARK_ENGINES: usize = 8;

/// The workspace a benchmark lets an engine take beyond the heuristic's first choice's: 1 GiB,
/// or `CYCLEGAN_CUDNN_BENCHMARK_WORKSPACE_MIB`. PyTorch's benchmark takes any workspace that can
/// be allocated; on an H200 at 256x256 batch 4, 1 GiB made the iteration 9% faster than 64 MiB
/// did, for 350 MiB more peak memory (BENCHMARKS.md).
fn benchmark_workspace() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        let mib = std::env::var("CYCLEGAN_CUDNN_BENCHMARK_WORKSPACE_MIB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1024);
        mib << 20
    })
}

/// The fastest of `plans` (for [`crate::ops::set_cudnn_benchmark`]; the first when there is one)
/// on scratch buffers of the problem's shapes ([`time_plans`]). This synchronises with the
/// device, once per shape.
fn fastest(
    dev: &CudaDevice,
    problem: &plan::Problem,
    mut plans: Vec<plan::Plan>,
) -> Result<plan::Plan> {
    retain_benchmark_workspace(&mut plans);
    if plans.len() <= 1 {
        return plans
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("no cuDNN plan to benchmark".into()));
    }
    let times = time_plans(dev, problem, &plans)?;
    let report: Vec<String> = plans
        .iter()
        .zip(&times)
        .map(|(plan, time)| match time {
            Ok(ms) => format!("engine {} {ms:.3} ms", plan.engine),
            Err(e) => format!("engine {} failed: {e}", plan.engine),
        })
        .collect();
    tracing::debug!("cuDNN benchmark of {problem:?}: {}", report.join(", "));
    match fastest_time(&times) {
        Some((i, _)) => Ok(plans.swap_remove(i)),
        None => candle_core::bail!("no cuDNN plan ran: {}", report.join(", ")),
    }
}

/// The index and time of the fastest of [`time_plans`]' results (the first of equals), if any ran.
fn fastest_time(times: &[Result<f32>]) -> Option<(usize, f32)> {
    times
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.as_ref().ok().map(|&ms| (i, ms)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Keeps the plans whose workspace a benchmark allows: the heuristic's first choice's, or up to
/// [`benchmark_workspace`].
fn retain_benchmark_workspace(plans: &mut Vec<plan::Plan>) {
    let cap = plans
        .first()
        .map_or(0, |p| p.workspace)
        .max(benchmark_workspace());
    plans.retain(|p| p.workspace <= cap);
}

/// The time of one run of each of `plans` in ms, or why it failed, on scratch buffers of the
/// problem's shapes, timed with CUDA events: a warm-up run, then the mean of three timed ones.
/// This synchronises with the device.
fn time_plans(
    dev: &CudaDevice,
    problem: &plan::Problem,
    plans: &[plan::Plan],
) -> Result<Vec<Result<f32>>> {
    use candle_core::cuda_backend::cudarc::driver::sys::CUevent_flags;
    use candle_core::cuda_backend::WrapErr;
    let elem = if problem.double { 8 } else { 4 };
    let buffer = |d: [usize; 4]| dev.alloc_zeros::<u8>(d.iter().product::<usize>() * elem);
    let [xs, ws, ys] = problem.shapes;
    let (mut x, mut w, mut y) = (buffer(xs)?, buffer(ws)?, buffer(ys)?);
    let mut space = workspace(dev, plans.iter().map(|p| p.workspace).max().unwrap_or(0))?;
    let stream = dev.cuda_stream();
    let (px, _sync_x) = x.device_ptr_mut(&stream);
    let (pw, _sync_w) = w.device_ptr_mut(&stream);
    let (py, _sync_y) = y.device_ptr_mut(&stream);
    let (pspace, _sync_space) = workspace_pointer(&mut space, &stream);
    let pointers = [px, pw, py].map(|p| p as *mut c_void);
    let time = |plan: &plan::Plan| -> Result<f32> {
        // SAFETY: the buffers have the plan's shapes and type, fresh allocations are aligned,
        // and the workspace is the largest any of the plans needs.
        unsafe { plan.execute(pointers, pspace as *mut c_void) }?;
        let start = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .w()?;
        for _ in 0..3 {
            // SAFETY: as above.
            unsafe { plan.execute(pointers, pspace as *mut c_void) }?;
        }
        let end = stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
            .w()?;
        Ok(start.elapsed_ms(&end).w()? / 3.0)
    };
    Ok(plans.iter().map(time).collect())
}

/// Starts [`layout_report`]'s count of the passes run on this thread afresh.
pub(crate) fn reset_pass_counts() {
    PLANS.with(|p| p.borrow_mut().values_mut().for_each(|e| e.calls = 0));
}

/// What the convolution passes run on this thread for `dev` since [`reset_pass_counts`] (with
/// execution plans, in `f32`) would take with their tensors laid out NCHW and channels last
/// (NHWC), where cuDNN's tensor-core engines need no layout transposes: each pass's shape timed
/// again on scratch buffers in both layouts, whichever it ran in, the heuristic's first engine
/// and the fastest of up to [`BENCHMARK_ENGINES`], and the totals per iteration (`iterations`
/// ran since the reset). A diagnostic that synchronises with the device.
pub(crate) fn layout_report(dev: &CudaDevice, iterations: usize) -> Result<Vec<String>> {
    let handle = plan_handle(dev)
        .ok_or_else(|| candle_core::Error::Msg("no cuDNN handle for execution plans".into()))?;
    let mut passes: Vec<(plan::Problem, u64)> = PLANS.with(|p| {
        p.borrow()
            .iter()
            .filter(|(k, e)| {
                k.device == dev.id() && !k.problem.double && e.calls > 0 && e.plan.is_ok()
            })
            .map(|(k, e)| (k.problem, e.calls))
            .collect()
    });
    passes.sort_by_key(|(p, _)| format!("{p:?}"));
    let per_iteration = 1.0 / iterations.max(1) as f64;
    // Per iteration, ms: NCHW first engine, NCHW fastest, NHWC first, NHWC fastest.
    let mut totals = [0f64; 4];
    let mut lines = vec![format!(
        "cuDNN passes of {iterations} iteration(s), ms per run: NCHW first engine / fastest, \
         NHWC first engine / fastest"
    )];
    for (problem, calls) in passes {
        let [nchw, nhwc] = [false, true].map(|channels_last| {
            let problem = plan::Problem {
                channels_last,
                ..problem
            };
            time_layout(dev, &handle, &problem)
        });
        let ms = |t: &Result<LayoutTimes>| t.as_ref().map_or([f64::NAN; 2], |t| [t.first, t.best]);
        let nchw_ms = ms(&nchw);
        // A shape without an NHWC plan (or time) counts at its NCHW time.
        let nhwc_ms = ms(&nhwc);
        let nhwc_ms = [0, 1].map(|i| match nhwc_ms[i] {
            v if v.is_nan() => nchw_ms[i],
            v => v,
        });
        for (total, ms) in totals.iter_mut().zip(nchw_ms.into_iter().chain(nhwc_ms)) {
            *total += calls as f64 * ms * per_iteration;
        }
        let cell = |t: &Result<LayoutTimes>| match t {
            Ok(t) => format!("{:.3} / {:.3} (engine {})", t.first, t.best, t.engine),
            Err(e) => format!("no plan ({e})"),
        };
        let [x, w, y] = problem.shapes;
        lines.push(format!(
            "{:?} x{x:?} w{w:?} y{y:?} stride {} pad {}, {calls} run(s): NCHW {}, NHWC {}",
            problem.pass,
            problem.stride,
            problem.pad,
            cell(&nchw),
            cell(&nhwc)
        ));
    }
    lines.push(format!(
        "per iteration: NCHW {:.2} ms (first engines) / {:.2} ms (fastest); NHWC {:.2} / {:.2} ms",
        totals[0], totals[1], totals[2], totals[3]
    ));
    Ok(lines)
}

/// A problem's times in one layout, ms per run: the heuristic's first engine, the fastest of up
/// to [`BENCHMARK_ENGINES`] and its engine (NaN and -1 where none ran).
struct LayoutTimes {
    first: f64,
    best: f64,
    engine: i64,
}

/// [`LayoutTimes`] of `problem`, its plans built afresh on `handle` and timed by [`time_plans`].
fn time_layout(
    dev: &CudaDevice,
    handle: &Rc<plan::Handle>,
    problem: &plan::Problem,
) -> Result<LayoutTimes> {
    let mut plans = plan::Plan::build(handle, problem, BENCHMARK_ENGINES)?;
    retain_benchmark_workspace(&mut plans);
    let times = time_plans(dev, problem, &plans)?;
    let first = times
        .first()
        .and_then(|t| t.as_ref().ok())
        .map_or(f64::NAN, |&ms| ms.into());
    let (best, engine) =
        fastest_time(&times).map_or((f64::NAN, -1), |(i, ms)| (ms.into(), plans[i].engine));
    Ok(LayoutTimes {
        first,
        best,
        engine,
    })
}

/// The cached algorithm for `key` and its workspace size in bytes, or `pick()`'s choice,
/// remembered. Both are asked of cuDNN once per shape: in cuDNN 9 each of these legacy-API
/// queries builds an execution plan, which took a third of the host's time per training
/// iteration when asked at every call (sampled on an H200, BENCHMARKS.md).
fn algorithm(key: AlgoKey, pick: impl FnOnce() -> Result<(Algo, usize)>) -> Result<(Algo, usize)> {
    if let Some(choice) = ALGORITHMS.with(|a| a.borrow().get(&key).copied()) {
        return Ok(choice);
    }
    let choice = pick()?;
    ALGORITHMS.with(|a| a.borrow_mut().insert(key, choice));
    Ok(choice)
}

fn dims(d: [usize; 4]) -> [i32; 4] {
    d.map(|v| v as i32)
}

/// Runs `plan` of `pass` on the routine's two inputs `(a, b)` into a fresh output of `out_len`
/// elements; `None` when a buffer is less aligned than plans are built for (the inputs are
/// checked before anything is allocated; fresh allocations are aligned to 256 bytes).
fn launch_planned<T: DeviceRepr>(
    dev: &CudaDevice,
    plan: &plan::Plan,
    pass: Pass,
    (a, b): (&CudaView<T>, &CudaView<T>),
    out_len: usize,
) -> Result<Option<CudaSlice<T>>> {
    let aligned = |pointers: &[u64]| {
        pointers
            .iter()
            .all(|&p| (p as usize).is_multiple_of(plan::ALIGNMENT))
    };
    let stream = dev.cuda_stream();
    let (pa, _sync_a) = a.device_ptr(&stream);
    let (pb, _sync_b) = b.device_ptr(&stream);
    if !aligned(&[pa, pb]) {
        return Ok(None);
    }
    // SAFETY: the plan writes `out` in full (beta = 0) before anything reads it.
    let mut out = unsafe { dev.alloc::<T>(out_len)? };
    let mut space = workspace(dev, plan.workspace)?;
    {
        let (po, _sync_o) = out.device_ptr_mut(&stream);
        let (pw, _sync_w) = workspace_pointer(&mut space, &stream);
        if !aligned(&[po, pw]) {
            return Ok(None);
        }
        // The variant pack's order is (x, w, y) in the routine's roles.
        let pointers = match pass {
            Pass::Forward => [pa, pb, po],
            Pass::BackwardData => [po, pb, pa],
            Pass::BackwardFilter => [pa, po, pb],
        };
        // SAFETY: the pointers are the live buffers of the plan's shapes and type, aligned as
        // checked, and the workspace has the plan's size.
        unsafe { plan.execute(pointers.map(|p| p as *mut c_void), pw as *mut c_void) }?;
    }
    Ok(Some(out))
}

/// Runs the op's cuDNN routine on contiguous `a`, `b` of type `T`; `shapes` are `(x, w, y)`.
fn launch<T: CudaDType + CudnnDataType + DeviceRepr + WithDType>(
    op: &CudnnConv,
    dev: &CudaDevice,
    shapes: [[usize; 4]; 3],
    (a, al): (&CudaStorage, &Layout),
    (b, bl): (&CudaStorage, &Layout),
) -> Result<CudaSlice<T>> {
    let double = std::mem::size_of::<T>() == 8;
    let tf32 = !double && crate::ops::cuda_tf32();
    let key = AlgoKey {
        device: dev.id(),
        problem: plan::Problem {
            pass: op.pass,
            shapes,
            stride: op.stride,
            pad: op.pad,
            double,
            tf32,
            deterministic: crate::ops::cuda_deterministic(),
            channels_last: op.channels_last,
        },
    };
    let (a, b): (CudaView<T>, CudaView<T>) = (view(a, al)?, view(b, bl)?);
    let len = |d: [usize; 4]| d.iter().product::<usize>();
    if let Some(plan) = backend_plan(dev, key) {
        let out_len = len(op.pass.output(shapes));
        if let Some(out) = launch_planned(dev, &plan, op.pass, (&a, &b), out_len)? {
            return Ok(out);
        }
    }

    // The legacy routines.
    let [xs, ws, ys] = shapes;
    let cudnn = handle(dev)?;
    // Full-precision f32 (what the GPU parity tests run): fixed implicit-GEMM algorithms with FMA
    // math, the same choice for every shape, no FFT or Winograd transforms and their rounding.
    let exact = !double && !tf32;
    // Deterministic runs (and exact ones) take the backward algorithms that sum in a fixed
    // order: cuDNN's ALGO_0 of both backward passes accumulate with atomic additions.
    let fixed_backward = exact || key.problem.deterministic;
    let mut conv = cudnn.create_conv2d::<T>(
        [op.pad as i32; 2],
        [op.stride as i32; 2],
        [1, 1],
        sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
    )?;
    if !tf32 {
        conv.set_math_type(sys::cudnnMathType_t::CUDNN_FMA_MATH)?;
    }
    let format = if op.channels_last {
        sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC
    } else {
        sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW
    };
    let x = cudnn.create_4d_tensor::<T>(format, dims(xs))?;
    let w = cudnn.create_4d_filter::<T>(format, dims(ws))?;
    let y = cudnn.create_4d_tensor::<T>(format, dims(ys))?;
    let scale = (T::from_f64(1.0), T::from_f64(0.0));
    match op.pass {
        Pass::Forward => {
            let routine = ConvForward {
                conv: &conv,
                x: &x,
                w: &w,
                y: &y,
            };
            let (Algo::Forward(algo), bytes) = algorithm(key, || {
                let algo = if exact {
                    sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM
                } else {
                    routine.pick_algorithm()?
                };
                Ok((Algo::Forward(algo), routine.get_workspace_size(algo)?))
            })?
            else {
                unreachable!("forward key")
            };
            let mut workspace = workspace(dev, bytes)?;
            // SAFETY: `output` is written in full (beta = 0) before it is read.
            let mut out = unsafe { dev.alloc::<T>(len(ys))? };
            // SAFETY: the buffers match the descriptors' types and shapes.
            unsafe { routine.launch(algo, workspace.as_mut(), scale, &a, &b, &mut out) }?;
            Ok(out)
        }
        Pass::BackwardData => {
            let routine = ConvBackwardData {
                conv: &conv,
                dx: &x,
                w: &w,
                dy: &y,
            };
            let (Algo::BackwardData(algo), bytes) = algorithm(key, || {
                let algo = if fixed_backward {
                    sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
                } else {
                    routine.pick_algorithm()?
                };
                Ok((Algo::BackwardData(algo), routine.get_workspace_size(algo)?))
            })?
            else {
                unreachable!("backward-data key")
            };
            let mut workspace = workspace(dev, bytes)?;
            // SAFETY: as above.
            let mut out = unsafe { dev.alloc::<T>(len(xs))? };
            // SAFETY: as above; `a` is dy, `b` is w.
            unsafe { routine.launch(algo, workspace.as_mut(), scale, &mut out, &b, &a) }?;
            Ok(out)
        }
        Pass::BackwardFilter => {
            let routine = ConvBackwardFilter {
                conv: &conv,
                x: &x,
                dw: &w,
                dy: &y,
            };
            let (Algo::BackwardFilter(algo), bytes) = algorithm(key, || {
                let algo = if fixed_backward {
                    sys::cudnnConvolutionBwdFilterAlgo_t::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1
                } else {
                    routine.pick_algorithm()?
                };
                Ok((
                    Algo::BackwardFilter(algo),
                    routine.get_workspace_size(algo)?,
                ))
            })?
            else {
                unreachable!("backward-filter key")
            };
            let mut workspace = workspace(dev, bytes)?;
            // SAFETY: as above.
            let mut out = unsafe { dev.alloc::<T>(len(ws))? };
            // SAFETY: as above; `a` is x, `b` is dy.
            unsafe { routine.launch(algo, workspace.as_mut(), scale, &a, &mut out, &b) }?;
            Ok(out)
        }
    }
}

/// The device pointer of a workspace (null for none) and its guard.
fn workspace_pointer<'a>(
    space: &'a mut Option<CudaSlice<u8>>,
    stream: &'a CudaStream,
) -> (u64, Option<SyncOnDrop<'a>>) {
    match space.as_mut() {
        Some(s) => {
            let (p, sync) = s.device_ptr_mut(stream);
            (p, Some(sync))
        }
        None => (0, None),
    }
}

/// A workspace of `bytes`, or none.
fn workspace(dev: &CudaDevice, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
    // SAFETY: cuDNN uses the workspace as scratch; nothing reads it before writing.
    (bytes > 0)
        .then(|| unsafe { dev.alloc::<u8>(bytes) })
        .transpose()
}
