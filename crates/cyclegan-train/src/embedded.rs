//! The default dataset, emoji64 (Twemoji to Noto emoji, 64x64; its licence is its
//! `NOTICE.md`), built into the binary.
//!
//! The default run (no `--dataroot`) reads `./data/emoji64` when it is started in this
//! repository, and otherwise the copy inside the binary, unpacked once into the user's cache
//! folder ([`unpacked_dir`]): an installed `cyclegan-train` trains without the repository.

use crate::{Result, TrainError};
use std::path::{Path, PathBuf};

mod generated {
    include!(concat!(env!("OUT_DIR"), "/embedded_dataset.rs"));
}

/// The dataset's folder in this repository, relative to its root.
pub const LOCAL_COPY: &str = "data/emoji64";

/// The files built into the binary: each one's path in the dataset's folder (`/`-separated,
/// `trainA/...`) and its bytes. Empty when the crate was built without its `embedded-data`
/// feature (on by default) or without the workspace's `data/`.
pub fn files() -> &'static [(&'static str, &'static [u8])] {
    generated::FILES
}

/// Where the default run reads the dataset: [`LOCAL_COPY`] when it holds `trainA/`, else
/// [`unpacked_dir`] (which [`unpack_to`] fills).
pub fn dataroot() -> PathBuf {
    let local = PathBuf::from(LOCAL_COPY);
    if local.join("trainA").is_dir() {
        local
    } else {
        unpacked_dir()
    }
}

/// The folder the built-in copy is unpacked to: [`unpacked_name`] in
/// `$XDG_CACHE_HOME/cyclegan-rs`, else `%LOCALAPPDATA%\cyclegan-rs` on Windows and
/// `~/.cache/cyclegan-rs` elsewhere, else the temporary folder's `cyclegan-rs`.
pub fn unpacked_dir() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let cache = absolute("XDG_CACHE_HOME")
        .or_else(|| {
            if cfg!(windows) {
                absolute("LOCALAPPDATA")
            } else {
                absolute("HOME").map(|home| home.join(".cache"))
            }
        })
        .unwrap_or_else(std::env::temp_dir);
    cache.join("cyclegan-rs").join(unpacked_name())
}

/// The name of the folder this build's copy is unpacked to, `emoji64-<digest of its files>`:
/// another build's data gets another folder.
pub fn unpacked_name() -> String {
    format!("emoji64-{}", generated::DIGEST)
}

/// The file written last into an unpacked copy: a folder without it is incomplete.
const COMPLETE: &str = ".complete";

/// Unpacks the built-in copy to `dir` unless a complete copy is there already; returns whether
/// it did. The files are written to a temporary folder beside `dir` and renamed into place (an
/// incomplete copy left at `dir`, say by a cache cleaner, is replaced), so that two runs can
/// unpack at once.
pub fn unpack_to(dir: &Path) -> Result<bool> {
    if dir.join(COMPLETE).is_file() {
        return Ok(false);
    }
    if files().is_empty() {
        return Err(TrainError::Options(format!(
            "this cyclegan-train was built without its default dataset (without the embedded-data feature, or {LOCAL_COPY} was missing when it was built): pass --dataroot, or run it in the repository"
        )));
    }
    let context = || format!("cannot unpack the built-in dataset to {}", dir.display());
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(TrainError::io(context()))?;
    let staging = tempfile::Builder::new()
        .prefix(".emoji64-unpacking-")
        .tempdir_in(parent)
        .map_err(TrainError::io(context()))?;
    for (relative, bytes) in files() {
        let path = staging.path().join(relative);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(TrainError::io(context()))?;
        }
        std::fs::write(&path, bytes).map_err(TrainError::io(context()))?;
    }
    std::fs::write(staging.path().join(COMPLETE), generated::DIGEST)
        .map_err(TrainError::io(context()))?;
    // Readable like the files in it (a temporary folder is made private).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(TrainError::io(context()))?;
    }
    if dir.exists() {
        // An incomplete copy: renamed out of the way in one step, then removed.
        let aside = parent.join(format!(
            ".{}-incomplete-{}",
            unpacked_name(),
            std::process::id()
        ));
        if std::fs::rename(dir, &aside).is_ok() {
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
    match std::fs::rename(staging.path(), dir) {
        Ok(()) => {
            // Renamed away: nothing left for the guard to remove.
            let _ = staging.keep();
            Ok(true)
        }
        // Another run unpacked it meanwhile; this copy is removed with `staging`.
        Err(_) if dir.join(COMPLETE).is_file() => Ok(false),
        Err(e) => Err(TrainError::io(context())(e)),
    }
}

#[cfg(all(test, feature = "embedded-data"))]
mod tests {
    use super::*;

    /// The files of `dir`, relative and `/`-separated, sorted.
    fn listing(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                listing(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn the_built_in_copy_unpacks_to_the_repository_s_files() {
        let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(LOCAL_COPY);
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache/emoji64");
        assert!(unpack_to(&dir).unwrap());
        let (mut unpacked, mut original) = (Vec::new(), Vec::new());
        listing(&dir, &dir, &mut unpacked);
        listing(&repository, &repository, &mut original);
        unpacked.sort();
        original.sort();
        // The mark of a complete copy, written last.
        assert_eq!(unpacked.remove(0), ".complete");
        assert_eq!(unpacked, original);
        assert!(unpacked.len() > 1500 && unpacked.contains(&"NOTICE.md".to_string()));
        for name in &unpacked {
            assert_eq!(
                std::fs::read(dir.join(name)).unwrap(),
                std::fs::read(repository.join(name)).unwrap(),
                "{name}"
            );
        }
        // Present: left as it is; nothing else was left beside it.
        assert!(!unpack_to(&dir).unwrap());
        let beside: Vec<_> = std::fs::read_dir(dir.parent().unwrap()).unwrap().collect();
        assert_eq!(beside.len(), 1);

        // Emptied by a cache cleaner: unpacked again, in its place.
        std::fs::remove_dir_all(dir.join("trainA")).unwrap();
        std::fs::remove_file(dir.join(".complete")).unwrap();
        assert!(unpack_to(&dir).unwrap());
        assert_eq!(std::fs::read_dir(dir.join("trainA")).unwrap().count(), 625);
        let beside: Vec<_> = std::fs::read_dir(dir.parent().unwrap()).unwrap().collect();
        assert_eq!(beside.len(), 1);
    }
}
