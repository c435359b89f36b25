//! The error type of this crate.

use std::path::PathBuf;

/// Why training could not start or go on. Each message names the file, folder or option
/// involved and what to do; the variants sort them by what the caller can do about it.
///
/// A message reads whole on its own: it ends with the system's or decoder's words where there
/// are any, which [`source`](std::error::Error::source) returns too. Print it with `{}`; a chain
/// printer (anyhow's `{:#}` or `{:?}`) repeats that cause, which
/// `cyclegan_layers::device::error_text` leaves out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// The options describe no run this trainer can do (a device that cannot be opened, images
    /// the networks cannot take at these sizes, a results path that is a file).
    #[error("{0}")]
    Options(String),
    /// Another training run holds the run folder ([`lock_run`](crate::trainer::lock_run)).
    #[error("{} is in use by another training run ({holder}): wait for it to end (or stop it), or pass another --name", .run_dir.display())]
    RunInUse {
        /// The run folder.
        run_dir: PathBuf,
        /// What the holder wrote into the lock ("pid 4242, cyclegan-train").
        holder: String,
    },
    /// What the run folder holds does not allow what was asked: a new run over one it holds, a
    /// continue with nothing to continue from, networks of another architecture, a damaged
    /// training state, a saved position past the end of the data.
    #[error("{0}")]
    RunFolder(String),
    /// The training or test data: a missing folder, a folder without images.
    #[error(transparent)]
    Data(#[from] cyclegan_data::DataError),
    /// A training image that cannot be read, with `--on-bad-image fail` (the default).
    #[error("{0}; fix or remove the file, or pass --on-bad-image skip to leave such images out")]
    BadImage(cyclegan_data::DataError),
    /// A network checkpoint that could not be read or written.
    #[error(transparent)]
    Checkpoint(#[from] cyclegan_checkpoint::CheckpointError),
    /// The test set's translation at the end of the run.
    #[error(transparent)]
    Translate(#[from] cyclegan_translate::TranslateError),
    /// A file or folder of the run that could not be read, written, moved or deleted.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path ("cannot write checkpoints/x/loss_log.txt").
        context: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A training iteration failed (say, the GPU ran out of memory), on these images.
    #[error("training on A {a} and B {b}: {source}")]
    Step {
        /// The batch's A images.
        a: String,
        /// The batch's B images.
        b: String,
        /// What failed (boxed: the variant stays small).
        source: Box<candle_core::Error>,
    },
    /// Any other tensor operation.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

impl TrainError {
    /// For `map_err`: an I/O error with what was being done (`"cannot write {path}"`).
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> TrainError {
        let context = context.into();
        move |source| TrainError::Io { context, source }
    }
}

/// This crate's result type.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
