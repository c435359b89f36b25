//! The reference's `test.py`: its checkpoint and result layout, `--model test` and
//! `--model cycle_gan` (the `--dataroot` form of `cyclegan-translate`).

use candle_core::{Device, Tensor};
use cyclegan_data::{DataError, DataOptions, Dataset, Direction, SingleDataset, UnalignedDataset};
use cyclegan_models::NetworkConfig;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::run::{file_stem, run_samples, Samples};
use crate::{TranslateError, Translator};

/// The reference's `--model`: which generators run and what each sample shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TestModel {
    /// One generator, `G{model_suffix}`, over every image under `dataroot`: each sample shows
    /// `real` and `fake` (the reference's `TestModel` with `--dataset_mode single`).
    #[default]
    Test,
    /// `G_A` and `G_B` over `{phase}A` and `{phase}B`: each sample shows `real_A`, `fake_B`,
    /// `rec_A`, `real_B`, `fake_A`, `rec_B` (the reference's `CycleGANModel` at test time).
    CycleGan,
}

impl fmt::Display for TestModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TestModel::Test => "test",
            TestModel::CycleGan => "cycle_gan",
        })
    }
}

impl FromStr for TestModel {
    type Err = cyclegan_layers::ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "test" => Ok(TestModel::Test),
            "cycle_gan" => Ok(TestModel::CycleGan),
            _ => Err(cyclegan_layers::ParseNameError::new(format!(
                "this toolkit runs CycleGAN generators only: use --model test (one generator, \
                 latest_net_G{{model_suffix}}) or --model cycle_gan (latest_net_G_A and G_B); \
                 the reference's other models ({s}) need its own test.py"
            ))),
        }
    }
}

/// The reference's `test.py` options that matter here; [`Default`] gives its defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TestOptions {
    /// `--dataroot`: the images (`--model test`, searched recursively) or the folder holding
    /// `{phase}A` and `{phase}B` (`--model cycle_gan`).
    pub dataroot: PathBuf,
    /// `--name`: the run, a folder of `checkpoints_dir` and of `results_dir`.
    pub name: String,
    /// `--checkpoints_dir` (`./checkpoints`).
    pub checkpoints_dir: PathBuf,
    /// `--results_dir` (`./results/`).
    pub results_dir: PathBuf,
    /// `--model`.
    pub model: TestModel,
    /// `--model_suffix` (`--model test` only): reads `..._net_G{suffix}`, e.g. `_A`.
    pub model_suffix: String,
    /// `--epoch` (`latest`): the checkpoints' prefix, and part of the result folder's name.
    pub epoch: String,
    /// `--load_iter`: above 0, reads `iter_{load_iter}_net_*` instead of `--epoch`'s.
    pub load_iter: u32,
    /// `--num_test` (50): translate the first this many samples only.
    pub num_test: usize,
    /// `--eval`: batch norm with its running statistics, no dropout.
    pub eval: bool,
    /// `--aspect_ratio` (1.0): resizes the saved images as the reference does.
    pub aspect_ratio: f64,
    /// `--display_winsize` (256): the width of the page's images.
    pub display_winsize: u32,
    /// `--phase`, `--direction`, `--preprocess`, `--load_size`, `--crop_size`,
    /// `--max_dataset_size`. Flips are off and pairing serial whatever they say (as `test.py`
    /// forces), and the channels are the checkpoints'.
    pub data: DataOptions,
    /// Show a progress bar.
    pub progress: bool,
    /// Architecture options given on the command line, as (flag, value): `--netG`, `--ngf`,
    /// `--norm`. The checkpoints decide the architecture; a warning names any that differ.
    pub stated: Vec<(String, String)>,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            dataroot: PathBuf::new(),
            name: "experiment_name".into(),
            checkpoints_dir: "./checkpoints".into(),
            results_dir: "./results/".into(),
            model: TestModel::Test,
            model_suffix: String::new(),
            epoch: "latest".into(),
            load_iter: 0,
            num_test: 50,
            eval: false,
            aspect_ratio: 1.0,
            display_winsize: 256,
            data: DataOptions::reference_test(),
            progress: false,
            stated: Vec::new(),
        }
    }
}

impl TestOptions {
    /// The result folder, `{results_dir}/{name}/{phase}_{epoch}`, with `_iter{load_iter}`
    /// when `load_iter` > 0: receives `index.html` and `images/`.
    pub fn web_dir(&self) -> PathBuf {
        let mut leaf = format!("{}_{}", self.data.phase, self.epoch);
        if self.load_iter > 0 {
            leaf.push_str(&format!("_iter{}", self.load_iter));
        }
        self.results_dir.join(&self.name).join(leaf)
    }

    /// The networks the model reads: `G{model_suffix}`, or `G_A` and `G_B`.
    fn networks(&self) -> Vec<String> {
        match self.model {
            TestModel::Test => vec![format!("G{}", self.model_suffix)],
            TestModel::CycleGan => vec!["G_A".into(), "G_B".into()],
        }
    }

    /// The run's folder of checkpoints, `{checkpoints_dir}/{name}`.
    fn run_dir(&self) -> PathBuf {
        self.checkpoints_dir.join(&self.name)
    }

    /// The file of network `net`: `{label}_net_{net}.safetensors` (what cyclegan-train writes),
    /// else `.pth` (the reference's), with `label` `iter_{load_iter}` or the epoch.
    fn find_checkpoint(&self, net: &str) -> Result<PathBuf, TranslateError> {
        let label = cyclegan_checkpoint::checkpoint_label(&self.epoch, self.load_iter.into());
        cyclegan_checkpoint::find_network(&self.run_dir(), &label, net).map_err(|tried| {
            TranslateError::MissingCheckpoint {
                network: net.to_string(),
                tried: tried.to_vec(),
                hint: self.missing_checkpoint_hint(),
            }
        })
    }

    /// What to pass instead, from what the run folder holds.
    fn missing_checkpoint_hint(&self) -> String {
        let dir = self.run_dir();
        let pretrained = "the reference's pretrained models are fetched with `cargo xtask fetch-model NAME` (into checkpoints/NAME_pretrained: then --name NAME_pretrained --model test)";
        if !dir.is_dir() {
            return format!(
                "{} is not a folder: pass the run's --name (a folder of --checkpoints_dir, now {}) or another --checkpoints_dir; {pretrained}",
                dir.display(),
                self.checkpoints_dir.display()
            );
        }
        let mut generators: Vec<String> = cyclegan_checkpoint::saved_networks(&dir)
            .into_iter()
            .filter(|n| n.name.starts_with('G'))
            .map(|n| {
                n.path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        if generators.is_empty() {
            return format!(
                "{} holds no generator checkpoint (*_net_G*.safetensors or .pth); {pretrained}",
                dir.display()
            );
        }
        const SHOWN: usize = 8;
        let more = generators.len().saturating_sub(SHOWN);
        generators.truncate(SHOWN);
        let pick = match self.model {
            TestModel::Test => "--model_suffix (_A for latest_net_G_A)",
            TestModel::CycleGan => {
                "--model cycle_gan needs both G_A and G_B (--model test --model_suffix _A runs G_A alone)"
            }
        };
        format!(
            "{} holds {}{}: pick one with --epoch (the part before _net_; iter_N is --load_iter N); {pick}; {pretrained}",
            dir.display(),
            generators.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )
    }

    fn validate(&self) -> Result<(), TranslateError> {
        let bad = |m: String| Err(TranslateError::InvalidOptions(m));
        if self.model == TestModel::CycleGan && !self.model_suffix.is_empty() {
            return bad(format!(
                "--model_suffix {} applies to --model test only; --model cycle_gan reads G_A and G_B",
                self.model_suffix
            ));
        }
        if self.num_test == 0 {
            return bad("--num_test 0 translates nothing: pass 1 or more".into());
        }
        if !(self.aspect_ratio.is_finite() && self.aspect_ratio > 0.0) {
            return bad(format!(
                "--aspect_ratio {} must be a positive number (1.0 keeps the images as they are)",
                self.aspect_ratio
            ));
        }
        Ok(())
    }
}

/// What [`run_test`] did.
#[derive(Debug, Clone, Default)]
pub struct TestSummary {
    /// The checkpoints read, one per network (`G{suffix}`, or `G_A` then `G_B`).
    pub checkpoints: Vec<PathBuf>,
    /// For each translated sample, in order: the file it is named after (`real_A`'s with
    /// `cycle_gan`) and the images written, in the page's order.
    pub samples: Vec<(PathBuf, Vec<PathBuf>)>,
    /// Samples whose images could not be read, with the reason (skipped with a warning).
    pub skipped: Vec<(PathBuf, String)>,
    /// The result page, [`TestOptions::web_dir`]`/index.html`.
    pub index: PathBuf,
}

/// Runs the reference's `test.py` with these options: reads the run's checkpoints from
/// `{checkpoints_dir}/{name}`, translates the first `num_test` samples of `dataroot` and
/// writes `images/{stem}_{label}.png` and `index.html` into [`TestOptions::web_dir`].
/// Unreadable images are skipped with a warning.
pub fn run_test(opts: &TestOptions, device: &Device) -> Result<TestSummary, TranslateError> {
    opts.validate()?;
    let networks = opts.networks();
    let checkpoints = networks
        .iter()
        .map(|net| opts.find_checkpoint(net))
        .collect::<Result<Vec<_>, _>>()?;
    let mut translators = Vec::new();
    for (net, path) in networks.iter().zip(&checkpoints) {
        let translator = Translator::load(path, device)?.with_eval(opts.eval);
        tracing::info!(
            "{net}: {} ({})",
            path.display(),
            cyclegan_checkpoint::describe_config(&NetworkConfig::Generator(*translator.config()))
        );
        let config = translator.config();
        for (flag, value) in &opts.stated {
            let actual = match flag.as_str() {
                "--netG" => config.arch.to_string(),
                "--ngf" => config.ngf.to_string(),
                "--norm" => config.norm.to_string(),
                _ => continue,
            };
            if *value != actual {
                tracing::warn!(
                    "{flag} {value} differs from {net}'s checkpoint ({actual}): the checkpoint's architecture is used"
                );
            }
        }
        translators.push(translator);
    }
    // As test.py forces them.
    let data = DataOptions {
        no_flip: true,
        serial_batches: true,
        ..opts.data.clone()
    };
    let web_dir = opts.web_dir();
    let images_dir = web_dir.join("images");
    let aspect = opts.aspect_ratio;
    let outcome = match opts.model {
        TestModel::Test => {
            let g = &translators[0];
            let nc = g.config().input_nc;
            // The generator's channels, whatever --direction says (the reference's
            // SingleDataset reads it only to pick input_nc or output_nc).
            let data = DataOptions {
                input_nc: nc,
                output_nc: nc,
                direction: Direction::AtoB,
                ..data
            };
            let dataset = SingleDataset::open(&opts.dataroot, &data)?;
            let inputs = &dataset.paths()[..dataset.len().min(opts.num_test)];
            let load = |i: usize| dataset.load_batch(&[i], 0, 1).map(|b| b.a);
            run_samples(
                Samples {
                    inputs,
                    load: &load,
                    translate: &mut |real: Tensor| {
                        let fake = g.translate(&real)?;
                        Ok(vec![("real", real), ("fake", fake)])
                    },
                    stem: &mut |p: &Path| file_stem(p),
                },
                &images_dir,
                aspect,
                opts.progress,
            )?
        }
        TestModel::CycleGan => {
            let (g_a, g_b) = (&translators[0], &translators[1]);
            let (a, b) = (g_a.config(), g_b.config());
            if (b.input_nc, b.output_nc) != (a.output_nc, a.input_nc) {
                return Err(TranslateError::InvalidOptions(format!(
                    "{} maps {} -> {} channels but {} maps {} -> {}: G_B must map G_A's output back to its input (are they from the same run?)",
                    checkpoints[0].display(),
                    a.input_nc,
                    a.output_nc,
                    checkpoints[1].display(),
                    b.input_nc,
                    b.output_nc
                )));
            }
            let data = DataOptions {
                input_nc: a.input_nc,
                output_nc: a.output_nc,
                ..data
            };
            let dataset = UnalignedDataset::open(&opts.dataroot, &data)?;
            // Sample i pairs A[i % |A|] with B[i % |B|]; it is named after real_A's file.
            let real_a_files = match data.direction {
                Direction::AtoB => dataset.paths_a(),
                Direction::BtoA => dataset.paths_b(),
            };
            let inputs: Vec<PathBuf> = (0..dataset.len().min(opts.num_test))
                .map(|i| real_a_files[i % real_a_files.len()].clone())
                .collect();
            let load = |i: usize| -> Result<_, DataError> {
                let batch = dataset.load_batch(&[i], 0, 1)?;
                Ok((batch.a, batch.b))
            };
            run_samples(
                Samples {
                    inputs: &inputs,
                    load: &load,
                    translate: &mut |(real_a, real_b): (Tensor, Tensor)| {
                        let fake_b = g_a.translate(&real_a)?;
                        let rec_a = g_b.translate(&fake_b)?;
                        let fake_a = g_b.translate(&real_b)?;
                        let rec_b = g_a.translate(&fake_a)?;
                        Ok(vec![
                            ("real_A", real_a),
                            ("fake_B", fake_b),
                            ("rec_A", rec_a),
                            ("real_B", real_b),
                            ("fake_A", fake_a),
                            ("rec_B", rec_b),
                        ])
                    },
                    stem: &mut |p: &Path| file_stem(p),
                },
                &images_dir,
                aspect,
                opts.progress,
            )?
        }
    };
    if outcome.written.is_empty() {
        return Err(TranslateError::NothingTranslated {
            input: opts.dataroot.clone(),
        });
    }
    let title = format!(
        "Experiment = {}, Phase = {}, Epoch = {}",
        opts.name, opts.data.phase, opts.epoch
    );
    let index = crate::html::write_page(&web_dir, &title, &outcome.rows, opts.display_winsize)?;
    Ok(TestSummary {
        checkpoints,
        samples: outcome.written,
        skipped: outcome.skipped,
        index,
    })
}
