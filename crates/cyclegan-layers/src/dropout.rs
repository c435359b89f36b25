//! Dropout driven by the project's seedable generator.

use candle_core::{Result, Tensor};
use rand::Rng;

use crate::rng::SharedRng;

/// `nn.Dropout(p)`: in training, zeroes each element with probability `p` and scales the rest by
/// `1 / (1 - p)`; in evaluation, the identity. The mask is drawn from a [`SharedRng`], so runs
/// are reproducible and resumable.
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f64,
    rng: SharedRng,
}

impl Dropout {
    /// Dropout with probability `p`, drawing its masks from `rng`.
    pub fn new(p: f64, rng: SharedRng) -> Self {
        Self { p, rng }
    }

    /// Applies dropout to `x` when `train`, and returns it unchanged otherwise (or when `p` is 0).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - self.p;
        let scale = if keep > 0.0 { 1.0 / keep } else { 0.0 };
        let mask: Vec<f32> = self.rng.with(|rng| {
            (0..x.elem_count())
                .map(|_| {
                    if rng.random::<f64>() < keep {
                        scale as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        });
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }
}
