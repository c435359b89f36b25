//! The full-size networks have exactly the reference's state_dict keys, shapes and parameter
//! counts (`tests/fixtures/keys.json`, written by `make_fixtures.py` from PyTorch modules).

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use cyclegan_layers::SharedRng;
use cyclegan_models::{
    parameter_count, Discriminator, DiscriminatorConfig, Generator, GeneratorConfig,
};
use serde_json::Value;

#[test]
fn full_size_networks_have_the_reference_keys_shapes_and_parameter_counts() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys.json");
    let all: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (name, entry) in &all {
        let varmap = VarMap::new();
        // Zero-initialised parameters: only names and shapes matter here.
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let config = entry["config"].clone();
        match entry["kind"].as_str().unwrap() {
            "generator" => {
                let config: GeneratorConfig = serde_json::from_value(config).unwrap();
                Generator::new(vb, &config, &SharedRng::new(0)).unwrap();
            }
            _ => {
                let config: DiscriminatorConfig = serde_json::from_value(config).unwrap();
                Discriminator::new(vb, &config).unwrap();
            }
        }
        let mut ours: Vec<(String, Vec<usize>)> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect();
        let mut theirs: Vec<(String, Vec<usize>)> =
            serde_json::from_value(entry["state_dict"].clone()).unwrap();
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "{name}: state_dict keys or shapes differ");
        let expected = entry["parameters"].as_u64().unwrap() as usize;
        assert_eq!(
            parameter_count(&varmap),
            expected,
            "{name}: parameter count"
        );
    }
}

#[test]
fn reference_parameter_counts() {
    let count = |g: GeneratorConfig| {
        let varmap = VarMap::new();
        Generator::new(
            VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
            &g,
            &SharedRng::new(0),
        )
        .unwrap();
        parameter_count(&varmap)
    };
    assert_eq!(count(GeneratorConfig::default()), 11_378_179);
    let six = GeneratorConfig {
        arch: "resnet_6blocks".parse().unwrap(),
        ..Default::default()
    };
    assert_eq!(count(six), 7_837_699);
    let varmap = VarMap::new();
    Discriminator::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &DiscriminatorConfig::default(),
    )
    .unwrap();
    assert_eq!(parameter_count(&varmap), 2_764_737);
}

/// The reference's option names parse with `?` in a function returning any error (the parse
/// errors are `Error`s), and a wrong one says what is accepted.
#[test]
fn option_names_parse_with_the_reference_spellings() -> Result<(), Box<dyn std::error::Error>> {
    use cyclegan_models::{DiscriminatorArch, GeneratorArch, InitType, NormKind, PaddingType};
    assert_eq!(
        "unet_256".parse::<GeneratorArch>()?,
        GeneratorArch::Unet { downs: 8 }
    );
    assert_eq!(
        "n_layers_4".parse::<DiscriminatorArch>()?,
        DiscriminatorArch::NLayers(4)
    );
    assert_eq!("instance".parse::<NormKind>()?, NormKind::Instance);
    assert_eq!("reflect".parse::<PaddingType>()?, PaddingType::Reflect);
    assert_eq!("xavier".parse::<InitType>()?, InitType::Xavier);
    let wrong: Box<dyn std::error::Error> = "resnet_xblocks"
        .parse::<GeneratorArch>()
        .unwrap_err()
        .into();
    assert!(wrong.to_string().contains("resnet_<N>blocks"), "{wrong}");
    Ok(())
}
