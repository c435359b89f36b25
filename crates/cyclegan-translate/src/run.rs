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
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error(transparent)]
    Checkpoint(#[from] cyclegan_checkpoint::CheckpointError),
    #[error("{path} holds a discriminator ({found}), not a generator: pass a latest_net_G_A / latest_net_G_B (or a pretrained latest_net_G) checkpoint")]
    NotAGenerator { path: PathBuf, found: String },
    #[error("{path}: the weights do not fit the architecture its metadata describes: {reason}")]
    Architecture { path: PathBuf, reason: String },
    #[error(transparent)]
    Data(#[from] cyclegan_data::DataError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("translating {path}: {source}")]
    Compute {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("no image of {input} could be translated")]
    NothingTranslated { input: PathBuf },
}

/// Images decoded, or translated and waiting to be written, at most, besides those being worked
/// on: what the pipeline of [`translate_files`] holds in memory.
const QUEUE: usize = 4;

/// Images decoded, or encoded and written, at once.
const PARALLEL_IMAGES: usize = 8;

/// A translated image's PNG files to write: `(tensor [1, C, H, W] in [-1, 1], path)`.
struct Output {
    images: [(Tensor, PathBuf); 2],
}

/// Writes the outputs as they arrive, up to [`PARALLEL_IMAGES`] at once, until the sender is
/// dropped or a write fails. Counts each written image on `bar`.
fn write_outputs(outputs: mpsc::Receiver<Output>, bar: &ProgressBar) -> Result<(), TranslateError> {
    let mut batch = Vec::with_capacity(PARALLEL_IMAGES);
    while let Ok(first) = outputs.recv() {
        batch.push(first);
        batch.extend(outputs.try_iter().take(PARALLEL_IMAGES - 1));
        batch.par_drain(..).try_for_each(|output| {
            for (tensor, path) in &output.images {
                cyclegan_data::save_image(tensor, path)?;
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
    pub index: PathBuf,
}

/// A unique file stem per input: the file's stem, with `_2`, `_3`... when two inputs share one.
fn unique_stem(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let mut candidate = stem.clone();
    let mut n = 1;
    while !used.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{stem}_{n}");
    }
    candidate
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
    let dataset = SingleDataset::open(&opts.input, &data_opts)?;
    let images_dir = opts.output.join("images");
    std::fs::create_dir_all(&images_dir).map_err(|source| TranslateError::Write {
        path: images_dir.clone(),
        source,
    })?;

    let bar = if opts.progress {
        ProgressBar::new(dataset.len() as u64)
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
    let load = |i: usize, path: &Path| -> Result<Tensor, DataError> {
        match &opts.resize {
            Resize::Native => cyclegan_data::load_image(path, nc)
                .and_then(|img| cyclegan_data::image_to_tensor(&img))
                .and_then(|t| t.unsqueeze(0).map_err(Into::into)),
            Resize::Reference(_) => dataset.load_batch(&[i], 0, 1).map(|b| b.a),
        }
    };
    let mut summary = TranslateSummary::default();
    let mut used = HashSet::new();
    let mut rows = Vec::new();
    // Three stages at once, so that a GPU need not wait for the host's image work: a thread
    // decodes the next images (a few at a time, in parallel), this thread translates them in
    // order, and another encodes and writes the results (a few at a time, in parallel).
    std::thread::scope(|scope| -> Result<(), TranslateError> {
        let paths = dataset.paths();
        let (decoded_tx, decoded) = mpsc::sync_channel(QUEUE);
        scope.spawn(move || {
            for (c, chunk) in paths.chunks(PARALLEL_IMAGES).enumerate() {
                let images: Vec<_> = chunk
                    .par_iter()
                    .enumerate()
                    .map(|(j, path)| load(c * PARALLEL_IMAGES + j, path))
                    .collect();
                for item in chunk.iter().zip(images) {
                    // The receiver is gone when translation failed: stop.
                    if decoded_tx.send(item).is_err() {
                        return;
                    }
                }
            }
        });
        let (written_tx, to_write) = mpsc::sync_channel::<Output>(QUEUE);
        let writer_bar = bar.clone();
        let writer = scope.spawn(move || write_outputs(to_write, &writer_bar));
        for (path, real) in decoded {
            bar.set_message(
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            let real = match real {
                Ok(t) => t,
                Err(e) if e.is_bad_image() => {
                    tracing::warn!("skipping {}: {e}", path.display());
                    summary.skipped.push((path.clone(), e.to_string()));
                    bar.inc(1);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let fake = translator
                .translate(&real)
                .map_err(|source| TranslateError::Compute {
                    path: path.clone(),
                    source,
                })?;
            let stem = unique_stem(path, &mut used);
            let (real_path, fake_path) = (
                images_dir.join(format!("{stem}_real.png")),
                images_dir.join(format!("{stem}_fake.png")),
            );
            rows.push((
                stem.clone(),
                vec![
                    ("real".to_string(), format!("images/{stem}_real.png")),
                    ("fake".to_string(), format!("images/{stem}_fake.png")),
                ],
            ));
            summary
                .translated
                .push((path.clone(), real_path.clone(), fake_path.clone()));
            let output = Output {
                images: [(real, real_path), (fake, fake_path)],
            };
            // The writer is gone only after an error, which joining it returns.
            if written_tx.send(output).is_err() {
                break;
            }
        }
        drop(written_tx);
        writer.join().expect("the image writer does not panic")
    })?;
    bar.finish_and_clear();
    if summary.translated.is_empty() {
        return Err(TranslateError::NothingTranslated {
            input: opts.input.clone(),
        });
    }
    let title = format!("Translations of {}", opts.input.display());
    crate::write_index(&opts.output, &title, &rows, 256).map_err(|source| {
        TranslateError::Write {
            path: opts.output.join("index.html"),
            source,
        }
    })?;
    summary.index = opts.output.join("index.html");
    Ok(summary)
}
