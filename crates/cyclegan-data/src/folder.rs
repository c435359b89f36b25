//! Finding images in folders, like the reference's `make_dataset`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The image extensions that are listed, compared without regard to case: `.jpg`, `.JPG` and
/// also mixed case such as `.Jpg`. The reference's `IMG_EXTENSIONS` holds only the all-lowercase
/// and all-uppercase forms of these, so it skips a `photo.Jpg` that is listed here.
pub const IMAGE_EXTENSIONS: [&str; 7] = [".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff"];

pub(crate) const EXTENSIONS_TEXT: &str = ".jpg .jpeg .png .ppm .bmp .tif .tiff in any case";

/// True when the file name ends with one of [`IMAGE_EXTENSIONS`], in any case (mixed case too,
/// which the reference does not accept).
///
/// ```
/// use cyclegan_data::is_image_file;
/// assert!(is_image_file("horse/n02381460_1001.JPG"));
/// assert!(is_image_file("a.TiFf"));
/// assert!(!is_image_file("notes.txt"));
/// assert!(!is_image_file("a.png.bak"));
/// ```
pub fn is_image_file(path: impl AsRef<Path>) -> bool {
    let Some(name) = path.as_ref().file_name() else {
        return false;
    };
    let name = name.as_encoded_bytes();
    IMAGE_EXTENSIONS.iter().any(|ext| {
        let ext = ext.as_bytes();
        name.len() >= ext.len() && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext)
    })
}

/// Lists the image files under `dir`, recursively, sorted by their full path.
///
/// Like the reference's `make_dataset` (`os.walk` without following symbolic links to
/// folders, then `sorted`): files are kept when [`is_image_file`] says so, symbolic links
/// to files are listed, symbolic links to folders are not descended into. Unlike it, special
/// files with an image's name (a named pipe, a socket, a device) are left out: reading one
/// would wait forever or never end. The result may be empty; `dir` must be a readable folder.
pub fn list_images(dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
    let dir = dir.as_ref();
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        if file_type.is_dir() {
            walk(&path, out)?;
        } else if file_type.is_symlink() {
            // os.walk lists a link to a folder as a folder and does not follow it; a link to a
            // file (or a dangling link, which then fails to read, naming it) is listed as a file.
            let listed = fs::metadata(&path).map_or(true, |m| m.is_file());
            if listed && is_image_file(&path) {
                out.push(path);
            }
        } else if file_type.is_file() && is_image_file(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Lists a dataset folder and checks that it holds images; `expected` describes the layout
/// for the error message.
pub(crate) fn list_dataset_folder(dir: &Path, expected: &str) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(DataError::MissingFolder {
            path: dir.to_path_buf(),
            expected: expected.to_string(),
        });
    }
    let paths = list_images(dir)?;
    if paths.is_empty() {
        return Err(DataError::EmptyFolder {
            path: dir.to_path_buf(),
            expected: expected.to_string(),
        });
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_match_in_any_case_and_only_at_the_end() {
        for name in [
            "a.jpg", "a.JPG", "a.Jpeg", "b.png", "c.PPM", "d.bmp", "e.tif", "f.TIFF", "g.tIf",
        ] {
            assert!(is_image_file(name), "{name} should be an image file");
        }
        for name in ["a.gif", "a.webp", "a.jpg.txt", "png", "a.pn", "dir/", ""] {
            assert!(!is_image_file(name), "{name} should not be an image file");
        }
    }

    #[test]
    fn listing_is_recursive_sorted_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        for name in [
            "b.png",
            "a.JPG",
            "notes.txt",
            "sub/c.tif",
            "sub/deeper/d.bmp",
            "sub/e.gif",
            "a-b.png",
        ] {
            fs::write(root.join(name), b"x").unwrap();
        }
        let names: Vec<String> = list_images(root)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        // Sorted as whole path strings, like Python's sorted(): "a-b.png" < "a.JPG" ('-' < '.').
        assert_eq!(
            names,
            ["a-b.png", "a.JPG", "b.png", "sub/c.tif", "sub/deeper/d.bmp"]
        );
    }

    /// A socket (like a named pipe) named as an image, and a link to it, are left out: opening
    /// a named pipe to read it waited forever. Links to files, and dangling ones, are listed;
    /// links to folders are not followed (a link to `..` would loop).
    #[cfg(unix)]
    #[test]
    fn special_files_are_left_out_and_folder_links_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("a.png"), b"x").unwrap();
        let _socket = std::os::unix::net::UnixListener::bind(root.join("socket.png")).unwrap();
        std::os::unix::fs::symlink(root.join("socket.png"), root.join("to_socket.png")).unwrap();
        std::os::unix::fs::symlink(root.join("a.png"), root.join("to_a.png")).unwrap();
        std::os::unix::fs::symlink(root.join("gone.png"), root.join("dangling.png")).unwrap();
        std::os::unix::fs::symlink("..", root.join("loop")).unwrap();
        let names: Vec<String> = list_images(root)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.png", "dangling.png", "to_a.png"]);
    }
}
