//! Free space checked before a download or an extraction writes, so that a full disk is
//! reported before anything is written rather than part way through.

use crate::FetchError;
use indicatif::HumanBytes;
use std::path::Path;

/// The file system's allocation unit that small files round up to; an estimate, on the side
/// of asking for more.
const BLOCK: u64 = 4096;

/// The space `sizes` files take on disk, each rounded up to a whole block.
pub(crate) fn on_disk(sizes: impl IntoIterator<Item = u64>) -> u64 {
    sizes
        .into_iter()
        .map(|size| size.div_ceil(BLOCK).saturating_mul(BLOCK))
        .fold(0, u64::saturating_add)
}

/// Refuses to write `needed` bytes into `dir` when its file system has less available to
/// this user: an `Io` error on `path` of kind `StorageFull` that says how much `what` needs,
/// how much is free, and what to do. A file system that cannot tell is not checked.
pub(crate) fn check_space(
    dir: &Path,
    path: &Path,
    needed: u64,
    what: &str,
) -> Result<(), FetchError> {
    // A bare file name's folder (`Path::parent` of `x.zip`) is the empty path: the current one.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let available = match fs4::available_space(dir) {
        Ok(available) => available,
        Err(e) => {
            tracing::debug!("free space of {} unknown ({e}); not checked", dir.display());
            return Ok(());
        }
    };
    if needed <= available {
        return Ok(());
    }
    Err(FetchError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "{what} needs {} and the file system holding {} has {} free: make room, or pass another --dest",
                HumanBytes(needed),
                dir.display(),
                HumanBytes(available)
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up_to_whole_blocks() {
        assert_eq!(on_disk([]), 0);
        assert_eq!(on_disk([0, 1, 4096, 4097]), 4096 + 4096 + 8192);
        assert_eq!(on_disk([u64::MAX, 1]), u64::MAX);
    }

    #[test]
    fn more_than_the_disk_holds_is_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        check_space(dir.path(), dir.path(), 1, "a byte").unwrap();
        // The current folder, as a bare file name's parent gives it.
        let err = check_space(Path::new(""), dir.path(), u64::MAX, "x").unwrap_err();
        assert!(err.to_string().contains("holding . has"), "{err}");
        let target = dir.path().join("x.zip");
        let err = check_space(dir.path(), &target, u64::MAX, "the download").unwrap_err();
        let FetchError::Io { path, source } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(path, &target);
        assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
        let message = err.to_string();
        assert!(
            message.contains("the download needs 16.00 EiB"),
            "{message}"
        );
        assert!(
            message.contains("make room, or pass another --dest"),
            "{message}"
        );
    }
}
