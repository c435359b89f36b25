//! Datasets: the reference's `UnalignedDataset` (training) and `SingleDataset` (translation).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::DynamicImage;

use crate::error::{DataError, Result};
use crate::folder::list_dataset_folder;
use crate::image_io::{load_image, push_planar};
use crate::options::{DataOptions, Direction};
use crate::rng::{below, item_rng, ItemRng};
use crate::transform::apply;

/// Where a batch sits in the run: its epoch, its index within the epoch (from 0), and how many
/// batches the epoch has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BatchPos {
    /// The epoch (numbered as the caller numbers them, e.g. from 1 like the reference).
    pub epoch: u64,
    /// Index of the batch within its epoch, from 0.
    pub iteration: usize,
    /// Number of batches in the epoch (the last one may be smaller than the batch size).
    pub batches_in_epoch: usize,
}

impl BatchPos {
    /// True for the epoch's last batch (where the reference steps its learning-rate schedule).
    pub fn is_last_in_epoch(&self) -> bool {
        self.iteration + 1 == self.batches_in_epoch
    }
}

/// A source of items that a [`Loader`](crate::Loader) batches.
///
/// `load` must draw all its randomness from the `rng` it is given (derived from the seed, the
/// epoch and the index), which is what makes loading deterministic.
pub trait Dataset: Send + Sync + 'static {
    /// One loaded, transformed item.
    type Item: Send + 'static;
    /// A batch of items, as handed to the caller.
    type Batch: Send + 'static;

    /// Number of items in an epoch.
    fn len(&self) -> usize;

    /// True when there are no items (datasets of this crate never are empty).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads and transforms item `index` (`< len()`).
    fn load(&self, index: usize, rng: &mut ItemRng) -> Result<Self::Item>;

    /// Stacks items into a batch.
    fn collate(&self, items: Vec<(usize, Self::Item)>, pos: BatchPos) -> Result<Self::Batch>;

    /// Loads the items `indices` with the randomness of `epoch` under `seed` and stacks them,
    /// without threads and without skipping bad images: exactly what a loader would produce for
    /// a batch of these items in that epoch.
    fn load_batch(&self, indices: &[usize], seed: u64, epoch: u64) -> Result<Self::Batch> {
        let items = indices
            .iter()
            .map(|&i| Ok((i, self.load(i, &mut item_rng(seed, epoch, i))?)))
            .collect::<Result<Vec<_>>>()?;
        self.collate(
            items,
            BatchPos {
                epoch,
                iteration: 0,
                batches_in_epoch: 1,
            },
        )
    }
}

/// Stacks images of one size into an N x C x H x W tensor in [-1, 1].
fn stack<'a>(images: impl Iterator<Item = (&'a DynamicImage, &'a Path)>) -> Result<Tensor> {
    let mut data = Vec::new();
    let mut first: Option<([usize; 3], &Path)> = None;
    let mut n = 0;
    for (img, path) in images {
        let shape = push_planar(img, &mut data);
        match first {
            None => first = Some((shape, path)),
            Some((s, p)) if s != shape => {
                return Err(DataError::BatchShape {
                    first_path: p.to_path_buf(),
                    first: s,
                    other_path: path.to_path_buf(),
                    other: shape,
                })
            }
            Some(_) => {}
        }
        n += 1;
    }
    let [c, h, w] = first
        .map(|f| f.0)
        .ok_or_else(|| DataError::Tensor("cannot stack an empty batch".into()))?;
    Ok(Tensor::from_vec(data, (n, c, h, w), &Device::Cpu)?)
}

fn check_index(index: usize, len: usize) -> Result<()> {
    if index < len {
        Ok(())
    } else {
        Err(DataError::InvalidOptions(format!(
            "item {index} is out of range for a dataset of {len} items"
        )))
    }
}

fn limit(mut paths: Vec<PathBuf>, max: Option<usize>) -> Vec<PathBuf> {
    if let Some(max) = max {
        paths.truncate(max);
    }
    paths
}

/// Two unpaired image folders, `dataroot/{phase}A` and `dataroot/{phase}B` (the reference's
/// `UnalignedDataset`).
///
/// Item `i` pairs image `i % |A|` of folder A with a uniformly random image of folder B (image
/// `i % |B|` with `serial_batches`); there are `max(|A|, |B|)` items. Each image is loaded,
/// converted to RGB (to gray for a 1-channel side) and transformed independently.
/// With [`Direction::BtoA`] the roles swap at the output: a batch's `a` then holds the images
/// of folder B (with `input_nc` channels) and `b` those of folder A, as the reference's model
/// sees them.
#[derive(Clone, Debug)]
pub struct UnalignedDataset {
    opts: DataOptions,
    paths_a: Vec<PathBuf>,
    paths_b: Vec<PathBuf>,
}

/// One item of an [`UnalignedDataset`]: the input-domain and output-domain images, transformed.
#[derive(Clone, Debug)]
pub struct Pair {
    /// The input-domain image (8-bit gray or RGB).
    pub a: DynamicImage,
    /// The output-domain image.
    pub b: DynamicImage,
    /// The file `a` came from.
    pub a_path: PathBuf,
    /// The file `b` came from.
    pub b_path: PathBuf,
}

/// A batch of an [`UnalignedDataset`].
#[derive(Clone, Debug)]
pub struct Batch {
    /// Where this batch sits in the run.
    pub pos: BatchPos,
    /// Input-domain images, N x C x H x W, f32 on the CPU, in [-1, 1].
    pub a: Tensor,
    /// Output-domain images, N x C x H x W.
    pub b: Tensor,
    /// The files of `a`, in batch order.
    pub a_paths: Vec<PathBuf>,
    /// The files of `b`, in batch order.
    pub b_paths: Vec<PathBuf>,
    /// The dataset indices of the items, in batch order.
    pub indices: Vec<usize>,
}

impl UnalignedDataset {
    /// Lists `dataroot/{phase}A` and `dataroot/{phase}B` (recursively, sorted) after checking
    /// `opts`. A missing folder or one without images is an error that names it and the
    /// expected layout.
    pub fn open(dataroot: impl AsRef<Path>, opts: &DataOptions) -> Result<Self> {
        opts.validate()?;
        let root = dataroot.as_ref();
        let (name_a, name_b) = (format!("{}A", opts.phase), format!("{}B", opts.phase));
        let expected = format!(
            "an unaligned dataset needs two folders of images, {} and {} (for example datasets/horse2zebra/{name_a} and .../{name_b})",
            root.join(&name_a).display(),
            root.join(&name_b).display(),
        );
        let paths_a = limit(
            list_dataset_folder(&root.join(&name_a), &expected)?,
            opts.max_dataset_size,
        );
        let paths_b = limit(
            list_dataset_folder(&root.join(&name_b), &expected)?,
            opts.max_dataset_size,
        );
        Ok(UnalignedDataset {
            opts: opts.clone(),
            paths_a,
            paths_b,
        })
    }

    /// The images of folder `{phase}A`, whatever the direction.
    pub fn paths_a(&self) -> &[PathBuf] {
        &self.paths_a
    }

    /// The images of folder `{phase}B`, whatever the direction.
    pub fn paths_b(&self) -> &[PathBuf] {
        &self.paths_b
    }

    /// The options the dataset was opened with.
    pub fn options(&self) -> &DataOptions {
        &self.opts
    }
}

impl Dataset for UnalignedDataset {
    type Item = Pair;
    type Batch = Batch;

    fn len(&self) -> usize {
        self.paths_a.len().max(self.paths_b.len())
    }

    fn load(&self, index: usize, rng: &mut ItemRng) -> Result<Pair> {
        check_index(index, self.len())?;
        let path_a = &self.paths_a[index % self.paths_a.len()];
        let index_b = if self.opts.serial_batches {
            index % self.paths_b.len()
        } else {
            below(rng, self.paths_b.len() as u64) as usize
        };
        let path_b = &self.paths_b[index_b];
        let (nc_a, nc_b) = self.opts.folder_channels();
        let img_a = apply(load_image(path_a, 3)?, nc_a == 1, &self.opts, rng, path_a)?;
        let img_b = apply(load_image(path_b, 3)?, nc_b == 1, &self.opts, rng, path_b)?;
        let (a, b, a_path, b_path) = match self.opts.direction {
            Direction::AtoB => (img_a, img_b, path_a, path_b),
            Direction::BtoA => (img_b, img_a, path_b, path_a),
        };
        Ok(Pair {
            a,
            b,
            a_path: a_path.clone(),
            b_path: b_path.clone(),
        })
    }

    fn collate(&self, items: Vec<(usize, Pair)>, pos: BatchPos) -> Result<Batch> {
        let a = stack(items.iter().map(|(_, p)| (&p.a, p.a_path.as_path())))?;
        let b = stack(items.iter().map(|(_, p)| (&p.b, p.b_path.as_path())))?;
        let mut batch = Batch {
            pos,
            a,
            b,
            a_paths: vec![],
            b_paths: vec![],
            indices: vec![],
        };
        for (i, p) in items {
            batch.indices.push(i);
            batch.a_paths.push(p.a_path);
            batch.b_paths.push(p.b_path);
        }
        Ok(batch)
    }
}

/// One folder of images (searched recursively) or a single image file, for translation in one
/// direction (the reference's `SingleDataset`).
///
/// Images get `input_nc` channels (`output_nc` with [`Direction::BtoA`]) and the transform of
/// the options; [`DataOptions::reference_test`] gives the reference's test settings, and
/// [`Preprocess::None`](crate::Preprocess::None) keeps any size (rounded to multiples of 4).
#[derive(Clone, Debug)]
pub struct SingleDataset {
    opts: DataOptions,
    paths: Vec<PathBuf>,
}

/// One item of a [`SingleDataset`].
#[derive(Clone, Debug)]
pub struct Single {
    /// The transformed image (8-bit gray or RGB).
    pub image: DynamicImage,
    /// The file it came from.
    pub path: PathBuf,
}

/// A batch of a [`SingleDataset`].
#[derive(Clone, Debug)]
pub struct SingleBatch {
    /// Where this batch sits in the run.
    pub pos: BatchPos,
    /// The images, N x C x H x W, f32 on the CPU, in [-1, 1].
    pub a: Tensor,
    /// Their files, in batch order.
    pub a_paths: Vec<PathBuf>,
    /// The dataset indices of the items, in batch order.
    pub indices: Vec<usize>,
}

impl SingleDataset {
    /// Lists `path` recursively when it is a folder, or takes it as the only image when it is
    /// a file (whatever its extension).
    pub fn open(path: impl AsRef<Path>, opts: &DataOptions) -> Result<Self> {
        opts.validate()?;
        let path = path.as_ref();
        let paths = if path.is_file() {
            vec![path.to_path_buf()]
        } else {
            let expected =
                "translation reads one image file, or a folder searched recursively for images";
            limit(list_dataset_folder(path, expected)?, opts.max_dataset_size)
        };
        Ok(SingleDataset {
            opts: opts.clone(),
            paths,
        })
    }

    /// The images, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// The options the dataset was opened with.
    pub fn options(&self) -> &DataOptions {
        &self.opts
    }
}

impl Dataset for SingleDataset {
    type Item = Single;
    type Batch = SingleBatch;

    fn len(&self) -> usize {
        self.paths.len()
    }

    fn load(&self, index: usize, rng: &mut ItemRng) -> Result<Single> {
        check_index(index, self.len())?;
        let path = &self.paths[index];
        let nc = self.opts.folder_channels().0;
        let image = apply(load_image(path, 3)?, nc == 1, &self.opts, rng, path)?;
        Ok(Single {
            image,
            path: path.clone(),
        })
    }

    fn collate(&self, items: Vec<(usize, Single)>, pos: BatchPos) -> Result<SingleBatch> {
        let a = stack(items.iter().map(|(_, s)| (&s.image, s.path.as_path())))?;
        let (indices, a_paths) = items.into_iter().map(|(i, s)| (i, s.path)).unzip();
        Ok(SingleBatch {
            pos,
            a,
            a_paths,
            indices,
        })
    }
}
