//! Image translation with a CycleGAN generator: the library behind `cyclegan-translate`.
//!
//! A [`Translator`] holds a generator read from a checkpoint (written by `cyclegan-train`,
//! converted from the reference, or a reference `.pth` read directly). By default each image
//! is translated at its own size: mirrored out to the multiple the architecture needs (4 for
//! ResNet generators, 2^depth for U-Nets), translated, and cropped back. [`translate_files`]
//! runs it over a file or a folder and writes the reference's test page; [`run_test`] is the
//! reference's `test.py` (`--dataroot`, `--name`, `--model test|cycle_gan`, ...): the
//! checkpoints of a run folder in, the reference's result folder out.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use cyclegan_models::{Generator, GeneratorArch, GeneratorConfig};
//! use cyclegan_translate::Translator;
//!
//! let config = GeneratorConfig { arch: GeneratorArch::Resnet { blocks: 1 }, ngf: 4,
//!                                ..GeneratorConfig::default() };
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let generator = Generator::new(vb, &config, &Default::default())?;
//! let translator = Translator::new(generator, config, &Device::Cpu);
//! // Any size: mirrored out to a multiple of 4, translated, cropped back.
//! let image = Tensor::rand(-1f32, 1.0, (1, 3, 30, 27), &Device::Cpu)?;
//! assert_eq!(translator.translate(&image)?.dims(), &[1, 3, 30, 27]);
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

mod html;
mod pad;
mod run;
mod suffix;
mod test_py;

pub use html::write_index;
pub use pad::{crop_to, pad_to_multiple};
pub use run::{translate_files, Resize, TranslateError, TranslateOptions, TranslateSummary};
pub use suffix::{expand_suffix, py_bool, py_float};
pub use test_py::{run_test, TestModel, TestOptions, TestSummary};

use candle_core::{DType, Device, ModuleT, Tensor};
use cyclegan_models::{Generator, GeneratorConfig, NetworkConfig};
use std::path::Path;

/// A generator ready to translate images.
#[derive(Debug, Clone)]
pub struct Translator {
    generator: Generator,
    config: GeneratorConfig,
    device: Device,
    /// Runs normalisation and dropout in training mode, as the reference's `test.py` does
    /// unless given `--eval`.
    train_mode: bool,
}

impl Translator {
    /// Reads a generator checkpoint (`.safetensors` of this project or a reference `.pth`).
    pub fn load(checkpoint: impl AsRef<Path>, device: &Device) -> Result<Self, TranslateError> {
        let checkpoint = checkpoint.as_ref();
        let loaded = cyclegan_checkpoint::load_network(checkpoint, device, DType::F32)?;
        let config = match loaded.config {
            NetworkConfig::Generator(config) => config,
            NetworkConfig::Discriminator(d) => {
                return Err(TranslateError::NotAGenerator {
                    path: checkpoint.to_path_buf(),
                    found: d.arch.to_string(),
                })
            }
        };
        let generator = Generator::from_tensors(loaded.tensors, &config, device).map_err(|e| {
            TranslateError::Architecture {
                path: checkpoint.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self::new(generator, config, device))
    }

    /// Wraps a generator built elsewhere (for example by the trainer).
    pub fn new(generator: Generator, config: GeneratorConfig, device: &Device) -> Self {
        Self {
            generator,
            config,
            device: device.clone(),
            train_mode: true,
        }
    }

    /// The generator it runs (loaded by [`Translator::load`], or given to [`Translator::new`]).
    pub fn generator(&self) -> &Generator {
        &self.generator
    }

    /// Evaluation mode (the reference's `--eval`): batch norm uses its running statistics and
    /// dropout is off. The default is training mode, like the reference's `test.py`.
    pub fn with_eval(mut self, eval: bool) -> Self {
        self.train_mode = !eval;
        self
    }

    /// The generator's architecture, channels and normalisation (from its checkpoint's
    /// metadata, or as given to [`Translator::new`]).
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Translates a batch `[N, C, H, W]` in [-1, 1] of any size: mirrored out to the
    /// architecture's multiple (and at least its smallest size), translated, and cropped back
    /// to `H x W`. The result is a host tensor detached from the computation, also when the generator's weights are training
    /// variables: it holds nothing on the device, so it may be dropped on any thread (a device
    /// tensor freed on a thread that never used the GPU fails there, and cudarc reports that
    /// failure at the next GPU call of any thread).
    pub fn translate(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let (_, c, h, w) = images.dims4()?;
        if c != self.config.input_nc {
            candle_core::bail!(
                "the generator takes {} channel(s), the image has {c}",
                self.config.input_nc
            );
        }
        let x = images.to_device(&self.device)?.to_dtype(DType::F32)?;
        let arch = self.config.arch;
        let padded = pad_to_multiple(&x, arch.size_multiple(), arch.min_size())?;
        let y = self.generator.forward_t(&padded, self.train_mode)?;
        Ok(crop_to(&y, h, w)?.to_device(&Device::Cpu)?.detach())
    }
}
