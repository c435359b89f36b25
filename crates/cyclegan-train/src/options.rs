//! The trainer's options: the reference's, with its defaults, and a preset for the embedded
//! emoji64 data when no `--dataroot` is given.
//!
//! The flags' doc comments are their `--help` text, written for the terminal (`<name>`, `A[i]`),
//! not for rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use clap::Parser;
use cyclegan_data::{DataOptions, Direction, OnBadImage, Preprocess};
use cyclegan_layers::{InitType, NormKind, PaddingType};
use cyclegan_losses::{CycleWeights, GanMode};
use cyclegan_models::{
    DiscriminatorArch, DiscriminatorConfig, GeneratorArch, GeneratorConfig, InitConfig,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::model::ModelConfig;
use crate::schedule::{LrPolicy, ScheduleConfig};
use cyclegan_translate::{py_bool, py_float};

/// Command-line options. Every option left out takes the value of the run being continued
/// (`--continue-train`), else the embedded preset (no `--dataroot`), else the reference's default.
#[derive(Parser, Debug, Clone, Default)]
#[command(
    name = "cyclegan-train",
    version,
    // `--lr -1` reaches the value checks (and their message) instead of reading as a flag.
    allow_negative_numbers = true,
    // An option given twice takes its last value, as the reference's argparse does (scripts
    // that append overrides to a command line).
    args_override_self = true,
    about = "Train a CycleGAN (unpaired image-to-image translation) on CPU or CUDA.",
    long_about = "Train a CycleGAN (unpaired image-to-image translation) on CPU or CUDA.\n\n\
        Without --dataroot, trains on the embedded emoji64 data (Twemoji to Noto emoji, 64x64) with a \
        configuration sized for a 2-core CPU, then translates its test set and writes a sample sheet. \
        With --dataroot DIR (holding trainA/ and trainB/), the reference's defaults apply.\n\n\
        Options follow junyanz/pytorch-CycleGAN-and-pix2pix; its snake_case spellings are accepted too \
        (--lambda_A, --no_dropout, --n_epochs_decay, ...)."
)]
pub struct Cli {
    /// Dataset folder with trainA/ and trainB/ (and optionally testA/, testB/).
    #[arg(long)]
    pub dataroot: Option<PathBuf>,
    /// Name of the experiment: checkpoints go to <checkpoints-dir>/<name> [default: the
    /// dataroot's folder name, emoji64 without --dataroot].
    #[arg(long)]
    pub name: Option<String>,
    /// Where runs are stored [default: ./checkpoints].
    #[arg(long = "checkpoints-dir", alias = "checkpoints_dir")]
    pub checkpoints_dir: Option<PathBuf>,
    /// Where the final test translations go [default: ./results].
    #[arg(long = "results-dir", alias = "results_dir")]
    pub results_dir: Option<PathBuf>,

    /// Generator: resnet_9blocks, resnet_6blocks, resnet_<N>blocks, unet_128, unet_256 [default: resnet_9blocks].
    #[arg(long = "netG", alias = "net-g")]
    pub net_g: Option<GeneratorArch>,
    /// Discriminator: basic, n_layers, pixel [default: basic].
    #[arg(long = "netD", alias = "net-d", value_parser = ["basic", "n_layers", "pixel"])]
    pub net_d: Option<String>,
    /// Strided layers of the n_layers discriminator [default: 3].
    #[arg(long = "n-layers-D", alias = "n_layers_D")]
    pub n_layers_d: Option<usize>,
    /// Generator filters in the first convolution [default: 64].
    #[arg(long)]
    pub ngf: Option<usize>,
    /// Discriminator filters in the first convolution [default: 64].
    #[arg(long)]
    pub ndf: Option<usize>,
    /// Normalisation: instance, instance_affine, batch, none [default: instance].
    #[arg(long)]
    pub norm: Option<NormKind>,
    /// No dropout in the generator (the CycleGAN default; accepted for compatibility).
    #[arg(long = "no-dropout", alias = "no_dropout", conflicts_with = "dropout")]
    pub no_dropout: bool,
    /// Dropout 0.5 in the generator.
    #[arg(long)]
    pub dropout: bool,
    /// Weight initialisation: normal, xavier, kaiming, orthogonal [default: normal].
    #[arg(long = "init-type", alias = "init_type")]
    pub init_type: Option<InitType>,
    /// Scale of the initialisation [default: 0.02].
    #[arg(long = "init-gain", alias = "init_gain")]
    pub init_gain: Option<f64>,

    /// Images are resized to this size [default: 286].
    #[arg(long = "load-size", alias = "load_size")]
    pub load_size: Option<u32>,
    /// ...then randomly cropped to this size [default: 256].
    #[arg(long = "crop-size", alias = "crop_size")]
    pub crop_size: Option<u32>,
    /// resize_and_crop, crop, scale_width, scale_width_and_crop, none [default: resize_and_crop].
    #[arg(long)]
    pub preprocess: Option<Preprocess>,
    /// No random horizontal flips.
    #[arg(long = "no-flip", alias = "no_flip")]
    pub no_flip: bool,
    /// Images per batch [default: 1].
    #[arg(long = "batch-size", alias = "batch_size")]
    pub batch_size: Option<usize>,
    /// Take images in order and pair A[i] with B[i] (no shuffling).
    #[arg(long = "serial-batches", alias = "serial_batches")]
    pub serial_batches: bool,
    /// Channels of domain A: 3 (RGB) or 1 (grayscale) [default: 3].
    #[arg(long = "input-nc", alias = "input_nc")]
    pub input_nc: Option<usize>,
    /// Channels of domain B [default: 3].
    #[arg(long = "output-nc", alias = "output_nc")]
    pub output_nc: Option<usize>,
    /// AtoB or BtoA [default: AtoB].
    #[arg(long)]
    pub direction: Option<Direction>,
    /// Use at most this many images of each folder.
    #[arg(long = "max-dataset-size", alias = "max_dataset_size")]
    pub max_dataset_size: Option<usize>,
    /// Threads decoding and augmenting images [default: 1 on 2 cores].
    #[arg(long, alias = "num_threads")]
    pub workers: Option<usize>,
    /// What to do with an unreadable image: skip (with a warning) or fail [default: fail].
    #[arg(long = "on-bad-image", alias = "on_bad_image", value_parser = ["skip", "fail"])]
    pub on_bad_image: Option<String>,

    /// Weight of the cycle loss A -> B -> A [default: 10].
    #[arg(long = "lambda-A", alias = "lambda_A")]
    pub lambda_a: Option<f64>,
    /// Weight of the cycle loss B -> A -> B [default: 10].
    #[arg(long = "lambda-B", alias = "lambda_B")]
    pub lambda_b: Option<f64>,
    /// Identity loss weight relative to the cycle weights; 0 turns it off [default: 0.5].
    #[arg(long = "lambda-identity", alias = "lambda_identity")]
    pub lambda_identity: Option<f64>,
    /// Generated images kept for the discriminators; 0 turns the pool off [default: 50].
    #[arg(long = "pool-size", alias = "pool_size")]
    pub pool_size: Option<usize>,
    /// lsgan, vanilla, wgangp [default: lsgan].
    #[arg(long = "gan-mode", alias = "gan_mode")]
    pub gan_mode: Option<GanMode>,
    /// Initial learning rate of Adam [default: 0.0002].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Adam's beta1 [default: 0.5].
    #[arg(long)]
    pub beta1: Option<f64>,
    /// Epochs at the initial learning rate [default: 100].
    #[arg(long = "n-epochs", aliases = ["n_epochs", "niter"])]
    pub n_epochs: Option<usize>,
    /// Epochs of linear decay to zero [default: 100].
    #[arg(long = "n-epochs-decay", aliases = ["n_epochs_decay", "niter_decay"])]
    pub n_epochs_decay: Option<usize>,
    /// linear (or lambda, its older name), step, plateau, cosine [default: linear].
    #[arg(long = "lr-policy", alias = "lr_policy")]
    pub lr_policy: Option<LrPolicy>,
    /// Epochs between tenfold decays of the step policy [default: 50].
    #[arg(long = "lr-decay-iters", alias = "lr_decay_iters")]
    pub lr_decay_iters: Option<usize>,
    /// The number of the first epoch [default: 1].
    #[arg(long = "epoch-count", alias = "epoch_count")]
    pub epoch_count: Option<usize>,
    /// Continue the run <checkpoints-dir>/<name>: its networks, and with --epoch latest its
    /// optimisers, pools, schedule and position too.
    #[arg(long = "continue-train", alias = "continue_train")]
    pub continue_train: bool,
    /// Which checkpoint to continue from: latest or an epoch number [default: latest].
    #[arg(long)]
    pub epoch: Option<String>,
    /// Save a numbered copy every this many epochs [default: 5].
    #[arg(long = "save-epoch-freq", alias = "save_epoch_freq")]
    pub save_epoch_freq: Option<usize>,
    /// Save the latest checkpoint every this many images [default: 5000].
    #[arg(long = "save-latest-freq", alias = "save_latest_freq")]
    pub save_latest_freq: Option<usize>,
    /// At each --save-latest-freq, also keep the networks as iter_<images>_net_*.safetensors.
    #[arg(long = "save-by-iter", alias = "save_by_iter")]
    pub save_by_iter: bool,
    /// With --continue-train: start from the networks iter_<N>_net_* (saved by --save-by-iter)
    /// instead of --epoch, with fresh optimisers [default: 0, off].
    #[arg(long = "load-iter", alias = "load_iter")]
    pub load_iter: Option<u64>,
    /// Log the losses every this many images [default: 100].
    #[arg(long = "print-freq", alias = "print_freq")]
    pub print_freq: Option<usize>,
    /// Refresh the sample images of web/index.html every this many images [default: 400].
    #[arg(long = "display-freq", alias = "display_freq")]
    pub display_freq: Option<usize>,
    /// With it, a --display-freq refresh saves new images only at multiples of this many images
    /// (and at the first one of each epoch), as the reference does [default: every refresh].
    #[arg(long = "update-html-freq", alias = "update_html_freq")]
    pub update_html_freq: Option<usize>,
    /// Write no web/index.html nor its images.
    #[arg(long = "no-html", alias = "no_html")]
    pub no_html: bool,
    /// The folders to train on: <dataroot>/<phase>A and <phase>B [default: train].
    #[arg(long)]
    pub phase: Option<String>,
    /// Appended to --name as _<suffix>, with {option} replaced by its value (e.g. {netG}_size{load_size}).
    #[arg(long)]
    pub suffix: Option<String>,
    /// Also log every parameter of each network, with its shape.
    #[arg(long)]
    pub verbose: bool,
    /// Start a new run over an existing one of the same name, deleting its checkpoints and logs
    /// (without it, a new run refuses a folder that holds one).
    #[arg(long, conflicts_with = "continue_train")]
    pub overwrite: bool,

    /// The model: cycle_gan, the only one this toolkit trains.
    #[arg(long, value_parser = parse_model, help_heading = REFERENCE_HEADING)]
    pub model: Option<String>,
    /// How the data is read: unaligned, the only mode CycleGAN trains on.
    #[arg(long = "dataset-mode", alias = "dataset_mode", value_parser = parse_dataset_mode, help_heading = REFERENCE_HEADING)]
    pub dataset_mode: Option<String>,
    /// Visdom window id; visdom is not supported (see web/index.html and loss_log.jsonl).
    #[arg(long = "display-id", alias = "display_id", allow_hyphen_values = true, help_heading = REFERENCE_HEADING)]
    pub display_id: Option<i64>,
    /// Visdom server; not supported.
    #[arg(long = "display-server", alias = "display_server", help_heading = REFERENCE_HEADING)]
    pub display_server: Option<String>,
    /// Visdom environment; not supported.
    #[arg(long = "display-env", alias = "display_env", help_heading = REFERENCE_HEADING)]
    pub display_env: Option<String>,
    /// Visdom port; not supported.
    #[arg(long = "display-port", alias = "display_port", help_heading = REFERENCE_HEADING)]
    pub display_port: Option<u16>,
    /// Images per row of the visdom panel; not supported.
    #[arg(long = "display-ncols", alias = "display_ncols", help_heading = REFERENCE_HEADING)]
    pub display_ncols: Option<i64>,
    /// Visdom and HTML image size; accepted, no effect.
    #[arg(long = "display-winsize", alias = "display_winsize", help_heading = REFERENCE_HEADING)]
    pub display_winsize: Option<u32>,
    /// Weights & Biases logging; not supported (see loss_log.jsonl).
    #[arg(long = "use-wandb", alias = "use_wandb", help_heading = REFERENCE_HEADING)]
    pub use_wandb: bool,
    /// Weights & Biases project; not supported.
    #[arg(long = "wandb-project-name", alias = "wandb_project_name", help_heading = REFERENCE_HEADING)]
    pub wandb_project_name: Option<String>,
    /// Seed of every random choice (initialisation, data order, crops, flips, pools, dropout) [default: 0].
    #[arg(long)]
    pub seed: Option<u64>,
    /// cpu, cuda or cuda:N [default: cpu].
    #[arg(long)]
    pub device: Option<String>,
    /// The reference's device choice: a GPU number (0 is cuda:0) or -1 for the CPU; one GPU.
    #[arg(
        long = "gpu-ids",
        alias = "gpu_ids",
        allow_hyphen_values = true,
        conflicts_with = "device"
    )]
    pub gpu_ids: Option<String>,
    /// Stop when the run's total iteration count (across resumes) reaches N, saving the latest checkpoint.
    #[arg(long = "max-steps", alias = "max_steps")]
    pub max_steps: Option<u64>,
    /// After training, translate testA (when present), each image at its own size, into <results-dir>/<name> [default: on for the embedded data].
    #[arg(long = "translate-test", alias = "translate_test")]
    pub translate_test: bool,
    /// No progress bar (logs only).
    #[arg(long = "no-progress", alias = "no_progress")]
    pub no_progress: bool,
    /// On CUDA, compute f32 convolutions in full f32 instead of TF32 (which PyTorch, and this
    /// trainer by default, allow: several times faster, about 3 significant digits per product).
    #[arg(long = "no-tf32", alias = "no_tf32")]
    pub no_tf32: bool,
    /// On CUDA, time cuDNN's best-ranked engines for each convolution shape once and run the
    /// fastest, as PyTorch's `cudnn.benchmark` (off: its heuristic's first choice, reproducible).
    #[arg(long = "cudnn-benchmark", alias = "cudnn_benchmark")]
    pub cudnn_benchmark: bool,
    /// On CUDA, run only deterministic cuDNN engines (PyTorch's `cudnn.deterministic`): the same
    /// seed then gives the same weights, and a resumed run matches an uninterrupted one, as on
    /// the CPU (kept when the run is continued).
    #[arg(long)]
    pub deterministic: bool,
    /// On CUDA, keep the activations between convolutions channels last (NHWC), the layout
    /// cuDNN's tensor-core engines work in (experimental; the same numbers up to the engines).
    #[arg(long = "channels-last", alias = "channels_last")]
    pub channels_last: bool,
}

/// The `--help` heading of the reference options that are accepted so that its command lines
/// run unchanged, though they choose nothing here.
const REFERENCE_HEADING: &str = "Reference options accepted for compatibility";

/// `--model`: the reference's train.py also trains pix2pix and colorization models.
fn parse_model(value: &str) -> Result<String, String> {
    match value {
        "cycle_gan" => Ok(value.into()),
        other => Err(format!(
            "this toolkit trains CycleGAN models only (--model cycle_gan), not '{other}'"
        )),
    }
}

/// `--dataset_mode`: CycleGAN trains on two unpaired folders.
fn parse_dataset_mode(value: &str) -> Result<String, String> {
    match value {
        "unaligned" => Ok(value.into()),
        other => Err(format!(
            "CycleGAN trains on two unpaired folders (--dataset_mode unaligned), not '{other}'"
        )),
    }
}

/// The fully resolved configuration of a run, saved as `options.json` in the run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The dataset folder, holding `<phase>A` and `<phase>B` (`--dataroot`).
    pub dataroot: PathBuf,
    /// The run's folder in `checkpoints_dir` and `results_dir` (`--name`, with its `--suffix`).
    pub name: String,
    /// Where runs are stored (`--checkpoints_dir`, `./checkpoints`).
    pub checkpoints_dir: PathBuf,
    /// Where the final test translations go, under `<name>` (`--results_dir`, `./results`).
    pub results_dir: PathBuf,
    /// The networks, losses and optimiser settings.
    pub model: ModelConfig,
    /// How the training images are read and augmented (`--preprocess`, `--load_size`, ...).
    pub data: DataOptions,
    /// Images per batch (`--batch_size`, 1).
    pub batch_size: usize,
    /// Threads decoding and augmenting images (`--num_threads` in the reference).
    pub workers: usize,
    /// What to do with an unreadable training image: fail (the default) or skip it with a warning.
    pub on_bad_image: OnBadImage,
    /// The learning rate and its policy (`--lr`, `--lr_policy`, `--n_epochs`, ...).
    pub schedule: ScheduleConfig,
    /// Continue the run in the run folder instead of starting one (`--continue_train`).
    pub continue_train: bool,
    /// The checkpoint a continued run starts from: `latest` or an epoch number (`--epoch`).
    pub epoch: String,
    /// Keep a numbered checkpoint every this many epochs (`--save_epoch_freq`, 5).
    pub save_epoch_freq: usize,
    /// Save the latest checkpoint every this many images (`--save_latest_freq`, 5000).
    pub save_latest_freq: usize,
    /// Log the losses every this many images (`--print_freq`, 100).
    pub print_freq: usize,
    /// Refresh `web/index.html`'s sample images every this many images (`--display_freq`, 400).
    pub display_freq: usize,
    /// Seed of every random choice: initialisation, data order, crops, flips, pools, dropout.
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N` (the reference's `--gpu_ids` is read into it).
    pub device: String,
    /// Stop once the run's optimisation steps, across resumes, reach this many (`None`: no limit).
    pub max_steps: Option<u64>,
    /// After training, translate G_A's test folder (testA, or testB under `BtoA`) with G_A into
    /// `<results_dir>/<name>/test_latest`.
    pub translate_test: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// True when training on the embedded emoji64 data with its preset.
    pub embedded: bool,
    /// Whether f32 convolutions on CUDA may use TF32 (`--no-tf32` turns it off).
    #[serde(default = "tf32_default")]
    pub tf32: bool,
    /// Whether cuDNN picks each convolution's engine by timing (`--cudnn-benchmark`; this
    /// invocation's choice, not kept on resuming).
    #[serde(default)]
    pub cudnn_benchmark: bool,
    /// Whether cuDNN runs only deterministic engines (`--deterministic`; kept on resuming, so
    /// that the continued run stays reproducible).
    #[serde(default)]
    pub deterministic: bool,
    /// Whether CUDA convolutions keep their activations channels last (`--channels-last`;
    /// this invocation's choice, not kept on resuming).
    #[serde(default)]
    pub channels_last: bool,
    /// Whether every `--save-latest-freq` save also keeps `iter_<images>_net_*`.
    #[serde(default)]
    pub save_by_iter: bool,
    /// `--load-iter`: continue from `iter_<N>_net_*` (0: from `epoch`; this invocation's choice).
    #[serde(default)]
    pub load_iter: u64,
    /// `--update-html-freq`: the sample images are saved only at its multiples (and at the
    /// first refresh of each epoch); `None`: at every `display_freq` refresh.
    #[serde(default)]
    pub update_html_freq: Option<usize>,
    /// Whether `web/index.html` is written (`--no-html` turns it off).
    #[serde(default = "html_default")]
    pub html: bool,
    /// `--verbose`: log every parameter of each network (this invocation's choice).
    #[serde(default)]
    pub verbose: bool,
    /// `--overwrite`: a new run may replace an existing one (this invocation's choice).
    #[serde(default)]
    pub overwrite: bool,
}

/// The web page is written unless `--no-html` (and for options files written before it).
fn html_default() -> bool {
    true
}

/// TF32 on, as in PyTorch (and for options files written before the option existed).
fn tf32_default() -> bool {
    true
}

impl TrainConfig {
    /// The reference's training defaults for `dataroot`.
    pub fn reference(dataroot: PathBuf) -> Self {
        let name = dataroot
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "experiment_name".into());
        TrainConfig {
            dataroot,
            name,
            checkpoints_dir: PathBuf::from("checkpoints"),
            results_dir: PathBuf::from("results"),
            model: ModelConfig::default(),
            data: DataOptions::default(),
            batch_size: 1,
            workers: cyclegan_data::default_workers(),
            on_bad_image: OnBadImage::Fail,
            schedule: ScheduleConfig {
                policy: LrPolicy::Linear,
                lr: 0.0002,
                n_epochs: 100,
                n_epochs_decay: 100,
                epoch_count: 1,
                lr_decay_iters: 50,
            },
            continue_train: false,
            epoch: "latest".into(),
            save_epoch_freq: 5,
            save_latest_freq: 5000,
            print_freq: 100,
            display_freq: 400,
            seed: 0,
            device: "cpu".into(),
            max_steps: None,
            translate_test: false,
            progress: true,
            embedded: false,
            tf32: true,
            cudnn_benchmark: false,
            deterministic: false,
            channels_last: false,
            save_by_iter: false,
            load_iter: 0,
            update_html_freq: None,
            html: true,
            verbose: false,
            overwrite: false,
        }
    }

    /// The embedded emoji64 preset: a configuration sized to finish within minutes on a
    /// 2-core CPU (see the README for what it produces).
    pub fn embedded() -> Self {
        let mut c = Self::reference(crate::embedded::dataroot());
        c.name = "emoji64".into();
        c.embedded = true;
        c.translate_test = true;
        c.model.generator = GeneratorConfig {
            arch: GeneratorArch::Resnet { blocks: 6 },
            ngf: 16,
            ..GeneratorConfig::default()
        };
        c.model.discriminator = DiscriminatorConfig {
            ndf: 16,
            ..DiscriminatorConfig::default()
        };
        c.data.load_size = 72;
        c.data.crop_size = 64;
        c.schedule.n_epochs = 2;
        c.schedule.n_epochs_decay = 1;
        c.save_epoch_freq = 1;
        c.save_latest_freq = 1000;
        c.print_freq = 100;
        c.display_freq = 250;
        c
    }

    /// Resolves the command line: explicit options over `base` (the continued run's options,
    /// the embedded preset, or the reference's defaults).
    pub fn resolve(cli: &Cli, base: Option<TrainConfig>) -> Result<Self, String> {
        // The name a --suffix extends: the one given, else a new run's default (not a continued
        // run's, which already carries the suffix).
        let suffix_base = cli.name.clone().unwrap_or_else(|| match &cli.dataroot {
            Some(root) => Self::reference(root.clone()).name,
            None => Self::embedded().name,
        });
        let mut c = match (base, &cli.dataroot) {
            (Some(base), _) => base,
            (None, Some(root)) => Self::reference(root.clone()),
            (None, None) => Self::embedded(),
        };
        macro_rules! set {
            ($field:expr, $value:expr) => {
                if let Some(v) = $value.clone() {
                    $field = v;
                }
            };
        }
        set!(c.dataroot, cli.dataroot);
        set!(c.name, cli.name);
        set!(c.checkpoints_dir, cli.checkpoints_dir);
        set!(c.results_dir, cli.results_dir);
        let g = &mut c.model.generator;
        set!(g.arch, cli.net_g);
        set!(g.ngf, cli.ngf);
        set!(g.norm, cli.norm);
        if cli.dropout {
            g.use_dropout = true;
        }
        if cli.no_dropout {
            g.use_dropout = false;
        }
        g.padding_type = PaddingType::Reflect;
        let d = &mut c.model.discriminator;
        if cli.net_d.is_some() || cli.n_layers_d.is_some() {
            let net_d = cli.net_d.clone().unwrap_or_else(|| match d.arch {
                DiscriminatorArch::Pixel => "pixel".into(),
                _ => "n_layers".into(),
            });
            let n_layers = cli.n_layers_d.unwrap_or(match d.arch {
                DiscriminatorArch::NLayers(n) => n,
                DiscriminatorArch::Pixel => 3,
            });
            d.arch = DiscriminatorArch::from_options(&net_d, n_layers)?;
        }
        set!(d.ndf, cli.ndf);
        set!(d.norm, cli.norm);
        let init: &mut InitConfig = &mut c.model.init;
        set!(init.init_type, cli.init_type);
        set!(init.init_gain, cli.init_gain);
        let data = &mut c.data;
        set!(data.load_size, cli.load_size);
        set!(data.crop_size, cli.crop_size);
        set!(data.preprocess, cli.preprocess);
        data.no_flip |= cli.no_flip;
        data.serial_batches |= cli.serial_batches;
        set!(data.input_nc, cli.input_nc);
        set!(data.output_nc, cli.output_nc);
        set!(data.direction, cli.direction);
        if cli.max_dataset_size.is_some() {
            data.max_dataset_size = cli.max_dataset_size;
        }
        data.phase = cli.phase.clone().unwrap_or_else(|| "train".into());
        // The generators map between the two domains' channel counts.
        c.model.generator.input_nc = c.data.input_nc;
        c.model.generator.output_nc = c.data.output_nc;
        set!(c.batch_size, cli.batch_size);
        set!(c.workers, cli.workers);
        if let Some(policy) = &cli.on_bad_image {
            c.on_bad_image = if policy == "skip" {
                OnBadImage::Skip
            } else {
                OnBadImage::Fail
            };
        }
        let w: &mut CycleWeights = &mut c.model.weights;
        set!(w.lambda_a, cli.lambda_a);
        set!(w.lambda_b, cli.lambda_b);
        set!(w.lambda_identity, cli.lambda_identity);
        set!(c.model.pool_size, cli.pool_size);
        set!(c.model.gan_mode, cli.gan_mode);
        set!(c.schedule.lr, cli.lr);
        set!(c.model.beta1, cli.beta1);
        set!(c.schedule.n_epochs, cli.n_epochs);
        set!(c.schedule.n_epochs_decay, cli.n_epochs_decay);
        set!(c.schedule.policy, cli.lr_policy);
        set!(c.schedule.lr_decay_iters, cli.lr_decay_iters);
        set!(c.schedule.epoch_count, cli.epoch_count);
        c.continue_train = cli.continue_train;
        c.epoch = cli.epoch.clone().unwrap_or_else(|| "latest".into());
        set!(c.save_epoch_freq, cli.save_epoch_freq);
        set!(c.save_latest_freq, cli.save_latest_freq);
        set!(c.print_freq, cli.print_freq);
        set!(c.display_freq, cli.display_freq);
        if cli.update_html_freq.is_some() {
            c.update_html_freq = cli.update_html_freq;
        }
        c.html &= !cli.no_html;
        c.save_by_iter |= cli.save_by_iter;
        c.load_iter = cli.load_iter.unwrap_or(0);
        c.verbose = cli.verbose;
        c.overwrite = cli.overwrite;
        set!(c.seed, cli.seed);
        set!(c.device, cli.device);
        if let Some(ids) = &cli.gpu_ids {
            c.device = cyclegan_layers::device::device_from_gpu_ids(ids)?;
        }
        c.max_steps = cli
            .max_steps
            .or(c.max_steps.filter(|_| !cli.continue_train));
        c.translate_test |= cli.translate_test;
        c.progress = !cli.no_progress;
        c.tf32 &= !cli.no_tf32;
        c.cudnn_benchmark = cli.cudnn_benchmark;
        c.deterministic |= cli.deterministic;
        c.channels_last = cli.channels_last;
        if let Some(template) = cli.suffix.as_deref().filter(|s| !s.is_empty()) {
            c.name = suffix_base;
            let suffix = expand_suffix(template, &c, cli)?;
            c.name = format!("{}_{suffix}", c.name);
        }
        c.validate()?;
        Ok(c)
    }

    /// Whether a run of `self` computes what a run of `other` computed: the same options but for
    /// those that only say how this invocation runs (device, threads, logs, progress, how it
    /// was started).
    pub fn same_run_as(&self, other: &TrainConfig) -> bool {
        let mut other = other.clone();
        other.workers = self.workers;
        other.progress = self.progress;
        other.device = self.device.clone();
        other.tf32 = self.tf32;
        other.cudnn_benchmark = self.cudnn_benchmark;
        other.deterministic = self.deterministic;
        other.channels_last = self.channels_last;
        other.verbose = self.verbose;
        other.overwrite = self.overwrite;
        other.continue_train = self.continue_train;
        other.epoch = self.epoch.clone();
        other.load_iter = self.load_iter;
        *self == other
    }

    /// The label of the networks a continued run starts from: `iter_<N>` with `--load-iter`,
    /// else `--epoch` (`latest` or a number).
    pub fn load_label(&self) -> String {
        cyclegan_checkpoint::checkpoint_label(&self.epoch, self.load_iter)
    }

    /// Checks what the reference would refuse, with a message saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        let nonzero = [
            ("--batch-size", self.batch_size),
            ("--ngf", self.model.generator.ngf),
            ("--ndf", self.model.discriminator.ndf),
            ("--print-freq", self.print_freq),
            ("--display-freq", self.display_freq),
            ("--save-latest-freq", self.save_latest_freq),
            ("--save-epoch-freq", self.save_epoch_freq),
            ("--epoch-count", self.schedule.epoch_count),
        ];
        for (flag, value) in nonzero {
            if value == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        if self.data.max_dataset_size == Some(0) {
            return Err(
                "--max-dataset-size 0 would train on no images: give at least 1, or leave it out to use them all"
                    .into(),
            );
        }
        if self.name.is_empty()
            || self.name == "."
            || self.name == ".."
            || self.name.contains(['/', '\\'])
        {
            return Err(format!(
                "--name '{}' must be a plain folder name (the run's folder in --checkpoints-dir), e.g. horse2zebra",
                self.name
            ));
        }
        let w = &self.model.weights;
        for (flag, value) in [
            ("--lambda-A", w.lambda_a),
            ("--lambda-B", w.lambda_b),
            ("--lambda-identity", w.lambda_identity),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return Err(format!("{flag} {value} must be a number of at least 0"));
            }
        }
        let (input_nc, output_nc) = (self.data.input_nc, self.data.output_nc);
        for (flag, nc) in [("--input-nc", input_nc), ("--output-nc", output_nc)] {
            if nc != 1 && nc != 3 {
                return Err(format!(
                    "{flag} {nc}: images are read as grayscale (1) or RGB (3), so it must be 1 or 3"
                ));
            }
        }
        if w.lambda_identity > 0.0 && input_nc != output_nc {
            return Err(format!(
                "--lambda-identity {} needs --input-nc and --output-nc equal (the identity loss feeds B images to G_A), got {input_nc} and {output_nc}: pass --lambda-identity 0",
                w.lambda_identity
            ));
        }
        if let DiscriminatorArch::NLayers(0) = self.model.discriminator.arch {
            return Err("--n-layers-D must be at least 1".into());
        }
        let crop = self.data.crop_size as usize;
        let multiple = self.model.generator.arch.size_multiple();
        if self.data.preprocess.crops() && !crop.is_multiple_of(multiple) {
            return Err(format!(
                "--crop-size {crop} must be a multiple of {multiple} for {}",
                self.model.generator.arch
            ));
        }
        if patch_map_side(self.model.discriminator.arch, crop) < 1 {
            return Err(format!(
                "--crop-size {crop} is too small for the {} discriminator: its patch map would be empty; use a larger crop or fewer --n-layers-D",
                self.model.discriminator.arch
            ));
        }
        if self.epoch != "latest" && self.epoch.parse::<usize>().is_err() {
            return Err(format!(
                "--epoch '{}' must be 'latest' or an epoch number",
                self.epoch
            ));
        }
        if self.schedule.epoch_count > self.last_epoch() {
            return Err(format!(
                "--epoch-count {} is past the schedule's last epoch, {} (--n-epochs {} + --n-epochs-decay {}): nothing would be trained",
                self.schedule.epoch_count,
                self.last_epoch(),
                self.schedule.n_epochs,
                self.schedule.n_epochs_decay
            ));
        }
        if self.data.phase.is_empty() || self.data.phase.contains(['/', '\\']) {
            return Err(format!(
                "--phase '{}' must name the folders <dataroot>/<phase>A and <phase>B, e.g. train",
                self.data.phase
            ));
        }
        if self.deterministic && self.cudnn_benchmark {
            return Err(if self.continue_train {
                "--cudnn-benchmark with --deterministic (which a run started with it keeps when continued): the benchmark picks engines by timing, which can differ from run to run; continue without --cudnn-benchmark"
            } else {
                "--deterministic and --cudnn-benchmark: the benchmark picks engines by timing, which can differ from run to run; drop one of them"
            }
            .into());
        }
        if self.max_steps == Some(0) && !self.continue_train {
            return Err("--max-steps 0 would train nothing: give at least 1".into());
        }
        if self.update_html_freq == Some(0) {
            return Err("--update-html-freq must be at least 1".into());
        }
        if self.schedule.lr <= 0.0 || !self.schedule.lr.is_finite() {
            return Err("--lr must be a positive number".into());
        }
        // PyTorch's Adam refuses a beta1 outside [0, 1).
        let beta1 = self.model.beta1;
        if !(0.0..1.0).contains(&beta1) {
            return Err(format!(
                "--beta1 {beta1} must be at least 0 and below 1 (Adam's first-moment decay; the reference's default is 0.5)"
            ));
        }
        let gain = self.model.init.init_gain;
        if !(gain >= 0.0 && gain.is_finite()) {
            return Err(format!(
                "--init-gain {gain} must be a number of at least 0 (the spread of the initial weights; the reference's default is 0.02)"
            ));
        }
        if self.schedule.policy == LrPolicy::Step && self.schedule.lr_decay_iters == 0 {
            return Err(
                "--lr-decay-iters must be at least 1 with --lr-policy step (epochs between the tenfold decays)".into(),
            );
        }
        Ok(())
    }

    /// Why a batch of `height x width` images cannot go through the networks, if it cannot:
    /// the generator needs sides that are multiples of its downsampling and large enough for
    /// its padding, the discriminator a patch map of at least one patch. Crops are checked
    /// once by [`TrainConfig::validate`]; the preprocessing modes that keep each image's
    /// proportions (`scale_width`, `none`) give sizes only the images themselves decide.
    pub fn image_size_problem(&self, height: usize, width: usize) -> Option<String> {
        let g = self.model.generator.arch;
        let (multiple, min) = (g.size_multiple(), g.min_size());
        let d = self.model.discriminator.arch;
        let side = height.min(width);
        if !height.is_multiple_of(multiple) || !width.is_multiple_of(multiple) || side < min {
            Some(format!(
                "images of {width}x{height} after --preprocess {}, but {g} needs sides that are multiples of {multiple} and at least {min}",
                self.data.preprocess
            ))
        } else if patch_map_side(d, side) < 1 {
            Some(format!(
                "images of {width}x{height} after --preprocess {}, too small for the {d} discriminator (its patch map would be empty)",
                self.data.preprocess
            ))
        } else {
            None
        }
    }

    /// The run's folder, `<checkpoints-dir>/<name>`.
    pub fn run_dir(&self) -> PathBuf {
        self.checkpoints_dir.join(&self.name)
    }

    /// The last epoch of the schedule: `n_epochs + n_epochs_decay`, whatever `epoch_count` the
    /// run starts from (the reference's `range(epoch_count, n_epochs + n_epochs_decay + 1)`; its
    /// linear decay reaches lr / (n_epochs_decay + 1) there).
    pub fn last_epoch(&self) -> usize {
        self.schedule.n_epochs + self.schedule.n_epochs_decay
    }

    /// The options as the reference prints them (`train_opt.txt`).
    pub fn describe(&self) -> String {
        let json = serde_json::to_value(self).expect("config serialises");
        let mut out = String::from("----------------- Options ---------------\n");
        fn walk(prefix: &str, v: &serde_json::Value, out: &mut String) {
            match v {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(&key, v, out);
                    }
                }
                other => out.push_str(&format!("{prefix:>32}: {other}\n")),
            }
        }
        walk("", &json, &mut out);
        out.push_str("----------------- End -------------------\n");
        out
    }
}

/// `--suffix` with each `{option}` replaced by the option's value as the reference's Python
/// `str.format(**vars(opt))` writes it (`True`, `0.0002`, `10.0`); format specifications
/// (`{lr:.1e}`) are not supported.
fn expand_suffix(template: &str, c: &TrainConfig, cli: &Cli) -> Result<String, String> {
    let g = &c.model.generator;
    let d = &c.model.discriminator;
    let net_d = cli.net_d.clone().unwrap_or_else(|| {
        match d.arch {
            DiscriminatorArch::NLayers(3) => "basic",
            DiscriminatorArch::NLayers(_) => "n_layers",
            DiscriminatorArch::Pixel => "pixel",
        }
        .into()
    });
    let n_layers_d = match d.arch {
        DiscriminatorArch::NLayers(n) => n,
        DiscriminatorArch::Pixel => 3,
    };
    let value = |key: &str| -> Option<String> {
        Some(match key {
            "name" => c.name.clone(),
            "model" => "cycle_gan".into(),
            "dataset_mode" => "unaligned".into(),
            "dataroot" => c.dataroot.display().to_string(),
            "checkpoints_dir" => c.checkpoints_dir.display().to_string(),
            "netG" => g.arch.to_string(),
            "netD" => net_d.clone(),
            "n_layers_D" => n_layers_d.to_string(),
            "ngf" => g.ngf.to_string(),
            "ndf" => d.ndf.to_string(),
            "norm" => g.norm.to_string(),
            "no_dropout" => py_bool(!g.use_dropout),
            "init_type" => c.model.init.init_type.to_string(),
            "init_gain" => py_float(c.model.init.init_gain),
            "load_size" => c.data.load_size.to_string(),
            "crop_size" => c.data.crop_size.to_string(),
            "preprocess" => c.data.preprocess.to_string(),
            "no_flip" => py_bool(c.data.no_flip),
            "serial_batches" => py_bool(c.data.serial_batches),
            "batch_size" => c.batch_size.to_string(),
            "num_threads" => c.workers.to_string(),
            "input_nc" => c.data.input_nc.to_string(),
            "output_nc" => c.data.output_nc.to_string(),
            "direction" => c.data.direction.to_string(),
            "phase" => c.data.phase.clone(),
            "max_dataset_size" => c
                .data
                .max_dataset_size
                .map_or("inf".into(), |n| n.to_string()),
            "lambda_A" => py_float(c.model.weights.lambda_a),
            "lambda_B" => py_float(c.model.weights.lambda_b),
            "lambda_identity" => py_float(c.model.weights.lambda_identity),
            "pool_size" => c.model.pool_size.to_string(),
            "gan_mode" => c.model.gan_mode.to_string(),
            "lr" => py_float(c.schedule.lr),
            "beta1" => py_float(c.model.beta1),
            "n_epochs" | "niter" => c.schedule.n_epochs.to_string(),
            "n_epochs_decay" | "niter_decay" => c.schedule.n_epochs_decay.to_string(),
            "lr_policy" => c.schedule.policy.to_string(),
            "lr_decay_iters" => c.schedule.lr_decay_iters.to_string(),
            "epoch_count" => c.schedule.epoch_count.to_string(),
            "epoch" => c.epoch.clone(),
            "load_iter" => c.load_iter.to_string(),
            "continue_train" => py_bool(c.continue_train),
            "save_epoch_freq" => c.save_epoch_freq.to_string(),
            "save_latest_freq" => c.save_latest_freq.to_string(),
            "save_by_iter" => py_bool(c.save_by_iter),
            "print_freq" => c.print_freq.to_string(),
            "display_freq" => c.display_freq.to_string(),
            _ => return None,
        })
    };
    cyclegan_translate::expand_suffix(template, value, SUFFIX_OPTIONS)
}

/// The options a `--suffix` of `cyclegan-train` can name (`expand_suffix` has a value for each).
const SUFFIX_OPTIONS: &[&str] = &[
    "name",
    "model",
    "dataset_mode",
    "dataroot",
    "checkpoints_dir",
    "netG",
    "netD",
    "n_layers_D",
    "ngf",
    "ndf",
    "norm",
    "no_dropout",
    "init_type",
    "init_gain",
    "load_size",
    "crop_size",
    "preprocess",
    "no_flip",
    "serial_batches",
    "batch_size",
    "num_threads",
    "input_nc",
    "output_nc",
    "direction",
    "phase",
    "max_dataset_size",
    "lambda_A",
    "lambda_B",
    "lambda_identity",
    "pool_size",
    "gan_mode",
    "lr",
    "beta1",
    "n_epochs",
    "niter",
    "n_epochs_decay",
    "niter_decay",
    "lr_policy",
    "lr_decay_iters",
    "epoch_count",
    "epoch",
    "load_iter",
    "continue_train",
    "save_epoch_freq",
    "save_latest_freq",
    "save_by_iter",
    "print_freq",
    "display_freq",
];

/// The side of the patch map that discriminator `arch` gives for inputs of side `side` (below 1:
/// no patch at all).
fn patch_map_side(arch: DiscriminatorArch, side: usize) -> i64 {
    let DiscriminatorArch::NLayers(n) = arch else {
        return side as i64;
    };
    // Each strided 4x4 convolution (padding 1) halves the side; the last two take 1 each.
    let mut side = side as i64;
    for _ in 1..n {
        side = (side - 2) / 2 + 1;
    }
    (side - 2) / 2 + 1 - 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(args: &[&str]) -> TrainConfig {
        let cli = Cli::try_parse_from(["cyclegan-train"].iter().chain(args)).unwrap();
        TrainConfig::resolve(&cli, None).unwrap()
    }

    #[test]
    fn option_names_are_written_as_they_are_read_and_saved() {
        use cyclegan_layers::{InitType, PaddingType};
        for t in [
            InitType::Normal,
            InitType::Xavier,
            InitType::Kaiming,
            InitType::Orthogonal,
        ] {
            assert_eq!(t.to_string().parse::<InitType>().unwrap(), t);
            assert_eq!(serde_json::to_value(t).unwrap(), t.to_string());
        }
        for p in [
            PaddingType::Reflect,
            PaddingType::Replicate,
            PaddingType::Zero,
        ] {
            assert_eq!(p.to_string().parse::<PaddingType>().unwrap(), p);
        }
        for l in [
            LrPolicy::Linear,
            LrPolicy::Step,
            LrPolicy::Plateau,
            LrPolicy::Cosine,
        ] {
            assert_eq!(l.to_string().parse::<LrPolicy>().unwrap(), l);
            assert_eq!(serde_json::to_value(l).unwrap(), l.to_string());
        }
    }

    /// Zero images is refused by the option's name (the data crate's own check names its field).
    #[test]
    fn an_empty_dataset_size_is_refused_by_its_option() {
        let cli = Cli::try_parse_from(["cyclegan-train", "--max-dataset-size", "0"]).unwrap();
        let err = TrainConfig::resolve(&cli, None).unwrap_err();
        assert!(
            err.contains("--max-dataset-size 0 would train on no images"),
            "{err}"
        );
        resolve(&["--max-dataset-size", "1"]);
    }

    /// As with the reference's argparse, an option given twice (in either spelling) takes its
    /// last value, so that scripts can append overrides to a command line.
    #[test]
    fn an_option_given_twice_takes_its_last_value() {
        let c = resolve(&[
            "--n-epochs",
            "3",
            "--lr",
            "0.1",
            "--n_epochs",
            "5",
            "--lr",
            "0.2",
        ]);
        assert_eq!((c.schedule.n_epochs, c.schedule.lr), (5, 0.2));
        let c = resolve(&[
            "--no-html",
            "--no_html",
            "--dataroot",
            "a",
            "--dataroot",
            "b",
        ]);
        assert_eq!(c.dataroot, PathBuf::from("b"));
        assert!(!c.html);
    }

    /// The learning rate has one home, the schedule; runs saved when the model's config held a
    /// copy of it (`"model": {"lr": ...}`) still continue, with their schedule's rate.
    #[test]
    fn the_learning_rate_is_the_schedule_s_and_old_options_files_still_read() {
        let c = resolve(&["--lr", "0.0005"]);
        assert_eq!(c.schedule.lr, 0.0005);
        let mut saved = serde_json::to_value(&c).unwrap();
        assert!(saved["model"].get("lr").is_none());
        saved["model"]["lr"] = serde_json::json!(0.0005);
        let read: TrainConfig = serde_json::from_value(saved).unwrap();
        assert_eq!(read, c);
    }

    #[test]
    fn every_listed_suffix_option_has_a_value() {
        let cli = Cli::try_parse_from(["cyclegan-train"]).unwrap();
        let c = TrainConfig::resolve(&cli, None).unwrap();
        for key in SUFFIX_OPTIONS {
            let expanded = expand_suffix(&format!("{{{key}}}"), &c, &cli);
            assert!(expanded.is_ok(), "{key}: {expanded:?}");
        }
    }

    #[test]
    fn a_suffix_names_the_run_after_its_options() {
        let c = resolve(&[
            "--name",
            "h2z",
            "--suffix",
            "{model}_{netG}_size{load_size}",
        ]);
        assert_eq!(c.name, "h2z_cycle_gan_resnet_6blocks_size72");
        let c = resolve(&["--suffix", "{netD}{n_layers_D}_{no_flip}_{lambda_A}"]);
        assert_eq!(c.name, "emoji64_basic3_False_10.0");
        // An empty suffix changes nothing, as in the reference.
        assert_eq!(resolve(&["--suffix", ""]).name, "emoji64");
        let cli = Cli::try_parse_from(["cyclegan-train", "--suffix", "size{load_size"]).unwrap();
        let err = TrainConfig::resolve(&cli, None).unwrap_err();
        assert!(err.contains("without its"), "{err}");
    }

    #[test]
    fn a_continued_run_is_not_suffixed_twice() {
        let first = resolve(&["--suffix", "{ngf}"]);
        assert_eq!(first.name, "emoji64_16");
        let cli = Cli::try_parse_from(["cyclegan-train", "--suffix", "{ngf}", "--continue-train"])
            .unwrap();
        let continued = TrainConfig::resolve(&cli, Some(first)).unwrap();
        assert_eq!(continued.name, "emoji64_16");
    }

    #[test]
    fn gpu_ids_choose_the_device() {
        assert_eq!(resolve(&["--gpu_ids", "-1"]).device, "cpu");
        assert_eq!(resolve(&["--gpu_ids", "1"]).device, "cuda:1");
        assert_eq!(resolve(&[]).device, "cpu");
    }

    #[test]
    fn tf32_is_on_unless_refused_and_old_options_files_keep_it() {
        assert!(resolve(&[]).tf32);
        assert!(!resolve(&["--no-tf32"]).tf32);
        assert!(!resolve(&["--no_tf32"]).tf32);
        let mut saved = serde_json::to_value(resolve(&[])).unwrap();
        saved.as_object_mut().unwrap().remove("tf32");
        let old: TrainConfig = serde_json::from_value(saved).unwrap();
        assert!(old.tf32, "an options file without the field");
    }

    #[test]
    fn deterministic_is_off_unless_asked_and_kept_when_continued() {
        assert!(!resolve(&[]).deterministic);
        let first = resolve(&["--deterministic"]);
        assert!(first.deterministic);
        let cli = Cli::try_parse_from(["cyclegan-train", "--continue-train"]).unwrap();
        assert!(
            TrainConfig::resolve(&cli, Some(first.clone()))
                .unwrap()
                .deterministic
        );
        // Engines picked by timing are refused with it, also when a continued run keeps it.
        let both = Cli::try_parse_from(["cyclegan-train", "--deterministic", "--cudnn-benchmark"]);
        let err = TrainConfig::resolve(&both.unwrap(), None).unwrap_err();
        assert!(err.contains("drop one of them"), "{err}");
        let cli = Cli::try_parse_from(["cyclegan-train", "--continue-train", "--cudnn-benchmark"])
            .unwrap();
        let err = TrainConfig::resolve(&cli, Some(first.clone())).unwrap_err();
        assert!(err.contains("continue without --cudnn-benchmark"), "{err}");
        let mut saved = serde_json::to_value(first).unwrap();
        saved.as_object_mut().unwrap().remove("deterministic");
        let old: TrainConfig = serde_json::from_value(saved).unwrap();
        assert!(!old.deterministic, "an options file without the field");
    }

    #[test]
    fn cudnn_benchmark_is_off_unless_asked_and_old_options_files_read() {
        assert!(!resolve(&[]).cudnn_benchmark);
        assert!(resolve(&["--cudnn-benchmark"]).cudnn_benchmark);
        assert!(resolve(&["--cudnn_benchmark"]).cudnn_benchmark);
        let mut saved = serde_json::to_value(resolve(&["--cudnn-benchmark"])).unwrap();
        saved.as_object_mut().unwrap().remove("cudnn_benchmark");
        let old: TrainConfig = serde_json::from_value(saved).unwrap();
        assert!(!old.cudnn_benchmark, "an options file without the field");
    }

    #[test]
    fn channels_last_is_off_unless_asked_and_not_part_of_the_run() {
        assert!(!resolve(&[]).channels_last);
        let on = resolve(&["--channels-last"]);
        assert!(on.channels_last);
        assert!(resolve(&["--channels_last"]).channels_last);
        assert!(
            on.same_run_as(&resolve(&[])),
            "a layout computes the same run"
        );
        let mut saved = serde_json::to_value(&on).unwrap();
        saved.as_object_mut().unwrap().remove("channels_last");
        let old: TrainConfig = serde_json::from_value(saved).unwrap();
        assert!(!old.channels_last, "an options file without the field");
    }
}
