//! CycleGAN training on candle: the library behind the `cyclegan-train` binary.
//!
//! - [`model::CycleGan`]: the four networks, optimisers and pools, and one training iteration
//!   exactly as the reference computes it;
//! - [`optim::Adam`]: PyTorch's Adam with saveable state;
//! - [`schedule`]: the reference's learning-rate policies;
//! - [`options`]: the reference's options and defaults, and the embedded-data preset;
//! - [`trainer::train`]: the loop, with logs, samples, test measures, atomic checkpoints and
//!   exact resumption ([`state`]).

pub mod metrics;
pub mod model;
pub mod optim;
pub mod options;
pub mod schedule;
pub mod sheet;
pub mod state;
pub mod trainer;
pub mod web;

pub use model::{CycleGan, Losses, ModelConfig, Visuals};
pub use options::{Cli, TrainConfig};
pub use trainer::{train, TrainReport};
