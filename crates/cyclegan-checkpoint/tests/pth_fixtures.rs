//! `.pth` files written by PyTorch (`tests/fixtures/make_fixtures.py`, torch 2.15): both
//! `torch.save` formats, old-PyTorch quirks, every architecture family. Each must be read
//! without Python, detected as the architecture torch built, and the network built from it
//! must compute torch's output within 1e-4.
//!
//! The writer's output was checked with torch 2.15 by hand, for every case: each fixture
//! converted to safetensors and back to `.pth` by `cargo xtask convert-checkpoint`, then the
//! fixture script's `--check-rust` mode (`torch.load(weights_only=True)`, the reference's load
//! steps, `load_state_dict(strict=True)`, forward) gave the expected output exactly. Here the
//! writer is checked by reading its files back.

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use cyclegan_checkpoint::pth::{pth_bytes, read_pth, read_pth_bytes, write_pth, PthFormat};
use cyclegan_checkpoint::{
    convert_checkpoint, detect_architecture, load_network, prepare_state_dict, CheckpointError,
    ConvertOptions, FileFormat, OutputFormat, CONFIG_KEY, SOURCE_KEY,
};
use cyclegan_layers::SharedRng;
use cyclegan_models::{Discriminator, Generator, NetworkConfig};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

struct Case {
    name: String,
    file: PathBuf,
    format: PthFormat,
    config: NetworkConfig,
    quirks: Vec<String>,
}

fn cases() -> Vec<Case> {
    let json: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(fixture("cases.json")).unwrap()).unwrap();
    json.into_iter()
        .map(|(name, c)| {
            let mut config = c["config"].clone();
            config["kind"] = c["kind"].clone();
            Case {
                file: fixture(c["file"].as_str().unwrap()),
                format: match c["format"].as_str().unwrap() {
                    "zip" => PthFormat::Zip,
                    _ => PthFormat::Legacy,
                },
                config: serde_json::from_value(config).unwrap(),
                quirks: serde_json::from_value(c["quirks"].clone()).unwrap(),
                name,
            }
        })
        .collect()
}

fn expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture("expected.safetensors"), &Device::Cpu).unwrap()
}

fn forward(config: &NetworkConfig, tensors: HashMap<String, Tensor>, x: &Tensor) -> Tensor {
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    match config {
        NetworkConfig::Generator(g) => Generator::new(vb, g, &SharedRng::new(0))
            .unwrap()
            .forward_t(x, false)
            .unwrap(),
        NetworkConfig::Discriminator(d) => Discriminator::new(vb, d)
            .unwrap()
            .forward_t(x, false)
            .unwrap(),
    }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn assert_matches_pytorch(case: &str, config: &NetworkConfig, tensors: HashMap<String, Tensor>) {
    let expected = expected();
    let x = &expected[&format!("{case}.input")];
    let y = forward(config, tensors, x);
    let diff = max_diff(&y, &expected[&format!("{case}.output")]);
    assert!(
        diff <= 1e-4,
        "{case}: output differs from PyTorch's by {diff:e} (tolerance 1e-4)"
    );
}

#[test]
fn torch_written_checkpoints_are_detected_and_compute_pytorchs_output() {
    let cases = cases();
    assert!(cases.len() >= 10);
    for case in cases {
        let pth = read_pth(&case.file).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(pth.format, case.format, "{}: format", case.name);
        let wrapped = case.quirks.iter().any(|q| q == "wrapped");
        assert_eq!(
            pth.found_under.as_deref(),
            wrapped.then_some("state_dict"),
            "{}",
            case.name
        );
        let prepared = prepare_state_dict(pth.tensors, &ConvertOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            prepared.config, case.config,
            "{}: detected config",
            case.name
        );
        if case.quirks.iter().any(|q| q == "instance_stats") {
            assert!(
                prepared.notes.iter().any(|n| n.contains("InstanceNorm")),
                "{}: {:?}",
                case.name,
                prepared.notes
            );
            assert!(prepared.tensors.iter().all(|(k, _)| !k.contains("running")));
        }
        if case.quirks.iter().any(|q| q == "module_prefix") {
            assert!(prepared
                .tensors
                .iter()
                .all(|(k, _)| k.starts_with("model.")));
        }
        assert_matches_pytorch(
            &case.name,
            &prepared.config,
            prepared.tensors.into_iter().collect(),
        );
    }
}

#[test]
fn load_network_reads_a_pth_file_by_its_content_whatever_its_name() {
    let dir = tempfile::tempdir().unwrap();
    for (case, renamed) in [
        ("resnet6_legacy", "weights.bin"),
        ("unet128_zip", "latest_net_G.safetensors"),
    ] {
        let path = dir.path().join(renamed);
        std::fs::copy(fixture(&format!("{case}.pth")), &path).unwrap();
        let net = load_network(&path, &Device::Cpu, DType::F32).unwrap();
        let expected_config = cases().into_iter().find(|c| c.name == case).unwrap().config;
        assert_eq!(net.config, expected_config);
        assert_matches_pytorch(case, &net.config, net.tensors);
    }
}

#[test]
fn a_safetensors_file_without_a_description_has_its_architecture_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.safetensors");
    let pth = read_pth(fixture("unet128_batch_legacy.pth")).unwrap();
    candle_core::safetensors::save(&pth.tensors.into_iter().collect(), &path).unwrap();
    let net = load_network(&path, &Device::Cpu, DType::F32).unwrap();
    let expected = cases()
        .into_iter()
        .find(|c| c.name == "unet128_batch_legacy")
        .unwrap();
    assert_eq!(net.config, expected.config);
    assert_matches_pytorch("unet128_batch_legacy", &net.config, net.tensors);
}

#[test]
fn a_safetensors_description_that_does_not_fit_its_tensors_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mislabelled.safetensors");
    let case = cases()
        .into_iter()
        .find(|c| c.name == "unet128_batch_legacy")
        .unwrap();
    let pth = read_pth(&case.file).unwrap();
    // A U-Net's tensors under a ResNet's description.
    let claimed = NetworkConfig::Generator(cyclegan_models::GeneratorConfig::default());
    let metadata = HashMap::from([(
        CONFIG_KEY.to_string(),
        serde_json::to_string(&claimed).unwrap(),
    )]);
    let tensors: HashMap<String, Tensor> = pth.tensors.into_iter().collect();
    let bytes = cyclegan_checkpoint::serialize_safetensors(&tensors, metadata).unwrap();
    std::fs::write(&path, bytes).unwrap();
    let out = dir.path().join("out.safetensors");
    let err = convert_checkpoint(&path, &out, &ConvertOptions::default()).unwrap_err();
    assert!(matches!(err, CheckpointError::Architecture { .. }), "{err}");
    assert!(err.to_string().contains("mislabelled.safetensors"), "{err}");
    assert!(!out.exists());
    // Loading it is refused the same way, before any network is built on it.
    let err = load_network(&path, &Device::Cpu, DType::F32).unwrap_err();
    assert!(matches!(err, CheckpointError::Architecture { .. }), "{err}");
    assert!(err.to_string().contains("mislabelled.safetensors"), "{err}");
}

#[test]
fn integer_weights_are_refused_naming_them() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "unet128_batch_legacy")
        .unwrap();
    let mut tensors = read_pth(&case.file).unwrap().tensors;
    let (key, t) = tensors
        .iter_mut()
        .find(|(k, _)| k.ends_with(".weight"))
        .unwrap();
    *t = t.to_dtype(DType::I64).unwrap();
    let key = key.clone();
    let err = prepare_state_dict(tensors, &ConvertOptions::default()).unwrap_err();
    assert!(err.to_string().contains(&format!("{key} I64")), "{err}");
}

#[test]
fn odd_tensors_are_read_exactly_in_both_formats() {
    let expected = expected();
    for (file, format) in [
        ("tensors_zip.pth", PthFormat::Zip),
        ("tensors_legacy.pth", PthFormat::Legacy),
    ] {
        let pth = read_pth(fixture(file)).unwrap();
        assert_eq!(pth.format, format);
        assert_eq!(pth.tensors.len(), 14, "{file}");
        for (name, t) in &pth.tensors {
            let want = &expected[&format!("tensors.{name}")];
            assert_eq!(t.dims(), want.dims(), "{file}: {name} shape");
            assert_eq!(t.dtype(), want.dtype(), "{file}: {name} dtype");
            let same = t
                .flatten_all()
                .unwrap()
                .eq(&want.flatten_all().unwrap())
                .unwrap()
                .to_dtype(DType::U32)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<u32>()
                .unwrap() as usize;
            assert_eq!(same, t.elem_count(), "{file}: {name} values differ");
        }
    }
}

#[test]
fn full_size_reference_keys_are_detected() {
    // The state_dict keys and shapes PyTorch gives the full-size reference networks.
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cyclegan-models/tests/fixtures/keys.json");
    let all: serde_json::Map<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (name, entry) in all {
        let shapes: Vec<(String, Vec<usize>)> =
            serde_json::from_value(entry["state_dict"].clone()).unwrap();
        let mut config = entry["config"].clone();
        config["kind"] = entry["kind"].clone();
        let expected: NetworkConfig = serde_json::from_value(config).unwrap();
        let detected = detect_architecture(&shapes.into_iter().collect::<HashMap<_, _>>())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(detected, expected, "{name}");
    }
}

#[test]
fn conversion_round_trips_through_safetensors_and_back_to_pth() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("g.safetensors");
    let back = dir.path().join("g_back.pth");
    let case = "resnet9_legacy_old_keys";
    let report = convert_checkpoint(
        fixture(&format!("{case}.pth")),
        &st,
        &ConvertOptions::default(),
    )
    .unwrap();
    assert_eq!(report.input_format, FileFormat::PthLegacy);
    assert_eq!(report.output_format, OutputFormat::Safetensors);
    assert_eq!(report.tensors, 48);
    let text = report.to_string();
    assert!(text.contains("module."), "{text}");
    assert!(text.contains("InstanceNorm"), "{text}");

    // The safetensors file records the detected config and where it came from.
    let bytes = std::fs::read(&st).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap();
    let config: NetworkConfig = serde_json::from_str(&meta[CONFIG_KEY]).unwrap();
    assert_eq!(config, report.config);
    assert_eq!(meta[SOURCE_KEY], format!("{case}.pth"));

    let report_back = convert_checkpoint(&st, &back, &ConvertOptions::default()).unwrap();
    assert_eq!(report_back.output_format, OutputFormat::Pth);
    let pth = read_pth(&back).unwrap();
    assert_eq!(pth.format, PthFormat::Zip);
    let loaded = load_network(&st, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(pth.tensors.len(), loaded.tensors.len());
    for (k, t) in &pth.tensors {
        assert_eq!(max_diff(t, &loaded.tensors[k]), 0.0, "{k}");
    }
    let net = load_network(&back, &Device::Cpu, DType::F32).unwrap();
    assert_eq!(net.config, config);
    assert_matches_pytorch(case, &net.config, net.tensors);
}

#[test]
fn written_pth_keeps_order_dtypes_and_batch_norm_buffers() {
    let pth = read_pth(fixture("basic_batch_zip.pth")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.pth");
    write_pth(&out, &pth.tensors).unwrap();
    let again = read_pth(&out).unwrap();
    let names = |v: &[(String, Tensor)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&again.tensors), names(&pth.tensors));
    for ((k, a), (_, b)) in pth.tensors.iter().zip(&again.tensors) {
        assert_eq!(a.dtype(), b.dtype(), "{k}");
        assert_eq!(a.dims(), b.dims(), "{k}");
        if a.dtype() == DType::I64 {
            assert_eq!(a.to_scalar::<i64>().unwrap(), b.to_scalar::<i64>().unwrap());
        } else {
            assert_eq!(max_diff(a, b), 0.0, "{k}");
        }
    }
    // torch's archive layout: data.pkl first, storages aligned to 64 bytes, version last.
    let bytes = pth_bytes(&pth.tensors).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes)).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert_eq!(names.first().unwrap(), "archive/data.pkl");
    assert_eq!(names.last().unwrap(), "archive/version");
    let data0 = zip.by_name("archive/data/0").unwrap();
    assert_eq!(data0.data_start().unwrap() % 64, 0);
}

#[test]
fn truncated_files_are_errors_at_every_cut() {
    let dir = tempfile::tempdir().unwrap();
    for case in ["resnet6_legacy", "resnet9_zip"] {
        let bytes = std::fs::read(fixture(&format!("{case}.pth"))).unwrap();
        let cuts: Vec<usize> = (1..40)
            .map(|i| bytes.len() * i / 40)
            .chain([1, 3, 20, bytes.len() - 1])
            .collect();
        for cut in cuts {
            let path = dir.path().join("cut.pth");
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let err = load_network(&path, &Device::Cpu, DType::F32)
                .err()
                .unwrap_or_else(|| panic!("{case} cut at {cut} of {} loaded", bytes.len()));
            assert!(
                matches!(
                    err,
                    CheckpointError::Truncated { .. }
                        | CheckpointError::NotACheckpoint { .. }
                        | CheckpointError::InvalidPth { .. }
                ),
                "{case} cut at {cut}: {err}"
            );
        }
    }
    // A legacy file cut inside its storages names the storage and the sizes.
    let bytes = std::fs::read(fixture("resnet6_legacy.pth")).unwrap();
    let path = dir.path().join("cut.pth");
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let msg = read_pth(&path).unwrap_err().to_string();
    assert!(msg.contains("is truncated: storage"), "{msg}");
}

/// Pickles that nest a byte a level, or whose references copy each other, were a stack
/// overflow and an allocation abort; they are errors naming the file.
#[test]
fn pickle_bombs_are_errors_naming_the_file() {
    // A legacy file's magic number, protocol version and system information, then the object.
    let mut head = b"\x80\x02\x8a\x0a".to_vec();
    head.extend_from_slice(&0x1950a86a20f9469cfc6c_u128.to_le_bytes()[..10]);
    head.extend_from_slice(b".\x80\x02M\xe9\x03.\x80\x02}.\x80\x02]");
    let mut deep = head.clone();
    deep.extend(std::iter::repeat_n(0x85, 100_000));
    let mut copies = head;
    for _ in 0..64 {
        copies.extend_from_slice(b"2\x86");
    }
    for (bytes, expected) in [
        (deep, "nested more than 1000 deep"),
        (copies, "copy more than 64 MiB"),
    ] {
        let msg = read_pth_bytes(&bytes, Path::new("bomb.pth"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("bomb.pth is not a readable PyTorch checkpoint: the state_dict: ")
                && msg.contains(expected),
            "{msg}"
        );
    }
}

/// `tensors_zip.pth` rewritten with its `data.pkl` as a zip64 record whose extra field claims
/// `claimed` bytes (the data stays as it was).
fn zip_claiming_a_size(claimed: u64) -> Vec<u8> {
    use std::io::{Read, Write};
    let src = std::fs::read(fixture("tensors_zip.pth")).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&src)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut pickle_len = 0;
    for i in 0..archive.len() {
        let mut record = archive.by_index(i).unwrap();
        let name = record.name().unwrap().to_string();
        let mut data = Vec::new();
        record.read_to_end(&mut data).unwrap();
        let zip64 = name.ends_with("data.pkl");
        if zip64 {
            pickle_len = data.len() as u64;
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(zip64);
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    let mut bytes = out.finish().unwrap().into_inner();
    // The zip64 extra field (id 1, 16 bytes: uncompressed then compressed size), in the local
    // header and in the central directory.
    let mut field = vec![1, 0, 16, 0];
    field.extend_from_slice(&pickle_len.to_le_bytes());
    field.extend_from_slice(&pickle_len.to_le_bytes());
    let at: Vec<usize> = (0..bytes.len() - field.len())
        .filter(|&i| bytes[i..].starts_with(&field))
        .collect();
    assert_eq!(at.len(), 2);
    for i in at {
        bytes[i + 4..i + 12].copy_from_slice(&claimed.to_le_bytes());
    }
    bytes
}

#[test]
fn a_zip_record_claiming_a_huge_size_is_not_allocated() {
    // The claim was allocated before reading: for 4 EiB, an allocation abort. The stored data
    // is all there, so the file reads.
    let bytes = zip_claiming_a_size(1 << 62);
    let sd = read_pth_bytes(&bytes, Path::new("huge.pth")).unwrap();
    assert_eq!(sd.tensors.len(), 14);
}

/// A zip bomb: `tensors_zip.pth` whose `data.pkl` is a deflated record of 96 MiB of zeros
/// (about 100 KB in the file) is refused before it is inflated; the real records deflated, as
/// an archiver would recompress a checkpoint, still read.
#[test]
fn a_deflated_record_that_expands_a_thousandfold_is_refused() {
    use std::io::{Read, Write};
    let src = std::fs::read(fixture("tensors_zip.pth")).unwrap();
    let rezip = |bomb: bool| {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(&src)).unwrap();
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for i in 0..archive.len() {
            let mut record = archive.by_index(i).unwrap();
            let name = record.name().unwrap().to_string();
            let mut data = Vec::new();
            record.read_to_end(&mut data).unwrap();
            if bomb && name.ends_with("data.pkl") {
                data = vec![0u8; 96 << 20];
            }
            out.start_file(name, deflated).unwrap();
            out.write_all(&data).unwrap();
        }
        out.finish().unwrap().into_inner()
    };
    let sd = read_pth_bytes(&rezip(false), Path::new("recompressed.pth")).unwrap();
    assert_eq!(sd.tensors.len(), 14);
    let bomb = rezip(true);
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let msg = read_pth_bytes(&bomb, Path::new("bomb.pth"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bomb.pth") && msg.contains("data.pkl expands") && msg.contains("96 MiB"),
        "{msg}"
    );
}

#[test]
fn files_that_are_not_checkpoints_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("latest_net_G.pth");
    std::fs::write(&html, "<html><body>404 Not Found</body></html>").unwrap();
    let msg = load_network(&html, &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("is not a checkpoint"), "{msg}");
    assert!(msg.contains("<html><body>404"), "{msg}");
    assert!(msg.contains("expected a safetensors file"), "{msg}");

    let msg = read_pth(fixture("whole_module.pth"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cyclegan_reference.PixelDiscriminator"),
        "{msg}"
    );
    assert!(msg.contains("state_dict"), "{msg}");

    // A zip archive that is not a checkpoint.
    let other = dir.path().join("other.pth");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&other).unwrap());
    zip.start_file("readme.txt", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.finish().unwrap();
    let msg = read_pth(&other).unwrap_err().to_string();
    assert!(
        msg.contains("without data.pkl (it holds readme.txt)"),
        "{msg}"
    );
}

#[test]
fn an_unknown_architecture_lists_what_was_found_and_expected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("classifier.pth");
    let fc = Tensor::zeros((10, 20), DType::F32, &Device::Cpu).unwrap();
    write_pth(&path, &[("fc.weight".to_string(), fc)]).unwrap();
    let err = convert_checkpoint(
        &path,
        dir.path().join("out.safetensors"),
        &ConvertOptions::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CheckpointError::Architecture { .. }), "{msg}");
    assert!(msg.contains("classifier.pth"), "{msg}");
    assert!(msg.contains("found: fc.weight [10, 20]"), "{msg}");
    assert!(msg.contains("expected: a reference generator"), "{msg}");
    assert!(!dir.path().join("out.safetensors").exists());

    // An override that does not fit the file is reported with the keys that differ.
    let options = ConvertOptions {
        net_g: Some("resnet_9blocks".parse().unwrap()),
        ..Default::default()
    };
    let msg = convert_checkpoint(
        fixture("resnet6_legacy.pth"),
        dir.path().join("out.safetensors"),
        &options,
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("missing keys (model.16.conv_block.1.bias"),
        "{msg}"
    );
    assert!(msg.contains("resnet_9blocks generator, ngf 4"), "{msg}");

    let msg = convert_checkpoint(
        fixture("resnet6_legacy.pth"),
        dir.path().join("out.onnx"),
        &ConvertOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("use a .safetensors or a .pth file name"),
        "{msg}"
    );
}
