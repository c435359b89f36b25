//! `cargo xtask fetch-model`.

use crate::{list_with_sizes, DownloadArgs};
use anyhow::Context;
use cyclegan_checkpoint::{
    convert_checkpoint, describe_config, CheckpointError, ConversionReport, ConvertOptions,
    FileSet, Recovered,
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
    debug_assert!(pth.ends_with(PTH) && safetensors.ends_with(SAFETENSORS));
    let _lock = crate::lock_fetch(&pth.with_file_name(".lock"), &format!("the model {name}"))?;
    let model_dir = pth
        .parent()
        .expect("model_path is DEST/NAME_pretrained/FILE");
    // A swap that was interrupted: finished if its files were all in hand, else undone.
    recover_swap(model_dir, &[&pth, &safetensors])?;
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
    // Only now, with the new model complete and checked, are both files replaced, as a set: a
    // kill at any moment leaves the old pair or the new one (see `recover_swap`).
    let swapped = (|| {
        let mut set = FileSet::begin(model_dir, MODEL_SET)?;
        set.adopt(PTH, downloaded)?;
        set.adopt(SAFETENSORS, &converted)?;
        set.commit()
    })();
    if let Err(e) = swapped {
        anyhow::bail!(
            "cannot put the new model in place in {}: {e}; {}",
            model_dir.display(),
            if downloaded.is_file() {
                format!(
                    "the download {} is complete and was kept (run the command again to use it)",
                    downloaded.display()
                )
            } else {
                "run the command again to finish".to_string()
            }
        );
    }
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

/// The set of files a fetch replaces together in the model's folder ([`FileSet`]).
const MODEL_SET: &str = "latest_net_G";
const PTH: &str = "latest_net_G.pth";
const SAFETENSORS: &str = "latest_net_G.safetensors";

/// Settles a swap of the model's files that a kill interrupted: a set committed with both new
/// files is put in place, an uncommitted one dropped (the old pair stays). Versions before the
/// file sets moved the old pair aside as `FILE.previous` first; those are put back.
fn recover_swap(model_dir: &Path, files: &[&Path]) -> anyhow::Result<()> {
    let recovered = cyclegan_checkpoint::recover_file_sets(model_dir).with_context(|| {
        format!(
            "cannot finish an interrupted fetch in {}",
            model_dir.display()
        )
    })?;
    for done in recovered {
        match done {
            Recovered::Completed(_) => tracing::warn!(
                "{}: put the model of an interrupted fetch in place (it was complete and checked)",
                model_dir.display()
            ),
            Recovered::Discarded(_) => tracing::warn!(
                "{}: an earlier fetch was interrupted while replacing the model; the model in place stays",
                model_dir.display()
            ),
        }
    }
    for path in files {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".previous");
        let aside = PathBuf::from(aside);
        if aside.is_file() {
            std::fs::rename(&aside, path).with_context(|| {
                format!(
                    "cannot put {} (set aside by an interrupted --force fetch) back as {}; move it back by hand",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// A fetch killed while it moved the new pair into place (one file moved) is finished; one
    /// killed before its commit leaves the old pair.
    #[test]
    fn an_interrupted_swap_is_settled_on_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (pth, safetensors) = (d.join(PTH), d.join(SAFETENSORS));
        std::fs::write(&pth, "old pth").unwrap();
        std::fs::write(&safetensors, "old safetensors").unwrap();

        std::fs::create_dir(d.join(".latest_net_G.staging")).unwrap();
        std::fs::write(d.join(".latest_net_G.staging").join(PTH), "new pth").unwrap();
        recover_swap(d, &[&pth, &safetensors]).unwrap();
        assert_eq!(read(&pth), "old pth");
        assert!(!d.join(".latest_net_G.staging").exists());

        std::fs::create_dir(d.join(".latest_net_G.commit")).unwrap();
        std::fs::write(
            d.join(".latest_net_G.commit").join(SAFETENSORS),
            "new safetensors",
        )
        .unwrap();
        std::fs::write(&pth, "new pth").unwrap();
        recover_swap(d, &[&pth, &safetensors]).unwrap();
        assert_eq!(read(&pth), "new pth");
        assert_eq!(read(&safetensors), "new safetensors");
        assert!(!d.join(".latest_net_G.commit").exists());
    }

    /// What an earlier version left when killed mid-swap: the old pair set aside as
    /// `.previous`, and part of the new one in place. The old pair is put back.
    #[test]
    fn a_pair_set_aside_by_an_earlier_version_is_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (pth, safetensors) = (d.join(PTH), d.join(SAFETENSORS));
        std::fs::write(d.join("latest_net_G.pth.previous"), "old pth").unwrap();
        std::fs::write(
            d.join("latest_net_G.safetensors.previous"),
            "old safetensors",
        )
        .unwrap();
        std::fs::write(&pth, "new").unwrap();
        recover_swap(d, &[&pth, &safetensors]).unwrap();
        assert_eq!(read(&pth), "old pth");
        assert_eq!(read(&safetensors), "old safetensors");
        assert!(!d.join("latest_net_G.pth.previous").exists());
        recover_swap(d, &[&pth, &safetensors]).unwrap();
        assert_eq!(read(&pth), "old pth");
    }
}
