//! Fetching the reference's datasets and pretrained models: one call each.
//!
//! - [`fetch_dataset`]: `NAME.zip` from the reference's server (or a mirror) to `DEST/NAME`
//!   with `trainA`, `trainB`, `testA`, `testB`, ready for `cyclegan-train --dataroot DEST/NAME`;
//! - [`fetch_model`]: a pretrained generator to `DEST/NAME_pretrained/latest_net_G.pth`
//!   (convert it with `cyclegan-checkpoint`, or read it directly).
//!
//! Downloads ([`download`]) go to a temporary `.part` file, show a progress bar (bytes, rate,
//! ETA), are checked against the server's `Content-Length` (no pinned sizes, so mirrors work)
//! and resume with HTTP `Range` after an interruption, in the same run or the next. Extraction
//! ([`extract_zip`]) refuses entries that would land outside the destination (absolute paths,
//! `..`) and symbolic links, verifies every entry, and renames the result into place only when
//! it is complete: a failure never leaves half a dataset.
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

pub use catalog::{
    check_dataset, check_model, join_url, DATASETS, DATASET_BASE_URL, MODELS, MODEL_BASE_URL,
    REFUSED_DATASETS,
};
pub use download::{download, partial_path, remote_size, DownloadOptions};
pub use error::FetchError;
pub use extract::{extract_zip, safe_entry_path, Extracted};
pub use fetch::{fetch_dataset, fetch_model, model_path, FetchOptions, Fetched};
