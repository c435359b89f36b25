//! PyTorch `.pth` checkpoints: both formats `torch.save` writes, read without Python, and the
//! zip format written back.
//!
//! - Zip format (PyTorch >= 1.6): `NAME/data.pkl` (the pickled object, storages as persistent
//!   ids), `NAME/data/KEY` (one raw storage per key), `NAME/byteorder`, `NAME/version`.
//! - Legacy format (older PyTorch, or `_use_new_zipfile_serialization=False`): five pickles
//!   back to back (magic number, protocol version, system info, the object, the sorted list of
//!   storage keys), then for each key its element count as 8 little-endian bytes and its raw
//!   data.
//!
//! In both, a tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
//! with the storage a persistent id `('storage', torch.FloatStorage, key, location, numel[,
//! view])`. Reading interprets exactly these names; anything else in the pickle is reported,
//! never executed.

mod legacy;
mod storage;
mod write;
mod zip_format;

pub use write::{pth_bytes, write_pth};

use crate::error::shown;
use crate::format::FileFormat;
use crate::pickle::{PickleError, Value};
use crate::CheckpointError;
use candle_core::Tensor;
use std::path::Path;
use storage::{StorageRef, TensorSpec};

/// Which `torch.save` format a file used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PthFormat {
    /// The zip archive format of PyTorch >= 1.6.
    Zip,
    /// The legacy format of older PyTorch.
    Legacy,
}

impl std::fmt::Display for PthFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PthFormat::Zip => "zip (PyTorch >= 1.6)",
            PthFormat::Legacy => "legacy (PyTorch < 1.6)",
        })
    }
}

/// The tensors of a `.pth` file, in the file's order, on the CPU.
#[derive(Debug, Clone)]
pub struct PthStateDict {
    /// The format the file was written in.
    pub format: PthFormat,
    /// `(key, tensor)` in the order of the pickled dict.
    pub tensors: Vec<(String, Tensor)>,
    /// The dict key the state_dict was found under, when the file held a wrapping dict such
    /// as `{"state_dict": ..., "epoch": 3}`.
    pub found_under: Option<String>,
}

/// Reads the `state_dict` that `torch.save` wrote to `path`, in either format.
pub fn read_pth(path: impl AsRef<Path>) -> Result<PthStateDict, CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(CheckpointError::io(path))?;
    read_pth_bytes(&bytes, path)
}

/// Reads a `.pth` file's content; `path` only names it in errors.
pub fn read_pth_bytes(bytes: &[u8], path: &Path) -> Result<PthStateDict, CheckpointError> {
    match FileFormat::sniff(bytes) {
        Ok(FileFormat::PthZip) => zip_format::read(bytes, path),
        Ok(FileFormat::PthLegacy) => legacy::read(bytes, path),
        Ok(FileFormat::Safetensors) => Err(CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            found: "a safetensors file, not a .pth file".into(),
        }),
        Err(found) => Err(CheckpointError::NotACheckpoint {
            path: path.to_path_buf(),
            found,
        }),
    }
}

/// The tensors of a pickled object, before their storages are read.
struct Found {
    specs: Vec<TensorSpec>,
    found_under: Option<String>,
}

/// Maps a pickle error to this crate's error for `path`.
fn pickle_error(path: &Path, what: &str, e: PickleError) -> CheckpointError {
    match e {
        PickleError::Truncated { .. } => CheckpointError::Truncated {
            path: path.to_path_buf(),
            detail: format!("{what} ends early"),
        },
        PickleError::Invalid { at, reason } => CheckpointError::InvalidPth {
            path: path.to_path_buf(),
            reason: format!("{what}: {reason} (byte {at})"),
        },
    }
}

/// Finds the `state_dict` in the unpickled top-level object.
fn find_state_dict(object: &Value, path: &Path) -> Result<Found, CheckpointError> {
    let not_a_state_dict = |found: String| CheckpointError::NotAStateDict {
        path: path.to_path_buf(),
        found,
    };
    let items = match object {
        Value::Dict(items) => items,
        other => {
            let found = match other {
                Value::Build { object, .. }
                | Value::Call {
                    callable: object, ..
                } => {
                    format!(
                        "a pickled Python object ({}), as torch.save(net) writes; save net.state_dict() instead",
                        object.describe()
                    )
                }
                other => other.describe(),
            };
            return Err(not_a_state_dict(found));
        }
    };
    let specs = tensor_entries(items, path)?;
    if !specs.is_empty() {
        return Ok(Found {
            specs,
            found_under: None,
        });
    }
    // A wrapping dict: {"state_dict": {...}, "epoch": ...}.
    let mut nested = Vec::new();
    for (k, v) in items {
        if let (Value::Str(k), Value::Dict(inner)) = (k, v) {
            let specs = tensor_entries(inner, path)?;
            if !specs.is_empty() {
                nested.push((k.clone(), specs));
            }
        }
    }
    match nested.len() {
        1 => {
            let (key, specs) = nested.pop().expect("one");
            Ok(Found {
                specs,
                found_under: Some(key),
            })
        }
        0 => {
            let keys: Vec<String> = items
                .iter()
                .take(10)
                .map(|(k, v)| format!("{} ({})", k.describe(), v.describe()))
                .collect();
            Err(not_a_state_dict(if keys.is_empty() {
                "an empty dict".into()
            } else {
                format!("a dict without tensors: {}", keys.join(", "))
            }))
        }
        _ => Err(not_a_state_dict(format!(
            "several dicts of tensors ({}); convert one of them",
            nested
                .iter()
                .map(|(k, _)| shown(k))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The tensor entries of a dict (other values are skipped).
fn tensor_entries(
    items: &[(Value, Value)],
    path: &Path,
) -> Result<Vec<TensorSpec>, CheckpointError> {
    let mut specs = Vec::new();
    for (key, value) in items {
        let Some(key) = key.as_str() else { continue };
        if let Some(spec) =
            storage::tensor_spec(key, value).map_err(|reason| CheckpointError::InvalidPth {
                path: path.to_path_buf(),
                reason: format!("tensor '{}': {reason}", shown(key)),
            })?
        {
            specs.push(spec);
        }
    }
    Ok(specs)
}

/// Builds the tensors of `found` from the storages `storage_bytes` returns (little-endian
/// bytes of each storage key).
fn build_tensors(
    found: Found,
    format: PthFormat,
    path: &Path,
    mut storage_bytes: impl FnMut(&StorageRef) -> Result<std::sync::Arc<Vec<u8>>, CheckpointError>,
) -> Result<PthStateDict, CheckpointError> {
    let mut tensors = Vec::with_capacity(found.specs.len());
    for spec in found.specs {
        let bytes = storage_bytes(&spec.storage)?;
        let tensor = spec
            .build(&bytes)
            .map_err(|reason| CheckpointError::InvalidPth {
                path: path.to_path_buf(),
                reason: format!("tensor '{}': {reason}", shown(&spec.name)),
            })?;
        tensors.push((spec.name, tensor));
    }
    Ok(PthStateDict {
        format,
        tensors,
        found_under: found.found_under,
    })
}
