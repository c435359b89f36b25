//! `cargo xtask fetch-model`, run as a command against a server on 127.0.0.1 (the test server
//! of cyclegan-fetch's tests): what it leaves in place and what it says, when the download is
//! a generator, not a generator, interrupted, or cannot be converted for a local reason. No
//! test touches the internet.

#[path = "../../crates/cyclegan-fetch/tests/common/mod.rs"]
mod common;

use common::{Behaviour, TestServer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/cyclegan-checkpoint/tests/fixtures")
        .join(name);
    std::fs::read(path).unwrap()
}

/// A resnet_9blocks generator (ngf 4) in torch.save's zip format.
fn generator() -> Vec<u8> {
    fixture("resnet9_zip.pth")
}

/// A pixel discriminator: a valid checkpoint, but not a generator.
fn discriminator() -> Vec<u8> {
    fixture("pixel_legacy.pth")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// `cargo xtask fetch-model horse2zebra --dest DEST --base-url SERVER/models` and `extra`;
/// with `max_file_kib`, no file it writes may grow past that (as on a full disk).
fn fetch_model(server: &TestServer, dest: &Path, extra: &[&str], max_file_kib: Option<u32>) -> Run {
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let mut command = match max_file_kib {
        Some(kib) => {
            let mut sh = Command::new("sh");
            // Writes past the limit fail with EFBIG ("File too large") instead of a signal.
            sh.arg("-c")
                .arg(format!(
                    "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
                    kib * 2
                ))
                .arg(xtask);
            sh
        }
        None => Command::new(xtask),
    };
    command
        .args([
            "fetch-model",
            "horse2zebra",
            "--no-progress",
            "--retries",
            "0",
        ])
        .arg("--dest")
        .arg(dest)
        .arg("--base-url")
        .arg(format!("{}/models", server.base_url))
        .args(extra)
        .env_remove("RUST_LOG");
    command.output().unwrap().into()
}

fn model_dir(dest: &Path) -> PathBuf {
    dest.join("horse2zebra_pretrained")
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const MODEL: &str = "/models/horse2zebra.pth";

#[test]
fn a_downloaded_discriminator_is_refused_and_leaves_nothing_that_passes_as_a_model() {
    let server = TestServer::start();
    server.put(MODEL, discriminator());
    let dest = tempfile::tempdir().unwrap();
    for run in 1..=2 {
        let out = fetch_model(&server, dest.path(), &[], None);
        assert_eq!(out.code, 1, "run {run}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.contains("is not a usable pretrained generator")
                && out.stderr.contains("discriminator")
                && out.stderr.contains("the download was removed"),
            "run {run}: {}",
            out.stderr
        );
        assert!(
            !out.stdout.contains("present already"),
            "run {run}: {}",
            out.stdout
        );
        assert_eq!(
            listing(&model_dir(dest.path())),
            Vec::<String>::new(),
            "run {run}: files left"
        );
    }
    assert_eq!(server.log().len(), 2, "the second run fetches again");
}

#[test]
fn a_discriminator_copied_in_by_hand_is_kept_but_never_passes_as_a_model() {
    let server = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    let pth = model_dir(dest.path()).join("latest_net_G.pth");
    std::fs::create_dir_all(pth.parent().unwrap()).unwrap();
    std::fs::write(&pth, discriminator()).unwrap();
    for run in 1..=2 {
        let out = fetch_model(&server, dest.path(), &[], None);
        assert_eq!(out.code, 1, "run {run}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr
                .contains("is present already (nothing was fetched)")
                && out.stderr.contains("not a usable pretrained generator")
                && out.stderr.contains("pass --force")
                && !out.stderr.contains("from the server"),
            "run {run}: {}",
            out.stderr
        );
        assert_eq!(listing(&model_dir(dest.path())), ["latest_net_G.pth"]);
        assert_eq!(std::fs::read(&pth).unwrap(), discriminator());
    }
    assert!(server.log().is_empty());
}

#[test]
fn a_forced_fetch_keeps_the_model_in_place_until_the_new_one_is_checked() {
    let server = TestServer::start();
    server.put(MODEL, generator());
    let dest = tempfile::tempdir().unwrap();
    let dir = model_dir(dest.path());
    let (pth, safetensors) = (
        dir.join("latest_net_G.pth"),
        dir.join("latest_net_G.safetensors"),
    );
    let out = fetch_model(&server, dest.path(), &[], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("resnet_9blocks"), "{}", out.stdout);
    assert_eq!(
        listing(&dir),
        ["latest_net_G.pth", "latest_net_G.safetensors"]
    );
    let converted = std::fs::read(&safetensors).unwrap();

    // Present: said once, on standard output.
    let out = fetch_model(&server, dest.path(), &[], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.stdout.matches("present already").count(),
        1,
        "{}",
        out.stdout
    );
    assert!(!out.stderr.contains("present already"), "{}", out.stderr);

    // Forced, and interrupted: the model stays in place during and after the download.
    let in_place = Arc::new(Mutex::new(Vec::new()));
    let (p, s, seen) = (pth.clone(), safetensors.clone(), in_place.clone());
    server.on_request(move |_| seen.lock().unwrap().push(p.is_file() && s.is_file()));
    server.behave(
        MODEL,
        Behaviour {
            drop_after: Some(50_000),
            drops: 1,
            ..Default::default()
        },
    );
    let out = fetch_model(&server, dest.path(), &["--force"], None);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("run the command again to resume"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&pth).unwrap(), generator());
    assert_eq!(std::fs::read(&safetensors).unwrap(), converted);
    assert_eq!(
        listing(&dir),
        [
            ".latest_net_G.pth.origin",
            ".latest_net_G.pth.part",
            "latest_net_G.pth",
            "latest_net_G.safetensors"
        ]
    );

    // Forced again: resumed, checked, swapped.
    let out = fetch_model(&server, dest.path(), &["--force"], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        server.log().last().unwrap().range.as_deref(),
        Some("bytes=50000-")
    );
    assert_eq!(
        listing(&dir),
        ["latest_net_G.pth", "latest_net_G.safetensors"]
    );
    assert!(
        in_place.lock().unwrap().iter().all(|&present| present),
        "the model was not in place during a download"
    );

    // Forced, and the server's file is no generator: the model in place is left as it was.
    server.put(MODEL, discriminator());
    let out = fetch_model(&server, dest.path(), &["--force"], None);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("not a usable pretrained generator")
            && out.stderr.contains("latest_net_G.pth was left as it was"),
        "{}",
        out.stderr
    );
    assert_eq!(std::fs::read(&pth).unwrap(), generator());
    assert_eq!(std::fs::read(&safetensors).unwrap(), converted);
    assert_eq!(
        listing(&dir),
        ["latest_net_G.pth", "latest_net_G.safetensors"]
    );
}

#[test]
fn a_download_that_cannot_be_converted_for_a_local_reason_is_kept_and_used_next_time() {
    let server = TestServer::start();
    server.put(MODEL, generator());
    let dest = tempfile::tempdir().unwrap();
    let dir = model_dir(dest.path());
    // The download completes; writing the conversion then fails as on a full disk.
    let mut options = cyclegan_fetch::FetchOptions::new(dest.path());
    options.base_url = Some(format!("{}/models", server.base_url));
    options.download.progress = false;
    cyclegan_fetch::download_model("horse2zebra", &options).unwrap();
    let out = fetch_model(&server, dest.path(), &[], Some(50));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("File too large")
            && out.stderr.contains(".latest_net_G.pth")
            && out.stderr.contains("is complete and was kept")
            && !out.stderr.contains("not a usable"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(dir.join(".latest_net_G.pth")).unwrap(),
        generator()
    );
    assert!(!dir.join("latest_net_G.pth").exists());

    let out = fetch_model(&server, dest.path(), &[], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(server.log().len(), 1, "downloaded again");
    assert_eq!(
        listing(&dir),
        ["latest_net_G.pth", "latest_net_G.safetensors"]
    );
}

/// A fetch of a model or dataset that another command is fetching into the same place stops
/// at once, naming the other one, before any request or file: two at once would resume each
/// other's partial downloads and swap files under each other.
#[test]
fn a_second_fetch_of_the_same_thing_is_refused_while_the_first_runs() {
    let server = TestServer::start();
    server.put(MODEL, generator());
    let dest = tempfile::tempdir().unwrap();
    // This test process stands for the first fetch.
    let model_lock = model_dir(dest.path()).join(".lock");
    let held = cyclegan_checkpoint::FolderLock::acquire(&model_lock, "the first fetch").unwrap();
    let out = fetch_model(&server, dest.path(), &[], None);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("the model horse2zebra is being fetched by another command")
            && out.stderr.contains("the first fetch"),
        "{}",
        out.stderr
    );
    assert_eq!(listing(&model_dir(dest.path())), vec![".lock".to_string()]);
    drop(held);

    let dataset_lock = dest.path().join(".horse2zebra.lock");
    let held = cyclegan_checkpoint::FolderLock::acquire(&dataset_lock, "the first fetch").unwrap();
    let out: Run = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch-dataset", "horse2zebra", "--no-progress", "--dest"])
        .arg(dest.path())
        .arg("--base-url")
        .arg(format!("{}/datasets", server.base_url))
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("the dataset horse2zebra is being fetched by another command"),
        "{}",
        out.stderr
    );
    assert!(server.log().is_empty(), "no request was made");
    drop(held);

    // Once the first is done, the model is fetched.
    let out = fetch_model(&server, dest.path(), &[], None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        listing(&model_dir(dest.path())),
        ["latest_net_G.pth", "latest_net_G.safetensors"]
    );
}
