//! The `cyclegan-train` binary as a user meets it: outputs of a short run, and clear errors.

use std::path::Path;
use std::process::Command;

fn train_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cyclegan-train"))
}

fn emoji() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/emoji64")
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
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
}
