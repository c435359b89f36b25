//! Per-layer CPU benchmark: forward + backward of every convolution, instance norm and padding
//! shape of one CycleGAN training iteration (resnet_9blocks generator, 70x70 PatchGAN, batch 1),
//! with the fast kernels, with stock candle (`ops::set_fast_kernels(false)`), and with
//! PyTorch (`benches/bench_ops_torch.py --serve`, a child process that times a layer on
//! request). The sides alternate layer by layer (fast, PyTorch, stock), round after round, so
//! that drifts in the machine's speed hit them alike; each figure is the median over rounds of
//! the per-round medians.
//!
//! ```text
//! cargo run --release -p cyclegan-layers --example bench_ops -- --size 256 --rounds 3
//! ```
//!
//! Options: `--size N` (image side, 256), `--rounds N` (3), `--reps N` (timed repetitions per
//! round, 3), `--warmup N` (1), `--stock-rounds N` (rounds that also time stock candle, with one
//! repetition each, 1; 0 skips it), `--no-torch`, `--python PATH` (`python3`), `--only a,b`,
//! `--cpu-time` (Rust side only: CPU time summed over the process's threads instead of wall
//! time, from `/proc/self/task/*/schedstat`; a rough gauge for comparing kernel variants on a
//! busy machine, not a substitute for wall time on an idle one).
//!
//! Every input and parameter tracks its gradient and the backward pass starts from a fixed
//! random output gradient, on both sides. Times are medians, in milliseconds; the sums weight
//! each layer by how often one generator plus one discriminator pass uses it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Instant;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor, Var};
use cyclegan_layers::ops::{self, Activation};
use cyclegan_layers::PaddingType;

/// One benchmarked layer shape.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Conv {
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
        hw: usize,
    },
    ConvT {
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
        op: usize,
        hw: usize,
    },
    NormRelu {
        c: usize,
        hw: usize,
    },
    ReflectPad {
        c: usize,
        hw: usize,
        p: usize,
    },
}

/// `(name, uses per generator + discriminator iteration, shape)`; in sync with
/// `layers()` in `benches/bench_ops_torch.py`.
fn layers(size: usize) -> Vec<(&'static str, usize, Kind)> {
    let (s, q, e) = (size, size / 4, size / 8);
    let conv = |cin, cout, k, s, p, hw| Kind::Conv {
        cin,
        cout,
        k,
        s,
        p,
        hw,
    };
    vec![
        ("g_c7s1_64", 1, conv(3, 64, 7, 1, 0, s + 6)),
        ("g_down128", 1, conv(64, 128, 3, 2, 1, s)),
        ("g_down256", 1, conv(128, 256, 3, 2, 1, s / 2)),
        ("g_res", 18, conv(256, 256, 3, 1, 0, q + 2)),
        (
            "g_up128",
            1,
            Kind::ConvT {
                cin: 256,
                cout: 128,
                k: 3,
                s: 2,
                p: 1,
                op: 1,
                hw: q,
            },
        ),
        (
            "g_up64",
            1,
            Kind::ConvT {
                cin: 128,
                cout: 64,
                k: 3,
                s: 2,
                p: 1,
                op: 1,
                hw: s / 2,
            },
        ),
        ("g_c7s1_3", 1, conv(64, 3, 7, 1, 0, s + 6)),
        ("d_c64", 1, conv(3, 64, 4, 2, 1, s)),
        ("d_c128", 1, conv(64, 128, 4, 2, 1, s / 2)),
        ("d_c256", 1, conv(128, 256, 4, 2, 1, q)),
        ("d_c512", 1, conv(256, 512, 4, 1, 1, e)),
        ("d_head", 1, conv(512, 1, 4, 1, 1, e - 1)),
        ("in64_relu", 2, Kind::NormRelu { c: 64, hw: s }),
        ("in128_relu", 2, Kind::NormRelu { c: 128, hw: s / 2 }),
        ("in256_relu", 19, Kind::NormRelu { c: 256, hw: q }),
        ("pad3_reflect_c3", 1, Kind::ReflectPad { c: 3, hw: s, p: 3 }),
        (
            "pad3_reflect_c64",
            1,
            Kind::ReflectPad { c: 64, hw: s, p: 3 },
        ),
        (
            "pad1_reflect_c256",
            18,
            Kind::ReflectPad {
                c: 256,
                hw: q,
                p: 1,
            },
        ),
    ]
}

/// Makes `grad` the gradient of the tensor it is applied to: its forward pass is a scalar 0,
/// its backward pass returns `grad`, so `y.apply_op1(SeedGrad(g)).backward()` back-propagates
/// exactly `g` from `y` (PyTorch's `y.backward(g)`), with no extra loss computation.
struct SeedGrad(Tensor);

impl CustomOp1 for SeedGrad {
    fn name(&self) -> &'static str {
        "seed-grad"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        Ok((CpuStorage::F32(vec![0.0]), Shape::from(())))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, _grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.0.clone()))
    }
}

fn randn(dims: &[usize]) -> Result<Var> {
    Var::from_tensor(&(Tensor::randn(0f32, 1.0, dims, &Device::Cpu)? * 0.5)?)
}

/// The layer's variables and its forward pass.
type Layer = (Vec<Var>, Box<dyn Fn(&[Var]) -> Result<Tensor>>);

fn build(kind: Kind) -> Result<Layer> {
    Ok(match kind {
        Kind::Conv {
            cin,
            cout,
            k,
            s,
            p,
            hw,
        } => (
            vec![
                randn(&[1, cin, hw, hw])?,
                randn(&[cout, cin, k, k])?,
                randn(&[cout])?,
            ],
            Box::new(move |v: &[Var]| ops::conv2d(&v[0], &v[1], Some(&v[2]), s, p)),
        ),
        Kind::ConvT {
            cin,
            cout,
            k,
            s,
            p,
            op,
            hw,
        } => (
            vec![
                randn(&[1, cin, hw, hw])?,
                randn(&[cin, cout, k, k])?,
                randn(&[cout])?,
            ],
            Box::new(move |v: &[Var]| ops::conv_transpose2d(&v[0], &v[1], Some(&v[2]), s, p, op)),
        ),
        Kind::NormRelu { c, hw } => (
            vec![randn(&[1, c, hw, hw])?],
            Box::new(|v: &[Var]| ops::instance_norm(&v[0], ops::NORM_EPS, Activation::Relu)),
        ),
        Kind::ReflectPad { c, hw, p } => (
            vec![randn(&[1, c, hw, hw])?],
            Box::new(move |v: &[Var]| ops::pad2d(&v[0], p, PaddingType::Reflect)),
        ),
    })
}

/// Nanoseconds the process's threads have run (Linux), for `--cpu-time`.
fn cpu_time_ns() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A clock in milliseconds: wall time, or CPU time with `--cpu-time`.
fn now_ms(cpu_time: bool) -> f64 {
    thread_local!(static START: Instant = Instant::now());
    if cpu_time {
        cpu_time_ns() as f64 * 1e-6
    } else {
        START.with(|s| s.elapsed().as_secs_f64() * 1e3)
    }
}

/// Median forward and backward milliseconds of `reps` runs after `warmup` runs.
fn time_layer(kind: Kind, reps: usize, warmup: usize, cpu_time: bool) -> Result<(f64, f64)> {
    let (vars, forward) = build(kind)?;
    let mut grad = None;
    let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
    for i in 0..warmup + reps {
        let t0 = now_ms(cpu_time);
        let y = forward(&vars)?;
        let t1 = now_ms(cpu_time);
        let g = match &grad {
            Some(g) => g,
            None => grad.insert(Tensor::randn(0f32, 1.0, y.dims(), &Device::Cpu)?),
        };
        let grads = y.apply_op1(SeedGrad(g.clone()))?.backward()?;
        let t2 = now_ms(cpu_time);
        assert!(
            vars.iter().all(|v| grads.get(v).is_some()),
            "missing gradient"
        );
        drop(grads);
        if i >= warmup {
            fwd.push(t1 - t0);
            bwd.push(t2 - t1);
        }
    }
    Ok((median(&mut fwd), median(&mut bwd)))
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

struct Args {
    size: usize,
    rounds: usize,
    reps: usize,
    warmup: usize,
    stock_rounds: usize,
    torch: bool,
    cpu_time: bool,
    python: String,
    only: Vec<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        size: 256,
        rounds: 3,
        reps: 3,
        warmup: 1,
        stock_rounds: 1,
        torch: true,
        cpu_time: false,
        python: "python3".into(),
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--size" => args.size = value().parse().expect("--size"),
            "--rounds" => args.rounds = value().parse().expect("--rounds"),
            "--reps" => args.reps = value().parse().expect("--reps"),
            "--warmup" => args.warmup = value().parse().expect("--warmup"),
            "--stock-rounds" => args.stock_rounds = value().parse().expect("--stock-rounds"),
            "--python" => args.python = value(),
            "--only" => args.only = value().split(',').map(str::to_owned).collect(),
            "--no-torch" => args.torch = false,
            "--cpu-time" => args.cpu_time = true,
            other => panic!("unknown option {other} (see the example's documentation)"),
        }
    }
    args
}

/// Per-layer samples of one side: name -> (forward ms, backward ms), one per round.
type Samples = HashMap<&'static str, (Vec<f64>, Vec<f64>)>;

fn record(samples: &mut Samples, name: &'static str, (f, b): (f64, f64)) {
    let entry = samples.entry(name).or_default();
    entry.0.push(f);
    entry.1.push(b);
}

/// The PyTorch side: `bench_ops_torch.py --serve`, answering one layer at a time.
struct Torch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Torch {
    fn spawn(args: &Args) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/bench_ops_torch.py");
        let mut child = Command::new(&args.python)
            .arg(script)
            .args(["--size", &args.size.to_string(), "--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the PyTorch benchmark (see --python)");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// Median forward and backward milliseconds of one layer.
    fn time(&mut self, name: &str, reps: usize, warmup: usize) -> (f64, f64) {
        writeln!(self.stdin, "{name} {reps} {warmup}").expect("writing to PyTorch");
        self.stdin.flush().expect("writing to PyTorch");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("reading from PyTorch");
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields[..] {
            [got, f, b] if got == name => (
                f.parse().expect("forward ms"),
                b.parse().expect("backward ms"),
            ),
            _ => panic!("unexpected answer from PyTorch for {name}: {line:?}"),
        }
    }
}

impl Drop for Torch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> Result<()> {
    // As the trainer sets the process up.
    ops::configure_allocator();
    ops::configure_threads();
    let args = parse_args();
    let layers: Vec<_> = layers(args.size)
        .into_iter()
        .filter(|l| args.only.is_empty() || args.only.iter().any(|o| o == l.0))
        .collect();
    println!(
        "size {0}x{0}, batch 1, f32, {1} threads, {2} rounds x {3} reps (+{4} warm-up)",
        args.size,
        candle_core::utils::get_num_threads(),
        args.rounds,
        args.reps,
        args.warmup
    );
    let mut torch = args.torch.then(|| Torch::spawn(&args));
    let (mut fast, mut stock, mut pytorch) = (Samples::new(), Samples::new(), Samples::new());
    for round in 0..args.rounds {
        eprintln!("round {} / {}", round + 1, args.rounds);
        for &(name, _, kind) in &layers {
            ops::set_fast_kernels(true);
            let timing = time_layer(kind, args.reps, args.warmup, args.cpu_time)?;
            record(&mut fast, name, timing);
            if let Some(torch) = torch.as_mut() {
                record(&mut pytorch, name, torch.time(name, args.reps, args.warmup));
            }
            if round < args.stock_rounds {
                ops::set_fast_kernels(false);
                let timing = time_layer(kind, 1, 0, args.cpu_time);
                ops::set_fast_kernels(true);
                record(&mut stock, name, timing?);
            }
        }
    }
    report(&layers, &fast, &stock, &pytorch);
    Ok(())
}

/// Median forward, backward and their sum for one layer of one side.
fn summary(samples: &Samples, name: &str) -> Option<(f64, f64, f64)> {
    let (f, b) = samples.get(name)?;
    let (f, b) = (median(&mut f.clone()), median(&mut b.clone()));
    Some((f, b, f + b))
}

fn report(
    layers: &[(&'static str, usize, Kind)],
    fast: &Samples,
    stock: &Samples,
    torch: &Samples,
) {
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    println!();
    println!(
        "| layer | uses | fast fwd | fast bwd | fast total | stock total | torch fwd | torch bwd \
         | torch total | fast / torch | stock / torch |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut sums: HashMap<(&str, bool), [f64; 3]> = HashMap::new();
    for &(name, uses, kind) in layers {
        let f = summary(fast, name);
        let s = summary(stock, name);
        let t = summary(torch, name);
        println!(
            "| {name} | {uses} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(f.map(|v| v.0)),
            fmt(f.map(|v| v.1)),
            fmt(f.map(|v| v.2)),
            fmt(s.map(|v| v.2)),
            fmt(t.map(|v| v.0)),
            fmt(t.map(|v| v.1)),
            fmt(t.map(|v| v.2)),
            ratio(f.map(|v| v.2), t.map(|v| v.2)),
            ratio(s.map(|v| v.2), t.map(|v| v.2)),
        );
        let is_conv = matches!(kind, Kind::Conv { .. } | Kind::ConvT { .. });
        for (key, side) in [
            (("fast", is_conv), f),
            (("stock", is_conv), s),
            (("torch", is_conv), t),
        ] {
            let entry = sums.entry(key).or_insert([0.0; 3]);
            match side {
                Some(v) => {
                    entry[0] += uses as f64 * v.2;
                    entry[1] += v.2;
                }
                None => entry[2] = f64::NAN,
            }
        }
    }
    println!();
    println!("| sum (ms) | fast | stock | torch | fast / torch | stock / torch |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, conv, weighted) in [
        ("convolutions, each shape once", true, false),
        ("convolutions, weighted by uses", true, true),
        ("norms + pads, weighted by uses", false, true),
    ] {
        let get = |side: &str| {
            // v[2] is NaN when some layer lacks this side.
            let v = sums.get(&(side, conv)).filter(|v| !v[2].is_nan())?;
            Some(if weighted { v[0] } else { v[1] })
        };
        let (f, s, t) = (get("fast"), get("stock"), get("torch"));
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            fmt(f),
            fmt(s),
            fmt(t),
            ratio(f, t),
            ratio(s, t)
        );
    }
}
