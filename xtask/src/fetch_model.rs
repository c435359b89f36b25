//! `cargo xtask fetch-model`.

use crate::{list_with_sizes, DownloadArgs};
use anyhow::Context;
use cyclegan_checkpoint::{
    convert_checkpoint, describe_config, CheckpointError, ConversionReport, ConvertOptions,
};
use cyclegan_fetch::{
    download_model, join_url, model_path, remove_download, MODELS, MODEL_BASE_URL,
};
use cyclegan_models::NetworkConfig;
use std::path::{Path, PathBuf};

/// Download one of the reference's pretrained generators to DEST/NAME_pretrained/latest_net_G.pth
/// and convert it next to it to latest_net_G.safetensors.
///
/// The .pth file is where the reference's test.py looks for it (--name NAME_pretrained); the
/// .safetensors file is ready for `cyclegan-translate --checkpoint`. The download goes to a
/// hidden file beside them (resumed after an interruption) and is moved into place only once
/// it has been checked to be a generator: with --force, the model in place stays there until
/// then.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model (see --list), e.g. horse2zebra or style_monet.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the reference's pretrained models with their sizes (asked of the server).
    #[arg(long, conflicts_with = "name")]
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
    let cannot = || format!("cannot fetch the model {name}");
    cyclegan_fetch::check_model(&name).with_context(cannot)?;
    let options = args.download.options(&args.dest);
    let pth = model_path(&args.dest, &name);
    let safetensors = pth.with_extension("safetensors");
    // A swap that was interrupted left the model it replaces set aside: back first.
    Previous::recover(&[&pth, &safetensors])?;
    // Conversions are written here and moved into place only once checked.
    let converted = pth.with_file_name(".latest_net_G.safetensors");

    if pth.is_file() && !options.force {
        if safetensors.is_file() {
            // Written only beside a .pth checked to be a generator.
            crate::report!(
                "{} and {} are present already (pass --force to fetch them again)",
                pth.display(),
                safetensors.display()
            );
        } else {
            // Copied in by hand, or left by a run whose conversion failed: checked here.
            let report = match check_generator(&pth, &converted) {
                Ok(report) => report,
                Err(Check::Local(e)) => anyhow::bail!(
                    "{} is present already, but cannot be converted to {}: {e}",
                    pth.display(),
                    safetensors.display()
                ),
                Err(Check::Unusable(e)) => anyhow::bail!(
                    "{} is present already (nothing was fetched), but it is not a usable pretrained generator: {e}; it was left as it is: move it away, or pass --force to fetch the reference's model in its place",
                    pth.display()
                ),
            };
            std::fs::rename(&converted, &safetensors).with_context(|| {
                format!(
                    "cannot move {} to {}",
                    converted.display(),
                    safetensors.display()
                )
            })?;
            crate::report!("{}: {report}", pth.display());
            crate::report!("{}: written", safetensors.display());
        }
        return translate_hint(&safetensors);
    }

    let fetched = download_model(&name, &options).with_context(cannot)?;
    let downloaded = &fetched.path;
    let report = match check_generator(downloaded, &converted) {
        Ok(report) => report,
        Err(Check::Local(e)) => anyhow::bail!(
            "cannot check the download {}: {e}; it is complete and was kept: make room (or fix what the error says) and run the command again, which uses it without downloading it again",
            downloaded.display()
        ),
        Err(Check::Unusable(e)) => {
            remove_download(downloaded);
            let base = options.base_url.as_deref().unwrap_or(MODEL_BASE_URL);
            anyhow::bail!(
                "{} is not a usable pretrained generator: {e}; the download was removed{} (is --base-url right?)",
                join_url(base, &format!("{name}.pth")),
                if pth.is_file() {
                    format!(" and {} was left as it was", pth.display())
                } else {
                    String::new()
                }
            );
        }
    };
    // Only now, with the new model complete and checked, is the one in place set aside; a kill
    // between these renames is undone by the next run (`Previous::recover`).
    let kept = Previous::move_aside(&[&pth, &safetensors])?;
    if let Err(e) = std::fs::rename(downloaded, &pth) {
        kept.restore();
        anyhow::bail!(
            "cannot move {} to {}: {e}; the download is complete and was kept (run the command again to use it)",
            downloaded.display(),
            pth.display()
        );
    }
    if let Err(e) = std::fs::rename(&converted, &safetensors) {
        let _ = std::fs::rename(&pth, downloaded);
        kept.restore();
        anyhow::bail!(
            "cannot move {} to {}: {e}; the download {} is complete and was kept (run the command again to use it)",
            converted.display(),
            safetensors.display(),
            downloaded.display()
        );
    }
    kept.discard();
    remove_download(downloaded);
    crate::report!("{}: {report}", pth.display());
    crate::report!("{}: written", safetensors.display());
    translate_hint(&safetensors)
}

fn translate_hint(safetensors: &Path) -> anyhow::Result<()> {
    crate::report!(
        "translate with: cargo run --release -p cyclegan-translate -- --checkpoint {} --input IMAGES --output results",
        safetensors.display()
    );
    Ok(())
}

/// Why a file did not pass as a pretrained generator (each error's text says it all: it has
/// no context, and `CheckpointError`'s text already includes its source).
enum Check {
    /// This machine's fault (reading it, or writing the conversion): the file may be fine.
    Local(anyhow::Error),
    /// The file's: not a checkpoint, or not a generator.
    Unusable(anyhow::Error),
}

/// Converts `pth` to `converted` (a `.safetensors` file), checking that it is a generator;
/// `converted` is removed unless it is.
fn check_generator(pth: &Path, converted: &Path) -> Result<ConversionReport, Check> {
    let outcome = match convert_checkpoint(pth, converted, &ConvertOptions::default()) {
        Ok(report) => match report.config {
            NetworkConfig::Generator(_) => return Ok(report),
            other => Check::Unusable(anyhow::anyhow!(
                "it holds a {}, not a generator",
                describe_config(&other)
            )),
        },
        Err(e @ (CheckpointError::Io { .. } | CheckpointError::Write { .. })) => {
            Check::Local(e.into())
        }
        Err(e) => Check::Unusable(e.into()),
    };
    let _ = std::fs::remove_file(converted);
    Err(outcome)
}

/// Files moved aside (`NAME.previous`) while their checked replacements are moved into place.
/// They are deleted once the replacements are there, so one still there means a swap that did
/// not finish.
#[derive(Default)]
struct Previous(Vec<(PathBuf, PathBuf)>);

/// Where `path` waits while its replacement is fetched.
fn aside_path(path: &Path) -> PathBuf {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".previous");
    PathBuf::from(aside)
}

impl Previous {
    /// Puts back what an interrupted swap set aside, over anything it left in its place: the
    /// model is then as it was before that fetch (a pair that belongs together).
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

    /// A fetch interrupted after moving the model aside (and after moving one file of its
    /// replacement into place) leaves the old model back in place on the next run.
    #[test]
    fn an_interrupted_force_fetch_is_undone_on_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let pth = dir.path().join("latest_net_G.pth");
        let safetensors = dir.path().join("latest_net_G.safetensors");
        std::fs::write(&pth, "old pth").unwrap();
        std::fs::write(&safetensors, "old safetensors").unwrap();
        let kept = Previous::move_aside(&[&pth, &safetensors]).unwrap();
        assert!(!pth.exists() && !safetensors.exists());
        // The interrupted run got as far as the new .pth, without its .safetensors.
        std::fs::write(&pth, "new").unwrap();
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
