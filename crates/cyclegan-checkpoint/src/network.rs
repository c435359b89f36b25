//! Network checkpoints in safetensors with the architecture in the metadata, and reading
//! reference `.pth` files the same way.

use crate::detect::{prepare_state_dict, ConvertOptions};
use crate::format::FileFormat;
use crate::CheckpointError;
use candle_core::{DType, Device, Tensor};
use cyclegan_models::NetworkConfig;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Metadata key holding the network's [`NetworkConfig`] as JSON.
pub const CONFIG_KEY: &str = "cyclegan.config";
/// Metadata key naming the writer, for files this project wrote.
pub const FORMAT_KEY: &str = "cyclegan.format";
/// Metadata key naming the file a converted checkpoint came from.
pub const SOURCE_KEY: &str = "cyclegan.source";
const FORMAT: &str = "cyclegan-rs/1";

/// A network read from a checkpoint: its architecture and its `state_dict`.
#[derive(Debug, Clone)]
pub struct LoadedNetwork {
    /// The architecture.
    pub config: NetworkConfig,
    /// The tensors under the reference's `state_dict` key names.
    pub tensors: HashMap<String, Tensor>,
}

/// Writes `tensors` (reference key names) and `config` to `path` atomically.
pub fn save_network(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    config: &NetworkConfig,
) -> Result<(), CheckpointError> {
    save_network_with_metadata(path, tensors, config, &[])
}

/// [`save_network`] with extra metadata entries (such as [`SOURCE_KEY`]).
pub fn save_network_with_metadata(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    config: &NetworkConfig,
    extra: &[(&str, String)],
) -> Result<(), CheckpointError> {
    let mut metadata = HashMap::from([
        (
            CONFIG_KEY.to_string(),
            serde_json::to_string(config).expect("configs serialise"),
        ),
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
    ]);
    for (k, v) in extra {
        metadata.insert(k.to_string(), v.clone());
    }
    let mut named: Vec<(&String, &Tensor)> = tensors.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let bytes =
        safetensors::serialize(named, Some(metadata)).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    crate::write_atomic(path, |file| file.write_all(&bytes)).map_err(CheckpointError::io(path))
}

/// Reads a network checkpoint onto `device`, converting floating point tensors to `dtype`
/// (integer buffers such as `num_batches_tracked` keep theirs).
///
/// The format is recognised from the content, whatever the file's name: a safetensors file
/// written by [`save_network`] (or any safetensors file with reference key names, whose
/// architecture is then detected), or a reference `.pth` file in either `torch.save` format,
/// whose architecture is detected from its keys ([`crate::detect_architecture`]).
pub fn load_network(
    path: &Path,
    device: &Device,
    dtype: DType,
) -> Result<LoadedNetwork, CheckpointError> {
    load_network_with(path, device, dtype, &ConvertOptions::default())
}

/// [`load_network`] with settings for what detection cannot see (used for files without an
/// architecture description; a safetensors file written by this project carries its own).
pub fn load_network_with(
    path: &Path,
    device: &Device,
    dtype: DType,
    options: &ConvertOptions,
) -> Result<LoadedNetwork, CheckpointError> {
    let bytes = std::fs::read(path).map_err(CheckpointError::io(path))?;
    let (config, tensors) = match FileFormat::sniff(&bytes) {
        Ok(FileFormat::Safetensors) => {
            let (config, tensors) = read_safetensors(&bytes, path)?;
            match config {
                Some(config) if *options == ConvertOptions::default() => (config, tensors),
                _ => {
                    let prepared =
                        prepare_state_dict(tensors, options).map_err(|e| e.in_file(path))?;
                    (prepared.config, prepared.tensors)
                }
            }
        }
        Ok(FileFormat::PthZip | FileFormat::PthLegacy) => {
            let pth = crate::pth::read_pth_bytes(&bytes, path)?;
            let prepared = prepare_state_dict(pth.tensors, options).map_err(|e| e.in_file(path))?;
            (prepared.config, prepared.tensors)
        }
        Err(found) => {
            return Err(CheckpointError::NotACheckpoint {
                path: path.to_path_buf(),
                found,
            })
        }
    };
    let tensors = tensors
        .into_iter()
        .map(|(name, t)| {
            let t = if t.dtype().is_float() && t.dtype() != dtype {
                t.to_dtype(dtype)?
            } else {
                t
            };
            Ok((name, t.to_device(device)?))
        })
        .collect::<candle_core::Result<_>>()?;
    Ok(LoadedNetwork { config, tensors })
}

/// `(key, tensor)` pairs in the reference's module order.
pub(crate) type StateDict = Vec<(String, Tensor)>;

/// The tensors of a safetensors file (in key order) and its architecture description, if it
/// has one.
pub(crate) fn read_safetensors(
    bytes: &[u8],
    path: &Path,
) -> Result<(Option<NetworkConfig>, StateDict), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
    let config = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .map(|json| {
            serde_json::from_str::<NetworkConfig>(json).map_err(|e| CheckpointError::BadConfig {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
        })
        .transpose()?;
    let raw = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut tensors: Vec<(String, Tensor)> = raw.into_iter().collect();
    tensors.sort_by(|a, b| crate::natural_cmp(&a.0, &b.0));
    Ok((config, tensors))
}
