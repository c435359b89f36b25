//! Data-loading benchmark, this project's loader against the reference's, side by side.
//!
//! ```text
//! cargo run --release -p cyclegan-data --example bench_loader -- --make-synthetic /tmp/loader-data 200
//! cargo run --release -p cyclegan-data --example bench_loader -- --dataroot /tmp/loader-data --workers 1,2 --rounds 3
//! ```
//! Each round runs this project's [`Loader`] over `<dataroot>/trainA` and `trainB` in a child
//! process, then the reference's pipeline (`python/bench_loader.py`: its `UnalignedDataset`
//! transforms under a torch `DataLoader`) in another, with the same number of worker processes
//! or threads, so both sides see the same machine state. The reference's training defaults:
//! resize to 286x286 (bicubic), random 256x256 crop, random flip, a random B for each A, batch
//! 1, shuffled. Reported: images per second (A and B each count) over each epoch after the
//! first, the median per side, and the ratio. A GPU trains at 256x256 with batch 1 at about 25
//! iterations a second (`BENCHMARKS.md`), 50 images a second; the loader must keep ahead of that.
//!
//! `--make-synthetic DIR N` writes N 256x256 JPEGs (quality 90, as photographs of the
//! reference's datasets are stored) into each of `DIR/trainA` and `DIR/trainB`: smooth colour
//! fields with noise, so that they compress like photographs rather than like flat colour.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use cyclegan_data::image::{codecs::jpeg::JpegEncoder, Rgb, RgbImage};
use cyclegan_data::{DataOptions, Loader, LoaderOptions, UnalignedDataset};

/// The value after flag `name`, if given.
fn value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn make_synthetic(dir: &Path, count: usize) -> anyhow::Result<()> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for side in ["trainA", "trainB"] {
        let folder = dir.join(side);
        std::fs::create_dir_all(&folder)?;
        for i in 0..count {
            let phase: Vec<f32> = (0..6).map(|_| (next() % 1000) as f32 / 100.0).collect();
            let img = RgbImage::from_fn(256, 256, |x, y| {
                let (x, y) = (x as f32 / 40.0, y as f32 / 40.0);
                let noise = (next() % 24) as f32;
                let channel = |k: usize| {
                    let v = 100.0
                        + 60.0 * (x + phase[k]).sin() * (y * 0.7 + phase[k + 3]).cos()
                        + noise;
                    v.clamp(0.0, 255.0) as u8
                };
                Rgb([channel(0), channel(1), channel(2)])
            });
            let file = std::fs::File::create(folder.join(format!("{i:05}.jpg")))?;
            JpegEncoder::new_with_quality(std::io::BufWriter::new(file), 90).encode_image(&img)?;
        }
    }
    println!(
        "wrote {count} JPEGs into each of {0}/trainA and {0}/trainB",
        dir.display()
    );
    Ok(())
}

/// The child process: loads `epochs` epochs with `workers` threads and prints one JSON line with
/// the images per second of each epoch.
fn worker(dataroot: &str, workers: usize, epochs: u64) -> anyhow::Result<()> {
    let data = UnalignedDataset::open(dataroot, &DataOptions::default())?;
    let loader = Loader::new(
        data,
        LoaderOptions {
            workers,
            prefetch: 2 * workers.max(1),
            last_epoch: Some(epochs),
            ..Default::default()
        },
    )?;
    let mut rates = Vec::new();
    let (mut images, mut start, mut epoch) = (0usize, Instant::now(), 1);
    for batch in loader {
        let batch = batch?;
        if batch.pos.epoch != epoch {
            rates.push(images as f64 / start.elapsed().as_secs_f64());
            (images, start, epoch) = (0, Instant::now(), batch.pos.epoch);
        }
        images += batch.a.dim(0)? + batch.b.dim(0)?;
    }
    rates.push(images as f64 / start.elapsed().as_secs_f64());
    println!(
        "{}",
        serde_json::json!({ "side": "ours", "images_per_s": rates })
    );
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(dir) = value(&args, "--make-synthetic") {
        let count = args
            .iter()
            .skip_while(|a| *a != "--make-synthetic")
            .nth(2)
            .map_or(Ok(200), |n| n.parse())?;
        return make_synthetic(Path::new(&dir), count);
    }
    let dataroot = value(&args, "--dataroot")
        .ok_or_else(|| anyhow::anyhow!("--dataroot DIR (with trainA/ and trainB/) is needed"))?;
    let epochs: u64 = value(&args, "--epochs").map_or(Ok(3), |v| v.parse())?;
    if let Some(workers) = value(&args, "--worker") {
        return worker(&dataroot, workers.parse()?, epochs);
    }
    let rounds: usize = value(&args, "--rounds").map_or(Ok(3), |v| v.parse())?;
    let script = std::env::var("CYCLEGAN_BENCH_SCRIPT").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/bench_loader.py").to_string()
    });
    let exe = std::env::current_exe()?;
    println!(
        "machine: {} cores; {dataroot}; load 286, crop 256, flip, batch 1; {epochs} epochs per process, the first left out; {rounds} rounds",
        std::thread::available_parallelism()?.get()
    );
    for workers in value(&args, "--workers")
        .unwrap_or_else(|| "2".into())
        .split(',')
    {
        let (mut ours, mut reference) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            for (name, rates) in [("ours", &mut ours), ("reference", &mut reference)] {
                let mut cmd = if name == "ours" {
                    let mut c = Command::new(&exe);
                    c.args(["--worker", workers]);
                    c
                } else {
                    let mut c = Command::new("python3");
                    c.arg(&script).args(["--workers", workers]);
                    c
                };
                cmd.args(["--dataroot", &dataroot, "--epochs", &epochs.to_string()]);
                let out = cmd.output()?;
                if !out.status.success() {
                    let err = String::from_utf8_lossy(&out.stderr);
                    let last = err.lines().last().unwrap_or_default();
                    println!("  {workers} workers, round {round}: {name} FAILED ({last})");
                    continue;
                }
                let stdout = String::from_utf8_lossy(&out.stdout);
                let line: serde_json::Value =
                    serde_json::from_str(stdout.lines().last().unwrap_or_default())?;
                let per_epoch: Vec<f64> = line["images_per_s"]
                    .as_array()
                    .map(|v| v.iter().filter_map(|r| r.as_f64()).collect())
                    .unwrap_or_default();
                println!("  {workers} workers, round {round}: {name} {per_epoch:.0?} images/s");
                rates.extend(per_epoch.into_iter().skip(1));
            }
        }
        if ours.is_empty() || reference.is_empty() {
            continue;
        }
        let (ours, reference) = (median(ours), median(reference));
        println!(
            "{workers} workers: ours {ours:.0} images/s, reference {reference:.0} images/s, ours / reference {:.2}x the rate",
            ours / reference
        );
    }
    Ok(())
}
