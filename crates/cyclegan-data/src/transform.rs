//! The reference's `get_transform`: grayscale, resize, random crop, random flip.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use image::DynamicImage;

use crate::error::{DataError, Result};
use crate::image_io::convert_luma;
use crate::options::{DataOptions, Preprocess};
use crate::resize::resize_bicubic;
use crate::rng::{coin, up_to, ItemRng};

/// The size `__make_power_2(img, base=4)` resizes to: each side rounded to the nearest multiple
/// of 4 with Python's `round` (halves go to the even neighbour: 10 -> 8, 30 -> 32). A side that
/// would round to 0 becomes 4 (the reference fails on such images).
pub(crate) fn multiple_of_4_size(w: u32, h: u32) -> (u32, u32) {
    let round = |v: u32| ((f64::from(v) / 4.0).round_ties_even() as u32 * 4).max(4);
    (round(w), round(h))
}

static WARNED_SIZE: AtomicBool = AtomicBool::new(false);

/// The size `__scale_width` resizes to, or `None` when it keeps the image as it is.
pub(crate) fn scale_width_size(w: u32, h: u32, target: u32, crop: u32) -> Option<(u32, u32)> {
    if w == target && h >= crop {
        return None;
    }
    // int(max(target * oh / ow, crop)): an exact product, a correctly rounded quotient, truncated.
    let scaled = (f64::from(target) * f64::from(h)) / f64::from(w);
    Some((target, scaled.max(f64::from(crop)) as u32))
}

/// Applies the reference's per-image transform to an RGB image: `convert('L')` when `gray`,
/// then the resize of `opts.preprocess`, a random crop, a random horizontal flip. Draws from
/// `rng` in that order (crop left, crop top, flip); `path` is for error messages.
pub(crate) fn apply(
    img: DynamicImage,
    gray: bool,
    opts: &DataOptions,
    rng: &mut ItemRng,
    path: &Path,
) -> Result<DynamicImage> {
    let mut img = if gray {
        DynamicImage::ImageLuma8(convert_luma(&img.into_rgb8()))
    } else {
        img
    };
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: "the image is empty".into(),
        });
    }
    match opts.preprocess {
        Preprocess::ResizeAndCrop => img = resize_bicubic(&img, opts.load_size, opts.load_size),
        Preprocess::ScaleWidth | Preprocess::ScaleWidthAndCrop => {
            if let Some((nw, nh)) = scale_width_size(w, h, opts.load_size, opts.crop_size) {
                img = resize_bicubic(&img, nw, nh);
            }
        }
        Preprocess::Crop => {}
        Preprocess::None => {
            let (nw, nh) = multiple_of_4_size(w, h);
            if (nw, nh) != (w, h) {
                // The reference's `__print_size_warning`, once per process.
                if !WARNED_SIZE.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the image size needs to be a multiple of 4: {} is {w}x{h} and was resized to {nw}x{nh}; this adjustment is made to every image whose sides are not multiples of 4",
                        path.display()
                    );
                }
                img = resize_bicubic(&img, nw, nh);
            }
        }
    }
    if opts.preprocess.crops() {
        let (w, h, c) = (img.width(), img.height(), opts.crop_size);
        if w < c || h < c {
            return Err(DataError::TooSmallForCrop {
                path: path.to_path_buf(),
                width: w,
                height: h,
                crop: c,
            });
        }
        let left = up_to(rng, w - c);
        let top = up_to(rng, h - c);
        if (w, h) != (c, c) {
            img = img.crop_imm(left, top, c, c);
        }
    }
    if !opts.no_flip && coin(rng) {
        img = img.fliph();
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::item_rng;
    use image::{Rgb, RgbImage};

    #[test]
    fn multiple_of_4_rounds_halves_to_even_like_python() {
        assert_eq!(multiple_of_4_size(64, 64), (64, 64));
        assert_eq!(multiple_of_4_size(37, 23), (36, 24));
        // 30/4 = 7.5 -> 8 -> 32; 10/4 = 2.5 -> 2 -> 8; 6/4 = 1.5 -> 2 -> 8; 2/4 = 0.5 -> 0 -> (4).
        assert_eq!(multiple_of_4_size(30, 10), (32, 8));
        assert_eq!(multiple_of_4_size(6, 2), (8, 4));
        assert_eq!(multiple_of_4_size(1, 1), (4, 4));
    }

    #[test]
    fn scale_width_keeps_aspect_but_not_below_crop() {
        assert_eq!(scale_width_size(300, 200, 286, 256), Some((286, 256)));
        assert_eq!(scale_width_size(300, 400, 286, 256), Some((286, 381)));
        assert_eq!(scale_width_size(286, 300, 286, 256), None);
        assert_eq!(scale_width_size(286, 100, 286, 256), Some((286, 256)));
        assert_eq!(scale_width_size(1000, 333, 128, 16), Some((128, 42)));
    }

    #[test]
    fn crop_and_flip_give_crop_size_and_refuse_small_images() {
        let img =
            DynamicImage::ImageRgb8(RgbImage::from_fn(40, 30, |x, y| Rgb([x as u8, y as u8, 0])));
        let opts = DataOptions {
            preprocess: Preprocess::Crop,
            crop_size: 16,
            ..DataOptions::default()
        };
        let mut rng = item_rng(0, 0, 0);
        let out = apply(img.clone(), false, &opts, &mut rng, Path::new("x.png")).unwrap();
        assert_eq!((out.width(), out.height()), (16, 16));
        let opts = DataOptions {
            crop_size: 32,
            ..opts
        };
        let e = apply(img, true, &opts, &mut rng, Path::new("small.png")).unwrap_err();
        assert!(e.is_bad_image());
        assert!(
            e.to_string()
                .contains("small.png comes to 40x30 before its crop"),
            "{e}"
        );
    }

    #[test]
    fn flips_happen_about_half_the_time_and_mirror() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(4, 1, |x, _| Rgb([x as u8, 0, 0])));
        let opts = DataOptions {
            preprocess: Preprocess::None,
            ..DataOptions::default()
        };
        let mut flipped = 0;
        for i in 0..200 {
            let out = apply(
                img.clone(),
                false,
                &opts,
                &mut item_rng(3, 1, i),
                Path::new("x"),
            )
            .unwrap();
            let first = out.as_rgb8().unwrap().get_pixel(0, 0)[0];
            assert!(first == 0 || first == 3);
            flipped += usize::from(first == 3);
        }
        assert!((70..130).contains(&flipped), "{flipped} of 200 flipped");
    }
}
