//! Every fast operation on the device under test (`CYCLEGAN_TEST_DEVICE`: the CPU by default,
//! `cuda` on a GPU machine) against the CPU kernels in f64, which `fast_kernels.rs` and the model
//! parity tests pin to PyTorch: outputs and the gradients of every input of `sum(y * r)`, in f32
//! and f64. On CUDA this covers the cuDNN convolution passes (TF32 off) and the fused padding and
//! norm kernels shape by shape. Bounds: max |error| <= 1e-5 (f32) or 1e-10 (f64) x max |truth|.
//! The errors are printed (`--nocapture`) to show how far inside the bounds each case is.

use candle_core::{DType, Device, Result, Tensor, Var};
use cyclegan_layers::device::test_device;
use cyclegan_layers::ops::{self, Activation};
use cyclegan_layers::PaddingType;

mod common;
use common::random;

type Op = dyn Fn(&[Tensor]) -> Result<Tensor>;

/// `max |got - want| / max |want|`.
fn relative_error(got: &Tensor, want: &Tensor) -> Result<f64> {
    let flat = |t: &Tensor| -> Result<Vec<f64>> {
        t.to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()
    };
    let (g, w) = (flat(got)?, flat(want)?);
    assert_eq!(g.len(), w.len());
    let scale = w.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    Ok(g.iter()
        .zip(&w)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale)
}

/// The output and input gradients of `op` on `inputs` (moved to `device` as `dtype`).
fn run(op: &Op, inputs: &[Tensor], device: &Device, dtype: DType) -> Result<Vec<Tensor>> {
    let vars = inputs
        .iter()
        .map(|t| Var::from_tensor(&t.to_dtype(dtype)?.to_device(device)?))
        .collect::<Result<Vec<_>>>()?;
    let tensors: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = op(&tensors)?;
    let r = random(y.dims(), 7, dtype)?.to_device(device)?;
    let grads = (&y * &r)?.sum_all()?.backward()?;
    let mut out = vec![y];
    for v in &vars {
        out.push(grads.get(v).expect("every input has a gradient").clone());
    }
    Ok(out)
}

/// Runs `op` on the CPU in f64 and on the device under test in f32 and f64, and compares.
fn check(what: &str, dims: &[&[usize]], op: &Op) -> Result<()> {
    ops::set_cuda_tf32(false);
    let inputs = dims
        .iter()
        .enumerate()
        .map(|(i, d)| random(d, 11 + i as u64, DType::F64))
        .collect::<Result<Vec<_>>>()?;
    let truth = run(op, &inputs, &Device::Cpu, DType::F64)?;
    let device = test_device();
    for (dtype, bound) in [(DType::F32, 1e-5), (DType::F64, 1e-10)] {
        let got = run(op, &inputs, &device, dtype)?;
        let errors = got
            .iter()
            .zip(&truth)
            .map(|(g, t)| relative_error(g, t))
            .collect::<Result<Vec<_>>>()?;
        let shown: Vec<String> = errors.iter().map(|e| format!("{e:.1e}")).collect();
        eprintln!("{what} {dtype:?} on {device:?}: relative errors [y, grads...] {shown:?}");
        for (i, e) in errors.iter().enumerate() {
            let name = if i == 0 {
                "output".to_string()
            } else {
                format!("gradient {}", i - 1)
            };
            assert!(
                e <= &bound,
                "{what} {dtype:?}: {name} error {e:e} > {bound:e}"
            );
        }
    }
    if device.is_cuda() {
        // For information: what TF32 (PyTorch's default for convolutions, and ours) costs.
        ops::set_cuda_tf32(true);
        let got = run(op, &inputs, &device, DType::F32)?;
        ops::set_cuda_tf32(false);
        let errors = got
            .iter()
            .zip(&truth)
            .map(|(g, t)| relative_error(g, t).map(|e| format!("{e:.1e}")))
            .collect::<Result<Vec<_>>>()?;
        eprintln!("{what} F32 with TF32: relative errors {errors:?}");
    }
    Ok(())
}

#[test]
fn convolutions_match_the_cpu() -> Result<()> {
    // (cin, cout, side, k, stride, pad): every convolution shape of the reference networks.
    for (cin, cout, side, k, s, p) in [
        (3, 8, 22, 7, 1, 0),
        (8, 16, 16, 3, 2, 1),
        (16, 16, 10, 3, 1, 0),
        (8, 3, 22, 7, 1, 0),
        (3, 8, 16, 4, 2, 1),
        (1, 8, 16, 4, 2, 1),
        (8, 16, 8, 4, 2, 1),
        (16, 8, 7, 4, 1, 1),
        (8, 1, 6, 4, 1, 1),
        (4, 6, 9, 1, 1, 0),
    ] {
        let what = format!("conv2d {cin}->{cout} {side}x{side} k{k} s{s} p{p}");
        let op = move |t: &[Tensor]| ops::conv2d(&t[0], &t[1], Some(&t[2]), s, p);
        check(
            &what,
            &[&[2, cin, side, side], &[cout, cin, k, k], &[cout]],
            &op,
        )?;
    }
    eprintln!("cuDNN algorithms: {:#?}", ops::cudnn_algorithms());
    Ok(())
}

/// Turns cuDNN's benchmark mode on while alive, off when dropped (also on a failed assertion).
struct CudnnBenchmark;

impl CudnnBenchmark {
    fn on() -> Self {
        ops::set_cudnn_benchmark(true);
        Self
    }
}

impl Drop for CudnnBenchmark {
    fn drop(&mut self) {
        ops::set_cudnn_benchmark(false);
    }
}

/// With engines picked by timing (on CUDA; shapes of their own, so that no other test's plans
/// are reused), every pass still matches the CPU.
#[test]
fn convolutions_with_engines_picked_by_timing_match_the_cpu() -> Result<()> {
    let _benchmark = CudnnBenchmark::on();
    let conv = |t: &[Tensor]| ops::conv2d(&t[0], &t[1], Some(&t[2]), 1, 1);
    check(
        "conv2d 5->7 11x11 k3 s1 p1, benchmark",
        &[&[2, 5, 11, 11], &[7, 5, 3, 3], &[7]],
        &conv,
    )?;
    let up = |t: &[Tensor]| ops::conv_transpose2d(&t[0], &t[1], Some(&t[2]), 2, 1, 1);
    check(
        "conv_transpose2d 7->5 6x6 k3 s2, benchmark",
        &[&[2, 7, 6, 6], &[7, 5, 3, 3], &[5]],
        &up,
    )?;
    Ok(())
}

/// Restricts cuDNN to deterministic engines while alive (also on a failed assertion).
struct Deterministic;

impl Deterministic {
    fn on() -> Self {
        ops::set_cuda_deterministic(true);
        Self
    }
}

impl Drop for Deterministic {
    fn drop(&mut self) {
        ops::set_cuda_deterministic(false);
        ops::set_cuda_tf32(false);
    }
}

/// With only deterministic engines (`--deterministic`), the passes that cuDNN's fastest engines
/// sum with atomic additions (weight gradients over large planes, the input gradients of
/// strided convolutions) give the same bits on every run, with TF32 on as in training; and they
/// still match the CPU within TF32's rounding.
#[test]
fn deterministic_convolutions_repeat_bit_for_bit() -> Result<()> {
    let _deterministic = Deterministic::on();
    ops::set_cuda_tf32(true);
    let device = test_device();
    // Channels last (an NHWC input) takes other engines, tensor-core ones among them.
    for (what, dims, stride, channels_last) in [
        ("3x3 s1", [[4, 64, 64, 64], [64, 64, 3, 3]], 1, false),
        ("4x4 s2", [[4, 32, 64, 64], [64, 32, 4, 4]], 2, false),
        (
            "3x3 s1 channels last",
            [[4, 64, 64, 64], [64, 64, 3, 3]],
            1,
            true,
        ),
        (
            "4x4 s2 channels last",
            [[4, 32, 64, 64], [64, 32, 4, 4]],
            2,
            true,
        ),
    ] {
        let inputs = dims
            .iter()
            .enumerate()
            .map(|(i, d)| random(d, 23 + i as u64, DType::F64))
            .collect::<Result<Vec<_>>>()?;
        let op = move |t: &[Tensor]| {
            let x = if channels_last {
                ops::to_channels_last(&t[0])?
            } else {
                t[0].clone()
            };
            ops::conv2d(&x, &t[1], None, stride, 1)
        };
        let bits = |ts: &[Tensor]| -> Result<Vec<Vec<u32>>> {
            ts.iter()
                .map(|t| {
                    let v = t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
                    Ok(v.iter().map(|x| x.to_bits()).collect())
                })
                .collect()
        };
        let first = run(&op, &inputs, &device, DType::F32)?;
        for round in 0..3 {
            let again = run(&op, &inputs, &device, DType::F32)?;
            assert!(
                bits(&first)? == bits(&again)?,
                "{what}: run {round} differs from the first"
            );
        }
        let truth = run(&op, &inputs, &Device::Cpu, DType::F64)?;
        for (i, (g, t)) in first.iter().zip(&truth).enumerate() {
            let e = relative_error(g, t)?;
            eprintln!("{what} deterministic, TF32: relative error of output/gradient {i}: {e:.1e}");
            assert!(e <= 1e-2, "{what}: {i}: {e:e}");
        }
    }
    eprintln!("cuDNN algorithms: {:#?}", ops::cudnn_algorithms());
    Ok(())
}

#[test]
fn transposed_convolutions_match_the_cpu() -> Result<()> {
    // (cin, cout, side, k, stride, pad, output_pad): the ResNet and U-Net upsampling layers.
    for (cin, cout, side, k, s, p, op) in [
        (16, 8, 5, 3, 2, 1, 1),
        (16, 8, 4, 4, 2, 1, 0),
        (8, 3, 4, 4, 2, 1, 0),
        (8, 1, 3, 4, 2, 1, 0),
    ] {
        let what = format!("conv_transpose2d {cin}->{cout} {side}x{side} k{k} s{s} p{p} op{op}");
        let f = move |t: &[Tensor]| ops::conv_transpose2d(&t[0], &t[1], Some(&t[2]), s, p, op);
        check(
            &what,
            &[&[2, cin, side, side], &[cin, cout, k, k], &[cout]],
            &f,
        )?;
    }
    eprintln!("cuDNN algorithms: {:#?}", ops::cudnn_algorithms());
    Ok(())
}

#[test]
fn padding_matches_the_cpu() -> Result<()> {
    for (mode, pad) in [
        (PaddingType::Reflect, 3),
        (PaddingType::Reflect, 1),
        (PaddingType::Replicate, 2),
        (PaddingType::Zero, 1),
    ] {
        let what = format!("pad2d {mode:?} {pad}");
        let op = move |t: &[Tensor]| ops::pad2d(&t[0], pad, mode);
        check(&what, &[&[2, 3, 7, 9]], &op)?;
        check(&what, &[&[1, 2, 4, 4]], &op)?;
    }
    Ok(())
}

#[test]
fn activations_match_the_cpu() -> Result<()> {
    for activation in [
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Tanh,
    ] {
        let op = move |t: &[Tensor]| activation.apply(&t[0]);
        for dims in [[2, 3, 7, 9], [1, 64, 64, 64]] {
            check(
                &format!("activation {activation:?} {dims:?}"),
                &[&dims],
                &op,
            )?;
        }
    }
    Ok(())
}

#[test]
fn instance_norms_match_the_cpu() -> Result<()> {
    for activation in [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Tanh,
    ] {
        let op = move |t: &[Tensor]| ops::instance_norm(&t[0], ops::NORM_EPS, activation);
        for dims in [[2, 3, 7, 9], [1, 4, 40, 40]] {
            check(
                &format!("instance_norm {activation:?} {dims:?}"),
                &[&dims],
                &op,
            )?;
        }
    }
    Ok(())
}

#[test]
fn fused_prologues_and_residual_adds_match_the_cpu() -> Result<()> {
    // The generator's fused layers: norm + ReLU + reflection pad 1 before a 3x3 convolution,
    // pad 3 before a 7x7 one, norm + ReLU before a stride-2 and a transposed convolution, and
    // the residual blocks' norm + add.
    let relu = Some((ops::NORM_EPS, Activation::Relu));
    let reflect = |pad| Some((pad, PaddingType::Reflect));
    for (prologue, k, s, p) in [
        (
            ops::Prologue {
                norm: relu,
                pad: reflect(1),
            },
            3,
            1,
            0,
        ),
        (
            ops::Prologue {
                norm: relu,
                pad: reflect(3),
            },
            7,
            1,
            0,
        ),
        (
            ops::Prologue {
                norm: None,
                pad: reflect(3),
            },
            7,
            1,
            0,
        ),
        (
            ops::Prologue {
                norm: relu,
                pad: None,
            },
            3,
            2,
            1,
        ),
    ] {
        let what = format!("conv2d k{k} s{s} p{p} after {prologue:?}");
        let op = move |t: &[Tensor]| ops::conv2d_after(&prologue, &t[0], &t[1], Some(&t[2]), s, p);
        check(&what, &[&[2, 6, 12, 12], &[8, 6, k, k], &[8]], &op)?;
    }
    let prologue = ops::Prologue {
        norm: relu,
        pad: None,
    };
    let op = move |t: &[Tensor]| {
        ops::conv_transpose2d_after(&prologue, &t[0], &t[1], Some(&t[2]), (2, 1, 1))
    };
    check(
        "conv_transpose2d after norm + ReLU",
        &[&[2, 8, 5, 5], &[8, 4, 3, 3], &[4]],
        &op,
    )?;
    // A contiguous residual (on CUDA one kernel) and a strided one (the norm, then the add).
    let op = |t: &[Tensor]| ops::instance_norm_add(&t[0], ops::NORM_EPS, &t[1]);
    check("instance_norm_add", &[&[2, 3, 7, 9], &[2, 3, 7, 9]], &op)?;
    let op = |t: &[Tensor]| ops::instance_norm_add(&t[0], ops::NORM_EPS, &t[1].transpose(2, 3)?);
    check(
        "instance_norm_add, strided residual",
        &[&[2, 3, 7, 9], &[2, 3, 9, 7]],
        &op,
    )?;
    Ok(())
}

/// A norm with each activation, then each padding mode, before a convolution: on CUDA one
/// kernel each way (forward, and the gradient gathered back through the padding into the norm's
/// backward pass), here on planes of odd, unequal sides.
#[test]
fn fused_norm_and_padding_in_every_mode_match_the_cpu() -> Result<()> {
    let activations = [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Tanh,
    ];
    for mode in [
        PaddingType::Reflect,
        PaddingType::Replicate,
        PaddingType::Zero,
    ] {
        for activation in activations {
            let prologue = ops::Prologue {
                norm: Some((ops::NORM_EPS, activation)),
                pad: Some((2, mode)),
            };
            let what = format!("conv2d k3 after {prologue:?}");
            let op = move |t: &[Tensor]| ops::conv2d_after(&prologue, &t[0], &t[1], None, 1, 0);
            check(&what, &[&[2, 3, 9, 7], &[4, 3, 3, 3]], &op)?;
        }
    }
    Ok(())
}

/// On CUDA a norm kernel's block holds a chunk of up to 4096 elements of a plane in registers;
/// larger planes are split between blocks, whose statistics and gradient sums are combined per
/// plane. Planes of one chunk (40x40, 64x64) and of several (17x241: a last chunk of one
/// element; 100x170, 120x250), for the norm with padding before a convolution (1 and 3: the
/// border shared between chunks) and the norm with a residual add.
#[test]
fn norm_kernels_on_planes_of_one_and_several_chunks_match_the_cpu() -> Result<()> {
    for (h, w) in [(40, 40), (64, 64), (17, 241), (100, 170), (120, 250)] {
        for pad in [1, 3] {
            let prologue = ops::Prologue {
                norm: Some((ops::NORM_EPS, Activation::Relu)),
                pad: Some((pad, PaddingType::Reflect)),
            };
            let what = format!("conv2d k3 after {prologue:?} on {h}x{w} planes");
            let op = move |t: &[Tensor]| ops::conv2d_after(&prologue, &t[0], &t[1], None, 1, 0);
            check(&what, &[&[1, 2, h, w], &[2, 2, 3, 3]], &op)?;
        }
        let op = |t: &[Tensor]| ops::instance_norm_add(&t[0], ops::NORM_EPS, &t[1]);
        let what = format!("instance_norm_add on {h}x{w} planes");
        check(&what, &[&[1, 2, h, w], &[1, 2, h, w]], &op)?;
    }
    Ok(())
}

/// Channels-last inputs (`ops::to_channels_last`) through every op that keeps the layout: on
/// CUDA the `*_nhwc` kernels and cuDNN with NHWC tensors, against the CPU's NCHW kernels. Shapes
/// whose positions span several tiles of 128 with a partial last one (13x17, 40x60), channels
/// that are not a multiple of 32 (5, 40), bias gradients of more than 2048 positions, every
/// padding mode and activation.
#[test]
fn channels_last_ops_match_the_cpu() -> Result<()> {
    let last = ops::to_channels_last;
    let relu = Some((ops::NORM_EPS, Activation::Relu));
    for (prologue, k, s, p) in [
        (ops::Prologue::default(), 3, 1, 1),
        (
            ops::Prologue {
                norm: relu,
                pad: Some((1, PaddingType::Reflect)),
            },
            3,
            1,
            0,
        ),
        (
            ops::Prologue {
                norm: None,
                pad: Some((3, PaddingType::Reflect)),
            },
            7,
            1,
            0,
        ),
        (
            ops::Prologue {
                norm: relu,
                pad: None,
            },
            3,
            2,
            1,
        ),
    ] {
        for (cin, cout, h, w) in [(40, 5, 13, 17), (8, 16, 40, 60)] {
            let what =
                format!("channels-last conv2d {cin}->{cout} {h}x{w} k{k} s{s} after {prologue:?}");
            let op = move |t: &[Tensor]| {
                let y = ops::conv2d_after(&prologue, &last(&t[0])?, &t[1], Some(&t[2]), s, p)?;
                // cuDNN's convolutions go channels last in f32 (f64 reads NCHW).
                if y.device().is_cuda() && cfg!(feature = "cudnn") && y.dtype() == DType::F32 {
                    assert!(ops::is_channels_last(&y), "{y:?} is not channels last");
                }
                Ok(y)
            };
            check(&what, &[&[2, cin, h, w], &[cout, cin, k, k], &[cout]], &op)?;
        }
    }
    let prologue = ops::Prologue {
        norm: relu,
        pad: None,
    };
    let op = move |t: &[Tensor]| {
        ops::conv_transpose2d_after(&prologue, &last(&t[0])?, &t[1], Some(&t[2]), (2, 1, 1))
    };
    check(
        "channels-last conv_transpose2d after norm + ReLU",
        &[&[2, 40, 9, 11], &[40, 8, 3, 3], &[8]],
        &op,
    )?;
    for mode in [
        PaddingType::Reflect,
        PaddingType::Replicate,
        PaddingType::Zero,
    ] {
        let op = move |t: &[Tensor]| ops::pad2d(&last(&t[0])?, 2, mode);
        check(
            &format!("channels-last pad2d {mode:?} 2"),
            &[&[2, 5, 13, 17]],
            &op,
        )?;
    }
    for activation in [
        Activation::Identity,
        Activation::Relu,
        Activation::LeakyRelu(0.2),
        Activation::Tanh,
    ] {
        let op = move |t: &[Tensor]| ops::instance_norm(&last(&t[0])?, ops::NORM_EPS, activation);
        check(
            &format!("channels-last instance_norm {activation:?}"),
            &[&[2, 40, 13, 17]],
            &op,
        )?;
        let op = move |t: &[Tensor]| activation.apply(&last(&t[0])?);
        check(
            &format!("channels-last activation {activation:?}"),
            &[&[2, 5, 13, 17]],
            &op,
        )?;
    }
    // The residual channels last too, and NCHW (made channels last inside).
    let op =
        move |t: &[Tensor]| ops::instance_norm_add(&last(&t[0])?, ops::NORM_EPS, &last(&t[1])?);
    check(
        "channels-last instance_norm_add",
        &[&[2, 40, 13, 17], &[2, 40, 13, 17]],
        &op,
    )?;
    let op = move |t: &[Tensor]| ops::instance_norm_add(&last(&t[0])?, ops::NORM_EPS, &t[1]);
    check(
        "channels-last instance_norm_add, NCHW residual",
        &[&[2, 5, 40, 60], &[2, 5, 40, 60]],
        &op,
    )
}

/// On CUDA the bias gradient of a convolution with few output channels (below 128) and planes of
/// more than 2048 elements is summed by several blocks per channel, then in order: 3 channels of
/// 64x70 here, as the generator's last convolution; 8 channels of 12x12 take one block each.
#[test]
fn bias_gradients_split_between_blocks_match_the_cpu() -> Result<()> {
    let op = |t: &[Tensor]| ops::conv2d(&t[0], &t[1], Some(&t[2]), 1, 1);
    check(
        "conv2d bias, 3 channels of 64x70",
        &[&[2, 4, 64, 70], &[3, 4, 3, 3], &[3]],
        &op,
    )?;
    check(
        "conv2d bias, 8 channels of 12x12",
        &[&[2, 4, 12, 12], &[8, 4, 3, 3], &[8]],
        &op,
    )
}

/// Three Adam steps on the device under test against the CPU in f64.
#[test]
fn adam_steps_match_the_cpu() -> Result<()> {
    let device = test_device();
    let dims = [32, 4, 3, 3];
    for (dtype, bound) in [(DType::F32, 1e-6), (DType::F64, 1e-12)] {
        let run = |device: &Device, dtype: DType| -> Result<Vec<Tensor>> {
            let p = Var::from_tensor(
                &random(&dims, 1, DType::F64)?
                    .to_dtype(dtype)?
                    .to_device(device)?,
            )?;
            let mut m = Tensor::zeros(&dims, dtype, device)?;
            let mut v = Tensor::zeros(&dims, dtype, device)?;
            for t in 1..=3 {
                let grad = random(&dims, 10 + t as u64, DType::F64)?
                    .to_dtype(dtype)?
                    .to_device(device)?;
                let step = ops::AdamStep::new(2e-4, 0.5, 0.999, 1e-8, t);
                (m, v) = ops::adam_step(&p, &m, &v, &grad, &step)?;
            }
            Ok(vec![p.as_tensor().clone(), m, v])
        };
        let truth = run(&Device::Cpu, DType::F64)?;
        let got = run(&device, dtype)?;
        for (name, (g, t)) in ["parameter", "m", "v"].iter().zip(got.iter().zip(&truth)) {
            let e = relative_error(g, t)?;
            eprintln!("adam {name} {dtype:?} on {device:?}: relative error {e:.1e}");
            assert!(e <= bound, "adam {name} {dtype:?}: error {e:e} > {bound:e}");
        }
    }
    Ok(())
}

/// `adam_step_all` over many parameters (on CUDA one launch per 64 of them, spanning several
/// blocks each) computes, bit for bit, what `adam_step` computes for each in turn on the same
/// device: 70 parameters of 1 to 9000 elements, one of them f64 among f32 (updated on its own),
/// one with a strided gradient, one without a gradient, three steps.
#[test]
fn adam_step_all_matches_adam_step_in_turn() -> Result<()> {
    let device = test_device();
    let dims: Vec<Vec<usize>> = (0..70usize)
        .map(|i| match i {
            0 => vec![60, 60],
            _ => vec![(i * 1297) % 9000 + 1],
        })
        .collect();
    let dtype_of = |i: usize| if i == 5 { DType::F64 } else { DType::F32 };
    let params = |device: &Device| -> Result<Vec<Var>> {
        (0..dims.len())
            .map(|i| {
                let t = random(&dims[i], 100 + i as u64, dtype_of(i))?.to_device(device)?;
                Var::from_tensor(&t)
            })
            .collect()
    };
    let (together, in_turn) = (params(&device)?, params(&device)?);
    let zeros = |i: usize| Tensor::zeros(dims[i].as_slice(), dtype_of(i), &device);
    let mut moments_together = (0..dims.len())
        .map(|i| Ok((zeros(i)?, zeros(i)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut moments_in_turn = moments_together
        .iter()
        .map(|(m, v)| Ok((m.copy()?, v.copy()?)))
        .collect::<Result<Vec<_>>>()?;
    for t in 1..=3 {
        let step = ops::AdamStep::new(2e-4, 0.5, 0.999, 1e-8, t);
        let grads = (0..dims.len())
            .map(|i| {
                let g = random(&dims[i], 1000 * t as u64 + i as u64, dtype_of(i))?;
                // Parameter 0's gradient is a transposed view.
                let g = if i == 0 { g.t()? } else { g };
                g.to_device(&device)
            })
            .collect::<Result<Vec<_>>>()?;
        // Parameter 7 has no gradient this step: both leave it alone.
        let mut slots: Vec<ops::AdamSlot<'_>> = moments_together
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| *i != 7)
            .map(|(i, (m, v))| ops::AdamSlot {
                param: &together[i],
                exp_avg: m,
                exp_avg_sq: v,
                grad: &grads[i],
            })
            .collect();
        ops::adam_step_all(&mut slots, &step)?;
        for (i, (m, v)) in moments_in_turn.iter_mut().enumerate() {
            if i != 7 {
                (*m, *v) = ops::adam_step(&in_turn[i], m, v, &grads[i], &step)?;
            }
        }
    }
    let values = |t: &Tensor| -> Result<Vec<f64>> {
        t.to_device(&Device::Cpu)?
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()
    };
    for i in 0..dims.len() {
        let (a, b) = (&moments_together[i], &moments_in_turn[i]);
        for (name, x, y) in [
            ("parameter", together[i].as_tensor(), in_turn[i].as_tensor()),
            ("m", &a.0, &b.0),
            ("v", &a.1, &b.1),
        ] {
            assert_eq!(values(x)?, values(y)?, "adam {name} {i} on {device:?}");
        }
    }
    let untouched = random(&dims[7], 107, DType::F32)?;
    assert_eq!(values(together[7].as_tensor())?, values(&untouched)?);
    Ok(())
}

/// `host_init_var_builder` makes its variables on the device under test, drawn as asked.
#[test]
fn host_init_var_builder_makes_variables_on_the_device() -> Result<()> {
    let device = test_device();
    let varmap = candle_nn::VarMap::new();
    let vb = cyclegan_layers::init::host_init_var_builder(&varmap, DType::F32, &device);
    let init = candle_nn::Init::Randn {
        mean: 0.0,
        stdev: 0.02,
    };
    let w = vb.get_with_hints((64, 64, 3, 3), "conv.weight", init)?;
    assert!(w.device().same_device(&device), "made on {:?}", w.device());
    let var = &varmap.all_vars()[0];
    assert!(var.as_tensor().device().same_device(&device));
    let values = w.flatten_all()?.to_device(&Device::Cpu)?.to_vec1::<f32>()?;
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    // 36864 draws: the mean's standard error is 1e-4, the deviation's about 7e-5.
    assert!(
        mean.abs() < 1e-3 && (std - 0.02).abs() < 1e-3,
        "mean {mean}, std {std}"
    );
    Ok(())
}

/// The vendored candle-core makes its CUDA device's cuBLAS handle and cuRAND generator at
/// first use (vendor/README.md): a matmul still matches the CPU, and on CUDA a seed still gives
/// the same random numbers every time it is set, different ones for another seed.
#[test]
fn matmuls_and_seeded_random_tensors_work_on_the_device() -> Result<()> {
    let device = test_device();
    let (a, b) = (
        random(&[3, 17, 9], 1, DType::F64)?,
        random(&[3, 9, 5], 2, DType::F64)?,
    );
    let want = a.matmul(&b)?;
    let got = a.to_device(&device)?.matmul(&b.to_device(&device)?)?;
    let e = relative_error(&got, &want)?;
    assert!(e <= 1e-12, "matmul on {device:?}: error {e:e}");
    if device.is_cuda() {
        let draw = |seed: u64| -> Result<Vec<f32>> {
            device.set_seed(seed)?;
            Tensor::rand(0f32, 1.0, 1001, &device)?.to_vec1::<f32>()
        };
        let first = draw(7)?;
        assert_eq!(first, draw(7)?, "the same seed, the same numbers");
        assert_ne!(first, draw(8)?, "another seed, other numbers");
        let normal = Tensor::randn(0f32, 1.0, 1001, &device)?;
        assert_eq!(normal.dims(), &[1001]);
    }
    Ok(())
}

/// `cudnn_layout_report` (a diagnostic of `bench_iteration --conv-layouts`) times the passes
/// run on this thread since its reset, in both layouts; without cuDNN or a GPU it says what it
/// needs.
#[test]
fn cudnn_layout_report_times_the_passes_run_since_its_reset() -> Result<()> {
    let device = test_device();
    ops::reset_cudnn_pass_counts();
    let x = random(&[2, 8, 16, 16], 3, DType::F32)?.to_device(&device)?;
    let w = random(&[8, 8, 3, 3], 4, DType::F32)?.to_device(&device)?;
    ops::conv2d(&x, &w, None, 1, 1)?;
    match ops::cudnn_layout_report(&device, 1) {
        Ok(lines) => {
            eprintln!("{}", lines.join("\n"));
            let pass = lines
                .iter()
                .find(|l| l.starts_with("Forward x[2, 8, 16, 16]"));
            let pass = pass.expect("a line for the convolution run");
            assert!(pass.contains("1 run(s)") && pass.contains("NHWC"), "{pass}");
            let total = lines.last().expect("a total");
            assert!(total.starts_with("per iteration: NCHW "), "{total}");
        }
        Err(e) => {
            assert!(!(cfg!(feature = "cudnn") && device.is_cuda()), "{e}");
            assert!(e.to_string().contains("needs a CUDA device"), "{e}");
        }
    }
    Ok(())
}
