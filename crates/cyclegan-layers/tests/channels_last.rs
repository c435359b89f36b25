//! The channels-last path's layout logic, on the CPU: ops given channels-last inputs
//! (`ops::to_channels_last`) return channels-last outputs, and compute exactly what they compute
//! on NCHW inputs (here through the same kernels, between transpositions), gradients included,
//! which flow back through the permutations. On CUDA, where the same ops run the `*_nhwc` kernels,
//! `device_ops.rs` compares them with the CPU.

use candle_core::{DType, Result, Tensor, Var};
use cyclegan_layers::ops::{self, Activation};
use cyclegan_layers::PaddingType;

mod common;
use common::random;

type Op = dyn Fn(&[Tensor]) -> Result<Tensor>;

fn values(t: &Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// `op`'s output and the gradients of `sum(y * r)` for its inputs, each 4-d input first made
/// channels last when `channels_last`.
fn run(op: &Op, inputs: &[Tensor], channels_last: bool) -> Result<(Tensor, Vec<Tensor>)> {
    let vars = inputs
        .iter()
        .map(Var::from_tensor)
        .collect::<Result<Vec<_>>>()?;
    let args = vars
        .iter()
        .map(|v| {
            let t = v.as_tensor();
            if channels_last && t.rank() == 4 {
                ops::to_channels_last(t)
            } else {
                Ok(t.clone())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let y = op(&args)?;
    let r = random(y.dims(), 5, DType::F32)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let grads = vars
        .iter()
        .map(|v| grads.get(v).expect("every input has a gradient").clone())
        .collect();
    Ok((y, grads))
}

/// Checks that `op` keeps channels-last inputs so (when `keeps`) and gives the NCHW numbers,
/// bit for bit, output and gradients.
fn check(what: &str, dims: &[&[usize]], keeps: bool, op: &Op) -> Result<()> {
    let inputs = dims
        .iter()
        .enumerate()
        .map(|(i, d)| random(d, 3 + i as u64, DType::F32))
        .collect::<Result<Vec<_>>>()?;
    let (y, grads) = run(op, &inputs, false)?;
    let (y_last, grads_last) = run(op, &inputs, true)?;
    if keeps {
        assert!(
            ops::is_channels_last(&y_last) && !y_last.is_contiguous(),
            "{what}: output {:?} not channels last",
            y_last.layout()
        );
    }
    assert_eq!(y_last.dims(), y.dims(), "{what}");
    assert_eq!(values(&y_last)?, values(&y)?, "{what}: output");
    for (i, (g_last, g)) in grads_last.iter().zip(&grads).enumerate() {
        assert_eq!(values(g_last)?, values(g)?, "{what}: gradient {i}");
    }
    Ok(())
}

#[test]
fn channels_last_layouts_are_recognised_and_made() -> Result<()> {
    let x = random(&[2, 3, 4, 5], 1, DType::F32)?;
    assert!(!ops::is_channels_last(&x));
    let last = ops::to_channels_last(&x)?;
    assert!(ops::is_channels_last(&last) && !last.is_contiguous());
    assert_eq!(last.dims(), x.dims());
    assert_eq!(values(&last)?, values(&x)?);
    assert_eq!(ops::to_channels_last(&last)?.layout(), last.layout());
    // One channel lies both ways; other ranks and other permutations are not channels last.
    assert!(ops::is_channels_last(&random(
        &[2, 1, 4, 5],
        1,
        DType::F32
    )?));
    assert!(!ops::is_channels_last(&random(&[2, 3, 4], 1, DType::F32)?));
    assert!(!ops::is_channels_last(&x.transpose(2, 3)?));
    let err = ops::to_channels_last(&random(&[3, 4, 5], 1, DType::F32)?).unwrap_err();
    assert!(err.to_string().contains("[n, c, h, w]"), "{err}");
    Ok(())
}

#[test]
fn norm_padding_activation_and_residual_ops_keep_the_layout_and_the_numbers() -> Result<()> {
    for (mode, pad) in [
        (PaddingType::Reflect, 2),
        (PaddingType::Replicate, 1),
        (PaddingType::Zero, 3),
    ] {
        let op = move |t: &[Tensor]| ops::pad2d(&t[0], pad, mode);
        check(
            &format!("pad2d {mode:?} {pad}"),
            &[&[2, 5, 7, 9]],
            true,
            &op,
        )?;
    }
    for activation in [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Tanh,
    ] {
        let op = move |t: &[Tensor]| ops::instance_norm(&t[0], ops::NORM_EPS, activation);
        check(
            &format!("instance_norm {activation:?}"),
            &[&[2, 5, 7, 9]],
            true,
            &op,
        )?;
    }
    for activation in [
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Tanh,
    ] {
        let op = move |t: &[Tensor]| activation.apply(&t[0]);
        check(&format!("{activation:?}"), &[&[2, 5, 7, 9]], true, &op)?;
    }
    let op = |t: &[Tensor]| ops::instance_norm_add(&t[0], ops::NORM_EPS, &t[1]);
    check(
        "instance_norm_add",
        &[&[2, 5, 7, 9], &[2, 5, 7, 9]],
        true,
        &op,
    )?;
    // A convolution on the CPU reads a channels-last input as any strided one: NCHW out.
    let prologue = ops::Prologue {
        norm: Some((ops::NORM_EPS, Activation::Relu)),
        pad: Some((1, PaddingType::Reflect)),
    };
    let op = move |t: &[Tensor]| ops::conv2d_after(&prologue, &t[0], &t[1], Some(&t[2]), 1, 0);
    check(
        "conv2d after norm + pad",
        &[&[2, 5, 7, 9], &[4, 5, 3, 3], &[4]],
        false,
        &op,
    )
}

/// A residual block's layers (pad, norm + ReLU, pad, norm, + the block's input), with the
/// input used twice: its two gradients, both channels last, are summed in that layout.
#[test]
fn a_residual_block_chain_gives_the_nchw_numbers_and_gradients() -> Result<()> {
    let block = |t: &[Tensor]| {
        let x = &t[0];
        let h = ops::pad2d(x, 1, PaddingType::Reflect)?;
        let h = ops::instance_norm(&h, ops::NORM_EPS, Activation::Relu)?;
        let h = ops::pad2d(&h, 1, PaddingType::Reflect)?;
        // Stand-in for the convolutions (which keep the layout on CUDA): a strided crop.
        let h = h.narrow(2, 2, 7)?.narrow(3, 2, 9)?;
        let h = ops::to_channels_last(&h)?;
        ops::instance_norm_add(&h, ops::NORM_EPS, x)
    };
    check("residual block", &[&[2, 6, 7, 9]], true, &block)
}
