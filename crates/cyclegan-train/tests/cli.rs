//! The `cyclegan-train` binary as a user meets it: outputs of a short run, and clear errors.

use std::path::Path;
use std::process::Command;

fn train_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cyclegan-train"))
}

fn emoji() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/emoji64")
}

/// A dataset in `root` made of the first `count` images (by name) of each embedded folder.
fn emoji_subset(root: &Path, folders: &[(&str, usize)]) {
    for &(folder, count) in folders {
        std::fs::create_dir_all(root.join(folder)).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(emoji().join(folder))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in &names[..count] {
            std::fs::copy(
                emoji().join(folder).join(name),
                root.join(folder).join(name),
            )
            .unwrap();
        }
    }
}

/// Fails the test with the run's standard error unless it succeeded.
fn assert_success(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn small_run(cmd: &mut Command, dir: &Path) -> std::process::Output {
    cmd.current_dir(dir)
        .args(["--dataroot", emoji().to_str().unwrap()])
        .args([
            "--name",
            "cli",
            "--netG",
            "resnet_1blocks",
            "--ngf",
            "4",
            "--ndf",
            "4",
        ])
        .args([
            "--load-size",
            "40",
            "--crop-size",
            "32",
            "--max-dataset-size",
            "5",
            "--no-progress",
        ])
        .output()
        .unwrap()
}

#[test]
fn a_short_run_writes_checkpoints_logs_page_and_options() {
    let tmp = tempfile::tempdir().unwrap();
    let out = small_run(
        train_cmd().args([
            "--max-steps",
            "6",
            "--print_freq",
            "2",
            "--display-freq",
            "3",
            "--lambda_A",
            "5",
        ]),
        tmp.path(),
    );
    assert_success(&out);
    let run = tmp.path().join("checkpoints/cli");
    for f in ["G_A", "G_B", "D_A", "D_B"] {
        assert!(
            run.join(format!("latest_net_{f}.safetensors")).is_file(),
            "latest_net_{f}"
        );
    }
    // Five images per epoch: epoch 1 ended and, with save_epoch_freq 5, was not copied.
    assert!(run.join("latest_train_state.safetensors").is_file());
    let log = std::fs::read_to_string(run.join("loss_log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "a line every 2 images over 6 images");
    assert_eq!(lines[2]["iteration"], 6);
    assert!(lines[0]["losses"]["cycle_A"].as_f64().unwrap() > 0.0);
    let options: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("options.json")).unwrap()).unwrap();
    assert_eq!(
        options["model"]["weights"]["lambda_a"], 5.0,
        "the snake_case alias --lambda_A took effect"
    );
    let page = std::fs::read_to_string(run.join("web/index.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("epoch001_fake_B.png"));
    assert!(run.join("web/images/epoch001_fake_B.png").is_file());
    // The paired test set was measured at the end of epoch 1.
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"hist\"") && metrics.contains("identity_psnr"));
}

fn failure(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = train_cmd()
        .current_dir(tmp.path())
        .args(args)
        .arg("--no-progress")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_dataroot_names_the_folder_and_the_layout() {
    let err = failure(&["--dataroot", "no/such/place"]);
    assert!(
        err.contains("no/such/place") && err.contains("trainA"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_flags_and_values_are_refused_with_a_reason() {
    assert!(failure(&["--no-such-flag"]).contains("--no-such-flag"));
    assert!(failure(&["--netG", "resnet"]).contains("resnet_9blocks"));
    assert!(failure(&["--gan-mode", "hinge"]).contains("lsgan"));
    let err = failure(&["--dataroot", emoji().to_str().unwrap(), "--crop-size", "16"]);
    assert!(
        err.contains("--crop-size 16") && err.contains("too small"),
        "{err}"
    );
    let err = failure(&["--dataroot", emoji().to_str().unwrap(), "--crop-size", "30"]);
    assert!(err.contains("multiple of 4"), "{err}");
    let data = emoji();
    let data = data.to_str().unwrap();
    assert!(failure(&["--dataroot", data, "--beta1", "1.5"]).contains("--beta1 1.5"));
    assert!(failure(&["--dataroot", data, "--init-gain", "-1"]).contains("--init-gain -1"));
    let err = failure(&[
        "--dataroot",
        data,
        "--lr-policy",
        "step",
        "--lr-decay-iters",
        "0",
    ]);
    assert!(err.contains("--lr-decay-iters"), "{err}");
    let err = failure(&["--dataroot", data, "--input-nc", "2"]);
    assert!(
        err.contains("--input-nc 2") && err.contains("1 or 3"),
        "{err}"
    );
    for name in ["", "..", "../elsewhere"] {
        let err = failure(&["--dataroot", emoji().to_str().unwrap(), "--name", name]);
        assert!(err.contains("plain folder name"), "{name:?}: {err}");
    }
}

/// `--input-nc`/`--output-nc` as the reference's CycleGANModel builds them: G_A from A's
/// channels to B's, G_B back, D_A judging B images and D_B judging A images.
#[test]
fn channel_counts_shape_each_network_as_the_reference_does() {
    let err = failure(&["--dataroot", emoji().to_str().unwrap(), "--input-nc", "1"]);
    assert!(
        err.contains("--lambda-identity 0.5") && err.contains("--lambda-identity 0"),
        "{err}"
    );
    let err = failure(&["--dataroot", emoji().to_str().unwrap(), "--lambda-A", "-1"]);
    assert!(err.contains("--lambda-A -1 must be"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let out = small_run(
        train_cmd().args([
            "--input-nc",
            "1",
            "--output-nc",
            "3",
            "--lambda-identity",
            "0",
            "--max-steps",
            "2",
        ]),
        tmp.path(),
    );
    assert_success(&out);
    let run = tmp.path().join("checkpoints/cli");
    // The first convolution of each: the generators' after their reflection pad.
    for (net, key, in_channels) in [
        ("G_A", "model.1.weight", 1),
        ("G_B", "model.1.weight", 3),
        ("D_A", "model.0.weight", 3),
        ("D_B", "model.0.weight", 1),
    ] {
        let bytes = std::fs::read(run.join(format!("latest_net_{net}.safetensors"))).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let shape = tensors.tensor(key).unwrap().shape().to_vec();
        assert_eq!(shape[1], in_channels, "{net} {key} {shape:?}");
    }
    // G_B's last convolution writes A's one channel.
    let bytes = std::fs::read(run.join("latest_net_G_B.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let last = tensors
        .names()
        .into_iter()
        .filter(|k| k.ends_with(".weight"))
        .max_by_key(|k| {
            k.split('.')
                .nth(1)
                .and_then(|i| i.parse::<usize>().ok())
                .unwrap_or(0)
        })
        .unwrap();
    assert_eq!(tensors.tensor(last).unwrap().shape()[0], 1, "{last}");
}

/// Problems that only show once the data is read are reported before anything is trained,
/// naming the files and what to pass instead; a results path that cannot be a folder is found
/// before training rather than after it.
#[test]
fn sizes_the_networks_cannot_take_and_a_results_file_are_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    for folder in ["trainA", "trainB"] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
    }
    // 64x96: --preprocess scale_width to 36 wide makes it 36x54, and 54 is no multiple of 4.
    let tall =
        cyclegan_data::image::RgbImage::from_pixel(64, 96, cyclegan_data::image::Rgb([9, 99, 199]));
    tall.save(root.join("trainA/tall.png")).unwrap();
    tall.save(root.join("trainB/tall.png")).unwrap();
    let err = failure(&[
        "--dataroot",
        root.to_str().unwrap(),
        "--preprocess",
        "scale_width",
        "--load-size",
        "36",
        "--crop-size",
        "32",
    ]);
    assert!(
        err.contains("tall.png") && err.contains("54") && err.contains("multiples of 4"),
        "{err}"
    );
    assert!(!err.contains("shape mismatch"), "{err}");

    assert!(
        failure(&["--dataroot", emoji().to_str().unwrap(), "--max-steps", "0"])
            .contains("--max-steps 0")
    );

    let results = tmp.path().join("results_file");
    std::fs::write(&results, "not a folder").unwrap();
    let checkpoints = tmp.path().join("checkpoints");
    let err = failure(&[
        "--dataroot",
        emoji().to_str().unwrap(),
        "--translate-test",
        "--results-dir",
        results.to_str().unwrap(),
        "--checkpoints-dir",
        checkpoints.to_str().unwrap(),
    ]);
    assert!(
        err.contains("results_file") && err.contains("--results-dir"),
        "{err}"
    );
    assert!(!checkpoints
        .join("emoji64/latest_net_G_A.safetensors")
        .exists());
}

/// Under `--direction BtoA` G_A maps domain B to domain A (the reference's `real_A` comes from
/// `{phase}B`), so the test set it translates at the end is testB, not testA.
#[test]
fn btoa_translates_test_b_with_g_a() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    emoji_subset(
        &root,
        &[("trainA", 3), ("trainB", 3), ("testA", 2), ("testB", 3)],
    );
    let translated = |direction: &str| {
        let out = train_cmd()
            .current_dir(tmp.path())
            .args(["--dataroot", root.to_str().unwrap(), "--name", direction])
            .args(["--netG", "resnet_1blocks", "--ngf", "4", "--ndf", "4"])
            .args(["--load-size", "32", "--crop-size", "32", "--no-progress"])
            .args([
                "--max-steps",
                "1",
                "--direction",
                direction,
                "--translate-test",
            ])
            .output()
            .unwrap();
        assert_success(&out);
        let images = tmp
            .path()
            .join("results")
            .join(direction)
            .join("test_latest/images");
        std::fs::read_dir(images)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with("_fake.png")
            })
            .count()
    };
    assert_eq!(translated("AtoB"), 2, "testA's two images");
    assert_eq!(translated("BtoA"), 3, "testB's three images");
}

/// The reference's train.py command line, snake_case options and all, runs unchanged: the
/// options it names that choose nothing here are accepted, the others take effect.
#[test]
fn a_reference_command_line_runs_and_its_options_take_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let out = small_run(
        train_cmd().args([
            "--model",
            "cycle_gan",
            "--dataset_mode",
            "unaligned",
            "--gpu_ids",
            "-1",
            "--num_threads",
            "1",
            "--display_id",
            "0",
            "--display_port",
            "8097",
            "--display_winsize",
            "256",
            "--niter",
            "1",
            "--niter_decay",
            "1",
            "--lr_policy",
            "lambda",
            "--suffix",
            "{netG}_size{load_size}_lr{lr}",
            "--max-steps",
            "4",
            "--print_freq",
            "1",
            "--save_latest_freq",
            "2",
            "--save_by_iter",
            "--no_html",
        ]),
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // --suffix extends --name with the options' values as Python's str.format writes them.
    let run = tmp
        .path()
        .join("checkpoints/cli_resnet_1blocks_size40_lr0.0002");
    assert!(run.is_dir(), "{stderr}");
    let options: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("options.json")).unwrap()).unwrap();
    assert_eq!(options["device"], "cpu", "--gpu_ids -1 is the CPU");
    assert_eq!(options["schedule"]["n_epochs"], 1, "--niter");
    assert_eq!(options["schedule"]["n_epochs_decay"], 1, "--niter_decay");
    assert_eq!(
        options["schedule"]["policy"], "linear",
        "--lr_policy lambda"
    );
    assert_eq!(options["workers"], 1, "--num_threads");
    // --save_by_iter keeps the networks at each --save_latest_freq, by images seen.
    for label in ["iter_2", "iter_4", "latest"] {
        assert!(
            run.join(format!("{label}_net_G_A.safetensors")).is_file(),
            "{label}"
        );
    }
    assert!(!run.join("web").exists(), "--no_html writes no page");
    // loss_log.txt as the reference writes it: a header, then one line per print step.
    let log = std::fs::read_to_string(run.join("loss_log.txt")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 5, "{log}");
    assert!(lines[0].starts_with("================ Training Loss ("));
    assert!(
        lines[4].starts_with("(epoch: 1, iters: 4, time: ")
            && lines[4].contains(", data: ")
            && lines[4].contains(") D_A: ")
            && lines[4].contains(" cycle_B: "),
        "{}",
        lines[4]
    );
    // The parameter counts, as the reference prints them.
    assert!(
        stderr.contains("[Network G_A] Total number of parameters : "),
        "{stderr}"
    );

    // --continue_train --load_iter N starts from iter_N's networks, with fresh optimisers.
    let resume = |extra: &[&str]| {
        small_run(
            train_cmd()
                .args([
                    "--suffix",
                    "{netG}_size{load_size}_lr{lr}",
                    "--continue_train",
                ])
                .args(extra),
            tmp.path(),
        )
    };
    let out = resume(&["--load_iter", "2", "--max-steps", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no training state for 'iter_2'"),
        "{stderr}"
    );
    // A label that was never saved is named, with those that were.
    let out = resume(&["--load_iter", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no iter_3_net_") && stderr.contains("iter_2, iter_4, latest"),
        "{stderr}"
    );
}

#[test]
fn reference_options_this_toolkit_cannot_honour_are_refused_with_a_reason() {
    assert!(failure(&["--model", "pix2pix"]).contains("CycleGAN models only"));
    assert!(failure(&["--dataset_mode", "aligned"]).contains("unaligned"));
    assert!(failure(&["--gpu_ids", "0,1"]).contains("several GPUs"));
    assert!(failure(&["--gpu_ids", "0", "--device", "cpu"]).contains("cannot be used with"));
    assert!(failure(&["--suffix", "{lr:.1e}"]).contains("no option 'lr:.1e'"));
    let err = failure(&["--dataroot", emoji().to_str().unwrap(), "--phase", "val"]);
    assert!(err.contains("valA"), "{err}");
}

/// A run that stopped before its first save left logs and no networks: there is nothing to
/// continue, so the same command again starts it over, as `--overwrite` would.
#[test]
fn a_folder_with_logs_and_no_networks_is_started_over() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("checkpoints/cli");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("loss_log.txt"), "a failed run's log\n").unwrap();
    let again = small_run(train_cmd().args(["--max-steps", "1"]), tmp.path());
    assert_success(&again);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("saved no networks (loss_log.txt)") && err.contains("started over"),
        "{err}"
    );
    assert!(run.join("latest_net_G_A.safetensors").is_file());
    let log = std::fs::read_to_string(run.join("loss_log.txt")).unwrap();
    assert!(!log.contains("a failed run's log"), "{log}");

    // A training state without networks (moved away by hand) is not deleted unasked.
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("checkpoints/cli");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("latest_train_state.safetensors"), "a state").unwrap();
    let refused = small_run(train_cmd().args(["--max-steps", "1"]), tmp.path());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("holds a run's records but no networks (latest_train_state.safetensors)")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(other.join("latest_train_state.safetensors")).unwrap(),
        b"a state"
    );
}

/// A new run does not overwrite an existing one by mistake: it is refused (nothing written is
/// touched) unless --overwrite starts it over, which deletes the old run's files so that the
/// logs do not mix.
#[test]
fn a_new_run_over_an_existing_one_is_refused_unless_asked_to_start_over() {
    let tmp = tempfile::tempdir().unwrap();
    let first = small_run(
        train_cmd().args([
            "--max-steps",
            "4",
            "--print_freq",
            "1",
            "--save_latest_freq",
            "2",
            "--save_by_iter",
        ]),
        tmp.path(),
    );
    assert!(first.status.success());
    let run = tmp.path().join("checkpoints/cli");
    let latest = std::fs::read(run.join("latest_net_G_A.safetensors")).unwrap();
    let log = std::fs::read_to_string(run.join("loss_log.jsonl")).unwrap();

    let again = small_run(
        train_cmd().args(["--max-steps", "2", "--seed", "7"]),
        tmp.path(),
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success());
    assert!(
        err.contains("already holds a run")
            && err.contains("iter_2, iter_4, latest")
            && err.contains("--continue-train")
            && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(run.join("latest_net_G_A.safetensors")).unwrap(),
        latest
    );
    assert_eq!(
        std::fs::read_to_string(run.join("loss_log.jsonl")).unwrap(),
        log
    );

    let over = small_run(
        train_cmd().args([
            "--max-steps",
            "2",
            "--seed",
            "7",
            "--print_freq",
            "1",
            "--overwrite",
        ]),
        tmp.path(),
    );
    assert_success(&over);
    assert_ne!(
        std::fs::read(run.join("latest_net_G_A.safetensors")).unwrap(),
        latest
    );
    let log = std::fs::read_to_string(run.join("loss_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "only the new run's lines: {log}");
    assert!(
        !run.join("iter_4_net_G_A.safetensors").exists(),
        "the old run's checkpoints are gone"
    );
}

/// `--overwrite` sets the old run aside until the new one saves its first checkpoint: a new run
/// that fails on its data before that, or is killed, gives the old run back.
#[test]
fn an_overwrite_that_stops_before_its_first_checkpoint_gives_the_old_run_back() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    emoji_subset(&root, &[("trainA", 3), ("trainB", 3)]);
    let train = |extra: &[&str]| {
        train_cmd()
            .current_dir(tmp.path())
            .args(["--dataroot", root.to_str().unwrap(), "--name", "run"])
            .args(["--netG", "resnet_1blocks", "--ngf", "4", "--ndf", "4"])
            .args(["--load-size", "32", "--crop-size", "32", "--no-progress"])
            .args(["--serial-batches"])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_success(&train(&["--max-steps", "2"]));
    let run = tmp.path().join("checkpoints/run");
    let read = |name: &str| std::fs::read(run.join(name)).unwrap();
    let (latest, log, options) = (
        read("latest_net_G_A.safetensors"),
        read("loss_log.txt"),
        read("options.json"),
    );

    // The third A image is unreadable: the new run fails at its third step, before any save.
    std::fs::write(root.join("trainA/zz_broken.png"), b"not a png").unwrap();
    let out = train(&["--max-steps", "4", "--overwrite", "--lambda_A", "5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zz_broken.png") && err.contains("back"),
        "{err}"
    );
    assert_eq!(read("latest_net_G_A.safetensors"), latest);
    assert_eq!(
        read("loss_log.txt"),
        log,
        "the old run's log, not the failed one's"
    );
    assert_eq!(read("options.json"), options);
    assert!(!run.join(".overwritten").exists());

    // Killed before its first checkpoint (made by hand: the old files set aside, the new run's
    // options written): the next start puts the old run back, and it continues from step 2.
    std::fs::create_dir(run.join(".overwritten")).unwrap();
    for name in std::fs::read_dir(&run).unwrap() {
        let name = name.unwrap().file_name();
        if name != ".overwritten" {
            std::fs::rename(run.join(&name), run.join(".overwritten").join(&name)).unwrap();
        }
    }
    std::fs::write(run.join("options.json"), b"{}").unwrap();
    std::fs::remove_file(root.join("trainA/zz_broken.png")).unwrap();
    let out = train(&["--continue-train", "--max-steps", "3"]);
    assert_success(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("put back"), "{err}");
    assert!(err.contains("(2 steps done)"), "{err}");

    // Started over for good: the first checkpoint deletes the old files.
    assert_success(&train(&["--max-steps", "1", "--overwrite"]));
    assert!(!run.join(".overwritten").exists());
    let log = std::fs::read_to_string(run.join("loss_log.txt")).unwrap();
    assert_eq!(log.lines().count(), 1, "only the new run's header: {log}");
}

/// One run folder, one training run at a time: a second run on the folder of one in progress
/// (continuing it or starting it over) is refused before it touches anything, naming the
/// holder; a new run that fails before writing anything leaves no folder behind.
#[test]
fn a_run_folder_in_use_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    emoji_subset(&root, &[("trainA", 2), ("trainB", 2)]);
    let train = |name: &str, dataroot: &Path, extra: &[&str]| {
        train_cmd()
            .current_dir(tmp.path())
            .args(["--dataroot", dataroot.to_str().unwrap(), "--name", name])
            .args(["--netG", "resnet_1blocks", "--ngf", "4", "--ndf", "4"])
            .args(["--load-size", "32", "--crop-size", "32", "--no-progress"])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_success(&train("run", &root, &["--max-steps", "1"]));
    let run = tmp.path().join("checkpoints/run");
    let latest = std::fs::read(run.join("latest_net_G_A.safetensors")).unwrap();

    // This test process stands for a run in progress.
    let held =
        cyclegan_checkpoint::FolderLock::acquire(&run.join(".lock"), "cyclegan-train").unwrap();
    for extra in [
        &["--continue-train", "--max-steps", "2"][..],
        &["--overwrite", "--max-steps", "1"],
    ] {
        let out = train("run", &root, extra);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("in use by another training run")
                && err.contains(&format!("pid {}", std::process::id()))
                && err.contains("--name"),
            "{extra:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read(run.join("latest_net_G_A.safetensors")).unwrap(),
        latest
    );
    assert!(!run.join(".overwritten").exists());
    drop(held);
    assert!(!run.join(".lock").exists());
    let out = train("run", &root, &["--continue-train", "--max-steps", "2"]);
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(1 steps done)"));

    // A new run whose data cannot be read: no run folder, no checkpoints folder, left behind.
    let out = train("other", &tmp.path().join("missing"), &["--max-steps", "1"]);
    assert!(!out.status.success());
    assert!(!tmp.path().join("checkpoints/other").exists());
    let fresh = tempfile::tempdir().unwrap();
    let out = train_cmd()
        .current_dir(fresh.path())
        .args(["--dataroot", "missing", "--no-progress"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!fresh.path().join("checkpoints").exists());
}

/// Away from the repository the embedded demo trains on the copy built into the binary,
/// unpacked once into the user's cache. Running it again with the same options writes the same
/// run again: runs are deterministic, so nothing is lost, and it is allowed; other options are
/// refused as above.
#[test]
fn the_embedded_demo_can_be_run_again_with_the_same_options() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let demo = |steps: &str| {
        train_cmd()
            .current_dir(tmp.path())
            .env("XDG_CACHE_HOME", &cache)
            .args(["--max-steps", steps, "--no-progress", "--print_freq", "1"])
            .output()
            .unwrap()
    };
    let first = demo("1");
    assert_success(&first);
    let unpacked: Vec<_> = std::fs::read_dir(cache.join("cyclegan-rs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    assert!(unpacked[0].join("trainA").is_dir() && unpacked[0].join("NOTICE.md").is_file());
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(
        err.contains("unpacked the built-in emoji64 dataset"),
        "{err}"
    );
    let run = tmp.path().join("checkpoints/emoji64");
    let first = std::fs::read(run.join("latest_net_G_A.safetensors")).unwrap();
    let second = demo("1");
    assert_success(&second);
    assert!(!String::from_utf8_lossy(&second.stderr).contains("unpacked"));
    assert_eq!(
        std::fs::read(run.join("latest_net_G_A.safetensors")).unwrap(),
        first,
        "the same run again"
    );
    let log = std::fs::read_to_string(run.join("loss_log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "the logs start over: {log}");
    let other = demo("2");
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("already holds a run"));

    // Continued after the cache was cleared: unpacked again where the run recorded it.
    std::fs::remove_dir_all(&unpacked[0]).unwrap();
    let continued = train_cmd()
        .current_dir(tmp.path())
        .env("XDG_CACHE_HOME", tmp.path().join("another-cache"))
        .args(["--continue-train", "--max-steps", "2", "--no-progress"])
        .output()
        .unwrap();
    assert_success(&continued);
    let err = String::from_utf8_lossy(&continued.stderr);
    assert!(
        err.contains("unpacked the built-in emoji64 dataset"),
        "{err}"
    );
    assert!(unpacked[0].join("trainA").is_dir());
    assert!(!tmp.path().join("another-cache").exists());
}

/// A continued run with another batch size goes on at the same image of its epoch (rounded
/// down to a whole batch of the new size), where the reference would start a new epoch: the
/// epoch's order does not depend on the batch size.
#[test]
fn continuing_with_another_batch_size_goes_on_at_the_same_image() {
    let tmp = tempfile::tempdir().unwrap();
    // Three steps of batch 1 in an epoch of five images.
    let first = small_run(
        train_cmd().args(["--max-steps", "3", "--print_freq", "1"]),
        tmp.path(),
    );
    assert_success(&first);
    let resume = |batch: &str, steps: &str| {
        train_cmd()
            .current_dir(tmp.path())
            .args(["--name", "cli", "--continue-train", "--no-progress"])
            .args([
                "--batch-size",
                batch,
                "--max-steps",
                steps,
                "--print_freq",
                "1",
            ])
            .output()
            .unwrap()
    };
    // 3 images are 1 batch of 2 and one image again; then the epoch's last 2 batches.
    let out = resume("2", "10");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("batch size 2 where this run was saved with 1: epoch 1 had trained on 3 images, and goes on at batch 1 of the new size (its last image is trained on again)"),
        "{err}"
    );
    let log = std::fs::read_to_string(tmp.path().join("checkpoints/cli/loss_log.jsonl")).unwrap();
    let epoch_one: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["epoch"] == 1)
        .collect();
    assert_eq!(
        epoch_one.len(),
        5,
        "3 steps of 1, then batches 1 and 2 of 2: {log}"
    );
    // Saved with batch 2 now: continuing with it again says nothing.
    let out = resume("2", "12");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("batch size"), "{err}");

    // A state of an earlier version, without the batch size: the run's options.json has it.
    let tmp = tempfile::tempdir().unwrap();
    let first = small_run(train_cmd().args(["--max-steps", "3"]), tmp.path());
    assert_success(&first);
    let state = tmp
        .path()
        .join("checkpoints/cli/latest_train_state.safetensors");
    let bytes = std::fs::read(&state).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    let key = "cyclegan.train_state";
    let mut saved: serde_json::Value = serde_json::from_str(&metadata[key]).unwrap();
    assert_eq!(saved["progress"]["batch_size"], 1);
    saved["progress"]
        .as_object_mut()
        .unwrap()
        .remove("batch_size");
    metadata.insert(key.to_string(), saved.to_string());
    let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors.tensors();
    std::fs::write(
        &state,
        safetensors::serialize(views, Some(metadata)).unwrap(),
    )
    .unwrap();
    let out = train_cmd()
        .current_dir(tmp.path())
        .args(["--name", "cli", "--continue-train", "--no-progress"])
        .args(["--batch-size", "2", "--max-steps", "4"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("batch size 2 where this run was saved with 1"),
        "{err}"
    );
}

/// A continued run over changed images says so; one whose saved position no longer exists
/// stops with what to do.
#[test]
fn continuing_over_changed_images_warns_or_stops_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    // Three steps of an epoch of five.
    let first = small_run(train_cmd().args(["--max-steps", "3"]), tmp.path());
    assert!(first.status.success());
    let resume = |size: &str, steps: &str| {
        train_cmd()
            .current_dir(tmp.path())
            .args(["--name", "cli", "--continue-train", "--no-progress"])
            .args(["--max-dataset-size", size, "--max-steps", steps])
            .output()
            .unwrap()
    };
    let out = resume("2", "4");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("now has 2 items per epoch, 5 when this run was saved")
            && err.contains("past the end"),
        "{err}"
    );
    let out = resume("4", "4");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("now has 4 items per epoch, 5 when this run was saved"),
        "{err}"
    );
    // The new size is saved: the next resume has nothing to say.
    let out = resume("4", "5");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("items per epoch"),
        "{err}"
    );
}

/// Ctrl-C (SIGINT) or SIGTERM stops training after the current iteration with the latest
/// checkpoint saved, so that --continue-train goes on from where it stopped; the exit status is
/// 130, as for any interrupted command.
#[cfg(unix)]
#[test]
fn an_interrupt_saves_the_latest_checkpoint_before_stopping() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let tmp = tempfile::tempdir().unwrap();
        let child = train_cmd()
            .current_dir(tmp.path())
            .args(["--dataroot", emoji().to_str().unwrap()])
            .args(["--name", "cli", "--netG", "resnet_1blocks", "--ngf", "4"])
            .args(["--ndf", "4", "--load-size", "32", "--crop-size", "32"])
            .args(["--print_freq", "1", "--save_latest_freq", "100000"])
            .arg("--no-progress")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for a few iterations to be logged, then interrupt.
        let log = tmp.path().join("checkpoints/cli/loss_log.jsonl");
        let started = std::time::Instant::now();
        while std::fs::read_to_string(&log).map_or(0, |l| l.lines().count()) < 3 {
            assert!(started.elapsed().as_secs() < 120, "no iterations logged");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // SAFETY: a plain kill(2) of the child this test started.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(
            stderr.contains("the latest checkpoint holds step"),
            "{stderr}"
        );
        let steps = std::fs::read_to_string(&log).unwrap().lines().count();
        assert!(steps >= 3);

        // The checkpoint holds every logged step: a continued run resumes after the last.
        let out = train_cmd()
            .current_dir(tmp.path())
            .args(["--name", "cli", "--continue-train", "--no-progress"])
            .args(["--max-steps", &(steps + 1).to_string()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("({steps} steps done)")),
            "signal {signal}: {steps} steps logged; {stderr}"
        );
    }
}

/// Continuing a run with options of another architecture is refused, naming both in words.
#[test]
fn continuing_with_another_architecture_names_both() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(
        small_run(train_cmd().args(["--max-steps", "1"]), tmp.path())
            .status
            .success()
    );
    let out = train_cmd()
        .current_dir(tmp.path())
        .args([
            "--name",
            "cli",
            "--continue-train",
            "--ngf",
            "8",
            "--no-progress",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("latest_net_G_A.safetensors holds a resnet_1blocks generator, ngf 4")
            && err.contains("configured for a resnet_1blocks generator, ngf 8"),
        "{err}"
    );
}

/// `--epoch_count N` starts the numbering at N and the schedule there, and training still ends
/// at epoch n_epochs + n_epochs_decay, as the reference's
/// `range(epoch_count, n_epochs + n_epochs_decay + 1)`: with 2 + 1 epochs from epoch 3, one
/// epoch runs, at the linear policy's lr * (1 - (3 - 2) / (1 + 1)).
#[test]
fn epoch_count_starts_later_in_the_same_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let out = small_run(
        train_cmd().args([
            "--epoch_count",
            "3",
            "--n_epochs",
            "2",
            "--n_epochs_decay",
            "1",
            "--print_freq",
            "1",
        ]),
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let log = std::fs::read_to_string(tmp.path().join("checkpoints/cli/loss_log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "one epoch of the 5 images: {log}");
    for line in &lines {
        assert_eq!(line["epoch"], 3);
        assert!(
            (line["lr"].as_f64().unwrap() - 0.0001).abs() < 1e-12,
            "{line}"
        );
    }
    let err = failure(&[
        "--dataroot",
        emoji().to_str().unwrap(),
        "--epoch_count",
        "4",
        "--n_epochs",
        "2",
        "--n_epochs_decay",
        "1",
    ]);
    assert!(err.contains("past the schedule's last epoch, 3"), "{err}");
}
