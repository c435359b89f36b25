//! CycleGAN training on candle: the library behind the `cyclegan-train` binary.
//!
//! - [`model::CycleGan`]: the four networks, optimisers and pools, and one training iteration
//!   exactly as the reference computes it;
//! - [`optim::Adam`]: PyTorch's Adam with saveable state;
//! - [`schedule`]: the reference's learning-rate policies.

pub mod model;
pub mod optim;
pub mod schedule;

pub use model::{CycleGan, Losses, ModelConfig, Visuals};
