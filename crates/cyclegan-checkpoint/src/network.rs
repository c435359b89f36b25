//! Network checkpoints in safetensors with the architecture in the metadata.

use candle_core::{DType, Device, Tensor};
use cyclegan_models::NetworkConfig;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Metadata key holding the network's [`NetworkConfig`] as JSON.
pub const CONFIG_KEY: &str = "cyclegan.config";
/// Metadata key naming the writer, for files this project wrote.
pub const FORMAT_KEY: &str = "cyclegan.format";
const FORMAT: &str = "cyclegan-rs/1";

/// Why a checkpoint could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid safetensors file ({reason}); was it truncated or is it another kind of file?")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path} has no architecture description (metadata '{CONFIG_KEY}'); write it with this project or convert it with `cargo xtask convert-checkpoint`")]
    MissingConfig { path: PathBuf },
    #[error("{path}: invalid architecture description: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("{0}")]
    Tensor(#[from] candle_core::Error),
}

/// A network read from a checkpoint: its architecture and its `state_dict`.
#[derive(Debug, Clone)]
pub struct LoadedNetwork {
    pub config: NetworkConfig,
    pub tensors: HashMap<String, Tensor>,
}

/// Writes `tensors` (reference key names) and `config` to `path` atomically.
pub fn save_network(
    path: &Path,
    tensors: &HashMap<String, Tensor>,
    config: &NetworkConfig,
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = HashMap::from([
        (
            CONFIG_KEY.to_string(),
            serde_json::to_string(config).expect("configs serialise"),
        ),
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
    ]);
    let mut named: Vec<(&String, &Tensor)> = tensors.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let bytes =
        safetensors::serialize(named, Some(metadata)).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    crate::write_atomic(path, |file| file.write_all(&bytes)).map_err(io)
}

/// Reads a network checkpoint written by [`save_network`] onto `device`, converting floating
/// point tensors to `dtype` (integer buffers such as `num_batches_tracked` keep theirs).
pub fn load_network(
    path: &Path,
    device: &Device,
    dtype: DType,
) -> Result<LoadedNetwork, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .ok_or_else(|| CheckpointError::MissingConfig {
            path: path.to_path_buf(),
        })?;
    let config: NetworkConfig =
        serde_json::from_str(json).map_err(|e| CheckpointError::BadConfig {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let raw = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| corrupt(e.to_string()))?;
    let tensors = raw
        .into_iter()
        .map(|(name, t)| {
            let t = if t.dtype().is_float() && t.dtype() != dtype {
                t.to_dtype(dtype)?
            } else {
                t
            };
            Ok((name, t))
        })
        .collect::<candle_core::Result<_>>()?;
    Ok(LoadedNetwork { config, tensors })
}
