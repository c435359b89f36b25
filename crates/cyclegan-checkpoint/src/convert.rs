//! Converting between `.pth` and safetensors checkpoints.

use crate::detect::{describe_config, prepare_state_dict, ConvertOptions};
use crate::error::shown;
use crate::format::FileFormat;
use crate::network::{read_safetensors_network, save_network_with_metadata, SOURCE_KEY};
use crate::pth::{read_pth_bytes, write_pth};
use crate::CheckpointError;
use candle_core::Tensor;
use cyclegan_models::NetworkConfig;
use std::path::Path;

/// The file format a conversion writes, chosen by the output's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `.safetensors`: this project's format, with the architecture in the metadata.
    Safetensors,
    /// `.pth` / `.pt`: `torch.save`'s zip format, loadable by the reference.
    Pth,
}

impl OutputFormat {
    /// The format a file name asks for.
    pub fn from_path(path: &Path) -> Result<OutputFormat, CheckpointError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => Ok(OutputFormat::Safetensors),
            Some("pth" | "pt") => Ok(OutputFormat::Pth),
            _ => Err(CheckpointError::InvalidArgument(format!(
                "cannot tell the output format of {} from its name: use a .safetensors or a .pth file name",
                path.display()
            ))),
        }
    }
}

/// What a conversion read, decided and wrote.
#[derive(Debug, Clone)]
pub struct ConversionReport {
    /// The input's format.
    pub input_format: FileFormat,
    /// The output's format.
    pub output_format: OutputFormat,
    /// The architecture (detected, from the input's metadata, or overridden).
    pub config: NetworkConfig,
    /// Tensors written.
    pub tensors: usize,
    /// What was changed or assumed on the way.
    pub notes: Vec<String>,
}

impl std::fmt::Display for ConversionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tensors of a {}",
            self.tensors,
            describe_config(&self.config)
        )?;
        for note in &self.notes {
            write!(f, "\n  note: {note}")?;
        }
        Ok(())
    }
}

/// Converts the checkpoint `input` (a `.pth` file in either `torch.save` format, or
/// safetensors) to `output`, whose extension picks the format: `.safetensors` (architecture
/// detected or taken from `options`, and recorded in the metadata) or `.pth` (`torch.save`'s
/// zip format, which `torch.load(path, weights_only=True)` and the reference read).
pub fn convert_checkpoint(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &ConvertOptions,
) -> Result<ConversionReport, CheckpointError> {
    let input = input.as_ref();
    let output = output.as_ref();
    let output_format = OutputFormat::from_path(output)?;
    let bytes = std::fs::read(input).map_err(CheckpointError::io(input))?;
    let input_format =
        FileFormat::sniff(&bytes).map_err(|found| CheckpointError::NotACheckpoint {
            path: input.to_path_buf(),
            found,
        })?;
    let mut notes = Vec::new();
    let (config, tensors): (NetworkConfig, Vec<(String, Tensor)>) = match input_format {
        FileFormat::PthZip | FileFormat::PthLegacy => {
            let pth = read_pth_bytes(&bytes, input)?;
            notes.push(format!("read a {} file", pth.format));
            if let Some(key) = &pth.found_under {
                notes.push(format!(
                    "took the state_dict under the key '{}'",
                    shown(key)
                ));
            }
            let prepared =
                prepare_state_dict(pth.tensors, options).map_err(|e| e.in_file(input))?;
            notes.extend(prepared.notes);
            (prepared.config, prepared.tensors)
        }
        FileFormat::Safetensors => {
            let prepared = read_safetensors_network(&bytes, input, options)?;
            notes.extend(prepared.notes);
            (prepared.config, prepared.tensors)
        }
    };
    match output_format {
        OutputFormat::Safetensors => {
            let source = input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let map = tensors.iter().cloned().collect();
            save_network_with_metadata(output, &map, &config, &[(SOURCE_KEY, source)])?;
        }
        OutputFormat::Pth => write_pth(output, &tensors)?,
    }
    Ok(ConversionReport {
        input_format,
        output_format,
        config,
        tensors: tensors.len(),
        notes,
    })
}
