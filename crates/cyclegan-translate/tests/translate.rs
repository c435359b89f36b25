//! Translation end to end: a generator checkpoint, a folder of images of assorted sizes, the
//! result page; and the errors a user meets with the wrong file.

mod common;

use candle_core::{DType, Device, ModuleT, Tensor};
use candle_nn::VarBuilder;
use common::{generator_config, varmap_tensors, write_generator, write_image};
use cyclegan_checkpoint::save_network;
use cyclegan_layers::SharedRng;
use cyclegan_models::{Discriminator, DiscriminatorConfig, Generator, NetworkConfig};
use cyclegan_translate::{
    translate_files, Resize, TranslateError, TranslateOptions, TranslateSummary, Translator,
};
use std::path::Path;

/// Translates the folder `input` into `output` at the images' own sizes, without a progress bar.
fn translate_folder(
    translator: &Translator,
    input: &Path,
    output: &Path,
) -> Result<TranslateSummary, TranslateError> {
    translate_files(
        translator,
        &TranslateOptions {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
            resize: Resize::Native,
            progress: false,
        },
    )
}

#[test]
fn translates_a_folder_at_native_sizes_and_writes_the_page() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("g.safetensors");
    write_generator(&ckpt, generator_config("resnet_2blocks"));
    let input = tmp.path().join("in");
    write_image(&input.join("a.png"), 30, 21);
    write_image(&input.join("sub/b.jpg"), 16, 16);
    // Smaller than a ResNet's residual blocks can pad after its two halvings: mirrored out.
    write_image(&input.join("tiny.png"), 1, 3);
    std::fs::write(input.join("notes.txt"), "not an image").unwrap();
    let output = tmp.path().join("out");
    let translator = Translator::load(&ckpt, &Device::Cpu).unwrap();
    let summary = translate_folder(&translator, &input, &output).unwrap();
    assert_eq!(summary.translated.len(), 3);
    for (stem, (w, h)) in [("a", (30, 21)), ("b", (16, 16)), ("tiny", (1, 3))] {
        for kind in ["real", "fake"] {
            let img = image::open(output.join(format!("images/{stem}_{kind}.png"))).unwrap();
            assert_eq!(
                (img.width(), img.height()),
                (w, h),
                "{stem}_{kind} keeps the input size"
            );
        }
    }
    let html = std::fs::read_to_string(output.join("index.html")).unwrap();
    assert!(html.contains("images/a_fake.png") && html.contains("images/b_real.png"));
}

#[test]
fn an_output_folder_inside_the_input_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("g.safetensors");
    write_generator(&ckpt, generator_config("resnet_1blocks"));
    let input = tmp.path().join("in");
    write_image(&input.join("a.png"), 8, 8);
    let translator = Translator::load(&ckpt, &Device::Cpu).unwrap();
    for output in [input.clone(), input.join("results/new")] {
        let err = translate_folder(&translator, &input, &output).unwrap_err();
        assert!(err.to_string().contains("lies inside --input"), "{err}");
        assert!(!input.join("results").exists() && !input.join("index.html").exists());
    }
}

#[test]
fn native_translation_equals_the_generator_on_an_exact_multiple() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("g.safetensors");
    let config = generator_config("unet_128");
    let tensors = write_generator(&ckpt, config);
    let x = Tensor::rand(-1f32, 1.0, (1, 3, 128, 128), &Device::Cpu).unwrap();
    let translator = Translator::load(&ckpt, &Device::Cpu).unwrap();
    let ours = translator.translate(&x).unwrap();
    let g = Generator::new(
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu),
        &config,
        &SharedRng::new(0),
    )
    .unwrap();
    let direct = candle_core::ModuleT::forward_t(&g, &x, true).unwrap();
    let diff = (ours - direct)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert_eq!(diff, 0.0);
    // Any other size is padded to a multiple of 128 and cropped back.
    let odd = Tensor::zeros((1, 3, 50, 70), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(translator.translate(&odd).unwrap().dims(), &[1, 3, 50, 70]);
}

#[test]
fn reference_resizing_reproduces_test_py_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("g.safetensors");
    write_generator(&ckpt, generator_config("resnet_1blocks"));
    write_image(&tmp.path().join("in/x.png"), 40, 30);
    let resize = Resize::Reference(cyclegan_data::DataOptions {
        phase: "test".into(),
        load_size: 32,
        crop_size: 32,
        ..cyclegan_data::DataOptions::default()
    });
    let out = tmp.path().join("out");
    let translator = Translator::load(&ckpt, &Device::Cpu).unwrap();
    translate_files(
        &translator,
        &TranslateOptions {
            input: tmp.path().join("in"),
            output: out.clone(),
            resize,
            progress: false,
        },
    )
    .unwrap();
    let fake = image::open(out.join("images/x_fake.png")).unwrap();
    assert_eq!((fake.width(), fake.height()), (32, 32));
}

/// Many images through the pipeline (more than it decodes or writes at once), a corrupt one and
/// two sharing a stem among them: each written file is what translating its image alone and
/// saving it writes, in input order, the corrupt one skipped.
#[test]
fn a_folder_translates_as_each_image_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("g.safetensors");
    write_generator(&ckpt, generator_config("resnet_1blocks"));
    let input = tmp.path().join("in");
    for i in 0..23u32 {
        write_image(
            &input.join(format!("img{i:02}.png")),
            12 + i % 5,
            12 + i % 3,
        );
    }
    write_image(&input.join("sub/img03.png"), 9, 9);
    std::fs::write(input.join("img05b.png"), b"not a png").unwrap();
    let output = tmp.path().join("out");
    let translator = Translator::load(&ckpt, &Device::Cpu).unwrap();
    let summary = translate_folder(&translator, &input, &output).unwrap();
    assert_eq!(summary.skipped.len(), 1);
    assert!(summary.skipped[0].0.ends_with("img05b.png"));
    let inputs: Vec<_> = summary.translated.iter().map(|t| t.0.clone()).collect();
    let mut sorted = inputs.clone();
    sorted.sort();
    assert_eq!(inputs, sorted, "in input order");
    assert_eq!(inputs.len(), 24);
    let alone = tmp.path().join("alone.png");
    for (path, real_path, fake_path) in &summary.translated {
        let real = cyclegan_data::image_to_tensor(&cyclegan_data::load_image(path, 3).unwrap())
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        cyclegan_data::save_image(&translator.translate(&real).unwrap(), &alone).unwrap();
        assert_eq!(
            std::fs::read(fake_path).unwrap(),
            std::fs::read(&alone).unwrap(),
            "{}",
            path.display()
        );
        cyclegan_data::save_image(&real, &alone).unwrap();
        assert_eq!(
            std::fs::read(real_path).unwrap(),
            std::fs::read(&alone).unwrap()
        );
    }
    // The second image called img03 gets a stem of its own.
    assert!(output.join("images/img03_2_fake.png").exists());

    // A file that cannot be written is an error that names it, not a panic or a silent gap.
    let blocked = tmp.path().join("blocked");
    std::fs::create_dir_all(blocked.join("images/img07_fake.png")).unwrap();
    let err = translate_folder(&translator, &input, &blocked)
        .unwrap_err()
        .to_string();
    assert!(err.contains("img07_fake.png"), "{err}");
}

#[test]
fn wrong_files_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    // A discriminator checkpoint.
    let d = tmp.path().join("d.safetensors");
    let config = DiscriminatorConfig {
        ndf: 4,
        ..DiscriminatorConfig::default()
    };
    let varmap = candle_nn::VarMap::new();
    Discriminator::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &config,
    )
    .unwrap();
    save_network(
        &d,
        &varmap_tensors(&varmap),
        &NetworkConfig::Discriminator(config),
    )
    .unwrap();
    let err = Translator::load(&d, &Device::Cpu).unwrap_err();
    assert!(matches!(err, TranslateError::NotAGenerator { .. }), "{err}");
    assert!(err.to_string().contains("discriminator"));
    // A truncated checkpoint.
    let g = tmp.path().join("g.safetensors");
    write_generator(&g, generator_config("resnet_1blocks"));
    let bytes = std::fs::read(&g).unwrap();
    let cut = tmp.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = Translator::load(&cut, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.safetensors"), "{err}");
    // Not a checkpoint at all.
    let text = tmp.path().join("notes.safetensors");
    std::fs::write(&text, "hello").unwrap();
    let err = Translator::load(&text, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("notes.safetensors"), "{err}");
    // A missing file.
    let err = Translator::load(tmp.path().join("missing.pth"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.pth"), "{err}");
    // A folder with no image.
    let translator = Translator::load(&g, &Device::Cpu).unwrap();
    std::fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let err = translate_folder(
        &translator,
        &tmp.path().join("empty"),
        &tmp.path().join("o"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("empty"), "{err}");
}

/// A generator on training variables (the trainer's) records a backward graph; what
/// `translate` returns must not hold it, or dropping the result on the image writer's thread
/// frees device memory there, which fails on a GPU (the error surfaced at the next image).
#[test]
fn translations_hold_no_backward_graph_of_a_trained_generator() {
    let config = generator_config("resnet_1blocks");
    let varmap = candle_nn::VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let g = Generator::new(vb, &config, &SharedRng::new(0)).unwrap();
    let x = Tensor::rand(-1f32, 1.0, (1, 3, 12, 12), &Device::Cpu).unwrap();
    assert!(
        g.forward_t(&x, true).unwrap().track_op(),
        "the generator's own output records the graph (what this test guards against)"
    );
    let out = Translator::new(g, config, &Device::Cpu)
        .translate(&x)
        .unwrap();
    assert!(!out.track_op(), "the translation is detached");
}
