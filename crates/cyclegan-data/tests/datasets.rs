//! Opening datasets, their error messages, single-image translation input, and image output.

use std::fs;
use std::path::Path;

use candle_core::{Device, Tensor};
use cyclegan_data::image::{self, Rgb, RgbImage};
use cyclegan_data::{
    list_images, load_image, save_image, tensor_to_image, DataError, DataOptions, Dataset,
    Preprocess, SingleDataset, UnalignedDataset,
};

fn write_png(path: &Path, w: u32, h: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_fn(w, h, |x, y| Rgb([(x * 9) as u8, (y * 7) as u8, 100]))
        .save(path)
        .unwrap();
}

#[test]
fn a_missing_folder_names_it_and_the_expected_layout() {
    let root = tempfile::tempdir().unwrap();
    write_png(&root.path().join("trainA/x.png"), 4, 4);
    let err = UnalignedDataset::open(root.path(), &DataOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::MissingFolder { .. }));
    let msg = err.to_string();
    let missing = root.path().join("trainB");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(
        msg.contains("trainA") && msg.contains("trainB") && msg.contains("does not exist"),
        "{msg}"
    );

    let test = DataOptions {
        phase: "test".into(),
        ..DataOptions::default()
    };
    let msg = UnalignedDataset::open(root.path(), &test)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("testA") && msg.contains("testB"), "{msg}");
}

#[test]
fn a_folder_without_images_names_it_and_the_extensions_looked_for() {
    let root = tempfile::tempdir().unwrap();
    write_png(&root.path().join("trainA/x.png"), 4, 4);
    fs::create_dir_all(root.path().join("trainB/nested")).unwrap();
    fs::write(root.path().join("trainB/readme.txt"), "no images").unwrap();
    fs::write(root.path().join("trainB/nested/anim.gif"), "GIF89a").unwrap();
    let err = UnalignedDataset::open(root.path(), &DataOptions::default()).unwrap_err();
    assert!(matches!(err, DataError::EmptyFolder { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&root.path().join("trainB").display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(".png") && msg.contains(".tiff") && msg.contains("trainA"),
        "{msg}"
    );
}

#[test]
fn only_supported_extensions_are_listed_in_any_case_and_recursively() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("trainA");
    for name in [
        "b.PNG",
        "a.jpeg",
        "c.Tif",
        "sub/d.bmp",
        "sub/e.ppm",
        "f.gif",
        "g.txt",
        "h.webp",
        "sub/.hidden",
    ] {
        let p = dir.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"").unwrap();
    }
    let listed: Vec<String> = list_images(&dir)
        .unwrap()
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
        .collect();
    assert_eq!(
        listed,
        ["a.jpeg", "b.PNG", "c.Tif", "sub/d.bmp", "sub/e.ppm"]
    );
}

#[test]
fn max_dataset_size_keeps_the_first_images() {
    let root = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write_png(&root.path().join(format!("trainA/{i}.png")), 4, 4);
        write_png(&root.path().join(format!("trainB/{i}.png")), 4, 4);
    }
    let opts = DataOptions {
        max_dataset_size: Some(3),
        ..DataOptions::default()
    };
    let data = UnalignedDataset::open(root.path(), &opts).unwrap();
    assert_eq!(data.len(), 3);
    assert!(data.paths_a()[2].ends_with("2.png"));
}

#[test]
fn invalid_options_are_refused_before_listing() {
    let opts = DataOptions {
        output_nc: 2,
        ..DataOptions::default()
    };
    let err = UnalignedDataset::open("/nonexistent", &opts).unwrap_err();
    assert!(matches!(err, DataError::InvalidOptions(_)), "{err}");
}

#[test]
fn single_dataset_reads_a_folder_or_one_file_of_any_size() {
    let root = tempfile::tempdir().unwrap();
    write_png(&root.path().join("imgs/b.png"), 30, 10);
    write_png(&root.path().join("imgs/deeper/a.png"), 37, 23);
    let opts = DataOptions {
        preprocess: Preprocess::None,
        no_flip: true,
        ..DataOptions::default()
    };
    let folder = SingleDataset::open(root.path().join("imgs"), &opts).unwrap();
    assert_eq!(folder.len(), 2);
    assert!(
        folder.paths()[0].ends_with("b.png"),
        "sorted by path: {:?}",
        folder.paths()
    );
    let b = folder.load_batch(&[0], 0, 1).unwrap();
    assert_eq!(
        b.a.dims(),
        [1, 3, 8, 32],
        "30x10 -> 32x8 (halves round to even)"
    );
    let a = folder.load_batch(&[1], 0, 1).unwrap();
    assert_eq!(a.a.dims(), [1, 3, 24, 36]);
    // Two sizes cannot be stacked: an error that names both files.
    let err = folder.load_batch(&[0, 1], 0, 1).unwrap_err().to_string();
    assert!(
        err.contains("b.png") && err.contains("a.png") && err.contains("batch_size 1"),
        "{err}"
    );

    let gray = DataOptions {
        input_nc: 1,
        ..opts
    };
    let one = SingleDataset::open(root.path().join("imgs/b.png"), &gray).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one.load_batch(&[0], 0, 1).unwrap().a.dims(), [1, 1, 8, 32]);

    let err = one.load_batch(&[1], 0, 1).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");

    let err = SingleDataset::open(root.path().join("nothing"), &gray)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothing") && err.contains("one image file, or a folder"),
        "{err}"
    );
}

#[test]
fn a_corrupt_image_is_an_error_naming_the_file_not_a_panic() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("broken.jpg");
    let mut bytes = Vec::new();
    RgbImage::from_pixel(32, 32, Rgb([1, 2, 3]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    // A JPEG cut in half, or missing only its end marker: Pillow's "image file is truncated".
    for cut in [bytes.len() / 2, bytes.len() - 2] {
        fs::write(&path, &bytes[..cut]).unwrap();
        for nc in [1, 3] {
            let err = load_image(&path, nc).unwrap_err();
            assert!(err.is_bad_image(), "{err}");
            let text = err.to_string();
            assert!(
                text.contains("broken.jpg") && text.contains("truncated"),
                "{text}"
            );
        }
    }
    // The whole file decodes.
    fs::write(&path, &bytes).unwrap();
    assert_eq!(load_image(&path, 3).unwrap().width(), 32);
    // Garbage after the header: an error naming the file.
    let mut garbled = bytes.clone();
    let from = garbled.len() / 3;
    garbled[from..].fill(0xFF);
    fs::write(&path, &garbled).unwrap();
    match load_image(&path, 3) {
        Err(e) => assert!(e.to_string().contains("broken.jpg"), "{e}"),
        // libjpeg, like Pillow, takes some damage in its stride.
        Ok(img) => assert_eq!((img.width(), img.height()), (32, 32)),
    }
    // A header claiming 60000 x 60000 pixels: refused before anything is allocated, as Pillow
    // refuses it (DecompressionBombError), instead of aborting the process out of memory.
    let mut bomb = bytes.clone();
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    fs::write(&path, &bomb).unwrap();
    let err = load_image(&path, 3).unwrap_err().to_string();
    assert!(
        err.contains("broken.jpg") && err.contains("60000x60000"),
        "{err}"
    );
    let err = load_image(root.path().join("absent.png"), 3).unwrap_err();
    assert!(
        err.is_bad_image() && err.to_string().contains("absent.png"),
        "{err}"
    );
    let err = load_image(&path, 2).unwrap_err();
    assert!(matches!(err, DataError::InvalidOptions(_)));
}

#[test]
fn save_image_writes_the_reference_tensor2im_as_png() {
    let root = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..2 * 3 * 4 * 5)
        .map(|i| (i as f32 / 60.0) - 1.0)
        .collect();
    let t = Tensor::from_vec(values, (2, 3, 4, 5), &Device::Cpu).unwrap();
    let path = root.path().join("out.png");
    save_image(&t, &path).unwrap();
    let back = image::open(&path).unwrap();
    assert_eq!(back.color(), image::ColorType::Rgb8);
    assert_eq!(back.into_rgb8(), tensor_to_image(&t).unwrap());
    // The first image of the batch; channel 1 of pixel (0, 0) is value 20: (-2/3 + 1) / 2 * 255 = 42.5.
    assert_eq!(tensor_to_image(&t).unwrap().get_pixel(0, 0)[1], 42);

    let err = save_image(&t, root.path().join("no/such/dir/out.png"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("out.png"), "{err}");
}
