//! The reference's `init_weights`, drawn from a seeded generator, and a [`VarBuilder`] whose new
//! variables draw their first values on the host.

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};
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

impl std::fmt::Display for InitType {
    /// The reference's name (what `FromStr` reads).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InitType::Normal => "normal",
            InitType::Xavier => "xavier",
            InitType::Kaiming => "kaiming",
            InitType::Orthogonal => "orthogonal",
        })
    }
}

impl std::str::FromStr for InitType {
    type Err = crate::ParseNameError;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "normal" => Ok(Self::Normal),
            "xavier" => Ok(Self::Xavier),
            "kaiming" => Ok(Self::Kaiming),
            "orthogonal" => Ok(Self::Orthogonal),
            other => Err(crate::ParseNameError::new(format!(
                "unknown init type '{other}': expected normal, xavier, kaiming or orthogonal"
            ))),
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

/// A [`VarBuilder`] over `varmap` like [`VarBuilder::from_varmap`], except that a variable it
/// creates draws its initial value on the host and is then moved to `device`. candle draws on
/// the device, which on CUDA makes a cuRAND generator, device memory held for the process's
/// life, for values that [`init_weights`] or a checkpoint replaces anyway.
pub fn host_init_var_builder(
    varmap: &VarMap,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    VarBuilder::from_backend(Box::new(HostInit(varmap.clone())), dtype, device.clone())
}

/// The backend of [`host_init_var_builder`].
struct HostInit(VarMap);

impl candle_nn::var_builder::SimpleBackend for HostInit {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        {
            let mut vars = self.0.data().lock().unwrap_or_else(|p| p.into_inner());
            if !dev.is_cpu() && !vars.contains_key(name) {
                let value = init.var(shape.clone(), dtype, &Device::Cpu)?;
                let var = Var::from_tensor(&value.as_tensor().to_device(dev)?)?;
                vars.insert(name.to_string(), var);
            }
        }
        // Checks the shape of a variable made before, or makes one on the host.
        self.0.get(shape, name, init, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        candle_nn::var_builder::SimpleBackend::get_unchecked(&self.0, name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        candle_nn::var_builder::SimpleBackend::contains_tensor(&self.0, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_init_var_builder_fills_the_varmap_as_from_varmap_does() -> Result<()> {
        let varmap = VarMap::new();
        let vb = host_init_var_builder(&varmap, DType::F32, &Device::Cpu);
        let w = vb.get_with_hints((4, 3), "conv.weight", Init::Const(0.5))?;
        assert_eq!(w.to_vec2::<f32>()?, vec![vec![0.5f32; 3]; 4]);
        // The same variable again, and a shape mismatch refused.
        let again = vb.get_with_hints((4, 3), "conv.weight", Init::Const(1.0))?;
        assert_eq!(again.to_vec2::<f32>()?, vec![vec![0.5f32; 3]; 4]);
        assert!(vb
            .get_with_hints((3, 4), "conv.weight", Init::Const(0.0))
            .is_err());
        let vars = varmap.all_vars();
        assert_eq!(vars.len(), 1);
        // The builder's tensor is the variable's: setting the variable changes it.
        vars[0].set(&Tensor::ones((4, 3), DType::F32, &Device::Cpu)?)?;
        assert_eq!(w.to_vec2::<f32>()?, vec![vec![1f32; 3]; 4]);
        Ok(())
    }
}
