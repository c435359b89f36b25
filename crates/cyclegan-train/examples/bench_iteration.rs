//! Full-iteration benchmark, this project against PyTorch, side by side on the same machine.
//!
//! ```text
//! cargo run --release -p cyclegan-train --example bench_iteration -- --sizes 128,256 --rounds 3 --iters 2
//! ```
//! Each round runs this project's iteration in a child process, then the PyTorch reference's
//! (`python/bench_iteration.py`) in another, alternating, so both see the same machine state.
//! Reported: the median seconds per iteration of each side, their ratio (ours / PyTorch), and
//! each process's peak resident memory. The architecture is the reference's: resnet_9blocks,
//! basic D, instance norm, ngf = ndf = 64, pool 50, batch 1, f32, on `--device` (cpu, cuda).

use candle_core::{DType, Device, Tensor};
use cyclegan_train::model::{CycleGan, ModelConfig};
use std::process::Command;
use std::time::Instant;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
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

/// The child process: times this project's iteration and prints one JSON line.
fn worker(
    size: usize,
    iters: usize,
    warmup: usize,
    fast: bool,
    device: &Device,
) -> anyhow::Result<()> {
    cyclegan_layers::ops::set_fast_cpu_kernels(fast);
    let mut model = CycleGan::new(ModelConfig::default(), device, DType::F32, 0)?;
    let a = Tensor::rand(-1f32, 1.0, (1, 3, size, size), device)?;
    let b = Tensor::rand(-1f32, 1.0, (1, 3, size, size), device)?;
    let mut times = Vec::new();
    for i in 0..warmup + iters {
        let start = Instant::now();
        model.train_step(&a, &b)?;
        device.synchronize()?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    let side = if fast { "ours" } else { "ours-stock-candle" };
    println!(
        "{}",
        serde_json::json!({"side": side, "size": size, "times": times, "peak_rss_mb": peak_rss_mb()})
    );
    Ok(())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn run_child(cmd: &mut Command) -> anyhow::Result<serde_json::Value> {
    let out = cmd.output()?;
    if !out.status.success() {
        anyhow::bail!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(line)?)
}

fn main() -> anyhow::Result<()> {
    cyclegan_layers::ops::configure_threads();
    let args: Vec<String> = std::env::args().collect();
    let iters = arg(&args, "--iters", 2usize);
    let warmup = arg(&args, "--warmup", 1usize);
    if let Some(size) = args
        .iter()
        .position(|a| a == "--worker")
        .and_then(|i| args.get(i + 1))
    {
        let device = cyclegan_translate::parse_device(&arg(&args, "--device", "cpu".to_string()))
            .map_err(anyhow::Error::msg)?;
        let fast = !args.iter().any(|a| a == "--stock");
        return worker(size.parse()?, iters, warmup, fast, &device);
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
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../python/bench_iteration.py"
    );
    let exe = std::env::current_exe()?;
    let device = arg(&args, "--device", "cpu".to_string());
    println!("machine: {} cores; {iters} timed iterations after {warmup} warm-up per process, {rounds} rounds", std::thread::available_parallelism()?.get());
    for size in sizes {
        let mut ours = Vec::new();
        let mut torch = Vec::new();
        let mut stock = Vec::new();
        let (mut rss_ours, mut rss_torch) = (0.0f64, 0.0f64);
        for round in 0..rounds {
            let common = [
                "--iters".to_string(),
                iters.to_string(),
                "--warmup".into(),
                warmup.to_string(),
                "--device".into(),
                device.clone(),
            ];
            let o = run_child(
                Command::new(&exe)
                    .args(["--worker", &size.to_string()])
                    .args(&common),
            )?;
            let t = run_child(
                Command::new("python3")
                    .arg(script)
                    .args(["--size", &size.to_string()])
                    .args(&common),
            )?;
            let times = |v: &serde_json::Value| -> Vec<f64> {
                serde_json::from_value(v["times"].clone()).unwrap()
            };
            ours.extend(times(&o));
            torch.extend(times(&t));
            rss_ours = rss_ours.max(o["peak_rss_mb"].as_f64().unwrap_or(0.0));
            rss_torch = rss_torch.max(t["peak_rss_mb"].as_f64().unwrap_or(0.0));
            if with_stock {
                let s = run_child(
                    Command::new(&exe)
                        .args(["--worker", &size.to_string(), "--stock"])
                        .args(&common),
                )?;
                stock.extend(times(&s));
            }
            println!(
                "  {size}x{size} round {round}: ours {:?} s, pytorch {:?} s",
                times(&o),
                times(&t)
            );
        }
        let (mo, mt) = (median(ours), median(torch));
        println!(
            "{size}x{size}: ours {mo:.3} s/iter, pytorch {mt:.3} s/iter, ratio ours/pytorch {:.3}; peak RSS ours {rss_ours:.0} MiB, pytorch {rss_torch:.0} MiB",
            mo / mt
        );
        if with_stock {
            println!(
                "{size}x{size}: stock candle ops {:.3} s/iter (ratio to pytorch {:.2})",
                median(stock.clone()),
                median(stock) / mt
            );
        }
    }
    Ok(())
}
