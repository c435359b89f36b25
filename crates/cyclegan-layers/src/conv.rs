//! Convolution layers with PyTorch's parameter layout and the reference's initialisation.
//!
//! Weights are created with the reference's default N(0, 0.02) and biases with zeros;
//! [`crate::init_weights`] re-draws them from a seeded generator for reproducible runs.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::{ops, Deferred, Norm};

/// Standard deviation of the reference's default `normal` initialisation (`init_gain`).
pub const DEFAULT_INIT_GAIN: f64 = 0.02;

/// A convolution's `weight` of `shape` ~ N(0, 0.02) and, when `bias`, its zero `bias` of
/// `out_channels`.
fn parameters(
    vb: &VarBuilder,
    shape: (usize, usize, usize, usize),
    out_channels: usize,
    bias: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let init = Init::Randn {
        mean: 0.0,
        stdev: DEFAULT_INIT_GAIN,
    };
    let weight = vb.get_with_hints(shape, "weight", init)?;
    let bias = bias
        .then(|| vb.get_with_hints(out_channels, "bias", Init::Const(0.0)))
        .transpose()?;
    Ok((weight, bias))
}

/// The bias a convolution whose output `norm` normalises must add: none where the norm cancels
/// it. Such a bias stays a parameter (the reference's checkpoints carry it) but gets no
/// gradient, its exact gradient being zero (PyTorch trains it on rounding noise, without effect
/// on any output); leaving it out saves the add and its gradient's sum over every output element.
fn bias_before<'a>(bias: Option<&'a Tensor>, norm: &Norm) -> Option<&'a Tensor> {
    bias.filter(|_| !norm.cancels_bias())
}

/// `nn.Conv2d(in, out, kernel, stride, padding, bias)` with zero padding.
/// Parameters: `weight` `[out, in, k, k]`, `bias` `[out]` when `bias` is true.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv2d {
    /// A `kernel` x `kernel` convolution from `in_channels` to `out_channels` under `vb`, with
    /// `stride` and zero `padding`; it has a `bias` parameter when `bias` is true.
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let shape = (out_channels, in_channels, kernel, kernel);
        let (weight, bias) = parameters(&vb, shape, out_channels, bias)?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
        })
    }

    /// The `weight` parameter, `[out, in, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The `bias` parameter, `[out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The convolution of a [`Deferred`] tensor, its prologue applied inside the op.
    pub fn forward_deferred(&self, x: &Deferred) -> Result<Tensor> {
        self.convolve(x, self.bias.as_ref())
    }

    /// [`Conv2d::forward_deferred`] where `norm` normalises the output, without the bias where
    /// the norm cancels it.
    pub fn forward_before(&self, x: &Deferred, norm: &Norm) -> Result<Tensor> {
        self.convolve(x, bias_before(self.bias.as_ref(), norm))
    }

    fn convolve(&self, x: &Deferred, bias: Option<&Tensor>) -> Result<Tensor> {
        let (source, prologue) = x.parts();
        ops::conv2d_after(
            prologue,
            source,
            &self.weight,
            bias,
            self.stride,
            self.padding,
        )
    }
}

impl Module for Conv2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_deferred(&Deferred::from(x))
    }
}

/// `nn.ConvTranspose2d(in, out, kernel, stride, padding, output_padding, bias)`.
/// Parameters: `weight` `[in, out, k, k]` (PyTorch's transposed layout), `bias` `[out]`.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    weight: Tensor,
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
    output_padding: usize,
}

impl ConvTranspose2d {
    /// A `kernel` x `kernel` transposed convolution from `in_channels` to `out_channels` under
    /// `vb`, with `stride`, `padding` and `output_padding`; it has a `bias` parameter when `bias`
    /// is true.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        output_padding: usize,
        bias: bool,
    ) -> Result<Self> {
        let shape = (in_channels, out_channels, kernel, kernel);
        let (weight, bias) = parameters(&vb, shape, out_channels, bias)?;
        Ok(Self {
            weight,
            bias,
            stride,
            padding,
            output_padding,
        })
    }

    /// The `weight` parameter, `[in, out, k, k]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The `bias` parameter, `[out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// The transposed convolution of a [`Deferred`] tensor, its prologue applied inside the op.
    pub fn forward_deferred(&self, x: &Deferred) -> Result<Tensor> {
        self.convolve(x, self.bias.as_ref())
    }

    /// [`ConvTranspose2d::forward_deferred`] where `norm` normalises the output, without the bias
    /// where the norm cancels it.
    pub fn forward_before(&self, x: &Deferred, norm: &Norm) -> Result<Tensor> {
        self.convolve(x, bias_before(self.bias.as_ref(), norm))
    }

    fn convolve(&self, x: &Deferred, bias: Option<&Tensor>) -> Result<Tensor> {
        let (source, prologue) = x.parts();
        let geometry = (self.stride, self.padding, self.output_padding);
        ops::conv_transpose2d_after(prologue, source, &self.weight, bias, geometry)
    }
}

impl Module for ConvTranspose2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_deferred(&Deferred::from(x))
    }
}
