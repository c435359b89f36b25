//! Normalisation layers: instance norm, batch norm, or none.

use candle_core::{DType, ModuleT, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::ops::{self, Activation, Prologue, NORM_EPS};
use crate::Deferred;

/// Momentum of PyTorch's `BatchNorm2d` running statistics.
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;

/// Which normalisation the networks use (the reference's `--norm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// `InstanceNorm2d(affine=False, track_running_stats=False)`, the CycleGAN default.
    #[default]
    Instance,
    /// `InstanceNorm2d(affine=True)`: a learned per-channel scale (`weight`) and shift (`bias`).
    InstanceAffine,
    /// `BatchNorm2d(affine=True, track_running_stats=True)`.
    Batch,
    /// No normalisation (`Identity`).
    None,
}

impl NormKind {
    /// The reference's rule: convolutions followed by a norm layer carry a bias exactly when the
    /// norm is an instance norm.
    pub fn conv_bias(self) -> bool {
        matches!(self, NormKind::Instance | NormKind::InstanceAffine)
    }

    /// The option string (`instance`, `instance_affine`, `batch`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            NormKind::Instance => "instance",
            NormKind::InstanceAffine => "instance_affine",
            NormKind::Batch => "batch",
            NormKind::None => "none",
        }
    }
}

impl std::fmt::Display for NormKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for NormKind {
    type Err = crate::ParseNameError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "instance" => Ok(Self::Instance),
            "instance_affine" => Ok(Self::InstanceAffine),
            "batch" => Ok(Self::Batch),
            "none" => Ok(Self::None),
            other => Err(crate::ParseNameError::new(format!(
                "unknown norm '{other}': expected instance, instance_affine, batch or none"
            ))),
        }
    }
}

/// `BatchNorm2d` with affine parameters and running statistics, all stored under the
/// reference's names (`weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`).
#[derive(Debug, Clone)]
pub struct BatchNorm2d {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    num_batches_tracked: Var,
}

impl BatchNorm2d {
    /// Batch norm over `channels` channels under `vb`: `weight` ~ N(1, 0.02), `bias` 0, running
    /// mean 0, running variance 1, `num_batches_tracked` 0.
    pub fn new(vb: VarBuilder, channels: usize) -> Result<Self> {
        let weight = vb.get_with_hints(
            channels,
            "weight",
            Init::Randn {
                mean: 1.0,
                stdev: 0.02,
            },
        )?;
        let bias = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let running_mean = vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(channels, "running_var", Init::Const(1.0))?;
        let num_batches_tracked =
            vb.get_with_hints_dtype((), "num_batches_tracked", Init::Const(0.0), DType::I64)?;
        Ok(Self {
            weight,
            bias,
            // Tensors that come from a VarMap are variables already: `from_tensor` then shares
            // their storage, so the running statistics are updated in place.
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            num_batches_tracked: Var::from_tensor(&num_batches_tracked)?,
        })
    }

    fn channel(t: &Tensor) -> Result<Tensor> {
        t.reshape((1, t.elem_count(), 1, 1))
    }

    /// Training mode normalises with the batch statistics and updates the running ones;
    /// evaluation mode normalises with the running statistics.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let (mean, var) = if train {
            let planes = x.transpose(0, 1)?.reshape((c, n * h * w))?;
            let mean = planes.mean_keepdim(1)?;
            let var = planes.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
            self.update_running_stats(&mean.flatten_all()?, &var.flatten_all()?, n * h * w)?;
            (mean.flatten_all()?, var.flatten_all()?)
        } else {
            let stats = |v: &Var| v.as_tensor().to_dtype(x.dtype());
            (stats(&self.running_mean)?, stats(&self.running_var)?)
        };
        let normed = x
            .broadcast_sub(&Self::channel(&mean)?)?
            .broadcast_div(&Self::channel(&(var + NORM_EPS)?.sqrt()?)?)?;
        normed
            .broadcast_mul(&Self::channel(&self.weight)?)?
            .broadcast_add(&Self::channel(&self.bias)?)
    }

    fn update_running_stats(&self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let m = BATCH_NORM_MOMENTUM;
        let unbiased = (var.detach() * (count as f64 / (count.max(2) - 1) as f64))?;
        let blend = |running: &Var, batch: &Tensor| -> Result<()> {
            let batch = batch.detach().to_dtype(running.dtype())?;
            running.set(&((running.as_tensor() * (1.0 - m))? + (batch * m)?)?)
        };
        blend(&self.running_mean, mean)?;
        blend(&self.running_var, &unbiased)?;
        let tracked = self.num_batches_tracked.as_tensor();
        self.num_batches_tracked.set(&(tracked + 1.0)?)
    }
}

/// A normalisation layer as the reference builds it with `get_norm_layer(norm)(channels)`.
#[derive(Debug, Clone)]
pub enum Norm {
    /// Instance norm, optionally with a learned per-channel `(weight, bias)`.
    Instance {
        /// The learned `(weight, bias)`, each `[channels]`, for [`NormKind::InstanceAffine`].
        affine: Option<(Tensor, Tensor)>,
    },
    /// Batch norm ([`NormKind::Batch`]).
    Batch(BatchNorm2d),
    /// No normalisation ([`NormKind::None`]).
    Identity,
}

impl Norm {
    /// Builds the norm layer of `kind` for `channels` channels under `vb`.
    pub fn new(kind: NormKind, vb: VarBuilder, channels: usize) -> Result<Self> {
        Ok(match kind {
            NormKind::Instance => Norm::Instance { affine: None },
            NormKind::InstanceAffine => Norm::Instance {
                affine: Some((
                    vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
                    vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
                )),
            },
            NormKind::Batch => Norm::Batch(BatchNorm2d::new(vb, channels)?),
            NormKind::None => Norm::Identity,
        })
    }

    /// Whether the norm cancels a per-channel constant added to its input, so that the bias of
    /// a convolution before it cannot change any output: an instance norm subtracts each plane's
    /// mean (affine or not). Batch norm does not in evaluation mode (running statistics).
    pub fn cancels_bias(&self) -> bool {
        matches!(self, Norm::Instance { .. })
    }

    /// Normalises `x` and applies `activation`; instance norm fuses both into one kernel.
    pub fn forward_act(&self, x: &Tensor, activation: Activation, train: bool) -> Result<Tensor> {
        match self {
            Norm::Instance { affine: None } => ops::instance_norm(x, NORM_EPS, activation),
            Norm::Instance {
                affine: Some((weight, bias)),
            } => {
                let normed = ops::instance_norm(x, NORM_EPS, Activation::Identity)?;
                let shape = (1, weight.elem_count(), 1, 1);
                let scaled = normed
                    .broadcast_mul(&weight.reshape(shape)?)?
                    .broadcast_add(&bias.reshape(shape)?)?;
                activation.apply(&scaled)
            }
            Norm::Batch(bn) => activation.apply(&bn.forward_t(x, train)?),
            Norm::Identity => activation.apply(x),
        }
    }

    /// [`Norm::forward_act`] left for the next convolution to apply inside its op where it can
    /// (the affine-free instance norm), computed now otherwise.
    pub fn defer(&self, x: Tensor, activation: Activation, train: bool) -> Result<Deferred> {
        Ok(match self {
            Norm::Instance { affine: None } => {
                let prologue = Prologue {
                    norm: Some((NORM_EPS, activation)),
                    pad: None,
                };
                Deferred::new(x, prologue)
            }
            _ => Deferred::from(self.forward_act(&x, activation, train)?),
        })
    }

    /// `residual + norm(x)`, one op for the affine-free instance norm
    /// ([`ops::instance_norm_add`]).
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Norm::Instance { affine: None } => ops::instance_norm_add(x, NORM_EPS, residual),
            _ => residual + self.forward_act(x, Activation::Identity, train)?,
        }
    }
}

impl ModuleT for Norm {
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_act(x, Activation::Identity, train)
    }
}
