//! Building blocks of the CycleGAN networks, on [candle](https://github.com/huggingface/candle).
//!
//! Every layer matches its PyTorch counterpart in the reference implementation
//! (junyanz/pytorch-CycleGAN-and-pix2pix) numerically, and is built from a
//! [`candle_nn::VarBuilder`] whose path segments become the reference's `state_dict` keys.
//!
//! - [`ops`]: the tensor operations (convolutions, padding, instance norm, activations), with fast
//!   fused CPU kernels, CUDA kernels (features `cuda`, `cudnn`) and the stock candle
//!   implementations they are tested against;
//! - [`Conv2d`], [`ConvTranspose2d`]: convolutions with the reference's bias rule (and
//!   `forward_before(x, norm)`, which leaves out a bias the instance norm after it cancels);
//! - [`Norm`]: instance norm (affine-free like the reference, or affine), batch norm with
//!   running statistics, or none, selected by [`NormKind`];
//! - [`Pad2d`]: reflection, replication or zero padding ([`PaddingType`]);
//! - [`Deferred`]: a norm's output and padding left for the next convolution to apply inside
//!   its own op, which then does not store them for the backward pass;
//! - [`Dropout`]: dropout driven by a seedable, saveable RNG ([`SharedRng`]);
//! - [`ResnetBlock`]: the generator's residual block;
//! - [`init_weights`]: the reference's `init_weights` (normal, xavier, kaiming, orthogonal);
//!   [`init::host_init_var_builder`] draws new variables' first values on the host (on a GPU,
//!   candle's own would make a cuRAND generator for values that get replaced);
//! - [`device::parse_device`]: `cpu`, `cuda`, `cuda:N`.
//!
//! A residual block of the reference's generator, its parameters named as in its `state_dict`:
//!
//! ```
//! use candle_core::{DType, Device, ModuleT, Tensor};
//! use candle_nn::{VarBuilder, VarMap};
//! use cyclegan_layers::{NormKind, PaddingType, ResnetBlock, SharedRng};
//!
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let block = ResnetBlock::new(vb.pp("model.10"), 8, PaddingType::Reflect, NormKind::Instance,
//!                              false, &SharedRng::new(0))?;
//! let x = Tensor::randn(0f32, 1.0, (1, 8, 16, 16), &Device::Cpu)?;
//! assert_eq!(block.forward_t(&x, true)?.dims(), &[1, 8, 16, 16]);
//! let mut names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
//! names.sort();
//! assert_eq!(names, ["model.10.conv_block.1.bias", "model.10.conv_block.1.weight",
//!                    "model.10.conv_block.5.bias", "model.10.conv_block.5.weight"]);
//! # Ok::<(), candle_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod conv;
pub mod deferred;
pub mod device;
pub mod dropout;
pub mod init;
pub mod norm;
pub mod ops;
pub mod padding;
mod parse;
pub mod resnet_block;
pub mod rng;

// candle, whose types are in this crate's signatures.
pub use candle_core;
pub use candle_nn;
pub use conv::{Conv2d, ConvTranspose2d};
pub use deferred::Deferred;
pub use dropout::Dropout;
pub use init::{init_weights, InitType};
pub use norm::{Norm, NormKind};
pub use ops::Activation;
pub use padding::{Pad2d, PaddingType};
pub use parse::ParseNameError;
pub use resnet_block::ResnetBlock;
pub use rng::{seeded_rng, SeededRng, SharedRng};
