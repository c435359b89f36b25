//! Recognising the architecture of a reference `state_dict` from its keys and shapes, and
//! cleaning it up for this project's networks.
//!
//! The reference's `nn.Sequential` indices are fixed by the architecture, so the keys tell
//! almost everything:
//!
//! - ResNet generator: `model.1.weight` `[ngf, input_nc, 7, 7]`, residual blocks at
//!   `model.10 ..= model.{9+n}` (the block count), the last convolution at `model.{17+n}`
//!   (`output_nc`); inside a block the second convolution is `conv_block.5`, or `.6` with
//!   dropout (`.3` / `.4` with zero padding, which has no padding layers).
//! - U-Net generator: `model.model.0.weight` `[ngf, input_nc, 4, 4]`, one nesting level
//!   (`.model.3.model`) per downsampling.
//! - PatchGAN discriminator: `model.0.weight` `[ndf, input_nc, 4, 4]` and a convolution every
//!   three modules after it (`n_layers` = convolutions - 2).
//! - PixelGAN discriminator: `net.0.weight` `[ndf, input_nc, 1, 1]`.
//! - The norm: a norm module with `weight` and running statistics is batch norm, with `weight`
//!   only it is affine instance norm; without parameters it is instance norm when the
//!   convolution before it has a bias (the reference's `use_bias` rule), and no norm otherwise.
//!
//! What leaves no trace in the keys: reflect versus replicate padding, and dropout in a U-Net.
//! Those default to the reference's CycleGAN settings (reflect, no dropout) and can be set
//! with [`ConvertOptions`].

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::VarBuilder;
use cyclegan_layers::{NormKind, PaddingType, SharedRng};
use cyclegan_models::{
    is_buffer, Discriminator, DiscriminatorArch, DiscriminatorConfig, Generator, GeneratorArch,
    GeneratorConfig, NetworkConfig,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::shown;
use crate::CheckpointError;

/// Anything with a shape: a [`Tensor`], a [`Shape`] or a list of dimensions.
pub trait TensorShape {
    /// The dimensions.
    fn tensor_dims(&self) -> &[usize];
}

impl TensorShape for Tensor {
    fn tensor_dims(&self) -> &[usize] {
        self.dims()
    }
}

impl TensorShape for Shape {
    fn tensor_dims(&self) -> &[usize] {
        self.dims()
    }
}

impl TensorShape for Vec<usize> {
    fn tensor_dims(&self) -> &[usize] {
        self
    }
}

impl<T: TensorShape + ?Sized> TensorShape for &T {
    fn tensor_dims(&self) -> &[usize] {
        (**self).tensor_dims()
    }
}

/// Settings that replace what detection finds (the reference's `--netG`, `--netD`, `--norm`,
/// ...), for what the keys cannot show or to insist on an architecture.
///
/// The result is always checked against the keys and shapes of the file: an override that
/// does not fit the file is an error, not a silent mismatch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConvertOptions {
    /// The generator architecture (`resnet_9blocks`, `unet_256`, ...).
    pub net_g: Option<GeneratorArch>,
    /// The discriminator architecture (`basic`, `n_layers_N`, `pixel`).
    pub net_d: Option<DiscriminatorArch>,
    /// The norm layers (`instance`, `instance_affine`, `batch`, `none`).
    pub norm: Option<NormKind>,
    /// Generator width.
    pub ngf: Option<usize>,
    /// Discriminator width.
    pub ndf: Option<usize>,
    /// Input channels.
    pub input_nc: Option<usize>,
    /// Generator output channels.
    pub output_nc: Option<usize>,
    /// Whether the generator has dropout (visible in ResNet keys, invisible in U-Net keys).
    pub use_dropout: Option<bool>,
    /// ResNet block padding (reflect and replicate look the same in the keys).
    pub padding_type: Option<PaddingType>,
}

/// A `state_dict` ready for this project's networks.
#[derive(Debug, Clone)]
pub struct PreparedStateDict {
    /// The architecture, detected and overridden.
    pub config: NetworkConfig,
    /// The tensors under this project's key names, in the reference's module order.
    pub tensors: Vec<(String, Tensor)>,
    /// What was changed or assumed, one sentence each (for logs and reports).
    pub notes: Vec<String>,
}

fn module_of(key: &str) -> &str {
    key.rsplit_once('.').map_or("", |(m, _)| m)
}

/// The keys and shapes of a state_dict, for detection.
struct Keys<'a> {
    shapes: BTreeMap<&'a str, &'a [usize]>,
}

impl<'a> Keys<'a> {
    fn get(&self, key: &str) -> Option<&'a [usize]> {
        self.shapes.get(key).copied()
    }

    fn has(&self, key: &str) -> bool {
        self.shapes.contains_key(key)
    }

    /// The weight of a convolution module (rank 4).
    fn conv(&self, module: &str) -> Option<&'a [usize]> {
        self.get(&format!("{module}.weight"))
            .filter(|s| s.len() == 4)
    }

    /// The norm after the convolution `conv` (whose bias tells instance from none).
    fn norm(&self, norm: &str, conv: &str) -> NormKind {
        if self.has(&format!("{norm}.weight")) {
            if self.has(&format!("{norm}.running_mean")) {
                NormKind::Batch
            } else {
                NormKind::InstanceAffine
            }
        } else if self.has(&format!("{conv}.bias")) {
            NormKind::Instance
        } else {
            NormKind::None
        }
    }

    /// Up to `max` keys with shapes, for messages.
    fn summary(&self, max: usize) -> String {
        let mut keys: Vec<(&str, &[usize])> = self.shapes.iter().map(|(k, v)| (*k, *v)).collect();
        keys.sort_by(|a, b| natural_cmp(a.0, b.0));
        let mut parts: Vec<String> = keys
            .iter()
            .take(max)
            .map(|(k, s)| format!("{} {s:?}", shown(k)))
            .collect();
        if keys.len() > max {
            parts.push(format!("... ({} tensors in all)", keys.len()));
        }
        if parts.is_empty() {
            "no tensors".into()
        } else {
            parts.join(", ")
        }
    }
}

const EXPECTED_LAYOUTS: &str = "a reference generator (resnet_<N>blocks: model.1.weight [ngf, in, 7, 7] and residual blocks model.10.conv_block...; unet_<N>: model.model.0.weight [ngf, in, 4, 4]) or discriminator (basic / n_layers: model.0.weight [ndf, in, 4, 4]; pixel: net.0.weight [ndf, in, 1, 1])";

/// Recognises the architecture of a `state_dict` (reference key names; a `module.` prefix is
/// tolerated) from its keys and shapes, and checks that the keys are exactly those of that
/// architecture (stale InstanceNorm running statistics of old checkpoints aside).
pub fn detect_architecture<T: TensorShape>(
    state_dict: &HashMap<String, T>,
) -> Result<NetworkConfig, CheckpointError> {
    let shapes: Vec<(String, Vec<usize>)> = state_dict
        .iter()
        .map(|(k, v)| (k.clone(), v.tensor_dims().to_vec()))
        .collect();
    let (shapes, _) = strip_module_prefix(shapes);
    let config = detect_keys(&keys_of(&shapes))?;
    check_keys(&shapes, &config, &mut Vec::new())?;
    Ok(config)
}

fn keys_of(shapes: &[(String, Vec<usize>)]) -> Keys<'_> {
    Keys {
        shapes: shapes
            .iter()
            .map(|(k, s)| (k.as_str(), s.as_slice()))
            .collect(),
    }
}

fn strip_module_prefix<T>(entries: Vec<(String, T)>) -> (Vec<(String, T)>, bool) {
    if !entries.is_empty() && entries.iter().all(|(k, _)| k.starts_with("module.")) {
        let stripped = entries
            .into_iter()
            .map(|(k, v)| (k["module.".len()..].to_string(), v))
            .collect();
        (stripped, true)
    } else {
        (entries, false)
    }
}

fn unknown(keys: &Keys, problem: Option<String>) -> CheckpointError {
    let found = match problem {
        Some(problem) => format!("{problem}; keys: {}", keys.summary(12)),
        None => keys.summary(12),
    };
    CheckpointError::Architecture {
        path: None,
        found,
        expected: EXPECTED_LAYOUTS.to_string(),
    }
}

fn detect_keys(keys: &Keys) -> Result<NetworkConfig, CheckpointError> {
    let result = if keys.has("model.model.0.weight") {
        detect_unet(keys).map(NetworkConfig::Generator)
    } else if keys.conv("model.1").is_some_and(|w| w[2] == 7) {
        detect_resnet(keys).map(NetworkConfig::Generator)
    } else if keys.has("net.0.weight") {
        detect_pixel(keys).map(NetworkConfig::Discriminator)
    } else if keys.conv("model.0").is_some_and(|w| w[2] == 4) {
        detect_nlayers(keys).map(NetworkConfig::Discriminator)
    } else {
        Err(None)
    };
    result.map_err(|problem| unknown(keys, problem))
}

fn detect_resnet(keys: &Keys) -> Result<GeneratorConfig, Option<String>> {
    let first = keys.conv("model.1").ok_or(None)?;
    let (ngf, input_nc) = (first[0], first[1]);
    // model.{block}.conv_block.{layer}.weight of rank 4: the convolutions of each block.
    let mut blocks: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for (key, shape) in &keys.shapes {
        let Some(rest) = key.strip_prefix("model.") else {
            continue;
        };
        let mut parts = rest.split('.');
        if let (Some(block), Some("conv_block"), Some(layer), Some("weight"), None) = (
            parts.next().and_then(|b| b.parse::<usize>().ok()),
            parts.next(),
            parts.next().and_then(|l| l.parse::<usize>().ok()),
            parts.next(),
            parts.next(),
        ) {
            let convs = blocks.entry(block).or_default();
            if shape.len() == 4 {
                convs.insert(layer);
            }
        }
    }
    let n = blocks.len();
    let indices: Vec<usize> = blocks.keys().copied().collect();
    if indices != (10..10 + n).collect::<Vec<_>>() {
        return Err(Some(format!(
            "residual blocks at model.{indices:?}, expected consecutive blocks from model.10"
        )));
    }
    let layout = blocks.values().next().cloned().unwrap_or_default();
    if let Some((i, other)) = blocks.iter().find(|(_, convs)| **convs != layout) {
        return Err(Some(format!(
            "block model.{i} has convolutions at conv_block.{other:?}, block model.10 at conv_block.{layout:?}"
        )));
    }
    let layout: Vec<usize> = layout.into_iter().collect();
    let (padding_type, use_dropout) = match layout.as_slice() {
        [1, 5] => (PaddingType::Reflect, false),
        [1, 6] => (PaddingType::Reflect, true),
        [0, 3] => (PaddingType::Zero, false),
        [0, 4] => (PaddingType::Zero, true),
        other => {
            return Err(Some(format!(
                "residual block convolutions at conv_block.{other:?}, expected conv_block.1 and .5 (or .6 with dropout)"
            )))
        }
    };
    let last = format!("model.{}", 17 + n);
    let output_nc = keys.conv(&last).ok_or_else(|| {
        Some(format!(
            "{n} residual blocks but no final convolution {last}.weight"
        ))
    })?[0];
    Ok(GeneratorConfig {
        arch: GeneratorArch::Resnet { blocks: n },
        input_nc,
        output_nc,
        ngf,
        norm: keys.norm("model.2", "model.1"),
        use_dropout,
        padding_type,
    })
}

fn detect_unet(keys: &Keys) -> Result<GeneratorConfig, Option<String>> {
    let first = keys.conv("model.model.0").ok_or(None)?;
    let (ngf, input_nc) = (first[0], first[1]);
    let output_nc = keys
        .conv("model.model.3")
        .ok_or_else(|| Some("no outermost up-convolution model.model.3.weight".to_string()))?[1];
    let second = "model.model.1.model";
    if keys.conv(&format!("{second}.1")).is_none() {
        return Err(Some(format!("no second U-Net level {second}.1.weight")));
    }
    let mut level = second.to_string();
    let mut downs = 2;
    while keys.conv(&format!("{level}.3.model.1")).is_some() {
        level.push_str(".3.model");
        downs += 1;
    }
    if downs < 5 {
        return Err(Some(format!(
            "a U-Net of {downs} levels; the reference's U-Nets have at least 5"
        )));
    }
    Ok(GeneratorConfig {
        arch: GeneratorArch::Unet { downs },
        input_nc,
        output_nc,
        ngf,
        norm: keys.norm(&format!("{second}.2"), &format!("{second}.1")),
        use_dropout: false,
        padding_type: PaddingType::Reflect,
    })
}

fn detect_nlayers(keys: &Keys) -> Result<DiscriminatorConfig, Option<String>> {
    let first = keys.conv("model.0").ok_or(None)?;
    let convs: Vec<usize> = keys
        .shapes
        .iter()
        .filter(|(_, s)| s.len() == 4)
        .filter_map(|(k, _)| {
            k.strip_prefix("model.")?
                .strip_suffix(".weight")?
                .parse::<usize>()
                .ok()
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let n_layers = convs.len().saturating_sub(2);
    let expected: Vec<usize> = std::iter::once(0)
        .chain((0..=n_layers).map(|k| 2 + 3 * k))
        .collect();
    if n_layers == 0 || convs != expected {
        return Err(Some(format!(
            "PatchGAN convolutions at model.{convs:?}, expected model.0, model.2, model.5, ... every third module"
        )));
    }
    Ok(DiscriminatorConfig {
        arch: DiscriminatorArch::NLayers(n_layers),
        input_nc: first[1],
        ndf: first[0],
        norm: keys.norm("model.3", "model.2"),
    })
}

fn detect_pixel(keys: &Keys) -> Result<DiscriminatorConfig, Option<String>> {
    let first = keys.conv("net.0").ok_or(None)?;
    Ok(DiscriminatorConfig {
        arch: DiscriminatorArch::Pixel,
        input_nc: first[1],
        ndf: first[0],
        norm: keys.norm("net.3", "net.2"),
    })
}

fn apply_overrides(
    config: NetworkConfig,
    o: &ConvertOptions,
) -> Result<NetworkConfig, CheckpointError> {
    let conflict = |flag: &str, kind: &str| CheckpointError::Architecture {
        path: None,
        found: format!("a {kind} ({})", describe_config(&config)),
        expected: format!(
            "what the options ask for, but {flag} applies to the other kind of network"
        ),
    };
    Ok(match config {
        NetworkConfig::Generator(mut g) => {
            if o.net_d.is_some() {
                return Err(conflict("--netD", "generator"));
            }
            if o.ndf.is_some() {
                return Err(conflict("--ndf", "generator"));
            }
            g.arch = o.net_g.unwrap_or(g.arch);
            g.norm = o.norm.unwrap_or(g.norm);
            g.ngf = o.ngf.unwrap_or(g.ngf);
            g.input_nc = o.input_nc.unwrap_or(g.input_nc);
            g.output_nc = o.output_nc.unwrap_or(g.output_nc);
            g.use_dropout = o.use_dropout.unwrap_or(g.use_dropout);
            g.padding_type = o.padding_type.unwrap_or(g.padding_type);
            NetworkConfig::Generator(g)
        }
        NetworkConfig::Discriminator(mut d) => {
            for (given, flag) in [
                (o.net_g.is_some(), "--netG"),
                (o.ngf.is_some(), "--ngf"),
                (o.output_nc.is_some(), "--output-nc"),
                (o.use_dropout.is_some(), "--dropout"),
                (o.padding_type.is_some(), "--padding-type"),
            ] {
                if given {
                    return Err(conflict(flag, "discriminator"));
                }
            }
            d.arch = o.net_d.unwrap_or(d.arch);
            d.norm = o.norm.unwrap_or(d.norm);
            d.ndf = o.ndf.unwrap_or(d.ndf);
            d.input_nc = o.input_nc.unwrap_or(d.input_nc);
            NetworkConfig::Discriminator(d)
        }
    })
}

/// A one-line description of an architecture (`resnet_9blocks generator, ngf 64, 3 -> 3
/// channels, instance norm, no dropout`).
pub fn describe_config(config: &NetworkConfig) -> String {
    match config {
        NetworkConfig::Generator(g) => format!(
            "{} generator, ngf {}, {} -> {} channels, {} norm, {}{}",
            g.arch,
            g.ngf,
            g.input_nc,
            g.output_nc,
            g.norm,
            if g.use_dropout {
                "dropout"
            } else {
                "no dropout"
            },
            match (g.arch, g.padding_type) {
                (GeneratorArch::Resnet { .. }, p) => format!(", {p} padding"),
                _ => String::new(),
            }
        ),
        NetworkConfig::Discriminator(d) => format!(
            "{} discriminator, ndf {}, {} channels, {} norm",
            d.arch, d.ndf, d.input_nc, d.norm
        ),
    }
}

/// Records the names and shapes a network asks its `VarBuilder` for, without allocating
/// the parameters.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<BTreeMap<String, Vec<usize>>>>);

impl candle_nn::var_builder::SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), s.dims().to_vec());
        Tensor::zeros((), dtype, dev)?.broadcast_as(s)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: the shape is needed")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// The `state_dict` keys and shapes (buffers included) of the network `config` describes, as
/// this project's networks name them.
pub(crate) fn expected_shapes(
    config: &NetworkConfig,
) -> Result<BTreeMap<String, Vec<usize>>, CheckpointError> {
    let recorder = Recorder::default();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), DType::F32, Device::Cpu);
    match config {
        NetworkConfig::Generator(g) => {
            Generator::new(vb, g, &SharedRng::new(0))?;
        }
        NetworkConfig::Discriminator(d) => {
            Discriminator::new(vb, d)?;
        }
    }
    let shapes = recorder.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(shapes)
}

/// Checks `shapes` against the keys of `config`, noting (not failing on) stale InstanceNorm
/// statistics and a missing `num_batches_tracked`.
pub(crate) fn check_keys(
    shapes: &[(String, Vec<usize>)],
    config: &NetworkConfig,
    notes: &mut Vec<String>,
) -> Result<(BTreeSet<String>, BTreeSet<String>), CheckpointError> {
    let expected = expected_shapes(config)?;
    let present: HashMap<&str, &[usize]> = shapes
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_slice()))
        .collect();
    let mut stale = BTreeSet::new();
    let mut unexpected = Vec::new();
    let mut mismatched = Vec::new();
    for (key, shape) in &present {
        match expected.get(*key) {
            Some(want) if want.as_slice() != *shape => {
                mismatched.push(format!("{} is {shape:?}, expected {want:?}", shown(key)))
            }
            Some(_) => {}
            None if is_buffer(key)
                && !present.contains_key(format!("{}.weight", module_of(key)).as_str()) =>
            {
                stale.insert(key.to_string());
            }
            None => unexpected.push(format!("{} {shape:?}", shown(key))),
        }
    }
    let mut added = BTreeSet::new();
    let mut missing = Vec::new();
    for (key, want) in &expected {
        if !present.contains_key(key.as_str()) {
            if key.ends_with(".num_batches_tracked") {
                added.insert(key.clone());
            } else {
                missing.push(format!("{key} {want:?}"));
            }
        }
    }
    if !unexpected.is_empty() || !missing.is_empty() || !mismatched.is_empty() {
        let list = |what: &str, mut items: Vec<String>| {
            items.sort_by(|a, b| natural_cmp(a, b));
            let n = items.len();
            let shown: Vec<String> = items.into_iter().take(8).collect();
            format!(
                "{n} {what} ({}{})",
                shown.join(", "),
                if n > 8 { ", ..." } else { "" }
            )
        };
        let mut found = Vec::new();
        if !unexpected.is_empty() {
            found.push(list("unexpected keys", unexpected));
        }
        if !missing.is_empty() {
            found.push(list("missing keys", missing));
        }
        if !mismatched.is_empty() {
            found.push(list("shape mismatches", mismatched));
        }
        return Err(CheckpointError::Architecture {
            path: None,
            found: found.join("; "),
            expected: format!(
                "the {} keys of a {}",
                expected.len(),
                describe_config(config)
            ),
        });
    }
    if !stale.is_empty() {
        notes.push(format!(
            "dropped {} InstanceNorm running-statistics keys of an old PyTorch checkpoint ({})",
            stale.len(),
            stale
                .iter()
                .take(3)
                .map(|k| shown(k))
                .collect::<Vec<_>>()
                .join(", ")
                + if stale.len() > 3 { ", ..." } else { "" }
        ));
    }
    if !added.is_empty() {
        notes.push(format!(
            "added num_batches_tracked = 0 to {} batch-norm layers (a checkpoint of PyTorch < 0.4.1)",
            added.len()
        ));
    }
    Ok((stale, added))
}

/// Each tensor's key and shape, what the architecture checks read.
pub(crate) fn shapes_of(tensors: &[(String, Tensor)]) -> Vec<(String, Vec<usize>)> {
    tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.dims().to_vec()))
        .collect()
}

/// Refuses integer (or boolean) tensors anywhere but the batch-norm step counters: weights
/// and statistics are floating point in every network the reference builds.
pub(crate) fn check_dtypes(tensors: &[(String, Tensor)]) -> Result<(), CheckpointError> {
    let mut wrong: Vec<String> = tensors
        .iter()
        .filter(|(key, t)| {
            // Not `is_float`: candle's 4- to 8-bit float types convert to none of these.
            !matches!(
                t.dtype(),
                DType::F16 | DType::BF16 | DType::F32 | DType::F64
            ) && !key.ends_with(".num_batches_tracked")
        })
        .map(|(key, t)| format!("{} {:?}", shown(key), t.dtype()))
        .collect();
    if wrong.is_empty() {
        return Ok(());
    }
    wrong.sort_by(|a, b| natural_cmp(a, b));
    let n = wrong.len();
    wrong.truncate(8);
    Err(CheckpointError::Architecture {
        path: None,
        found: format!(
            "{n} tensor(s) of an integer or unsupported type ({}{})",
            wrong.join(", "),
            if n > 8 { ", ..." } else { "" }
        ),
        expected: "floating-point weights and statistics (f16, bf16, f32 or f64); only num_batches_tracked counts are integers".into(),
    })
}

/// Detects the architecture of a reference `state_dict` (or takes it from `options`), strips
/// a `module.` prefix (DataParallel), drops the stale InstanceNorm running statistics of old
/// checkpoints, adds a missing `num_batches_tracked`, and checks every key and shape against
/// the architecture, and that weights are floating point.
pub fn prepare_state_dict(
    tensors: Vec<(String, Tensor)>,
    options: &ConvertOptions,
) -> Result<PreparedStateDict, CheckpointError> {
    check_dtypes(&tensors)?;
    let mut notes = Vec::new();
    let (tensors, stripped) = strip_module_prefix(tensors);
    if stripped {
        notes.push("stripped the 'module.' prefix of a DataParallel checkpoint".to_string());
    }
    let shapes = shapes_of(&tensors);
    let detected = detect_keys(&keys_of(&shapes))?;
    let config = apply_overrides(detected, options)?;
    let (stale, added) = check_keys(&shapes, &config, &mut notes)?;
    if let NetworkConfig::Generator(g) = &config {
        match g.arch {
            GeneratorArch::Unet { .. } if options.use_dropout.is_none() => notes.push(
                "a U-Net's dropout leaves no trace in its keys: assumed none (pass --dropout if it was trained with it)".to_string(),
            ),
            GeneratorArch::Resnet { .. }
                if options.padding_type.is_none() && g.padding_type == PaddingType::Reflect =>
            {
                notes.push(
                    "reflect and replicate padding look the same in the keys: assumed reflect, the reference's default".to_string(),
                )
            }
            _ => {}
        }
    }
    let mut tensors: Vec<(String, Tensor)> = tensors
        .into_iter()
        .filter(|(k, _)| !stale.contains(k))
        .collect();
    for key in added {
        tensors.push((key, Tensor::zeros((), DType::I64, &Device::Cpu)?));
    }
    tensors.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    Ok(PreparedStateDict {
        config,
        tensors,
        notes,
    })
}

/// Orders keys as the reference's modules are ordered: dot-separated parts, numbers
/// numerically (`model.2` before `model.10`).
pub(crate) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(config: &NetworkConfig) -> HashMap<String, Vec<usize>> {
        expected_shapes(config).unwrap().into_iter().collect()
    }

    fn generator(arch: &str, f: impl FnOnce(&mut GeneratorConfig)) -> NetworkConfig {
        let mut g = GeneratorConfig {
            arch: arch.parse().unwrap(),
            ngf: 8,
            ..Default::default()
        };
        f(&mut g);
        NetworkConfig::Generator(g)
    }

    /// A damaged file's key of 200 000 characters is named by its start and length: beside a
    /// network's keys (an unexpected key), and alone (no network's keys).
    #[test]
    fn a_huge_key_does_not_flood_the_message() {
        let huge = "k".repeat(200_000);
        let mut state_dict = shapes(&generator("resnet_6blocks", |_| {}));
        state_dict.insert(huge.clone(), vec![2, 2]);
        let alone = HashMap::from([(huge, vec![2usize, 2])]);
        for dict in [state_dict, alone] {
            let message = detect_architecture(&dict).unwrap_err().to_string();
            assert!(
                message.contains("... (200000 characters) [2, 2]"),
                "{message}"
            );
            assert!(message.len() < 2000, "{} characters", message.len());
        }
    }

    #[test]
    fn detects_every_generator_variant_from_its_own_keys() {
        let cases = [
            generator("resnet_9blocks", |_| {}),
            generator("resnet_6blocks", |g| g.use_dropout = true),
            generator("resnet_3blocks", |g| g.padding_type = PaddingType::Zero),
            generator("resnet_2blocks", |g| {
                g.padding_type = PaddingType::Zero;
                g.use_dropout = true;
                g.norm = NormKind::Batch;
            }),
            generator("resnet_6blocks", |g| g.norm = NormKind::None),
            generator("resnet_6blocks", |g| g.norm = NormKind::InstanceAffine),
            generator("resnet_6blocks", |g| {
                g.input_nc = 1;
                g.output_nc = 2
            }),
            generator("unet_128", |_| {}),
            generator("unet_256", |g| g.norm = NormKind::Batch),
            generator("unet_32", |g| g.norm = NormKind::None),
        ];
        for config in cases {
            assert_eq!(
                detect_architecture(&shapes(&config)).unwrap(),
                config,
                "{}",
                describe_config(&config)
            );
        }
    }

    #[test]
    fn detects_every_discriminator_variant_from_its_own_keys() {
        for (arch, norm, input_nc) in [
            (DiscriminatorArch::NLayers(3), NormKind::Instance, 3),
            (DiscriminatorArch::NLayers(1), NormKind::Batch, 1),
            (DiscriminatorArch::NLayers(5), NormKind::None, 6),
            (DiscriminatorArch::Pixel, NormKind::Instance, 3),
            (DiscriminatorArch::Pixel, NormKind::Batch, 3),
            (DiscriminatorArch::Pixel, NormKind::None, 3),
        ] {
            let config = NetworkConfig::Discriminator(DiscriminatorConfig {
                arch,
                input_nc,
                ndf: 16,
                norm,
            });
            assert_eq!(detect_architecture(&shapes(&config)).unwrap(), config);
        }
    }

    #[test]
    fn unknown_keys_are_listed_with_what_was_expected() {
        let sd = HashMap::from([
            ("fc.weight".to_string(), vec![10, 20]),
            ("fc.bias".to_string(), vec![10]),
        ]);
        let msg = detect_architecture(&sd).unwrap_err().to_string();
        assert!(msg.contains("fc.weight [10, 20]"), "{msg}");
        assert!(msg.contains("expected: a reference generator"), "{msg}");
    }

    #[test]
    fn a_missing_block_is_reported_by_key() {
        let config = generator("resnet_6blocks", |_| {});
        let mut sd = shapes(&config);
        sd.remove("model.12.conv_block.5.bias");
        let msg = detect_architecture(&sd).unwrap_err().to_string();
        assert!(
            msg.contains("1 missing keys (model.12.conv_block.5.bias [32])"),
            "{msg}"
        );
    }

    #[test]
    fn overrides_replace_detection_and_are_checked() {
        let config = generator("resnet_6blocks", |_| {});
        let tensors: Vec<(String, Tensor)> = shapes(&config)
            .into_iter()
            .map(|(k, s)| (k, Tensor::zeros(s, DType::F32, &Device::Cpu).unwrap()))
            .collect();
        let replicate = ConvertOptions {
            padding_type: Some(PaddingType::Replicate),
            ..Default::default()
        };
        let prepared = prepare_state_dict(tensors.clone(), &replicate).unwrap();
        let NetworkConfig::Generator(g) = prepared.config else {
            panic!()
        };
        assert_eq!(g.padding_type, PaddingType::Replicate);
        let wrong = ConvertOptions {
            net_g: Some("resnet_9blocks".parse().unwrap()),
            ..Default::default()
        };
        let msg = prepare_state_dict(tensors.clone(), &wrong)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing keys (model.16.conv_block"), "{msg}");
        let other_kind = ConvertOptions {
            net_d: Some(DiscriminatorArch::Pixel),
            ..Default::default()
        };
        assert!(prepare_state_dict(tensors, &other_kind).is_err());
    }

    #[test]
    fn natural_order_follows_module_indices() {
        let mut keys = vec![
            "model.10.bias",
            "model.2.weight",
            "model.1.weight",
            "model.1.bias",
        ];
        keys.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            keys,
            [
                "model.1.bias",
                "model.1.weight",
                "model.2.weight",
                "model.10.bias"
            ]
        );
    }
}
