//! The error type of this crate.

use std::path::PathBuf;

/// Why a dataset or model could not be fetched.
///
/// A message reads whole on its own: it ends with the system's or decoder's words where there
/// are any, which [`source`](std::error::Error::source) returns too. Print it with `{}`; a chain
/// printer (anyhow's `{:#}` or `{:?}`) repeats that cause, which
/// `cyclegan_layers::device::error_text` leaves out.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A name the reference does not publish.
    #[error("unknown {kind} '{name}'; the reference's {kind}s are: {}", valid.join(", "))]
    UnknownName {
        /// `dataset` or `model`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names the reference publishes.
        valid: Vec<&'static str>,
    },
    /// A name the reference refuses to serve (cityscapes); `reason` says why and what to do.
    #[error("{reason}")]
    Refused {
        /// The name asked for.
        name: String,
        /// Why it is refused and what to do instead.
        reason: &'static str,
    },
    /// The server answered with an error status.
    #[error("GET {url} failed: HTTP {status}{}", if *status == 404 { " (not found: is the name or --base-url right?)" } else { "" })]
    Http {
        /// The address asked for.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// An address that is not `http://` or `https://` (a `--base-url` without its scheme).
    #[error("{url} is not a web address: it must start with http:// or https:// (a --base-url such as http://127.0.0.1:8000/datasets)")]
    BadUrl {
        /// The address asked for.
        url: String,
    },
    /// The server answered with something that is clearly not the file (a web page, an empty
    /// body). Nothing was written; a partial file from earlier is kept as it was.
    #[error("GET {url} answered with {found}, not the file (is the name or --base-url right, or is a login page or proxy in the way?); {}", match partial { Some(p) => format!("the partial download {} was kept as it was", p.display()), None => "nothing was written".to_string() })]
    NotTheFile {
        /// The address asked for.
        url: String,
        /// What came instead.
        found: String,
        /// The partial download left untouched, if there was one.
        partial: Option<PathBuf>,
    },
    /// The request could not be made or the connection failed.
    #[error("GET {url} failed: {source}")]
    Network {
        /// The address asked for.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: Box<ureq::Error>,
    },
    /// The connection ended before the server's Content-Length was received. The partial
    /// file is kept; the next attempt resumes it.
    #[error("download of {url} stopped at {received} of {expected} bytes{}; run the command again to resume", cause.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Truncated {
        /// The address downloaded.
        url: String,
        /// Bytes in the partial file.
        received: u64,
        /// The file's size, as the server stated it.
        expected: u64,
        /// Why the transfer ended, if the connection said.
        cause: Option<String>,
    },
    /// More bytes arrived than the server announced; the partial file is discarded.
    #[error("download of {url} received {received} bytes, more than the {expected} announced; the partial file was discarded")]
    Overlong {
        /// The address downloaded.
        url: String,
        /// Bytes received.
        received: u64,
        /// The file's size, as the server stated it.
        expected: u64,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The archive is not a readable zip archive, or one of its entries is damaged.
    #[error("{} was not a valid zip archive: {reason}; nothing was extracted and the archive was deleted (run the command again to download it afresh; if it fails the same way, the server sent something else)", archive.display())]
    CorruptArchive {
        /// The downloaded archive.
        archive: PathBuf,
        /// What is wrong, naming the entry where one is damaged.
        reason: String,
    },
    /// A readable archive that does not hold a dataset (no `trainA` and `trainB` folders).
    #[error("{} does not hold the dataset: {reason}; nothing was extracted, a dataset already in place was left as it was, and the archive was deleted (is the name or --base-url right?)", archive.display())]
    BadLayout {
        /// The downloaded archive.
        archive: PathBuf,
        /// What is missing, and what the archive holds instead.
        reason: String,
    },
    /// A complete download could not be put in place for a local reason (disk full,
    /// permissions); the downloaded file is kept and the next run uses it.
    #[error("the download {} is complete and was kept, but cannot be put in place (make room, or fix what follows, then run the command again: it uses the download without fetching it again): {}: {source}", download.display(), path.display())]
    KeptDownload {
        /// The file or folder that could not be written.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
        /// The complete download, kept.
        download: PathBuf,
    },
    /// An archive entry that would be written outside the destination, or is a link.
    #[error("{} holds an unsafe entry '{entry}' ({reason}); the archive was refused and nothing was extracted", archive.display())]
    UnsafeEntry {
        /// The downloaded archive.
        archive: PathBuf,
        /// The entry's name as stored.
        entry: String,
        /// Why it is unsafe.
        reason: &'static str,
    },
}

impl FetchError {
    /// Whether trying again (resuming) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            FetchError::Truncated { .. } | FetchError::Network { .. }
        ) || matches!(self, FetchError::Http { status, .. } if *status >= 500)
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
        move |source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
