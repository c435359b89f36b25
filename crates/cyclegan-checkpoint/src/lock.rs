//! A lock that keeps two processes out of one folder's files (a run folder, a download).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// An exclusive, advisory lock held through a lock file (the operating system's file lock:
/// `flock` on Unix), released when the last handle is dropped or the process ends, a kill
/// included, so a crash never leaves a stale lock behind.
///
/// Taking the same lock file again in the same process gives another handle to the lock
/// already held (the trainer's binary locks its run folder before reading its options, and
/// the training loop it then calls locks it again). On release the lock file is removed, with
/// any folders that taking it created and that are still empty, so a run that failed before
/// writing anything leaves nothing behind.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let lock_file = dir.path().join("run").join(".lock");
/// let held = cyclegan_checkpoint::FolderLock::acquire(&lock_file, "an example")?;
/// // Another process taking it now gets LockError::Busy, naming "an example".
/// drop(held);
/// assert!(!dir.path().join("run").exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct FolderLock {
    _held: Arc<Held>,
}

/// Why a [`FolderLock`] could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{} is locked by {}", .path.display(), .holder.as_deref().unwrap_or("another process"))]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// What the holder wrote into it when it took the lock ("pid 4242, cyclegan-train").
        holder: Option<String>,
    },
    /// The lock file (or its folder) could not be created or locked.
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

#[derive(Debug)]
struct Held {
    key: PathBuf,
    file: Option<File>,
    /// Folders that taking the lock created, deepest first.
    created: Vec<PathBuf>,
}

/// The locks this process holds, by canonical lock-file path.
fn held_here() -> &'static Mutex<HashMap<PathBuf, Weak<Held>>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Weak<Held>>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

impl FolderLock {
    /// Takes the lock of `lock_file` (created, with its folder, if missing) without waiting,
    /// writing `holder` into it (after this process's id) for a [`LockError::Busy`] to show.
    /// A file system that cannot lock files gives [`LockError::Io`] with the system's
    /// `Unsupported` error.
    pub fn acquire(lock_file: &Path, holder: &str) -> Result<FolderLock, LockError> {
        let io_error = |source| LockError::Io {
            path: lock_file.to_path_buf(),
            source,
        };
        let (Some(folder), Some(name)) = (lock_file.parent(), lock_file.file_name()) else {
            return Err(io_error(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file path",
            )));
        };
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        let created = create_folders(folder).map_err(io_error)?;
        let key = folder.canonicalize().map_err(io_error)?.join(name);
        let mut held = held_here().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = held.get(&key).and_then(Weak::upgrade) {
            return Ok(FolderLock { _held: existing });
        }
        let mut file = lock_exclusively(&key).map_err(|e| match e {
            Locking::Busy(holder) => LockError::Busy {
                path: lock_file.to_path_buf(),
                holder,
            },
            Locking::Io(source) => io_error(source),
        })?;
        // Best effort: the holder's description only serves the message of a Busy error.
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, "pid {}, {holder}", std::process::id()))
            .and_then(|()| file.flush());
        let arc = Arc::new(Held {
            key: key.clone(),
            file: Some(file),
            created,
        });
        held.insert(key, Arc::downgrade(&arc));
        Ok(FolderLock { _held: arc })
    }
}

enum Locking {
    Busy(Option<String>),
    Io(io::Error),
}

/// Opens and locks `path`, making sure the file locked is still the one at `path`: a holder
/// removes it on release, and a process that opened it just before then would otherwise lock
/// a file no one else can find.
fn lock_exclusively(path: &Path) -> Result<File, Locking> {
    loop {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(Locking::Io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.rewind().and_then(|_| file.read_to_string(&mut holder));
                let holder = holder.trim();
                return Err(Locking::Busy(
                    (!holder.is_empty()).then(|| holder.to_string()),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Locking::Io(e)),
        }
        if still_at(&file, path) {
            return Ok(file);
        }
    }
}

#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &File, _path: &Path) -> bool {
    // Elsewhere an open file cannot be removed, so it is still the one at its path.
    true
}

/// Creates `folder` and its missing parents; returns those it created, deepest first.
fn create_folders(folder: &Path) -> io::Result<Vec<PathBuf>> {
    let missing: Vec<PathBuf> = folder
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(folder)?;
    Ok(missing)
}

impl Drop for Held {
    fn drop(&mut self) {
        // Removed while still locked, so that no other process takes this file in between
        // (see lock_exclusively); on systems where an open file cannot be removed it stays.
        #[cfg(unix)]
        let _ = std::fs::remove_file(&self.key);
        drop(self.file.take());
        for folder in &self.created {
            if std::fs::remove_dir(folder).is_err() {
                break;
            }
        }
        let mut held = held_here().lock().unwrap_or_else(|p| p.into_inner());
        if held.get(&self.key).is_some_and(|w| w.strong_count() == 0) {
            held.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another open file description of the same lock file: as another process would see it.
    fn locked_by_another(path: &Path) -> bool {
        let file = File::open(path).unwrap();
        match file.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => true,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn the_lock_excludes_others_until_its_last_handle_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/.lock");
        let first = FolderLock::acquire(&path, "cyclegan-train").unwrap();
        assert!(locked_by_another(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.trim(),
            format!("pid {}, cyclegan-train", std::process::id())
        );
        // The same process takes it again: the same lock, still held after one handle drops.
        let second = FolderLock::acquire(&dir.path().join("run/../run/.lock"), "again").unwrap();
        drop(first);
        assert!(locked_by_another(&path));
        drop(second);
        assert!(!path.exists(), "the lock file is removed on release");
        assert!(
            !dir.path().join("run").exists(),
            "and the folder it created"
        );
        // Taken again after release.
        let third = FolderLock::acquire(&path, "cyclegan-train").unwrap();
        drop(third);
    }

    #[test]
    fn a_lock_held_elsewhere_is_busy_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".horse2zebra.lock");
        std::fs::write(&path, "pid 4242, cyclegan-train\n").unwrap();
        let other = File::options().read(true).write(true).open(&path).unwrap();
        other.try_lock().unwrap();
        match FolderLock::acquire(&path, "xtask") {
            Err(LockError::Busy { holder, path: p }) => {
                assert_eq!(holder.as_deref(), Some("pid 4242, cyclegan-train"));
                assert_eq!(p, path);
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        // Neither the holder's file nor the folder is touched.
        assert!(path.exists());
        drop(other);
        let taken = FolderLock::acquire(&path, "xtask").unwrap();
        drop(taken);
        assert!(dir.path().exists(), "a folder that was there stays");
    }

    #[test]
    fn folders_holding_other_files_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/.lock");
        let lock = FolderLock::acquire(&path, "test").unwrap();
        std::fs::write(dir.path().join("a/kept.txt"), "x").unwrap();
        drop(lock);
        assert!(!dir.path().join("a/b").exists());
        assert!(dir.path().join("a/kept.txt").exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_removed_under_an_opener_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let stale = File::create(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(!still_at(&stale, &path));
        let fresh = File::create(&path).unwrap();
        assert!(still_at(&fresh, &path));
    }
}
