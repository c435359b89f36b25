//! Test-set measures logged each epoch when the test folders are paired (testA and testB hold
//! the same file names, like the embedded emoji64 data). "testA" below is G_A's input folder:
//! testB under `--direction BtoA`, with testA its true counterparts.
//!
//! Per-pixel distance to the true counterpart (L1, PSNR) barely moves early in training: the
//! style changes before the outlines do. The distance between colour histograms does move, so
//! it is logged next to them, each with the baseline of doing nothing (testA itself).

use candle_core::{DType, Tensor};
use cyclegan_data::{image_to_tensor, list_images, load_image};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Bins per channel of the colour histograms.
const BINS: usize = 32;

/// The paired test images: `a[i]` (an input of G_A: testA, or testB under `--direction BtoA`)
/// and `b[i]` (its true counterpart in the other folder) share a file name.
pub struct PairedTestSet {
    /// G_A's inputs, each `[C, H, W]` in [-1, 1].
    pub a: Vec<Tensor>,
    /// Their true counterparts, in the same order and sizes.
    pub b: Vec<Tensor>,
    /// The shared file names, relative to their folders.
    pub names: Vec<String>,
    /// The files of `a`.
    pub a_paths: Vec<PathBuf>,
    /// The files of `b`.
    pub b_paths: Vec<PathBuf>,
}

impl std::fmt::Debug for PairedTestSet {
    /// The number of pairs and their file names (the images and full paths are left out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairedTestSet")
            .field("pairs", &self.names.len())
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// Distances of a translated test set to its true counterparts, with the do-nothing baseline.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TestMetrics {
    /// Mean absolute difference of G_A(testA) and testB, on the [0, 1] scale.
    pub l1: f64,
    /// Mean PSNR (dB) of G_A(testA) against testB.
    pub psnr: f64,
    /// Total-variation distance of the colour histograms of G_A(testA) and testB (0 = same).
    pub hist: f64,
    /// The same three measures for testA itself against testB: `l1`'s baseline.
    pub identity_l1: f64,
    /// `psnr`'s baseline: the mean PSNR (dB) of testA against testB.
    pub identity_psnr: f64,
    /// `hist`'s baseline: the histogram distance of testA to testB.
    pub identity_hist: f64,
}

impl PairedTestSet {
    /// Opens the input folder `dir_a` (G_A's domain: `testA`, or `testB` under `--direction
    /// BtoA`) and the folder of their true counterparts `dir_b`, when both exist and hold the
    /// same file names with images of matching sizes; `None` otherwise (nothing to compare
    /// against).
    pub fn open(dir_a: &Path, dir_b: &Path, input_nc: usize, output_nc: usize) -> Option<Self> {
        let (paths_a, paths_b) = (list_images(dir_a).ok()?, list_images(dir_b).ok()?);
        let names = |paths: &[PathBuf], dir: &Path| -> Vec<String> {
            paths
                .iter()
                .map(|p| {
                    p.strip_prefix(dir)
                        .unwrap_or(p)
                        .to_string_lossy()
                        .into_owned()
                })
                .collect()
        };
        let (names_a, names_b) = (names(&paths_a, dir_a), names(&paths_b, dir_b));
        if names_a.is_empty() || names_a != names_b {
            return None;
        }
        let load = |p: &Path, nc| match load_image(p, nc).and_then(|i| image_to_tensor(&i)) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!("{e}: left out of the test measures");
                None
            }
        };
        let mut set = PairedTestSet {
            a: vec![],
            b: vec![],
            names: vec![],
            a_paths: vec![],
            b_paths: vec![],
        };
        for ((pa, pb), name) in paths_a.iter().zip(&paths_b).zip(names_a) {
            let (Some(a), Some(b)) = (load(pa, input_nc), load(pb, output_nc)) else {
                continue;
            };
            if a.dims()[1..] != b.dims()[1..] {
                tracing::warn!(
                    "{} and {} differ in size: left out of the test measures",
                    pa.display(),
                    pb.display()
                );
                continue;
            }
            set.a.push(a);
            set.b.push(b);
            set.names.push(name);
            set.a_paths.push(pa.clone());
            set.b_paths.push(pb.clone());
        }
        (!set.a.is_empty()).then_some(set)
    }

    /// Measures `fakes` (G_A of each testA image, `[C, H, W]` in [-1, 1]) against testB.
    pub fn measure(&self, fakes: &[Tensor]) -> candle_core::Result<TestMetrics> {
        let (l1, psnr) = pixel_distances(fakes, &self.b)?;
        let (identity_l1, identity_psnr) = pixel_distances(&self.a, &self.b)?;
        let target = histogram(&self.b)?;
        Ok(TestMetrics {
            l1,
            psnr,
            hist: total_variation(&histogram(fakes)?, &target),
            identity_l1,
            identity_psnr,
            identity_hist: total_variation(&histogram(&self.a)?, &target),
        })
    }
}

/// Mean L1 and mean PSNR on the [0, 1] scale, pairwise.
fn pixel_distances(xs: &[Tensor], ys: &[Tensor]) -> candle_core::Result<(f64, f64)> {
    let (mut l1, mut psnr) = (0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        let diff = ((x.to_dtype(DType::F64)? - y.to_dtype(DType::F64)?)? * 0.5)?;
        l1 += diff.abs()?.mean_all()?.to_scalar::<f64>()?;
        let mse = diff.sqr()?.mean_all()?.to_scalar::<f64>()?.max(1e-10);
        psnr += -10.0 * mse.log10();
    }
    let n = xs.len().max(1) as f64;
    Ok((l1 / n, psnr / n))
}

/// Per-channel normalised histograms of 8-bit levels over all images, channels concatenated.
fn histogram(images: &[Tensor]) -> candle_core::Result<Vec<f64>> {
    let channels = images.first().map(|t| t.dims()[0]).unwrap_or(3);
    let mut hist = vec![0.0; channels * BINS];
    for image in images {
        let c = image.dims()[0];
        let values = image
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let plane = values.len() / c;
        for (i, v) in values.iter().enumerate() {
            let level = (((v + 1.0) / 2.0 * 255.0) as usize).min(255);
            let channel = (i / plane).min(channels - 1);
            hist[channel * BINS + level * BINS / 256] += 1.0;
        }
    }
    for channel in hist.chunks_mut(BINS) {
        let total: f64 = channel.iter().sum();
        channel.iter_mut().for_each(|h| *h /= total.max(1.0));
    }
    Ok(hist)
}

/// Total-variation distance averaged over channels: 0 for equal histograms, 1 for disjoint.
fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    let channels = (p.len() / BINS).max(1) as f64;
    p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>() / 2.0 / channels
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn image(v: f32) -> Tensor {
        Tensor::full(v, (3, 4, 4), &Device::Cpu).unwrap()
    }

    #[test]
    fn identical_images_have_zero_distances() {
        let (l1, psnr) = pixel_distances(&[image(0.2)], &[image(0.2)]).unwrap();
        assert_eq!(l1, 0.0);
        assert!(psnr >= 99.0);
        assert_eq!(
            total_variation(
                &histogram(&[image(0.2)]).unwrap(),
                &histogram(&[image(0.2)]).unwrap()
            ),
            0.0
        );
    }

    #[test]
    fn distances_grow_with_the_difference() {
        let (l1, psnr) = pixel_distances(&[image(-1.0)], &[image(1.0)]).unwrap();
        assert!((l1 - 1.0).abs() < 1e-12);
        assert!(psnr.abs() < 1e-9, "full-scale error is 0 dB, got {psnr}");
        let far = total_variation(
            &histogram(&[image(-1.0)]).unwrap(),
            &histogram(&[image(1.0)]).unwrap(),
        );
        assert!((far - 1.0).abs() < 1e-12);
        let near = total_variation(
            &histogram(&[image(0.0), image(0.9)]).unwrap(),
            &histogram(&[image(0.0), image(0.0)]).unwrap(),
        );
        assert!((near - 0.5).abs() < 1e-12);
    }
}
