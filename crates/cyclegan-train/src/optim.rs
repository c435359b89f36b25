//! Adam exactly as `torch.optim.Adam` computes it, with state that can be saved and restored.

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use cyclegan_layers::ops::{adam_step_all, AdamSlot, AdamStep};
use std::collections::HashMap;

/// Adam's hyper-parameters (the reference: `lr` 0.0002, betas (`beta1` 0.5, 0.999), eps 1e-8,
/// no weight decay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// The learning rate (`--lr` in the reference, 0.0002); the schedule changes it.
    pub lr: f64,
    /// The first-moment decay (`--beta1` in the reference, 0.5).
    pub beta1: f64,
    /// The second-moment decay (0.999, fixed in the reference).
    pub beta2: f64,
    /// Added to the denominator for stability (1e-8, PyTorch's default).
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 0.0002,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// One optimiser over a named set of parameters (the reference keeps one for both generators
/// and one for both discriminators).
#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    params: Vec<(String, Var)>,
    exp_avg: Vec<Tensor>,
    exp_avg_sq: Vec<Tensor>,
    step: u64,
}

impl Adam {
    /// An optimiser with zero moments over `params` (name, variable).
    pub fn new(params: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        let zeros = |params: &[(String, Var)]| -> Result<Vec<Tensor>> {
            params
                .iter()
                .map(|(_, v)| v.as_tensor().zeros_like())
                .collect()
        };
        Ok(Self {
            exp_avg: zeros(&params)?,
            exp_avg_sq: zeros(&params)?,
            params,
            config,
            step: 0,
        })
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate of the next steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The number of steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One update from `grads`. Like PyTorch, parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.config;
        let step = AdamStep::new(lr, beta1, beta2, eps, self.step as i32);
        let mut slots: Vec<AdamSlot<'_>> = self
            .params
            .iter()
            .zip(self.exp_avg.iter_mut().zip(self.exp_avg_sq.iter_mut()))
            .filter_map(|((_, param), (exp_avg, exp_avg_sq))| {
                let grad = grads.get(param.as_tensor())?;
                Some(AdamSlot {
                    param,
                    exp_avg,
                    exp_avg_sq,
                    grad,
                })
            })
            .collect();
        adam_step_all(&mut slots, &step)
    }

    /// The moments as tensors named `{prefix}.exp_avg.{param}` / `{prefix}.exp_avg_sq.{param}`.
    /// They share storage with the live moments, which the next [`Adam::step`] updates in place:
    /// write or copy them before stepping again.
    pub fn state_tensors(&self, prefix: &str) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            out.insert(format!("{prefix}.exp_avg.{name}"), self.exp_avg[i].clone());
            out.insert(
                format!("{prefix}.exp_avg_sq.{name}"),
                self.exp_avg_sq[i].clone(),
            );
        }
        out
    }

    /// Restores the moments saved by [`Adam::state_tensors`] and the step count.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        step: u64,
    ) -> Result<()> {
        for (i, (name, var)) in self.params.iter().enumerate() {
            for (kind, slot) in [
                ("exp_avg", &mut self.exp_avg[i]),
                ("exp_avg_sq", &mut self.exp_avg_sq[i]),
            ] {
                let key = format!("{prefix}.{kind}.{name}");
                let saved = tensors.get(&key).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimizer state has no '{key}'"))
                })?;
                if saved.dims() != var.dims() {
                    candle_core::bail!(
                        "optimizer state '{key}' has shape {:?}, parameter has {:?}",
                        saved.dims(),
                        var.dims()
                    );
                }
                // A copy of its own: the fused update writes the moments in place.
                *slot = saved
                    .to_dtype(var.dtype())?
                    .to_device(var.device())?
                    .copy()?;
            }
        }
        self.step = step;
        Ok(())
    }
}
