//! Reading and writing CycleGAN network checkpoints.
//!
//! The native format is safetensors with the reference's `state_dict` key names and the
//! network's typed configuration ([`NetworkConfig`](cyclegan_models::NetworkConfig)) as JSON
//! in the metadata under [`CONFIG_KEY`], so a checkpoint describes the architecture it holds.
//! Every write is atomic ([`write_atomic`]): a temporary file in the same folder, synced, then
//! renamed over the target, so an interruption at any moment leaves the previous file intact;
//! files that belong together (a checkpoint's networks and training state) are replaced as a
//! group ([`FileSet`]). A [`FolderLock`] keeps a second process out of a folder's files while
//! one is writing them.
//!
//! The reference's own checkpoints are read directly:
//!
//! - [`pth`] reads both formats `torch.save` writes (the zip format of PyTorch >= 1.6 and the
//!   legacy format of older versions) without Python, and writes the zip format back;
//! - [`detect_architecture`] / [`prepare_state_dict`] recognise the network from its keys and
//!   shapes, drop the stale InstanceNorm statistics of old checkpoints and a `module.` prefix,
//!   and check every key ([`ConvertOptions`] overrides what the keys cannot show);
//! - [`load_network`] accepts any of these files, recognised by content;
//! - [`convert_checkpoint`] converts between `.pth` and safetensors;
//! - [`find_network`], [`saved_networks`] and [`checkpoint_label`] follow the reference's run
//!   folder (`<label>_net_<name>.pth`, this project's files named alike in `.safetensors`).
//!
//! ```no_run
//! use candle_core::{DType, Device};
//! let net = cyclegan_checkpoint::load_network(
//!     "checkpoints/horse2zebra_pretrained/latest_net_G.pth",
//!     &Device::Cpu,
//!     DType::F32,
//! )?;
//! println!("{}", cyclegan_checkpoint::describe_config(&net.config));
//! # Ok::<(), cyclegan_checkpoint::CheckpointError>(())
//! ```

#![warn(missing_docs)]

mod atomic;
mod convert;
mod detect;
mod error;
mod format;
mod lock;
mod network;
mod pickle;
pub mod pth;
mod run_folder;

pub use atomic::{recover_file_sets, write_atomic, FileSet, Recovered};
pub use convert::{convert_checkpoint, ConversionReport, OutputFormat};
pub use detect::{
    describe_config, detect_architecture, prepare_state_dict, ConvertOptions, PreparedStateDict,
    TensorShape,
};
pub use error::CheckpointError;
pub use format::FileFormat;
pub use lock::{FolderLock, LockError};
pub use network::{
    load_network, load_network_with, network_bytes, save_network, save_network_with_metadata,
    serialize_safetensors, LoadedNetwork, CONFIG_KEY, FORMAT_KEY, SOURCE_KEY,
};
pub use run_folder::{checkpoint_label, find_network, network_path, saved_networks, SavedNetwork};
