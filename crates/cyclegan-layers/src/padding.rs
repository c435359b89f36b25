//! Padding of the last two dimensions: reflection, replication or zeros.

use candle_core::{Module, Result, Tensor};
use serde::{Deserialize, Serialize};

use crate::ops;

/// How the generator's residual blocks pad before each 3x3 convolution
/// (the reference's `padding_type`: `reflect`, `replicate` or `zero`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PaddingType {
    /// `reflect`: `nn.ReflectionPad2d`, the reference's default.
    #[default]
    Reflect,
    /// `replicate`: `nn.ReplicationPad2d`.
    Replicate,
    /// `zero`: zero padding.
    Zero,
}

impl std::fmt::Display for PaddingType {
    /// The reference's name (what `FromStr` reads).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaddingType::Reflect => "reflect",
            PaddingType::Replicate => "replicate",
            PaddingType::Zero => "zero",
        })
    }
}

impl std::str::FromStr for PaddingType {
    type Err = crate::ParseNameError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "reflect" => Ok(Self::Reflect),
            "replicate" => Ok(Self::Replicate),
            "zero" => Ok(Self::Zero),
            other => Err(crate::ParseNameError::new(format!(
                "unknown padding type '{other}': expected reflect, replicate or zero"
            ))),
        }
    }
}

/// `nn.ReflectionPad2d(pad)` / `nn.ReplicationPad2d(pad)` / zero padding as a layer.
/// It has no parameters, so it takes no `VarBuilder`.
#[derive(Debug, Clone, Copy)]
pub struct Pad2d {
    /// The padding added on each side of the last two dimensions.
    pub pad: usize,
    /// How the added border is filled.
    pub mode: PaddingType,
}

impl Pad2d {
    /// Padding of `pad` on each side, filled as `mode` says.
    pub fn new(pad: usize, mode: PaddingType) -> Self {
        Self { pad, mode }
    }

    /// `nn.ReflectionPad2d(pad)`.
    pub fn reflect(pad: usize) -> Self {
        Self::new(pad, PaddingType::Reflect)
    }
}

impl Module for Pad2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::pad2d(x, self.pad, self.mode)
    }
}
