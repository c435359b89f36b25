//! `cyclegan-translate`: translate images with a CycleGAN generator checkpoint.

use clap::Parser;
use cyclegan_data::{DataOptions, Preprocess};
use cyclegan_translate::{translate_files, Resize, TranslateOptions, Translator};
use std::path::PathBuf;

/// Translate an image or a folder of images with a generator checkpoint: one written by
/// cyclegan-train (latest_net_G_A.safetensors), a converted one, or a reference .pth.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Generator checkpoint (.safetensors or .pth).
    #[arg(long)]
    checkpoint: PathBuf,
    /// An image file, or a folder searched recursively for images.
    #[arg(long)]
    input: PathBuf,
    /// Output folder: receives images/<stem>_real.png, images/<stem>_fake.png and index.html.
    #[arg(long)]
    output: PathBuf,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// On CUDA, compute f32 convolutions in full f32 instead of TF32 (allowed by default, as in
    /// PyTorch).
    #[arg(long = "no-tf32", alias = "no_tf32")]
    no_tf32: bool,
    /// Resize as the reference's test.py does (resize_and_crop, crop, scale_width,
    /// scale_width_and_crop, none) instead of translating each image at its own size.
    #[arg(long)]
    preprocess: Option<Preprocess>,
    /// With --preprocess: the size images are resized to.
    #[arg(long = "load-size", alias = "load_size", default_value_t = 256)]
    load_size: u32,
    /// With --preprocess: the crop size.
    #[arg(long = "crop-size", alias = "crop_size", default_value_t = 256)]
    crop_size: u32,
    /// Evaluation mode (batch norm running statistics, no dropout), the reference's --eval.
    #[arg(long)]
    eval: bool,
}

fn main() -> std::process::ExitCode {
    cyclegan_layers::ops::configure_allocator();
    cyclegan_layers::ops::configure_threads();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("error: {message}");
            if cyclegan_layers::device::is_out_of_memory(&message) {
                eprintln!(
                    "hint: the GPU ran out of memory; large images fit when resized first (--preprocess scale_width --load-size N), or on the CPU"
                );
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let device = cyclegan_translate::parse_device(&cli.device).map_err(anyhow::Error::msg)?;
    cyclegan_layers::ops::set_cuda_tf32(!cli.no_tf32);
    let translator = Translator::load(&cli.checkpoint, &device)?.with_eval(cli.eval);
    let resize = match cli.preprocess {
        None => Resize::Native,
        Some(preprocess) => Resize::Reference(DataOptions {
            phase: "test".into(),
            preprocess,
            load_size: cli.load_size,
            crop_size: cli.crop_size,
            ..DataOptions::default()
        }),
    };
    let opts = TranslateOptions {
        input: cli.input,
        output: cli.output,
        resize,
        progress: true,
    };
    let start = std::time::Instant::now();
    let summary = translate_files(&translator, &opts)?;
    let seconds = start.elapsed().as_secs_f64();
    let count = summary.translated.len();
    tracing::info!(
        "translated {count} image(s) in {seconds:.2} s ({:.1} per second), skipped {}; open {}",
        count as f64 / seconds,
        summary.skipped.len(),
        summary.index.display()
    );
    Ok(())
}
