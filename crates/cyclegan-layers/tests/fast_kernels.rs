//! Parity of the fast CPU kernels with the stock candle operations of `ops::reference`.
//!
//! Every case runs the public operation (which takes the fast kernels: CPU, f32/f64, switch on
//! by default) and the reference on the same variables, then compares the outputs and the
//! gradients of every input of `sum(y * r)` for a fixed random `r`. The process-wide switch is
//! never touched here: the expected values come from calling `reference::*` directly.

use candle_core::{DType, Device, Result, Tensor, Var};
use cyclegan_layers::ops::{self, reference, Activation};
use cyclegan_layers::PaddingType;

mod common;
use common::random;

fn var(dims: &[usize], seed: u64, dtype: DType) -> Result<Var> {
    Var::from_tensor(&random(dims, seed, dtype)?)
}

fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 1e-4,
        _ => 1e-10,
    }
}

/// `max |got - want| <= tol * max(max |want|, floor)`.
fn assert_close_above(what: &str, got: &Tensor, want: &Tensor, floor: f64) -> Result<()> {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtypes");
    let flat = |t: &Tensor| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
    let (got_v, want_v) = (flat(got)?, flat(want)?);
    let scale = want_v.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = got_v
        .iter()
        .zip(&want_v)
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    let tol = tolerance(got.dtype()) * scale.max(floor);
    assert!(
        err <= tol,
        "{what}: max error {err:e} > {tol:e} (max |want| {scale:e}, {:?})",
        got.dtype()
    );
    Ok(())
}

/// `max |got - want| <= tol * max |want|` (or `tol * 1e-3` for nearly zero tensors).
fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> Result<()> {
    assert_close_above(what, got, want, 1e-3)
}

/// Compares `fast(inputs)` with `reference(inputs)` and the gradients of every variable.
fn check<F, R>(what: &str, vars: &[Var], fast: F, reference: R) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
    R: Fn(&[Tensor]) -> Result<Tensor>,
{
    check_above(what, vars, fast, reference, 1e-3)
}

/// [`check`] with errors measured against `max(max |want|, floor)`.
fn check_above<F, R>(what: &str, vars: &[Var], fast: F, reference: R, floor: f64) -> Result<()>
where
    F: Fn(&[Tensor]) -> Result<Tensor>,
    R: Fn(&[Tensor]) -> Result<Tensor>,
{
    let inputs: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y_fast = fast(&inputs)?;
    let y_ref = reference(&inputs)?;
    assert_close_above(&format!("{what}: output"), &y_fast, &y_ref, floor)?;
    let r = random(y_ref.dims(), 7, y_ref.dtype())?;
    let g_fast = (&y_fast * &r)?.sum_all()?.backward()?;
    let g_ref = (&y_ref * &r)?.sum_all()?.backward()?;
    for (i, v) in vars.iter().enumerate() {
        let (gf, gr) = (g_fast.get(v), g_ref.get(v));
        let (Some(gf), Some(gr)) = (gf, gr) else {
            panic!(
                "{what}: gradient {i} missing (fast {}, reference {})",
                gf.is_some(),
                gr.is_some()
            );
        };
        assert_close_above(&format!("{what}: gradient {i}"), gf, gr, floor)?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct ConvCase {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
}

const fn conv(
    n: usize,
    cin: usize,
    cout: usize,
    (h, w): (usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
) -> ConvCase {
    ConvCase {
        n,
        cin,
        cout,
        h,
        w,
        k,
        stride,
        pad,
    }
}

/// Shapes covering each formulation of the kernels at stride 1 and 2: im2col (under 128 input
/// channels, or small planes), im2col of the gradient (few output channels); one GEMM per tap
/// (128 or more input channels and 2048 or more output pixels) has its own test below.
///
/// Strided non-square cases keep `(h + 2p - k) % s == (w + 2p - k) % s`: candle's stock
/// backward pass (the reference) derives one output padding from the height for both sides.
const CONV_CASES: &[ConvCase] = &[
    conv(1, 3, 8, (13, 11), 7, 1, 0),
    conv(1, 3, 8, (12, 12), 7, 1, 3),
    conv(2, 3, 16, (9, 11), 4, 2, 1),
    conv(1, 1, 3, (8, 8), 3, 1, 1),
    conv(1, 3, 4, (5, 7), 1, 2, 0),
    conv(1, 20, 3, (14, 13), 7, 1, 0),
    conv(2, 20, 1, (7, 8), 4, 1, 1),
    conv(1, 64, 3, (9, 9), 7, 1, 3),
    conv(1, 18, 2, (9, 9), 4, 2, 1),
    conv(1, 17, 18, (9, 9), 3, 2, 1),
    conv(2, 16, 16, (10, 10), 3, 1, 0),
    conv(1, 16, 32, (11, 9), 4, 2, 1),
    conv(1, 16, 16, (5, 7), 1, 1, 0),
    conv(1, 4, 5, (9, 7), 3, 2, 3),
    conv(1, 64, 64, (6, 5), 3, 1, 1),
    conv(2, 32, 24, (7, 7), 3, 1, 2),
    conv(1, 24, 20, (4, 4), 4, 1, 1),
    conv(1, 128, 16, (7, 7), 3, 2, 1),
    conv(2, 130, 8, (6, 5), 3, 1, 0),
    conv(1, 128, 3, (7, 7), 3, 1, 1),
    conv(1, 144, 5, (9, 9), 4, 2, 1),
    conv(1, 128, 1, (5, 5), 4, 1, 1),
    conv(1, 4, 20, (5, 1), 1, 2, 0),
    conv(2, 130, 17, (7, 1), 3, 2, 1),
];

fn check_conv(case: ConvCase, dtype: DType, bias: bool) -> Result<()> {
    let ConvCase {
        n,
        cin,
        cout,
        h,
        w,
        k,
        stride,
        pad,
    } = case;
    let mut vars = vec![
        var(&[n, cin, h, w], 1, dtype)?,
        var(&[cout, cin, k, k], 2, dtype)?,
    ];
    if bias {
        vars.push(var(&[cout], 3, dtype)?);
    }
    check(
        &format!("conv2d {case:?} bias {bias}"),
        &vars,
        |t| ops::conv2d(&t[0], &t[1], t.get(2), stride, pad),
        |t| reference::conv2d(&t[0], &t[1], t.get(2), stride, pad),
    )
}

#[test]
fn conv2d_matches_reference_f32() -> Result<()> {
    for &case in CONV_CASES {
        check_conv(case, DType::F32, true)?;
    }
    Ok(())
}

#[test]
fn conv2d_matches_reference_f64() -> Result<()> {
    for (i, &case) in CONV_CASES.iter().enumerate() {
        check_conv(case, DType::F64, i % 2 == 0)?;
    }
    Ok(())
}

#[test]
fn conv2d_with_one_gemm_per_tap_matches_reference() -> Result<()> {
    // 128+ input channels and 2048+ wide output columns: the per-tap formulation (3x3 stride 1
    // with 16+ channels each way takes Winograd's instead, hence 4x4 and 8 output channels).
    for (case, dtype) in [
        (conv(1, 128, 16, (48, 48), 4, 1, 1), DType::F32),
        (conv(1, 128, 16, (96, 96), 3, 2, 1), DType::F32),
        (conv(1, 130, 8, (50, 46), 3, 1, 0), DType::F64),
    ] {
        check_conv(case, dtype, true)?;
    }
    check_convt(convt(1, 8, 128, (48, 48), 3, 2, 1, 1), DType::F32, true)
}

#[test]
fn winograd_convolutions_match_reference() -> Result<()> {
    // 3x3 stride 1 with 32+ channels each way and 2^20+ multiply-adds per tile position of
    // F(2x2, 3x3) (`cin * cout * tiles`): Winograd's for every pass, on odd and even sizes
    // (partial tiles), every padding and batches; F(2x2, 3x3) below 32 outputs a side,
    // F(4x4, 3x3) from there (the input gradient's by its own output, the input).
    for (case, dtype) in [
        (conv(1, 256, 256, (10, 10), 3, 1, 0), DType::F32),
        (conv(2, 128, 160, (17, 14), 3, 1, 1), DType::F32),
        (conv(1, 160, 128, (13, 11), 3, 1, 2), DType::F32),
        (conv(2, 129, 150, (17, 16), 3, 1, 0), DType::F64),
        // The reference's residual blocks at 128x128 (F(4x4, 3x3) in every pass).
        (conv(1, 256, 256, (34, 34), 3, 1, 0), DType::F32),
        (conv(2, 64, 64, (35, 33), 3, 1, 1), DType::F32),
        (conv(1, 64, 64, (31, 30), 3, 1, 2), DType::F32),
        (conv(1, 64, 64, (34, 35), 3, 1, 0), DType::F64),
    ] {
        check_conv(case, dtype, true)?;
    }
    // A stride-1 3x3 transposed convolution is the input gradient of one: Winograd too.
    check_convt(convt(1, 160, 128, (15, 14), 3, 1, 1, 0), DType::F32, true)?;
    check_convt(convt(2, 150, 129, (15, 14), 3, 1, 0, 0), DType::F64, false)
}

#[test]
fn conv2d_over_several_column_blocks_matches_reference() -> Result<()> {
    // Large enough planes that the im2col formulations work through more than one block
    // (blocks hold 2^20 elements).
    for (case, dtype) in [
        (conv(1, 3, 8, (90, 90), 7, 1, 0), DType::F32),
        (conv(1, 20, 3, (84, 84), 7, 1, 3), DType::F32),
        (conv(1, 3, 4, (300, 300), 4, 2, 1), DType::F64),
    ] {
        check_conv(case, dtype, true)?;
    }
    Ok(())
}

#[test]
fn conv2d_without_bias_matches_reference() -> Result<()> {
    for &case in &CONV_CASES[..6] {
        check_conv(case, DType::F32, false)?;
    }
    Ok(())
}

#[test]
fn conv2d_of_strided_inputs_matches_reference() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        // x is a transposed view, w a narrowed one.
        let x = var(&[2, 5, 9, 7], 1, dtype)?;
        let w = var(&[8, 5, 3, 3], 2, dtype)?;
        let b = var(&[6], 3, dtype)?;
        check(
            "conv2d of strided views",
            &[x, w, b],
            |t| {
                ops::conv2d(
                    &t[0].transpose(2, 3)?,
                    &t[1].narrow(0, 1, 6)?,
                    Some(&t[2]),
                    2,
                    1,
                )
            },
            |t| {
                reference::conv2d(
                    &t[0].transpose(2, 3)?,
                    &t[1].narrow(0, 1, 6)?,
                    Some(&t[2]),
                    2,
                    1,
                )
            },
        )?;
        // A batch item narrowed out of a larger batch (contiguous, with an offset).
        let x = var(&[3, 3, 8, 8], 4, dtype)?;
        let w = var(&[4, 3, 4, 4], 5, dtype)?;
        check(
            "conv2d of a narrowed batch",
            &[x, w],
            |t| ops::conv2d(&t[0].narrow(0, 1, 2)?, &t[1], None, 2, 1),
            |t| reference::conv2d(&t[0].narrow(0, 1, 2)?, &t[1], None, 2, 1),
        )?;
    }
    Ok(())
}

#[test]
fn conv2d_of_a_constant_input_only_differentiates_the_parameters() -> Result<()> {
    // The input does not track gradients (an image batch): the kernels skip its gradient.
    let x = random(&[1, 3, 10, 10], 1, DType::F32)?;
    let w = var(&[8, 3, 7, 7], 2, DType::F32)?;
    let y = ops::conv2d(&x, w.as_tensor(), None, 1, 3)?;
    let y_ref = reference::conv2d(&x, w.as_tensor(), None, 1, 3)?;
    let grads = y.sqr()?.sum_all()?.backward()?;
    let grads_ref = y_ref.sqr()?.sum_all()?.backward()?;
    assert!(grads.get(&x).is_none());
    assert_close(
        "weight gradient",
        grads.get(&w).unwrap(),
        grads_ref.get(&w).unwrap(),
    )
}

#[derive(Clone, Copy, Debug)]
struct ConvTCase {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    pad: usize,
    output_pad: usize,
}

#[allow(clippy::too_many_arguments)]
const fn convt(
    n: usize,
    cin: usize,
    cout: usize,
    (h, w): (usize, usize),
    k: usize,
    stride: usize,
    pad: usize,
    output_pad: usize,
) -> ConvTCase {
    ConvTCase {
        n,
        cin,
        cout,
        h,
        w,
        k,
        stride,
        pad,
        output_pad,
    }
}

const CONVT_CASES: &[ConvTCase] = &[
    convt(1, 16, 8, (5, 6), 3, 2, 1, 1),
    convt(2, 20, 17, (4, 4), 3, 2, 1, 0),
    convt(1, 3, 16, (5, 5), 4, 2, 1, 0),
    convt(1, 16, 3, (6, 6), 3, 1, 1, 0),
    convt(1, 8, 4, (5, 5), 1, 1, 0, 0),
    convt(1, 4, 2, (6, 5), 7, 1, 3, 0),
    convt(2, 64, 64, (3, 3), 3, 2, 1, 1),
    convt(1, 24, 18, (5, 4), 4, 2, 0, 1),
    convt(1, 18, 20, (3, 5), 3, 1, 0, 0),
    convt(1, 16, 128, (4, 4), 3, 2, 1, 1),
    convt(1, 8, 130, (3, 4), 3, 1, 1, 0),
];

fn check_convt(case: ConvTCase, dtype: DType, bias: bool) -> Result<()> {
    let ConvTCase {
        n,
        cin,
        cout,
        h,
        w,
        k,
        stride,
        pad,
        output_pad,
    } = case;
    let mut vars = vec![
        var(&[n, cin, h, w], 11, dtype)?,
        var(&[cin, cout, k, k], 12, dtype)?,
    ];
    if bias {
        vars.push(var(&[cout], 13, dtype)?);
    }
    check(
        &format!("conv_transpose2d {case:?} bias {bias}"),
        &vars,
        |t| ops::conv_transpose2d(&t[0], &t[1], t.get(2), stride, pad, output_pad),
        |t| reference::conv_transpose2d(&t[0], &t[1], t.get(2), stride, pad, output_pad),
    )
}

#[test]
fn conv_transpose2d_matches_reference_f32() -> Result<()> {
    for &case in CONVT_CASES {
        check_convt(case, DType::F32, true)?;
    }
    Ok(())
}

#[test]
fn conv_transpose2d_matches_reference_f64() -> Result<()> {
    for (i, &case) in CONVT_CASES.iter().enumerate() {
        check_convt(case, DType::F64, i % 2 == 1)?;
    }
    Ok(())
}

#[test]
fn conv_transpose2d_of_a_strided_input_matches_reference() -> Result<()> {
    let x = var(&[1, 8, 5, 4], 1, DType::F32)?;
    let w = var(&[8, 6, 3, 3], 2, DType::F32)?;
    check(
        "conv_transpose2d of a transposed view",
        &[x, w],
        |t| ops::conv_transpose2d(&t[0].transpose(2, 3)?, &t[1], None, 2, 1, 1),
        |t| reference::conv_transpose2d(&t[0].transpose(2, 3)?, &t[1], None, 2, 1, 1),
    )
}

const ACTIVATIONS: [Activation; 4] = [
    Activation::Identity,
    Activation::Relu,
    Activation::LeakyRelu(0.2),
    Activation::Tanh,
];

#[test]
fn activations_match_reference() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for act in ACTIVATIONS {
            let x = var(&[2, 3, 5, 7], 23, dtype)?;
            check(
                &format!("activation {act:?} of a transposed view"),
                &[x],
                |t| act.apply(&t[0].transpose(2, 3)?),
                |t| reference::activation(&t[0].transpose(2, 3)?, act),
            )?;
        }
    }
    Ok(())
}

#[test]
fn activation_gradients_at_zero_follow_pytorch() -> Result<()> {
    // PyTorch's (Leaky)ReLU backward takes the negative side at exactly 0 (candle's ReLU the
    // positive one).
    let x = Var::from_tensor(&Tensor::new(&[-1f32, 0.0, 2.0], &Device::Cpu)?)?;
    for (act, want) in [
        (Activation::Relu, [0.0, 0.0, 1.0]),
        (Activation::LeakyRelu(0.2), [0.2, 0.2, 1.0]),
    ] {
        let y = act.apply(x.as_tensor())?;
        let grad = y.sum_all()?.backward()?;
        let grad = grad.get(x.as_tensor()).expect("x has a gradient");
        assert_eq!(grad.to_vec1::<f32>()?, want, "{act:?}");
    }
    Ok(())
}

#[test]
fn instance_norm_matches_reference() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for dims in [
            [1, 3, 5, 7],
            [2, 4, 8, 8],
            [1, 64, 4, 4],
            [2, 2, 1, 9],
            [1, 1, 33, 31],
        ] {
            for act in ACTIVATIONS {
                let x = var(&dims, 21, dtype)?;
                check(
                    &format!("instance_norm {dims:?} {act:?}"),
                    &[x],
                    |t| ops::instance_norm(&t[0], ops::NORM_EPS, act),
                    |t| {
                        reference::activation(&reference::instance_norm(&t[0], ops::NORM_EPS)?, act)
                    },
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn instance_norm_of_strided_and_shifted_inputs_matches_reference() -> Result<()> {
    // A large mean next to a small spread tests the two-pass variance (in f32 the input
    // itself cannot hold more than a moderate ratio).
    for (dtype, scale, shift) in [(DType::F32, 0.5, 3.0), (DType::F64, 0.01, 100.0)] {
        let x = var(&[2, 3, 6, 5], 22, dtype)?;
        let prepare = |t: &Tensor| ((t * scale)? + shift)?.transpose(2, 3);
        let act = Activation::LeakyRelu(0.2);
        check(
            "instance_norm of a shifted, transposed view",
            &[x],
            |t| ops::instance_norm(&prepare(&t[0])?, ops::NORM_EPS, act),
            |t| {
                reference::activation(
                    &reference::instance_norm(&prepare(&t[0])?, ops::NORM_EPS)?,
                    act,
                )
            },
        )?;
    }
    Ok(())
}

/// The prologues the networks use (norm + activation, then padding) and the other combinations.
fn prologues() -> Vec<ops::Prologue> {
    let norm = |act| Some((ops::NORM_EPS, act));
    let prologue = |norm, pad| ops::Prologue { norm, pad };
    vec![
        prologue(norm(Activation::Relu), Some((1, PaddingType::Reflect))),
        prologue(norm(Activation::Relu), Some((3, PaddingType::Reflect))),
        prologue(norm(Activation::LeakyRelu(0.2)), None),
        prologue(norm(Activation::Tanh), Some((2, PaddingType::Zero))),
        prologue(
            norm(Activation::Identity),
            Some((1, PaddingType::Replicate)),
        ),
        prologue(None, Some((3, PaddingType::Reflect))),
        prologue(norm(Activation::Relu), Some((0, PaddingType::Reflect))),
    ]
}

/// The prologue's layers one by one, from stock candle operations.
fn reference_prologue(p: &ops::Prologue, x: &Tensor) -> Result<Tensor> {
    let x = match p.norm {
        Some((eps, act)) => reference::activation(&reference::instance_norm(x, eps)?, act)?,
        None => x.clone(),
    };
    match p.pad {
        Some((pad, mode)) if pad > 0 => reference::pad2d(&x, pad, mode),
        _ => Ok(x),
    }
}

/// Values and gradients of `f(x, w, b)` for fresh variables, flattened, to compare bit for bit.
fn values_and_gradients(
    dims: [&[usize]; 3],
    dtype: DType,
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Vec<Vec<f64>>> {
    let vars = [
        var(dims[0], 41, dtype)?,
        var(dims[1], 42, dtype)?,
        var(dims[2], 43, dtype)?,
    ];
    let y = f(
        vars[0].as_tensor(),
        vars[1].as_tensor(),
        vars[2].as_tensor(),
    )?;
    let r = random(y.dims(), 7, dtype)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let flat = |t: &Tensor| t.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>();
    let mut out = vec![flat(&y)?];
    for v in &vars {
        out.push(flat(grads.get(v).expect("every input has a gradient"))?);
    }
    Ok(out)
}

#[test]
fn convolutions_after_a_prologue_match_the_layers_in_turn() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for prologue in prologues() {
            for (k, stride, pad) in [(3, 1, 0), (4, 2, 1)] {
                let what = format!("conv2d k{k} s{stride} p{pad} after {prologue:?} {dtype:?}");
                // Odd sides keep candle's strided backward pass (the reference) right.
                let dims: [&[usize]; 3] = [&[2, 4, 9, 7], &[5, 4, k, k], &[5]];
                let vars = dims
                    .iter()
                    .enumerate()
                    .map(|(i, d)| var(d, 31 + i as u64, dtype))
                    .collect::<Result<Vec<_>>>()?;
                check(
                    &what,
                    &vars,
                    |t| ops::conv2d_after(&prologue, &t[0], &t[1], Some(&t[2]), stride, pad),
                    |t| {
                        let x = reference_prologue(&prologue, &t[0])?;
                        reference::conv2d(&x, &t[1], Some(&t[2]), stride, pad)
                    },
                )?;
                // In one op, the same kernels as the layers applied in turn: the same bits.
                let fused = values_and_gradients(dims, dtype, |x, w, b| {
                    ops::conv2d_after(&prologue, x, w, Some(b), stride, pad)
                })?;
                let in_turn = values_and_gradients(dims, dtype, |x, w, b| {
                    ops::conv2d(&prologue.apply(x)?, w, Some(b), stride, pad)
                })?;
                assert_eq!(fused, in_turn, "{what}: fused against in turn");
            }
            let what = format!("conv_transpose2d after {prologue:?} {dtype:?}");
            let vars = [
                var(&[1, 6, 5, 4], 34, dtype)?,
                var(&[6, 3, 3, 3], 35, dtype)?,
            ];
            check(
                &what,
                &vars,
                |t| ops::conv_transpose2d_after(&prologue, &t[0], &t[1], None, (2, 1, 1)),
                |t| {
                    let x = reference_prologue(&prologue, &t[0])?;
                    reference::conv_transpose2d(&x, &t[1], None, 2, 1, 1)
                },
            )?;
        }
    }
    Ok(())
}

#[test]
fn instance_norm_plus_residual_matches_reference() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        let vars = [
            var(&[2, 3, 6, 5], 51, dtype)?,
            var(&[2, 3, 6, 5], 52, dtype)?,
        ];
        check(
            &format!("instance_norm_add {dtype:?}"),
            &vars,
            |t| ops::instance_norm_add(&t[0], ops::NORM_EPS, &t[1]),
            |t| &t[1] + reference::instance_norm(&t[0], ops::NORM_EPS)?,
        )?;
        // A strided residual.
        let vars = [
            var(&[1, 2, 4, 4], 53, dtype)?,
            var(&[1, 2, 4, 4], 54, dtype)?,
        ];
        check(
            &format!("instance_norm_add of a transposed residual {dtype:?}"),
            &vars,
            |t| ops::instance_norm_add(&t[0], ops::NORM_EPS, &t[1].transpose(2, 3)?),
            |t| &t[1].transpose(2, 3)? + reference::instance_norm(&t[0], ops::NORM_EPS)?,
        )?;
    }
    Ok(())
}

#[test]
fn pad2d_matches_reference() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        for mode in [
            PaddingType::Reflect,
            PaddingType::Replicate,
            PaddingType::Zero,
        ] {
            for (dims, pad) in [
                (vec![1, 3, 8, 8], 3),
                (vec![2, 4, 5, 7], 1),
                (vec![1, 2, 4, 4], 2),
                (vec![3, 6, 5], 2),
                (vec![1, 1, 2, 9], 1),
            ] {
                let x = var(&dims, 31, dtype)?;
                check(
                    &format!("pad2d {dims:?} {pad} {mode:?}"),
                    &[x],
                    |t| ops::pad2d(&t[0], pad, mode),
                    |t| reference::pad2d(&t[0], pad, mode),
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn pad2d_of_a_strided_input_matches_reference() -> Result<()> {
    let x = var(&[1, 3, 6, 7], 32, DType::F32)?;
    check(
        "pad2d of a transposed view",
        &[x],
        |t| ops::pad2d(&t[0].transpose(2, 3)?, 3, PaddingType::Reflect),
        // The reference's index_select takes contiguous tensors only.
        |t| {
            reference::pad2d(
                &t[0].transpose(2, 3)?.contiguous()?,
                3,
                PaddingType::Reflect,
            )
        },
    )
}

#[test]
fn reflection_wider_than_the_input_is_an_error() -> Result<()> {
    let x = random(&[1, 1, 3, 3], 1, DType::F32)?;
    assert!(ops::pad2d(&x, 3, PaddingType::Reflect).is_err());
    Ok(())
}

/// A miniature generator: reflect pad, 7x7 conv, norm + ReLU, stride-2 conv, residual block,
/// transposed conv, output conv with tanh; then a PatchGAN-like discriminator head.
fn mini_network(t: &[Tensor], fast: bool) -> Result<Tensor> {
    let pad = |x: &Tensor, p| {
        if fast {
            ops::pad2d(x, p, PaddingType::Reflect)
        } else {
            reference::pad2d(x, p, PaddingType::Reflect)
        }
    };
    let conv = |x: &Tensor, w: &Tensor, b: &Tensor, s, p| {
        if fast {
            ops::conv2d(x, w, Some(b), s, p)
        } else {
            reference::conv2d(x, w, Some(b), s, p)
        }
    };
    let norm = |x: &Tensor, act: Activation| {
        if fast {
            ops::instance_norm(x, ops::NORM_EPS, act)
        } else {
            reference::activation(&reference::instance_norm(x, ops::NORM_EPS)?, act)
        }
    };
    let x = &t[0];
    let h = norm(&conv(&pad(x, 3)?, &t[1], &t[2], 1, 0)?, Activation::Relu)?;
    let h = norm(&conv(&h, &t[3], &t[4], 2, 1)?, Activation::Relu)?;
    let r = norm(&conv(&pad(&h, 1)?, &t[5], &t[6], 1, 0)?, Activation::Relu)?;
    let r = norm(
        &conv(&pad(&r, 1)?, &t[7], &t[8], 1, 0)?,
        Activation::Identity,
    )?;
    let h = (h + r)?;
    let up = if fast {
        ops::conv_transpose2d(&h, &t[9], Some(&t[10]), 2, 1, 1)?
    } else {
        reference::conv_transpose2d(&h, &t[9], Some(&t[10]), 2, 1, 1)?
    };
    let h = norm(&up, Activation::Relu)?;
    let img = conv(&pad(&h, 3)?, &t[11], &t[12], 1, 0)?.tanh()?;
    let d = conv(&img, &t[13], &t[14], 2, 1)?;
    let d = norm(&d, Activation::LeakyRelu(ops::LEAKY_RELU_SLOPE))?;
    conv(&d, &t[15], &t[16], 1, 1)
}

#[test]
fn a_miniature_cyclegan_matches_reference() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        let dims: [&[usize]; 17] = [
            &[2, 3, 12, 12],
            &[8, 3, 7, 7],
            &[8],
            &[16, 8, 3, 3],
            &[16],
            &[16, 16, 3, 3],
            &[16],
            &[16, 16, 3, 3],
            &[16],
            &[16, 8, 3, 3],
            &[8],
            &[3, 8, 7, 7],
            &[3],
            &[16, 3, 4, 4],
            &[16],
            &[1, 16, 4, 4],
            &[1],
        ];
        let vars = dims
            .iter()
            .enumerate()
            .map(|(i, d)| var(d, 40 + i as u64, dtype))
            .collect::<Result<Vec<_>>>()?;
        // The biases before instance norms have a zero gradient up to rounding: measure
        // errors against 1 rather than against that noise.
        check_above(
            "miniature CycleGAN",
            &vars,
            |t| mini_network(t, true),
            |t| mini_network(t, false),
            1.0,
        )?;
    }
    Ok(())
}

/// Three Adam steps through the fused in-place kernels and through the stock operations end
/// bit for bit equal: parameters and both moments.
#[test]
fn fused_adam_rounds_like_the_stock_operations() -> Result<()> {
    for dtype in [DType::F32, DType::F64] {
        let dims = [64, 3, 5, 5];
        let (fused_p, stock_p) = (var(&dims, 1, dtype)?, var(&dims, 1, dtype)?);
        let zeros = || Tensor::zeros(&dims, dtype, &candle_core::Device::Cpu);
        let (mut fused_m, mut fused_v) = (zeros()?, zeros()?);
        let (mut stock_m, mut stock_v) = (zeros()?, zeros()?);
        for t in 1..=3 {
            let grad = random(&dims, 10 + t as u64, dtype)?;
            let step = ops::AdamStep::new(2e-4, 0.5, 0.999, 1e-8, t);
            (fused_m, fused_v) = ops::adam_step(&fused_p, &fused_m, &fused_v, &grad, &step)?;
            (stock_m, stock_v) = reference::adam_step(&stock_p, &stock_m, &stock_v, &grad, &step)?;
        }
        let bits = |t: &Tensor| -> Result<Vec<u64>> {
            Ok(t.to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1::<f64>()?
                .iter()
                .map(|v| v.to_bits())
                .collect())
        };
        assert_eq!(bits(&fused_p)?, bits(&stock_p)?, "{dtype:?} parameters");
        assert_eq!(bits(&fused_m)?, bits(&stock_m)?, "{dtype:?} first moments");
        assert_eq!(bits(&fused_v)?, bits(&stock_v)?, "{dtype:?} second moments");
        assert_ne!(
            bits(&fused_p)?,
            bits(var(&dims, 1, dtype)?.as_tensor())?,
            "the parameters moved"
        );
    }
    Ok(())
}
