//! CycleGAN training on candle: the library behind the `cyclegan-train` binary.
//!
//! - [`model::CycleGan`]: the four networks, optimisers and pools, and one training iteration
//!   exactly as the reference computes it;
//! - [`optim::Adam`]: PyTorch's Adam with saveable state;
//! - [`schedule`]: the reference's learning-rate policies;
//! - [`options`]: the reference's options and defaults, and the embedded-data preset;
//! - [`embedded`]: the default dataset, built into the binary;
//! - [`trainer::train`]: the loop, with logs, samples, test measures, atomic checkpoints and
//!   exact resumption ([`state`]); its errors are [`TrainError`]s, sorted by what the caller
//!   can do about them (fix the options, choose another run folder, fix the data, ...).
//!
//! One training iteration of a small CycleGAN, as the reference's `optimize_parameters` runs it:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use cyclegan_models::{GeneratorArch, GeneratorConfig};
//! use cyclegan_train::{CycleGan, ModelConfig};
//!
//! let mut config = ModelConfig::default();
//! config.generator = GeneratorConfig { arch: GeneratorArch::Resnet { blocks: 1 }, ngf: 4,
//!                                      ..GeneratorConfig::default() };
//! config.discriminator.ndf = 4;
//! let mut model = CycleGan::new(config, &Device::Cpu, DType::F32, 0)?;
//! let a = Tensor::rand(-1f32, 1.0, (1, 3, 32, 32), &Device::Cpu)?;
//! let b = Tensor::rand(-1f32, 1.0, (1, 3, 32, 32), &Device::Cpu)?;
//! let (losses, visuals) = model.train_step(&a, &b)?;
//! assert!(losses.cycle_A > 0.0 && losses.D_B > 0.0);
//! assert_eq!(visuals.fake_b.dims(), &[1, 3, 32, 32]);
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod embedded;
mod error;
pub mod metrics;
pub mod model;
pub mod optim;
pub mod options;
pub mod schedule;
pub mod set_aside;
pub mod sheet;
pub mod state;
pub mod trainer;
pub mod web;

pub use error::{Result, TrainError};
pub use model::{CycleGan, Losses, ModelConfig, NetworkName, Visuals};
pub use options::{Cli, TrainConfig};
pub use trainer::{train, train_with_stop, TrainReport};
