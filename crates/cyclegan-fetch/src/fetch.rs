//! Fetching a named dataset or pretrained model of the reference.

use crate::catalog::{check_dataset, check_model, join_url, DATASET_BASE_URL, MODEL_BASE_URL};
use crate::download::{download, DownloadOptions};
use crate::extract::extract_zip;
use crate::FetchError;
use std::path::{Path, PathBuf};

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The folder datasets (`DEST/NAME`) or models (`DEST/NAME_pretrained`) go to.
    pub dest: PathBuf,
    /// Replaces the reference's server (a mirror, or a test server): `BASE/NAME.zip` or
    /// `BASE/NAME.pth` is fetched.
    pub base_url: Option<String>,
    /// Fetch again even when the dataset or model is already present.
    pub force: bool,
    /// How the download behaves (retries, progress bar, timeouts).
    pub download: DownloadOptions,
}

impl FetchOptions {
    /// Options for `dest`, from the reference's server, keeping what is present.
    pub fn new(dest: impl Into<PathBuf>) -> Self {
        Self {
            dest: dest.into(),
            base_url: None,
            force: false,
            download: DownloadOptions::default(),
        }
    }
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The dataset folder or the model file.
    pub path: PathBuf,
    /// `true` when it was present already and nothing was fetched.
    pub already_present: bool,
    /// Bytes downloaded (the archive's or model's size); 0 when already present.
    pub bytes: u64,
    /// Files extracted (datasets); 0 for models and when already present.
    pub files: usize,
}

fn has_content(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Fetches the reference dataset `name` into `options.dest/name` (`trainA`, `trainB`,
/// `testA`, `testB`, whatever its archive holds), ready for `cyclegan-train --dataroot`.
///
/// Refuses names the reference does not serve (and cityscapes, with its reason). A dataset
/// already present is left alone unless `options.force`. The archive is downloaded to a
/// temporary file (resumed after an interruption, checked against the server's
/// `Content-Length`), extracted safely to a temporary folder, and renamed into place only when
/// complete; it is deleted afterwards.
pub fn fetch_dataset(name: &str, options: &FetchOptions) -> Result<Fetched, FetchError> {
    check_dataset(name)?;
    let target = options.dest.join(name);
    // Only a folder is ever replaced (with `force`): a file of that name is the user's.
    if target.exists() && !target.is_dir() {
        return Err(FetchError::Io {
            path: target,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "is a file, where the dataset's folder goes: move it away, or pass another --dest",
            ),
        });
    }
    if options.dest.exists() && !options.dest.is_dir() {
        return Err(FetchError::Io {
            path: options.dest.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "is a file: --dest must be a folder",
            ),
        });
    }
    if has_content(&target) && !options.force {
        tracing::info!(
            "{} is present already; fetch it again with `force` (--force)",
            target.display()
        );
        return Ok(Fetched {
            path: target,
            already_present: true,
            bytes: 0,
            files: 0,
        });
    }
    std::fs::create_dir_all(&options.dest).map_err(FetchError::io(&options.dest))?;
    let base = options.base_url.as_deref().unwrap_or(DATASET_BASE_URL);
    let url = join_url(base, &format!("{name}.zip"));
    let archive = options.dest.join(format!(".{name}.zip"));
    let bytes = download(&url, &archive, &options.download)?;
    remove_stale_staging(&options.dest, name);
    tracing::info!("extracting {} to {}", archive.display(), target.display());
    let extracted = extract_zip(&archive, &options.dest, name, true);
    // A complete archive is not kept: on success it is spent, and one that cannot be
    // extracted would fail the same way again.
    let _ = std::fs::remove_file(&archive);
    let extracted = extracted?;
    Ok(Fetched {
        path: extracted.path,
        already_present: false,
        bytes,
        files: extracted.files,
    })
}

/// Removes the temporary folders of extractions that were killed before they could clean up.
fn remove_stale_staging(dest: &Path, name: &str) {
    let prefix = format!(".{name}.extract-");
    let Ok(entries) = std::fs::read_dir(dest) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            tracing::info!(
                "removing {}, left by an interrupted extraction",
                entry.path().display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The file a pretrained model is saved as: `dest/NAME_pretrained/latest_net_G.pth`, where
/// the reference's `test.py --name NAME_pretrained` looks for it.
pub fn model_path(dest: &Path, name: &str) -> PathBuf {
    dest.join(format!("{name}_pretrained"))
        .join("latest_net_G.pth")
}

/// Fetches the reference's pretrained generator `name` to [`model_path`]. A model already
/// present is left alone unless `options.force`, which replaces it with the download as it
/// comes (the download itself is resumable and atomic, but this function does not check that
/// the file is a generator: `cargo xtask fetch-model --force` sets the old model aside and
/// puts it back unless the new one loads as a generator).
pub fn fetch_model(name: &str, options: &FetchOptions) -> Result<Fetched, FetchError> {
    check_model(name)?;
    let path = model_path(&options.dest, name);
    if path.is_file() && !options.force {
        tracing::info!(
            "{} is present already; fetch it again with `force` (--force)",
            path.display()
        );
        return Ok(Fetched {
            path,
            already_present: true,
            bytes: 0,
            files: 0,
        });
    }
    let dir = path.parent().expect("model path has a folder");
    std::fs::create_dir_all(dir).map_err(FetchError::io(dir))?;
    let base = options.base_url.as_deref().unwrap_or(MODEL_BASE_URL);
    let url = join_url(base, &format!("{name}.pth"));
    let bytes = download(&url, &path, &options.download)?;
    Ok(Fetched {
        path,
        already_present: false,
        bytes,
        files: 0,
    })
}
