//! Atomic file replacement: one file ([`write_atomic`]), or a set of files that must change
//! together ([`FileSet`], such as a checkpoint's networks and the training state that goes with
//! them).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Writes a file atomically: `write` fills a temporary file next to `path`, which is flushed to
/// disk and then renamed over `path`. On any error the temporary file is removed and `path` is
/// left as it was.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a file path", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        write(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Suffix of a set's folder while its files are written.
const STAGING: &str = "staging";
/// Suffix of a set's folder once all its files are on disk: from then on the set is committed.
const COMMITTED: &str = "commit";

/// Files of one folder replaced as a group: after an interruption at any moment (a kill, a
/// full disk, a power cut), the folder holds either every old file or every new one, once
/// [`recover_file_sets`] has run.
///
/// The files are written into a hidden staging folder beside their targets (`.<name>.staging`)
/// and synced; [`FileSet::commit`] then renames that folder to `.<name>.commit`, the one atomic
/// step, and moves each file over its target. A set dropped without a commit deletes its
/// staging folder. An interruption while the files move leaves the commit folder, and
/// [`recover_file_sets`] finishes the moves; it deletes a staging folder left by an
/// interruption before the commit.
#[derive(Debug)]
pub struct FileSet {
    dir: PathBuf,
    name: String,
    staging: PathBuf,
    files: Vec<String>,
    /// Files moved in by [`FileSet::adopt`], with where they came from.
    adopted: Vec<(String, PathBuf)>,
    committed: bool,
}

impl FileSet {
    /// Starts a set of files to go into `dir`, called `name` (a plain name: the set's folders
    /// are `.<name>.staging` and `.<name>.commit` in `dir`). An earlier unfinished set of that
    /// name is first recovered ([`recover_file_sets`]).
    pub fn begin(dir: &Path, name: &str) -> io::Result<Self> {
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a plain name for a set of files"),
            ));
        }
        std::fs::create_dir_all(dir)?;
        recover_set(dir, name)?;
        let staging = set_folder(dir, name, STAGING);
        std::fs::create_dir(&staging)?;
        Ok(FileSet {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            staging,
            files: Vec::new(),
            adopted: Vec::new(),
            committed: false,
        })
    }

    /// Writes the set's file `file_name` (a plain file name in the set's folder): `write` fills
    /// it in the staging folder, which is then flushed to disk. The target is not touched yet.
    pub fn write(
        &mut self,
        file_name: &str,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<()> {
        check_file_name(file_name)?;
        let mut file = File::create(self.staging.join(file_name))?;
        write(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        self.files.push(file_name.to_string());
        Ok(())
    }

    /// Takes the finished file `source` into the set as `file_name` (say, a download checked
    /// beside its target): it is flushed to disk and moved into the staging folder, so it must
    /// be on the same file system as the set's folder. A set dropped without a commit moves it
    /// back to `source`; one left by a kill before the commit is discarded with it.
    pub fn adopt(&mut self, file_name: &str, source: &Path) -> io::Result<()> {
        check_file_name(file_name)?;
        File::open(source)?.sync_all()?;
        std::fs::rename(source, self.staging.join(file_name))?;
        self.files.push(file_name.to_string());
        self.adopted
            .push((file_name.to_string(), source.to_path_buf()));
        Ok(())
    }

    /// Replaces the targets with the files written: commits the set (an atomic rename of its
    /// folder), then moves each file into place.
    pub fn commit(mut self) -> io::Result<()> {
        sync_folder(&self.staging);
        let committed = set_folder(&self.dir, &self.name, COMMITTED);
        std::fs::rename(&self.staging, &committed)?;
        self.committed = true;
        sync_folder(&self.dir);
        move_committed(&self.dir, &committed)
    }
}

impl Drop for FileSet {
    fn drop(&mut self) {
        if !self.committed {
            for (file_name, source) in &self.adopted {
                let _ = std::fs::rename(self.staging.join(file_name), source);
            }
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

fn check_file_name(file_name: &str) -> io::Result<()> {
    if file_name.is_empty() || file_name.contains(['/', '\\']) || file_name.starts_with('.') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{file_name:?} is not a plain file name"),
        ));
    }
    Ok(())
}

/// What [`recover_file_sets`] found of a set that an interruption left unfinished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The set was committed and its files are now in place: the new files.
    Completed(String),
    /// The set was not committed and its partial files are deleted: the old files stay.
    Discarded(String),
}

/// Finishes or discards every set of files ([`FileSet`]) that an interruption left unfinished
/// in `dir`, and says what it did, for each set. Call it before reading files that a set
/// writes. A folder that does not exist holds no sets.
pub fn recover_file_sets(dir: &Path) -> io::Result<Vec<Recovered>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let file_name = entry?.file_name().to_string_lossy().into_owned();
        let set = file_name
            .strip_prefix('.')
            .and_then(|rest| {
                rest.strip_suffix(&format!(".{COMMITTED}"))
                    .or_else(|| rest.strip_suffix(&format!(".{STAGING}")))
            })
            .filter(|set| !set.is_empty());
        if let Some(set) = set {
            names.push(set.to_string());
        }
    }
    names.sort();
    names.dedup();
    let mut recovered = Vec::new();
    for name in names {
        recovered.extend(recover_set(dir, &name)?);
    }
    Ok(recovered)
}

/// [`recover_file_sets`] for the set `name` alone.
fn recover_set(dir: &Path, name: &str) -> io::Result<Option<Recovered>> {
    let committed = set_folder(dir, name, COMMITTED);
    let staging = set_folder(dir, name, STAGING);
    let mut found = None;
    if committed.is_dir() {
        move_committed(dir, &committed)?;
        found = Some(Recovered::Completed(name.to_string()));
    }
    if staging.is_dir() {
        std::fs::remove_dir_all(&staging)?;
        found = found.or(Some(Recovered::Discarded(name.to_string())));
    }
    Ok(found)
}

fn set_folder(dir: &Path, name: &str, state: &str) -> PathBuf {
    dir.join(format!(".{name}.{state}"))
}

/// Moves every file of a committed set's folder over its target in `dir`, then deletes the
/// folder. Safe to repeat after an interruption: the files already moved are gone from it.
fn move_committed(dir: &Path, committed: &Path) -> io::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(committed)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    files.sort();
    for file in files {
        std::fs::rename(committed.join(&file), dir.join(&file))?;
    }
    sync_folder(dir);
    std::fs::remove_dir(committed)
}

/// Flushes a folder's entries (the renames into it) to disk where the platform allows; a
/// failure only weakens durability across a power cut, so it is not an error.
fn sync_folder(dir: &Path) {
    if let Ok(folder) = File::open(dir) {
        let _ = folder.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_only_when_the_write_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomic(&path, |f| f.write_all(b"first")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        let failed = write_atomic(&path, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("interrupted"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temporary file left behind"
        );
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_set_replaces_its_files_together_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "old a").unwrap();
        std::fs::write(dir.path().join("b"), "old b").unwrap();
        let mut set = FileSet::begin(dir.path(), "latest").unwrap();
        set.write("a", |f| f.write_all(b"new a")).unwrap();
        set.write("b", |f| f.write_all(b"new b")).unwrap();
        assert_eq!(
            read(&dir.path().join("a")),
            "old a",
            "untouched before the commit"
        );
        set.commit().unwrap();
        assert_eq!(read(&dir.path().join("a")), "new a");
        assert_eq!(read(&dir.path().join("b")), "new b");
        assert_eq!(entries(dir.path()), ["a", "b"], "no set folder left");
    }

    #[test]
    fn a_set_that_fails_or_is_dropped_leaves_the_old_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "old a").unwrap();
        let mut set = FileSet::begin(dir.path(), "latest").unwrap();
        set.write("a", |f| f.write_all(b"new a")).unwrap();
        let failed = set.write("b", |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("no space left"))
        });
        assert!(failed.is_err());
        drop(set);
        assert_eq!(read(&dir.path().join("a")), "old a");
        assert_eq!(entries(dir.path()), ["a"]);
        assert!(FileSet::begin(dir.path(), "../x").is_err());
        let mut set = FileSet::begin(dir.path(), "latest").unwrap();
        assert!(set.write("../a", |f| f.write_all(b"x")).is_err());
    }

    #[test]
    fn adopted_files_go_in_with_the_set_or_back_where_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("m.pth"), "old pth").unwrap();
        std::fs::write(d.join("m.safetensors"), "old safetensors").unwrap();
        std::fs::write(d.join(".download"), "new pth").unwrap();
        std::fs::write(d.join(".converted"), "new safetensors").unwrap();

        // Dropped before the commit: the adopted files are back, the targets untouched.
        let mut set = FileSet::begin(d, "m").unwrap();
        set.adopt("m.pth", &d.join(".download")).unwrap();
        set.adopt("m.safetensors", &d.join(".converted")).unwrap();
        assert!(set.adopt("m.x", &d.join(".missing")).is_err());
        assert!(set.adopt(".hidden", &d.join("m.pth")).is_err());
        drop(set);
        assert_eq!(read(&d.join(".download")), "new pth");
        assert_eq!(read(&d.join("m.pth")), "old pth");
        assert_eq!(
            entries(d),
            [".converted", ".download", "m.pth", "m.safetensors"]
        );

        let mut set = FileSet::begin(d, "m").unwrap();
        set.adopt("m.pth", &d.join(".download")).unwrap();
        set.adopt("m.safetensors", &d.join(".converted")).unwrap();
        set.commit().unwrap();
        assert_eq!(read(&d.join("m.pth")), "new pth");
        assert_eq!(read(&d.join("m.safetensors")), "new safetensors");
        assert_eq!(entries(d), ["m.pth", "m.safetensors"]);
    }

    /// The two states an interruption can leave, made by hand: a staging folder (killed while
    /// writing) and a commit folder with some files already moved (killed while moving).
    #[test]
    fn recovery_discards_an_unfinished_set_and_completes_a_committed_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["5_a", "5_b", "latest_a", "latest_b"] {
            std::fs::write(d.join(f), format!("old {f}")).unwrap();
        }
        std::fs::create_dir(d.join(".5.staging")).unwrap();
        std::fs::write(d.join(".5.staging/5_a"), "new 5_a").unwrap();
        std::fs::create_dir(d.join(".latest.commit")).unwrap();
        std::fs::write(d.join(".latest.commit/latest_b"), "new latest_b").unwrap();
        std::fs::write(d.join("latest_a"), "new latest_a").unwrap();
        let recovered = recover_file_sets(d).unwrap();
        assert_eq!(
            recovered,
            [
                Recovered::Discarded("5".into()),
                Recovered::Completed("latest".into())
            ]
        );
        assert_eq!(read(&d.join("5_a")), "old 5_a");
        assert_eq!(read(&d.join("latest_a")), "new latest_a");
        assert_eq!(read(&d.join("latest_b")), "new latest_b");
        assert_eq!(entries(d), ["5_a", "5_b", "latest_a", "latest_b"]);
        assert!(recover_file_sets(d).unwrap().is_empty());
        assert!(recover_file_sets(&d.join("missing")).unwrap().is_empty());
    }

    /// `begin` recovers its own name first, so a set written after a crash starts clean.
    #[test]
    fn begin_completes_an_interrupted_set_of_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join(".latest.commit")).unwrap();
        std::fs::write(d.join(".latest.commit/a"), "committed a").unwrap();
        let set = FileSet::begin(d, "latest").unwrap();
        assert_eq!(read(&d.join("a")), "committed a");
        drop(set);
        assert_eq!(entries(d), ["a"]);
    }
}
