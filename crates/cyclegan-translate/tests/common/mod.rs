//! Helpers shared by the integration tests: small generator checkpoints and test images.
#![allow(dead_code)] // Each test file uses some of them.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use cyclegan_checkpoint::save_network;
use cyclegan_layers::SharedRng;
use cyclegan_models::{Generator, GeneratorConfig, NetworkConfig};
use std::collections::HashMap;
use std::path::Path;

pub fn generator_config(arch: &str) -> GeneratorConfig {
    GeneratorConfig {
        arch: arch.parse().unwrap(),
        ngf: 4,
        ..GeneratorConfig::default()
    }
}

/// Writes a freshly initialised generator checkpoint and returns its tensors.
pub fn write_generator(path: &Path, config: GeneratorConfig) -> HashMap<String, Tensor> {
    write_generator_seeded(path, config, 0)
}

/// [`write_generator`] with the initialisation drawn from `seed`.
pub fn write_generator_seeded(
    path: &Path,
    config: GeneratorConfig,
    seed: u64,
) -> HashMap<String, Tensor> {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let varmap = VarMap::new();
    Generator::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
        &SharedRng::new(seed),
    )
    .unwrap();
    let tensors = varmap_tensors(&varmap);
    save_network(path, &tensors, &NetworkConfig::Generator(config)).unwrap();
    tensors
}

/// The tensors of `varmap`, by name.
pub fn varmap_tensors(varmap: &VarMap) -> HashMap<String, Tensor> {
    varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect()
}

pub fn write_image(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8])
    });
    img.save(path).unwrap();
}
