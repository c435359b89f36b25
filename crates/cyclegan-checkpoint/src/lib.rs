//! Reading and writing CycleGAN network checkpoints.
//!
//! The native format is safetensors with the reference's `state_dict` key names and the
//! network's typed configuration ([`NetworkConfig`]) as JSON in the metadata under
//! [`CONFIG_KEY`], so a checkpoint describes the architecture it holds. Every write is atomic
//! ([`write_atomic`]): a temporary file in the same folder, synced, then renamed over the target,
//! so an interruption at any moment leaves the previous file intact.

mod atomic;
mod network;

pub use atomic::write_atomic;
pub use network::{
    load_network, save_network, CheckpointError, LoadedNetwork, CONFIG_KEY, FORMAT_KEY,
};
