//! The legacy (non-zip) format of `torch.save`: PyTorch 0.1.10 to 1.5, and later versions
//! with `_use_new_zipfile_serialization=False`.
//!
//! Layout: pickle(MAGIC_NUMBER), pickle(PROTOCOL_VERSION = 1001), pickle(sys_info), pickle(the
//! object, storages as persistent ids), pickle(sorted list of storage keys), then for each key
//! in that list: its element count (8 bytes, little-endian) and its elements.

use super::storage::{swap_bytes, StorageType};
use super::{build_tensors, find_state_dict, pickle_error, PthFormat, PthStateDict};
use crate::error::shown;
use crate::pickle::Value;
use crate::CheckpointError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// `torch.serialization.MAGIC_NUMBER`.
const MAGIC_NUMBER: i128 = 0x1950a86a20f9469cfc6c;
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

pub(super) fn read(bytes: &[u8], path: &Path) -> Result<PthStateDict, CheckpointError> {
    let invalid = |reason: String| CheckpointError::InvalidPth {
        path: path.to_path_buf(),
        reason,
    };
    let mut pos = 0;
    let mut next = |what: &str| {
        let (value, used) =
            crate::pickle::read(&bytes[pos..]).map_err(|e| pickle_error(path, what, e))?;
        pos += used;
        Ok::<_, CheckpointError>(value)
    };
    let magic = next("the magic number")?;
    if magic != Value::BigInt(MAGIC_NUMBER) {
        return Err(CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            found: format!(
                "a Python pickle of {} without torch.save's magic number",
                magic.describe()
            ),
        });
    }
    let protocol = next("the protocol version")?;
    if protocol.as_int() != Some(PROTOCOL_VERSION) {
        return Err(invalid(format!(
            "legacy protocol version {}, expected {PROTOCOL_VERSION}",
            protocol.describe()
        )));
    }
    let sys_info = next("the system information")?;
    let little_endian = match &sys_info {
        Value::Dict(items) => items
            .iter()
            .find(|(k, _)| k.as_str() == Some("little_endian"))
            .map(|(_, v)| *v != Value::Bool(false))
            .unwrap_or(true),
        _ => true,
    };
    let object = next("the state_dict")?;
    let found = find_state_dict(&object, path)?;
    let keys = next("the list of storages")?;
    let keys: Vec<String> = keys
        .as_seq()
        .ok_or_else(|| invalid(format!("storage list is {}", keys.describe())))?
        .iter()
        .map(|k| match k {
            Value::Str(s) => Ok(s.clone()),
            Value::Int(i) => Ok(i.to_string()),
            other => Err(invalid(format!("storage key is {}", other.describe()))),
        })
        .collect::<Result<_, _>>()?;

    // Element sizes come from the references in the object; a storage nothing refers to
    // cannot be skipped without one, but torch.save never writes such a storage.
    let kinds: HashMap<&str, StorageType> = found
        .specs
        .iter()
        .map(|s| (s.storage.key.as_str(), s.storage.kind))
        .collect();
    let mut storages: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    for key in &keys {
        let kind = *kinds.get(key.as_str()).ok_or_else(|| {
            invalid(format!(
                "storage {} is listed but no tensor refers to it",
                shown(key)
            ))
        })?;
        let truncated = |detail: String| CheckpointError::Truncated {
            path: path.to_path_buf(),
            detail,
        };
        let header = bytes.get(pos..pos + 8).ok_or_else(|| {
            truncated(format!(
                "the file ends before storage {} (at byte {})",
                shown(key),
                bytes.len()
            ))
        })?;
        let count = u64::from_le_bytes(header.try_into().expect("8 bytes"));
        pos += 8;
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(kind.size))
            .ok_or_else(|| invalid(format!("storage {} claims {count} elements", shown(key))))?;
        let data = pos
            .checked_add(len)
            .and_then(|end| bytes.get(pos..end))
            .ok_or_else(|| {
                truncated(format!(
                    "storage {} needs {len} bytes from byte {pos}, the file has {}",
                    shown(key),
                    bytes.len()
                ))
            })?;
        pos += len;
        let mut data = data.to_vec();
        if !little_endian {
            swap_bytes(&mut data, kind.size);
        }
        storages.insert(key.clone(), Arc::new(data));
    }
    // Bytes after the last storage, if any, are ignored (torch.load ignores them too).
    build_tensors(found, PthFormat::Legacy, path, |storage| {
        storages.get(&storage.key).cloned().ok_or_else(|| {
            invalid(format!(
                "storage {} is referenced but not in the file's storage list",
                shown(&storage.key)
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::Writer;

    /// A legacy file as PyTorch 0.3 wrote it: `_rebuild_tensor` (four arguments) over a
    /// storage view `(view_key, offset, size)`, in the byte order `little_endian` says.
    fn pytorch_03_file(little_endian: bool) -> Vec<u8> {
        let mut out = vec![0x80, 2, 0x8a, 10];
        out.extend_from_slice(&MAGIC_NUMBER.to_le_bytes()[..10]);
        out.push(b'.');
        let mut w = Writer::new();
        w.int(PROTOCOL_VERSION);
        out.extend(w.finish());
        let mut w = Writer::new();
        w.raw(b"}");
        w.str("little_endian");
        w.bool(little_endian);
        w.raw(b"s");
        out.extend(w.finish());
        let mut w = Writer::new();
        w.raw(b"}");
        w.str("w");
        w.global("torch._utils", "_rebuild_tensor");
        w.mark();
        w.mark();
        w.str("storage");
        w.global("torch", "FloatStorage");
        w.str("k1");
        w.str("cuda:0");
        w.int(6);
        w.mark();
        w.str("k1v");
        w.int(2);
        w.int(4);
        w.tuple_from_mark();
        w.tuple_from_mark();
        w.persistent_id();
        w.int(1);
        w.int_tuple(&[3]);
        w.int_tuple(&[1]);
        w.tuple_from_mark();
        w.reduce();
        w.raw(b"s");
        out.extend(w.finish());
        let mut w = Writer::new();
        w.raw(b"]");
        w.str("k1");
        w.raw(b"a");
        out.extend(w.finish());
        out.extend_from_slice(&6u64.to_le_bytes());
        for i in 0..6 {
            let v = i as f32;
            out.extend_from_slice(&if little_endian {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            });
        }
        out
    }

    #[test]
    fn reads_pytorch_03_tensors_over_storage_views_in_either_byte_order() {
        for little_endian in [true, false] {
            let bytes = pytorch_03_file(little_endian);
            let sd = read(&bytes, Path::new("old.pth")).unwrap();
            assert_eq!(sd.format, PthFormat::Legacy);
            let (name, t) = &sd.tensors[0];
            assert_eq!(name, "w");
            // View offset 2 plus tensor offset 1: elements 3, 4, 5.
            assert_eq!(t.to_vec1::<f32>().unwrap(), vec![3.0, 4.0, 5.0]);
        }
    }

    /// Element counts from the file that overflow the byte count, or its end offset (a
    /// panic in a debug build), or that the file does not hold, are errors.
    #[test]
    fn storage_counts_beyond_the_file_are_errors() {
        for count in [u64::MAX, u64::MAX / 4, 7] {
            let mut bytes = pytorch_03_file(true);
            let at = bytes.len() - 6 * 4 - 8;
            bytes[at..at + 8].copy_from_slice(&count.to_le_bytes());
            let err = read(&bytes, Path::new("old.pth")).unwrap_err().to_string();
            assert!(err.contains("storage k1"), "{count}: {err}");
        }
    }

    #[test]
    fn a_pickle_without_the_magic_number_is_not_a_checkpoint() {
        let mut w = Writer::new();
        w.int(5);
        let err = read(&w.finish(), Path::new("x.pkl")).unwrap_err();
        assert!(
            matches!(err, CheckpointError::NotACheckpoint { .. }),
            "{err}"
        );
    }
}
