//! The CycleGAN model: two generators, two discriminators, their optimisers and image pools,
//! and one training iteration exactly as the reference's `cycle_gan_model.py` runs it.

use candle_core::{DType, Device, ModuleT, Result, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use cyclegan_layers::init::host_init_var_builder;
use cyclegan_layers::{init_weights, SeededRng, SharedRng};
use cyclegan_losses::{l1_loss, CycleWeights, GanLoss, GanMode};
use cyclegan_models::{
    is_buffer, Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, InitConfig,
    NetworkConfig,
};
use cyclegan_replay::ImagePool;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::optim::{Adam, AdamConfig};

/// Everything that defines the model and its optimisation (not the data, nor the learning rate,
/// which the schedule sets: [`CycleGan::set_lr`], [`crate::schedule`]; a new model's optimisers
/// start at the reference's 0.0002).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// G_A's architecture (G_B's is the same with the channels swapped: [`ModelConfig::network`]).
    pub generator: GeneratorConfig,
    /// The discriminators' architecture; their input channels come from `generator`.
    pub discriminator: DiscriminatorConfig,
    /// How the four networks are initialised (`--init_type`, `--init_gain`).
    pub init: InitConfig,
    /// The adversarial loss (`--gan_mode` in the reference, `lsgan`).
    pub gan_mode: GanMode,
    /// The cycle and identity loss weights (`--lambda_A`, `--lambda_B`, `--lambda_identity`).
    pub weights: CycleWeights,
    /// Generated images each pool keeps for the discriminators (`--pool_size`, 50; 0: no pool).
    pub pool_size: usize,
    /// Adam's first-moment decay for both optimisers (`--beta1` in the reference, 0.5).
    pub beta1: f64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            generator: GeneratorConfig::default(),
            discriminator: DiscriminatorConfig::default(),
            init: InitConfig::default(),
            gan_mode: GanMode::Lsgan,
            weights: CycleWeights::default(),
            pool_size: 50,
            beta1: 0.5,
        }
    }
}

impl ModelConfig {
    /// The architecture of each network as the reference's `CycleGANModel` builds it:
    /// `generator` is G_A's, from A's channels (`input_nc`) to B's (`output_nc`), and G_B maps
    /// back; D_A judges B images (real, and G_A's), D_B judges A images, so their input
    /// channels are the generator's, not `discriminator.input_nc`.
    pub fn network(&self, name: NetworkName) -> NetworkConfig {
        let g = self.generator;
        let judging = |input_nc| {
            NetworkConfig::Discriminator(DiscriminatorConfig {
                input_nc,
                ..self.discriminator
            })
        };
        match name {
            NetworkName::GA => NetworkConfig::Generator(g),
            NetworkName::GB => NetworkConfig::Generator(GeneratorConfig {
                input_nc: g.output_nc,
                output_nc: g.input_nc,
                ..g
            }),
            NetworkName::DA => judging(g.output_nc),
            NetworkName::DB => judging(g.input_nc),
        }
    }

    /// [`ModelConfig::network`] of a generator (`G_A` or `G_B`).
    fn generator_of(&self, name: NetworkName) -> GeneratorConfig {
        match self.network(name) {
            NetworkConfig::Generator(config) => config,
            NetworkConfig::Discriminator(_) => unreachable!("{name} is a discriminator"),
        }
    }

    /// [`ModelConfig::network`] of a discriminator (`D_A` or `D_B`).
    fn discriminator_of(&self, name: NetworkName) -> DiscriminatorConfig {
        match self.network(name) {
            NetworkConfig::Discriminator(config) => config,
            NetworkConfig::Generator(_) => unreachable!("{name} is a generator"),
        }
    }
}

/// One of the four networks, named as the reference saves them (`latest_net_G_A.pth`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkName {
    /// G_A: domain A to domain B.
    GA,
    /// G_B: domain B to domain A.
    GB,
    /// D_A: judges B images.
    DA,
    /// D_B: judges A images.
    DB,
}

impl NetworkName {
    /// All four, in the reference's order.
    pub const ALL: [NetworkName; 4] = [
        NetworkName::GA,
        NetworkName::GB,
        NetworkName::DA,
        NetworkName::DB,
    ];

    /// The reference's name: `G_A`, `G_B`, `D_A` or `D_B`.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkName::GA => "G_A",
            NetworkName::GB => "G_B",
            NetworkName::DA => "D_A",
            NetworkName::DB => "D_B",
        }
    }
}

impl std::fmt::Display for NetworkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The losses of one iteration, under the reference's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)]
pub struct Losses {
    /// D_A's loss: the mean of its GAN losses on real B and on pooled fake B images.
    pub D_A: f64,
    /// G_A's adversarial loss: D_A's GAN loss on G_A(A) against the real label.
    pub G_A: f64,
    /// The A -> B -> A cycle loss: L1 of G_B(G_A(A)) to A, times `lambda_A`.
    pub cycle_A: f64,
    /// G_A's identity loss: L1 of G_A(B) to B, times `lambda_B * lambda_identity` (0 when off).
    pub idt_A: f64,
    /// D_B's loss: the mean of its GAN losses on real A and on pooled fake A images.
    pub D_B: f64,
    /// G_B's adversarial loss: D_B's GAN loss on G_B(B) against the real label.
    pub G_B: f64,
    /// The B -> A -> B cycle loss: L1 of G_A(G_B(B)) to B, times `lambda_B`.
    pub cycle_B: f64,
    /// G_B's identity loss: L1 of G_B(A) to A, times `lambda_A * lambda_identity` (0 when off).
    pub idt_B: f64,
}

impl Losses {
    /// `(name, value)` in the reference's order.
    pub fn named(&self) -> [(&'static str, f64); 8] {
        [
            ("D_A", self.D_A),
            ("G_A", self.G_A),
            ("cycle_A", self.cycle_A),
            ("idt_A", self.idt_A),
            ("D_B", self.D_B),
            ("G_B", self.G_B),
            ("cycle_B", self.cycle_B),
            ("idt_B", self.idt_B),
        ]
    }
}

/// The images of one iteration, detached (the reference's `visual_names`).
#[derive(Debug, Clone)]
pub struct Visuals {
    /// The batch of A images (`real_A`), on the model's device and dtype.
    pub real_a: Tensor,
    /// G_A(A) (`fake_B`).
    pub fake_b: Tensor,
    /// G_B(G_A(A)), A reconstructed (`rec_A`).
    pub rec_a: Tensor,
    /// G_B(A) (`idt_B`), when the identity loss is on.
    pub idt_b: Option<Tensor>,
    /// The batch of B images (`real_B`).
    pub real_b: Tensor,
    /// G_B(B) (`fake_A`).
    pub fake_a: Tensor,
    /// G_A(G_B(B)), B reconstructed (`rec_B`).
    pub rec_b: Tensor,
    /// G_A(B) (`idt_A`), when the identity loss is on.
    pub idt_a: Option<Tensor>,
}

impl Visuals {
    /// `(name, image)` in the reference's order.
    pub fn named(&self) -> Vec<(&'static str, &Tensor)> {
        let mut out = vec![
            ("real_A", &self.real_a),
            ("fake_B", &self.fake_b),
            ("rec_A", &self.rec_a),
        ];
        out.extend(self.idt_b.as_ref().map(|t| ("idt_B", t)));
        out.extend([
            ("real_B", &self.real_b),
            ("fake_A", &self.fake_a),
            ("rec_B", &self.rec_b),
        ]);
        out.extend(self.idt_a.as_ref().map(|t| ("idt_A", t)));
        out
    }
}

/// One network with its variables.
pub(crate) struct Network<N> {
    pub net: N,
    pub varmap: VarMap,
}

impl<N> Network<N> {
    /// The learned parameters (buffers excluded), sorted by name.
    pub fn parameters(&self) -> Vec<(String, Var)> {
        let vars = self.varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, Var)> = vars
            .iter()
            .filter(|(k, _)| !is_buffer(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The whole `state_dict` (parameters and buffers).
    pub fn state_dict(&self) -> HashMap<String, Tensor> {
        cyclegan_models::state_dict(&self.varmap)
    }

    /// The `state_dict` with the parameters detached: the same storage, but what is computed
    /// from it records no backward graph. Buffers (batch-norm running statistics) stay shared
    /// variables, so that a forward pass in training mode still updates them.
    fn detached_state_dict(&self) -> HashMap<String, Tensor> {
        self.state_dict()
            .into_iter()
            .map(|(k, t)| {
                let t = if is_buffer(&k) { t } else { t.detach() };
                (k, t)
            })
            .collect()
    }

    /// Sets every variable from `tensors`, which must hold exactly this network's keys and
    /// shapes (a checkpoint of another architecture is refused, naming the differences).
    pub fn load_state_dict(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let vars = self.varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        let missing: Vec<&String> = vars.keys().filter(|k| !tensors.contains_key(*k)).collect();
        let unexpected: Vec<&String> = tensors.keys().filter(|k| !vars.contains_key(*k)).collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            candle_core::bail!(
                "the checkpoint does not fit this architecture: missing {missing:?}, unexpected {unexpected:?}"
            );
        }
        for (name, var) in vars.iter() {
            let t = &tensors[name];
            if t.dims() != var.dims() {
                candle_core::bail!(
                    "the checkpoint does not fit this architecture: '{name}' has shape {:?}, expected {:?}",
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }
}

/// A discriminator reading the same storage as `d` but detached from it, so the generator
/// step's backward pass computes no discriminator weight gradients (the reference's
/// `set_requires_grad(D, False)`). Batch-norm buffers stay shared variables, so their running
/// statistics are still updated.
fn frozen(
    d: &Network<Discriminator>,
    config: &DiscriminatorConfig,
    device: &Device,
    dtype: DType,
) -> Result<Discriminator> {
    Discriminator::new(
        VarBuilder::from_tensors(d.detached_state_dict(), dtype, device),
        config,
    )
}

/// Random state of the model besides its weights: the generators' dropout generators.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelRngState {
    /// The state of G_A's dropout generator.
    pub dropout_a: SeededRng,
    /// The state of G_B's dropout generator.
    pub dropout_b: SeededRng,
}

/// The CycleGAN model. Its parts are reached through methods (by [`NetworkName`] for the
/// networks), since they depend on each other: the generator step's frozen discriminators read
/// the discriminators' storage, and the optimisers hold the networks' variables.
pub struct CycleGan {
    /// Fixed at construction: the loss, the pools and the optimisers are built from it.
    config: ModelConfig,
    g_a: Network<Generator>,
    g_b: Network<Generator>,
    d_a: Network<Discriminator>,
    d_b: Network<Discriminator>,
    d_a_frozen: Discriminator,
    d_b_frozen: Discriminator,
    pub(crate) opt_g: Adam,
    pub(crate) opt_d: Adam,
    pub(crate) pool_a: ImagePool,
    pub(crate) pool_b: ImagePool,
    dropout_a: SharedRng,
    dropout_b: SharedRng,
    gan: GanLoss,
    device: Device,
    dtype: DType,
}

impl std::fmt::Debug for CycleGan {
    /// The configuration, device, dtype, learning rate and optimisation steps taken (the
    /// networks' weights, the optimisers' moments and the pools are left out).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CycleGan")
            .field("config", &self.config)
            .field("device", &self.device)
            .field("dtype", &self.dtype)
            .field("lr", &self.lr())
            .field("steps", &self.opt_g.step_count())
            .finish_non_exhaustive()
    }
}

/// Seeds derived from the run's seed, one per consumer, so each stream is independent.
mod seeds {
    pub const INIT: u64 = 1;
    pub const DROPOUT_A: u64 = 2;
    pub const DROPOUT_B: u64 = 3;
    pub const POOL_A: u64 = 4;
    pub const POOL_B: u64 = 5;
}

fn derive_seed(seed: u64, stream: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(stream)
}

impl CycleGan {
    /// A fresh model, initialised as the reference's `init_weights` from `seed`.
    pub fn new(config: ModelConfig, device: &Device, dtype: DType, seed: u64) -> Result<Self> {
        let dropout_a = SharedRng::new(derive_seed(seed, seeds::DROPOUT_A));
        let dropout_b = SharedRng::new(derive_seed(seed, seeds::DROPOUT_B));
        let build_g = |name: NetworkName, rng: &SharedRng| -> Result<Network<Generator>> {
            let varmap = VarMap::new();
            let net = Generator::new(
                host_init_var_builder(&varmap, dtype, device),
                &config.generator_of(name),
                rng,
            )?;
            Ok(Network { net, varmap })
        };
        let build_d = |name: NetworkName| -> Result<Network<Discriminator>> {
            let varmap = VarMap::new();
            let net = Discriminator::new(
                host_init_var_builder(&varmap, dtype, device),
                &config.discriminator_of(name),
            )?;
            Ok(Network { net, varmap })
        };
        let (g_a, g_b, d_a, d_b) = (
            build_g(NetworkName::GA, &dropout_a)?,
            build_g(NetworkName::GB, &dropout_b)?,
            build_d(NetworkName::DA)?,
            build_d(NetworkName::DB)?,
        );
        let mut rng = SeededRng::seed_from_u64(derive_seed(seed, seeds::INIT));
        for varmap in [&g_a.varmap, &g_b.varmap, &d_a.varmap, &d_b.varmap] {
            init_weights(
                varmap,
                config.init.init_type,
                config.init.init_gain,
                &mut rng,
            )?;
        }
        let adam = AdamConfig {
            beta1: config.beta1,
            ..Default::default()
        };
        let named = |prefix: &str, params: Vec<(String, Var)>| {
            params
                .into_iter()
                .map(|(k, v)| (format!("{prefix}.{k}"), v))
                .collect::<Vec<_>>()
        };
        let mut g_params = named("G_A", g_a.parameters());
        g_params.extend(named("G_B", g_b.parameters()));
        let mut d_params = named("D_A", d_a.parameters());
        d_params.extend(named("D_B", d_b.parameters()));
        Ok(Self {
            d_a_frozen: frozen(
                &d_a,
                &config.discriminator_of(NetworkName::DA),
                device,
                dtype,
            )?,
            d_b_frozen: frozen(
                &d_b,
                &config.discriminator_of(NetworkName::DB),
                device,
                dtype,
            )?,
            opt_g: Adam::new(g_params, adam)?,
            opt_d: Adam::new(d_params, adam)?,
            pool_a: ImagePool::new(config.pool_size, derive_seed(seed, seeds::POOL_A)),
            pool_b: ImagePool::new(config.pool_size, derive_seed(seed, seeds::POOL_B)),
            gan: GanLoss::new(config.gan_mode),
            config,
            g_a,
            g_b,
            d_a,
            d_b,
            dropout_a,
            dropout_b,
            device: device.clone(),
            dtype,
        })
    }

    /// G_A reading the current weights, detached from training (as the discriminators of the
    /// generator step are): its forward passes record no backward graph, so translating with
    /// it keeps no activations alive and what it returns references no training tensor. For
    /// evaluation and translation.
    pub fn inference_g_a(&self) -> Result<Generator> {
        Generator::new(
            VarBuilder::from_tensors(self.g_a.detached_state_dict(), self.dtype, &self.device),
            &self.config.generator,
            &self.dropout_a,
        )
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the networks live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The networks' floating-point type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Sets both optimisers' learning rate.
    pub fn set_lr(&mut self, lr: f64) {
        self.opt_g.set_lr(lr);
        self.opt_d.set_lr(lr);
    }

    /// The optimisers' learning rate.
    pub fn lr(&self) -> f64 {
        self.opt_g.lr()
    }

    /// Network `name`'s variables (parameters and buffers), by the reference's keys.
    pub fn varmap(&self, name: NetworkName) -> &VarMap {
        match name {
            NetworkName::GA => &self.g_a.varmap,
            NetworkName::GB => &self.g_b.varmap,
            NetworkName::DA => &self.d_a.varmap,
            NetworkName::DB => &self.d_b.varmap,
        }
    }

    /// Network `name`'s learned parameters (buffers excluded), sorted by name.
    pub fn parameters(&self, name: NetworkName) -> Vec<(String, Var)> {
        match name {
            NetworkName::GA => self.g_a.parameters(),
            NetworkName::GB => self.g_b.parameters(),
            NetworkName::DA => self.d_a.parameters(),
            NetworkName::DB => self.d_b.parameters(),
        }
    }

    /// Sets network `name`'s variables from `tensors`, which must hold exactly its keys and
    /// shapes (a checkpoint of another architecture is refused, naming the differences).
    pub fn load_state_dict(
        &self,
        name: NetworkName,
        tensors: &HashMap<String, Tensor>,
    ) -> Result<()> {
        match name {
            NetworkName::GA => self.g_a.load_state_dict(tensors),
            NetworkName::GB => self.g_b.load_state_dict(tensors),
            NetworkName::DA => self.d_a.load_state_dict(tensors),
            NetworkName::DB => self.d_b.load_state_dict(tensors),
        }
    }

    /// The generator and discriminator optimisers.
    pub fn optimizers(&self) -> (&Adam, &Adam) {
        (&self.opt_g, &self.opt_d)
    }

    /// The image pools of fake A and fake B images.
    pub fn pools(&self) -> (&ImagePool, &ImagePool) {
        (&self.pool_a, &self.pool_b)
    }

    /// The dropout generators' state.
    pub fn rng_state(&self) -> ModelRngState {
        ModelRngState {
            dropout_a: self.dropout_a.snapshot(),
            dropout_b: self.dropout_b.snapshot(),
        }
    }

    /// Puts the dropout generators back to a state from [`CycleGan::rng_state`] (resumption).
    pub fn restore_rng_state(&self, state: &ModelRngState) {
        self.dropout_a.restore(state.dropout_a.clone());
        self.dropout_b.restore(state.dropout_b.clone());
    }

    /// The architecture of network `name`.
    pub fn network_config(&self, name: NetworkName) -> NetworkConfig {
        self.config.network(name)
    }

    /// The networks by their reference names, for saving.
    pub fn state_dicts(&self) -> [(NetworkName, HashMap<String, Tensor>); 4] {
        [
            (NetworkName::GA, self.g_a.state_dict()),
            (NetworkName::GB, self.g_b.state_dict()),
            (NetworkName::DA, self.d_a.state_dict()),
            (NetworkName::DB, self.d_b.state_dict()),
        ]
    }

    /// One training iteration on a batch of A images and a batch of B images
    /// (`[N, C, H, W]` in [-1, 1]): the generator step, then the discriminator step.
    pub fn train_step(&mut self, real_a: &Tensor, real_b: &Tensor) -> Result<(Losses, Visuals)> {
        let real_a = real_a.to_device(&self.device)?.to_dtype(self.dtype)?;
        let real_b = real_b.to_device(&self.device)?.to_dtype(self.dtype)?;
        let w = self.config.weights;
        let zero = Tensor::zeros((), self.dtype, &self.device)?;

        // Forward: both cycles.
        let fake_b = self.g_a.net.forward_t(&real_a, true)?;
        let rec_a = self.g_b.net.forward_t(&fake_b, true)?;
        let fake_a = self.g_b.net.forward_t(&real_b, true)?;
        let rec_b = self.g_a.net.forward_t(&fake_a, true)?;

        // Generator step, the discriminators frozen.
        let (mut loss_idt_a, mut loss_idt_b) = (zero.clone(), zero.clone());
        let (mut idt_a, mut idt_b) = (None, None);
        if w.lambda_identity > 0.0 {
            let a = self.g_a.net.forward_t(&real_b, true)?;
            let b = self.g_b.net.forward_t(&real_a, true)?;
            loss_idt_a = (l1_loss(&a, &real_b)? * (w.lambda_b * w.lambda_identity))?;
            loss_idt_b = (l1_loss(&b, &real_a)? * (w.lambda_a * w.lambda_identity))?;
            idt_a = Some(a.detach());
            idt_b = Some(b.detach());
        }
        let loss_g_a = self
            .gan
            .loss(&self.d_a_frozen.forward_t(&fake_b, true)?, true)?;
        let loss_g_b = self
            .gan
            .loss(&self.d_b_frozen.forward_t(&fake_a, true)?, true)?;
        let loss_cycle_a = (l1_loss(&rec_a, &real_a)? * w.lambda_a)?;
        let loss_cycle_b = (l1_loss(&rec_b, &real_b)? * w.lambda_b)?;
        let loss_g = (((((&loss_g_a + &loss_g_b)? + &loss_cycle_a)? + &loss_cycle_b)?
            + &loss_idt_a)?
            + &loss_idt_b)?;
        let grads = loss_g.backward()?;
        self.opt_g.step(&grads)?;
        drop(grads);

        // Discriminator step, on the pools' answers.
        let (fake_a, fake_b) = (fake_a.detach(), fake_b.detach());
        let pooled_b = self.pool_b.query(&fake_b)?;
        let pooled_a = self.pool_a.query(&fake_a)?;
        let loss_d_a = self.discriminator_loss(&self.d_a.net, &real_b, &pooled_b)?;
        let loss_d_b = self.discriminator_loss(&self.d_b.net, &real_a, &pooled_a)?;
        // D_A and D_B share no parameter: one backward of the sum gives both gradients.
        let grads = (&loss_d_a + &loss_d_b)?.backward()?;
        self.opt_d.step(&grads)?;

        // One read of all the losses: a single device synchronisation per iteration.
        let values = Tensor::stack(
            &[
                loss_d_a,
                loss_g_a,
                loss_cycle_a,
                loss_idt_a,
                loss_d_b,
                loss_g_b,
                loss_cycle_b,
                loss_idt_b,
            ]
            .map(|t| t.detach()),
            0,
        )?
        .to_dtype(DType::F64)?
        .to_vec1::<f64>()?;
        let losses = Losses {
            D_A: values[0],
            G_A: values[1],
            cycle_A: values[2],
            idt_A: values[3],
            D_B: values[4],
            G_B: values[5],
            cycle_B: values[6],
            idt_B: values[7],
        };

        let visuals = Visuals {
            real_a,
            fake_b,
            rec_a: rec_a.detach(),
            idt_b,
            real_b,
            fake_a,
            rec_b: rec_b.detach(),
            idt_a,
        };
        Ok((losses, visuals))
    }

    fn discriminator_loss(
        &self,
        d: &Discriminator,
        real: &Tensor,
        fake: &Tensor,
    ) -> Result<Tensor> {
        let real_loss = self.gan.loss(&d.forward_t(real, true)?, true)?;
        let fake_loss = self.gan.loss(&d.forward_t(fake, true)?, false)?;
        (real_loss + fake_loss)? * 0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cyclegan_models::{DiscriminatorArch, GeneratorArch};

    #[test]
    fn the_inference_generator_reads_the_trained_weights_without_a_graph() {
        let config = ModelConfig {
            generator: GeneratorConfig {
                arch: GeneratorArch::Resnet { blocks: 1 },
                ngf: 4,
                ..GeneratorConfig::default()
            },
            discriminator: DiscriminatorConfig {
                arch: DiscriminatorArch::NLayers(1),
                ndf: 4,
                ..DiscriminatorConfig::default()
            },
            ..ModelConfig::default()
        };
        let mut model = CycleGan::new(config, &Device::Cpu, DType::F32, 7).unwrap();
        let x = Tensor::rand(-1f32, 1.0, (1, 3, 16, 16), &Device::Cpu).unwrap();
        let g = model.inference_g_a().unwrap();
        let before = g.forward_t(&x, false).unwrap();
        assert!(!before.track_op(), "no backward graph is recorded");
        assert!(model.g_a.net.forward_t(&x, false).unwrap().track_op());
        // It shares the weights' storage: a training step shows in it, as in G_A itself.
        model.train_step(&x, &x).unwrap();
        let after = g.forward_t(&x, false).unwrap();
        let trained = model.g_a.net.forward_t(&x, false).unwrap();
        let values = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(values(&after), values(&trained));
        assert_ne!(values(&after), values(&before), "the step changed G_A");
    }
}
