//! The reference's `test.py` command lines, run through the binary: the checkpoints of a run
//! folder in, `{results_dir}/{name}/{phase}_{epoch}` out, for `--model test` and
//! `--model cycle_gan`; and the errors of wrong command lines.

mod common;

use candle_core::Device;
use common::{generator_config, write_generator, write_generator_seeded, write_image};
use cyclegan_checkpoint::{convert_checkpoint, ConvertOptions};
use cyclegan_data::{DataOptions, Dataset, UnalignedDataset};
use cyclegan_translate::Translator;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the binary in `dir` with `args`; returns whether it succeeded and its stderr.
fn translate(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cyclegan-translate"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.success(), stderr)
}

/// Runs the binary and expects success.
fn translate_ok(dir: &Path, args: &[&str]) -> String {
    let (ok, stderr) = translate(dir, args);
    assert!(ok, "{args:?} failed: {stderr}");
    stderr
}

/// Runs the binary and expects failure; returns its stderr.
fn translate_err(dir: &Path, args: &[&str]) -> String {
    let (ok, stderr) = translate(dir, args);
    assert!(!ok, "{args:?} succeeded: {stderr}");
    stderr
}

/// The files of a folder, by name, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn bytes(path: impl AsRef<Path>) -> Vec<u8> {
    let path = path.as_ref();
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The order the page shows its samples in (their `<h3>` captions).
fn page_rows(index: &Path) -> Vec<String> {
    let html = std::fs::read_to_string(index).unwrap();
    html.split("<h3>")
        .skip(1)
        .map(|s| s.split("</h3>").next().unwrap().to_string())
        .collect()
}

#[test]
fn test_model_reads_a_run_folder_and_writes_test_py_results() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let data = root.join("datasets/horse2zebra/testA");
    // Sorted as full paths: B.png < a.png < c.png < d.png < sub/b.png.
    for (name, w, h) in [
        ("c.png", 40, 30),
        ("a.png", 30, 40),
        ("sub/b.png", 20, 20),
        ("B.png", 33, 21),
        ("d.png", 25, 25),
    ] {
        write_image(&data.join(name), w, h);
    }
    let run = root.join("checkpoints/horse2zebra_pretrained");
    write_generator(
        &run.join("latest_net_G.safetensors"),
        generator_config("resnet_1blocks"),
    );

    // The reference's command line, with only the sample count added; twice, and the last
    // counts, as with test.py's argparse.
    let stderr = translate_ok(
        root,
        &[
            "--dataroot",
            "datasets/horse2zebra/testA",
            "--name",
            "horse2zebra_pretrained",
            "--model",
            "test",
            "--num_test",
            "1",
            "--no_dropout",
            "--gpu_ids",
            "-1",
            "--num_test",
            "3",
        ],
    );
    assert!(stderr.contains("latest_net_G.safetensors"), "{stderr}");
    assert!(!stderr.contains("differs from"), "{stderr}");
    let web = root.join("results/horse2zebra_pretrained/test_latest");
    assert_eq!(
        names(&web.join("images")),
        [
            "B_fake.png",
            "B_real.png",
            "a_fake.png",
            "a_real.png",
            "c_fake.png",
            "c_real.png"
        ]
    );
    assert_eq!(page_rows(&web.join("index.html")), ["B", "a", "c"]);
    let html = std::fs::read_to_string(web.join("index.html")).unwrap();
    assert!(
        html.contains("Experiment = horse2zebra_pretrained, Phase = test, Epoch = latest"),
        "{html}"
    );
    assert!(html.contains("width=\"256\"") && html.contains("images/B_fake.png"));
    // The reference's sizes: resize_and_crop to 256.
    let fake = image::open(web.join("images/a_fake.png")).unwrap();
    assert_eq!((fake.width(), fake.height()), (256, 256));

    // The same images through the --checkpoint form with test.py's resizing.
    translate_ok(
        root,
        &[
            "--checkpoint",
            "checkpoints/horse2zebra_pretrained/latest_net_G.safetensors",
            "--input",
            "datasets/horse2zebra/testA",
            "--output",
            "direct",
            "--preprocess",
            "resize_and_crop",
            "--load-size",
            "256",
            "--crop-size",
            "256",
        ],
    );
    for stem in ["B", "a", "c"] {
        for kind in ["real", "fake"] {
            let file = format!("images/{stem}_{kind}.png");
            assert_eq!(
                bytes(web.join(&file)),
                bytes(root.join("direct").join(&file)),
                "{file}"
            );
        }
    }

    // A reference .pth of the same weights, found under its suffix, translates the same.
    let pth_run = root.join("checkpoints/from_pth");
    std::fs::create_dir_all(&pth_run).unwrap();
    convert_checkpoint(
        run.join("latest_net_G.safetensors"),
        pth_run.join("latest_net_G_A.pth"),
        &ConvertOptions::default(),
    )
    .unwrap();
    let stderr = translate_ok(
        root,
        &[
            "--dataroot",
            "datasets/horse2zebra/testA",
            "--name",
            "from_pth",
            "--model",
            "test",
            "--model_suffix",
            "_A",
            "--num_test",
            "3",
        ],
    );
    assert!(stderr.contains("latest_net_G_A.pth"), "{stderr}");
    let pth_web = root.join("results/from_pth/test_latest");
    for stem in ["B", "a", "c"] {
        let file = format!("images/{stem}_fake.png");
        assert_eq!(bytes(pth_web.join(&file)), bytes(web.join(&file)), "{file}");
    }

    // With both files there, the .safetensors is read (here a .pth of other weights).
    let both = root.join("checkpoints/both");
    std::fs::create_dir_all(&both).unwrap();
    std::fs::copy(
        run.join("latest_net_G.safetensors"),
        both.join("latest_net_G.safetensors"),
    )
    .unwrap();
    let other = root.join("other.safetensors");
    let other_weights = write_generator_seeded(&other, generator_config("resnet_1blocks"), 7);
    let (key, w) = other_weights
        .iter()
        .find(|(k, _)| k.ends_with("weight"))
        .unwrap();
    let ours = cyclegan_checkpoint::load_network(
        run.join("latest_net_G.safetensors"),
        &Device::Cpu,
        candle_core::DType::F32,
    )
    .unwrap();
    let diff = (w - &ours.tensors[key]).unwrap().abs().unwrap();
    let diff = diff.max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff > 0.0, "the other weights differ");
    convert_checkpoint(
        &other,
        both.join("latest_net_G.pth"),
        &ConvertOptions::default(),
    )
    .unwrap();
    translate_ok(
        root,
        &[
            "--dataroot",
            "datasets/horse2zebra/testA",
            "--name",
            "both",
            "--num_test",
            "1",
        ],
    );
    assert_eq!(
        bytes(root.join("results/both/test_latest/images/B_fake.png")),
        bytes(web.join("images/B_fake.png"))
    );

    // --max_dataset_size limits the images read, before --num_test; kebab-case spellings work.
    translate_ok(
        root,
        &[
            "--dataroot",
            "datasets/horse2zebra/testA",
            "--name",
            "horse2zebra_pretrained",
            "--results-dir",
            "limited",
            "--max-dataset-size",
            "2",
        ],
    );
    assert_eq!(
        page_rows(&root.join("limited/horse2zebra_pretrained/test_latest/index.html")),
        ["B", "a"]
    );
}

/// Writes G_A and G_B (different weights and depths) into `checkpoints/{name}` under `label`.
fn write_cycle_gan(root: &Path, name: &str, label: &str) -> (PathBuf, PathBuf) {
    let dir = root.join("checkpoints").join(name);
    let (g_a, g_b) = (
        dir.join(format!("{label}_net_G_A.safetensors")),
        dir.join(format!("{label}_net_G_B.safetensors")),
    );
    write_generator_seeded(&g_a, generator_config("resnet_1blocks"), 1);
    write_generator_seeded(&g_b, generator_config("resnet_2blocks"), 2);
    (g_a, g_b)
}

#[test]
fn cycle_gan_writes_six_images_per_sample_with_reconstructions() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let maps = root.join("datasets/maps");
    for (name, w, h) in [
        ("testA/a1.png", 40, 30),
        ("testA/a2.png", 30, 30),
        ("testA/a3.png", 36, 44),
        ("testB/b1.png", 50, 40),
        ("testB/b2.png", 32, 32),
    ] {
        write_image(&maps.join(name), w, h);
    }
    let (g_a, g_b) = write_cycle_gan(root, "maps_cyclegan", "latest");
    let args = [
        "--dataroot",
        "./datasets/maps",
        "--name",
        "maps_cyclegan",
        "--model",
        "cycle_gan",
        "--load_size",
        "32",
        "--crop_size",
        "32",
    ];
    let stderr = translate_ok(root, &args);
    assert!(
        stderr.contains("latest_net_G_A.safetensors") && stderr.contains("latest_net_G_B"),
        "{stderr}"
    );
    let web = root.join("results/maps_cyclegan/test_latest");
    let labels = ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"];
    let mut expected: Vec<String> = ["a1", "a2", "a3"]
        .iter()
        .flat_map(|s| labels.iter().map(move |l| format!("{s}_{l}.png")))
        .collect();
    expected.sort();
    assert_eq!(names(&web.join("images")), expected);
    // max(|A|, |B|) samples, each with its images in the reference's order.
    assert_eq!(page_rows(&web.join("index.html")), ["a1", "a2", "a3"]);
    let html = std::fs::read_to_string(web.join("index.html")).unwrap();
    let row = html.split("<h3>a1</h3>").nth(1).unwrap();
    let positions: Vec<usize> = labels
        .iter()
        .map(|l| row.find(&format!("images/a1_{l}.png")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{row}");

    // Each image as the library computes it: rec_A = G_B(G_A(real_A)), fake_A = G_B(real_B),
    // rec_B = G_A(fake_A); B is paired serially (sample 2 takes B[2 % 2]).
    let (ta, tb) = (
        Translator::load(&g_a, &Device::Cpu).unwrap(),
        Translator::load(&g_b, &Device::Cpu).unwrap(),
    );
    let dataset = UnalignedDataset::open(
        &maps,
        &DataOptions {
            load_size: 32,
            crop_size: 32,
            ..DataOptions::reference_test()
        },
    )
    .unwrap();
    let saved = root.join("expected.png");
    let same = |tensor: &candle_core::Tensor, file: &str| {
        cyclegan_data::save_image(tensor, &saved).unwrap();
        assert_eq!(
            bytes(web.join("images").join(file)),
            bytes(&saved),
            "{file}"
        );
    };
    for (i, stem) in ["a1", "a2", "a3"].iter().enumerate() {
        let batch = dataset.load_batch(&[i], 0, 1).unwrap();
        assert!(batch.b_paths[0].ends_with(["b1.png", "b2.png"][i % 2]));
        let fake_b = ta.translate(&batch.a).unwrap();
        let fake_a = tb.translate(&batch.b).unwrap();
        same(&batch.a, &format!("{stem}_real_A.png"));
        same(&fake_b, &format!("{stem}_fake_B.png"));
        same(
            &tb.translate(&fake_b).unwrap(),
            &format!("{stem}_rec_A.png"),
        );
        same(&batch.b, &format!("{stem}_real_B.png"));
        same(&fake_a, &format!("{stem}_fake_A.png"));
        same(
            &ta.translate(&fake_a).unwrap(),
            &format!("{stem}_rec_B.png"),
        );
    }

    // BtoA: real_A comes from testB and names the sample; sample 2 is B[0] again, whose files
    // it overwrites (as the reference does), paired with A[2].
    let mut btoa = args.to_vec();
    btoa.extend(["--direction", "BtoA", "--results_dir", "btoa"]);
    translate_ok(root, &btoa);
    let web_ba = root.join("btoa/maps_cyclegan/test_latest");
    assert_eq!(page_rows(&web_ba.join("index.html")), ["b1", "b2", "b1"]);
    assert_eq!(names(&web_ba.join("images")).len(), 12);
    assert_eq!(
        bytes(web_ba.join("images/b1_real_B.png")),
        bytes(web.join("images/a3_real_A.png"))
    );
    assert_eq!(
        bytes(web_ba.join("images/b2_real_A.png")),
        bytes(web.join("images/a2_real_B.png"))
    );
}

/// The checkpoint decides the architecture, as the README says; stated options that differ
/// are named.
#[test]
fn architecture_options_that_differ_from_the_checkpoint_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_image(&root.join("in/a.png"), 16, 16);
    write_generator(
        &root.join("checkpoints/run/latest_net_G.safetensors"),
        generator_config("resnet_1blocks"),
    );
    let stderr = translate_ok(
        root,
        &[
            "--dataroot",
            "in",
            "--name",
            "run",
            "--model",
            "test",
            "--netG",
            "unet_256",
            "--norm",
            "instance",
        ],
    );
    assert!(
        stderr.contains("--netG unet_256 differs from G's checkpoint (resnet_1blocks)"),
        "{stderr}"
    );
    assert!(!stderr.contains("--norm instance differs"), "{stderr}");
}

/// A folder with an unreadable image: the others are translated, and the exit status says
/// that the folder was not translated whole (in both forms).
#[test]
fn an_unreadable_image_is_skipped_and_fails_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_generator(
        &root.join("checkpoints/run/latest_net_G.safetensors"),
        generator_config("resnet_1blocks"),
    );
    write_image(&root.join("in/good.png"), 16, 16);
    std::fs::write(root.join("in/broken.png"), b"not a png").unwrap();
    let err = translate_err(
        root,
        &[
            "--checkpoint",
            "checkpoints/run/latest_net_G.safetensors",
            "--input",
            "in",
            "--output",
            "out",
        ],
    );
    assert!(err.contains("broken.png"), "{err}");
    assert!(
        err.contains("1 image(s) could not be read") && err.contains("the other 1 were translated"),
        "{err}"
    );
    assert!(root.join("out/images/good_fake.png").is_file());
    assert!(!root.join("out/images/broken_fake.png").exists());

    let err = translate_err(
        root,
        &[
            "--dataroot",
            "in",
            "--name",
            "run",
            "--model",
            "test",
            "--no_dropout",
        ],
    );
    assert!(err.contains("1 image(s) could not be read"), "{err}");
    assert!(root
        .join("results/run/test_latest/images/good_fake.png")
        .is_file());
}

/// The warning that a 16-bit grayscale image is clipped to 8 bits names the image.
#[test]
fn clipped_sixteen_bit_images_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_generator(
        &root.join("checkpoints/run/latest_net_G.safetensors"),
        generator_config("resnet_1blocks"),
    );
    std::fs::create_dir_all(root.join("in")).unwrap();
    image::ImageBuffer::<image::Luma<u16>, _>::from_fn(16, 16, |x, y| {
        image::Luma([(x * 4000 + y) as u16])
    })
    .save(root.join("in/deep16.png"))
    .unwrap();
    let stderr = translate_ok(
        root,
        &[
            "--dataroot",
            "in",
            "--name",
            "run",
            "--load_size",
            "16",
            "--crop_size",
            "16",
        ],
    );
    assert!(
        stderr.contains("in/deep16.png is a 16-bit grayscale image with levels above 255"),
        "{stderr}"
    );
}

#[test]
fn wrong_command_lines_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_image(&root.join("data/testA/x.png"), 20, 20);
    let base = ["--dataroot", "data/testA", "--name", "run"];

    // No checkpoint: both paths tried, and what to pass.
    let err = translate_err(root, &base);
    for needle in [
        "checkpoints/run/latest_net_G.safetensors",
        "checkpoints/run/latest_net_G.pth",
        "--name",
        "fetch-model",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // A run of cyclegan-train read as a test model: the files there, and --model_suffix.
    write_cycle_gan(root, "run", "latest");
    let err = translate_err(root, &base);
    assert!(
        err.contains("latest_net_G_A.safetensors") && err.contains("--model_suffix"),
        "{err}"
    );
    translate_ok(root, &[&base[..], &["--model_suffix", "_B"]].concat());

    // The two forms mixed.
    let err = translate_err(
        root,
        &[
            &base[..],
            &["--checkpoint", "checkpoints/run/latest_net_G_A.safetensors"],
        ]
        .concat(),
    );
    assert!(
        err.contains("--checkpoint cannot be used with --dataroot"),
        "{err}"
    );
    let err = translate_err(
        root,
        &[
            "--checkpoint",
            "checkpoints/run/latest_net_G_A.safetensors",
            "--input",
            "data",
            "--output",
            "out",
            "--epoch",
            "5",
        ],
    );
    assert!(
        err.contains("--epoch") && err.contains("--dataroot"),
        "{err}"
    );
    let err = translate_err(root, &[]);
    assert!(
        err.contains("--checkpoint") && err.contains("--dataroot"),
        "{err}"
    );

    // Models other than CycleGAN's.
    let err = translate_err(root, &[&base[..], &["--model", "pix2pix"]].concat());
    assert!(err.contains("CycleGAN generators only"), "{err}");
    let err = translate_err(
        root,
        &[&base[..], &["--model", "cycle_gan", "--model_suffix", "_A"]].concat(),
    );
    assert!(
        err.contains("--model_suffix _A applies to --model test only"),
        "{err}"
    );

    // A discriminator where the generator should be.
    std::fs::create_dir_all(root.join("checkpoints/disc")).unwrap();
    cyclegan_checkpoint::save_network(
        root.join("checkpoints/disc/latest_net_G.safetensors"),
        &Default::default(),
        &cyclegan_models::NetworkConfig::Discriminator(Default::default()),
    )
    .unwrap();
    let err = translate_err(root, &["--dataroot", "data/testA", "--name", "disc"]);
    assert!(err.contains("discriminator"), "{err}");

    // Missing data: the folder named.
    let err = translate_err(
        root,
        &[
            "--dataroot",
            "nowhere",
            "--name",
            "run",
            "--model_suffix",
            "_A",
        ],
    );
    assert!(err.contains("nowhere"), "{err}");
    let err = translate_err(
        root,
        &[
            "--dataroot",
            "data",
            "--name",
            "run",
            "--model",
            "cycle_gan",
        ],
    );
    assert!(err.contains("testB"), "{err}");

    // Devices and numbers.
    let err = translate_err(root, &[&base[..], &["--gpu_ids", "0,1"]].concat());
    assert!(err.contains("several GPUs"), "{err}");
    let err = translate_err(
        root,
        &[&base[..], &["--gpu_ids", "-1", "--device", "cpu"]].concat(),
    );
    assert!(err.contains("--device"), "{err}");
    let err = translate_err(
        root,
        &[&base[..], &["--model_suffix", "_A", "--aspect_ratio", "0"]].concat(),
    );
    assert!(err.contains("--aspect_ratio"), "{err}");
}

#[test]
fn load_iter_reads_iter_checkpoints_and_names_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_image(&root.join("data/x.png"), 20, 20);
    write_generator(
        &root.join("checkpoints/run/iter_5_net_G.safetensors"),
        generator_config("resnet_1blocks"),
    );
    let base = [
        "--dataroot",
        "data",
        "--name",
        "run",
        "--load_size",
        "16",
        "--crop_size",
        "16",
    ];
    // There is no latest_net_G.
    let err = translate_err(root, &base);
    assert!(err.contains("latest_net_G.safetensors"), "{err}");
    assert!(
        err.contains("iter_5_net_G.safetensors"),
        "the listing: {err}"
    );

    translate_ok(root, &[&base[..], &["--load_iter", "5"]].concat());
    let web = root.join("results/run/test_latest_iter5");
    assert_eq!(names(&web.join("images")), ["x_fake.png", "x_real.png"]);
    let html = std::fs::read_to_string(web.join("index.html")).unwrap();
    assert!(html.contains("Epoch = latest"), "{html}");

    // --epoch names both the checkpoint and the folder.
    std::fs::copy(
        root.join("checkpoints/run/iter_5_net_G.safetensors"),
        root.join("checkpoints/run/3_net_G.safetensors"),
    )
    .unwrap();
    translate_ok(
        root,
        &[&base[..], &["--epoch", "3", "--phase", "val"]].concat(),
    );
    let html = std::fs::read_to_string(root.join("results/run/val_3/index.html")).unwrap();
    assert!(
        html.contains("Experiment = run, Phase = val, Epoch = 3"),
        "{html}"
    );
}

/// `--suffix` extends `--name` for both the checkpoints and the results, as the reference's
/// `BaseOptions.parse` does for test.py.
#[test]
fn a_suffix_names_the_run_read_and_the_results_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_image(&root.join("d/testA/x.png"), 20, 20);
    write_generator(
        &root.join("ck2/ref_snake_resnet_6blocks/latest_net_G_A.safetensors"),
        generator_config("resnet_6blocks"),
    );
    let stderr = translate_ok(
        root,
        &[
            "--dataroot",
            "d/testA",
            "--name",
            "ref_snake",
            "--suffix",
            "{netG}",
            "--netG",
            "resnet_6blocks",
            "--model_suffix",
            "_A",
            "--checkpoints_dir",
            "ck2",
            "--model",
            "test",
            "--load_size",
            "16",
            "--crop_size",
            "16",
        ],
    );
    assert!(
        stderr.contains("ck2/ref_snake_resnet_6blocks/latest_net_G_A.safetensors"),
        "{stderr}"
    );
    let web = root.join("results/ref_snake_resnet_6blocks/test_latest");
    assert_eq!(names(&web.join("images")), ["x_fake.png", "x_real.png"]);
    let html = std::fs::read_to_string(web.join("index.html")).unwrap();
    assert!(
        html.contains("Experiment = ref_snake_resnet_6blocks, Phase = test"),
        "{html}"
    );
    assert!(!root.join("results/ref_snake").exists());

    // A suffix naming an option test.py does not have: the option and the choices named.
    let err = translate_err(
        root,
        &[
            "--dataroot",
            "d/testA",
            "--name",
            "ref_snake",
            "--suffix",
            "{lambda_A}",
        ],
    );
    assert!(
        err.contains("--suffix '{lambda_A}'") && err.contains("netG"),
        "{err}"
    );
}

#[test]
fn aspect_ratio_resizes_saved_images_as_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // 40 columns, 24 rows, kept as they are by --preprocess none.
    write_image(&root.join("data/x.png"), 40, 24);
    write_generator(
        &root.join("checkpoints/run/latest_net_G.safetensors"),
        generator_config("resnet_1blocks"),
    );
    let run = |ratio: &str, results: &str| {
        translate_ok(
            root,
            &[
                "--dataroot",
                "data",
                "--name",
                "run",
                "--preprocess",
                "none",
                "--aspect_ratio",
                ratio,
                "--results_dir",
                results,
            ],
        );
        root.join(results).join("run/test_latest/images")
    };
    let plain = run("1.0", "r1");
    let open = |dir: &Path, file: &str| image::open(dir.join(file)).unwrap().to_rgb8();
    assert_eq!(open(&plain, "x_fake.png").dimensions(), (40, 24));
    // Above 1: width h (24), height int(w * r) (80); below 1: width int(h / r) (48),
    // height w (40). PIL's (width, height) order, as the reference passes them.
    for (ratio, results, size) in [("2", "r2", (24, 80)), ("0.5", "r05", (48, 40))] {
        let dir = run(ratio, results);
        for file in ["x_real.png", "x_fake.png"] {
            let img = open(&dir, file);
            assert_eq!(img.dimensions(), size, "{ratio} {file}");
            // The unresized image, resized with Pillow's bicubic filter.
            let expected = cyclegan_data::resize_bicubic(
                &image::DynamicImage::ImageRgb8(open(&plain, file)),
                size.0,
                size.1,
            );
            assert_eq!(img.as_raw(), expected.to_rgb8().as_raw(), "{ratio} {file}");
        }
    }
}

#[test]
fn help_lists_the_reference_options() {
    let tmp = tempfile::tempdir().unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_cyclegan-translate"))
        .arg("--help")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let reference = help.split("Reference test.py options").nth(1).unwrap();
    for option in [
        "--dataroot",
        "--checkpoints-dir",
        "--model-suffix",
        "--load-iter",
        "--num-test",
        "--aspect-ratio",
        "--display-winsize",
        "--max-dataset-size",
        "--no-dropout",
        "--netG",
        "--display-id",
    ] {
        assert!(reference.contains(option), "{option}: {help}");
    }
    assert!(reference.contains("Accepted for compatibility"));
}
