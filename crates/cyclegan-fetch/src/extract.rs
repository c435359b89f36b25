//! Safe, all-or-nothing extraction of zip archives.

use crate::FetchError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Folder names a dataset's content uses at its top level: an archive whose single top
/// folder is one of these is flat, not wrapped.
const SPLIT_NAMES: &[&str] = &[
    "trainA", "trainB", "testA", "testB", "valA", "valB", "train", "test", "val", "A", "B",
];

/// The checked relative path of an archive entry (`None` for the archive's root itself), or
/// why it would land outside the destination.
pub fn safe_entry_path(name: &str) -> Result<Option<PathBuf>, &'static str> {
    if name.contains('\0') {
        return Err("a NUL byte in its name");
    }
    let unified = name.replace('\\', "/");
    let bytes = unified.as_bytes();
    if unified.starts_with('/') {
        return Err("an absolute path");
    }
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Err("an absolute path with a drive letter");
    }
    let mut path = PathBuf::new();
    for part in unified.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("a '..' component that climbs out of the destination"),
            part => path.push(part),
        }
    }
    Ok((!path.as_os_str().is_empty()).then_some(path))
}

struct Entry {
    index: usize,
    path: PathBuf,
    is_dir: bool,
}

/// What an extraction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The folder the archive's content now lives in.
    pub path: PathBuf,
    /// Regular files written.
    pub files: usize,
}

/// Extracts the zip `archive` to `dest_dir/name`.
///
/// Every entry is checked before anything is written: absolute paths, `..` components and
/// symbolic links refuse the whole archive. The content goes to a temporary folder inside
/// `dest_dir` (every entry's checksum verified) and is renamed to `dest_dir/name` only once
/// complete, replacing what was there (`replace`) or refusing to. An archive whose entries all
/// sit in one top folder (the reference's `NAME/trainA/...`) is unwrapped; a flat one
/// (`trainA/...`) is taken as is.
pub fn extract_zip(
    archive: &Path,
    dest_dir: &Path,
    name: &str,
    replace: bool,
) -> Result<Extracted, FetchError> {
    let corrupt = |reason: String| FetchError::CorruptArchive {
        archive: archive.to_path_buf(),
        reason,
    };
    let file = File::open(archive).map_err(FetchError::io(archive))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        corrupt(match text_start(archive) {
            Some(text) => format!("{e}: it starts with the text \"{text}\", not a zip archive's bytes (the server sent a page instead?)"),
            None => format!("{e} (truncated or not a zip file?)"),
        })
    })?;

    let mut entries = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let entry = zip
            .by_index_raw(index)
            .map_err(|e| corrupt(format!("entry {index}: {e}")))?;
        let raw_name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let unsafe_entry = |reason| FetchError::UnsafeEntry {
            archive: archive.to_path_buf(),
            entry: raw_name.clone(),
            reason,
        };
        let path = safe_entry_path(&raw_name).map_err(unsafe_entry)?;
        if entry.is_symlink() {
            return Err(unsafe_entry("a symbolic link"));
        }
        let Some(path) = path else { continue };
        if path.starts_with("__MACOSX") {
            continue;
        }
        entries.push(Entry {
            index,
            path,
            is_dir: entry.is_dir(),
        });
    }
    if !entries.iter().any(|e| !e.is_dir) {
        return Err(corrupt("it holds no files".into()));
    }

    // One top folder that is not itself part of the dataset: unwrap it.
    let top = |e: &Entry| e.path.components().next().map(|c| c.as_os_str().to_owned());
    let first = top(&entries[0]);
    let wrapped = first.as_ref().is_some_and(|first| {
        !SPLIT_NAMES.iter().any(|s| first == *s)
            && entries.iter().all(|e| {
                top(e).as_ref() == Some(first) && (e.is_dir || e.path.components().count() > 1)
            })
    });

    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.extract-"))
        .tempdir_in(dest_dir)
        .map_err(FetchError::io(dest_dir))?;
    let root = staging.path().join("content");
    std::fs::create_dir(&root).map_err(FetchError::io(&root))?;
    let mut files = 0;
    let mut buffer = vec![0u8; 256 * 1024];
    for entry in &entries {
        let relative = if wrapped {
            entry.path.iter().skip(1).collect::<PathBuf>()
        } else {
            entry.path.clone()
        };
        let out = root.join(&relative);
        if entry.is_dir {
            std::fs::create_dir_all(&out).map_err(FetchError::io(&out))?;
            continue;
        }
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(FetchError::io(parent))?;
        }
        let mut reader = zip
            .by_index(entry.index)
            .map_err(|e| corrupt(format!("entry {}: {e}", entry.path.display())))?;
        let mut writer = File::create(&out).map_err(FetchError::io(&out))?;
        // Reading verifies the entry's length and CRC-32 at its end.
        loop {
            let n = reader
                .read(&mut buffer)
                .map_err(|e| corrupt(format!("entry {}: {e}", entry.path.display())))?;
            if n == 0 {
                break;
            }
            writer
                .write_all(&buffer[..n])
                .map_err(FetchError::io(&out))?;
        }
        files += 1;
    }

    let target = dest_dir.join(name);
    let previous = if target.exists() {
        if !replace {
            return Err(FetchError::Io {
                path: target,
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists (use --force to replace it)",
                ),
            });
        }
        let aside = staging.path().join("previous");
        std::fs::rename(&target, &aside).map_err(FetchError::io(&target))?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&root, &target) {
        if let Some(previous) = &previous {
            let _ = std::fs::rename(previous, &target);
        }
        return Err(FetchError::Io {
            path: target,
            source: e,
        });
    }
    // `staging` (and the replaced content inside it) is removed on drop.
    drop(staging);
    Ok(Extracted {
        path: target,
        files,
    })
}

/// The first characters of `path` when they are printable text (an HTML error page saved as
/// the archive), for the error message.
fn text_start(path: &Path) -> Option<String> {
    let mut head = [0u8; 16];
    let n = File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    let printable = |b: &u8| b.is_ascii_graphic() || *b == b' ';
    (n > 0 && head.iter().all(printable)).then(|| String::from_utf8_lossy(head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_that_escape_are_refused() {
        assert_eq!(
            safe_entry_path("horse2zebra/trainA/1.jpg").unwrap(),
            Some(PathBuf::from("horse2zebra/trainA/1.jpg"))
        );
        assert_eq!(
            safe_entry_path("./a//b/").unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(safe_entry_path("./").unwrap(), None);
        for bad in [
            "../evil",
            "a/../../evil",
            "a/../b",
            "/etc/passwd",
            "\\windows\\x",
            "C:/x",
            "c:x",
            "a\\..\\..\\x",
            "a\0b",
        ] {
            assert!(safe_entry_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
