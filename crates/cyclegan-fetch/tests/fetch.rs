//! Fetching from a server on 127.0.0.1 (`common::TestServer`): good archives, interrupted and
//! resumed downloads, servers without `Range`, corrupt, truncated and hostile archives. No test
//! touches the internet.

mod common;

use common::{Behaviour, TestServer};
use cyclegan_fetch::{
    download, fetch_dataset, fetch_model, partial_path, remote_size, DownloadOptions, FetchError,
    FetchOptions,
};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use zip::write::SimpleFileOptions;

fn options(dest: &Path, server: &TestServer, retries: u32) -> FetchOptions {
    FetchOptions {
        dest: dest.to_path_buf(),
        base_url: Some(format!("{}/datasets/", server.base_url)),
        force: false,
        download: DownloadOptions {
            retries,
            retry_delay: Duration::ZERO,
            progress: false,
            read_timeout: Duration::from_secs(10),
        },
    }
}

/// A zip archive of `(name, content)` entries (a name ending in '/' is a folder).
fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(method);
    for (name, content) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, opts).unwrap();
        } else {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(content).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

/// The reference's layout: one top folder NAME/ with the four splits, with enough content
/// that an interruption in the middle is an interruption of the body.
fn dataset_zip(name: &str) -> Vec<u8> {
    // Incompressible, so the archive is about 400 kB.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let big: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let a = format!("{name}/");
    let files = [
        (format!("{name}/trainA/"), Vec::new()),
        (format!("{name}/trainA/n02381460_1.jpg"), big.clone()),
        (format!("{name}/trainB/n02391049_2.jpg"), b"zebra".to_vec()),
        (
            format!("{name}/testA/n02381460_3.jpg"),
            b"horse test".to_vec(),
        ),
        (format!("{name}/testB/n02391049_4.jpg"), big),
    ];
    let mut entries: Vec<(&str, &[u8])> = vec![(a.as_str(), b"")];
    entries.extend(files.iter().map(|(n, c)| (n.as_str(), c.as_slice())));
    zip_of(&entries, zip::CompressionMethod::Deflated)
}

/// Names in `dir`, sorted (to see leftovers).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_horse2zebra_layout(root: &Path) {
    let d = root.join("horse2zebra");
    assert_eq!(listing(&d), ["testA", "testB", "trainA", "trainB"]);
    assert_eq!(
        std::fs::read(d.join("trainB/n02391049_2.jpg")).unwrap(),
        b"zebra"
    );
    assert_eq!(
        std::fs::read(d.join("trainA/n02381460_1.jpg"))
            .unwrap()
            .len(),
        200_000
    );
}

#[test]
fn a_good_archive_is_laid_out_for_training_and_leaves_nothing_else() {
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    let dest = tempfile::tempdir().unwrap();
    // Left by an extraction that was killed: cleaned up.
    std::fs::create_dir_all(dest.path().join(".horse2zebra.extract-k1ll3d/content")).unwrap();
    let fetched = fetch_dataset("horse2zebra", &options(dest.path(), &server, 0)).unwrap();
    assert_eq!(fetched.path, dest.path().join("horse2zebra"));
    assert_eq!(fetched.files, 4);
    assert!(!fetched.already_present);
    assert_horse2zebra_layout(dest.path());
    assert_eq!(
        listing(dest.path()),
        ["horse2zebra"],
        "temporary files left"
    );
}

#[test]
fn a_flat_archive_is_laid_out_too() {
    let server = TestServer::start();
    server.put(
        "/datasets/mini.zip",
        zip_of(
            &[
                ("trainA/a.png", b"a"),
                ("trainB/b.png", b"b"),
                ("testA/c.png", b"c"),
            ],
            zip::CompressionMethod::Stored,
        ),
    );
    let dest = tempfile::tempdir().unwrap();
    fetch_dataset("mini", &options(dest.path(), &server, 0)).unwrap();
    let d = dest.path().join("mini");
    assert_eq!(listing(&d), ["testA", "trainA", "trainB"]);
    assert_eq!(std::fs::read(d.join("testA/c.png")).unwrap(), b"c");
}

#[test]
fn an_interrupted_download_is_an_error_and_the_next_run_resumes_it_with_range() {
    let server = TestServer::start();
    let archive = dataset_zip("horse2zebra");
    let half = archive.len() / 2;
    server.put("/datasets/horse2zebra.zip", archive.clone());
    server.behave(
        "/datasets/horse2zebra.zip",
        Behaviour {
            drop_after: Some(half),
            drops: 1,
            ..Default::default()
        },
    );
    let dest = tempfile::tempdir().unwrap();
    let opts = options(dest.path(), &server, 0);
    let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
    match &err {
        FetchError::Truncated {
            received, expected, ..
        } => {
            assert_eq!(*received, half as u64);
            assert_eq!(*expected, archive.len() as u64);
        }
        other => panic!("expected a truncated download, got {other}"),
    }
    assert!(err.to_string().contains("run the command again to resume"));
    // The partial download is kept, and no dataset folder appeared.
    let part = partial_path(&dest.path().join(".horse2zebra.zip"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), half as u64);
    assert!(!dest.path().join("horse2zebra").exists());

    fetch_dataset("horse2zebra", &opts).unwrap();
    assert_horse2zebra_layout(dest.path());
    let log = server.log();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].range, None);
    assert_eq!(log[1].range, Some(format!("bytes={half}-")));
    assert_eq!(listing(dest.path()), ["horse2zebra"]);
}

#[test]
fn retries_resume_within_one_run() {
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    server.behave(
        "/datasets/horse2zebra.zip",
        Behaviour {
            drop_after: Some(40_000),
            drops: 3,
            ..Default::default()
        },
    );
    let dest = tempfile::tempdir().unwrap();
    fetch_dataset("horse2zebra", &options(dest.path(), &server, 3)).unwrap();
    assert_horse2zebra_layout(dest.path());
    let ranges: Vec<Option<String>> = server.log().into_iter().map(|r| r.range).collect();
    assert_eq!(
        ranges,
        [
            None,
            Some("bytes=40000-".into()),
            Some("bytes=80000-".into()),
            Some("bytes=120000-".into())
        ]
    );
}

#[test]
fn a_server_without_range_support_is_read_again_from_the_start() {
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    server.behave(
        "/datasets/horse2zebra.zip",
        Behaviour {
            no_range: true,
            drop_after: Some(50_000),
            drops: 1,
            ..Default::default()
        },
    );
    let dest = tempfile::tempdir().unwrap();
    let opts = options(dest.path(), &server, 0);
    assert!(matches!(
        fetch_dataset("horse2zebra", &opts),
        Err(FetchError::Truncated { .. })
    ));
    fetch_dataset("horse2zebra", &opts).unwrap();
    assert_horse2zebra_layout(dest.path());
    assert_eq!(server.log()[1].range.as_deref(), Some("bytes=50000-"));
}

#[test]
fn a_body_shorter_than_its_content_length_is_never_extracted() {
    let server = TestServer::start();
    server.put("/datasets/facades.zip", dataset_zip("facades"));
    server.behave(
        "/datasets/facades.zip",
        Behaviour {
            drop_after: Some(0),
            drops: usize::MAX,
            ..Default::default()
        },
    );
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_dataset("facades", &options(dest.path(), &server, 2)).unwrap_err();
    assert!(
        matches!(err, FetchError::Truncated { received: 0, .. }),
        "{err}"
    );
    assert_eq!(server.log().len(), 3, "one try and two retries");
    assert!(!dest.path().join("facades").exists());
}

fn assert_refused_cleanly(dest: &Path, name: &str) {
    assert!(!dest.join(name).exists(), "a dataset folder appeared");
    assert_eq!(
        listing(dest),
        Vec::<String>::new(),
        "temporary files or extracted entries left behind"
    );
}

#[test]
fn corrupt_and_truncated_archives_are_refused_and_leave_nothing() {
    let server = TestServer::start();
    let good = dataset_zip("maps");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "garbage",
            b"<html>not a zip</html>".repeat(100),
            "it starts with the text \"<html>not a zip<\"",
        ),
        // An ordinary page: a line break within the first 16 bytes, markup later.
        (
            "page",
            b"\n  <!DOCTYPE html>\n<HTML><head><title>Moved</title></head><body>gone</body></HTML>\n"
                .to_vec(),
            "it is a web page (it starts with the text \"<!DOCTYPE html>\")",
        ),
        // Complete as far as HTTP knows (Content-Length matches), but cut.
        (
            "cut",
            good[..good.len() / 2].to_vec(),
            "not a valid zip archive",
        ),
        (
            "empty",
            zip_of(&[], zip::CompressionMethod::Stored),
            "holds no files",
        ),
    ];
    for (label, bytes, message) in cases {
        server.put("/datasets/maps.zip", bytes);
        let dest = tempfile::tempdir().unwrap();
        let err = fetch_dataset("maps", &options(dest.path(), &server, 0)).unwrap_err();
        assert!(
            matches!(err, FetchError::CorruptArchive { .. }),
            "{label}: {err}"
        );
        assert!(err.to_string().contains(message), "{label}: {err}");
        assert_refused_cleanly(dest.path(), "maps");
    }
}

#[test]
fn a_damaged_entry_fails_its_checksum_and_nothing_is_kept() {
    let server = TestServer::start();
    let content = b"a very particular content that we will damage".repeat(50);
    let mut archive = zip_of(
        &[
            ("maps/trainA/1.jpg", b"fine"),
            ("maps/trainB/2.jpg", &content),
        ],
        zip::CompressionMethod::Stored,
    );
    let at = archive
        .windows(content.len())
        .position(|w| w == content.as_slice())
        .unwrap();
    archive[at + 100] ^= 0xff;
    server.put("/datasets/maps.zip", archive);
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_dataset("maps", &options(dest.path(), &server, 0)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::CorruptArchive { .. }), "{msg}");
    assert!(msg.contains("maps/trainB/2.jpg"), "{msg}");
    assert_refused_cleanly(dest.path(), "maps");
}

#[test]
fn entries_that_would_land_outside_the_destination_are_refused() {
    for (entry, reason) in [
        ("../evil.txt", "'..'"),
        ("maps/../../evil.txt", "'..'"),
        ("/tmp/cyclegan-fetch-evil.txt", "absolute path"),
    ] {
        let server = TestServer::start();
        server.put(
            "/datasets/maps.zip",
            zip_of(
                &[("maps/trainA/1.jpg", b"fine"), (entry, b"evil")],
                zip::CompressionMethod::Stored,
            ),
        );
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("data");
        let err = fetch_dataset("maps", &options(&dest, &server, 0)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, FetchError::UnsafeEntry { .. }),
            "{entry}: {msg}"
        );
        assert!(msg.contains(entry) && msg.contains(reason), "{msg}");
        assert_refused_cleanly(&dest, "maps");
        assert_eq!(listing(root.path()), ["data"], "{entry} escaped");
        assert!(!Path::new("/tmp/cyclegan-fetch-evil.txt").exists());
    }
}

#[test]
fn symbolic_links_are_refused() {
    let server = TestServer::start();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default();
    zip.start_file("maps/trainA/1.jpg", opts).unwrap();
    zip.write_all(b"fine").unwrap();
    zip.add_symlink("maps/trainA/2.jpg", "/etc/passwd", opts)
        .unwrap();
    server.put("/datasets/maps.zip", zip.finish().unwrap().into_inner());
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_dataset("maps", &options(dest.path(), &server, 0)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("maps/trainA/2.jpg") && msg.contains("symbolic link"),
        "{msg}"
    );
    assert_refused_cleanly(dest.path(), "maps");
}

#[test]
fn a_file_where_the_dataset_goes_is_never_replaced() {
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(dest.path().join("horse2zebra"), "my notes").unwrap();
    let mut opts = options(dest.path(), &server, 0);
    for force in [false, true] {
        opts.force = force;
        let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
        assert!(err.to_string().contains("move it away"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dest.path().join("horse2zebra")).unwrap(),
            "my notes"
        );
    }
    assert!(server.log().is_empty(), "nothing was downloaded");
}

#[test]
fn a_present_dataset_is_not_fetched_again_unless_forced() {
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    let dest = tempfile::tempdir().unwrap();
    let mut opts = options(dest.path(), &server, 0);
    fetch_dataset("horse2zebra", &opts).unwrap();
    let again = fetch_dataset("horse2zebra", &opts).unwrap();
    assert!(again.already_present);
    assert_eq!(server.log().len(), 1, "fetched again without --force");

    // Forced: replaced by the server's current content, nothing of the old one kept.
    server.put(
        "/datasets/horse2zebra.zip",
        zip_of(
            &[
                ("horse2zebra/trainA/new.jpg", b"new"),
                ("horse2zebra/trainB/new.jpg", b"new"),
            ],
            zip::CompressionMethod::Stored,
        ),
    );
    opts.force = true;
    let forced = fetch_dataset("horse2zebra", &opts).unwrap();
    assert!(!forced.already_present);
    assert_eq!(
        listing(&dest.path().join("horse2zebra")),
        ["trainA", "trainB"]
    );
    assert_eq!(
        listing(&dest.path().join("horse2zebra/trainA")),
        ["new.jpg"]
    );
    assert_eq!(listing(dest.path()), ["horse2zebra"]);
}

#[test]
fn names_are_checked_before_anything_is_fetched() {
    let dest = tempfile::tempdir().unwrap();
    let opts = FetchOptions::new(dest.path());
    let msg = fetch_dataset("cityscapes", &opts).unwrap_err().to_string();
    assert!(
        msg.contains("licence") && msg.contains("cityscapes-dataset.com"),
        "{msg}"
    );
    let msg = fetch_dataset("zebras", &opts).unwrap_err().to_string();
    assert!(msg.contains("unknown dataset 'zebras'"), "{msg}");
    assert!(
        msg.contains("horse2zebra") && msg.contains("mini_colorization"),
        "{msg}"
    );
    let msg = fetch_model("zebras", &opts).unwrap_err().to_string();
    assert!(
        msg.contains("unknown model 'zebras'") && msg.contains("style_monet"),
        "{msg}"
    );
    assert_eq!(listing(dest.path()), Vec::<String>::new());
}

#[test]
fn a_missing_file_is_an_http_error() {
    let server = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_dataset("ae_photos", &options(dest.path(), &server, 3)).unwrap_err();
    assert!(matches!(err, FetchError::Http { status: 404, .. }), "{err}");
    assert_eq!(server.log().len(), 1, "a 404 is not retried");
    assert!(err.to_string().contains("/datasets/ae_photos.zip"));
}

#[test]
fn a_model_is_saved_where_the_reference_looks_for_it() {
    let server = TestServer::start();
    let weights: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    server.put("/models/style_monet.pth", weights.clone());
    server.behave(
        "/models/style_monet.pth",
        Behaviour {
            drop_after: Some(30_000),
            drops: 1,
            ..Default::default()
        },
    );
    let dest = tempfile::tempdir().unwrap();
    let mut opts = options(dest.path(), &server, 1);
    opts.base_url = Some(format!("{}/models", server.base_url));
    let fetched = fetch_model("style_monet", &opts).unwrap();
    let path = dest.path().join("style_monet_pretrained/latest_net_G.pth");
    assert_eq!(fetched.path, path);
    assert_eq!(fetched.bytes, weights.len() as u64);
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    assert_eq!(
        listing(&dest.path().join("style_monet_pretrained")),
        ["latest_net_G.pth"]
    );
    assert!(fetch_model("style_monet", &opts).unwrap().already_present);
    assert_eq!(server.log().len(), 2);
}

#[test]
fn remote_sizes_come_from_the_server() {
    let server = TestServer::start();
    server.put("/datasets/mini.zip", vec![7; 1234]);
    let url = format!("{}/datasets/mini.zip", server.base_url);
    assert_eq!(
        remote_size(&url, Duration::from_secs(5)).unwrap(),
        Some(1234)
    );
    assert_eq!(server.log()[0].method, "HEAD");
    let missing = format!("{}/datasets/none.zip", server.base_url);
    assert!(remote_size(&missing, Duration::from_secs(5)).is_err());
}

/// `archive` with the 32-bit uncompressed size of its entry `name` set to `size`, in both its
/// local header and its central directory record.
fn declare_size(archive: &mut [u8], name: &str, size: u32) {
    let mut patched = 0;
    for (signature, name_at, size_at) in [(b"PK\x03\x04", 30, 22), (b"PK\x01\x02", 46, 24)] {
        for at in 0..archive.len() - name_at {
            if &archive[at..at + 4] == signature
                && archive[at + name_at..].starts_with(name.as_bytes())
            {
                archive[at + size_at..at + size_at + 4].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
    }
    assert_eq!(patched, 2, "{name}'s headers not found");
}

/// `archive` (written with `large_file`) with the 64-bit uncompressed size of its entry `name`
/// set to `size` in its central directory record's zip64 field, which the reader takes.
fn declare_size64(archive: &mut [u8], name: &str, size: u64) {
    let at = (0..archive.len() - 46)
        .find(|&at| {
            &archive[at..at + 4] == b"PK\x01\x02" && archive[at + 46..].starts_with(name.as_bytes())
        })
        .expect("central directory record");
    assert_eq!(
        archive[at + 24..at + 28],
        [0xff; 4],
        "no zip64 uncompressed size"
    );
    let field = |at: usize| u16::from_le_bytes([archive[at], archive[at + 1]]) as usize;
    let (name_len, extra_len) = (field(at + 28), field(at + 30));
    let mut extra = at + 46 + name_len;
    let end = extra + extra_len;
    while extra < end && field(extra) != 1 {
        extra += 4 + field(extra + 2);
    }
    assert!(extra < end, "no zip64 field");
    archive[extra + 4..extra + 12].copy_from_slice(&size.to_le_bytes());
}

#[test]
fn a_download_larger_than_the_free_space_is_refused_before_anything_is_written() {
    let server = TestServer::start();
    server.put("/datasets/maps.zip", dataset_zip("maps"));
    server.behave(
        "/datasets/maps.zip",
        Behaviour {
            claimed_length: Some(1 << 62),
            ..Default::default()
        },
    );
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_dataset("maps", &options(dest.path(), &server, 2)).unwrap_err();
    let message = err.to_string();
    let FetchError::Io { path, source } = &err else {
        panic!("{message}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{message}");
    assert_eq!(path, &partial_path(&dest.path().join(".maps.zip")));
    assert!(message.contains("maps.zip needs 4.00 EiB"), "{message}");
    assert!(
        message.contains("make room, or pass another --dest"),
        "{message}"
    );
    assert_eq!(
        server.log().len(),
        1,
        "not retried: it would fail the same way"
    );
    assert_refused_cleanly(dest.path(), "maps");
}

#[test]
fn an_archive_whose_content_would_not_fit_is_kept_and_nothing_extracted() {
    let mut archive = {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(true);
        for (name, content) in [("maps/trainA/1.jpg", b"one"), ("maps/trainB/2.jpg", b"two")] {
            zip.start_file(name, opts).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap().into_inner()
    };
    declare_size64(&mut archive, "maps/trainB/2.jpg", 1 << 60);
    let server = TestServer::start();
    server.put("/datasets/maps.zip", archive);
    let dest = tempfile::tempdir().unwrap();
    let opts = options(dest.path(), &server, 0);
    let err = fetch_dataset("maps", &opts).unwrap_err();
    let message = err.to_string();
    let FetchError::KeptDownload {
        path,
        source,
        download,
    } = &err
    else {
        panic!("{message}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{message}");
    assert_eq!(path, &dest.path().join("maps"));
    assert!(message.contains("needs 1.00 EiB"), "{message}");
    assert!(download.is_file(), "the complete archive was not kept");
    assert_eq!(listing(dest.path()), [".maps.zip", ".maps.zip.origin"]);
}

#[test]
fn an_entry_that_inflates_past_its_declared_size_is_refused() {
    let zeros = vec![0u8; 100_000];
    let mut archive = zip_of(
        &[("maps/trainA/1.jpg", b"one"), ("maps/trainB/2.jpg", &zeros)],
        zip::CompressionMethod::Deflated,
    );
    // Within the free space, then 99 kB more than that.
    declare_size(&mut archive, "maps/trainB/2.jpg", 1000);
    let server = TestServer::start();
    server.put("/datasets/maps.zip", archive);
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_dataset("maps", &options(dest.path(), &server, 0)).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(err, FetchError::CorruptArchive { .. }),
        "{message}"
    );
    assert!(message.contains("maps/trainB/2.jpg"), "{message}");
    assert!(message.contains("larger than its declared"), "{message}");
    assert_refused_cleanly(dest.path(), "maps");
}

/// The first half of `archive` left as a partial download in `dest` by a run against `server`.
fn leave_half_downloaded(server: &TestServer, archive: &[u8], dest: &Path) -> usize {
    let half = archive.len() / 2;
    server.put("/datasets/horse2zebra.zip", archive.to_vec());
    server.behave(
        "/datasets/horse2zebra.zip",
        Behaviour {
            drop_after: Some(half),
            drops: 1,
            ..Default::default()
        },
    );
    let err = fetch_dataset("horse2zebra", &options(dest, server, 0)).unwrap_err();
    assert!(matches!(err, FetchError::Truncated { .. }), "{err}");
    let part = partial_path(&dest.join(".horse2zebra.zip"));
    assert_eq!(std::fs::metadata(part).unwrap().len(), half as u64);
    half
}

#[test]
fn a_wrapped_archive_is_unwrapped_beside_stray_top_level_files() {
    let server = TestServer::start();
    server.put(
        "/datasets/horse2zebra.zip",
        zip_of(
            &[
                ("README.txt", b"about this dataset"),
                ("horse2zebra/trainA/1.jpg", b"horse"),
                ("horse2zebra/trainB/2.jpg", b"zebra"),
                ("horse2zebra/testA/3.jpg", b"horse test"),
                ("horse2zebra/testB/4.jpg", b"zebra test"),
            ],
            zip::CompressionMethod::Stored,
        ),
    );
    let dest = tempfile::tempdir().unwrap();
    let fetched = fetch_dataset("horse2zebra", &options(dest.path(), &server, 0)).unwrap();
    assert_eq!(fetched.path, dest.path().join("horse2zebra"));
    assert_eq!(fetched.files, 4);
    assert_eq!(
        listing(&fetched.path),
        ["testA", "testB", "trainA", "trainB"],
        "the dataset must be at DEST/NAME, not DEST/NAME/NAME"
    );
    assert_eq!(listing(dest.path()), ["horse2zebra"]);
}

#[test]
fn an_archive_without_train_a_and_train_b_is_refused_and_the_dataset_in_place_kept() {
    let server = TestServer::start();
    let without_train_b = zip_of(
        &[
            ("horse2zebra/trainA/1.jpg", b"horse"),
            ("horse2zebra/testA/3.jpg", b"horse test"),
        ],
        zip::CompressionMethod::Stored,
    );
    server.put("/datasets/horse2zebra.zip", without_train_b);
    let dest = tempfile::tempdir().unwrap();
    let mut opts = options(dest.path(), &server, 0);
    let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::BadLayout { .. }), "{msg}");
    assert!(
        msg.contains(".horse2zebra.zip")
            && msg.contains("trainA and trainB")
            && msg.contains("it holds horse2zebra/testA/, horse2zebra/trainA/;"),
        "{msg}"
    );
    assert_refused_cleanly(dest.path(), "horse2zebra");

    // Over a dataset in place, with --force: refused, and the dataset is untouched.
    let mine = dest.path().join("horse2zebra");
    std::fs::create_dir_all(mine.join("trainA")).unwrap();
    std::fs::write(mine.join("trainA/mine.jpg"), "mine").unwrap();
    opts.force = true;
    let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
    assert!(matches!(err, FetchError::BadLayout { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(mine.join("trainA/mine.jpg")).unwrap(),
        "mine"
    );
    assert_eq!(listing(dest.path()), ["horse2zebra"]);

    // Nothing that looks like a dataset at all.
    server.put(
        "/datasets/horse2zebra.zip",
        zip_of(&[("notes.txt", b"hello")], zip::CompressionMethod::Stored),
    );
    let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
    assert!(err.to_string().contains("it holds notes.txt"), "{err}");
    assert_eq!(listing(&mine), ["trainA"]);
}

#[test]
fn a_dataset_set_aside_by_an_interrupted_force_fetch_is_put_back() {
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    let dest = tempfile::tempdir().unwrap();
    // Killed between moving the dataset aside and moving the new one into place.
    let staging = dest.path().join(".horse2zebra.extract-k1ll3d");
    std::fs::create_dir_all(staging.join("previous/trainA")).unwrap();
    std::fs::write(staging.join("previous/trainA/mine.jpg"), "mine").unwrap();
    std::fs::create_dir_all(staging.join("content/trainA")).unwrap();

    let fetched = fetch_dataset("horse2zebra", &options(dest.path(), &server, 0)).unwrap();
    assert!(fetched.already_present, "the dataset put back is present");
    assert_eq!(
        std::fs::read_to_string(dest.path().join("horse2zebra/trainA/mine.jpg")).unwrap(),
        "mine"
    );
    assert_eq!(
        listing(dest.path()),
        ["horse2zebra"],
        "the staging folder is left"
    );
    assert!(server.log().is_empty(), "nothing was downloaded");

    // Killed after the new dataset was in place: the old one is not put back over it.
    std::fs::create_dir_all(staging.join("previous/trainA")).unwrap();
    std::fs::write(staging.join("previous/trainA/old.jpg"), "old").unwrap();
    fetch_dataset("horse2zebra", &options(dest.path(), &server, 0)).unwrap();
    assert_eq!(
        listing(&dest.path().join("horse2zebra/trainA")),
        ["mine.jpg"]
    );
    assert_eq!(listing(dest.path()), ["horse2zebra"]);
}

#[test]
fn a_complete_archive_left_by_an_interrupted_extraction_is_extracted_without_downloading_again() {
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    let dest = tempfile::tempdir().unwrap();
    let opts = options(dest.path(), &server, 0);
    // A run that was killed in the middle of extracting: a complete archive, a staging folder.
    let url = format!("{}/datasets/horse2zebra.zip", server.base_url);
    download(&url, &dest.path().join(".horse2zebra.zip"), &opts.download).unwrap();
    let staging = dest
        .path()
        .join(".horse2zebra.extract-k1ll3d/content/trainA");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("n02381460_1.jpg"), "half written").unwrap();

    let fetched = fetch_dataset("horse2zebra", &opts).unwrap();
    assert!(!fetched.already_present);
    assert_horse2zebra_layout(dest.path());
    assert_eq!(
        server.log().len(),
        1,
        "the complete archive was downloaded again"
    );
    assert_eq!(listing(dest.path()), ["horse2zebra"]);

    // One from another address is not used.
    std::fs::remove_dir_all(dest.path().join("horse2zebra")).unwrap();
    let other = TestServer::start();
    other.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    download(
        &format!("{}/datasets/horse2zebra.zip", other.base_url),
        &dest.path().join(".horse2zebra.zip"),
        &opts.download,
    )
    .unwrap();
    fetch_dataset("horse2zebra", &opts).unwrap();
    assert_eq!(server.log().len(), 2, "an archive from elsewhere was used");
    assert_eq!(listing(dest.path()), ["horse2zebra"]);
}

#[test]
fn a_partial_download_from_another_address_is_not_resumed() {
    let first = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    leave_half_downloaded(&first, &dataset_zip("elsewhere"), dest.path());

    let second = TestServer::start();
    second.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    fetch_dataset("horse2zebra", &options(dest.path(), &second, 0)).unwrap();
    assert_eq!(
        second.log()[0].range,
        None,
        "bytes of another address were resumed"
    );
    assert_horse2zebra_layout(dest.path());
    assert_eq!(listing(dest.path()), ["horse2zebra"]);

    // A partial file without a note of its origin (copied in, or from an older version).
    std::fs::remove_dir_all(dest.path().join("horse2zebra")).unwrap();
    let part = partial_path(&dest.path().join(".horse2zebra.zip"));
    std::fs::write(&part, &dataset_zip("elsewhere")[..1000]).unwrap();
    fetch_dataset("horse2zebra", &options(dest.path(), &second, 0)).unwrap();
    assert_eq!(second.log()[1].range, None);
    assert_horse2zebra_layout(dest.path());
}

#[test]
fn a_partial_download_of_a_file_changed_since_starts_again() {
    // With an ETag: the resume asks `If-Range`, and the server sends the new file whole.
    let server = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    server.behave(
        "/datasets/horse2zebra.zip",
        Behaviour {
            etag: true,
            ..Default::default()
        },
    );
    let old = dataset_zip("elsewhere");
    let half = old.len() / 2;
    server.put("/datasets/horse2zebra.zip", old);
    server.behave(
        "/datasets/horse2zebra.zip",
        Behaviour {
            etag: true,
            drop_after: Some(half),
            drops: 1,
            ..Default::default()
        },
    );
    let opts = options(dest.path(), &server, 0);
    fetch_dataset("horse2zebra", &opts).unwrap_err();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    fetch_dataset("horse2zebra", &opts).unwrap();
    assert_horse2zebra_layout(dest.path());
    let log = server.log();
    assert_eq!(log[1].range, Some(format!("bytes={half}-")));
    assert!(log[1].if_range.is_some(), "no If-Range sent");
    assert_eq!(listing(dest.path()), ["horse2zebra"]);

    // Without an ETag: the length the server states now is not the one noted.
    let server = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    let half = leave_half_downloaded(&server, &dataset_zip("elsewhere_longer_name"), dest.path());
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    fetch_dataset("horse2zebra", &options(dest.path(), &server, 0)).unwrap();
    assert_horse2zebra_layout(dest.path());
    let ranges: Vec<_> = server.log().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some(format!("bytes={half}-")), None]);
}

#[test]
fn a_partial_download_longer_than_the_file_starts_again() {
    let server = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    let half = leave_half_downloaded(&server, &dataset_zip("horse2zebra"), dest.path());
    // Now shorter than the partial file: the server answers 416.
    let short = zip_of(
        &[("trainA/a.png", b"a"), ("trainB/b.png", b"b")],
        zip::CompressionMethod::Stored,
    );
    assert!(short.len() < half);
    server.put("/datasets/horse2zebra.zip", short);
    let fetched = fetch_dataset("horse2zebra", &options(dest.path(), &server, 0)).unwrap();
    assert_eq!(listing(&fetched.path), ["trainA", "trainB"]);
    let ranges: Vec<_> = server.log().into_iter().map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some(format!("bytes={half}-")), None]);
}

#[test]
fn a_web_page_answering_a_resume_is_refused_and_the_partial_file_kept() {
    let server = TestServer::start();
    let dest = tempfile::tempdir().unwrap();
    let archive = dataset_zip("horse2zebra");
    let half = leave_half_downloaded(&server, &archive, dest.path());
    let part = partial_path(&dest.path().join(".horse2zebra.zip"));
    // A login page of a proxy, say: the whole of it, with 200.
    server.put(
        "/datasets/horse2zebra.zip",
        b"<!DOCTYPE html><html><body>Please log in</body></html>".to_vec(),
    );
    server.behave(
        "/datasets/horse2zebra.zip",
        Behaviour {
            no_range: true,
            content_type: Some("text/html; charset=utf-8"),
            ..Default::default()
        },
    );
    let opts = options(dest.path(), &server, 2);
    let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::NotTheFile { .. }), "{msg}");
    assert!(
        msg.contains("a web page (Content-Type: text/html; charset=utf-8)")
            && msg.contains("was kept"),
        "{msg}"
    );
    assert_eq!(server.log().len(), 2, "a web page is not retried");
    assert_eq!(std::fs::read(&part).unwrap(), archive[..half]);

    // The server is right again: the partial file resumes.
    server.put("/datasets/horse2zebra.zip", archive);
    server.behave("/datasets/horse2zebra.zip", Behaviour::default());
    fetch_dataset("horse2zebra", &opts).unwrap();
    assert_horse2zebra_layout(dest.path());
    assert_eq!(server.log()[2].range, Some(format!("bytes={half}-")));
}

#[test]
fn an_empty_answer_is_refused_as_not_the_file() {
    let server = TestServer::start();
    server.put("/datasets/mini.zip", Vec::new());
    let dest = tempfile::tempdir().unwrap();
    let err = fetch_dataset("mini", &options(dest.path(), &server, 0)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::NotTheFile { .. }), "{msg}");
    assert!(
        msg.contains("an empty body (Content-Length: 0)") && msg.contains("nothing was written"),
        "{msg}"
    );
    assert_refused_cleanly(dest.path(), "mini");
}

#[test]
fn an_address_without_its_scheme_is_refused_at_once() {
    let dest = tempfile::tempdir().unwrap();
    let mut opts = FetchOptions::new(dest.path());
    opts.base_url = Some("127.0.0.1:8765/x".into());
    opts.download.retry_delay = Duration::from_secs(5);
    let started = Instant::now();
    let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FetchError::BadUrl { .. }), "{msg}");
    assert!(
        msg.contains("127.0.0.1:8765/x/horse2zebra.zip")
            && msg.contains("must start with http:// or https://"),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "it was retried");
    let err = fetch_model("style_monet", &opts).unwrap_err();
    assert!(matches!(err, FetchError::BadUrl { .. }), "{err}");
    assert!(matches!(
        remote_size("127.0.0.1:8765/x/mini.zip", Duration::from_secs(1)),
        Err(FetchError::BadUrl { .. })
    ));
}

#[test]
fn a_forced_model_fetch_keeps_the_model_in_place_until_the_new_one_is_complete() {
    let server = TestServer::start();
    let weights: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    server.put("/models/style_monet.pth", weights.clone());
    let dest = tempfile::tempdir().unwrap();
    let path = dest.path().join("style_monet_pretrained/latest_net_G.pth");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "old model").unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (watched, record) = (path.clone(), seen.clone());
    server.on_request(move |_| {
        let now = std::fs::read(&watched).ok();
        record.lock().unwrap().push(now);
    });
    server.behave(
        "/models/style_monet.pth",
        Behaviour {
            drop_after: Some(30_000),
            drops: 1,
            ..Default::default()
        },
    );
    let mut opts = options(dest.path(), &server, 0);
    opts.base_url = Some(format!("{}/models", server.base_url));
    opts.force = true;
    fetch_model("style_monet", &opts).unwrap_err();
    assert_eq!(std::fs::read(&path).unwrap(), b"old model");
    fetch_model("style_monet", &opts).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), weights);
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|m| m.as_deref() == Some(b"old model".as_slice())),
        "the model was not in place during a download"
    );
    assert_eq!(
        listing(path.parent().unwrap()),
        ["latest_net_G.pth"],
        "temporary files left"
    );
}

/// Set in the child process of the test below: the folder to fetch into, and from where.
const CHILD_DEST: &str = "CYCLEGAN_FETCH_TEST_FULL_DISK_DEST";
const CHILD_BASE_URL: &str = "CYCLEGAN_FETCH_TEST_FULL_DISK_BASE_URL";

#[test]
fn an_extraction_that_fails_for_a_local_reason_keeps_the_complete_archive() {
    if let Ok(dest) = std::env::var(CHILD_DEST) {
        // In a child process whose files cannot grow past 50 KiB, as on a full disk.
        let opts = FetchOptions {
            base_url: std::env::var(CHILD_BASE_URL).ok(),
            ..options(Path::new(&dest), &TestServer::start(), 0)
        };
        let err = fetch_dataset("horse2zebra", &opts).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, FetchError::KeptDownload { .. }), "{msg}");
        assert!(
            msg.contains("File too large")
                && msg.contains(".horse2zebra.zip is complete and was kept"),
            "{msg}"
        );
        return;
    }
    let server = TestServer::start();
    server.put("/datasets/horse2zebra.zip", dataset_zip("horse2zebra"));
    let dest = tempfile::tempdir().unwrap();
    let opts = options(dest.path(), &server, 0);
    let archive = dest.path().join(".horse2zebra.zip");
    let url = format!("{}/datasets/horse2zebra.zip", server.base_url);
    // The archive was downloaded before the disk filled up (the child makes no request).
    download(&url, &archive, &opts.download).unwrap();
    let child = std::process::Command::new("sh")
        .arg("-c")
        // Writes past the limit fail with EFBIG ("File too large") instead of a signal.
        .arg("trap '' XFSZ; ulimit -f 100; exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_extraction_that_fails_for_a_local_reason_keeps_the_complete_archive",
            "--nocapture",
        ])
        .env(CHILD_DEST, dest.path())
        .env(CHILD_BASE_URL, opts.base_url.as_deref().unwrap())
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "the child failed:\n{}{}",
        String::from_utf8_lossy(&child.stdout),
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(archive.is_file(), "the complete archive was deleted");
    assert!(!dest.path().join("horse2zebra").exists());

    // Room again: extracted without downloading it again.
    fetch_dataset("horse2zebra", &opts).unwrap();
    assert_horse2zebra_layout(dest.path());
    assert_eq!(server.log().len(), 1, "downloaded again");
    assert_eq!(listing(dest.path()), ["horse2zebra"]);
}
