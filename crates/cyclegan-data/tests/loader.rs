//! The loader: determinism, resumption, epochs, pairing, bad images.

use std::fs;
use std::path::{Path, PathBuf};

use cyclegan_data::image::{Rgb, RgbImage};
use cyclegan_data::{
    Batch, DataError, DataOptions, Dataset, Direction, Loader, LoaderOptions, OnBadImage,
    Preprocess, UnalignedDataset,
};

/// Writes `n` distinct 12x10 PNGs named `{prefix}{i:02}.png` into `dir`.
fn write_images(dir: &Path, prefix: &str, n: usize, seed: u8) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = RgbImage::from_fn(12, 10, |x, y| {
            Rgb([
                (i as u8).wrapping_mul(20).wrapping_add(seed),
                (x * 20) as u8,
                (y * 25) as u8 ^ seed,
            ])
        });
        img.save(dir.join(format!("{prefix}{i:02}.png"))).unwrap();
    }
}

/// A dataset root with `a` images in trainA and `b` in trainB.
fn tiny_dataset(a: usize, b: usize) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    write_images(&root.path().join("trainA"), "a", a, 0);
    write_images(&root.path().join("trainB"), "b", b, 7);
    root
}

/// Options for the tiny images: random 8x8 crops and flips, no resizing.
fn tiny_options() -> DataOptions {
    DataOptions {
        preprocess: Preprocess::Crop,
        crop_size: 8,
        ..DataOptions::default()
    }
}

fn emoji_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/emoji64")
}

/// Everything a batch holds, in comparable form.
#[derive(Debug, PartialEq)]
struct Flat {
    pos: (u64, usize),
    a: Vec<f32>,
    b: Vec<f32>,
    a_shape: Vec<usize>,
    b_shape: Vec<usize>,
    a_paths: Vec<PathBuf>,
    b_paths: Vec<PathBuf>,
    indices: Vec<usize>,
}

fn flat(batch: Batch) -> Flat {
    Flat {
        pos: (batch.pos.epoch, batch.pos.iteration),
        a: batch.a.flatten_all().unwrap().to_vec1().unwrap(),
        b: batch.b.flatten_all().unwrap().to_vec1().unwrap(),
        a_shape: batch.a.dims().to_vec(),
        b_shape: batch.b.dims().to_vec(),
        a_paths: batch.a_paths,
        b_paths: batch.b_paths,
        indices: batch.indices,
    }
}

fn collect(data: &UnalignedDataset, opts: LoaderOptions, limit: usize) -> Vec<Flat> {
    Loader::new(data.clone(), opts)
        .unwrap()
        .take(limit)
        .map(|b| flat(b.unwrap()))
        .collect()
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn same_seed_gives_the_same_batches_whatever_the_number_of_workers() {
    let opts = DataOptions {
        load_size: 72,
        crop_size: 64,
        ..DataOptions::default()
    };
    let data = UnalignedDataset::open(emoji_root(), &opts).unwrap();
    let run = |workers, prefetch| {
        let lo = LoaderOptions {
            batch_size: 3,
            seed: 11,
            workers,
            prefetch,
            ..LoaderOptions::default()
        };
        collect(&data, lo, 10)
    };
    let reference = run(0, 1);
    assert_eq!(reference.len(), 10);
    for (workers, prefetch) in [(1, 1), (2, 4), (3, 2), (4, 8)] {
        let other = run(workers, prefetch);
        for (i, (x, y)) in reference.iter().zip(&other).enumerate() {
            assert!(
                x == y,
                "batch {i} differs with {workers} workers and prefetch {prefetch}"
            );
        }
    }
    // The crops and flips really are random: the same A image is not always the same tensor.
    let again = collect(
        &data,
        LoaderOptions {
            batch_size: 3,
            seed: 12,
            workers: 2,
            ..Default::default()
        },
        10,
    );
    assert_ne!(reference, again, "another seed gave the same batches");
}

#[test]
fn resuming_at_any_epoch_and_iteration_yields_the_rest_of_an_uninterrupted_run() {
    let root = tiny_dataset(7, 5);
    let data = UnalignedDataset::open(root.path(), &tiny_options()).unwrap();
    let base = LoaderOptions {
        batch_size: 2,
        seed: 3,
        workers: 2,
        last_epoch: Some(3),
        ..Default::default()
    };
    let full = collect(&data, base.clone(), usize::MAX);
    assert_eq!(full.len(), 3 * 4, "3 epochs of ceil(7 / 2) batches");
    for (start, batch) in full.iter().enumerate() {
        let (epoch, iteration) = batch.pos;
        let resumed = collect(
            &data,
            LoaderOptions {
                start_epoch: epoch,
                start_iteration: iteration,
                workers: 1,
                ..base.clone()
            },
            usize::MAX,
        );
        assert!(
            resumed == full[start..],
            "resuming at epoch {epoch} iteration {iteration} differs"
        );
    }
}

#[test]
fn each_epoch_visits_every_item_once_in_a_new_order_and_keeps_the_partial_last_batch() {
    let root = tiny_dataset(7, 4);
    let data = UnalignedDataset::open(root.path(), &tiny_options()).unwrap();
    assert_eq!(data.len(), 7);
    let lo = LoaderOptions {
        batch_size: 3,
        seed: 5,
        workers: 1,
        last_epoch: Some(2),
        ..Default::default()
    };
    let loader = Loader::new(data.clone(), lo).unwrap();
    assert_eq!(loader.batches_per_epoch(), 3);
    let batches: Vec<Flat> = loader.map(|b| flat(b.unwrap())).collect();
    let sizes: Vec<usize> = batches.iter().map(|b| b.a_shape[0]).collect();
    assert_eq!(sizes, [3, 3, 1, 3, 3, 1]);
    let mut orders = Vec::new();
    for epoch in batches.chunks(3) {
        let order: Vec<usize> = epoch.iter().flat_map(|b| b.indices.clone()).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..7).collect::<Vec<_>>());
        let a: Vec<String> = epoch.iter().flat_map(|b| names(&b.a_paths)).collect();
        let expected: Vec<String> = order.iter().map(|i| format!("a{i:02}.png")).collect();
        assert_eq!(a, expected, "item i is A[i]");
        orders.push(order);
    }
    assert_ne!(orders[0], orders[1], "epochs are shuffled differently");
    assert_eq!(batches[0].a_shape, [3, 3, 8, 8]);
}

#[test]
fn a_wraps_around_when_b_is_larger_and_b_is_drawn_at_random() {
    let root = tiny_dataset(3, 8);
    let data = UnalignedDataset::open(root.path(), &tiny_options()).unwrap();
    assert_eq!(data.len(), 8, "max(|A|, |B|)");
    let items: Vec<Flat> = collect(
        &data,
        LoaderOptions {
            shuffle: false,
            seed: 9,
            workers: 0,
            last_epoch: Some(1),
            ..Default::default()
        },
        usize::MAX,
    );
    let a: Vec<String> = items.iter().flat_map(|b| names(&b.a_paths)).collect();
    assert_eq!(
        a,
        ["a00.png", "a01.png", "a02.png", "a00.png", "a01.png", "a02.png", "a00.png", "a01.png"]
    );
    let b: Vec<String> = items.iter().flat_map(|b| names(&b.b_paths)).collect();
    let serial: Vec<String> = (0..8).map(|i| format!("b{i:02}.png")).collect();
    assert_ne!(b, serial, "B should be random unless serial_batches");
}

#[test]
fn serial_batches_pair_a_i_with_b_i_mod_b_in_order() {
    let root = tiny_dataset(5, 3);
    let opts = DataOptions {
        serial_batches: true,
        no_flip: true,
        ..tiny_options()
    };
    let data = UnalignedDataset::open(root.path(), &opts).unwrap();
    let lo = LoaderOptions {
        batch_size: 2,
        shuffle: false,
        workers: 2,
        last_epoch: Some(1),
        ..Default::default()
    };
    let batches = collect(&data, lo, usize::MAX);
    let a: Vec<String> = batches.iter().flat_map(|b| names(&b.a_paths)).collect();
    let b: Vec<String> = batches.iter().flat_map(|b| names(&b.b_paths)).collect();
    assert_eq!(a, ["a00.png", "a01.png", "a02.png", "a03.png", "a04.png"]);
    assert_eq!(b, ["b00.png", "b01.png", "b02.png", "b00.png", "b01.png"]);
}

#[test]
fn btoa_swaps_the_folders_and_their_channel_counts() {
    let root = tiny_dataset(4, 4);
    let opts = DataOptions {
        direction: Direction::BtoA,
        input_nc: 1,
        output_nc: 3,
        ..tiny_options()
    };
    let data = UnalignedDataset::open(root.path(), &opts).unwrap();
    let batch = flat(data.load_batch(&[0, 1], 1, 1).unwrap());
    assert_eq!(batch.a_shape, [2, 1, 8, 8], "the input domain is gray");
    assert_eq!(batch.b_shape, [2, 3, 8, 8]);
    assert!(
        names(&batch.a_paths).iter().all(|n| n.starts_with('b')),
        "a comes from trainB: {:?}",
        batch.a_paths
    );
    assert!(names(&batch.b_paths).iter().all(|n| n.starts_with('a')));
    assert!(batch
        .a
        .iter()
        .chain(&batch.b)
        .all(|v| (-1.0..=1.0).contains(v)));
}

#[test]
fn bad_images_are_skipped_with_a_warning_or_stop_the_loader() {
    let root = tiny_dataset(5, 3);
    fs::write(root.path().join("trainA/a02.png"), b"not a png at all").unwrap();
    let opts = DataOptions {
        serial_batches: true,
        ..tiny_options()
    };
    let data = UnalignedDataset::open(root.path(), &opts).unwrap();
    let lo = LoaderOptions {
        batch_size: 5,
        shuffle: false,
        workers: 1,
        last_epoch: Some(1),
        ..Default::default()
    };

    let skip = collect(
        &data,
        LoaderOptions {
            on_bad_image: OnBadImage::Skip,
            ..lo.clone()
        },
        usize::MAX,
    );
    assert_eq!(skip.len(), 1);
    assert_eq!(skip[0].indices, [0, 1, 3, 4], "item 2 is left out");
    assert_eq!(skip[0].a_shape[0], 4);

    let mut fail = Loader::new(data, lo).unwrap();
    let err = fail.next().unwrap().unwrap_err();
    let msg = err.to_string();
    assert!(err.is_bad_image());
    assert!(
        msg.contains("a02.png") && msg.contains("cannot decode"),
        "{msg}"
    );
    assert!(fail.next().is_none(), "the loader stops after an error");
}

#[test]
fn an_epoch_of_nothing_but_unreadable_images_stops_the_loader_with_an_error() {
    let root = tiny_dataset(3, 2);
    for i in 0..3 {
        fs::write(root.path().join(format!("trainA/a0{i}.png")), b"text").unwrap();
    }
    let data = UnalignedDataset::open(root.path(), &tiny_options()).unwrap();
    let mut loader = Loader::new(
        data,
        LoaderOptions {
            batch_size: 1,
            workers: 1,
            on_bad_image: OnBadImage::Skip,
            ..Default::default()
        },
    )
    .unwrap();
    // No last epoch: without the check it would skip batches for ever.
    let err = loader.next().expect("an error, not the end").unwrap_err();
    assert!(
        matches!(err, DataError::NothingReadable { batches: 3 }),
        "{err}"
    );
    assert!(loader.next().is_none(), "the loader stops after an error");
}

#[test]
fn a_batch_whose_items_are_all_bad_is_left_out_and_the_others_keep_their_positions() {
    let root = tiny_dataset(4, 2);
    fs::write(root.path().join("trainA/a00.png"), b"").unwrap();
    fs::write(
        root.path().join("trainA/a01.png"),
        b"\x89PNG\r\n\x1a\ntruncated",
    )
    .unwrap();
    let opts = DataOptions {
        serial_batches: true,
        ..tiny_options()
    };
    let data = UnalignedDataset::open(root.path(), &opts).unwrap();
    let lo = LoaderOptions {
        batch_size: 2,
        shuffle: false,
        workers: 2,
        last_epoch: Some(2),
        on_bad_image: OnBadImage::Skip,
        ..Default::default()
    };
    let positions: Vec<(u64, usize)> = collect(&data, lo, usize::MAX)
        .iter()
        .map(|b| b.pos)
        .collect();
    assert_eq!(positions, [(1, 1), (2, 1)]);
}

#[test]
fn images_smaller_than_the_crop_are_bad_images_naming_the_file() {
    let root = tiny_dataset(2, 2);
    let opts = DataOptions {
        preprocess: Preprocess::Crop,
        crop_size: 11,
        ..DataOptions::default()
    };
    let data = UnalignedDataset::open(root.path(), &opts).unwrap();
    let err = data.load_batch(&[0], 0, 1).unwrap_err();
    assert!(err.is_bad_image());
    assert!(
        err.to_string().contains("12x10") && err.to_string().contains("11x11"),
        "{err}"
    );
}

#[test]
fn the_emoji_sample_loads_in_the_small_configuration() {
    let opts = DataOptions {
        load_size: 64,
        crop_size: 64,
        ..DataOptions::default()
    };
    let data = UnalignedDataset::open(emoji_root(), &opts).unwrap();
    assert_eq!((data.paths_a().len(), data.paths_b().len()), (625, 601));
    let lo = LoaderOptions {
        batch_size: 4,
        seed: 1,
        workers: 2,
        last_epoch: Some(1),
        ..Default::default()
    };
    let loader = Loader::new(data, lo).unwrap();
    assert_eq!(loader.batches_per_epoch(), 157);
    let mut n = 0;
    for batch in loader {
        let batch = batch.unwrap();
        let expected = if batch.pos.is_last_in_epoch() { 1 } else { 4 };
        assert_eq!(batch.a.dims(), [expected, 3, 64, 64]);
        assert_eq!(batch.b.dims(), [expected, 3, 64, 64]);
        let (lo, hi) = (batch.a.min_all().unwrap(), batch.a.max_all().unwrap());
        assert!(lo.to_scalar::<f32>().unwrap() >= -1.0 && hi.to_scalar::<f32>().unwrap() <= 1.0);
        n += batch.indices.len();
    }
    assert_eq!(n, 625);
}

#[test]
fn the_emoji_sample_loads_in_the_reference_configuration() {
    let data = UnalignedDataset::open(emoji_root(), &DataOptions::default()).unwrap();
    let lo = LoaderOptions {
        seed: 2,
        workers: 2,
        ..Default::default()
    };
    for batch in Loader::new(data, lo).unwrap().take(4) {
        let batch = batch.unwrap();
        assert_eq!(batch.a.dims(), [1, 3, 256, 256]);
        assert_eq!(batch.b.dims(), [1, 3, 256, 256]);
    }
}

#[test]
fn loader_options_are_checked() {
    let root = tiny_dataset(3, 3);
    let data = UnalignedDataset::open(root.path(), &tiny_options()).unwrap();
    let e = Loader::new(
        data.clone(),
        LoaderOptions {
            batch_size: 0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("batch_size"), "{e}");
    let e = Loader::new(
        data.clone(),
        LoaderOptions {
            batch_size: 2,
            start_iteration: 2,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("start_iteration 2"), "{e}");
    let none = Loader::new(
        data,
        LoaderOptions {
            start_epoch: 5,
            last_epoch: Some(4),
            ..Default::default()
        },
    );
    assert_eq!(none.unwrap().count(), 0);
}

#[test]
fn dropping_a_loader_mid_epoch_returns_promptly() {
    let root = tiny_dataset(20, 20);
    let data = UnalignedDataset::open(root.path(), &tiny_options()).unwrap();
    let mut loader = Loader::new(
        data,
        LoaderOptions {
            workers: 3,
            prefetch: 6,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(loader.next().unwrap().is_ok());
    drop(loader);
}
