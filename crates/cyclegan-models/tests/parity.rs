//! Forward and gradient parity of every network variant against PyTorch fixtures
//! (`tests/fixtures/make_fixtures.py`, torch 2.15).
//!
//! Tolerances (f32 on both sides):
//! - outputs: max absolute difference <= 1e-4;
//! - gradients (input and every parameter): max absolute difference <= 1e-3 x the largest
//!   absolute value of the reference tensor;
//! - biases that feed an affine-free instance norm have a true gradient of zero (the norm
//!   removes any per-channel shift), so both sides hold rounding noise: they are compared by an
//!   absolute bound, 1e-3 x the largest gradient of the same layer's weight;
//! - batch-norm running statistics after a training forward: <= 1e-5 absolute.
//!
//! The tests run on `CYCLEGAN_TEST_DEVICE` (CPU by default; `cuda` on a GPU machine, where TF32
//! is turned off so that both sides compute in full f32). The fixtures are found through
//! `CARGO_MANIFEST_DIR` at run time (cargo sets it), so a test binary built elsewhere runs too.

use candle_core::{backprop::GradStore, DType, ModuleT, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cyclegan_layers::{device::test_device, SharedRng};
use cyclegan_models::{is_buffer, Discriminator, DiscriminatorConfig, Generator, GeneratorConfig};
use std::collections::HashMap;
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("tests/fixtures")
}

struct Fixture {
    tensors: HashMap<String, Tensor>,
    metadata: HashMap<String, String>,
}

fn load(name: &str) -> Fixture {
    let path = fixture_dir().join(format!("{name}.safetensors"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &test_device()).unwrap();
    Fixture { tensors, metadata }
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    max_abs(&(a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap()).unwrap())
}

/// Builds the network of a fixture with its parameters, runs it, and checks everything.
fn check(name: &str) {
    cyclegan_layers::ops::set_cuda_tf32(false);
    let fx = load(name);
    let train = fx.metadata["train"] == "1";
    let config = &fx.metadata["config"];
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &test_device());
    let net: Box<dyn ModuleT> = match fx.metadata["kind"].as_str() {
        "generator" => {
            let config: GeneratorConfig = serde_json::from_str(config).unwrap();
            Box::new(Generator::new(vb, &config, &SharedRng::new(0)).unwrap())
        }
        _ => {
            let config: DiscriminatorConfig = serde_json::from_str(config).unwrap();
            Box::new(Discriminator::new(vb, &config).unwrap())
        }
    };

    // The parameter names and shapes are exactly the reference's state_dict.
    let params: HashMap<&str, &Tensor> = fx
        .tensors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|k| (k, v)))
        .collect();
    let vars: HashMap<String, Var> = varmap.data().lock().unwrap().clone();
    let mut ours: Vec<&String> = vars.keys().collect();
    let mut theirs: Vec<&&str> = params.keys().collect();
    ours.sort();
    theirs.sort();
    assert_eq!(
        ours, theirs,
        "{name}: parameter names differ from the reference state_dict"
    );
    for (key, value) in &params {
        assert_eq!(vars[*key].dims(), value.dims(), "{name}: shape of {key}");
        vars[*key].set(value).unwrap();
    }

    let input = Var::from_tensor(&fx.tensors["input"]).unwrap();
    let output = net.forward_t(input.as_tensor(), train).unwrap();
    let diff = max_diff(&output, &fx.tensors["output"]);
    assert!(
        diff <= 1e-4,
        "{name}: output differs from PyTorch by {diff:e} (max abs, bound 1e-4)"
    );

    let loss = (&output * &fx.tensors["probe"]).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    check_grad(
        name,
        "input",
        &grads,
        input.as_tensor(),
        &fx.tensors["grad.input"],
        None,
    );
    for (key, var) in &vars {
        if is_buffer(key) {
            continue;
        }
        let reference = &fx.tensors[&format!("grad.{key}")];
        let weight_scale = key
            .strip_suffix(".bias")
            .and_then(|layer| fx.tensors.get(&format!("grad.{layer}.weight")))
            .map(max_abs);
        check_grad(name, key, &grads, var.as_tensor(), reference, weight_scale);
    }

    for (key, expected) in fx
        .tensors
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("after.").map(|k| (k, v)))
    {
        let diff = max_diff(vars[key].as_tensor(), expected);
        assert!(
            diff <= 1e-5,
            "{name}: buffer {key} after the forward differs by {diff:e}"
        );
    }
}

fn check_grad(
    name: &str,
    what: &str,
    grads: &GradStore,
    x: &Tensor,
    reference: &Tensor,
    weight_scale: Option<f32>,
) {
    let scale = max_abs(reference);
    // A bias whose reference gradient is rounding noise next to its weight's: true gradient
    // zero (a convolution's bias before an instance norm, which cancels it).
    let noise_scale = weight_scale.filter(|&w| scale < 1e-5 * w);
    let Some(ours) = grads.get(x) else {
        // The networks leave such a bias out of the graph: no gradient at all.
        assert!(
            noise_scale.is_some(),
            "{name}: no gradient for {what} (reference max {scale:e})"
        );
        return;
    };
    let diff = max_diff(ours, reference);
    let bound = 1e-3 * noise_scale.unwrap_or(scale);
    assert!(
        diff <= bound,
        "{name}: gradient of {what} differs from PyTorch by {diff:e} (bound {bound:e}, reference max {scale:e})"
    );
}

macro_rules! parity_tests {
    ($($test:ident => $fixture:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($fixture);
            }
        )*
    };
}

parity_tests! {
    resnet9_instance_matches_pytorch => "resnet9_instance",
    resnet6_instance_matches_pytorch => "resnet6_instance",
    resnet6_batch_norm_training_matches_pytorch => "resnet6_batch_train",
    resnet6_batch_norm_eval_matches_pytorch => "resnet6_batch_eval",
    resnet6_no_norm_matches_pytorch => "resnet6_none",
    resnet6_affine_instance_norm_matches_pytorch => "resnet6_instance_affine",
    resnet6_dropout_eval_matches_pytorch => "resnet6_dropout_eval",
    resnet6_replicate_padding_matches_pytorch => "resnet6_replicate",
    resnet6_zero_padding_matches_pytorch => "resnet6_zero",
    resnet6_grayscale_matches_pytorch => "resnet6_gray",
    resnet2_batch_norm_dropout_eval_matches_pytorch => "resnet2_batch_dropout_eval",
    unet128_instance_matches_pytorch => "unet128_instance",
    unet128_batch_norm_training_matches_pytorch => "unet128_batch_train",
    unet128_dropout_eval_matches_pytorch => "unet128_dropout_eval",
    unet128_no_norm_matches_pytorch => "unet128_none",
    unet256_grayscale_matches_pytorch => "unet256_gray",
    basic_d_instance_matches_pytorch => "basic_instance",
    basic_d_batch_norm_training_matches_pytorch => "basic_batch_train",
    basic_d_batch_norm_eval_matches_pytorch => "basic_batch_eval",
    basic_d_no_norm_matches_pytorch => "basic_none",
    basic_d_grayscale_matches_pytorch => "basic_gray",
    n_layers_2_d_matches_pytorch => "nlayers2_instance",
    n_layers_4_d_matches_pytorch => "nlayers4_instance",
    pixel_d_instance_matches_pytorch => "pixel_instance",
    pixel_d_batch_norm_training_matches_pytorch => "pixel_batch_train",
    pixel_d_no_norm_matches_pytorch => "pixel_none",
}
