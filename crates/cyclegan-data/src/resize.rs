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
    let data = resize_raw::<1>(img.as_raw(), img.width(), img.height(), width, height);
    GrayImage::from_raw(width, height, data).expect("buffer sized for the output")
}

pub(crate) fn resize_rgb(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let data = resize_raw::<3>(img.as_raw(), img.width(), img.height(), width, height);
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

/// One horizontal pass: rows `first_row..first_row + rows` of `src` (`w` pixels of `C` samples
/// wide) to `taps.bounds.len()` pixels wide. Each output pixel sums its taps for all `C`
/// channels at once (integer sums: the order cannot change them).
fn horizontal_pass<const C: usize>(
    src: &[u8],
    w: usize,
    first_row: usize,
    rows: usize,
    taps: &Taps,
) -> Vec<u8> {
    let out_w = taps.bounds.len();
    let mut out = vec![0u8; out_w * rows * C];
    let src_rows = src[first_row * w * C..(first_row + rows) * w * C].chunks_exact(w * C);
    for (src_row, dst_row) in src_rows.zip(out.chunks_exact_mut(out_w * C)) {
        let pixels = dst_row.chunks_exact_mut(C);
        let weights = taps.weights.chunks_exact(taps.ksize);
        for ((dst, &(xmin, xlen)), k) in pixels.zip(&taps.bounds).zip(weights) {
            let mut acc = [1i32 << (PRECISION_BITS - 1); C];
            let samples = src_row[xmin * C..(xmin + xlen) * C].chunks_exact(C);
            for (pixel, &weight) in samples.zip(&k[..xlen]) {
                for (a, &s) in acc.iter_mut().zip(pixel) {
                    *a = a.wrapping_add(i32::from(s).wrapping_mul(weight));
                }
            }
            for (d, a) in dst.iter_mut().zip(acc) {
                *d = clip8(a);
            }
        }
    }
    out
}

/// One vertical pass over an image of `stride` samples a row whose row 0 is source row
/// `row_offset`. Each output row accumulates its taps' rows whole, which vectorises.
fn vertical_pass(src: &[u8], stride: usize, row_offset: usize, taps: &Taps) -> Vec<u8> {
    let mut out = vec![0u8; stride * taps.bounds.len()];
    let mut acc = vec![0i32; stride];
    let weights = taps.weights.chunks_exact(taps.ksize);
    let dst_rows = out.chunks_exact_mut(stride);
    for ((dst_row, &(ymin, ylen)), k) in dst_rows.zip(&taps.bounds).zip(weights) {
        acc.fill(1 << (PRECISION_BITS - 1));
        let first = (ymin - row_offset) * stride;
        let rows = src[first..first + ylen * stride].chunks_exact(stride);
        for (row, &weight) in rows.zip(&k[..ylen]) {
            for (a, &s) in acc.iter_mut().zip(row) {
                *a = a.wrapping_add(i32::from(s).wrapping_mul(weight));
            }
        }
        for (d, &a) in dst_row.iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    out
}

/// Resizes interleaved 8-bit samples (`C` per pixel), Pillow's `ImagingResampleInner`.
pub(crate) fn resize_raw<const C: usize>(
    src: &[u8],
    w: u32,
    h: u32,
    out_w: u32,
    out_h: u32,
) -> Vec<u8> {
    if out_w == 0 || out_h == 0 || w == 0 || h == 0 {
        return vec![0; out_w as usize * out_h as usize * C];
    }
    if (w, h) == (out_w, out_h) {
        return src.to_vec();
    }
    let (width, stride, out_stride) = (w as usize, w as usize * C, out_w as usize * C);
    if vertical_first(w, h, out_w, out_h) {
        let tmp = vertical_pass(src, stride, 0, &taps(h, out_h));
        return horizontal_pass::<C>(&tmp, width, 0, out_h as usize, &taps(w, out_w));
    }
    if h == out_h {
        return horizontal_pass::<C>(src, width, 0, h as usize, &taps(w, out_w));
    }
    let vert = taps(h, out_h);
    if w == out_w {
        return vertical_pass(src, stride, 0, &vert);
    }
    // Horizontal first, over the source rows the vertical pass reads.
    let first_row = vert.bounds[0].0;
    let last = vert.bounds[out_h as usize - 1];
    let rows = last.0 + last.1 - first_row;
    let tmp = horizontal_pass::<C>(src, width, first_row, rows, &taps(w, out_w));
    vertical_pass(&tmp, out_stride, first_row, &vert)
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
            let out = resize_raw::<3>(&src, 13, 9, ow, oh);
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

    /// The passes written sample by sample, as Pillow's C loops: the oracle of the vectorised
    /// passes, which must give the same bytes.
    fn resize_direct(src: &[u8], (w, h): (u32, u32), c: usize, (ow, oh): (u32, u32)) -> Vec<u8> {
        let pass = |src: &[u8], (w, h): (usize, usize), taps: &Taps, horizontal: bool| {
            let n = taps.bounds.len();
            let (out_w, out_h) = if horizontal { (n, h) } else { (w, n) };
            let mut out = vec![0u8; out_w * out_h * c];
            for y in 0..out_h {
                for x in 0..out_w {
                    for ch in 0..c {
                        let t = if horizontal { x } else { y };
                        let (first, len) = taps.bounds[t];
                        let mut acc: i32 = 1 << (PRECISION_BITS - 1);
                        for i in 0..len {
                            let (sx, sy) = if horizontal {
                                (first + i, y)
                            } else {
                                (x, first + i)
                            };
                            let weight = taps.weights[t * taps.ksize + i];
                            acc = acc.wrapping_add(i32::from(src[(sy * w + sx) * c + ch]) * weight);
                        }
                        out[(y * out_w + x) * c + ch] = clip8(acc);
                    }
                }
            }
            out
        };
        let (w, h, ow_, oh_) = (w as usize, h as usize, ow as usize, oh as usize);
        let (horiz, vert) = (taps(w as u32, ow), taps(h as u32, oh));
        if (w, h) == (ow_, oh_) {
            return src.to_vec();
        }
        if vertical_first(w as u32, h as u32, ow, oh) {
            let tmp = pass(src, (w, h), &vert, false);
            return pass(&tmp, (w, oh_), &horiz, true);
        }
        let tmp = if w == ow_ {
            src.to_vec()
        } else {
            pass(src, (w, h), &horiz, true)
        };
        if h == oh_ {
            return tmp;
        }
        pass(&tmp, (ow_, h), &vert, false)
    }

    #[test]
    fn passes_equal_the_direct_sample_by_sample_sums() {
        let mut state = 12345u32;
        let src: Vec<u8> = (0..97 * 83 * 3)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Extremes too, so that the passes clip.
                [0, 255, (state >> 24) as u8][(state >> 8) as usize % 3]
            })
            .collect();
        let sizes = [
            (97, 83),
            (286, 286),
            (40, 83),
            (97, 30),
            (13, 200),
            (300, 9),
            (30, 20),
        ];
        for (w, h) in [(97u32, 83u32), (64, 64), (31, 47)] {
            for (ow, oh) in sizes {
                let rgb = &src[..(w * h * 3) as usize];
                let gray = &src[..(w * h) as usize];
                assert_eq!(
                    resize_raw::<3>(rgb, w, h, ow, oh),
                    resize_direct(rgb, (w, h), 3, (ow, oh)),
                    "rgb {w}x{h} -> {ow}x{oh}"
                );
                assert_eq!(
                    resize_raw::<1>(gray, w, h, ow, oh),
                    resize_direct(gray, (w, h), 1, (ow, oh)),
                    "gray {w}x{h} -> {ow}x{oh}"
                );
            }
        }
    }

    #[test]
    fn zero_sizes_do_not_panic() {
        assert!(resize_raw::<3>(&[1, 2, 3], 1, 1, 0, 5).is_empty());
        assert!(resize_raw::<1>(&[], 0, 0, 0, 0).is_empty());
        assert_eq!(resize_raw::<1>(&[], 0, 3, 2, 2).len(), 4);
    }
}
