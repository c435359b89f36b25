//! The error type of this crate.

use std::path::{Path, PathBuf};

/// Why a checkpoint could not be read, mapped or written.
///
/// A message reads whole on its own: it ends with the system's or decoder's words where there
/// are any, which [`source`](std::error::Error::source) returns too. Print it with `{}`; a chain
/// printer (anyhow's `{:#}` or `{:?}`) repeats that cause, which
/// `cyclegan_layers::device::error_text` leaves out.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file could not be written (nothing already there was changed).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A safetensors file whose header or data is damaged.
    #[error("{path} is not a valid safetensors file ({reason}); was it truncated or is it another kind of file?")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the safetensors reader said.
        reason: String,
    },
    /// An architecture description that does not parse.
    #[error("{path}: invalid architecture description: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What the JSON reader said.
        reason: String,
    },
    /// The file is none of the formats this crate reads.
    #[error("{path} is not a checkpoint: {found}; expected a safetensors file, a PyTorch zip checkpoint (torch.save, PyTorch >= 1.6) or a legacy PyTorch checkpoint (torch.save of older PyTorch)")]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// What the file looks like instead.
        found: String,
    },
    /// The file ends before its content does.
    #[error("{path} is truncated: {detail}; download or copy it again")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it ends and what was still expected.
        detail: String,
    },
    /// A `.pth` file whose structure is damaged or uses something this reader does not know.
    #[error("{path} is not a readable PyTorch checkpoint: {reason}")]
    InvalidPth {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the record or tensor.
        reason: String,
    },
    /// A `.pth` file that holds something other than a `state_dict` of tensors.
    #[error("{path} does not hold a state_dict: found {found}; expected a dict of tensors as written by torch.save(net.state_dict(), path)")]
    NotAStateDict {
        /// The file.
        path: PathBuf,
        /// What the file holds instead.
        found: String,
    },
    /// A `state_dict` whose keys and shapes match no architecture this project builds (or not
    /// the one the options asked for).
    #[error("{}the state_dict matches no network this project builds.\n  found: {found}\n  expected: {expected}", location(path))]
    Architecture {
        /// The file, where known.
        path: Option<PathBuf>,
        /// The keys and shapes found (or those that differ from the expected ones).
        found: String,
        /// What the keys were expected to be.
        expected: String,
    },
    /// An argument that cannot work (such as an output name without a known extension).
    #[error("{0}")]
    InvalidArgument(String),
    /// A tensor operation failed.
    #[error("{0}")]
    Tensor(#[from] candle_core::Error),
}

fn location(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}

impl CheckpointError {
    /// Names the file an error came from, where the error did not already.
    pub fn in_file(self, file: &Path) -> Self {
        match self {
            CheckpointError::Architecture {
                path: None,
                found,
                expected,
            } => CheckpointError::Architecture {
                path: Some(file.to_path_buf()),
                found,
                expected,
            },
            other => other,
        }
    }

    pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn write(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| CheckpointError::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `text` as a message quotes it: whole when short, else its start and its length, so that a
/// damaged file's key of a million characters does not flood the terminal.
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    match abridged(text) {
        None => text.into(),
        Some((start, length)) => format!("{start}... ({length} characters)").into(),
    }
}

/// [`shown`] in Rust's quotes: `"model.1.weight"`, or `"kkkk..."... (200000 characters)`, the
/// length outside the quotes.
pub(crate) fn shown_quoted(text: &str) -> String {
    match abridged(text) {
        None => format!("{text:?}"),
        Some((start, length)) => format!("{start:?}... ({length} characters)"),
    }
}

/// The first characters of `text` and its length in characters, when it is too long to quote
/// whole (more than 120 characters; 80 are kept).
fn abridged(text: &str) -> Option<(String, usize)> {
    let length = text.chars().count();
    (length > 120).then(|| (text.chars().take(80).collect(), length))
}

#[cfg(test)]
mod tests {
    use super::{shown, shown_quoted};

    #[test]
    fn long_text_is_shown_by_its_start_and_length() {
        assert_eq!(shown("model.1.weight"), "model.1.weight");
        let long = "é".repeat(200_000);
        let short = shown(&long);
        assert_eq!(short, format!("{}... (200000 characters)", "é".repeat(80)));
        assert_eq!(shown(&"x".repeat(120)), "x".repeat(120));
        assert_eq!(shown_quoted("a\"b"), "\"a\\\"b\"");
        assert_eq!(
            shown_quoted(&"y".repeat(121)),
            format!("{:?}... (121 characters)", "y".repeat(80))
        );
    }
}
