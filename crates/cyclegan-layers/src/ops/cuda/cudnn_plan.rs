//! The three convolution routines through cuDNN's backend (graph) API, with one execution plan
//! per shape, built once and reused, as PyTorch does.
//!
//! cuDNN 9 implements its legacy routines (`cudnnConvolutionForward` and kin, what
//! [`super::conv`] called at first) on this API and builds an execution plan inside every call:
//! sampled on an H200, that took about 40% of the host's time of a training iteration, which at
//! batch 1 is what bounds it. With a cached plan a call is one variant pack (the data pointers)
//! and one `cudnnBackendExecute`. A shape whose plan cannot be built keeps the legacy routine
//! ([`super::conv`] falls back), and `CYCLEGAN_CUDNN_LEGACY=1` turns this path off.

use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::cudarc::driver::CudaStream;
use candle_core::Result;
use std::ffi::c_void;
use std::ptr::null_mut;
use std::rc::Rc;

use sys::cudnnBackendAttributeName_t as Attr;
use sys::cudnnBackendAttributeType_t as Type;
use sys::cudnnBackendDescriptorType_t as Kind;

use super::conv::Pass;

/// The alignment the plans are built for; calls whose pointers are less aligned take the legacy
/// routine. Fresh device allocations are aligned to 256 bytes.
pub(crate) const ALIGNMENT: usize = 16;

/// Whether the backend path is on (`CYCLEGAN_CUDNN_LEGACY` unset or `0`).
pub(crate) fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("CYCLEGAN_CUDNN_LEGACY").map_or(true, |v| v == "0"))
}

/// The heuristics that rank the engines: cuDNN's mode B (a slower query, made once per
/// convolution shape, whose first choice is better: at 256x256 on an H200 a training iteration
/// took 104 ms instead of 117 at batch 4 and 40 instead of 50 at batch 1, BENCHMARKS.md), or
/// mode A (instant; PyTorch's default) with `CYCLEGAN_CUDNN_HEURISTIC_MODE=A`.
fn heuristic_mode() -> sys::cudnnBackendHeurMode_t {
    static MODE_A: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let mode_a = *MODE_A.get_or_init(|| {
        std::env::var("CYCLEGAN_CUDNN_HEURISTIC_MODE").is_ok_and(|v| v.eq_ignore_ascii_case("a"))
    });
    if mode_a {
        sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_A
    } else {
        sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_B
    }
}

fn check(status: sys::cudnnStatus_t, what: impl FnOnce() -> String) -> Result<()> {
    match status {
        sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS => Ok(()),
        status => candle_core::bail!("cuDNN {}: {status:?}", what()),
    }
}

/// A backend descriptor, destroyed when dropped.
struct Descriptor(sys::cudnnBackendDescriptor_t);

impl Descriptor {
    fn new(kind: Kind) -> Result<Self> {
        let mut d = null_mut();
        // SAFETY: creates a descriptor into a local.
        check(
            unsafe { sys::cudnnBackendCreateDescriptor(kind, &mut d) },
            || format!("creating a {kind:?}"),
        )?;
        Ok(Self(d))
    }

    /// Sets attribute `name` to `values`, elements of the backend type `ty`, which `T` must lay
    /// out as cuDNN reads them (an enum's `u32`, `i64`, `f32`, `f64`, a pointer, a descriptor).
    fn set<T: Copy>(&self, name: Attr, ty: Type, values: &[T]) -> Result<()> {
        // SAFETY: `values` holds `values.len()` elements of the type `ty` names.
        let status = unsafe {
            sys::cudnnBackendSetAttribute(
                self.0,
                name,
                ty,
                values.len() as i64,
                values.as_ptr().cast(),
            )
        };
        check(status, || format!("setting {name:?}"))
    }

    /// Reads up to `out.len()` elements of attribute `name`; returns how many there were.
    /// Descriptor-valued attributes are read into descriptors created beforehand.
    fn get<T>(&self, name: Attr, ty: Type, out: &mut [T]) -> Result<usize> {
        let mut count = 0i64;
        // An empty `out` asks for the count alone, with a null array as cuDNN's examples do.
        let array = if out.is_empty() {
            null_mut()
        } else {
            out.as_mut_ptr().cast()
        };
        // SAFETY: `array` has room for `out.len()` elements of the type `ty` names.
        let status = unsafe {
            sys::cudnnBackendGetAttribute(self.0, name, ty, out.len() as i64, &mut count, array)
        };
        check(status, || format!("reading {name:?}"))?;
        Ok(count.max(0) as usize)
    }

    fn finalize(self) -> Result<Self> {
        // SAFETY: a live descriptor whose required attributes were set.
        check(unsafe { sys::cudnnBackendFinalize(self.0) }, || {
            "finalizing a descriptor".to_string()
        })?;
        Ok(self)
    }
}

impl Drop for Descriptor {
    fn drop(&mut self) {
        // SAFETY: created by `cudnnBackendCreateDescriptor`, destroyed once.
        unsafe { sys::cudnnBackendDestroyDescriptor(self.0) };
    }
}

/// A cuDNN handle of this module's own on a device's stream (cudarc keeps its handle's pointer
/// to itself), destroyed when dropped.
pub(crate) struct Handle(sys::cudnnHandle_t);

impl Handle {
    pub(crate) fn new(stream: &CudaStream) -> Result<Self> {
        use candle_core::cuda_backend::WrapErr;
        stream.context().bind_to_thread().w()?;
        let mut h = null_mut();
        // SAFETY: creates a handle into a local, then points it at the stream, which outlives it
        // (the device holds the stream for the process's life).
        unsafe {
            check(sys::cudnnCreate(&mut h), || "creating a handle".into())?;
            check(
                sys::cudnnSetStream(h, stream.cu_stream() as sys::cudaStream_t),
                || "setting the handle's stream".into(),
            )?;
        }
        Ok(Self(h))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by `cudnnCreate`, destroyed once.
        unsafe { sys::cudnnDestroy(self.0) };
    }
}

/// What a plan computes: one routine of a convolution `x [n, cin, h, w]` * `w [cout, cin, k, k]`
/// -> `y`, zero padding `pad`, `stride`, in `f32` or `f64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Problem {
    pub pass: Pass,
    pub shapes: [[usize; 4]; 3],
    pub stride: usize,
    pub pad: usize,
    pub double: bool,
    /// Whether `f32` may round through TF32 tensor cores (any engine); otherwise only engines
    /// with no tensor cores, reduced-precision, FFT or Winograd arithmetic qualify.
    pub tf32: bool,
    /// Whether only engines that give the same bits on every run qualify (no
    /// `CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC`: see [`crate::ops::set_cuda_deterministic`]).
    pub deterministic: bool,
    /// Whether the tensors lie in memory channels last (NHWC, the weight KRSC) instead of NCHW
    /// (KCRS): the channels-last path's convolutions, and [`super::conv::layout_report`]'s
    /// timings of every pass in both layouts.
    pub channels_last: bool,
}

/// A finalized execution plan and the descriptors it was built from. Fields drop in order: the
/// plan, then its parts, then (its last owner gone) the handle it was built on.
pub(crate) struct Plan {
    plan: Descriptor,
    /// The workspace it needs, in bytes.
    pub workspace: usize,
    /// cuDNN's global index of the engine it runs, for reports.
    pub engine: i64,
    _engine: Descriptor,
    /// The problem's descriptors, shared by the plans of its engines.
    _parts: Rc<Vec<Descriptor>>,
    handle: Rc<Handle>,
}

/// The data type of a problem, as cuDNN names it.
fn data_type(double: bool) -> sys::cudnnDataType_t {
    if double {
        sys::cudnnDataType_t::CUDNN_DATA_DOUBLE
    } else {
        sys::cudnnDataType_t::CUDNN_DATA_FLOAT
    }
}

/// A packed tensor descriptor of `dims` (always in NCHW order) with unique id `uid`, laid out
/// NCHW or, `channels_last`, NHWC.
fn tensor(uid: i64, dims: [usize; 4], double: bool, channels_last: bool) -> Result<Descriptor> {
    let d = dims.map(|v| v as i64);
    let strides = if channels_last {
        [d[1] * d[2] * d[3], 1, d[3] * d[1], d[1]]
    } else {
        [d[1] * d[2] * d[3], d[2] * d[3], d[3], 1]
    };
    let t = Descriptor::new(Kind::CUDNN_BACKEND_TENSOR_DESCRIPTOR)?;
    t.set(
        Attr::CUDNN_ATTR_TENSOR_DATA_TYPE,
        Type::CUDNN_TYPE_DATA_TYPE,
        &[data_type(double)],
    )?;
    t.set(
        Attr::CUDNN_ATTR_TENSOR_DIMENSIONS,
        Type::CUDNN_TYPE_INT64,
        &d,
    )?;
    t.set(
        Attr::CUDNN_ATTR_TENSOR_STRIDES,
        Type::CUDNN_TYPE_INT64,
        &strides,
    )?;
    t.set(
        Attr::CUDNN_ATTR_TENSOR_UNIQUE_ID,
        Type::CUDNN_TYPE_INT64,
        &[uid],
    )?;
    t.set(
        Attr::CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT,
        Type::CUDNN_TYPE_INT64,
        &[ALIGNMENT as i64],
    )?;
    t.finalize()
}

/// The unique ids of the variant pack's three tensors: x (or dx), w (or dw), y (or dy).
const UIDS: [i64; 3] = [1, 2, 3];

/// Whether an engine's notes allow it for `problem`.
fn engine_qualifies(engine: &Descriptor, problem: &Problem) -> bool {
    use sys::cudnnBackendBehaviorNote_t as Behavior;
    use sys::cudnnBackendNumericalNote_t as Note;
    // Read as plain numbers: a cuDNN newer than these bindings may name notes they lack.
    let notes = |name: Attr, ty: Type| -> Option<Vec<u32>> {
        let mut out = [u32::MAX; 16];
        let n = engine.get(name, ty, &mut out).ok()?;
        Some(out[..n.min(16)].to_vec())
    };
    // Engines compiled at run time need NVRTC and take seconds on first use: left out, as the
    // legacy routines never pick them.
    let Some(behavior) = notes(
        Attr::CUDNN_ATTR_ENGINE_BEHAVIOR_NOTE,
        Type::CUDNN_TYPE_BEHAVIOR_NOTE,
    ) else {
        return false;
    };
    if behavior.contains(&(Behavior::CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION as u32)) {
        return false;
    }
    if problem.tf32 && !problem.deterministic {
        return true;
    }
    let Some(numerical) = notes(
        Attr::CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
        Type::CUDNN_TYPE_NUMERICAL_NOTE,
    ) else {
        return false;
    };
    let has = |note: Note| numerical.contains(&(note as u32));
    if problem.deterministic && has(Note::CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) {
        return false;
    }
    if problem.tf32 {
        return true;
    }
    let inexact = [
        Note::CUDNN_NUMERICAL_NOTE_TENSOR_CORE,
        Note::CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS,
        Note::CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION,
        Note::CUDNN_NUMERICAL_NOTE_FFT,
        Note::CUDNN_NUMERICAL_NOTE_WINOGRAD,
        Note::CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_4x4,
        Note::CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_6x6,
        Note::CUDNN_NUMERICAL_NOTE_WINOGRAD_TILE_13x13,
    ];
    !inexact.into_iter().any(has)
}

impl Plan {
    /// The plans of the first `limit` engines in cuDNN's heuristic order that qualify for
    /// `problem` and build: the first is what PyTorch runs without `cudnn.benchmark`, the others
    /// are what a benchmark chooses among. At least one, or an error.
    pub(crate) fn build(handle: &Rc<Handle>, problem: &Problem, limit: usize) -> Result<Vec<Self>> {
        let [xs, ws, ys] = problem.shapes;
        let (double, last) = (problem.double, problem.channels_last);
        let (x, w, y) = (
            tensor(UIDS[0], xs, double, last)?,
            tensor(UIDS[1], ws, double, last)?,
            tensor(UIDS[2], ys, double, last)?,
        );
        let conv = Descriptor::new(Kind::CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR)?;
        let (s, p) = (problem.stride as i64, problem.pad as i64);
        conv.set(
            Attr::CUDNN_ATTR_CONVOLUTION_COMP_TYPE,
            Type::CUDNN_TYPE_DATA_TYPE,
            &[data_type(double)],
        )?;
        conv.set(
            Attr::CUDNN_ATTR_CONVOLUTION_CONV_MODE,
            Type::CUDNN_TYPE_CONVOLUTION_MODE,
            &[sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION],
        )?;
        conv.set(
            Attr::CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS,
            Type::CUDNN_TYPE_INT64,
            &[2i64],
        )?;
        conv.set(
            Attr::CUDNN_ATTR_CONVOLUTION_DILATIONS,
            Type::CUDNN_TYPE_INT64,
            &[1i64, 1],
        )?;
        conv.set(
            Attr::CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES,
            Type::CUDNN_TYPE_INT64,
            &[s, s],
        )?;
        conv.set(
            Attr::CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS,
            Type::CUDNN_TYPE_INT64,
            &[p, p],
        )?;
        conv.set(
            Attr::CUDNN_ATTR_CONVOLUTION_POST_PADDINGS,
            Type::CUDNN_TYPE_INT64,
            &[p, p],
        )?;
        let conv = conv.finalize()?;

        // The operation: its three tensors and the convolution, with alpha = 1 and beta = 0.
        let (kind, [ax, aw, ay, aconv, aalpha, abeta]) = match problem.pass {
            Pass::Forward => (
                Kind::CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                [
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA,
                ],
            ),
            Pass::BackwardData => (
                Kind::CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
                [
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA,
                ],
            ),
            Pass::BackwardFilter => (
                Kind::CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
                [
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
                    Attr::CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA,
                ],
            ),
        };
        let op = Descriptor::new(kind)?;
        let descriptor = Type::CUDNN_TYPE_BACKEND_DESCRIPTOR;
        op.set(ax, descriptor, &[x.0])?;
        op.set(aw, descriptor, &[w.0])?;
        op.set(ay, descriptor, &[y.0])?;
        op.set(aconv, descriptor, &[conv.0])?;
        if double {
            op.set(aalpha, Type::CUDNN_TYPE_DOUBLE, &[1.0f64])?;
            op.set(abeta, Type::CUDNN_TYPE_DOUBLE, &[0.0f64])?;
        } else {
            op.set(aalpha, Type::CUDNN_TYPE_FLOAT, &[1.0f32])?;
            op.set(abeta, Type::CUDNN_TYPE_FLOAT, &[0.0f32])?;
        }
        let op = op.finalize()?;

        let graph = Descriptor::new(Kind::CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)?;
        graph.set(Attr::CUDNN_ATTR_OPERATIONGRAPH_OPS, descriptor, &[op.0])?;
        graph.set(
            Attr::CUDNN_ATTR_OPERATIONGRAPH_HANDLE,
            Type::CUDNN_TYPE_HANDLE,
            &[handle.0],
        )?;
        let graph = graph.finalize()?;

        let heuristics = Descriptor::new(Kind::CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR)?;
        heuristics.set(
            Attr::CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
            descriptor,
            &[graph.0],
        )?;
        heuristics.set(
            Attr::CUDNN_ATTR_ENGINEHEUR_MODE,
            Type::CUDNN_TYPE_HEUR_MODE,
            &[heuristic_mode()],
        )?;
        let heuristics = heuristics.finalize()?;
        let count = heuristics.get::<sys::cudnnBackendDescriptor_t>(
            Attr::CUDNN_ATTR_ENGINEHEUR_RESULTS,
            descriptor,
            &mut [],
        )?;
        let configs = (0..count)
            .map(|_| Descriptor::new(Kind::CUDNN_BACKEND_ENGINECFG_DESCRIPTOR))
            .collect::<Result<Vec<_>>>()?;
        let mut raw: Vec<_> = configs.iter().map(|c| c.0).collect();
        let count = heuristics.get(Attr::CUDNN_ATTR_ENGINEHEUR_RESULTS, descriptor, &mut raw)?;

        let mut last_error = None;
        let mut built = Vec::new();
        for config in configs.iter().take(count) {
            if built.len() >= limit {
                break;
            }
            let engine = Descriptor::new(Kind::CUDNN_BACKEND_ENGINE_DESCRIPTOR)?;
            let mut raw_engine = [engine.0];
            if config
                .get(
                    Attr::CUDNN_ATTR_ENGINECFG_ENGINE,
                    descriptor,
                    &mut raw_engine,
                )
                .is_err()
                || !engine_qualifies(&engine, problem)
            {
                continue;
            }
            let mut index = [-1i64];
            let _ = engine.get(
                Attr::CUDNN_ATTR_ENGINE_GLOBAL_INDEX,
                Type::CUDNN_TYPE_INT64,
                &mut index,
            );
            let plan = Descriptor::new(Kind::CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR)?;
            plan.set(
                Attr::CUDNN_ATTR_EXECUTION_PLAN_HANDLE,
                Type::CUDNN_TYPE_HANDLE,
                &[handle.0],
            )?;
            plan.set(
                Attr::CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                descriptor,
                &[config.0],
            )?;
            let plan = match plan.finalize() {
                Ok(plan) => plan,
                Err(e) => {
                    last_error = Some(e);
                    continue;
                }
            };
            let mut workspace = [0i64];
            plan.get(
                Attr::CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                Type::CUDNN_TYPE_INT64,
                &mut workspace,
            )?;
            built.push((plan, workspace[0].max(0) as usize, index[0], engine));
        }
        if built.is_empty() {
            return match last_error {
                Some(e) => Err(e),
                None => candle_core::bail!("cuDNN offers no qualifying engine among {count}"),
            };
        }
        let mut parts = vec![x, w, y, conv, op, graph, heuristics];
        parts.extend(configs);
        let parts = Rc::new(parts);
        Ok(built
            .into_iter()
            .map(|(plan, workspace, engine, engine_descriptor)| Self {
                plan,
                workspace,
                engine,
                _engine: engine_descriptor,
                _parts: parts.clone(),
                handle: handle.clone(),
            })
            .collect())
    }

    /// Runs the plan on the stream of the handle it was built on.
    ///
    /// # Safety
    /// `pointers` are device buffers of the plan's x, w, y tensors (in the pass's roles: dx for
    /// `BackwardData`, dw for `BackwardFilter`) with its shapes and type, aligned to
    /// [`ALIGNMENT`], and `workspace` holds at least [`Plan::workspace`] bytes (or is null when
    /// that is 0), all alive until the work is done.
    pub(crate) unsafe fn execute(
        &self,
        pointers: [*mut c_void; 3],
        workspace: *mut c_void,
    ) -> Result<()> {
        let pack = Descriptor::new(Kind::CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)?;
        pack.set(
            Attr::CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
            Type::CUDNN_TYPE_INT64,
            &UIDS,
        )?;
        pack.set(
            Attr::CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
            Type::CUDNN_TYPE_VOID_PTR,
            &pointers,
        )?;
        pack.set(
            Attr::CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
            Type::CUDNN_TYPE_VOID_PTR,
            &[workspace],
        )?;
        let pack = pack.finalize()?;
        // SAFETY: the caller's contract; the plan and pack are finalized.
        check(
            unsafe { sys::cudnnBackendExecute(self.handle.0, self.plan.0, pack.0) },
            || "executing a convolution plan".into(),
        )
    }
}
