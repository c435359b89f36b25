//! Bicubic resizing that reproduces Pillow's `Image.resize(size, Image.BICUBIC)` exactly for
//! 8-bit images.
//!
//! Pillow resamples in two separable passes (horizontal first, except in Pillow 13 when the
//! height shrinks much more than the width, see `vertical_first`), each rounding and clipping
//! to 8 bits. Per output sample it weighs the input samples within `2 * max(1, in/out)` of the
//! sample centre with the cubic convolution kernel (a = -0.5), stretched by `in/out` when
//! shrinking (so that shrinking also low-passes), normalises the weights to sum to one, and
//! applies them as 22-bit fixed-point integers. The `image` crate's `CatmullRom` filter uses
//! the same kernel but in floating point without the intermediate 8-bit rounding, which is
//! why this module exists: with it, the crate's outputs equal the reference's pixel for pixel.

use image::{DynamicImage, GrayImage, RgbImage};

/// Fixed-point precision of the weights, as in Pillow (`32 - 8 - 2`).
const PRECISION_BITS: u32 = 22;

/// Resizes an image to `width` x `height` like Pillow's `Image.resize(..., Image.BICUBIC)`.
///
/// 8-bit grayscale and RGB images are resized as they are; any other kind is first converted
/// with [`convert_rgb`](crate::convert_rgb) (Pillow's `.convert('RGB')`). The same size gives
/// a copy. A zero width or height gives an empty image (Pillow raises an error).
pub fn resize_bicubic(image: &DynamicImage, width: u32, height: u32) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(img) => DynamicImage::ImageLuma8(resize_gray(img, width, height)),
        DynamicImage::ImageRgb8(img) => DynamicImage::ImageRgb8(resize_rgb(img, width, height)),
        other => DynamicImage::ImageRgb8(resize_rgb(&crate::convert_rgb(other), width, height)),
    }
}

pub(crate) fn resize_gray(img: &GrayImage, width: u32, height: u32) -> GrayImage {
    let data = resize_raw(img.as_raw(), img.width(), img.height(), 1, width, height);
    GrayImage::from_raw(width, height, data).expect("buffer sized for the output")
}

pub(crate) fn resize_rgb(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let data = resize_raw(img.as_raw(), img.width(), img.height(), 3, width, height);
    RgbImage::from_raw(width, height, data).expect("buffer sized for the output")
}

/// Pillow's bicubic kernel (`bicubic_filter` in `Resample.c`), a = -0.5, support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// The taps of one pass: for each output sample, the first input sample and how many follow,
/// and `ksize` fixed-point weights (zero-padded).
struct Taps {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the whole input
/// range (box `0..in_size`).
fn taps(in_size: u32, out_size: u32) -> Taps {
    const SUPPORT: f64 = 2.0;
    // Pillow passes the box edges as C floats; whole numbers up to 2^24 are exact.
    let in0 = 0.0f32;
    let in1 = in_size as f32;
    let scale = f64::from(in1 - in0) / f64::from(out_size);
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size as usize);
    let mut weights = vec![0i32; out_size as usize * ksize];
    let mut k = vec![0f64; ksize];
    let ss = 1.0 / filterscale;
    for xx in 0..out_size as usize {
        let center = f64::from(in0) + (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero, as Rust's `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size)) - xmin;
        let xmax = xmax.max(0) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = bicubic(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..(xx + 1) * ksize];
        for (x, &kx) in k.iter().enumerate().take(xmax) {
            let kx = if ww != 0.0 { kx / ww } else { kx };
            let scaled = kx * f64::from(1u32 << PRECISION_BITS);
            row[x] = if kx < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin as usize, xmax));
    }
    Taps {
        bounds,
        ksize,
        weights,
    }
}

/// Pillow's `clip8`: drop the fraction bits and clamp to 0..=255.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

#[inline]
fn dot(samples: impl Iterator<Item = u8>, weights: &[i32]) -> u8 {
    let mut acc: i32 = 1 << (PRECISION_BITS - 1);
    for (s, &w) in samples.zip(weights) {
        acc = acc.wrapping_add(i32::from(s).wrapping_mul(w));
    }
    clip8(acc)
}

/// Whether Pillow 13 runs the vertical pass first: when both passes are needed, the height
/// shrinks, and it shrinks by more than twice as many rows as the width loses columns. (Found by
/// measurement against Pillow 13.0.0 on thousands of random sizes; Pillow 12 and earlier always
/// run the horizontal pass first, which differs only in such shapes and only where a pass clips.)
fn vertical_first(w: u32, h: u32, out_w: u32, out_h: u32) -> bool {
    let (w, h, out_w, out_h) = (
        i64::from(w),
        i64::from(h),
        i64::from(out_w),
        i64::from(out_h),
    );
    w != out_w && out_h < h && 2 * (w - out_w) < h - out_h
}

/// One horizontal pass: rows `first_row..first_row + rows` of `src` (`w` pixels wide) to
/// `taps.bounds.len()` pixels wide.
fn horizontal_pass(
    src: &[u8],
    w: usize,
    c: usize,
    first_row: usize,
    rows: usize,
    taps: &Taps,
) -> Vec<u8> {
    let out_w = taps.bounds.len();
    let mut out = vec![0u8; out_w * rows * c];
    for yy in 0..rows {
        let src_row = &src[(yy + first_row) * w * c..(yy + first_row + 1) * w * c];
        let dst_row = &mut out[yy * out_w * c..(yy + 1) * out_w * c];
        for (xx, &(xmin, xlen)) in taps.bounds.iter().enumerate() {
            let k = &taps.weights[xx * taps.ksize..xx * taps.ksize + xlen];
            for ch in 0..c {
                let samples = (0..xlen).map(|x| src_row[(xmin + x) * c + ch]);
                dst_row[xx * c + ch] = dot(samples, k);
            }
        }
    }
    out
}

/// One vertical pass over an image `w` pixels wide whose row 0 is source row `row_offset`.
fn vertical_pass(src: &[u8], w: usize, c: usize, row_offset: usize, taps: &Taps) -> Vec<u8> {
    let stride = w * c;
    let mut out = vec![0u8; stride * taps.bounds.len()];
    for (yy, &(ymin, ylen)) in taps.bounds.iter().enumerate() {
        let ymin = ymin - row_offset;
        let k = &taps.weights[yy * taps.ksize..yy * taps.ksize + ylen];
        let dst_row = &mut out[yy * stride..(yy + 1) * stride];
        for (i, dst) in dst_row.iter_mut().enumerate() {
            let samples = (0..ylen).map(|y| src[(ymin + y) * stride + i]);
            *dst = dot(samples, k);
        }
    }
    out
}

/// Resizes interleaved 8-bit samples (`channels` per pixel), Pillow's `ImagingResampleInner`.
pub(crate) fn resize_raw(
    src: &[u8],
    w: u32,
    h: u32,
    channels: usize,
    out_w: u32,
    out_h: u32,
) -> Vec<u8> {
    if out_w == 0 || out_h == 0 || w == 0 || h == 0 {
        return vec![0; out_w as usize * out_h as usize * channels];
    }
    if (w, h) == (out_w, out_h) {
        return src.to_vec();
    }
    let c = channels;
    if vertical_first(w, h, out_w, out_h) {
        let tmp = vertical_pass(src, w as usize, c, 0, &taps(h, out_h));
        return horizontal_pass(&tmp, w as usize, c, 0, out_h as usize, &taps(w, out_w));
    }
    if h == out_h {
        return horizontal_pass(src, w as usize, c, 0, h as usize, &taps(w, out_w));
    }
    let vert = taps(h, out_h);
    if w == out_w {
        return vertical_pass(src, w as usize, c, 0, &vert);
    }
    // Horizontal first, over the source rows the vertical pass reads.
    let first_row = vert.bounds[0].0;
    let last = vert.bounds[out_h as usize - 1];
    let rows = last.0 + last.1 - first_row;
    let tmp = horizontal_pass(src, w as usize, c, first_row, rows, &taps(w, out_w));
    vertical_pass(&tmp, out_w as usize, c, first_row, &vert)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_is_the_a_minus_half_cubic() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(2.0), 0.0);
        assert_eq!(bicubic(0.5), 0.5625);
        assert_eq!(bicubic(-1.5), -0.0625);
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(64, 286), (286, 64), (300, 286), (7, 3), (1, 5)] {
            let t = taps(i, o);
            for xx in 0..o as usize {
                let s: i32 = t.weights[xx * t.ksize..(xx + 1) * t.ksize].iter().sum();
                assert!(
                    (s - (1 << PRECISION_BITS)).abs() <= t.ksize as i32,
                    "{i}->{o} tap {xx} sums to {s}"
                );
            }
        }
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![77u8; 13 * 9 * 3];
        for (ow, oh) in [(29, 4), (5, 31), (13, 20), (40, 9)] {
            let out = resize_raw(&src, 13, 9, 3, ow, oh);
            assert!(out.iter().all(|&v| v == 77), "{ow}x{oh}");
        }
    }

    #[test]
    fn pass_order_follows_pillow_13() {
        assert!(vertical_first(30, 10, 32, 8)); // width grows, height shrinks
        assert!(!vertical_first(64, 64, 286, 286));
        assert!(!vertical_first(300, 200, 286, 286));
        assert!(!vertical_first(32, 15, 28, 7)); // 2 * 4 == 8: a tie stays horizontal first
        assert!(vertical_first(32, 15, 28, 6));
        assert!(!vertical_first(10, 10, 40, 20)); // the height grows
        assert!(!vertical_first(10, 20, 10, 5)); // one pass only
    }

    #[test]
    fn zero_sizes_do_not_panic() {
        assert!(resize_raw(&[1, 2, 3], 1, 1, 3, 0, 5).is_empty());
        assert!(resize_raw(&[], 0, 0, 1, 0, 0).is_empty());
        assert_eq!(resize_raw(&[], 0, 3, 1, 2, 2).len(), 4);
    }
}
