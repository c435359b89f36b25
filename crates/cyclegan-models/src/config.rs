//! Typed architecture descriptions, stored in every checkpoint's metadata.

use cyclegan_layers::{InitType, NormKind, PaddingType, ParseNameError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The generator architecture (the reference's `--netG`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeneratorArch {
    /// `resnet_{blocks}blocks`: two downsamplings, `blocks` residual blocks, two upsamplings.
    Resnet {
        /// The number of residual blocks (9 for `resnet_9blocks`, 6 for `resnet_6blocks`).
        blocks: usize,
    },
    /// `unet_{2^downs}`: a U-Net with `downs` downsamplings (`unet_128` has 7, `unet_256` 8).
    Unet {
        /// The number of downsamplings (the reference's `num_downs`).
        downs: usize,
    },
}

impl GeneratorArch {
    /// The side length an input must be a multiple of.
    pub fn size_multiple(self) -> usize {
        match self {
            GeneratorArch::Resnet { .. } => 4,
            GeneratorArch::Unet { downs } => 1 << downs,
        }
    }

    /// The smallest side an input may have: a ResNet's residual blocks reflect-pad by 1 after
    /// two halvings, so its planes there need 2 pixels, 8 at the input; a U-Net takes its
    /// multiple.
    pub fn min_size(self) -> usize {
        match self {
            GeneratorArch::Resnet { .. } => 8,
            GeneratorArch::Unet { .. } => self.size_multiple(),
        }
    }
}

impl fmt::Display for GeneratorArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeneratorArch::Resnet { blocks } => write!(f, "resnet_{blocks}blocks"),
            GeneratorArch::Unet { downs } => write!(f, "unet_{}", 1usize << downs),
        }
    }
}

impl FromStr for GeneratorArch {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expected =
            "expected resnet_9blocks, resnet_6blocks, resnet_<N>blocks, unet_128 or unet_256";
        if let Some(n) = s
            .strip_prefix("resnet_")
            .and_then(|r| r.strip_suffix("blocks"))
        {
            return match n.parse::<usize>() {
                Ok(blocks) => Ok(GeneratorArch::Resnet { blocks }),
                Err(_) => Err(ParseNameError::new(format!(
                    "unknown generator '{s}': {expected}"
                ))),
            };
        }
        if let Some(size) = s
            .strip_prefix("unet_")
            .and_then(|n| n.parse::<usize>().ok())
        {
            if size.is_power_of_two() && size >= 32 {
                return Ok(GeneratorArch::Unet {
                    downs: size.trailing_zeros() as usize,
                });
            }
        }
        Err(ParseNameError::new(format!(
            "unknown generator '{s}': {expected}"
        )))
    }
}

/// The discriminator architecture (the reference's `--netD` with `--n_layers_D`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscriminatorArch {
    /// PatchGAN with `n` strided layers; `basic` is `NLayers(3)`, the 70x70 PatchGAN.
    NLayers(usize),
    /// `pixel`: 1x1 PixelGAN.
    Pixel,
}

impl DiscriminatorArch {
    /// Parses `--netD` (`basic`, `n_layers`, `pixel`) with `--n_layers_D`.
    pub fn from_options(net_d: &str, n_layers: usize) -> Result<Self, ParseNameError> {
        match net_d {
            "basic" => Ok(DiscriminatorArch::NLayers(3)),
            "n_layers" => Ok(DiscriminatorArch::NLayers(n_layers)),
            "pixel" => Ok(DiscriminatorArch::Pixel),
            other => Err(ParseNameError::new(format!(
                "unknown discriminator '{other}': expected basic, n_layers or pixel"
            ))),
        }
    }
}

impl fmt::Display for DiscriminatorArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscriminatorArch::NLayers(3) => f.write_str("basic"),
            DiscriminatorArch::NLayers(n) => write!(f, "n_layers_{n}"),
            DiscriminatorArch::Pixel => f.write_str("pixel"),
        }
    }
}

impl FromStr for DiscriminatorArch {
    type Err = ParseNameError;
    /// Parses the [`Display`](fmt::Display) form: `basic`, `n_layers_<N>`, `pixel`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("n_layers_").map(str::parse::<usize>) {
            Some(Ok(n)) => Ok(DiscriminatorArch::NLayers(n)),
            _ => DiscriminatorArch::from_options(s, 3),
        }
    }
}

macro_rules! serde_via_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_via_string!(GeneratorArch);
serde_via_string!(DiscriminatorArch);

/// Everything that determines a generator's parameters and computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeneratorConfig {
    /// The architecture (`--netG`, stored as `netG`).
    #[serde(rename = "netG")]
    pub arch: GeneratorArch,
    /// Channels of the input image (`--input_nc`: 3 for RGB, 1 for grayscale).
    pub input_nc: usize,
    /// Channels of the output image (`--output_nc`).
    pub output_nc: usize,
    /// Filters in the first convolution (`--ngf`, 64); the others are multiples of it.
    pub ngf: usize,
    /// The normalisation layers (`--norm`).
    pub norm: NormKind,
    /// Dropout 0.5 in the residual blocks (ResNet) or the innermost `ngf * 8` blocks (U-Net).
    pub use_dropout: bool,
    /// Padding inside the residual blocks (ResNet only).
    #[serde(default)]
    pub padding_type: PaddingType,
}

impl Default for GeneratorConfig {
    /// The reference's CycleGAN generator: resnet_9blocks, 3 -> 3 channels, ngf 64,
    /// instance norm, no dropout, reflection padding.
    fn default() -> Self {
        Self {
            arch: GeneratorArch::Resnet { blocks: 9 },
            input_nc: 3,
            output_nc: 3,
            ngf: 64,
            norm: NormKind::Instance,
            use_dropout: false,
            padding_type: PaddingType::Reflect,
        }
    }
}

/// Everything that determines a discriminator's parameters and computation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DiscriminatorConfig {
    /// The architecture (`--netD` with `--n_layers_D`, stored as `netD`).
    #[serde(rename = "netD")]
    pub arch: DiscriminatorArch,
    /// Channels of the images it scores (`--output_nc` for `D_A`, `--input_nc` for `D_B`).
    pub input_nc: usize,
    /// Filters in the first convolution (`--ndf`, 64); the others are multiples of it.
    pub ndf: usize,
    /// The normalisation layers (`--norm`).
    pub norm: NormKind,
}

impl Default for DiscriminatorConfig {
    /// The reference's CycleGAN discriminator: basic (70x70 PatchGAN), 3 channels, ndf 64,
    /// instance norm.
    fn default() -> Self {
        Self {
            arch: DiscriminatorArch::NLayers(3),
            input_nc: 3,
            ndf: 64,
            norm: NormKind::Instance,
        }
    }
}

/// How fresh networks are initialised (the reference's `--init_type`, `--init_gain`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InitConfig {
    /// The weight initialisation (`--init_type`, `normal`).
    pub init_type: InitType,
    /// Its scale (`--init_gain`, 0.02): the standard deviation for `normal`, the gain for
    /// `xavier` and `orthogonal`.
    pub init_gain: f64,
}

impl Default for InitConfig {
    fn default() -> Self {
        Self {
            init_type: InitType::Normal,
            init_gain: 0.02,
        }
    }
}

/// A network of either kind, as recorded in checkpoint metadata.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NetworkConfig {
    /// A generator (`"kind": "generator"`).
    Generator(GeneratorConfig),
    /// A discriminator (`"kind": "discriminator"`).
    Discriminator(DiscriminatorConfig),
}
