//! `ops::set_recompute_prologues`: a convolution's prologue (norm + activation, padding) either
//! runs inside the convolution's op and is recomputed in the backward pass (the default), or runs
//! as an op of its own whose output the graph keeps. Both give the same numbers, bit for bit,
//! outputs and gradients. (Its own test binary: the setting is process-wide.)

use candle_core::{DType, Result, Tensor, Var};
use cyclegan_layers::ops::{self, Activation, Prologue};
use cyclegan_layers::PaddingType;

mod common;
use common::random;

fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// The output of a convolution (`transposed` or not) after `prologue`, and the gradients of
/// `sum(y * r)` for its input, weight and bias, with the prologue recomputed or stored; with
/// `strided`, the input is a permuted view (channels last in memory) rather than contiguous.
fn run(
    prologue: &Prologue,
    transposed: bool,
    recompute: bool,
    strided: bool,
) -> Result<Vec<Vec<f32>>> {
    ops::set_recompute_prologues(recompute);
    let (var, x) = if strided {
        let var = Var::from_tensor(&random(&[2, 7, 9, 5], 1, DType::F32)?)?;
        let x = var.permute((0, 3, 1, 2))?;
        (var, x)
    } else {
        let var = Var::from_tensor(&random(&[2, 5, 7, 9], 1, DType::F32)?)?;
        let x = var.as_tensor().clone();
        (var, x)
    };
    let (w_dims, b_dims): (&[usize], &[usize]) = if transposed {
        (&[5, 4, 3, 3], &[4])
    } else {
        (&[4, 5, 3, 3], &[4])
    };
    let w = Var::from_tensor(&random(w_dims, 2, DType::F32)?)?;
    let b = Var::from_tensor(&random(b_dims, 3, DType::F32)?)?;
    let y = if transposed {
        ops::conv_transpose2d_after(prologue, &x, &w, Some(&b), (2, 1, 1))?
    } else {
        ops::conv2d_after(prologue, &x, &w, Some(&b), 1, 0)?
    };
    let r = random(y.dims(), 4, DType::F32)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let mut out = vec![values(&y)?];
    for v in [&var, &w, &b] {
        out.push(values(grads.get(v).expect("every input has a gradient"))?);
    }
    Ok(out)
}

#[test]
fn stored_prologues_give_the_recomputed_numbers_and_gradients() -> Result<()> {
    assert!(ops::recompute_prologues(), "recomputing is the default");
    let prologues = [
        Prologue {
            norm: Some((ops::NORM_EPS, Activation::Relu)),
            pad: Some((1, PaddingType::Reflect)),
        },
        Prologue {
            norm: Some((ops::NORM_EPS, Activation::LeakyRelu(0.2))),
            pad: None,
        },
        Prologue {
            norm: None,
            pad: Some((2, PaddingType::Zero)),
        },
    ];
    for prologue in &prologues {
        for (transposed, strided) in [(false, false), (true, false), (false, true), (true, true)] {
            let recomputed = run(prologue, transposed, true, strided)?;
            let stored = run(prologue, transposed, false, strided)?;
            for (i, (s, r)) in stored.iter().zip(&recomputed).enumerate() {
                let what = [
                    "output",
                    "input gradient",
                    "weight gradient",
                    "bias gradient",
                ][i];
                assert_eq!(
                    s, r,
                    "{prologue:?}, transposed {transposed}, strided {strided}: {what}"
                );
            }
        }
    }
    ops::set_recompute_prologues(true);
    Ok(())
}
