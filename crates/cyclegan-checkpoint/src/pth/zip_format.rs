//! The zip format of `torch.save` (PyTorch >= 1.6).

use super::storage::swap_bytes;
use super::{build_tensors, find_state_dict, pickle_error, PthFormat, PthStateDict};
use crate::error::shown;
use crate::CheckpointError;
use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

/// A compressed record may inflate to this many bytes whatever its ratio.
const MAX_INFLATED_UNCHECKED: u64 = 64 << 20;
/// Beyond [`MAX_INFLATED_UNCHECKED`], the most a compressed record may expand.
const MAX_EXPANSION: u64 = 100;

pub(super) fn read(bytes: &[u8], path: &Path) -> Result<PthStateDict, CheckpointError> {
    let invalid = |reason: String| CheckpointError::InvalidPth {
        path: path.to_path_buf(),
        reason,
    };
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| CheckpointError::Truncated {
            path: path.to_path_buf(),
            detail: format!("the zip archive's directory is missing or damaged ({e})"),
        })?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("an unreadable record name ({e})")))?;
    let pickle_name = names
        .iter()
        .filter(|n| n.ends_with("data.pkl"))
        .min_by_key(|n| n.len())
        .ok_or_else(|| {
            let mut shown: Vec<&str> = names.iter().map(String::as_str).take(8).collect();
            if names.len() > 8 {
                shown.push("...");
            }
            CheckpointError::NotACheckpoint {
                path: path.to_path_buf(),
                found: format!(
                    "a zip archive without data.pkl (it holds {})",
                    if shown.is_empty() {
                        "nothing".to_string()
                    } else {
                        shown.join(", ")
                    }
                ),
            }
        })?
        .clone();
    let prefix = pickle_name
        .strip_suffix("data.pkl")
        .expect("ends with data.pkl")
        .to_string();
    let read_entry = |archive: &mut zip::ZipArchive<Cursor<&[u8]>>, name: &str| {
        let mut entry = archive
            .by_name(name)
            .map_err(|e| invalid(format!("record {}: {e}", shown(name))))?;
        // torch.save stores its records uncompressed; a record recompressed by an archiver
        // shrinks a few times at most. One that expands a hundredfold into more than 64 MiB
        // is a zip bomb, whose decompression would exhaust memory.
        // (A stored record's reading ends with its bytes in the file, whatever it claims.)
        let expands = entry.size() / entry.compressed_size().max(1);
        let compressed = entry.compression() != zip::CompressionMethod::Stored;
        if compressed && entry.size() > MAX_INFLATED_UNCHECKED && expands > MAX_EXPANSION {
            return Err(invalid(format!(
                "record {} expands {expands} times, to {} MiB (a damaged or crafted archive)",
                shown(name),
                entry.size() >> 20
            )));
        }
        // The size is the archive's claim: reading stops there, but a claim beyond the file
        // must not be allocated up front (a capacity overflow or an allocation abort).
        let mut data = Vec::with_capacity(entry.size().min(bytes.len() as u64) as usize);
        entry
            .read_to_end(&mut data)
            .map_err(|e| CheckpointError::Truncated {
                path: path.to_path_buf(),
                detail: format!("record {} cannot be read in full ({e})", shown(name)),
            })?;
        Ok::<_, CheckpointError>(data)
    };
    let big_endian = match names.iter().any(|n| *n == format!("{prefix}byteorder")) {
        true => read_entry(&mut archive, &format!("{prefix}byteorder"))? == b"big",
        false => false,
    };
    let pickle = read_entry(&mut archive, &pickle_name)?;
    let (object, _) =
        crate::pickle::read(&pickle).map_err(|e| pickle_error(path, &pickle_name, e))?;
    let found = find_state_dict(&object, path)?;
    let mut cache: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    build_tensors(found, PthFormat::Zip, path, |storage| {
        if let Some(data) = cache.get(&storage.key) {
            return Ok(data.clone());
        }
        let name = format!("{prefix}data/{}", storage.key);
        if !names.contains(&name) {
            return Err(invalid(format!(
                "storage record {} is missing from the archive",
                shown(&name)
            )));
        }
        let mut data = read_entry(&mut archive, &name)?;
        let needed = storage.numel.saturating_mul(storage.kind.size);
        if data.len() < needed {
            return Err(CheckpointError::Truncated {
                path: path.to_path_buf(),
                detail: format!(
                    "storage record {} holds {} bytes, its tensors need {needed}",
                    shown(&name),
                    data.len()
                ),
            });
        }
        if big_endian {
            swap_bytes(&mut data, storage.kind.size);
        }
        let data = Arc::new(data);
        cache.insert(storage.key.clone(), data.clone());
        Ok(data)
    })
}
