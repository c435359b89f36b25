//! Embeds the default dataset (`data/emoji64` at the workspace root) in the binary, so that an
//! installed `cyclegan-train` runs its default training anywhere: writes
//! `$OUT_DIR/embedded_dataset.rs` with every file's relative path and bytes, and a digest of
//! them that names the folder they are unpacked to (`cyclegan_train::embedded`).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else if path.is_file() {
            out.push(path);
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../../data/emoji64");
    // A missing path would rerun this script on every build: the crate built on its own.
    println!("cargo:rerun-if-changed=build.rs");
    if root.is_dir() {
        println!("cargo:rerun-if-changed={}", root.display());
    }
    let mut files = Vec::new();
    // Without the feature, or without the workspace's data (the crate built on its own), the
    // binary embeds none and says so when the default run needs it.
    if std::env::var_os("CARGO_FEATURE_EMBEDDED_DATA").is_some() && root.is_dir() {
        files_under(&root, &mut files);
    }
    let mut digest = Sha256::new();
    let mut source = String::from("&[\n");
    for path in &files {
        let relative = path
            .strip_prefix(&root)
            .unwrap()
            .components()
            .map(|c| {
                c.as_os_str()
                    .to_str()
                    .expect("UTF-8 file names in data/emoji64")
            })
            .collect::<Vec<_>>()
            .join("/");
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        digest.update((relative.len() as u64).to_le_bytes());
        digest.update(relative.as_bytes());
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(&bytes);
        let absolute = path.canonicalize().unwrap();
        source.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            absolute.to_str().expect("a UTF-8 path to data/emoji64")
        ));
    }
    source.push(']');
    let digest: String = digest.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("embedded_dataset.rs");
    std::fs::write(
        out,
        format!(
            "/// Every file of the dataset: its path relative to the dataset's folder, `/`-separated, and its bytes.\n\
             pub const FILES: &[(&str, &[u8])] = {source};\n\
             /// The first 8 bytes of the SHA-256 of every path and content, in hex.\n\
             pub const DIGEST: &str = {digest:?};\n"
        ),
    )
    .unwrap();
}
