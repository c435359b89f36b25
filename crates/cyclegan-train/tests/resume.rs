//! Resuming is exact: N steps, stop, resume to N + M gives bit-identical weights, optimiser
//! state, pools and position to N + M uninterrupted steps (CPU, seeded).

use cyclegan_train::{train, Cli, TrainConfig, TrainError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A tiny dataset: a few real emoji of the embedded set.
fn dataset(root: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/emoji64");
    let dataroot = root.join("data");
    for (folder, count) in [("trainA", 4), ("trainB", 3), ("testA", 2), ("testB", 2)] {
        std::fs::create_dir_all(dataroot.join(folder)).unwrap();
        let mut files: Vec<_> = std::fs::read_dir(source.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files.iter().take(count) {
            std::fs::copy(f, dataroot.join(folder).join(f.file_name().unwrap())).unwrap();
        }
    }
    dataroot
}

fn config(
    dataroot: &Path,
    checkpoints: &Path,
    name: &str,
    max_steps: u64,
    continue_train: bool,
) -> TrainConfig {
    let cli = Cli {
        dataroot: Some(dataroot.to_path_buf()),
        name: Some(name.into()),
        checkpoints_dir: Some(checkpoints.to_path_buf()),
        net_g: Some("resnet_1blocks".parse().unwrap()),
        ngf: Some(4),
        ndf: Some(4),
        dropout: true,
        load_size: Some(28),
        crop_size: Some(24),
        pool_size: Some(2),
        n_epochs: Some(1),
        n_epochs_decay: Some(2),
        print_freq: Some(2),
        display_freq: Some(3),
        save_latest_freq: Some(100),
        seed: Some(42),
        max_steps: Some(max_steps),
        continue_train,
        workers: Some(2),
        no_progress: true,
        ..Cli::default()
    };
    TrainConfig::resolve(&cli, None).unwrap()
}

/// A safetensors file's content: its metadata (with the wall-clock seconds of a training state
/// left out, the one thing that legitimately differs) and its tensors' bytes.
/// A checkpoint file's metadata and its named tensors' bytes, sorted by name.
type Content = (HashMap<String, String>, Vec<(String, Vec<u8>)>);

fn content(path: &Path) -> Content {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap_or_default();
    for value in metadata.values_mut() {
        if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(value) {
            if let Some(progress) = json.get_mut("progress").and_then(|p| p.as_object_mut()) {
                progress.remove("seconds");
            }
            *value = json.to_string();
        }
    }
    let mut tensors: Vec<(String, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.data().to_vec()))
        .collect();
    tensors.sort();
    (metadata, tensors)
}

fn assert_same_checkpoints(a: &Path, b: &Path, what: &str) {
    for file in [
        "latest_net_G_A.safetensors",
        "latest_net_G_B.safetensors",
        "latest_net_D_A.safetensors",
        "latest_net_D_B.safetensors",
        "latest_train_state.safetensors",
    ] {
        assert!(
            content(&a.join(file)) == content(&b.join(file)),
            "{what}: {file} differs between the resumed and the uninterrupted run"
        );
    }
}

#[test]
fn resuming_mid_epoch_and_at_an_epoch_boundary_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = dataset(tmp.path());
    let checkpoints = tmp.path().join("checkpoints");

    // 9 steps in one go (4 per epoch: crosses two epoch ends and learning-rate changes).
    train(&config(&dataroot, &checkpoints, "straight", 9, false), None).unwrap();
    // 3 steps, then 3 more (to an epoch's end: 6 is not, 4 and 8 are), then 3 more.
    train(&config(&dataroot, &checkpoints, "resumed", 3, false), None).unwrap();
    train(&config(&dataroot, &checkpoints, "resumed", 4, true), None).unwrap();
    train(&config(&dataroot, &checkpoints, "resumed", 9, true), None).unwrap();
    assert_same_checkpoints(
        &checkpoints.join("straight"),
        &checkpoints.join("resumed"),
        "resumed at steps 3 and 4",
    );

    // The runs really trained: the weights moved away from a fresh start of the same seed.
    train(&config(&dataroot, &checkpoints, "short", 1, false), None).unwrap();
    let g = "latest_net_G_A.safetensors";
    assert!(
        content(&checkpoints.join("short").join(g))
            != content(&checkpoints.join("straight").join(g))
    );
}

#[test]
fn continue_train_without_a_run_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = dataset(tmp.path());
    let err = train(
        &config(&dataroot, &tmp.path().join("none"), "missing", 2, true),
        None,
    )
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("does not exist") && message.contains("--name"),
        "{message}"
    );
    assert!(matches!(err, TrainError::RunFolder(_)), "{err:?}");
}

/// A library caller can tell why a run did not start: a run folder another process holds, a
/// new run over an existing one.
#[test]
fn errors_say_what_kind_of_problem_stopped_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = dataset(tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    train(&config(&dataroot, &checkpoints, "run", 1, false), None).unwrap();
    let err = train(&config(&dataroot, &checkpoints, "run", 2, false), None).unwrap_err();
    assert!(
        matches!(&err, TrainError::RunFolder(m) if m.contains("already holds a run")),
        "{err:?}"
    );

    // Another process's lock, as cyclegan_checkpoint::FolderLock takes it.
    let lock = checkpoints.join("run/.lock");
    std::fs::write(&lock, "pid 4242, cyclegan-train\n").unwrap();
    let other = std::fs::File::options().write(true).open(&lock).unwrap();
    other.try_lock().unwrap();
    let err = train(&config(&dataroot, &checkpoints, "run", 2, true), None).unwrap_err();
    match &err {
        TrainError::RunInUse { run_dir, holder } => {
            assert_eq!(run_dir, &checkpoints.join("run"));
            assert_eq!(holder, "pid 4242, cyclegan-train");
        }
        other => panic!("expected RunInUse, got {other:?}"),
    }
    drop(other);
    train(&config(&dataroot, &checkpoints, "run", 2, true), None).unwrap();
}

fn copy_file(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
}

/// A save is one set of files (`cyclegan_checkpoint::FileSet`): whatever moment an interruption
/// hits, the next run completes the set or drops it, and never resumes networks of one step
/// with the training state of another. Both leftovers are made by hand here, as a kill would
/// leave them.
#[test]
fn an_interrupted_save_is_completed_or_dropped_and_resuming_stays_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = dataset(tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    train(&config(&dataroot, &checkpoints, "straight", 6, false), None).unwrap();

    let run = checkpoints.join("cut");
    train(&config(&dataroot, &checkpoints, "cut", 3, false), None).unwrap();
    let old = tmp.path().join("old");
    std::fs::create_dir(&old).unwrap();
    let moved_late = [
        "latest_net_G_B.safetensors",
        "latest_net_D_B.safetensors",
        "latest_train_state.safetensors",
    ];
    for file in moved_late {
        copy_file(&run.join(file), &old.join(file));
    }
    train(&config(&dataroot, &checkpoints, "cut", 6, true), None).unwrap();
    // Killed while moving the step-6 set into place: G_A and D_A moved, the rest still in the
    // committed set's folder, the step-3 files in their place.
    let committed = run.join(".latest.commit");
    std::fs::create_dir(&committed).unwrap();
    for file in moved_late {
        std::fs::rename(run.join(file), committed.join(file)).unwrap();
        copy_file(&old.join(file), &run.join(file));
    }
    let report = train(&config(&dataroot, &checkpoints, "cut", 6, true), None).unwrap();
    assert_eq!(
        report.progress.total_steps, 6,
        "resumed at the completed set's step"
    );
    assert!(!committed.exists());
    assert_same_checkpoints(&checkpoints.join("straight"), &run, "a completed set");

    // Killed while writing a set: its staging folder holds part of it. The run resumes from the
    // set in place and the partial one is gone.
    let staging = run.join(".latest.staging");
    std::fs::create_dir(&staging).unwrap();
    std::fs::write(staging.join("latest_net_G_A.safetensors"), b"half a file").unwrap();
    let report = train(&config(&dataroot, &checkpoints, "cut", 6, true), None).unwrap();
    assert_eq!(report.progress.total_steps, 6);
    assert!(!staging.exists());
    assert_same_checkpoints(&checkpoints.join("straight"), &run, "a dropped set");
}

/// A continued run whose data fails before its first checkpoint leaves the run's options as
/// they were: a later plain `--continue-train` does not pick up the failed command's options.
#[test]
fn a_continue_that_fails_before_saving_keeps_the_run_s_options() {
    let tmp = tempfile::tempdir().unwrap();
    let dataroot = dataset(tmp.path());
    let checkpoints = tmp.path().join("checkpoints");
    train(&config(&dataroot, &checkpoints, "run", 2, false), None).unwrap();
    let options = checkpoints.join("run/options.json");
    let before = std::fs::read(&options).unwrap();

    let broken = tmp.path().join("broken");
    for folder in ["trainA", "trainB"] {
        std::fs::create_dir_all(broken.join(folder)).unwrap();
        for entry in std::fs::read_dir(dataroot.join(folder)).unwrap() {
            let path = entry.unwrap().path();
            copy_file(&path, &broken.join(folder).join(path.file_name().unwrap()));
        }
    }
    // Last in order: read at step 5, after steps 3 and 4 have trained.
    std::fs::write(broken.join("trainA/zz_not_an_image.png"), b"not a png").unwrap();
    let mut failing = config(&broken, &checkpoints, "run", 5, true);
    failing.data.serial_batches = true;
    let err = train(&failing, None).unwrap_err();
    assert!(
        format!("{err:#}").contains("zz_not_an_image.png"),
        "{err:#}"
    );
    assert_eq!(
        std::fs::read(&options).unwrap(),
        before,
        "options.json changed"
    );

    // A continue that trains does record its options, with its checkpoint.
    let mut longer = config(&dataroot, &checkpoints, "run", 3, true);
    longer.display_freq = 1;
    train(&longer, None).unwrap();
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&options).unwrap()).unwrap();
    assert_eq!(saved["display_freq"], 1, "{saved}");
}
