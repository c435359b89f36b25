//! Full-iteration benchmark, this project against PyTorch, side by side on the same machine.
//!
//! ```text
//! cargo run --release -p cyclegan-train --example bench_iteration -- --sizes 128,256 --rounds 3 --iters 2
//! bench_iteration --device cuda --sizes 256,128 --batch 1 --rounds 3 --iters 20 --torch-compile
//! ```
//! Each round runs this project's iteration in a child process, then the PyTorch reference's
//! (`python/bench_iteration.py`) in another (eager, then compiled with `--torch-compile`), so
//! all sides see the same machine state. Reported: the median seconds per iteration of each
//! side, the ratios (ours / PyTorch), each process's peak resident memory and, on CUDA, the
//! driver's figure of each process's peak GPU memory (`nvidia-smi`, sampled every 20 ms). The
//! architecture is the reference's: resnet_9blocks, basic D, instance norm, ngf = ndf = 64,
//! pool 50, f32, batch `--batch`, on `--device` (cpu, cuda); `--ngf N` (also the
//! discriminators' ndf) and `--blocks N` change its width and depth on both sides (the embedded
//! emoji64 preset's iteration: `--sizes 64 --ngf 16 --blocks 6`). `--with-stock` adds a run of
//! this project with its fast kernels off (stock candle operations); `--with-legacy-cudnn` one
//! with cuDNN's legacy routines instead of cached execution plans; `--with-cudnn-benchmark` runs
//! of both sides with cuDNN engines picked by timing (`set_cudnn_benchmark`, PyTorch's
//! `cudnn.benchmark`; a worker takes it as `--cudnn-benchmark`); `--with-channels-last` a run of
//! ours with activations channels last between cuDNN convolutions (`set_cuda_channels_last`; a
//! worker takes it as `--channels-last`); `--with-stored-prologues` a run of ours that keeps the
//! convolutions' norm and padding outputs for the backward pass instead of recomputing them
//! (`set_recompute_prologues(false)`; a worker takes it as `--store-prologues`), and with
//! `--with-channels-last` one with both (as `--with-cudnn-benchmark` does). Each child of ours also
//! reports its main thread's CPU seconds and voluntary context switches per iteration (on a GPU
//! CUDA's synchronisation spins, so the CPU figure bounds the host's own work from above).
//! `--host-profile FILE` (a build with `--features host-profile`, one `--worker` child) samples
//! this project's timed iterations on the host and writes the stacks to FILE, one folded line per
//! stack with its sample count (`scripts/fold-report.py` sums them): where the host time goes on
//! a GPU machine without perf. `--profile-measured` (a `--worker` on CUDA) brackets the timed
//! iterations with `cuProfilerStart`/`cuProfilerStop`, so that a GPU profiler started with its
//! collection off (Nsight Compute's `--profile-from-start off`) records them and nothing else.
//! `--conv-layouts` (a `--worker` on CUDA, cuDNN build) then times the cuDNN passes of the timed
//! iterations again with their tensors channels last (NHWC) as well as NCHW
//! (`cudnn_layout_report`), on standard error. `--memory-probe` (CUDA builds) prints the device
//! memory in use after each thing a training process sets up on the GPU: the context, candle's
//! and this project's kernels, cuDNN, and the cuBLAS and cuRAND handles it does not need.
//!
//! `--translate` times translation instead of training, on both sides: one generator's forward
//! pass over a batch read from host memory and written back to it, without gradients, as
//! `cyclegan-translate` runs it (a `Translator` over plain tensors) and as the reference's
//! `test.py` does (`torch.no_grad()`, the network in training mode, its default; for instance
//! norm the same computation as evaluation mode).

use candle_core::{DType, Device, Tensor};
use cyclegan_models::{Generator, GeneratorArch};
use cyclegan_train::model::{CycleGan, ModelConfig};
use cyclegan_translate::Translator;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The value after flag `name`, if given.
fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    value(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set size of this process in MiB (Linux).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// This thread's time on a CPU in seconds and its voluntary context switches so far (Linux).
fn thread_cpu() -> (f64, u64) {
    let on_cpu = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9);
    let switches = std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    (on_cpu, switches)
}

/// The child process: times this project's iteration and prints one JSON line.
/// Turns a GPU profiler's collection on or off (`--profile-measured`); nothing on the CPU or in
/// a build without CUDA.
fn gpu_profiler(device: &Device, on: bool) -> anyhow::Result<()> {
    #[cfg(feature = "cuda")]
    if device.is_cuda() {
        use candle_core::cuda_backend::cudarc::driver::sys;
        device.synchronize()?;
        // SAFETY: plain driver calls on the device's context, current on this thread.
        let status = unsafe {
            if on {
                sys::cuProfilerStart()
            } else {
                sys::cuProfilerStop()
            }
        };
        anyhow::ensure!(
            status == sys::CUresult::CUDA_SUCCESS,
            "cuProfiler{}: {status:?}",
            if on { "Start" } else { "Stop" }
        );
    }
    let _ = (device, on);
    Ok(())
}

/// The reference architecture with `ngf` filters (the discriminators' `ndf` too) and `blocks`
/// residual blocks.
fn model_config((ngf, blocks): (usize, usize)) -> ModelConfig {
    let mut config = ModelConfig::default();
    config.generator.arch = GeneratorArch::Resnet { blocks };
    config.generator.ngf = ngf;
    config.discriminator.ndf = ngf;
    config
}

/// What a worker measures besides the time: `--host-profile FILE`, `--profile-measured`,
/// `--conv-layouts`.
struct WorkerDiagnostics<'a> {
    host_profile: Option<&'a str>,
    profile_measured: bool,
    conv_layouts: bool,
}

/// A translator over a generator of the reference architecture with `width`, its weights plain
/// tensors (no gradients recorded) as `Translator::load` makes them, initialised as for training.
fn translator(width: (usize, usize), device: &Device) -> anyhow::Result<Translator> {
    let config = model_config(width).generator;
    let varmap = candle_nn::VarMap::new();
    let vb = cyclegan_layers::init::host_init_var_builder(&varmap, DType::F32, device);
    let rng = cyclegan_layers::SharedRng::new(0);
    Generator::new(vb, &config, &rng)?;
    let mut init_rng = <cyclegan_layers::SeededRng as rand::SeedableRng>::seed_from_u64(0);
    cyclegan_layers::init_weights(
        &varmap,
        cyclegan_layers::InitType::Normal,
        0.02,
        &mut init_rng,
    )?;
    let tensors = varmap
        .data()
        .lock()
        .map_err(|_| anyhow::anyhow!("variable map poisoned"))?
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
        .collect();
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, device);
    let generator = Generator::new(vb, &config, &rng)?;
    Ok(Translator::new(generator, config, device))
}

/// What a worker runs each timed iteration: a training step, or a translation (`--translate`).
enum Workload {
    Train {
        model: Box<CycleGan>,
        a: Tensor,
        b: Tensor,
    },
    Translate {
        translator: Box<Translator>,
        images: Tensor,
    },
}

impl Workload {
    fn new(
        translate: bool,
        (size, batch, width): (usize, usize, (usize, usize)),
        device: &Device,
    ) -> anyhow::Result<Self> {
        // Drawn on the CPU: on CUDA, candle would make a cuRAND generator for them, which a
        // training run never needs (nor does PyTorch's side, with generators of its own).
        let input = || Tensor::rand(-1f32, 1.0, (batch, 3, size, size), &Device::Cpu);
        Ok(if translate {
            Self::Translate {
                translator: Box::new(translator(width, device)?),
                images: input()?,
            }
        } else {
            Self::Train {
                model: Box::new(CycleGan::new(model_config(width), device, DType::F32, 0)?),
                a: input()?.to_device(device)?,
                b: input()?.to_device(device)?,
            }
        })
    }

    fn run(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Train { model, a, b } => {
                model.train_step(a, b)?;
            }
            Self::Translate { translator, images } => {
                translator.translate(images)?;
            }
        }
        Ok(())
    }
}

fn worker(
    shape: (usize, usize, (usize, usize)),
    (iters, warmup): (usize, usize),
    (fast, translate): (bool, bool),
    device: &Device,
    diagnostics: WorkerDiagnostics,
) -> anyhow::Result<()> {
    let WorkerDiagnostics {
        host_profile,
        profile_measured,
        conv_layouts,
    } = diagnostics;
    cyclegan_layers::ops::set_fast_kernels(fast);
    let size = shape.0;
    let mut workload = Workload::new(translate, shape, device)?;
    let mut times = Vec::new();
    let mut profiler = None;
    let mut cpu_start = thread_cpu();
    for i in 0..warmup + iters {
        if i == warmup {
            profiler = host_profile.map(|_| profile::start()).transpose()?;
            if profile_measured {
                gpu_profiler(device, true)?;
            }
            cpu_start = thread_cpu();
            cyclegan_layers::ops::reset_cudnn_pass_counts();
        }
        let start = Instant::now();
        workload.run()?;
        device.synchronize()?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let cpu_end = thread_cpu();
    if profile_measured {
        gpu_profiler(device, false)?;
    }
    if let (Some(profiler), Some(path)) = (profiler, host_profile) {
        profile::finish(profiler, path)?;
    }
    if conv_layouts {
        for line in cyclegan_layers::ops::cudnn_layout_report(device, iters)? {
            eprintln!("{line}");
        }
    }
    let side = if fast { "ours" } else { "ours-stock-candle" };
    let per_iter = |v: f64| v / iters.max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "side": side,
            "size": size,
            "times": times,
            "peak_rss_mb": peak_rss_mb(),
            "host_cpu_s_per_iter": per_iter(cpu_end.0 - cpu_start.0),
            "cudnn_passes": cyclegan_layers::ops::cudnn_algorithms(),
            "waits_per_iter": per_iter((cpu_end.1 - cpu_start.1) as f64),
        })
    );
    Ok(())
}

/// `--memory-probe`: the device memory in use after each thing a training process sets up on
/// GPU 0, as the driver counts it (device-wide: run it alone on the GPU).
#[cfg(feature = "cuda")]
fn memory_probe() -> anyhow::Result<()> {
    use cyclegan_layers::Activation;
    // Opened as the trainer opens it (its memory pool set up as there).
    let device = cyclegan_layers::device::parse_device("cuda").map_err(anyhow::Error::msg)?;
    let Device::Cuda(dev) = &device else {
        anyhow::bail!("parse_device(\"cuda\") opened no CUDA device")
    };
    let context = dev.cuda_stream().context().clone();
    let in_use = || -> anyhow::Result<f64> {
        let (free, total) = context.mem_get_info()?;
        Ok((total - free) as f64 / (1 << 20) as f64)
    };
    let mut last = 0.0;
    let mut step = |what: &str| -> anyhow::Result<()> {
        device.synchronize()?;
        let now = in_use()?;
        println!("{now:8.1} MiB in use (+{:6.1}) after {what}", now - last);
        last = now;
        Ok(())
    };
    step("the CUDA context (candle's device)")?;
    let x = Tensor::ones((1, 8, 32, 32), DType::F32, &device)?;
    let _ = (
        ((&x + &x)? * 2.0)?.exp()?.sum_all()?,
        x.to_dtype(DType::F64)?,
    );
    step("candle's kernels (fill, binary, affine, unary, reduce, cast)")?;
    let normed = cyclegan_layers::ops::instance_norm(&x, 1e-5, Activation::Relu)?;
    step("this project's kernels (an instance norm)")?;
    let w = Tensor::ones((8, 8, 3, 3), DType::F32, &device)?;
    let _ = cyclegan_layers::ops::conv2d(&normed, &w, None, 1, 1)?;
    step("cuDNN (its handles and one convolution)")?;
    let _ = dev.cublas_handle()?;
    step("a cuBLAS handle (made only for a matmul)")?;
    let _ = x.reshape((8, 1024))?.matmul(&x.reshape((1024, 8))?)?;
    step("a matmul")?;
    let _ = Tensor::rand(0f32, 1.0, 16, &device)?;
    step("a cuRAND generator (made only for random tensors on the device)")?;
    Ok(())
}

#[cfg(not(feature = "cuda"))]
fn memory_probe() -> anyhow::Result<()> {
    anyhow::bail!("--memory-probe needs a build with `--features cuda`")
}

#[cfg(feature = "host-profile")]
mod profile {
    use std::io::Write;

    pub fn start() -> anyhow::Result<pprof::ProfilerGuard<'static>> {
        Ok(pprof::ProfilerGuardBuilder::default()
            .frequency(1000)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()?)
    }

    /// Writes the samples as folded stacks (`root;..;leaf count`), the format flame graph tools
    /// read.
    pub fn finish(guard: pprof::ProfilerGuard<'static>, path: &str) -> anyhow::Result<()> {
        let report = guard.report().build()?;
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for (frames, count) in &report.data {
            let stack: Vec<String> = frames
                .frames
                .iter()
                .rev()
                .flat_map(|symbols| symbols.iter().rev().map(|s| s.name()))
                .collect();
            writeln!(out, "{} {count}", stack.join(";"))?;
        }
        Ok(())
    }
}

#[cfg(not(feature = "host-profile"))]
mod profile {
    pub fn start() -> anyhow::Result<()> {
        anyhow::bail!("--host-profile needs a build with `--features host-profile`")
    }

    pub fn finish(_guard: (), _path: &str) -> anyhow::Result<()> {
        Ok(())
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.get(xs.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs a benchmark child and returns its JSON line; with `gpu_memory`, adds the driver's peak
/// figure for the child's process as `peak_gpu_driver_mb` (nvidia-smi, sampled every 20 ms).
fn run_child(cmd: &mut Command, gpu_memory: bool) -> anyhow::Result<serde_json::Value> {
    let smi = if gpu_memory {
        Command::new("nvidia-smi")
            .args([
                "--query-compute-apps=pid,used_memory",
                "--format=csv,noheader,nounits",
                "-lms",
                "20",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    } else {
        None
    };
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let pid = child.id();
    let out = child.wait_with_output()?;
    let peak_gpu = smi.and_then(|mut smi| {
        let _ = smi.kill();
        let text = String::from_utf8_lossy(&smi.wait_with_output().ok()?.stdout).to_string();
        text.lines()
            .filter_map(|l| {
                let (p, mb) = l.split_once(',')?;
                (p.trim().parse::<u32>().ok()? == pid).then(|| mb.trim().parse::<f64>().ok())?
            })
            .reduce(f64::max)
    });
    if !out.status.success() {
        anyhow::bail!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let mut value: serde_json::Value = serde_json::from_str(line)?;
    if let Some(mb) = peak_gpu {
        value["peak_gpu_driver_mb"] = mb.into();
    }
    Ok(value)
}

/// The largest `key` over the JSON lines of one side.
fn max_of(runs: &[serde_json::Value], key: &str) -> f64 {
    runs.iter()
        .filter_map(|r| r[key].as_f64())
        .fold(f64::NAN, f64::max)
}

/// Every timed iteration of one side.
fn all_times(runs: &[serde_json::Value]) -> Vec<f64> {
    runs.iter()
        .flat_map(|r| serde_json::from_value::<Vec<f64>>(r["times"].clone()).unwrap_or_default())
        .collect()
}

/// What `--help` prints; the module documentation above says what each flag measures.
const USAGE: &str = "\
Full training (or translation) iteration, this project against PyTorch, alternated per round.

usage: bench_iteration [--sizes 128,256] [--rounds 3] [--iters 2] [--warmup 1] [--batch 1]
                       [--ngf 64] [--blocks 9] [--device cpu|cuda] [--translate]
                       [--torch-compile] [--with-stock] [--with-legacy-cudnn]
                       [--with-cudnn-benchmark] [--with-channels-last] [--with-stored-prologues]
       bench_iteration --worker SIZE [...]   one side's child process (ours), one JSON line
       bench_iteration --memory-probe        device memory of each set-up step (CUDA builds)

The preset's iteration: --sizes 64 --ngf 16 --blocks 6. Needs python3 with torch for the
PyTorch side (python/bench_iteration.py). Documentation: the top of
crates/cyclegan-train/examples/bench_iteration.rs and BENCHMARKS.md.
";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    cyclegan_layers::ops::configure_allocator();
    cyclegan_layers::ops::configure_threads();
    let iters = arg(&args, "--iters", 2usize);
    let warmup = arg(&args, "--warmup", 1usize);
    let batch = arg(&args, "--batch", 1usize);
    let (ngf, blocks) = (arg(&args, "--ngf", 64usize), arg(&args, "--blocks", 9usize));
    if let Some(size) = value(&args, "--worker") {
        let device =
            cyclegan_layers::device::parse_device(&arg(&args, "--device", "cpu".to_string()))
                .map_err(anyhow::Error::msg)?;
        let fast = !args.iter().any(|a| a == "--stock");
        cyclegan_layers::ops::set_cudnn_benchmark(args.iter().any(|a| a == "--cudnn-benchmark"));
        cyclegan_layers::ops::set_cuda_channels_last(args.iter().any(|a| a == "--channels-last"));
        cyclegan_layers::ops::set_recompute_prologues(
            !args.iter().any(|a| a == "--store-prologues"),
        );
        let diagnostics = WorkerDiagnostics {
            host_profile: value(&args, "--host-profile"),
            profile_measured: args.iter().any(|a| a == "--profile-measured"),
            conv_layouts: args.iter().any(|a| a == "--conv-layouts"),
        };
        return worker(
            (size.parse()?, batch, (ngf, blocks)),
            (iters, warmup),
            (fast, args.iter().any(|a| a == "--translate")),
            &device,
            diagnostics,
        );
    }
    if args.iter().any(|a| a == "--memory-probe") {
        return memory_probe();
    }
    let sizes: Vec<usize> = arg(&args, "--sizes", "128,256".to_string())
        .split(',')
        .map(|s| {
            s.parse()
                .expect("--sizes takes numbers separated by commas")
        })
        .collect();
    let rounds = arg(&args, "--rounds", 3usize);
    let with_stock = args.iter().any(|a| a == "--with-stock");
    let compiled = args.iter().any(|a| a == "--torch-compile");
    let script = std::env::var("CYCLEGAN_BENCH_SCRIPT").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../python/bench_iteration.py"
        )
        .to_string()
    });
    let exe = std::env::current_exe()?;
    let device = arg(&args, "--device", "cpu".to_string());
    let gpu = device.starts_with("cuda");
    let translate = args.iter().any(|a| a == "--translate");
    let workload = if translate {
        "translation (one generator's forward pass, host to host, no gradients)"
    } else {
        "training iteration"
    };
    println!(
        "machine: {} cores; device {device}; {workload}; resnet_{blocks}blocks, ngf = ndf = {ngf}; batch {batch}; {iters} timed iterations after {warmup} warm-up per process, {rounds} rounds",
        std::thread::available_parallelism()?.get()
    );
    for size in sizes {
        let mut sides: Vec<(&str, Vec<serde_json::Value>)> =
            vec![("ours", vec![]), ("pytorch eager", vec![])];
        if compiled {
            sides.push(("pytorch compiled", vec![]));
        }
        if with_stock {
            sides.push(("ours, stock candle ops", vec![]));
        }
        if args.iter().any(|a| a == "--with-legacy-cudnn") {
            sides.push(("ours, legacy cuDNN calls", vec![]));
        }
        if args.iter().any(|a| a == "--with-channels-last") {
            sides.push(("ours, channels last", vec![]));
        }
        if args.iter().any(|a| a == "--with-stored-prologues") {
            sides.push(("ours, prologues stored", vec![]));
            if args.iter().any(|a| a == "--with-channels-last") {
                sides.push(("ours, channels last, prologues stored", vec![]));
            }
        }
        if args.iter().any(|a| a == "--with-cudnn-benchmark") {
            sides.push(("ours, cudnn.benchmark", vec![]));
            if args.iter().any(|a| a == "--with-channels-last") {
                sides.push(("ours, channels last, cudnn.benchmark", vec![]));
            }
            sides.push(("pytorch eager, cudnn.benchmark", vec![]));
            if compiled {
                sides.push(("pytorch compiled, cudnn.benchmark", vec![]));
            }
        }
        for round in 0..rounds {
            let mut common = vec![
                "--iters".to_string(),
                iters.to_string(),
                "--warmup".into(),
                warmup.to_string(),
                "--device".into(),
                device.clone(),
                "--batch".into(),
                batch.to_string(),
                "--ngf".into(),
                ngf.to_string(),
                "--blocks".into(),
                blocks.to_string(),
            ];
            if translate {
                common.push("--translate".into());
            }
            for (name, runs) in sides.iter_mut() {
                let mut cmd = if name.starts_with("ours") {
                    let mut c = Command::new(&exe);
                    c.args(["--worker", &size.to_string()]).args(&common);
                    if name.contains("stock") {
                        c.arg("--stock");
                    }
                    if name.contains("legacy") {
                        c.env("CYCLEGAN_CUDNN_LEGACY", "1");
                    }
                    if name.contains("benchmark") {
                        c.arg("--cudnn-benchmark");
                    }
                    if name.contains("channels last") {
                        c.arg("--channels-last");
                    }
                    if name.contains("prologues stored") {
                        c.arg("--store-prologues");
                    }
                    c
                } else {
                    let mut c = Command::new("python3");
                    c.arg(&script)
                        .args(["--size", &size.to_string()])
                        .args(&common);
                    if name.contains("compiled") {
                        c.arg("--compile");
                    }
                    if name.contains("benchmark") {
                        c.arg("--cudnn-benchmark");
                    }
                    c
                };
                // A side that fails (out of memory, say) is reported and left out. Each side's
                // line is printed as it ends, so a run cut short by a time limit keeps them.
                match run_child(&mut cmd, gpu) {
                    Ok(run) => {
                        let times = all_times(std::slice::from_ref(&run));
                        let gpu_mb = run["peak_gpu_driver_mb"]
                            .as_f64()
                            .map(|mb| format!(", peak GPU memory {mb:.0} MiB"))
                            .unwrap_or_default();
                        println!("  {size}x{size} round {round}: {name} {times:?} s{gpu_mb}");
                        runs.push(run);
                    }
                    Err(e) => {
                        let first = e.to_string().lines().next().unwrap_or_default().to_string();
                        println!("  {size}x{size} round {round}: {name} FAILED ({first})");
                    }
                }
            }
        }
        let ours = median(all_times(&sides[0].1));
        for (name, runs) in sides.iter().filter(|(_, runs)| !runs.is_empty()) {
            let t = median(all_times(runs));
            let mut line = format!(
                "{size}x{size} batch {batch}: {name} {:.4} s/iter, ours/this {:.3}; peak RSS {:.0} MiB",
                t,
                ours / t,
                max_of(runs, "peak_rss_mb")
            );
            if gpu {
                line += &format!(
                    ", peak GPU memory (driver) {:.0} MiB",
                    max_of(runs, "peak_gpu_driver_mb")
                );
            }
            let passes = runs.iter().find_map(|r| r["cudnn_passes"].as_array());
            if let Some(passes) = passes.filter(|p| !p.is_empty()) {
                let plans = passes
                    .iter()
                    .filter(|p| p.as_str().is_some_and(|p| p.contains(": engine ")))
                    .count();
                line += &format!(
                    ", cuDNN {plans} planned / {} legacy passes",
                    passes.len() - plans
                );
            }
            // On the CPU the work runs on other threads too: the figure says nothing there.
            if gpu && runs.iter().any(|r| r.get("host_cpu_s_per_iter").is_some()) {
                line += &format!(
                    ", host CPU {:.4} s/iter, {:.0} waits/iter",
                    max_of(runs, "host_cpu_s_per_iter"),
                    max_of(runs, "waits_per_iter")
                );
            }
            println!("{line}");
        }
    }
    Ok(())
}
