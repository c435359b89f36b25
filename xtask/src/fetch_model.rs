//! `cargo xtask fetch-model`.

use crate::{list_with_sizes, DownloadArgs};
use anyhow::Context;
use cyclegan_checkpoint::{convert_checkpoint, CheckpointError, ConvertOptions};
use cyclegan_fetch::{fetch_model, MODELS, MODEL_BASE_URL};
use std::path::PathBuf;

/// Download one of the reference's pretrained generators to DEST/NAME_pretrained/latest_net_G.pth
/// and convert it next to it to latest_net_G.safetensors.
///
/// The .pth file is where the reference's test.py looks for it (--name NAME_pretrained); the
/// .safetensors file is ready for `cyclegan-translate --checkpoint`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model (see --list), e.g. horse2zebra or style_monet.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the reference's pretrained models with their sizes (asked of the server).
    #[arg(long)]
    list: bool,
    /// Where models go: DEST/NAME_pretrained/.
    #[arg(long, default_value = "checkpoints", value_name = "DIR")]
    dest: PathBuf,
    #[command(flatten)]
    download: DownloadArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        let base = args.download.base_url.as_deref().unwrap_or(MODEL_BASE_URL);
        println!("The reference's pretrained CycleGAN generators ({base}):");
        list_with_sizes(base, "pth", MODELS, &[]);
        return Ok(());
    }
    let name = args.name.expect("clap requires a name without --list");
    let fetched = fetch_model(&name, &args.download.options(&args.dest))
        .with_context(|| format!("cannot fetch the model {name}"))?;
    let pth = fetched.path;
    let safetensors = pth.with_extension("safetensors");
    if fetched.already_present && safetensors.is_file() {
        println!(
            "{} and {} are present already (pass --force to fetch them again)",
            pth.display(),
            safetensors.display()
        );
    } else {
        let report = match convert_checkpoint(&pth, &safetensors, &ConvertOptions::default()) {
            Ok(report) => report,
            Err(e) => {
                // A fresh download that is no checkpoint at all (an error page, a cut file)
                // must not count as present on the next run.
                let unusable = matches!(
                    e,
                    CheckpointError::NotACheckpoint { .. } | CheckpointError::Truncated { .. }
                );
                if unusable && !fetched.already_present {
                    let _ = std::fs::remove_file(&pth);
                }
                return Err(anyhow::Error::new(e).context(format!(
                    "fetched {} from the server, but it is not a usable checkpoint{}",
                    pth.display(),
                    if unusable { " (removed)" } else { "" }
                )));
            }
        };
        println!("{}: {report}", pth.display());
        println!("{}: written", safetensors.display());
    }
    println!(
        "translate with: cargo run --release -p cyclegan-translate -- --checkpoint {} --input IMAGES --output results",
        safetensors.display()
    );
    Ok(())
}
