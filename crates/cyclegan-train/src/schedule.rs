//! Learning-rate policies of the reference (`--lr_policy`), stepped at the end of each epoch
//! as the 2025 reference does.

use serde::{Deserialize, Serialize};

/// The reference's `--lr_policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrPolicy {
    /// Constant for `n_epochs`, then linear decay over `n_epochs_decay`.
    #[default]
    Linear,
    /// Multiply by 0.1 every `lr_decay_iters` epochs.
    Step,
    /// `ReduceLROnPlateau(mode='min', factor=0.2, threshold=0.01, patience=5)` fed the
    /// reference's constant metric 0.
    Plateau,
    /// Cosine annealing to 0 over `n_epochs`.
    Cosine,
}

impl std::fmt::Display for LrPolicy {
    /// The reference's name (what `FromStr` reads).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LrPolicy::Linear => "linear",
            LrPolicy::Step => "step",
            LrPolicy::Plateau => "plateau",
            LrPolicy::Cosine => "cosine",
        })
    }
}

impl std::str::FromStr for LrPolicy {
    type Err = cyclegan_layers::ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            // "lambda": the name older versions of the reference gave the linear policy.
            "linear" | "lambda" => Ok(Self::Linear),
            "step" => Ok(Self::Step),
            "plateau" => Ok(Self::Plateau),
            "cosine" => Ok(Self::Cosine),
            other => Err(cyclegan_layers::ParseNameError::new(format!(
                "unknown lr policy '{other}': expected linear, step, plateau or cosine"
            ))),
        }
    }
}

/// The schedule's inputs (the reference's options).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// How the rate changes over the epochs (`--lr_policy`, `linear`).
    pub policy: LrPolicy,
    /// The initial learning rate of both optimisers (the reference's `--lr`).
    pub lr: f64,
    /// Epochs at the initial rate (`--n_epochs`, 100); the cosine policy decays over them.
    pub n_epochs: usize,
    /// Epochs of linear decay after them (`--n_epochs_decay`, 100).
    pub n_epochs_decay: usize,
    /// The number of the first epoch (`--epoch_count`, 1).
    pub epoch_count: usize,
    /// Epochs between tenfold decays of the step policy (`--lr_decay_iters`, 50).
    pub lr_decay_iters: usize,
}

/// The schedule's position: how many times it has been stepped, and the plateau policy's
/// bookkeeping. Saved in the training state so a resumed run continues the same curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Schedule {
    /// Epochs stepped so far (in this run and those it continues).
    pub steps: usize,
    /// The plateau policy's current rate, once it has reduced it (`None`: still the initial one).
    pub plateau_lr: Option<f64>,
    /// The best metric the plateau policy has seen (`None` before the first step).
    pub plateau_best: Option<f64>,
    /// Epochs since the plateau policy last saw an improvement or reduced the rate.
    pub plateau_bad_epochs: usize,
}

const PLATEAU_FACTOR: f64 = 0.2;
const PLATEAU_THRESHOLD: f64 = 0.01;
const PLATEAU_PATIENCE: usize = 5;
const STEP_GAMMA: f64 = 0.1;

impl Schedule {
    /// The learning rate after `self.steps` epochs.
    pub fn lr(&self, c: &ScheduleConfig) -> f64 {
        let e = self.steps as f64;
        match c.policy {
            LrPolicy::Linear => {
                let decayed = (e + c.epoch_count as f64 - c.n_epochs as f64).max(0.0);
                c.lr * (1.0 - decayed / (c.n_epochs_decay as f64 + 1.0))
            }
            LrPolicy::Step => c.lr * STEP_GAMMA.powi((self.steps / c.lr_decay_iters.max(1)) as i32),
            LrPolicy::Plateau => self.plateau_lr.unwrap_or(c.lr),
            LrPolicy::Cosine => {
                let t_max = c.n_epochs.max(1) as f64;
                c.lr * (1.0 + (std::f64::consts::PI * e / t_max).cos()) / 2.0
            }
        }
    }

    /// Steps the schedule at the end of an epoch.
    pub fn step(&mut self, c: &ScheduleConfig) {
        if c.policy == LrPolicy::Plateau {
            // The reference feeds ReduceLROnPlateau a constant metric of 0 (relative threshold,
            // mode 'min'): after the first epoch nothing improves, so the rate drops by 0.2
            // every `patience + 1` epochs.
            let metric = 0.0;
            let improved = self
                .plateau_best
                .is_none_or(|best| metric < best * (1.0 - PLATEAU_THRESHOLD));
            if improved {
                self.plateau_best = Some(metric);
                self.plateau_bad_epochs = 0;
            } else {
                self.plateau_bad_epochs += 1;
            }
            if self.plateau_bad_epochs > PLATEAU_PATIENCE {
                let (old, new) = (self.lr(c), self.lr(c) * PLATEAU_FACTOR);
                // PyTorch skips reductions smaller than its eps of 1e-8.
                if old - new > 1e-8 {
                    self.plateau_lr = Some(new);
                }
                self.plateau_bad_epochs = 0;
            }
        }
        self.steps += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(policy: LrPolicy) -> ScheduleConfig {
        ScheduleConfig {
            policy,
            lr: 0.0002,
            n_epochs: 100,
            n_epochs_decay: 100,
            epoch_count: 1,
            lr_decay_iters: 50,
        }
    }

    fn lr_during_epoch(c: &ScheduleConfig, epoch: usize) -> f64 {
        let mut s = Schedule::default();
        for _ in c.epoch_count..epoch {
            s.step(c);
        }
        s.lr(c)
    }

    #[test]
    fn linear_matches_the_2025_reference() {
        let c = config(LrPolicy::Linear);
        // Epochs 1..=100 at full rate: epoch 101 runs after 100 steps, factor 1 - 1/101.
        assert_eq!(lr_during_epoch(&c, 1), 0.0002);
        assert_eq!(lr_during_epoch(&c, 100), 0.0002);
        assert!((lr_during_epoch(&c, 101) - 0.0002 * (1.0 - 1.0 / 101.0)).abs() < 1e-15);
        // The last epoch (200) runs at lr / 101 and never at 0.
        assert!((lr_during_epoch(&c, 200) - 0.0002 / 101.0).abs() < 1e-15);
    }

    #[test]
    fn step_decays_tenfold_every_lr_decay_iters_epochs() {
        let c = config(LrPolicy::Step);
        assert_eq!(lr_during_epoch(&c, 50), 0.0002);
        assert!((lr_during_epoch(&c, 51) - 0.00002).abs() < 1e-15);
        assert!((lr_during_epoch(&c, 101) - 0.000002).abs() < 1e-15);
    }

    #[test]
    fn cosine_reaches_zero_after_n_epochs() {
        let c = config(LrPolicy::Cosine);
        assert_eq!(lr_during_epoch(&c, 1), 0.0002);
        assert!((lr_during_epoch(&c, 51) - 0.0001).abs() < 1e-12);
        assert!(lr_during_epoch(&c, 101).abs() < 1e-12);
    }

    #[test]
    fn plateau_with_the_reference_constant_metric_drops_every_six_epochs() {
        let c = config(LrPolicy::Plateau);
        assert_eq!(lr_during_epoch(&c, 7), 0.0002);
        assert!((lr_during_epoch(&c, 8) - 0.00004).abs() < 1e-15);
        assert!((lr_during_epoch(&c, 14) - 0.000008).abs() < 1e-15);
    }
}
