//! Parity with Pillow on the fixtures of `tests/fixtures/make_fixtures.py` (see its
//! manifest.json for the Pillow version): bicubic resizing, `.convert('RGB')` / `.convert('L')`,
//! and whole transforms without randomness.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use cyclegan_data::image::{self, DynamicImage, GenericImageView};
use cyclegan_data::{
    image_to_tensor, load_image, resize_bicubic, DataOptions, Dataset, SingleDataset,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

fn open_png(name: &str) -> DynamicImage {
    image::open(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Largest difference in grey levels between two images of the same size and kind.
fn max_diff(a: &DynamicImage, b: &DynamicImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    assert_eq!(a.color(), b.color(), "kinds differ");
    a.as_bytes()
        .iter()
        .zip(b.as_bytes())
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

fn str_field<'a>(v: &'a serde_json::Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("field {k} in {v}"))
}

#[test]
fn bicubic_resize_matches_pillow_within_one_level() {
    let m = manifest();
    let mut report = Vec::new();
    for case in m["resize"].as_array().unwrap() {
        let name = str_field(case, "name");
        let input = open_png(str_field(case, "input"));
        let expected = open_png(str_field(case, "expected"));
        let (w, h) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        let ours = resize_bicubic(&input, w, h);
        let d = max_diff(&ours, &expected);
        report.push(format!(
            "{name}: {}x{} -> {w}x{h}, max diff {d}",
            input.width(),
            input.height()
        ));
        assert!(
            d <= 1,
            "{name}: differs from Pillow {} by up to {d} grey levels",
            m["pillow"]
        );
    }
    eprintln!(
        "Pillow {} bicubic parity:\n  {}",
        m["pillow"],
        report.join("\n  ")
    );
}

#[test]
fn bicubic_resize_matches_pillow_on_many_small_sizes() {
    let m = manifest();
    let case = &m["resize_strip"];
    let input = open_png(str_field(case, "input"));
    let strip = open_png(str_field(case, "expected")).into_luma8();
    let mut y = 0;
    let mut worst = (0u8, 36, 36);
    for size in case["sizes"].as_array().unwrap() {
        let (w, h) = (
            size[0].as_u64().unwrap() as u32,
            size[1].as_u64().unwrap() as u32,
        );
        let ours = resize_bicubic(&input, w, h).into_luma8();
        for (x, yy, p) in ours.enumerate_pixels() {
            let d = p[0].abs_diff(strip.get_pixel(x, y + yy)[0]);
            if d > worst.0 {
                worst = (d, w, h);
            }
        }
        y += h;
    }
    let n = case["sizes"].as_array().unwrap().len();
    eprintln!(
        "{n} sizes from 36x36: max diff {} (worst case {}x{})",
        worst.0, worst.1, worst.2
    );
    assert!(
        worst.0 <= 1,
        "36x36 -> {}x{} differs from Pillow by {} levels",
        worst.1,
        worst.2,
        worst.0
    );
}

#[test]
fn conversions_match_pillow_convert() {
    let m = manifest();
    let mut report = Vec::new();
    for case in m["convert"].as_array().unwrap() {
        let name = str_field(case, "name");
        let input = fixtures().join(str_field(case, "input"));
        let rgb = load_image(&input, 3).unwrap_or_else(|e| panic!("{name}: {e}"));
        let gray = load_image(&input, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
        let d_rgb = max_diff(&rgb, &open_png(str_field(case, "rgb")).into_rgb8().into());
        let d_gray = max_diff(
            &gray,
            &open_png(str_field(case, "gray")).into_luma8().into(),
        );
        report.push(format!(
            "{name} (Pillow mode {}): RGB max diff {d_rgb}, L max diff {d_gray}",
            case["pil_mode"]
        ));
        // Every case exactly, JPEGs included (decoded by libjpeg-turbo's decoder, as in Pillow).
        assert!(
            d_rgb == 0 && d_gray == 0,
            "{name}: RGB differs by {d_rgb}, L by {d_gray} levels"
        );
    }
    eprintln!(
        "Pillow {} conversion parity:\n  {}",
        m["pillow"],
        report.join("\n  ")
    );
}

#[test]
fn deterministic_transforms_match_the_reference_pipeline() {
    let m = manifest();
    for case in m["pipeline"].as_array().unwrap() {
        let name = str_field(case, "name");
        let opts: DataOptions = serde_json::from_value(case["options"].clone()).unwrap();
        let nc = case["nc"].as_u64().unwrap() as usize;
        let data = SingleDataset::open(fixtures().join(str_field(case, "input")), &opts).unwrap();
        let ours = data.load_batch(&[0], 5, 1).unwrap().a.squeeze(0).unwrap();
        let expected = open_png(str_field(case, "expected"));
        let expected = if nc == 1 {
            expected.into_luma8().into()
        } else {
            expected.into_rgb8().into()
        };
        let expected = image_to_tensor(&expected).unwrap();
        let (c, h, w) = ours.dims3().unwrap();
        assert_eq!(c, nc, "{name}: channels");
        let window = match case["crop_size"].as_u64() {
            // A random crop: find the window of the expected image it is.
            Some(crop) => {
                let crop = crop as usize;
                assert_eq!((h, w), (crop, crop), "{name}: crop size");
                let (_, eh, ew) = expected.dims3().unwrap();
                (0..=eh - crop)
                    .flat_map(|y| (0..=ew - crop).map(move |x| (y, x)))
                    .find(|&(y, x)| {
                        let win = expected
                            .narrow(1, y, crop)
                            .unwrap()
                            .narrow(2, x, crop)
                            .unwrap();
                        max_level_diff(&win, &ours) == 0
                    })
                    .map(|(y, x)| {
                        expected
                            .narrow(1, y, crop)
                            .unwrap()
                            .narrow(2, x, crop)
                            .unwrap()
                    })
                    .unwrap_or_else(|| {
                        panic!("{name}: the crop is no window of Pillow's resized image")
                    })
            }
            None => expected,
        };
        assert_eq!(window.dims(), ours.dims(), "{name}: shape");
        let d = max_level_diff(&window, &ours);
        assert_eq!(
            d, 0,
            "{name}: differs from the reference pipeline by {d} levels"
        );
    }
}

fn max_level_diff(a: &Tensor, b: &Tensor) -> u32 {
    let a: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    a.iter()
        .zip(&b)
        .map(|(x, y)| ((x - y).abs() * 127.5).round() as u32)
        .max()
        .unwrap_or(0)
}

/// How far the `image` crate's own CatmullRom filter is from Pillow (why the crate has its own
/// resize). Run with `cargo test -p cyclegan-data --test pil_parity -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a requirement"]
fn measure_image_crate_catmullrom_against_pillow() {
    let m = manifest();
    for case in m["resize"].as_array().unwrap() {
        let input = open_png(str_field(case, "input"));
        let expected = open_png(str_field(case, "expected"));
        let (w, h) = (
            case["width"].as_u64().unwrap() as u32,
            case["height"].as_u64().unwrap() as u32,
        );
        let theirs = input.resize_exact(w, h, image::imageops::FilterType::CatmullRom);
        let d = max_diff(&theirs, &expected);
        let differing = theirs
            .as_bytes()
            .iter()
            .zip(expected.as_bytes())
            .filter(|(a, b)| a != b)
            .count();
        eprintln!(
            "{}: image CatmullRom max diff {d}, {:.1}% of samples differ",
            str_field(case, "name"),
            100.0 * differing as f64 / expected.as_bytes().len() as f64
        );
    }
}
