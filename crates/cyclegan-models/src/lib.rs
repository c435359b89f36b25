//! The reference CycleGAN networks on candle, parameter for parameter.
//!
//! [`Generator`] (ResNet or U-Net) and [`Discriminator`] (PatchGAN or PixelGAN) are built from a
//! typed [`GeneratorConfig`] / [`DiscriminatorConfig`] and a [`candle_nn::VarBuilder`]; their
//! parameter names are the reference's `state_dict` keys (`model.1.weight`,
//! `model.10.conv_block.5.bias`, `model.model.1.model.3...`), so a PyTorch checkpoint maps one to
//! one, and their outputs and gradients match PyTorch's (see this crate's parity tests).
//! [`state_dict`] gives a network's tensors by those keys. The layer options in the configs
//! ([`NormKind`], [`PaddingType`], [`InitType`]) and candle itself ([`candle_core`],
//! [`candle_nn`]) are re-exported, so that this crate alone builds and runs a network.
//!
//! ```
//! use candle_core::{DType, Device, Tensor, ModuleT};
//! use candle_nn::{VarBuilder, VarMap};
//! use cyclegan_models::{state_dict, Generator, GeneratorArch, GeneratorConfig};
//!
//! // The reference's default is resnet_9blocks with ngf 64; a small one runs faster here.
//! let config = GeneratorConfig {
//!     arch: GeneratorArch::Resnet { blocks: 2 },
//!     ngf: 8,
//!     ..GeneratorConfig::default()
//! };
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let g = Generator::new(vb, &config, &Default::default())?;
//! let y = g.forward_t(&Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu)?, false)?;
//! assert_eq!(y.dims(), &[1, 3, 64, 64]);
//!
//! // The same network again from its tensors, as from a checkpoint.
//! let same = Generator::from_tensors(state_dict(&varmap), &config, &Device::Cpu)?;
//! let x = Tensor::ones((1, 3, 64, 64), DType::F32, &Device::Cpu)?;
//! let diff = (g.forward_t(&x, false)? - same.forward_t(&x, false)?)?.abs()?.max_all()?;
//! assert_eq!(diff.to_scalar::<f32>()?, 0.0);
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod nlayer;
pub mod pixel;
pub mod resnet;
pub mod unet;

pub use config::{
    DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, InitConfig,
    NetworkConfig,
};
// The layer crate's option types in this crate's signatures, and candle, so that a user needs no
// other import to build and run a network.
pub use candle_core;
pub use candle_nn;
pub use cyclegan_layers::{InitType, NormKind, PaddingType, ParseNameError, SharedRng};
pub use nlayer::NLayerDiscriminator;
pub use pixel::PixelDiscriminator;
pub use resnet::ResnetGenerator;
pub use unet::UnetGenerator;

use candle_core::{DType, Device, ModuleT, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

/// A generator of any supported architecture.
#[derive(Debug, Clone)]
pub enum Generator {
    /// A `resnet_{n}blocks` generator.
    Resnet(ResnetGenerator),
    /// A `unet_{size}` generator.
    Unet(UnetGenerator),
}

impl Generator {
    /// Builds the generator `config` describes; `rng` drives its dropout layers, if any.
    pub fn new(vb: VarBuilder, config: &GeneratorConfig, rng: &SharedRng) -> Result<Self> {
        Ok(match config.arch {
            GeneratorArch::Resnet { blocks } => {
                Generator::Resnet(ResnetGenerator::new(vb, config, blocks, rng)?)
            }
            GeneratorArch::Unet { downs } => {
                Generator::Unet(UnetGenerator::new(vb, config, downs, rng)?)
            }
        })
    }

    /// Builds the generator `config` describes from a checkpoint's tensors (the reference's
    /// `state_dict` keys, as `cyclegan_checkpoint::load_network` returns them), on `device` in
    /// f32; its dropout layers, if any, draw from a generator seeded with 0. A missing or
    /// misshapen tensor is an error naming its key.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        config: &GeneratorConfig,
        device: &Device,
    ) -> Result<Self> {
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        Self::new(vb, config, &SharedRng::new(0))
    }
}

impl ModuleT for Generator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Generator::Resnet(g) => g.forward_t(x, train),
            Generator::Unet(g) => g.forward_t(x, train),
        }
    }
}

/// A discriminator of any supported architecture.
#[derive(Debug, Clone)]
pub enum Discriminator {
    /// A PatchGAN (`basic` or `n_layers`).
    NLayer(NLayerDiscriminator),
    /// A 1x1 PixelGAN (`pixel`).
    Pixel(PixelDiscriminator),
}

impl Discriminator {
    /// Builds the discriminator `config` describes.
    pub fn new(vb: VarBuilder, config: &DiscriminatorConfig) -> Result<Self> {
        Ok(match config.arch {
            DiscriminatorArch::NLayers(n) => {
                Discriminator::NLayer(NLayerDiscriminator::new(vb, config, n)?)
            }
            DiscriminatorArch::Pixel => Discriminator::Pixel(PixelDiscriminator::new(vb, config)?),
        })
    }

    /// Builds the discriminator `config` describes from a checkpoint's tensors (the reference's
    /// `state_dict` keys), on `device` in f32.
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        config: &DiscriminatorConfig,
        device: &Device,
    ) -> Result<Self> {
        Self::new(
            VarBuilder::from_tensors(tensors, DType::F32, device),
            config,
        )
    }
}

impl ModuleT for Discriminator {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Discriminator::NLayer(d) => d.forward_t(x, train),
            Discriminator::Pixel(d) => d.forward_t(x, train),
        }
    }
}

/// Whether a `state_dict` key names a buffer (batch-norm running statistics) rather than a
/// learned parameter.
pub fn is_buffer(name: &str) -> bool {
    ["running_mean", "running_var", "num_batches_tracked"]
        .iter()
        .any(|b| name.rsplit('.').next() == Some(*b))
}

/// The `state_dict` of the network whose variables are `varmap`: every parameter and buffer by
/// its reference key, what [`Generator::from_tensors`] and a checkpoint writer take.
pub fn state_dict(varmap: &VarMap) -> HashMap<String, Tensor> {
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    vars.iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect()
}

/// The number of learned parameters in `varmap` (what PyTorch's `net.parameters()` counts:
/// buffers excluded).
pub fn parameter_count(varmap: &VarMap) -> usize {
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    vars.iter()
        .filter(|(name, _)| !is_buffer(name))
        .map(|(_, var)| var.elem_count())
        .sum()
}
