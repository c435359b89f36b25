//! `cyclegan-train`: parses the options and runs [`cyclegan_train::train`].

use clap::Parser;
use cyclegan_train::{train_with_stop, Cli, TrainConfig};
use indicatif::ProgressBar;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The progress bar, so log lines can be printed above it instead of through it.
static BAR: OnceLock<ProgressBar> = OnceLock::new();

/// Set by the first Ctrl-C (or SIGTERM): training stops after the current iteration and saves
/// the latest checkpoint.
static STOP: AtomicBool = AtomicBool::new(false);

/// The exit status of a run stopped by a signal (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

/// The first Ctrl-C asks training to stop and save; a second one quits at once.
fn install_stop_handler() {
    let installed = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: quitting without saving");
            std::process::exit(INTERRUPTED.into());
        }
        tracing::warn!(
            "interrupted: stopping after this iteration and saving the latest checkpoint (Ctrl-C again quits at once)"
        );
    });
    if let Err(e) = installed {
        tracing::warn!("no Ctrl-C handler ({e}): an interrupt stops training without saving");
    }
}

/// Writes log lines to stderr, suspending the progress bar while doing so.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BAR.get() {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn main() -> ExitCode {
    cyclegan_layers::ops::configure_allocator();
    cyclegan_layers::ops::configure_threads();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(|| LogWriter)
        .with_ansi(cyclegan_layers::device::log_colours())
        .init();
    install_stop_handler();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(INTERRUPTED),
        Err(e) => {
            if let Some(bar) = BAR.get() {
                bar.abandon();
            }
            let message = cyclegan_layers::device::error_text(e.as_ref());
            eprintln!("error: {message}");
            if cyclegan_layers::device::is_out_of_memory(&message) {
                eprintln!(
                    "hint: the GPU ran out of memory; a smaller --batch-size or --crop-size (or --ngf/--ndf) needs less"
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// Trains as `cli` says; false when interrupted.
fn run(cli: &Cli) -> anyhow::Result<bool> {
    let mut run_lock = None;
    // A continued run starts from the options it was trained with.
    let base = if cli.continue_train {
        let probe = TrainConfig::resolve(cli, None).map_err(anyhow::Error::msg)?;
        // Held through training (which takes it again), so that no other run changes the
        // options read here; a missing folder is the training loop's to report.
        if probe.run_dir().is_dir() {
            run_lock = cyclegan_train::trainer::lock_run(&probe.run_dir())?;
        }
        // An interrupted save or --overwrite may have left another run's options in place.
        cyclegan_train::trainer::recover_interrupted(&probe.run_dir())?;
        let saved = probe.run_dir().join("options.json");
        match std::fs::read_to_string(&saved) {
            Ok(text) => Some(serde_json::from_str::<TrainConfig>(&text).map_err(|e| {
                anyhow::anyhow!(
                    "{} is not a valid options file ({e}): restore it, or delete it to continue with the options this command line gives",
                    saved.display()
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => anyhow::bail!(
                "cannot read {} ({e}): it holds the options this run was trained with; make it readable, or delete it to continue with the options this command line gives",
                saved.display()
            ),
        }
    } else {
        None
    };
    let config = TrainConfig::resolve(cli, base).map_err(anyhow::Error::msg)?;
    if cli.display_id.is_some_and(|id| id > 0) || cli.use_wandb {
        tracing::info!(
            "visdom and wandb are not supported: the losses go to loss_log.jsonl and loss_log.txt, the curves and samples to web/index.html"
        );
    }
    if config.embedded {
        tracing::info!(
            "no --dataroot: training on the embedded {} with a preset for a small CPU (pass --dataroot for the reference's defaults)",
            config.dataroot.display()
        );
    }
    let bar = if config.progress {
        Some(BAR.get_or_init(ProgressBar::no_length))
    } else {
        None
    };
    let report = train_with_stop(&config, bar, &STOP)?;
    drop(run_lock);
    tracing::info!("checkpoints: {}", report.run_dir.display());
    if let Some(results) = &report.results_dir {
        tracing::info!(
            "test translations: {}",
            results.join("index.html").display()
        );
    }
    Ok(!report.interrupted)
}
