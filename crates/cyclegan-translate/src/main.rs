//! `cyclegan-translate`: translate images with a CycleGAN generator checkpoint.

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser};
use cyclegan_data::{DataOptions, Direction, Preprocess};
use cyclegan_translate::{
    expand_suffix, py_bool, py_float, run_test, translate_files, Resize, TestModel, TestOptions,
    TranslateOptions, Translator,
};
use std::path::PathBuf;

/// The help heading of the `--dataroot` form's options.
const REFERENCE: &str = "Reference test.py options (the --dataroot form)";

/// Translate an image or a folder of images with a generator checkpoint: one written by
/// cyclegan-train (latest_net_G_A.safetensors), a converted one, or a reference .pth.
///
/// Two forms: `--checkpoint G --input DIR --output DIR`, or the reference's test.py command
/// line (`--dataroot DIR --name NAME [--model test|cycle_gan] ...`), which reads
/// {checkpoints_dir}/{name}/{epoch}_net_G*.safetensors (or .pth) and writes
/// {results_dir}/{name}/{phase}_{epoch}/ as test.py does.
#[derive(Parser, Debug)]
// An option given twice takes its last value, as test.py's argparse does.
#[command(version, about, args_override_self = true)]
struct Cli {
    /// Generator checkpoint (.safetensors or .pth); with --input and --output.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// An image file, or a folder searched recursively for images.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Output folder: receives images/<stem>_real.png, images/<stem>_fake.png and index.html.
    #[arg(long)]
    output: Option<PathBuf>,
    /// cpu, cuda or cuda:N [default: cpu].
    #[arg(long, conflicts_with = "gpu_ids")]
    device: Option<String>,
    /// The reference's device choice: -1 for the CPU, N for cuda:N (one GPU) [default: the
    /// CPU].
    #[arg(long = "gpu-ids", alias = "gpu_ids", allow_hyphen_values = true)]
    gpu_ids: Option<String>,
    /// On CUDA, compute f32 convolutions in full f32 instead of TF32 (allowed by default, as in
    /// PyTorch).
    #[arg(long = "no-tf32", alias = "no_tf32")]
    no_tf32: bool,
    /// On CUDA, keep the activations between convolutions channels last (NHWC), the layout
    /// cuDNN's tensor-core engines work in (experimental; the same numbers up to the engines).
    #[arg(long = "channels-last", alias = "channels_last")]
    channels_last: bool,
    /// Resize as the reference's test.py does (resize_and_crop, crop, scale_width,
    /// scale_width_and_crop, none) [default: with --checkpoint, each image at its own size;
    /// with --dataroot, resize_and_crop].
    #[arg(long)]
    preprocess: Option<Preprocess>,
    /// The size images are resized to (with --preprocess, or --dataroot).
    #[arg(long = "load-size", alias = "load_size", default_value_t = 256)]
    load_size: u32,
    /// The crop size (with --preprocess, or --dataroot).
    #[arg(long = "crop-size", alias = "crop_size", default_value_t = 256)]
    crop_size: u32,
    /// Evaluation mode (batch norm running statistics, no dropout), the reference's --eval.
    #[arg(long)]
    eval: bool,
    #[command(flatten)]
    reference: ReferenceArgs,
    #[command(flatten)]
    compat: CompatArgs,
}

/// The options of the reference's test.py form that this tool reads.
#[derive(Args, Debug)]
#[command(next_help_heading = REFERENCE)]
struct ReferenceArgs {
    /// The images (--model test: searched recursively), or the folder holding {phase}A and
    /// {phase}B (--model cycle_gan). Chooses this form.
    #[arg(long)]
    dataroot: Option<PathBuf>,
    /// The run: checkpoints come from {checkpoints_dir}/{name}, results go to
    /// {results_dir}/{name} (with --suffix, {name}_{suffix}).
    #[arg(long, default_value = "experiment_name")]
    name: String,
    /// Appended to --name as _<suffix>, as the reference's test.py does, with each {option}
    /// replaced by its value: the one given here, else test.py's default (which may not be
    /// training's: load_size is 256, model test), e.g. {netG}_size{load_size}.
    #[arg(long, default_value = "")]
    suffix: String,
    /// Where the runs' checkpoints are: {checkpoints_dir}/{name}/{epoch}_net_G*.
    #[arg(
        long = "checkpoints-dir",
        alias = "checkpoints_dir",
        default_value = "./checkpoints"
    )]
    checkpoints_dir: PathBuf,
    /// Where results go: {results_dir}/{name}/{phase}_{epoch}/index.html and images/.
    #[arg(
        long = "results-dir",
        alias = "results_dir",
        default_value = "./results/"
    )]
    results_dir: PathBuf,
    /// test: one generator, {epoch}_net_G{model_suffix}, writing real and fake; cycle_gan: G_A
    /// and G_B over {phase}A and {phase}B, writing real_A, fake_B, rec_A, real_B, fake_A, rec_B.
    #[arg(long, default_value = "test")]
    model: TestModel,
    /// With --model test: reads {epoch}_net_G{model_suffix} (e.g. _A for a trained run's G_A).
    #[arg(long = "model-suffix", alias = "model_suffix", default_value = "")]
    model_suffix: String,
    /// The checkpoints' prefix ({epoch}_net_G...), also in the result folder's name.
    #[arg(long, default_value = "latest")]
    epoch: String,
    /// Above 0: read iter_{load_iter}_net_G... instead, and append _iter{load_iter} to the
    /// result folder.
    #[arg(long = "load-iter", alias = "load_iter", default_value_t = 0)]
    load_iter: u32,
    /// Translate the first this many samples only.
    #[arg(long = "num-test", alias = "num_test", default_value_t = 50)]
    num_test: usize,
    /// {phase}_{epoch} names the result folder; with cycle_gan, {phase}A and {phase}B are read.
    #[arg(long, default_value = "test")]
    phase: String,
    /// Saved images are resized: above 1 to (width h, height w * r), below 1 to (width h / r,
    /// height w), for an image of h rows and w columns, as the reference does.
    #[arg(long = "aspect-ratio", alias = "aspect_ratio", default_value_t = 1.0)]
    aspect_ratio: f64,
    /// The width the page shows images at.
    #[arg(
        long = "display-winsize",
        alias = "display_winsize",
        default_value_t = 256
    )]
    display_winsize: u32,
    /// With cycle_gan: BtoA takes real_A from {phase}B (and names each sample after it).
    #[arg(long, default_value = "AtoB")]
    direction: Direction,
    /// Read at most this many images (per folder with cycle_gan), the first in sorted order.
    #[arg(long = "max-dataset-size", alias = "max_dataset_size")]
    max_dataset_size: Option<usize>,
}

/// Options of the reference's test.py that are accepted and ignored: the checkpoint's keys
/// decide the architecture, and test.py forces the rest.
#[derive(Args, Debug)]
#[command(next_help_heading = REFERENCE)]
#[allow(dead_code)] // Parsed so that the reference's command lines run; mostly never read.
struct CompatArgs {
    /// Accepted for compatibility (the checkpoint's keys show whether there is dropout).
    #[arg(long = "no-dropout", alias = "no_dropout")]
    no_dropout: bool,
    /// Accepted for compatibility (the architecture comes from the checkpoint).
    #[arg(long = "netG", alias = "net-g", value_name = "NETG")]
    net_g: Option<String>,
    /// Accepted for compatibility (no discriminator is used).
    #[arg(long = "netD", alias = "net-d", value_name = "NETD")]
    net_d: Option<String>,
    /// Accepted for compatibility (the norm comes from the checkpoint).
    #[arg(long)]
    norm: Option<String>,
    /// Accepted for compatibility (the width comes from the checkpoint).
    #[arg(long)]
    ngf: Option<i64>,
    /// Accepted for compatibility (no discriminator is used).
    #[arg(long)]
    ndf: Option<i64>,
    /// Accepted for compatibility (no discriminator is used).
    #[arg(long = "n-layers-D", alias = "n_layers_D")]
    n_layers_d: Option<i64>,
    /// Accepted for compatibility (the channels come from the checkpoint).
    #[arg(long = "input-nc", alias = "input_nc")]
    input_nc: Option<i64>,
    /// Accepted for compatibility (the channels come from the checkpoint).
    #[arg(long = "output-nc", alias = "output_nc")]
    output_nc: Option<i64>,
    /// Accepted for compatibility (the weights are loaded).
    #[arg(long = "init-type", alias = "init_type")]
    init_type: Option<String>,
    /// Accepted for compatibility (the weights are loaded).
    #[arg(long = "init-gain", alias = "init_gain", allow_hyphen_values = true)]
    init_gain: Option<f64>,
    /// Accepted for compatibility (--model picks the dataset).
    #[arg(long = "dataset-mode", alias = "dataset_mode")]
    dataset_mode: Option<String>,
    /// Accepted for compatibility (always on, as test.py sets it).
    #[arg(long = "serial-batches", alias = "serial_batches")]
    serial_batches: bool,
    /// Accepted for compatibility (always on, as test.py sets it).
    #[arg(long = "no-flip", alias = "no_flip")]
    no_flip: bool,
    /// Accepted for compatibility (images are decoded on a few threads).
    #[arg(long = "num-threads", alias = "num_threads")]
    num_threads: Option<i64>,
    /// Accepted for compatibility (one image at a time, as test.py sets it).
    #[arg(long = "batch-size", alias = "batch_size")]
    batch_size: Option<i64>,
    /// Accepted for compatibility.
    #[arg(long)]
    verbose: bool,
    /// Accepted for compatibility (no wandb logging).
    #[arg(long = "use-wandb", alias = "use_wandb")]
    use_wandb: bool,
    /// Accepted for compatibility (no wandb logging).
    #[arg(long = "wandb-project-name", alias = "wandb_project_name")]
    wandb_project_name: Option<String>,
    /// Accepted for compatibility (no visdom display).
    #[arg(long = "display-id", alias = "display_id", allow_hyphen_values = true)]
    display_id: Option<i64>,
}

/// The options a `--suffix` may name: the reference's test.py options that this tool reads or
/// accepts (with `--model test` or `cycle_gan`).
const SUFFIX_OPTIONS: [&str; 37] = [
    "dataroot",
    "name",
    "checkpoints_dir",
    "results_dir",
    "model",
    "model_suffix",
    "dataset_mode",
    "netG",
    "netD",
    "n_layers_D",
    "ngf",
    "ndf",
    "norm",
    "no_dropout",
    "init_type",
    "init_gain",
    "input_nc",
    "output_nc",
    "direction",
    "phase",
    "epoch",
    "load_iter",
    "num_test",
    "eval",
    "preprocess",
    "load_size",
    "crop_size",
    "no_flip",
    "serial_batches",
    "batch_size",
    "num_threads",
    "max_dataset_size",
    "aspect_ratio",
    "display_winsize",
    "verbose",
    "use_wandb",
    "suffix",
];

/// `--name`, extended by `--suffix` as the reference's `BaseOptions.parse` does:
/// `name + '_' + suffix.format(**vars(opt))` unless the suffix is empty. Each `{option}` takes
/// the value test.py would see: the one given, else test.py's default (which, as in the
/// reference, may differ from training's: `load_size` is 256, `model` test).
fn suffixed_name(cli: &Cli) -> Result<String, String> {
    let r = &cli.reference;
    let c = &cli.compat;
    if r.suffix.is_empty() {
        return Ok(r.name.clone());
    }
    let text = |given: &Option<String>, default: &str| given.clone().unwrap_or(default.into());
    let int = |given: Option<i64>, default: i64| given.unwrap_or(default).to_string();
    let value = |key: &str| -> Option<String> {
        Some(match key {
            "dataroot" => r.dataroot.as_ref()?.display().to_string(),
            "name" => r.name.clone(),
            "checkpoints_dir" => r.checkpoints_dir.display().to_string(),
            "results_dir" => r.results_dir.display().to_string(),
            "model" => r.model.to_string(),
            "model_suffix" => r.model_suffix.clone(),
            // The models set it: test reads single images, cycle_gan unaligned pairs.
            "dataset_mode" => text(
                &c.dataset_mode,
                match r.model {
                    TestModel::Test => "single",
                    TestModel::CycleGan => "unaligned",
                },
            ),
            "netG" => text(&c.net_g, "resnet_9blocks"),
            "netD" => text(&c.net_d, "basic"),
            "n_layers_D" => int(c.n_layers_d, 3),
            "ngf" => int(c.ngf, 64),
            "ndf" => int(c.ndf, 64),
            "norm" => text(&c.norm, "instance"),
            // cycle_gan's default is True (the paper's CycleGAN has no dropout).
            "no_dropout" => py_bool(c.no_dropout || r.model == TestModel::CycleGan),
            "init_type" => text(&c.init_type, "normal"),
            "init_gain" => py_float(c.init_gain.unwrap_or(0.02)),
            "input_nc" => int(c.input_nc, 3),
            "output_nc" => int(c.output_nc, 3),
            "direction" => r.direction.to_string(),
            "phase" => r.phase.clone(),
            "epoch" => r.epoch.clone(),
            "load_iter" => r.load_iter.to_string(),
            "num_test" => r.num_test.to_string(),
            "eval" => py_bool(cli.eval),
            "preprocess" => cli.preprocess.unwrap_or_default().to_string(),
            "load_size" => cli.load_size.to_string(),
            "crop_size" => cli.crop_size.to_string(),
            // As given: test.py forces them only after the suffix is applied.
            "no_flip" => py_bool(c.no_flip),
            "serial_batches" => py_bool(c.serial_batches),
            "batch_size" => int(c.batch_size, 1),
            "num_threads" => int(c.num_threads, 4),
            "max_dataset_size" => r.max_dataset_size.map_or("inf".into(), |n| n.to_string()),
            "aspect_ratio" => py_float(r.aspect_ratio),
            "display_winsize" => r.display_winsize.to_string(),
            "verbose" => py_bool(c.verbose),
            "use_wandb" => py_bool(c.use_wandb),
            "suffix" => r.suffix.clone(),
            _ => return None,
        })
    };
    let suffix = expand_suffix(&r.suffix, value, &SUFFIX_OPTIONS)?;
    Ok(format!("{}_{suffix}", r.name))
}

fn main() -> std::process::ExitCode {
    cyclegan_layers::ops::configure_allocator();
    cyclegan_layers::ops::configure_threads();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(cyclegan_layers::device::log_colours())
        .init();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let form = form(&cli, &matches)
        .unwrap_or_else(|(kind, message)| Cli::command().error(kind, message).exit());
    match run(cli, form) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = cyclegan_layers::device::error_text(e.as_ref());
            eprintln!("error: {message}");
            if cyclegan_layers::device::is_out_of_memory(&message) {
                eprintln!(
                    "hint: the GPU ran out of memory; large images fit when resized first (--preprocess scale_width --load_size N), or on the CPU"
                );
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// Which of the two command lines was given.
enum Form {
    /// `--checkpoint G --input DIR --output DIR`.
    Checkpoint {
        checkpoint: PathBuf,
        input: PathBuf,
        output: PathBuf,
    },
    /// The reference's `test.py` options, from `--dataroot`.
    TestPy(PathBuf),
}

/// Tells the two forms apart, refusing a mixture of them: the options under [`REFERENCE`]
/// mean nothing to the --checkpoint form, and --checkpoint/--input/--output bypass the
/// reference's layout.
fn form(cli: &Cli, matches: &ArgMatches) -> Result<Form, (ErrorKind, String)> {
    let own = [
        ("checkpoint", &cli.checkpoint),
        ("input", &cli.input),
        ("output", &cli.output),
    ];
    if let Some(dataroot) = &cli.reference.dataroot {
        let given: Vec<String> = own
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(id, _)| format!("--{id}"))
            .collect();
        if !given.is_empty() {
            return Err((
                ErrorKind::ArgumentConflict,
                format!(
                    "{} cannot be used with --dataroot: pass either --checkpoint G --input DIR --output DIR (one checkpoint, one folder), or the reference's test.py options --dataroot DIR --name NAME (checkpoints from --checkpoints_dir/NAME, results into --results_dir/NAME)",
                    given.join(", ")
                ),
            ));
        }
        return Ok(Form::TestPy(dataroot.clone()));
    }
    let command = Cli::command();
    let reference_given: Vec<String> = command
        .get_arguments()
        .filter(|a| a.get_help_heading() == Some(REFERENCE))
        .filter(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    if !reference_given.is_empty() {
        let (list, verb) = match reference_given.as_slice() {
            [one] => (one.clone(), "is an option"),
            many => (many.join(", "), "are options"),
        };
        return Err((
            ErrorKind::MissingRequiredArgument,
            format!(
                "{list} {verb} of the reference's test.py form, which starts with --dataroot DIR: add it (and drop --checkpoint/--input/--output), or leave {list} out"
            ),
        ));
    }
    match (&cli.checkpoint, &cli.input, &cli.output) {
        (Some(checkpoint), Some(input), Some(output)) => Ok(Form::Checkpoint {
            checkpoint: checkpoint.clone(),
            input: input.clone(),
            output: output.clone(),
        }),
        (None, None, None) => Err((
            ErrorKind::MissingRequiredArgument,
            "pass --checkpoint G.safetensors --input DIR --output DIR, or the reference's test.py options --dataroot DIR --name NAME".into(),
        )),
        _ => {
            let missing: Vec<String> = own
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(id, _)| format!("--{id}"))
                .collect();
            Err((
                ErrorKind::MissingRequiredArgument,
                format!(
                    "the --checkpoint form also needs {} (or use the reference's --dataroot form)",
                    missing.join(" and ")
                ),
            ))
        }
    }
}

fn run(cli: Cli, form: Form) -> anyhow::Result<()> {
    let spec = match (&cli.device, &cli.gpu_ids) {
        (Some(device), _) => device.clone(),
        (None, Some(ids)) => {
            cyclegan_layers::device::device_from_gpu_ids(ids).map_err(anyhow::Error::msg)?
        }
        (None, None) => "cpu".into(),
    };
    let device = cyclegan_layers::device::parse_device(&spec).map_err(anyhow::Error::msg)?;
    cyclegan_layers::ops::set_cuda_tf32(!cli.no_tf32);
    cyclegan_layers::ops::set_cuda_channels_last(cli.channels_last);
    // Timed from the first image read (the checkpoint form), or the checkpoints' (test.py's).
    let mut start = std::time::Instant::now();
    let (count, skipped, index) = match form {
        Form::Checkpoint {
            checkpoint,
            input,
            output,
        } => {
            let translator = Translator::load(&checkpoint, &device)?.with_eval(cli.eval);
            let resize = match cli.preprocess {
                None => Resize::Native,
                Some(preprocess) => Resize::Reference(DataOptions {
                    phase: "test".into(),
                    preprocess,
                    load_size: cli.load_size,
                    crop_size: cli.crop_size,
                    ..DataOptions::default()
                }),
            };
            let opts = TranslateOptions {
                input,
                output,
                resize,
                progress: true,
            };
            start = std::time::Instant::now();
            let summary = translate_files(&translator, &opts)?;
            (
                summary.translated.len(),
                summary.skipped.len(),
                summary.index,
            )
        }
        Form::TestPy(dataroot) => {
            let name = suffixed_name(&cli).map_err(anyhow::Error::msg)?;
            if name != cli.reference.name {
                tracing::info!("--suffix '{}' names the run {name}", cli.reference.suffix);
            }
            let r = cli.reference;
            let c = &cli.compat;
            let stated = [
                ("--netG", c.net_g.clone()),
                ("--ngf", c.ngf.map(|n| n.to_string())),
                ("--norm", c.norm.clone()),
            ]
            .into_iter()
            .filter_map(|(flag, value)| Some((flag.to_string(), value?)))
            .collect();
            let opts = TestOptions {
                stated,
                dataroot,
                name,
                checkpoints_dir: r.checkpoints_dir,
                results_dir: r.results_dir,
                model: r.model,
                model_suffix: r.model_suffix,
                epoch: r.epoch,
                load_iter: r.load_iter,
                num_test: r.num_test,
                eval: cli.eval,
                aspect_ratio: r.aspect_ratio,
                display_winsize: r.display_winsize,
                data: DataOptions {
                    phase: r.phase,
                    direction: r.direction,
                    preprocess: cli.preprocess.unwrap_or_default(),
                    load_size: cli.load_size,
                    crop_size: cli.crop_size,
                    max_dataset_size: r.max_dataset_size,
                    ..DataOptions::reference_test()
                },
                progress: true,
            };
            let summary = run_test(&opts, &device)?;
            (summary.samples.len(), summary.skipped.len(), summary.index)
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    tracing::info!(
        "translated {count} image(s) in {seconds:.2} s ({:.1} per second), skipped {skipped}; open {}",
        count as f64 / seconds,
        index.display()
    );
    // The others are written, but a script must see that the folder was not translated whole.
    if skipped > 0 {
        anyhow::bail!(
            "{skipped} image(s) could not be read and were skipped (named in the warnings above); the other {count} were translated: fix or remove the unreadable files and run again"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(args: &[&str]) -> Result<String, String> {
        let base = [
            "cyclegan-translate",
            "--dataroot",
            "d/testA",
            "--name",
            "run",
        ];
        suffixed_name(&Cli::try_parse_from(base.iter().chain(args)).unwrap())
    }

    #[test]
    fn a_suffix_extends_the_name_as_test_py_does() {
        // The audit's command line: checkpoints from ck2/ref_snake_resnet_6blocks.
        let cli = Cli::try_parse_from([
            "cyclegan-translate",
            "--dataroot",
            "d/testA",
            "--name",
            "ref_snake",
            "--suffix",
            "{netG}",
            "--netG",
            "resnet_6blocks",
            "--model_suffix",
            "_A",
            "--checkpoints_dir",
            "ck2",
            "--model",
            "test",
        ])
        .unwrap();
        assert_eq!(suffixed_name(&cli).unwrap(), "ref_snake_resnet_6blocks");
        // test.py's defaults, which are not training's (load_size 256, model test).
        assert_eq!(
            name(&[
                "--suffix",
                "{model}_{netG}_size{load_size}_{no_dropout}_{dataset_mode}"
            ])
            .unwrap(),
            "run_test_resnet_9blocks_size256_False_single"
        );
        assert_eq!(
            name(&[
                "--suffix",
                "{model}_{no_dropout}_{dataset_mode}_{init_gain}_{max_dataset_size}",
                "--model",
                "cycle_gan"
            ])
            .unwrap(),
            "run_cycle_gan_True_unaligned_0.02_inf"
        );
        // An empty suffix changes nothing, as in the reference.
        assert_eq!(name(&["--suffix", ""]).unwrap(), "run");
        assert_eq!(name(&[]).unwrap(), "run");
    }

    #[test]
    fn every_listed_suffix_option_has_a_value() {
        for key in SUFFIX_OPTIONS {
            let template = format!("{{{key}}}");
            assert!(
                name(&["--suffix", &template]).is_ok(),
                "{key} is listed but has no value"
            );
        }
    }

    /// test.py's base options that name a discriminator or wandb are accepted too (its command
    /// lines are often the training ones with train.py swapped for test.py).
    #[test]
    fn training_options_test_py_also_parses_are_accepted() {
        let parsed = Cli::try_parse_from([
            "cyclegan-translate",
            "--dataroot",
            "d",
            "--n_layers_D",
            "4",
            "--wandb_project_name",
            "p",
        ]);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        assert_eq!(
            name(&["--n_layers_D", "4", "--suffix", "{n_layers_D}"]).unwrap(),
            "run_4"
        );
    }

    #[test]
    fn a_wrong_suffix_is_a_clear_error() {
        let err = name(&["--suffix", "{lambda_A}"]).unwrap_err();
        assert!(
            err.contains("no option 'lambda_A'") && err.contains("netG"),
            "{err}"
        );
        let err = name(&["--suffix", "size{load_size"]).unwrap_err();
        assert!(err.contains("without its"), "{err}");
    }
}
