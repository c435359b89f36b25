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
    // A --force fetch that was interrupted left the model it replaces set aside: back first.
    Previous::recover(&[&pth, &safetensors])?;
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

/// Files moved aside (`NAME.previous`) while a replacement is fetched. They are deleted once
/// the replacement is checked, so one still there means a fetch that did not finish.
#[derive(Default)]
struct Previous(Vec<(PathBuf, PathBuf)>);

/// Where `path` waits while its replacement is fetched.
fn aside_path(path: &Path) -> PathBuf {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".previous");
    PathBuf::from(aside)
}

impl Previous {
    /// Puts back what an interrupted fetch set aside, over anything it left in its place
    /// (unchecked): the model is then as it was before that fetch.
    fn recover(paths: &[&Path]) -> anyhow::Result<()> {
        for path in paths {
            let aside = aside_path(path);
            if aside.is_file() {
                std::fs::rename(&aside, path).map_err(|e| {
                    anyhow::anyhow!(
                        "cannot put {} (set aside by an interrupted --force fetch) back as {}: {e}; move it back by hand",
                        aside.display(),
                        path.display()
                    )
                })?;
                tracing::warn!(
                    "put {} back in place: an earlier --force fetch did not finish",
                    path.display()
                );
            }
        }
        Ok(())
    }

    fn move_aside(paths: &[&Path]) -> anyhow::Result<Self> {
        let mut moved = Previous::default();
        for path in paths.iter().filter(|p| p.is_file()) {
            let aside = aside_path(path);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fetch interrupted after moving the model aside (and after writing an unchecked
    /// replacement of one file) leaves the old model back in place on the next run.
    #[test]
    fn an_interrupted_force_fetch_is_undone_on_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let pth = dir.path().join("latest_net_G.pth");
        let safetensors = dir.path().join("latest_net_G.safetensors");
        std::fs::write(&pth, "old pth").unwrap();
        std::fs::write(&safetensors, "old safetensors").unwrap();
        let kept = Previous::move_aside(&[&pth, &safetensors]).unwrap();
        assert!(!kept.is_empty() && !pth.exists() && !safetensors.exists());
        // The interrupted run got as far as a new .pth, never checked.
        std::fs::write(&pth, "new, unchecked").unwrap();
        drop(kept);
        Previous::recover(&[&pth, &safetensors]).unwrap();
        assert_eq!(std::fs::read_to_string(&pth).unwrap(), "old pth");
        assert_eq!(
            std::fs::read_to_string(&safetensors).unwrap(),
            "old safetensors"
        );
        assert!(!aside_path(&pth).exists() && !aside_path(&safetensors).exists());
        // Nothing set aside: nothing changes.
        Previous::recover(&[&pth, &safetensors]).unwrap();
        assert_eq!(std::fs::read_to_string(&pth).unwrap(), "old pth");
    }

    #[test]
    fn a_checked_replacement_discards_the_old_model() {
        let dir = tempfile::tempdir().unwrap();
        let pth = dir.path().join("m.pth");
        std::fs::write(&pth, "old").unwrap();
        let kept = Previous::move_aside(&[&pth]).unwrap();
        std::fs::write(&pth, "new").unwrap();
        kept.discard();
        Previous::recover(&[&pth]).unwrap();
        assert_eq!(std::fs::read_to_string(&pth).unwrap(), "new");
    }
}
