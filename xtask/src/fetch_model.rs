//! `cargo xtask fetch-model`.

use crate::{list_with_sizes, DownloadArgs};
use cyclegan_checkpoint::{convert_checkpoint, describe_config, ConvertOptions};
use cyclegan_fetch::{fetch_model, MODELS, MODEL_BASE_URL};
use cyclegan_models::NetworkConfig;
use std::path::{Path, PathBuf};

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
    let options = args.download.options(&args.dest);
    let pth = cyclegan_fetch::model_path(&args.dest, &name);
    let safetensors = pth.with_extension("safetensors");
    // With --force, the model in place is moved aside and put back unless the new download
    // proves to be a usable generator: a bad download never costs a good model.
    let kept = if options.force {
        Previous::move_aside(&[&pth, &safetensors])?
    } else {
        Previous::default()
    };
    let fetched = match fetch_model(&name, &options) {
        Ok(fetched) => fetched,
        Err(e) => {
            kept.restore();
            return Err(anyhow::Error::new(e).context(format!("cannot fetch the model {name}")));
        }
    };
    if fetched.already_present && safetensors.is_file() {
        crate::report!(
            "{} and {} are present already (pass --force to fetch them again)",
            pth.display(),
            safetensors.display()
        );
    } else {
        let checked = convert_checkpoint(&pth, &safetensors, &ConvertOptions::default())
            .map_err(anyhow::Error::new)
            .and_then(|report| match report.config {
                NetworkConfig::Generator(_) => Ok(report),
                other => Err(anyhow::anyhow!(
                    "it holds a {}, not a generator",
                    describe_config(&other)
                )),
            });
        let report = match checked {
            Ok(report) => report,
            Err(e) => {
                // A fresh download that is no usable generator (an error page, a cut file,
                // another network) must not count as present on the next run.
                if !fetched.already_present {
                    let _ = std::fs::remove_file(&pth);
                    let _ = std::fs::remove_file(&safetensors);
                }
                kept.restore();
                return Err(e.context(format!(
                    "fetched {} from the server, but it is not a usable pretrained generator{}",
                    pth.display(),
                    if fetched.already_present {
                        " (pass --force to fetch it again)"
                    } else if kept.is_empty() {
                        " (removed)"
                    } else {
                        " (removed; the model there before is back in place)"
                    }
                )));
            }
        };
        kept.discard();
        crate::report!("{}: {report}", pth.display());
        crate::report!("{}: written", safetensors.display());
    }
    crate::report!(
        "translate with: cargo run --release -p cyclegan-translate -- --checkpoint {} --input IMAGES --output results",
        safetensors.display()
    );
    Ok(())
}

/// Files moved aside (`NAME.previous`) while a replacement is fetched.
#[derive(Default)]
struct Previous(Vec<(PathBuf, PathBuf)>);

impl Previous {
    fn move_aside(paths: &[&Path]) -> anyhow::Result<Self> {
        let mut moved = Previous::default();
        for path in paths.iter().filter(|p| p.is_file()) {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".previous");
            let aside = PathBuf::from(aside);
            if let Err(e) = std::fs::rename(path, &aside) {
                moved.restore();
                anyhow::bail!(
                    "cannot move {} aside to fetch it again: {e}",
                    path.display()
                );
            }
            moved.0.push((path.to_path_buf(), aside));
        }
        Ok(moved)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Puts the files back in place.
    fn restore(&self) {
        for (path, aside) in &self.0 {
            if let Err(e) = std::fs::rename(aside, path) {
                tracing::error!(
                    "cannot put {} back as {}: {e}",
                    aside.display(),
                    path.display()
                );
            }
        }
    }

    /// Deletes the files set aside, once their replacements are in place.
    fn discard(&self) {
        for (_, aside) in &self.0 {
            let _ = std::fs::remove_file(aside);
        }
    }
}
