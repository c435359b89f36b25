//! The previous run's files when `--overwrite` starts a run over: set aside in a hidden folder
//! of the run, deleted once the new run has saved its first checkpoint, and put back if it
//! stops before that (an error, a panic, or a kill: the next start of the run puts them back).
//! So a mistyped `--overwrite` run that fails on its data loses nothing.

use crate::error::{Result, TrainError};
use std::path::{Path, PathBuf};

/// The hidden folder of the run that holds the set-aside files.
const FOLDER: &str = ".overwritten";

/// Files set aside by [`SetAside::new`]; put back when dropped unless [`SetAside::discard`]ed.
#[derive(Debug)]
pub struct SetAside {
    run_dir: PathBuf,
    armed: bool,
}

impl SetAside {
    /// Moves `files` (files or folders of `run_dir`) into the run's set-aside folder.
    pub fn new(run_dir: &Path, files: &[PathBuf]) -> Result<Self> {
        let folder = run_dir.join(FOLDER);
        std::fs::create_dir_all(&folder).map_err(TrainError::io(format!(
            "cannot create {}",
            folder.display()
        )))?;
        let set_aside = SetAside {
            run_dir: run_dir.to_path_buf(),
            armed: true,
        };
        for file in files {
            let name = file.file_name().unwrap_or_default();
            std::fs::rename(file, folder.join(name)).map_err(TrainError::io(format!(
                "cannot set {} aside to start the run over",
                file.display()
            )))?;
        }
        Ok(set_aside)
    }

    /// The new run has saved a checkpoint: the previous run's files are deleted.
    pub fn discard(mut self) {
        self.armed = false;
        let folder = self.run_dir.join(FOLDER);
        if let Err(e) = std::fs::remove_dir_all(&folder) {
            tracing::warn!(
                "cannot delete {} ({e}); delete it by hand",
                folder.display()
            );
        }
    }
}

impl Drop for SetAside {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // The files this run wrote (no checkpoint: its options, logs and page) go.
        match restore(&self.run_dir, &run_files(&self.run_dir)) {
            Ok(_) => tracing::warn!(
                "this run stopped before its first checkpoint: the previous run's files are back in {}",
                self.run_dir.display()
            ),
            Err(e) => tracing::error!(
                "cannot put the previous run's files back from {}: {e}",
                self.run_dir.join(FOLDER).display()
            ),
        }
    }
}

/// Settles what an `--overwrite` run killed before its first checkpoint left in `run_dir`:
/// puts the previous run's files back (over the killed run's options and logs), or, if the
/// new run did save networks (and was killed while deleting the old files), deletes the rest of
/// them. Says what it did, if anything.
pub fn recover(run_dir: &Path) -> Result<Option<&'static str>> {
    let folder = run_dir.join(FOLDER);
    if !folder.is_dir() {
        return Ok(None);
    }
    let files = run_files(run_dir);
    let has_networks = files.iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("_net_"))
    });
    if has_networks {
        std::fs::remove_dir_all(&folder).map_err(TrainError::io(format!(
            "cannot delete {}",
            folder.display()
        )))?;
        return Ok(Some(
            "an --overwrite run was stopped while deleting the files of the run it started over: deleted the rest",
        ));
    }
    restore(run_dir, &files)?;
    Ok(Some(
        "put back the files of the run it was to start over, since it saved no checkpoint",
    ))
}

/// Puts back files that an `--overwrite` run set aside in `run_dir`, over `replaced` (the files
/// that run wrote, deleted first): true when there were any.
fn restore(run_dir: &Path, replaced: &[PathBuf]) -> Result<bool> {
    let folder = run_dir.join(FOLDER);
    if !folder.is_dir() {
        return Ok(false);
    }
    for path in replaced {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        removed.map_err(TrainError::io(format!("cannot delete {}", path.display())))?;
    }
    let cannot_list = || TrainError::io(format!("cannot list {}", folder.display()));
    for entry in std::fs::read_dir(&folder).map_err(cannot_list())? {
        let entry = entry.map_err(cannot_list())?;
        let target = run_dir.join(entry.file_name());
        std::fs::rename(entry.path(), &target).map_err(TrainError::io(format!(
            "cannot put {} back",
            target.display()
        )))?;
    }
    std::fs::remove_dir(&folder).map_err(TrainError::io(format!(
        "cannot delete {}",
        folder.display()
    )))?;
    Ok(true)
}

/// The files of a run that starting it over replaces: this project's networks (a reference
/// `.pth` is left alone), training states, options, logs and web page.
pub fn run_files(run_dir: &Path) -> Vec<PathBuf> {
    files_named(run_dir, |name| {
        is_record(name)
            || (name.contains("_net_") && name.ends_with(".safetensors"))
            || matches!(name, "options.json" | "train_opt.txt" | "web")
    })
}

/// A run's files besides its networks, options and page: its training states and logs.
pub fn run_records(run_dir: &Path) -> Vec<PathBuf> {
    files_named(run_dir, is_record)
}

fn is_record(name: &str) -> bool {
    name.ends_with("_train_state.safetensors")
        || matches!(name, "loss_log.jsonl" | "loss_log.txt" | "metrics.jsonl")
}

/// The entries of `run_dir` whose names `keep` accepts, sorted.
fn files_named(run_dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| keep(&path.file_name().unwrap_or_default().to_string_lossy()))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn dropped_it_puts_the_old_files_back_over_the_new_run_s_and_discarded_it_deletes_them() {
        let run = tempfile::tempdir().unwrap();
        let dir = run.path();
        for name in ["latest_net_G_A.safetensors", "loss_log.txt", "notes.md"] {
            std::fs::write(dir.join(name), format!("old {name}")).unwrap();
        }
        let set_aside = SetAside::new(dir, &run_files(dir)).unwrap();
        assert_eq!(
            names(dir),
            [".overwritten", "notes.md"],
            "a user's own file stays"
        );
        std::fs::write(dir.join("loss_log.txt"), "new").unwrap();
        std::fs::write(dir.join("options.json"), "new").unwrap();
        drop(set_aside);
        assert_eq!(
            names(dir),
            ["latest_net_G_A.safetensors", "loss_log.txt", "notes.md"]
        );
        let log = std::fs::read_to_string(dir.join("loss_log.txt")).unwrap();
        assert_eq!(log, "old loss_log.txt");

        SetAside::new(dir, &run_files(dir)).unwrap().discard();
        assert_eq!(names(dir), ["notes.md"]);
    }

    /// A kill after the new run's first checkpoint, while the old files were being deleted:
    /// the new run is kept and the rest of the old one deleted.
    #[test]
    fn recovery_keeps_a_new_run_that_saved_networks() {
        let run = tempfile::tempdir().unwrap();
        let dir = run.path();
        std::fs::create_dir(dir.join(FOLDER)).unwrap();
        std::fs::write(dir.join(FOLDER).join("5_net_G_A.safetensors"), "old").unwrap();
        std::fs::write(dir.join("latest_net_G_A.safetensors"), "new").unwrap();
        assert!(recover(dir).unwrap().is_some());
        assert_eq!(names(dir), ["latest_net_G_A.safetensors"]);
        assert!(recover(dir).unwrap().is_none());
    }
}
