//! `cargo xtask fetch-dataset`.

use crate::{list_with_sizes, DownloadArgs};
use anyhow::Context;
use cyclegan_fetch::{fetch_dataset, DATASETS, DATASET_BASE_URL, REFUSED_DATASETS};
use std::path::PathBuf;

/// Download one of the reference's CycleGAN datasets to DEST/NAME/{trainA,trainB,testA,testB}.
///
/// The archive is downloaded to a temporary file (an interrupted download resumes, here or on
/// the next run), checked against the server's Content-Length and for trainA and trainB,
/// extracted safely to a temporary folder and moved into place only when complete. A dataset
/// already present is kept unless --force.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The dataset (see --list), e.g. horse2zebra.
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// List the reference's datasets with their sizes (asked of the server).
    #[arg(long, conflicts_with = "name")]
    list: bool,
    /// Where datasets go: DEST/NAME.
    #[arg(long, default_value = "data", value_name = "DIR")]
    dest: PathBuf,
    #[command(flatten)]
    download: DownloadArgs,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list {
        let base = args
            .download
            .base_url
            .as_deref()
            .unwrap_or(DATASET_BASE_URL);
        println!("The reference's CycleGAN datasets ({base}):");
        list_with_sizes(base, "zip", DATASETS, REFUSED_DATASETS);
        return Ok(());
    }
    let name = args.name.expect("clap requires a name without --list");
    cyclegan_fetch::check_dataset(&name)
        .with_context(|| format!("cannot fetch the dataset {name}"))?;
    let _lock = crate::lock_fetch(
        &args.dest.join(format!(".{name}.lock")),
        &format!("the dataset {name}"),
    )?;
    let fetched = fetch_dataset(&name, &args.download.options(&args.dest))
        .with_context(|| format!("cannot fetch the dataset {name}"))?;
    if fetched.already_present {
        crate::report!(
            "{} is present already (pass --force to fetch it again)",
            fetched.path.display()
        );
    } else {
        crate::report!(
            "{}: {} files from {}",
            fetched.path.display(),
            fetched.files,
            crate::human_bytes(fetched.bytes)
        );
    }
    crate::report!(
        "train with: cargo run --release -p cyclegan-train -- --dataroot {}",
        fetched.path.display()
    );
    Ok(())
}
