//! Unpaired image data for CycleGAN, as the reference (junyanz/pytorch-CycleGAN-and-pix2pix)
//! reads it, with a deterministic prefetching loader.
//!
//! * [`list_images`]: the reference's `make_dataset` (recursive, sorted, `.jpg .jpeg .png .ppm
//!   .bmp .tif .tiff` in any case).
//! * [`load_image`]: decode and convert like Pillow's `.convert('RGB')` / `.convert('L')`
//!   (JPEGs through libjpeg-turbo's decoder, as Pillow decodes them).
//! * [`UnalignedDataset`] (`dataroot/{phase}A` + `{phase}B`) and [`SingleDataset`] (a folder or
//!   one file), transformed as the reference's `get_transform` does ([`DataOptions`],
//!   [`Preprocess`]); bicubic resizing equals Pillow's ([`resize_bicubic`]).
//! * [`Loader`]: batches as candle tensors `[N, C, H, W]` in [-1, 1] on the CPU, prepared on
//!   worker threads, the same for a given seed whatever the threads do, resumable at any
//!   (epoch, iteration).
//! * [`tensor_to_image`] / [`save_image`]: the reference's `tensor2im` and PNG output.
//!
//! ```no_run
//! use cyclegan_data::{DataOptions, Loader, LoaderOptions, Preprocess, UnalignedDataset};
//! // The small emoji configuration: 64x64 images, random flips, no resizing.
//! let opts = DataOptions { load_size: 64, crop_size: 64, ..DataOptions::default() };
//! let data = UnalignedDataset::open("data/emoji64", &opts)?;
//! let loader = Loader::new(data, LoaderOptions { batch_size: 4, seed: 7, last_epoch: Some(1), ..Default::default() })?;
//! for batch in loader {
//!     let batch = batch?;
//!     assert_eq!(batch.a.dims()[1..], [3, 64, 64]);
//! }
//! # Ok::<(), cyclegan_data::DataError>(())
//! ```

#![warn(missing_docs)]

mod dataset;
mod error;
mod folder;
mod image_io;
mod jpeg;
mod loader;
mod options;
mod resize;
mod rng;
mod transform;

pub use dataset::{
    Batch, BatchPos, Dataset, Pair, Single, SingleBatch, SingleDataset, UnalignedDataset,
};
pub use error::{DataError, Result};
pub use folder::{is_image_file, list_images, IMAGE_EXTENSIONS};
pub use image_io::{
    convert_luma, convert_rgb, image_to_tensor, load_image, save_image, tensor_to_image,
};
pub use loader::{default_workers, Loader, LoaderOptions, OnBadImage};
pub use options::{DataOptions, Direction, Preprocess};
pub use resize::resize_bicubic;
pub use rng::{epoch_order, item_rng, ItemRng};

/// The `image` crate version this crate's API uses.
pub use image;
