//! The CycleGAN losses, as the reference computes them.
//!
//! - [`GanLoss`]: the adversarial loss of a discriminator's patch map against "real" (1) or
//!   "fake" (0): least squares (`lsgan`, the CycleGAN default), binary cross-entropy with logits
//!   (`vanilla`), or the Wasserstein critic loss (`wgangp`: `-mean` for real, `+mean` for fake;
//!   like the reference's CycleGAN model, no gradient penalty is added).
//! - [`l1_loss`]: the mean absolute error of the cycle-consistency and identity terms, weighted
//!   by [`CycleWeights`].
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use cyclegan_losses::{l1_loss, GanLoss, GanMode};
//!
//! // A discriminator's 2x2 patch map, judged as "real" with the least-squares loss.
//! let patches = Tensor::new(&[[[[1.0f32, 0.5], [0.0, 1.0]]]], &Device::Cpu)?;
//! let gan = GanLoss::new(GanMode::Lsgan).loss(&patches, true)?;
//! assert_eq!(gan.to_scalar::<f32>()?, (0.25 + 1.0) / 4.0);
//! let cycle = l1_loss(&patches, &patches.ones_like()?)?;
//! assert_eq!(cycle.to_scalar::<f32>()?, (0.5 + 1.0) / 4.0);
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

use candle_core::{Result, Tensor};
use serde::{Deserialize, Serialize};

/// The reference's `--gan_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GanMode {
    /// `lsgan`: the mean squared error to the label, the CycleGAN default.
    #[default]
    Lsgan,
    /// `vanilla`: binary cross-entropy with logits against the label.
    Vanilla,
    /// `wgangp`: the Wasserstein critic loss, `-mean` for real and `+mean` for fake (no gradient
    /// penalty is added).
    Wgangp,
}

/// A name that is none of [`GanMode`]'s (`"wgan".parse::<GanMode>()`); its message names
/// those accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseGanModeError(String);

impl std::fmt::Display for ParseGanModeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseGanModeError {}

/// For callers whose errors are messages (clap's value parsers, option resolution).
impl From<ParseGanModeError> for String {
    fn from(e: ParseGanModeError) -> String {
        e.0
    }
}

impl std::str::FromStr for GanMode {
    type Err = ParseGanModeError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "lsgan" => Ok(Self::Lsgan),
            "vanilla" => Ok(Self::Vanilla),
            "wgangp" => Ok(Self::Wgangp),
            other => Err(ParseGanModeError(format!(
                "unknown gan mode '{other}': expected lsgan, vanilla or wgangp"
            ))),
        }
    }
}

impl std::fmt::Display for GanMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GanMode::Lsgan => "lsgan",
            GanMode::Vanilla => "vanilla",
            GanMode::Wgangp => "wgangp",
        })
    }
}

/// The adversarial loss (`GANLoss` of the reference), with labels 1.0 (real) and 0.0 (fake).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GanLoss {
    /// Which adversarial loss it computes.
    pub mode: GanMode,
}

impl GanLoss {
    /// The adversarial loss of `mode`.
    pub fn new(mode: GanMode) -> Self {
        Self { mode }
    }

    /// The loss of `prediction` (a discriminator's output, any shape) against the label
    /// "real" or "fake", averaged over every element.
    pub fn loss(&self, prediction: &Tensor, target_is_real: bool) -> Result<Tensor> {
        let target = if target_is_real { 1.0 } else { 0.0 };
        match self.mode {
            GanMode::Lsgan => (prediction - target)?.sqr()?.mean_all(),
            GanMode::Vanilla => bce_with_logits(prediction, target),
            GanMode::Wgangp if target_is_real => prediction.mean_all()?.neg(),
            GanMode::Wgangp => prediction.mean_all(),
        }
    }
}

/// `BCEWithLogitsLoss` against a constant target `t`, in its stable form
/// `max(x, 0) - x t + log(1 + exp(-|x|))`, averaged.
pub fn bce_with_logits(logits: &Tensor, target: f64) -> Result<Tensor> {
    let log_term = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    let loss = ((logits.relu()? - (logits * target)?)? + log_term)?;
    loss.mean_all()
}

/// `L1Loss`: the mean absolute difference of `a` and `b`.
pub fn l1_loss(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.abs()?.mean_all()
}

/// The weights of the cycle-consistency and identity terms (the reference's `--lambda_A`,
/// `--lambda_B`, `--lambda_identity`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CycleWeights {
    /// Weight of the A -> B -> A cycle loss.
    pub lambda_a: f64,
    /// Weight of the B -> A -> B cycle loss.
    pub lambda_b: f64,
    /// Identity loss weight, relative to the cycle weights: `idt_A` weighs
    /// `lambda_b * lambda_identity`, `idt_B` weighs `lambda_a * lambda_identity`.
    pub lambda_identity: f64,
}

impl Default for CycleWeights {
    fn default() -> Self {
        Self {
            lambda_a: 10.0,
            lambda_b: 10.0,
            lambda_identity: 0.5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn scalar(t: Tensor) -> f64 {
        t.to_scalar::<f64>().unwrap()
    }

    fn pred() -> Tensor {
        Tensor::new(&[[0.5f64, -1.0], [2.0, 0.0]], &Device::Cpu).unwrap()
    }

    #[test]
    fn lsgan_is_mean_squared_error_to_the_label() {
        let gan = GanLoss::new(GanMode::Lsgan);
        assert!(
            (scalar(gan.loss(&pred(), true).unwrap()) - (0.25 + 4.0 + 1.0 + 1.0) / 4.0).abs()
                < 1e-12
        );
        assert!(
            (scalar(gan.loss(&pred(), false).unwrap()) - (0.25 + 1.0 + 4.0) / 4.0).abs() < 1e-12
        );
    }

    #[test]
    fn vanilla_is_binary_cross_entropy_with_logits() {
        let gan = GanLoss::new(GanMode::Vanilla);
        let xs = [0.5f64, -1.0, 2.0, 0.0];
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let real: f64 = xs.iter().map(|&x| -sigmoid(x).ln()).sum::<f64>() / 4.0;
        let fake: f64 = xs.iter().map(|&x| -(1.0 - sigmoid(x)).ln()).sum::<f64>() / 4.0;
        assert!((scalar(gan.loss(&pred(), true).unwrap()) - real).abs() < 1e-12);
        assert!((scalar(gan.loss(&pred(), false).unwrap()) - fake).abs() < 1e-12);
        // Stable for large logits, where the naive form overflows.
        let big = Tensor::new(&[1000.0f64, -1000.0], &Device::Cpu).unwrap();
        assert!((scalar(gan.loss(&big, true).unwrap()) - 500.0).abs() < 1e-9);
    }

    #[test]
    fn wgangp_is_minus_mean_for_real_and_mean_for_fake() {
        let gan = GanLoss::new(GanMode::Wgangp);
        assert!((scalar(gan.loss(&pred(), true).unwrap()) + 0.375).abs() < 1e-12);
        assert!((scalar(gan.loss(&pred(), false).unwrap()) - 0.375).abs() < 1e-12);
    }

    #[test]
    fn l1_is_mean_absolute_difference() {
        let b = Tensor::new(&[[0.0f64, 1.0], [1.0, 1.0]], &Device::Cpu).unwrap();
        assert!(
            (scalar(l1_loss(&pred(), &b).unwrap()) - (0.5 + 2.0 + 1.0 + 1.0) / 4.0).abs() < 1e-12
        );
    }

    #[test]
    fn gan_modes_parse_from_the_reference_names() {
        assert_eq!("lsgan".parse::<GanMode>().unwrap(), GanMode::Lsgan);
        assert_eq!("wgangp".parse::<GanMode>().unwrap(), GanMode::Wgangp);
        // An error type, so that `?` works in a function returning `Box<dyn Error>`.
        let err: Box<dyn std::error::Error> = "hinge".parse::<GanMode>().unwrap_err().into();
        assert!(err.to_string().contains("lsgan, vanilla or wgangp"));
    }
}
