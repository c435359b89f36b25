//! Fetching the reference's datasets and pretrained models: one call each.
//!
//! - [`fetch_dataset`]: `NAME.zip` from the reference's server (or a mirror) to `DEST/NAME`
//!   with `trainA`, `trainB`, `testA`, `testB`, ready for `cyclegan-train --dataroot DEST/NAME`;
//! - [`fetch_model`]: a pretrained generator to `DEST/NAME_pretrained/latest_net_G.pth`
//!   (convert it with `cyclegan-checkpoint`, or read it directly).
//!
//! Downloads ([`download`]) go to a temporary `.part` file, show a progress bar (bytes, rate,
//! ETA), are checked against the server's `Content-Length` (no pinned sizes, so mirrors work)
//! and resume with HTTP `Range` after an interruption, in the same run or the next, only from
//! the same address and the same version of the file (a note beside the partial file says
//! which); a complete download left by an interrupted run is used rather than fetched again.
//! Extraction ([`extract_zip`]) refuses entries that would land outside the destination
//! (absolute paths, `..`), symbolic links and archives without the dataset's folders, verifies
//! every entry, and renames the result into place only when it is complete: a failure never
//! leaves half a dataset, and a failure of this machine's (disk full) keeps the download.
//! Both check the free space first: a download of known length, and an archive's declared
//! content, that would not fit are refused before anything is written.
//!
//! ```no_run
//! use cyclegan_fetch::{fetch_dataset, FetchOptions};
//! let fetched = fetch_dataset("horse2zebra", &FetchOptions::new("data"))?;
//! println!("{} ({} files)", fetched.path.display(), fetched.files);
//! # Ok::<(), cyclegan_fetch::FetchError>(())
//! ```

#![warn(missing_docs)]

mod catalog;
mod download;
mod error;
mod extract;
mod fetch;
mod space;

pub use catalog::{
    check_dataset, check_model, join_url, required_folders, DATASETS, DATASET_BASE_URL, MODELS,
    MODEL_BASE_URL, REFUSED_DATASETS,
};
pub use download::{
    check_url, download, partial_path, remote_size, remove_download, DownloadOptions,
};
pub use error::FetchError;
pub use extract::{extract_zip, Extracted, SPLIT_NAMES};
pub use fetch::{
    download_model, fetch_dataset, fetch_model, model_download_path, model_path, FetchOptions,
    Fetched,
};
