//! The reference CycleGAN networks on candle, parameter for parameter.
//!
//! [`Generator`] (ResNet or U-Net) and [`Discriminator`] (PatchGAN or PixelGAN) are built from a
//! typed [`GeneratorConfig`] / [`DiscriminatorConfig`] and a [`candle_nn::VarBuilder`]; their
//! parameter names are the reference's `state_dict` keys (`model.1.weight`,
//! `model.10.conv_block.5.bias`, `model.model.1.model.3...`), so a PyTorch checkpoint maps one to
//! one, and their outputs and gradients match PyTorch's (see this crate's parity tests).
//!
//! ```no_run
//! use candle_core::{DType, Device, Tensor, ModuleT};
//! use candle_nn::{VarBuilder, VarMap};
//! use cyclegan_models::{Generator, GeneratorConfig};
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let g = Generator::new(vb, &GeneratorConfig::default(), &Default::default())?;
//! let y = g.forward_t(&Tensor::zeros((1, 3, 256, 256), DType::F32, &Device::Cpu)?, false)?;
//! assert_eq!(y.dims(), &[1, 3, 256, 256]);
//! # Ok::<(), candle_core::Error>(())
//! ```

pub mod config;
pub mod nlayer;
pub mod pixel;
pub mod resnet;
pub mod unet;

pub use config::{
    DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, InitConfig,
    NetworkConfig,
};
pub use nlayer::NLayerDiscriminator;
pub use pixel::PixelDiscriminator;
pub use resnet::ResnetGenerator;
pub use unet::UnetGenerator;

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cyclegan_layers::SharedRng;

/// A generator of any supported architecture.
#[derive(Debug, Clone)]
pub enum Generator {
    Resnet(ResnetGenerator),
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
    NLayer(NLayerDiscriminator),
    Pixel(PixelDiscriminator),
}

impl Discriminator {
    pub fn new(vb: VarBuilder, config: &DiscriminatorConfig) -> Result<Self> {
        Ok(match config.arch {
            DiscriminatorArch::NLayers(n) => {
                Discriminator::NLayer(NLayerDiscriminator::new(vb, config, n)?)
            }
            DiscriminatorArch::Pixel => Discriminator::Pixel(PixelDiscriminator::new(vb, config)?),
        })
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
