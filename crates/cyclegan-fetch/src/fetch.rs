//! Fetching a named dataset or pretrained model of the reference.

use crate::catalog::{
    check_dataset, check_model, join_url, required_folders, DATASET_BASE_URL, MODEL_BASE_URL,
};
use crate::download::{download, remove_download, DownloadOptions};
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
/// `Content-Length`), checked for the dataset's folders ([`required_folders`]), extracted
/// safely to a temporary folder, and renamed into place only when complete; it is deleted
/// afterwards, and when it is damaged or not the dataset. When extraction fails for a local
/// reason (disk full), the complete archive is kept and the next call extracts it without
/// downloading it again. A dataset set aside by a `force` fetch that was killed before the new
/// one was in place is put back first.
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
    restore_interrupted(&options.dest, name)?;
    if has_content(&target) && !options.force {
        // The caller reports it.
        tracing::debug!("{} is present already", target.display());
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
    tracing::info!("extracting {} to {}", archive.display(), target.display());
    match extract_zip(&archive, &options.dest, name, true, required_folders(name)) {
        Ok(extracted) => {
            remove_download(&archive);
            Ok(Fetched {
                path: extracted.path,
                already_present: false,
                bytes,
                files: extracted.files,
            })
        }
        // This machine's fault: the archive is fine and kept for the next run.
        Err(FetchError::Io { path, source }) => Err(FetchError::KeptDownload {
            path,
            source,
            download: archive,
        }),
        // The archive's fault: it would fail the same way again.
        Err(e) => {
            remove_download(&archive);
            Err(e)
        }
    }
}

/// Cleans up after extractions that were killed before they could: a dataset that a `force`
/// fetch had set aside (`.NAME.extract-*/previous`) is put back where it is missing, then the
/// temporary folders are removed.
fn restore_interrupted(dest: &Path, name: &str) -> Result<(), FetchError> {
    let prefix = format!(".{name}.extract-");
    let Ok(entries) = std::fs::read_dir(dest) else {
        return Ok(());
    };
    let target = dest.join(name);
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let previous = entry.path().join("previous");
        if previous.is_dir() && !has_content(&target) {
            // An empty folder in its place is no dataset (`has_content`).
            let _ = std::fs::remove_dir(&target);
            std::fs::rename(&previous, &target).map_err(|source| FetchError::Io {
                path: previous.clone(),
                source: std::io::Error::new(
                    source.kind(),
                    format!(
                        "cannot put it back as {} ({source}): move it back by hand",
                        target.display()
                    ),
                ),
            })?;
            tracing::warn!(
                "put {} back in place: a --force fetch was interrupted while replacing it",
                target.display()
            );
        }
        tracing::info!(
            "removing {}, left by an interrupted extraction",
            entry.path().display()
        );
        let _ = std::fs::remove_dir_all(entry.path());
    }
    Ok(())
}

/// The file a pretrained model is saved as: `dest/NAME_pretrained/latest_net_G.pth`, where
/// the reference's `test.py --name NAME_pretrained` looks for it.
pub fn model_path(dest: &Path, name: &str) -> PathBuf {
    dest.join(format!("{name}_pretrained"))
        .join("latest_net_G.pth")
}

/// Where [`download_model`] puts a model until it is checked and moved into place: a hidden
/// file beside [`model_path`] (`.latest_net_G.pth`, resumed from `.latest_net_G.pth.part`).
pub fn model_download_path(dest: &Path, name: &str) -> PathBuf {
    model_path(dest, name).with_file_name(".latest_net_G.pth")
}

/// Downloads the reference's pretrained generator `name` to [`model_download_path`], leaving
/// the model in place (if any) alone: resumable, and a complete download left by an earlier
/// run is used without downloading it again. The caller checks the file and moves it to
/// [`model_path`] (or removes it with [`remove_download`](crate::remove_download)).
pub fn download_model(name: &str, options: &FetchOptions) -> Result<Fetched, FetchError> {
    check_model(name)?;
    let path = model_download_path(&options.dest, name);
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

/// Fetches the reference's pretrained generator `name` to [`model_path`]. A model already
/// present is left alone unless `options.force`, which replaces it once the download is
/// complete ([`download_model`]; the model in place stays there until then). This function
/// does not check that the file is a generator: `cargo xtask fetch-model` does, before it
/// moves the download into place.
pub fn fetch_model(name: &str, options: &FetchOptions) -> Result<Fetched, FetchError> {
    check_model(name)?;
    let path = model_path(&options.dest, name);
    if path.is_file() && !options.force {
        tracing::debug!("{} is present already", path.display());
        return Ok(Fetched {
            path,
            already_present: true,
            bytes: 0,
            files: 0,
        });
    }
    let downloaded = download_model(name, options)?;
    std::fs::rename(&downloaded.path, &path).map_err(|source| FetchError::KeptDownload {
        path: path.clone(),
        source,
        download: downloaded.path.clone(),
    })?;
    remove_download(&downloaded.path);
    Ok(Fetched { path, ..downloaded })
}
