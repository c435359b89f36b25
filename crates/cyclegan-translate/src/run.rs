//! Translating a file or a folder of images and writing the result page.

use candle_core::Tensor;
use cyclegan_data::{DataError, DataOptions, Dataset, SingleDataset};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::Translator;

/// Why translation failed.
///
/// A message reads whole on its own: it ends with the system's or decoder's words where there
/// are any, which [`source`](std::error::Error::source) returns too. Print it with `{}`; a chain
/// printer (anyhow's `{:#}` or `{:?}`) repeats that cause, which
/// `cyclegan_layers::device::error_text` leaves out.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// A checkpoint that could not be read.
    #[error(transparent)]
    Checkpoint(#[from] cyclegan_checkpoint::CheckpointError),
    /// The checkpoint holds a discriminator, not a generator.
    #[error("{path} holds a discriminator ({found}), not a generator: pass a latest_net_G_A / latest_net_G_B (or a pretrained latest_net_G) checkpoint")]
    NotAGenerator {
        /// The checkpoint.
        path: PathBuf,
        /// The discriminator's architecture, as its metadata names it.
        found: String,
    },
    /// The checkpoint's weights do not fit the generator its metadata describes.
    #[error("{path}: the weights do not fit the architecture its metadata describes: {reason}")]
    Architecture {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The input: a missing file or folder, a folder without images, an image that cannot
    /// be decoded or written.
    #[error(transparent)]
    Data(#[from] cyclegan_data::DataError),
    /// An output folder or the result page that could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The folder or file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// Translating an image failed (say, the GPU ran out of memory).
    #[error("translating {path}: {source}")]
    Compute {
        /// The input image.
        path: PathBuf,
        /// What failed.
        source: candle_core::Error,
    },
    /// Every input image was skipped as unreadable: there is nothing to show.
    #[error("no image of {input} could be translated")]
    NothingTranslated {
        /// The input file or folder (`--input`, or `--dataroot`).
        input: PathBuf,
    },
    /// A network file of the reference's layout (`--dataroot` form) is not there.
    #[error("no checkpoint for {network}: tried {}; {hint}", display_paths(tried))]
    MissingCheckpoint {
        /// The network, as the reference names it (`G_A`, `G_B`, `G`).
        network: String,
        /// The files looked for (`.safetensors`, then `.pth`).
        tried: Vec<PathBuf>,
        /// What to pass instead, from what the run folder holds.
        hint: String,
    },
    /// Options that cannot work (the `--dataroot` form's).
    #[error("{0}")]
    InvalidOptions(String),
}

/// Refuses an output folder inside the input folder (or the same): the images written there
/// would be translated again as inputs by the next run over that folder.
fn refuse_output_inside_input(input: &Path, output: &Path) -> Result<(), TranslateError> {
    if !input.is_dir() {
        return Ok(());
    }
    // The output may not exist yet: compare its nearest existing ancestor, plus the rest.
    let absolute = |p: &Path| -> Option<PathBuf> {
        let mut existing = p;
        let mut rest = Vec::new();
        while !existing.exists() {
            rest.push(existing.file_name()?);
            existing = existing
                .parent()
                .filter(|q| !q.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
        }
        let mut path = existing.canonicalize().ok()?;
        path.extend(rest.iter().rev());
        Some(path)
    };
    if let (Some(i), Some(o)) = (absolute(input), absolute(output)) {
        if o.starts_with(&i) {
            return Err(TranslateError::InvalidOptions(format!(
                "--output {} lies inside --input {}: the images written there would be read as inputs by the next run; choose an output folder outside it",
                output.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Images decoded, or translated and waiting to be written, at most, besides those being worked
/// on: what the pipeline of [`translate_files`] holds in memory.
const QUEUE: usize = 4;

/// Images decoded, or encoded and written, at once.
const PARALLEL_IMAGES: usize = 8;

/// A sample's PNG files to write: `(tensor [1, C, H, W] in [-1, 1], path)` each.
struct Output {
    images: Vec<(Tensor, PathBuf)>,
}

/// The reference's `save_image` resize for `--aspect_ratio`, as `(width, height)`, for an image
/// of `h` rows and `w` columns; `None` when it is saved as it is. The reference passes
/// `(h, int(w * r))` to PIL's `resize`, which takes `(width, height)`: a ratio above 1 makes
/// the image `h` wide, so non-square images come out transposed in shape. Kept as it is, so
/// that the files match the reference's.
pub(crate) fn aspect_size(h: u32, w: u32, aspect_ratio: f64) -> Option<(u32, u32)> {
    if aspect_ratio > 1.0 {
        Some((h, (w as f64 * aspect_ratio) as u32))
    } else if aspect_ratio < 1.0 {
        Some(((h as f64 / aspect_ratio) as u32, w))
    } else {
        None
    }
}

/// Saves one output image, resized for `aspect_ratio` as the reference's `save_image` does.
fn save_output(tensor: &Tensor, path: &Path, aspect_ratio: f64) -> Result<(), DataError> {
    let img = cyclegan_data::tensor_to_image(tensor)?;
    let img = match aspect_size(img.height(), img.width(), aspect_ratio) {
        None => image::DynamicImage::ImageRgb8(img),
        Some((w, h)) => cyclegan_data::resize_bicubic(&image::DynamicImage::ImageRgb8(img), w, h),
    };
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| DataError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Writes the outputs as they arrive, up to [`PARALLEL_IMAGES`] at once, until the sender is
/// dropped or a write fails. Counts each written sample on `bar`.
fn write_outputs(
    outputs: mpsc::Receiver<Output>,
    aspect_ratio: f64,
    bar: &ProgressBar,
) -> Result<(), TranslateError> {
    let mut batch = Vec::with_capacity(PARALLEL_IMAGES);
    while let Ok(first) = outputs.recv() {
        batch.push(first);
        batch.extend(outputs.try_iter().take(PARALLEL_IMAGES - 1));
        batch.par_drain(..).try_for_each(|output| {
            for (tensor, path) in &output.images {
                save_output(tensor, path, aspect_ratio)?;
            }
            bar.inc(1);
            Ok::<_, TranslateError>(())
        })?;
    }
    Ok(())
}

/// How images are sized before translation.
#[derive(Debug, Clone, PartialEq)]
pub enum Resize {
    /// Each image at its own size (mirrored out to the architecture's multiple, cropped back).
    Native,
    /// The reference's `test.py` pipeline with these data options (`--preprocess`,
    /// `--load-size`, `--crop-size`; no flips).
    Reference(DataOptions),
}

/// What [`translate_files`] does.
#[derive(Debug, Clone)]
pub struct TranslateOptions {
    /// An image file, or a folder searched recursively.
    pub input: PathBuf,
    /// Receives `images/<stem>_real.png`, `images/<stem>_fake.png` and `index.html`.
    pub output: PathBuf,
    /// How images are sized before translation: each at its own size, or as `test.py` does.
    pub resize: Resize,
    /// Show a progress bar.
    pub progress: bool,
}

/// What [`translate_files`] did.
#[derive(Debug, Clone, Default)]
pub struct TranslateSummary {
    /// `(input, real image, translated image)` for each translated file, paths as written.
    pub translated: Vec<(PathBuf, PathBuf, PathBuf)>,
    /// Files that could not be read, with the reason (they are skipped with a warning).
    pub skipped: Vec<(PathBuf, String)>,
    /// The result page written, `output/index.html`.
    pub index: PathBuf,
}

/// A unique file stem per input: the file's stem, with `_2`, `_3`... when two inputs share one.
fn unique_stem(path: &Path, used: &mut HashSet<String>) -> String {
    let mut candidate = file_stem(path);
    let stem = candidate.clone();
    let mut n = 1;
    while !used.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{stem}_{n}");
    }
    candidate
}

/// The file name without its extension (the reference's `splitext(basename(path))[0]`).
pub(crate) fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

/// A sample's labelled images, in the page's order.
pub(crate) type Visuals = Vec<(&'static str, Tensor)>;

/// The samples a [`run_samples`] call translates.
pub(crate) struct Samples<'a, T> {
    /// For each sample, the file it is named after (and named by in messages).
    pub inputs: &'a [PathBuf],
    /// Decodes sample `i` (on other threads). A bad image ([`DataError::is_bad_image`]) skips
    /// the sample with a warning; another error stops the run.
    pub load: &'a (dyn Fn(usize) -> Result<T, DataError> + Sync),
    /// Translates a decoded sample into its labelled images.
    pub translate: &'a mut dyn FnMut(T) -> candle_core::Result<Visuals>,
    /// The stem of a sample's files, from its input file.
    pub stem: &'a mut dyn FnMut(&Path) -> String,
}

/// What [`run_samples`] did.
#[derive(Default)]
pub(crate) struct Outcome {
    /// Each translated sample's input and the files written, in the page's order.
    pub written: Vec<(PathBuf, Vec<PathBuf>)>,
    pub skipped: Vec<(PathBuf, String)>,
    /// The page's rows: the stem, then `(label, path relative to the page)` per image.
    pub rows: Vec<(String, Vec<(String, String)>)>,
}

/// Translates the samples and writes `images_dir/<stem>_<label>.png` for each of their images
/// (resized for `aspect_ratio`). The next samples are decoded and the last ones written on
/// other threads while one is translated, so that a GPU does not wait for the host's image
/// work (`BENCHMARKS.md`, "Translation"); what it writes is what translating each sample alone
/// and saving it writes.
pub(crate) fn run_samples<T: Send>(
    samples: Samples<'_, T>,
    images_dir: &Path,
    aspect_ratio: f64,
    progress: bool,
) -> Result<Outcome, TranslateError> {
    let Samples {
        inputs,
        load,
        translate,
        stem,
    } = samples;
    std::fs::create_dir_all(images_dir).map_err(|source| TranslateError::Write {
        path: images_dir.to_path_buf(),
        source,
    })?;
    let bar = if progress {
        ProgressBar::new(inputs.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} translating {pos}/{len} [{bar:30}] {per_sec} ETA {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut outcome = Outcome::default();
    // Three stages at once, so that a GPU need not wait for the host's image work: a thread
    // decodes the next images (a few at a time, in parallel), this thread translates them in
    // order, and another encodes and writes the results (a few at a time, in parallel).
    std::thread::scope(|scope| -> Result<(), TranslateError> {
        let (decoded_tx, decoded) = mpsc::sync_channel(QUEUE);
        scope.spawn(move || {
            for (c, chunk) in inputs.chunks(PARALLEL_IMAGES).enumerate() {
                let loaded: Vec<_> = (0..chunk.len())
                    .into_par_iter()
                    .map(|j| load(c * PARALLEL_IMAGES + j))
                    .collect();
                for item in chunk.iter().zip(loaded) {
                    // The receiver is gone when translation failed: stop.
                    if decoded_tx.send(item).is_err() {
                        return;
                    }
                }
            }
        });
        let (written_tx, to_write) = mpsc::sync_channel::<Output>(QUEUE);
        let writer_bar = bar.clone();
        let writer = scope.spawn(move || write_outputs(to_write, aspect_ratio, &writer_bar));
        for (path, sample) in decoded {
            bar.set_message(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            let sample = match sample {
                Ok(s) => s,
                Err(e) if e.is_bad_image() => {
                    tracing::warn!("skipping {}: {e}", path.display());
                    outcome.skipped.push((path.clone(), e.to_string()));
                    bar.inc(1);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let visuals = translate(sample).map_err(|source| TranslateError::Compute {
                path: path.clone(),
                source,
            })?;
            let stem = stem(path);
            let mut row = Vec::with_capacity(visuals.len());
            let mut images = Vec::with_capacity(visuals.len());
            for (label, tensor) in visuals {
                let file = format!("{stem}_{label}.png");
                row.push((label.to_string(), format!("images/{file}")));
                images.push((tensor, images_dir.join(file)));
            }
            outcome.rows.push((stem, row));
            outcome.written.push((
                path.clone(),
                images.iter().map(|(_, p)| p.clone()).collect(),
            ));
            // The writer is gone only after an error, which joining it returns.
            if written_tx.send(Output { images }).is_err() {
                break;
            }
        }
        drop(written_tx);
        writer.join().expect("the image writer does not panic")
    })?;
    bar.finish_and_clear();
    Ok(outcome)
}

/// Translates every image of `opts.input` with `translator` and writes the result page. Images
/// that cannot be read are skipped with a warning; an image that cannot be written or translated
/// stops it with an error naming the file. The next images are decoded and the last ones
/// written on other threads while one is translated, so that a GPU does not wait for the host's
/// image work (`BENCHMARKS.md`, "Translation"); what it writes is what translating each image
/// alone and saving it writes.
pub fn translate_files(
    translator: &Translator,
    opts: &TranslateOptions,
) -> Result<TranslateSummary, TranslateError> {
    let nc = translator.config().input_nc;
    let data_opts = match &opts.resize {
        Resize::Reference(d) => DataOptions {
            input_nc: nc,
            output_nc: nc,
            no_flip: true,
            serial_batches: true,
            ..d.clone()
        },
        Resize::Native => DataOptions {
            preprocess: cyclegan_data::Preprocess::None,
            input_nc: nc,
            output_nc: nc,
            no_flip: true,
            serial_batches: true,
            ..DataOptions::default()
        },
    };
    refuse_output_inside_input(&opts.input, &opts.output)?;
    let dataset = SingleDataset::open(&opts.input, &data_opts)?;
    let paths = dataset.paths();
    let load = |i: usize| -> Result<Tensor, DataError> {
        match &opts.resize {
            Resize::Native => cyclegan_data::load_image(&paths[i], nc)
                .and_then(|img| cyclegan_data::image_to_tensor(&img))
                .and_then(|t| t.unsqueeze(0).map_err(Into::into)),
            Resize::Reference(_) => dataset.load_batch(&[i], 0, 1).map(|b| b.a),
        }
    };
    let mut used = HashSet::new();
    let outcome = run_samples(
        Samples {
            inputs: paths,
            load: &load,
            translate: &mut |real: Tensor| {
                let fake = translator.translate(&real)?;
                Ok(vec![("real", real), ("fake", fake)])
            },
            stem: &mut |path: &Path| unique_stem(path, &mut used),
        },
        &opts.output.join("images"),
        1.0,
        opts.progress,
    )?;
    if outcome.written.is_empty() {
        return Err(TranslateError::NothingTranslated {
            input: opts.input.clone(),
        });
    }
    let title = format!("Translations of {}", opts.input.display());
    let index = crate::html::write_page(&opts.output, &title, &outcome.rows, 256)?;
    Ok(TranslateSummary {
        translated: outcome
            .written
            .into_iter()
            .map(|(input, files)| {
                let [real, fake]: [PathBuf; 2] = files.try_into().expect("real and fake");
                (input, real, fake)
            })
            .collect(),
        skipped: outcome.skipped,
        index,
    })
}
