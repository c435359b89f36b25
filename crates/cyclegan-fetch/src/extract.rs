//! Safe, all-or-nothing extraction of zip archives.

use crate::space::{check_space, on_disk};
use crate::FetchError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Folder names a dataset's content uses at its top level: the folder that holds them is the
/// dataset's root.
pub const SPLIT_NAMES: &[&str] = &[
    "trainA", "trainB", "testA", "testB", "valA", "valB", "train", "test", "val", "A", "B",
];

/// The checked relative path of an archive entry (`None` for the archive's root itself), or
/// why it would land outside the destination.
pub(crate) fn safe_entry_path(name: &str) -> Result<Option<PathBuf>, &'static str> {
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
    /// The uncompressed size the archive declares.
    size: u64,
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
/// complete, replacing what was there (`replace`) or refusing to.
///
/// The dataset's root is the folder that holds the `required` folders (each with files;
/// with none required, any of [`SPLIT_NAMES`]): the archive's top (a flat archive,
/// `trainA/...`) or the one top folder that holds them (the reference's `NAME/trainA/...`),
/// which is unwrapped; entries beside that folder (a `README.txt`) are left out. An archive
/// without such a folder is refused when folders are `required`, and otherwise taken as it
/// is (its one top folder unwrapped).
pub fn extract_zip(
    archive: &Path,
    dest_dir: &Path,
    name: &str,
    replace: bool,
    required: &[&str],
) -> Result<Extracted, FetchError> {
    let corrupt = |reason: String| FetchError::CorruptArchive {
        archive: archive.to_path_buf(),
        reason,
    };
    let file = File::open(archive).map_err(FetchError::io(archive))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| {
        corrupt(match text_start(archive) {
            Some((text, true)) => format!("{e}: it is a web page (it starts with the text \"{text}\"), not a zip archive: the server sent a page instead"),
            Some((text, false)) => format!("{e}: it starts with the text \"{text}\", not a zip archive's bytes (the server sent a page instead?)"),
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
            size: entry.size(),
        });
    }
    if !entries.iter().any(|e| !e.is_dir) {
        return Err(corrupt("it holds no files".into()));
    }
    let root = dataset_root(&entries, required).map_err(|reason| FetchError::BadLayout {
        archive: archive.to_path_buf(),
        reason,
    })?;
    let outside: Vec<String> = match &root {
        Some(root) => entries
            .iter()
            .filter(|e| !e.path.starts_with(root))
            .map(|e| e.path.display().to_string())
            .collect(),
        None => Vec::new(),
    };
    if !outside.is_empty() {
        tracing::info!(
            "{}: leaving out what lies beside the dataset's folder {}/: {}",
            archive.display(),
            root.as_ref()
                .map(|r| r.display().to_string())
                .unwrap_or_default(),
            outside.join(", ")
        );
    }

    check_space(
        dest_dir,
        &dest_dir.join(name),
        on_disk(
            entries
                .iter()
                .filter(|e| !e.is_dir && inside(e, root.as_deref()).is_some())
                .map(|e| e.size),
        ),
        &format!("the content of {}", archive.display()),
    )?;

    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.extract-"))
        .tempdir_in(dest_dir)
        .map_err(FetchError::io(dest_dir))?;
    let content = staging.path().join("content");
    std::fs::create_dir(&content).map_err(FetchError::io(&content))?;
    let mut files = 0;
    let mut buffer = vec![0u8; 256 * 1024];
    for entry in &entries {
        let Some(relative) = inside(entry, root.as_deref()) else {
            continue;
        };
        let out = content.join(relative);
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
        // Reading verifies the entry's length and CRC-32 at its end, and stops an entry that
        // inflates past its declared size, which the free-space check counted.
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
    if let Err(e) = std::fs::rename(&content, &target) {
        if let Some(previous) = &previous {
            if std::fs::rename(previous, &target).is_err() {
                // Kept where it is: the next fetch puts it back (`restore_interrupted`).
                let _ = staging.keep();
            }
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

/// `entry`'s path inside the dataset's folder `root` (`None`: the archive's top), or `None`
/// for that folder itself and for what lies beside it.
fn inside<'a>(entry: &'a Entry, root: Option<&Path>) -> Option<&'a Path> {
    match root {
        Some(root) => entry
            .path
            .strip_prefix(root)
            .ok()
            .filter(|relative| !relative.as_os_str().is_empty()),
        None => Some(&entry.path),
    }
}

/// The folder inside the archive that is the dataset (`None`: the archive's top), or why
/// there is none.
fn dataset_root(entries: &[Entry], required: &[&str]) -> Result<Option<PathBuf>, String> {
    // The folders that hold files, by the folder they are in.
    let folders_with_files = |parent: &Path| -> Vec<String> {
        let mut names: Vec<String> = entries
            .iter()
            .filter(|e| !e.is_dir)
            .filter_map(|e| e.path.strip_prefix(parent).ok())
            .filter(|rest| rest.components().count() > 1)
            .filter_map(|rest| rest.iter().next())
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let holds_dataset = |parent: &Path| {
        let folders = folders_with_files(parent);
        let has = |name: &&str| folders.iter().any(|f| f == name);
        if required.is_empty() {
            SPLIT_NAMES.iter().any(has)
        } else {
            required.iter().all(has)
        }
    };
    if holds_dataset(Path::new("")) {
        return Ok(None);
    }
    let tops = folders_with_files(Path::new(""));
    let candidates: Vec<&String> = tops
        .iter()
        .filter(|t| holds_dataset(Path::new(t.as_str())))
        .collect();
    match candidates.as_slice() {
        [one] => return Ok(Some(PathBuf::from(one.as_str()))),
        [] => {}
        several => {
            return Err(format!(
                "several of its folders hold one: {}",
                several
                    .iter()
                    .map(|c| format!("{c}/"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
    if required.is_empty() {
        // No known layout: taken as it is, one top folder around everything unwrapped.
        let wrapped = tops.len() == 1
            && entries.iter().all(|e| {
                e.path.starts_with(&tops[0]) && (e.is_dir || e.path.components().count() > 1)
            });
        return Ok(wrapped.then(|| PathBuf::from(&tops[0])));
    }
    // Say what is there instead: the top level, and inside a single top folder.
    let mut found: Vec<String> = tops.iter().map(|t| format!("{t}/")).collect();
    if let [top] = tops.as_slice() {
        found = folders_with_files(Path::new(top))
            .iter()
            .map(|f| format!("{top}/{f}/"))
            .collect();
    }
    found.extend(
        entries
            .iter()
            .filter(|e| !e.is_dir && e.path.components().count() == 1)
            .map(|e| e.path.display().to_string()),
    );
    found.truncate(12);
    Err(format!(
        "it has no folder holding {} (each with files){}",
        required.join(" and "),
        if found.is_empty() {
            String::new()
        } else {
            format!("; it holds {}", found.join(", "))
        }
    ))
}

/// The first characters of `path` when it starts (after any blank space) with printable
/// text, such as an error page saved as the archive, and whether it is a web page (HTML
/// markup within its first bytes, in any case).
fn text_start(path: &Path) -> Option<(String, bool)> {
    let mut head = Vec::with_capacity(512);
    File::open(path)
        .ok()?
        .take(512)
        .read_to_end(&mut head)
        .ok()?;
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace())?;
    let head = &head[start..];
    let printable = |b: &u8| b.is_ascii_graphic() || *b == b' ';
    let line: Vec<u8> = head
        .iter()
        .take(16)
        .take_while(|b| printable(b))
        .copied()
        .collect();
    if line.is_empty() {
        return None;
    }
    let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
    let html = lower.starts_with("<!doctype html")
        || ["<html", "<head", "<body", "<title"]
            .iter()
            .any(|tag| lower.contains(tag));
    // Text up to a line's end (or 16 characters of it); not bytes that merely start as text.
    let text = line.len() == 16 || head.get(line.len()).is_none_or(u8::is_ascii_whitespace);
    (html || text).then(|| (String::from_utf8_lossy(&line).into_owned(), html))
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
