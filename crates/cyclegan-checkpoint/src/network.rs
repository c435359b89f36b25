//! Network checkpoints in safetensors with the architecture in the metadata, and reading
//! reference `.pth` files the same way.

use crate::detect::{
    check_dtypes, check_keys, prepare_state_dict, shapes_of, ConvertOptions, PreparedStateDict,
};
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
    path: impl AsRef<Path>,
    tensors: &HashMap<String, Tensor>,
    config: &NetworkConfig,
) -> Result<(), CheckpointError> {
    save_network_with_metadata(path, tensors, config, &[])
}

/// [`save_network`] with extra metadata entries (such as [`SOURCE_KEY`]).
pub fn save_network_with_metadata(
    path: impl AsRef<Path>,
    tensors: &HashMap<String, Tensor>,
    config: &NetworkConfig,
    extra: &[(&str, String)],
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = network_bytes(tensors, config, extra).map_err(|e| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    crate::write_atomic(path, |file| file.write_all(&bytes)).map_err(CheckpointError::write(path))
}

/// The bytes [`save_network_with_metadata`] writes: for writing a network file some other way
/// (as part of a [`FileSet`](crate::FileSet)).
pub fn network_bytes(
    tensors: &HashMap<String, Tensor>,
    config: &NetworkConfig,
    extra: &[(&str, String)],
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
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
    serialize_safetensors(tensors, metadata)
}

/// The safetensors bytes of `tensors` and `metadata`, the same bytes for the same content: the
/// tensors in name order, and the metadata entries in key order (the safetensors crate writes
/// them in its hash map's order, which differs from process to process, so that two runs that
/// trained the same weights would otherwise write different files).
pub fn serialize_safetensors(
    tensors: &HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let mut named: Vec<(&String, &Tensor)> = tensors.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let bytes = safetensors::serialize(named, Some(metadata))?;
    Ok(with_sorted_metadata(bytes))
}

/// `bytes` (a safetensors file) with the header's `__metadata__` entries in key order; the
/// header keeps its length (the same entries, reordered), so no offset changes. Returned as
/// they are if the header is not what the safetensors crate writes.
fn with_sorted_metadata(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(len) = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(|b| u64::from_le_bytes(b) as usize)
    else {
        return bytes;
    };
    let Some(header) = bytes.get(8..8 + len) else {
        return bytes;
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(header) else {
        return bytes;
    };
    // Rebuilt in a fixed order whichever map serde_json uses (sorted, or insertion-ordered).
    let mut sorted = serde_json::Map::new();
    if let Some(serde_json::Value::Object(metadata)) = fields.get("__metadata__") {
        let entries: std::collections::BTreeMap<_, _> = metadata.iter().collect();
        let metadata: serde_json::Map<String, serde_json::Value> = entries
            .into_iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        sorted.insert("__metadata__".into(), metadata.into());
    }
    for (key, value) in fields {
        if key != "__metadata__" {
            sorted.insert(key, value);
        }
    }
    let Ok(json) = serde_json::to_vec(&serde_json::Value::Object(sorted)) else {
        return bytes;
    };
    if json.len() > len {
        return bytes;
    }
    // The rest of the header is the padding of spaces safetensors aligns the data with.
    bytes[8..8 + json.len()].copy_from_slice(&json);
    bytes[8 + json.len()..8 + len].fill(b' ');
    bytes
}

/// Reads a network checkpoint onto `device`, converting floating point tensors to `dtype`
/// (integer buffers such as `num_batches_tracked` keep theirs).
///
/// The format is recognised from the content, whatever the file's name: a safetensors file
/// written by [`save_network`] (or any safetensors file with reference key names, whose
/// architecture is then detected), or a reference `.pth` file in either `torch.save` format,
/// whose architecture is detected from its keys ([`crate::detect_architecture`]).
pub fn load_network(
    path: impl AsRef<Path>,
    device: &Device,
    dtype: DType,
) -> Result<LoadedNetwork, CheckpointError> {
    load_network_with(path, device, dtype, &ConvertOptions::default())
}

/// [`load_network`] with settings for what detection cannot see (used for files without an
/// architecture description; a safetensors file written by this project carries its own).
pub fn load_network_with(
    path: impl AsRef<Path>,
    device: &Device,
    dtype: DType,
    options: &ConvertOptions,
) -> Result<LoadedNetwork, CheckpointError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(CheckpointError::io(path))?;
    let (config, tensors) = match FileFormat::sniff(&bytes) {
        Ok(FileFormat::Safetensors) => {
            let prepared = read_safetensors_network(&bytes, path, options)?;
            (prepared.config, prepared.tensors)
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

/// A safetensors network: the architecture its metadata states, checked against its tensors'
/// keys, shapes and types; or, for a file without one or with `options` that override it, the
/// architecture [`prepare_state_dict`] detects.
pub(crate) fn read_safetensors_network(
    bytes: &[u8],
    path: &Path,
    options: &ConvertOptions,
) -> Result<PreparedStateDict, CheckpointError> {
    let (config, tensors) = read_safetensors(bytes, path)?;
    match config {
        Some(config) if *options == ConvertOptions::default() => {
            let mut notes = Vec::new();
            check_keys(&shapes_of(&tensors), &config, &mut notes)
                .and_then(|_| check_dtypes(&tensors))
                .map_err(|e| e.in_file(path))?;
            Ok(PreparedStateDict {
                config,
                tensors,
                notes,
            })
        }
        _ => prepare_state_dict(tensors, options).map_err(|e| e.in_file(path)),
    }
}

/// `(key, tensor)` pairs in the reference's module order.
pub(crate) type StateDict = Vec<(String, Tensor)>;

/// The tensors of a safetensors file (in key order) and its architecture description, if it
/// has one.
fn read_safetensors(
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
    tensors.sort_by(|a, b| crate::detect::natural_cmp(&a.0, &b.0));
    Ok((config, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same content gives the same bytes whatever order the maps hand it over in, and the
    /// file reads back with every tensor and metadata entry.
    #[test]
    fn the_same_content_serialises_to_the_same_bytes() {
        let dev = Device::Cpu;
        let tensors = HashMap::from([
            ("b".to_string(), Tensor::new(&[1f32, 2.0], &dev).unwrap()),
            ("a".to_string(), Tensor::new(&[3f32], &dev).unwrap()),
        ]);
        let entries: Vec<(String, String)> = (0..12)
            .map(|i| (format!("key{i}"), format!("value {i}")))
            .collect();
        let forward: HashMap<_, _> = entries.iter().cloned().collect();
        let mut backward = HashMap::new();
        for (k, v) in entries.iter().rev() {
            backward.insert(k.clone(), v.clone());
        }
        let first = serialize_safetensors(&tensors, forward).unwrap();
        // A map of another capacity iterates in another order.
        let mut roomy = HashMap::with_capacity(1000);
        roomy.extend(backward);
        let second = serialize_safetensors(&tensors, roomy).unwrap();
        assert_eq!(first, second);

        let read = safetensors::SafeTensors::deserialize(&first).unwrap();
        assert_eq!(read.tensor("b").unwrap().shape(), &[2]);
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&first).unwrap();
        let metadata = metadata.metadata().clone().unwrap();
        assert_eq!(metadata.len(), 12);
        assert_eq!(metadata["key7"], "value 7");
        let header_len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&first[8..8 + header_len]).unwrap();
        assert!(header.find("key10").unwrap() < header.find("key2").unwrap());
    }

    /// safetensors' 4- to 8-bit float types load as candle tensors that convert to nothing:
    /// loading failed with candle's "unsupported dtype F4 for op to_dtype", without the file.
    #[test]
    fn tensors_of_tiny_float_types_are_refused_naming_the_file() {
        use safetensors::{tensor::TensorView, Dtype};
        let data = [0x3cu8; 8];
        let weight = TensorView::new(Dtype::F4, vec![4, 4], &data).unwrap();
        let bytes = safetensors::serialize([("model.1.weight", weight)], None).unwrap();
        let err = read_safetensors_network(
            &bytes,
            Path::new("tiny.safetensors"),
            &ConvertOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("tiny.safetensors: ") && err.contains("model.1.weight F4"),
            "{err}"
        );
    }
}
