//! Three full CycleGAN iterations (generator step, discriminator step, both Adam(0.5, 0.999),
//! pool disabled) from the same initial weights and images as PyTorch end with every parameter
//! and buffer within 1e-4 of PyTorch's (`tests/fixtures/make_fixtures.py`, torch 2.15).
//!
//! Both sides run in float64: Adam turns the rounding noise of zero-true-gradient parameters
//! (biases before an affine-free instance norm) into steps of about the learning rate, so an
//! f32 comparison would measure rounding, not the algorithm. The losses of each iteration are
//! compared too (1e-6 relative).
//!
//! The tests run on `CYCLEGAN_TEST_DEVICE` (CPU by default, `cuda` on a GPU machine); the
//! fixtures are found through `CARGO_MANIFEST_DIR` at run time, so a test binary built elsewhere
//! runs too.

use candle_core::{DType, Tensor};
use cyclegan_layers::device::test_device;
use cyclegan_train::model::{CycleGan, ModelConfig, NetworkName};
use std::collections::HashMap;

fn run(name: &str) {
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    let path = format!("{root}/tests/fixtures/{name}.safetensors");
    let device = test_device();
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().clone().unwrap();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &device).unwrap();
    let config: ModelConfig = serde_json::from_str(&meta["model"]).unwrap();
    let expected_losses: Vec<HashMap<String, f64>> = serde_json::from_str(&meta["losses"]).unwrap();
    let steps: usize = meta["steps"].parse().unwrap();

    let mut model = CycleGan::new(config, &device, DType::F64, 0).unwrap();
    let part = |prefix: &str| -> HashMap<String, Tensor> {
        tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    };
    for (net, state) in NetworkName::ALL.iter().zip([
        model.varmap(NetworkName::GA),
        model.varmap(NetworkName::GB),
        model.varmap(NetworkName::DA),
        model.varmap(NetworkName::DB),
    ]) {
        let init = part(&format!("init.{net}."));
        let vars = state.data().lock().unwrap();
        assert_eq!(
            vars.len(),
            init.len(),
            "{name}: {net} has other parameters than the fixture"
        );
        for (k, v) in vars.iter() {
            v.set(&init[k]).unwrap();
        }
    }

    for (step, expected) in expected_losses.iter().enumerate().take(steps) {
        let a = &tensors[&format!("step{step}.A")];
        let b = &tensors[&format!("step{step}.B")];
        let (losses, _) = model.train_step(a, b).unwrap();
        for (loss_name, value) in losses.named() {
            let want = expected[loss_name];
            assert!(
                (value - want).abs() <= 1e-6 * want.abs().max(1e-3),
                "{name}: step {step} loss {loss_name} is {value}, PyTorch {want}"
            );
        }
    }

    for (net, state) in model.state_dicts() {
        let expected = part(&format!("final.{net}."));
        for (key, want) in &expected {
            let ours = &state[key];
            let diff = (ours.to_dtype(DType::F64).unwrap() - want.to_dtype(DType::F64).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(
                diff <= 1e-4,
                "{name}: {net}.{key} differs from PyTorch by {diff:e} after {steps} steps"
            );
        }
    }
}

#[test]
fn three_lsgan_steps_with_identity_match_pytorch() {
    run("resnet_lsgan");
}

#[test]
fn three_vanilla_steps_without_identity_match_pytorch() {
    run("resnet_vanilla_no_identity");
}

#[test]
fn three_steps_with_batch_norm_match_pytorch() {
    run("resnet_batch_norm");
}

#[test]
fn three_wgan_steps_with_unet_and_pixel_d_match_pytorch() {
    run("unet_wgangp");
}
