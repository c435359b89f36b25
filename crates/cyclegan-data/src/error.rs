//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while listing, decoding, transforming or batching images.
///
/// Messages name the file or folder involved. [`DataError::is_bad_image`] tells the
/// per-image failures (which a [`Loader`](crate::Loader) may skip, see
/// [`OnBadImage`](crate::OnBadImage)) from the ones that stop everything.
///
/// A message reads whole on its own: it ends with the system's or decoder's words where there
/// are any, which [`source`](std::error::Error::source) returns too. Print it with `{}`; a chain
/// printer (anyhow's `{:#}` or `{:?}`) repeats that cause, which
/// `cyclegan_layers::device::error_text` leaves out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A dataset folder is missing or is not a folder.
    #[error("dataset folder {} does not exist or is not a folder; {expected}", path.display())]
    MissingFolder {
        /// The folder that was looked for.
        path: PathBuf,
        /// The layout that was expected, in words.
        expected: String,
    },
    /// A dataset folder holds no file with a supported image extension.
    #[error(
        "dataset folder {} holds no images (looked recursively for {}); {expected}",
        path.display(),
        crate::folder::EXTENSIONS_TEXT
    )]
    EmptyFolder {
        /// The folder that was searched.
        path: PathBuf,
        /// The layout that was expected, in words.
        expected: String,
    },
    /// Reading a folder or a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An image file could not be decoded (corrupt, truncated, unsupported or not an image).
    #[error("cannot decode image {}: {reason}", path.display())]
    Decode {
        /// The image file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// An image is smaller than the crop it must yield (the reference's RandomCrop refuses it too).
    #[error(
        "image {} comes to {width}x{height} before its crop, smaller than the {crop}x{crop} crop",
        path.display()
    )]
    TooSmallForCrop {
        /// The image file.
        path: PathBuf,
        /// Its width after the resize step.
        width: u32,
        /// Its height after the resize step.
        height: u32,
        /// The crop size.
        crop: u32,
    },
    /// Images of one batch came out with different sizes and cannot be stacked
    /// (possible with `preprocess` `none` or `scale_width` and a batch size above 1).
    #[error(
        "cannot stack images of different sizes into one batch: {} is {first:?} (CxHxW) but {} is {other:?}; use batch_size 1 or a preprocess that crops",
        first_path.display(),
        other_path.display()
    )]
    BatchShape {
        /// The first image of the batch.
        first_path: PathBuf,
        /// Its shape.
        first: [usize; 3],
        /// The first image whose shape differs.
        other_path: PathBuf,
        /// Its shape.
        other: [usize; 3],
    },
    /// Writing an image failed.
    #[error("cannot write image {}: {reason}", path.display())]
    Encode {
        /// The destination file.
        path: PathBuf,
        /// What the encoder said.
        reason: String,
    },
    /// A tensor had the wrong shape, or a tensor operation failed.
    #[error("tensor error: {0}")]
    Tensor(String),
    /// Options that cannot work together.
    #[error("invalid data options: {0}")]
    InvalidOptions(String),
    /// With bad images skipped, a whole epoch's batches in a row had no readable item: the
    /// images cannot be read at all, and training would run on without a step.
    #[error(
        "no image could be read in {batches} batches in a row (an epoch's worth): every item was skipped as unreadable (see the warnings above); check the dataset's images"
    )]
    NothingReadable {
        /// The batches skipped in a row.
        batches: usize,
    },
    /// A loader worker thread failed unexpectedly (a bug, reported rather than hung on).
    #[error("data loader worker failed: {0}")]
    Worker(String),
}

impl DataError {
    /// True for failures that concern one image file (unreadable, undecodable, too small),
    /// which [`OnBadImage::Skip`](crate::OnBadImage::Skip) skips.
    pub fn is_bad_image(&self) -> bool {
        matches!(
            self,
            DataError::Io { .. } | DataError::Decode { .. } | DataError::TooSmallForCrop { .. }
        )
    }
}

impl From<candle_core::Error> for DataError {
    fn from(e: candle_core::Error) -> Self {
        DataError::Tensor(e.to_string())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
