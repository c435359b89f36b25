//! Unit behaviour of the layers: padding, norms, dropout and initialisation.
//! (Numerical parity with PyTorch is pinned by cyclegan-models' network fixtures.)

use candle_core::{DType, Device, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cyclegan_layers::ops::{self, reference};
use cyclegan_layers::{
    init_weights, Activation, Conv2d, ConvTranspose2d, Dropout, InitType, Norm, NormKind,
    PaddingType, SeededRng, SharedRng,
};
use rand::SeedableRng;

#[test]
fn reflection_padding_mirrors_without_the_edge_and_replication_repeats_it() {
    assert_eq!(
        reference::pad_indices(4, 2, PaddingType::Reflect),
        vec![2, 1, 0, 1, 2, 3, 2, 1]
    );
    assert_eq!(
        reference::pad_indices(4, 2, PaddingType::Replicate),
        vec![0, 0, 0, 1, 2, 3, 3, 3]
    );
    let x = Tensor::arange(0f32, 9.0, &Device::Cpu)
        .unwrap()
        .reshape((1, 1, 3, 3))
        .unwrap();
    let y = ops::pad2d(&x, 1, PaddingType::Reflect).unwrap();
    assert_eq!(
        y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![
            4., 3., 4., 5., 4., 1., 0., 1., 2., 1., 4., 3., 4., 5., 4., 7., 6., 7., 8., 7., 4., 3.,
            4., 5., 4.
        ]
    );
    let z = ops::pad2d(&x, 1, PaddingType::Zero).unwrap();
    assert_eq!(z.sum_all().unwrap().to_scalar::<f32>().unwrap(), 36.0);
    assert!(
        ops::pad2d(&x, 3, PaddingType::Reflect).is_err(),
        "reflection wider than the image is refused"
    );
}

#[test]
fn padding_gradient_adds_the_mirrored_border_back() {
    let x = Var::from_tensor(
        &Tensor::arange(0f32, 6.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 1, 2, 3))
            .unwrap(),
    )
    .unwrap();
    let y = ops::pad2d(x.as_tensor(), 1, PaddingType::Reflect).unwrap();
    // Padded rows [1, 0, 1, 0] and columns [1, 0, 1, 2, 1]: each input's gradient counts its
    // copies, 2 for each row times 1, 3, 1 for the columns.
    let grads = y.sum_all().unwrap().backward().unwrap();
    let g = grads
        .get(x.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(g, vec![2.0, 6.0, 2.0, 2.0, 6.0, 2.0]);
}

#[test]
fn instance_norm_has_zero_mean_unit_variance_per_plane() {
    let x = Tensor::rand(-3f32, 5.0, (2, 3, 8, 8), &Device::Cpu).unwrap();
    let y = ops::instance_norm(&x, 1e-5, ops::Activation::Identity).unwrap();
    let planes = y.reshape((6, 64)).unwrap();
    let mean = max_abs(&planes.mean(1).unwrap());
    let var = planes
        .sqr()
        .unwrap()
        .mean(1)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(mean < 1e-5);
    assert!(var.iter().all(|v| (v - 1.0).abs() < 1e-3), "{var:?}");
    let relu = ops::instance_norm(&x, 1e-5, ops::Activation::Relu).unwrap();
    assert!(relu.min_all().unwrap().to_scalar::<f32>().unwrap() >= 0.0);
}

#[test]
fn batch_norm_uses_batch_statistics_in_training_and_tracks_them() {
    let varmap = VarMap::new();
    let norm = Norm::new(
        NormKind::Batch,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        2,
    )
    .unwrap();
    let x = Tensor::new(
        &[
            [[[1f32, 3.0]], [[10.0, 30.0]]],
            [[[5.0, 7.0]], [[50.0, 70.0]]],
        ],
        &Device::Cpu,
    )
    .unwrap();
    norm.forward_t(&x, true).unwrap();
    let vars = varmap.data().lock().unwrap();
    let mean = vars["running_mean"].as_tensor().to_vec1::<f32>().unwrap();
    // Momentum 0.1 from 0: 0.1 x the batch mean (4 and 40).
    assert!(
        (mean[0] - 0.4).abs() < 1e-6 && (mean[1] - 4.0).abs() < 1e-5,
        "{mean:?}"
    );
    let var = vars["running_var"].as_tensor().to_vec1::<f32>().unwrap();
    // Unbiased variance of [1, 3, 5, 7] is 20/3: 0.9 + 0.1 x 20/3.
    assert!((var[0] - (0.9 + 2.0 / 3.0)).abs() < 1e-5, "{var:?}");
    assert_eq!(
        vars["num_batches_tracked"]
            .as_tensor()
            .to_scalar::<i64>()
            .unwrap(),
        1
    );
    drop(vars);
    // Evaluation normalises with the running statistics instead.
    let train = norm.forward_t(&x, true).unwrap();
    let eval = norm.forward_t(&x, false).unwrap();
    assert!(max_abs_diff(&train, &eval) > 0.1);
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

#[test]
fn a_convolution_before_an_instance_norm_leaves_out_the_bias_it_cancels() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let conv = Conv2d::new(vb.pp("conv"), 3, 4, 3, 1, 1, true).unwrap();
    let up = ConvTranspose2d::new(vb.pp("up"), 4, 2, 3, 2, 1, 1, true).unwrap();
    let mut rng = SeededRng::seed_from_u64(7);
    init_weights(&varmap, InitType::Normal, 0.5, &mut rng).unwrap();
    // A bias far from zero, as in a trained checkpoint.
    for (name, value) in [("conv.bias", 3.0), ("up.bias", -2.0)] {
        let var = &varmap.data().lock().unwrap()[name];
        var.set(&(var.ones_like().unwrap() * value).unwrap())
            .unwrap();
    }
    let var = |name: &str| varmap.data().lock().unwrap()[name].clone();
    let x =
        Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 6, 6), &Device::Cpu).unwrap()).unwrap();
    let probe = Tensor::randn(0f32, 1.0, (2, 2, 12, 12), &Device::Cpu).unwrap();
    let run = |norm: &Norm, cancel: bool| {
        let h = if cancel {
            conv.forward_before(&x.as_tensor().into(), norm).unwrap()
        } else {
            conv.forward_deferred(&x.as_tensor().into()).unwrap()
        };
        let h = norm.forward_act(&h, Activation::Relu, true).unwrap();
        let y = if cancel {
            up.forward_before(&(&h).into(), norm).unwrap()
        } else {
            up.forward_deferred(&(&h).into()).unwrap()
        };
        let y = norm.forward_act(&y, Activation::Identity, true).unwrap();
        let grads = (&y * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        (y, grads)
    };

    let instance = Norm::new(NormKind::Instance, vb.pp("norm"), 4).unwrap();
    let (with_bias, grads_with) = run(&instance, false);
    let (without, grads_without) = run(&instance, true);
    // The same output up to rounding; no gradient for the biases (exactly zero), the rest the
    // same as with them.
    assert!(max_abs_diff(&with_bias, &without) < 1e-5);
    for name in ["conv.bias", "up.bias"] {
        let exact_zero = grads_with.get(var(name).as_tensor()).unwrap();
        assert!(max_abs(exact_zero) < 1e-4);
        assert!(grads_without.get(var(name).as_tensor()).is_none(), "{name}");
    }
    for name in ["conv.weight", "up.weight"] {
        let (a, b) = (
            grads_with.get(var(name).as_tensor()),
            grads_without.get(var(name).as_tensor()),
        );
        assert!(max_abs_diff(a.unwrap(), b.unwrap()) < 1e-4, "{name}");
    }
    let (a, b) = (
        grads_with.get(x.as_tensor()),
        grads_without.get(x.as_tensor()),
    );
    assert!(max_abs_diff(a.unwrap(), b.unwrap()) < 1e-4);

    // Batch norm in evaluation (running statistics) does not cancel a bias: it is kept.
    let batch = Norm::new(NormKind::Batch, vb.pp("batch"), 4).unwrap();
    assert!(!batch.cancels_bias() && !Norm::Identity.cancels_bias());
    let h = conv.forward_before(&x.as_tensor().into(), &batch).unwrap();
    let grads = h.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(var("conv.bias").as_tensor()).is_some());
}

#[test]
fn dropout_is_reproducible_scaled_and_off_in_evaluation() {
    let x = Tensor::ones((1, 1, 100, 100), DType::F32, &Device::Cpu).unwrap();
    let a = Dropout::new(0.5, SharedRng::new(3))
        .forward_t(&x, true)
        .unwrap();
    let b = Dropout::new(0.5, SharedRng::new(3))
        .forward_t(&x, true)
        .unwrap();
    let values = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(values, b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert!(values.iter().all(|&v| v == 0.0 || v == 2.0));
    let kept = values.iter().filter(|&&v| v == 2.0).count() as f64 / values.len() as f64;
    assert!((kept - 0.5).abs() < 0.03, "kept {kept}");
    let eval = Dropout::new(0.5, SharedRng::new(3))
        .forward_t(&x, false)
        .unwrap();
    assert_eq!(
        eval.sum_all().unwrap().to_scalar::<f32>().unwrap(),
        10_000.0
    );
}

fn std_of(t: &Tensor) -> f64 {
    let v = t
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

#[test]
fn init_weights_follows_the_reference_rules_and_the_seed() {
    let build = |seed: u64, init: InitType| {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        cyclegan_layers::Conv2d::new(vb.pp("conv"), 64, 128, 3, 1, 1, true).unwrap();
        Norm::new(NormKind::Batch, vb.pp("bn"), 128).unwrap();
        init_weights(&varmap, init, 0.02, &mut SeededRng::seed_from_u64(seed)).unwrap();
        let vars = varmap.data().lock().unwrap();
        ["conv.weight", "conv.bias", "bn.weight", "bn.running_var"]
            .map(|k| vars[k].as_tensor().clone())
    };
    let [w, b, bn_w, bn_var] = build(1, InitType::Normal);
    assert!((std_of(&w) - 0.02).abs() < 0.001);
    assert_eq!(
        b.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        0.0
    );
    let bn_mean = bn_w.mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!((bn_mean - 1.0).abs() < 0.01 && (std_of(&bn_w) - 0.02).abs() < 0.005);
    assert_eq!(
        bn_var.to_vec1::<f32>().unwrap(),
        vec![1.0; 128],
        "running statistics untouched"
    );
    // Same seed, same weights; another seed, others.
    let w1 = build(1, InitType::Normal)[0]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(w1, w.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    let w2 = build(2, InitType::Normal)[0]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(w1, w2);
    // Kaiming: std sqrt(2 / fan_in), fan_in = 64 * 9.
    assert!((std_of(&build(1, InitType::Kaiming)[0]) - (2.0f64 / 576.0).sqrt()).abs() < 0.002);
    // Xavier: gain * sqrt(2 / (fan_in + fan_out)).
    let xavier = 0.02 * (2.0f64 / (576.0 + 1152.0)).sqrt();
    assert!((std_of(&build(1, InitType::Xavier)[0]) - xavier).abs() < xavier * 0.05);
    // Orthogonal: the 128 rows (length 576) are orthogonal with norm gain.
    let o = build(1, InitType::Orthogonal)[0]
        .reshape((128, 576))
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let gram = o.matmul(&o.t().unwrap()).unwrap();
    let eye = (Tensor::eye(128, DType::F64, &Device::Cpu).unwrap() * 0.0004).unwrap();
    let err = (gram - eye)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(err < 1e-6, "orthogonality error {err}");
}
