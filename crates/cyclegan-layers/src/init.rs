//! The reference's `init_weights`, drawn from a seeded generator.

use candle_core::{Result, Tensor};
use candle_nn::VarMap;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::rng::SeededRng;

/// The reference's `--init_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitType {
    /// Convolution weights ~ N(0, gain).
    #[default]
    Normal,
    /// Xavier (Glorot) normal with gain `gain`.
    Xavier,
    /// Kaiming (He) normal, fan-in mode, a = 0 (`gain` unused, as in the reference).
    Kaiming,
    /// Orthogonal with gain `gain`.
    Orthogonal,
}

impl std::str::FromStr for InitType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "xavier" => Ok(Self::Xavier),
            "kaiming" => Ok(Self::Kaiming),
            "orthogonal" => Ok(Self::Orthogonal),
            other => Err(format!(
                "unknown init type '{other}': expected normal, xavier, kaiming or orthogonal"
            )),
        }
    }
}

/// Re-initialises every parameter of `varmap` as the reference's `init_weights` does:
/// convolution weights (rank 4) by `init`, biases to zero, batch-norm weights ~ N(1, gain)
/// (a batch norm is recognised by its `running_mean` sibling); affine instance-norm weights
/// keep their ones and running statistics are left alone. Parameters are visited in name
/// order, so a seed gives the same network every time.
pub fn init_weights(varmap: &VarMap, init: InitType, gain: f64, rng: &mut SeededRng) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let var = &vars[name];
        let (prefix, leaf) = name.rsplit_once('.').unwrap_or(("", name.as_str()));
        let dims = var.dims().to_vec();
        let values: Option<Vec<f64>> = match (leaf, dims.len()) {
            ("weight", 4) => Some(conv_weight(&dims, init, gain, rng)),
            ("weight", 1) if vars.contains_key(&format!("{prefix}.running_mean")) => {
                Some((0..dims[0]).map(|_| 1.0 + gain * normal(rng)).collect())
            }
            ("bias", _) => Some(vec![0.0; var.elem_count()]),
            _ => None,
        };
        if let Some(values) = values {
            let t = Tensor::from_vec(values, dims, var.device())?.to_dtype(var.dtype())?;
            var.set(&t)?;
        }
    }
    Ok(())
}

fn normal(rng: &mut SeededRng) -> f64 {
    StandardNormal.sample(rng)
}

/// PyTorch's fan-in and fan-out of a weight `[d0, d1, k, k]`.
fn fans(dims: &[usize]) -> (f64, f64) {
    let receptive: usize = dims[2..].iter().product();
    ((dims[1] * receptive) as f64, (dims[0] * receptive) as f64)
}

fn conv_weight(dims: &[usize], init: InitType, gain: f64, rng: &mut SeededRng) -> Vec<f64> {
    let count: usize = dims.iter().product();
    let (fan_in, fan_out) = fans(dims);
    let std = match init {
        InitType::Normal => gain,
        InitType::Xavier => gain * (2.0 / (fan_in + fan_out)).sqrt(),
        InitType::Kaiming => (2.0 / fan_in).sqrt(),
        InitType::Orthogonal => return orthogonal(dims[0], count / dims[0], gain, rng),
    };
    (0..count).map(|_| std * normal(rng)).collect()
}

/// A `rows x cols` matrix (row-major) with orthonormal rows or columns, whichever are fewer,
/// scaled by `gain`: Gram-Schmidt on a Gaussian matrix, like `torch.nn.init.orthogonal_`'s QR
/// with the signs of R's diagonal made positive.
fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut SeededRng) -> Vec<f64> {
    let (tall, wide) = (rows.max(cols), rows.min(cols));
    // `wide` vectors of length `tall`, orthonormalised one after another.
    let mut vectors: Vec<Vec<f64>> = (0..wide)
        .map(|_| (0..tall).map(|_| normal(rng)).collect())
        .collect();
    for i in 0..wide {
        let (done, rest) = vectors.split_at_mut(i);
        let current = &mut rest[0];
        for previous in done.iter() {
            let dot: f64 = current.iter().zip(previous).map(|(a, b)| a * b).sum();
            current
                .iter_mut()
                .zip(previous)
                .for_each(|(a, b)| *a -= dot * b);
        }
        let norm = current
            .iter()
            .map(|v| v * v)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        current.iter_mut().for_each(|v| *v /= norm);
    }
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            // Tall matrices take the vectors as columns, wide ones as rows.
            out[r * cols + c] = gain
                * if rows >= cols {
                    vectors[c][r]
                } else {
                    vectors[r][c]
                };
        }
    }
    out
}
