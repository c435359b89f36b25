//! The training loop: data, iterations, logs, samples, checkpoints, resumption.

use candle_core::{DType, Device, ModuleT, Tensor};
use cyclegan_data::{Dataset, Loader, LoaderOptions, UnalignedDataset};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use cyclegan_checkpoint::{saved_networks, SavedNetwork};

use crate::error::{Result, TrainError};
use crate::metrics::{PairedTestSet, TestMetrics};
use crate::model::{CycleGan, Losses, NetworkName};
use crate::options::TrainConfig;
use crate::schedule::Schedule;
use crate::set_aside::{self, SetAside};
use crate::state::{self, Progress};
use crate::web::WebPage;

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// The run's folder, `<checkpoints_dir>/<name>`.
    pub run_dir: PathBuf,
    /// Where the run stands at the end: epoch, steps, images and time across all resumes.
    pub progress: Progress,
    /// The losses of the last iteration of this invocation (`None` if it trained none).
    pub last_losses: Option<Losses>,
    /// The test-set measures of the last finished epoch, when the test folders are paired
    /// ([`crate::metrics`]).
    pub last_metrics: Option<TestMetrics>,
    /// The test translations and the sample sheet, when written.
    pub results_dir: Option<PathBuf>,
    /// Whether the run was stopped early by [`train_with_stop`]'s flag.
    pub interrupted: bool,
}

/// One line of `loss_log.jsonl`.
#[derive(Serialize)]
struct LossRecord<'a> {
    epoch: usize,
    epoch_iter: usize,
    iteration: u64,
    images: u64,
    losses: &'a Losses,
    lr: f64,
    seconds: f64,
}

/// One line of `metrics.jsonl`.
#[derive(Serialize)]
struct MetricsRecord<'a> {
    epoch: usize,
    iteration: u64,
    #[serde(flatten)]
    metrics: &'a TestMetrics,
}

/// Appends one line to `path`.
fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(TrainError::io(format!("cannot open {}", path.display())))?;
    writeln!(file, "{line}").map_err(TrainError::io(format!(
        "cannot write to {}",
        path.display()
    )))
}

/// Appends one JSON line to `path`.
fn append_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(value).expect("log records serialise");
    append_line(path, &line)
}

/// Reads `(images, losses)` back from a loss log, for the plot of a resumed run.
fn read_loss_log(path: &Path) -> Vec<(u64, Losses)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|v| {
            Some((
                v["images"].as_u64()?,
                serde_json::from_value(v["losses"].clone()).ok()?,
            ))
        })
        .collect()
}

/// Makes way for a new run (no `--continue-train`) in `run_dir`. A folder that already holds a
/// run is refused, so that its checkpoints are not overwritten by mistake, unless `--overwrite`
/// says to start over, or it holds the embedded preset's run with the same options (which
/// this run writes again: runs are deterministic), or only the loss logs of a run that saved
/// nothing (nothing to continue). Starting over sets the previous run's
/// checkpoints, logs and page aside (a reference `.pth` is left alone), which would otherwise
/// mix with the new run's: they are deleted at this run's first checkpoint, and put back if it
/// stops before ([`SetAside`]).
fn prepare_new_run(run_dir: &Path, config: &TrainConfig) -> Result<Option<SetAside>> {
    let networks = saved_networks(run_dir);
    let records = set_aside::run_records(run_dir);
    if networks.is_empty() && records.is_empty() {
        return Ok(None);
    }
    let rerun_of_preset = config.embedded
        && std::fs::read_to_string(run_dir.join("options.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<TrainConfig>(&text).ok())
            .is_some_and(|saved| config.same_run_as(&saved));
    let names = || {
        records
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !config.overwrite && !rerun_of_preset {
        if networks.is_empty() {
            // Only loss logs: a run that stopped before its first save and before its first
            // epoch's end (say, on a bad image). Nothing to continue, so it is started over as
            // `--overwrite` would, its logs put back if this run too stops before saving. A
            // training state or test measures without networks (networks moved away, or a run
            // that finished epochs between saves) are not deleted unasked.
            let only_loss_logs = records.iter().all(|p| {
                p.file_name()
                    .is_some_and(|n| n == "loss_log.txt" || n == "loss_log.jsonl")
            });
            if !only_loss_logs {
                return Err(TrainError::RunFolder(format!(
                    "{} holds a run's records but no networks ({}): pass --overwrite to start it over (they are deleted), or another --name",
                    run_dir.display(),
                    names()
                )));
            }
            tracing::warn!(
                "{} holds the logs of a run that saved no networks ({}): nothing to continue, so it is started over",
                run_dir.display(),
                names()
            );
        } else {
            let saved = saved_labels(&networks);
            let holds = if saved.is_empty() {
                format!("{} file(s) of a run", networks.len() + records.len())
            } else {
                format!("the networks {}", saved.join(", "))
            };
            return Err(TrainError::RunFolder(format!(
                "{} already holds a run ({holds}): pass --continue-train to continue it, --overwrite to start it over (its checkpoints and logs are deleted), or another --name",
                run_dir.display()
            )));
        }
    }
    tracing::info!(
        "starting {} over: the previous run's checkpoints, logs and page are set aside, and deleted once this run saves its first checkpoint (put back if it stops before)",
        run_dir.display()
    );
    Ok(Some(SetAside::new(
        run_dir,
        &set_aside::run_files(run_dir),
    )?))
}

/// The labels (`latest`, `5`, `iter_5000`, ...) of `networks` ([`saved_networks`]' list of a
/// run folder), from their `G_A` files, in that list's order.
fn saved_labels(networks: &[SavedNetwork]) -> Vec<String> {
    let mut labels: Vec<String> = networks
        .iter()
        .filter(|n| n.name == "G_A")
        .map(|n| n.label.clone())
        .collect();
    labels.dedup();
    labels
}

/// The reference's line of losses (its console and `loss_log.txt`): the epoch, the images seen
/// in it, the computation time per image and the time waited for data, then each loss.
fn loss_line(epoch: usize, images: usize, seconds: f64, data: f64, losses: &Losses) -> String {
    let mut line =
        format!("(epoch: {epoch}, iters: {images}, time: {seconds:.3}, data: {data:.3}) ");
    for (name, value) in losses.named() {
        line.push_str(&format!("{name}: {value:.3} "));
    }
    line
}

/// Logs each network's parameter count as the reference prints it, and with `verbose` each
/// parameter's name and shape.
fn log_networks(model: &CycleGan, verbose: bool) {
    let networks = [
        ("G_A", model.parameters(NetworkName::GA)),
        ("G_B", model.parameters(NetworkName::GB)),
        ("D_A", model.parameters(NetworkName::DA)),
        ("D_B", model.parameters(NetworkName::DB)),
    ];
    for (name, parameters) in networks {
        if verbose {
            for (key, var) in &parameters {
                tracing::info!("[Network {name}] {key} {:?}", var.dims());
            }
        }
        let count: usize = parameters.iter().map(|(_, v)| v.elem_count()).sum();
        tracing::info!(
            "[Network {name}] Total number of parameters : {:.3} M",
            count as f64 / 1e6
        );
    }
}

/// Whether a running count crossed a multiple of `freq` when it went from `before` to `after`
/// (the reference tests `total_iters % freq == 0`, which batch sizes that do not divide `freq`
/// would skip).
fn crossed(before: u64, after: u64, freq: usize) -> bool {
    let freq = freq.max(1) as u64;
    after / freq > before / freq
}

/// The `latest` checkpoint, written at most once per step: the end of an epoch, the
/// `--save-latest-freq` boundary, `--max-steps` and the end of the run can fall on the same step.
/// The run's options files go with it, so that a continued run's options change on disk
/// together with the networks trained under them.
struct LatestCheckpoint {
    saved_at_step: Option<u64>,
    /// File name and contents of each options file.
    records: Vec<(&'static str, Vec<u8>)>,
    /// The files of the run this one starts over, deleted at its first checkpoint.
    set_aside: Option<SetAside>,
}

impl LatestCheckpoint {
    /// Saves the latest checkpoint unless it already holds this step; true when it wrote.
    fn save(
        &mut self,
        run_dir: &Path,
        model: &CycleGan,
        progress: &Progress,
        schedule: &Schedule,
        seed: u64,
    ) -> Result<bool> {
        if self.saved_at_step == Some(progress.total_steps) {
            return Ok(false);
        }
        let records: Vec<(&str, &[u8])> = self
            .records
            .iter()
            .map(|(name, bytes)| (*name, bytes.as_slice()))
            .collect();
        state::save(
            run_dir,
            "latest",
            model,
            Some((progress, schedule, seed)),
            &records,
        )?;
        self.saved_at_step = Some(progress.total_steps);
        if let Some(set_aside) = self.set_aside.take() {
            set_aside.discard();
        }
        Ok(true)
    }
}

/// Settles what an interrupted run left in `run_dir`, with a warning for each: checkpoints
/// whose saving was cut off (completed if all their files were written, else dropped, the
/// previous ones staying), and the files of a run that `--overwrite` was starting over (put
/// back if the new run saved no checkpoint). [`train`] does it first; call it before reading
/// a run folder's files yourself (the trainer's binary reads `options.json` to continue a run).
pub fn recover_interrupted(run_dir: &Path) -> Result<()> {
    // Checkpoints whose writing was interrupted: completed if all their files were written,
    // else dropped (the previous ones are then still in place).
    for recovered in cyclegan_checkpoint::recover_file_sets(run_dir).map_err(TrainError::io(
        format!("cannot finish an interrupted save in {}", run_dir.display()),
    ))? {
        match recovered {
            cyclegan_checkpoint::Recovered::Completed(label) => tracing::warn!(
                "the '{label}' checkpoint in {} was interrupted after all its files were written: put them in place",
                run_dir.display()
            ),
            cyclegan_checkpoint::Recovered::Discarded(label) => tracing::warn!(
                "the '{label}' checkpoint in {} was interrupted while being written: kept the previous one",
                run_dir.display()
            ),
        }
    }
    if let Some(done) = set_aside::recover(run_dir)? {
        tracing::warn!("{}: {done}", run_dir.display());
    }
    Ok(())
}

/// Locks `run_dir` against other training runs for as long as the returned handle (or a clone)
/// lives: two runs writing one folder would mix their checkpoints, and one's recovery of
/// interrupted saves would take the other's saves in progress for leftovers
/// ([`TrainError::RunInUse`] when another process holds it). [`train`] takes it itself; the
/// same process may take it again (the trainer's binary holds it while it reads the options of
/// a run it continues). `None` where the file system cannot lock files (the run then goes on
/// unlocked, with a warning).
pub fn lock_run(run_dir: &Path) -> Result<Option<cyclegan_checkpoint::FolderLock>> {
    let lock_file = run_dir.join(".lock");
    match cyclegan_checkpoint::FolderLock::acquire(&lock_file, "cyclegan-train") {
        Ok(lock) => Ok(Some(lock)),
        Err(cyclegan_checkpoint::LockError::Busy { holder, .. }) => Err(TrainError::RunInUse {
            run_dir: run_dir.to_path_buf(),
            holder: holder.unwrap_or_else(|| format!("it holds {}", lock_file.display())),
        }),
        Err(cyclegan_checkpoint::LockError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::Unsupported =>
        {
            tracing::warn!(
                "{}: this file system cannot lock files, so nothing keeps a second run out of this folder",
                run_dir.display()
            );
            Ok(None)
        }
        Err(cyclegan_checkpoint::LockError::Io { source, .. }) => Err(TrainError::Io {
            context: format!("cannot lock the run folder {}", run_dir.display()),
            source,
        }),
    }
}

/// Runs training as `config` describes, from scratch or resuming.
pub fn train(config: &TrainConfig, progress_bar: Option<&ProgressBar>) -> Result<TrainReport> {
    train_with_stop(config, progress_bar, &AtomicBool::new(false))
}

/// [`train`], stopped early once `stop` is set (say, from a Ctrl-C handler): it is read after
/// each iteration, and then the latest checkpoint is saved as at `--max-steps`, so that
/// `--continue-train` goes on from there; the test set is not translated, and the report says
/// `interrupted`.
pub fn train_with_stop(
    config: &TrainConfig,
    progress_bar: Option<&ProgressBar>,
    stop: &AtomicBool,
) -> Result<TrainReport> {
    let device =
        cyclegan_layers::device::parse_device(&config.device).map_err(TrainError::Options)?;
    cyclegan_layers::ops::set_cuda_tf32(config.tf32);
    cyclegan_layers::ops::set_cudnn_benchmark(config.cudnn_benchmark);
    cyclegan_layers::ops::set_cuda_deterministic(config.deterministic);
    cyclegan_layers::ops::set_cuda_channels_last(config.channels_last);
    let run_dir = config.run_dir();
    if config.translate_test {
        // Found now rather than after training: a results path that cannot become a folder.
        let out = config.results_dir.join(&config.name).join("test_latest");
        if let Some(file) = out.ancestors().find(|p| p.exists() && !p.is_dir()) {
            return Err(TrainError::Options(format!(
                "{} is a file, where the test set's translations go ({}): pass another --results-dir",
                file.display(),
                out.display()
            )));
        }
    }
    if config.continue_train && !run_dir.is_dir() {
        return Err(TrainError::RunFolder(format!(
            "--continue-train: {} does not exist; check --name and --checkpoints-dir, or start a new run without --continue-train",
            run_dir.display()
        )));
    }
    let _run_lock = lock_run(&run_dir)?;
    if config.embedded {
        // The built-in copy, also where a continued run recorded it (a cache cleared since, or
        // another cache folder now); a copy of another build's data cannot be made again.
        let name = config.dataroot.file_name().unwrap_or_default();
        if name == crate::embedded::unpacked_name().as_str() {
            if crate::embedded::unpack_to(&config.dataroot)? {
                tracing::info!(
                    "unpacked the built-in emoji64 dataset to {}",
                    config.dataroot.display()
                );
            }
        } else if name.to_string_lossy().starts_with("emoji64-") && !config.dataroot.is_dir() {
            return Err(TrainError::Options(format!(
                "{} is gone: it held the built-in dataset of another cyclegan-train build, which this one cannot unpack; continue with --dataroot pointing at a copy of that data (data/emoji64 of the repository it was built from)",
                config.dataroot.display()
            )));
        }
    }
    let dataset = UnalignedDataset::open(&config.dataroot, &config.data)?;
    tracing::info!(
        "dataset {}: {} A and {} B images, {} per epoch",
        config.dataroot.display(),
        dataset.paths_a().len(),
        dataset.paths_b().len(),
        dataset.len()
    );

    let mut model = CycleGan::new(config.model, &device, DType::F32, config.seed)?;
    let mut progress = Progress {
        epoch: config.schedule.epoch_count,
        epoch_iter: 0,
        total_steps: 0,
        total_images: 0,
        seconds: 0.0,
        dataset_len: Some(dataset.len()),
        batch_size: Some(config.batch_size),
    };
    let mut schedule = Schedule::default();
    let mut seed = config.seed;
    recover_interrupted(&run_dir)?;
    let set_aside = if config.continue_train {
        let label = config.load_label();
        let loaded = state::load_networks(&run_dir, &label, &model)?;
        if loaded == 0 {
            let saved = saved_labels(&saved_networks(&run_dir));
            return Err(TrainError::RunFolder(format!(
                "--continue-train: no {label}_net_*.safetensors (or .pth) in {}; {}",
                run_dir.display(),
                if saved.is_empty() {
                    "it holds no networks".to_string()
                } else {
                    format!(
                        "it holds {} (pick one with --epoch, or --load-iter for iter_N)",
                        saved.join(", ")
                    )
                }
            )));
        }
        match state::load_state(&run_dir, &label, &mut model)? {
            Some((p, s, saved_seed)) => {
                tracing::info!(
                    "resuming {} at epoch {}, iteration {} of the epoch ({} steps done)",
                    run_dir.display(),
                    p.epoch,
                    p.epoch_iter,
                    p.total_steps
                );
                progress = p;
                schedule = s;
                seed = saved_seed;
            }
            None => {
                tracing::info!(
                    "no training state for '{label}': continuing from epoch {} with fresh optimisers",
                    config.schedule.epoch_count
                );
                // As in the reference, the run then saves over its own later checkpoints.
                let others: Vec<String> = saved_labels(&saved_networks(&run_dir))
                    .into_iter()
                    .filter(|other| *other != label)
                    .collect();
                if !others.is_empty() {
                    tracing::warn!(
                        "{} also holds the networks {}: this run saves over 'latest' and over each numbered epoch it reaches{}",
                        run_dir.display(),
                        others.join(", "),
                        match label.parse::<usize>() {
                            Ok(n) if config.schedule.epoch_count <= n => format!(
                                "; to number its epochs on from {label}, pass --epoch-count {}",
                                n + 1
                            ),
                            _ => String::new(),
                        }
                    );
                }
            }
        }
        None
    } else {
        prepare_new_run(&run_dir, config)?
    };
    model.set_lr(schedule.lr(&config.schedule));
    std::fs::create_dir_all(&run_dir).map_err(TrainError::io(format!(
        "cannot create {}",
        run_dir.display()
    )))?;
    let options_files = vec![
        (
            "options.json",
            serde_json::to_string_pretty(config)
                .expect("options serialise")
                .into_bytes(),
        ),
        ("train_opt.txt", config.describe().into_bytes()),
    ];
    if !config.continue_train {
        // A new run records its options at once; a continued run's stay as they are until its
        // first checkpoint, which writes them with the networks (so a continue that fails
        // before training anything, say on a mistyped --dataroot, changes nothing on disk).
        for (name, bytes) in &options_files {
            let path = run_dir.join(name);
            cyclegan_checkpoint::write_atomic(&path, |f| f.write_all(bytes))
                .map_err(TrainError::io(format!("cannot write {}", path.display())))?;
        }
    }

    // States saved before the batch size was recorded: the run's options.json has it (a
    // continued run rewrites that file only with its first checkpoint, beside the state).
    let saved_batch = progress.batch_size.or_else(|| {
        let text = std::fs::read_to_string(run_dir.join("options.json")).ok()?;
        let options: serde_json::Value = serde_json::from_str(&text).ok()?;
        options["batch_size"].as_u64().map(|b| b as usize)
    });
    if let Some(saved) =
        saved_batch.filter(|&saved| saved != config.batch_size && progress.epoch_iter > 0)
    {
        // The epoch's order does not depend on the batch size: the same image, rounded down
        // to a whole batch of the new size.
        let images = progress.epoch_iter * saved;
        progress.epoch_iter = images / config.batch_size.max(1);
        let again = images - progress.epoch_iter * config.batch_size.max(1);
        tracing::warn!(
            "batch size {} where this run was saved with {saved}: epoch {} had trained on {images} images, and goes on at batch {} of the new size{}",
            config.batch_size,
            progress.epoch,
            progress.epoch_iter,
            match again {
                0 => String::new(),
                1 => " (its last image is trained on again)".to_string(),
                n => format!(" (its last {n} images are trained on again)"),
            }
        );
    }
    progress.batch_size = Some(config.batch_size);
    let batches = dataset.len().div_ceil(config.batch_size.max(1));
    let resized = progress.dataset_len.filter(|&saved| saved != dataset.len());
    if progress.epoch_iter >= batches {
        return Err(TrainError::RunFolder(match resized {
            Some(saved) => format!(
                "{} now has {} items per epoch, {saved} when this run was saved: it stopped at batch {} of epoch {}, past the end of the smaller epoch ({batches} batches); restore the images, or continue from an end-of-epoch checkpoint (--epoch N)",
                config.dataroot.display(),
                dataset.len(),
                progress.epoch_iter,
                progress.epoch
            ),
            // A state of an older version over images that changed since (it recorded no
            // dataset size), or without its options.json.
            None => format!(
                "this run stopped at batch {} of epoch {}, past the end of an epoch of {batches} batches of {}: restore the images and the --batch-size it was trained with, or continue from an end-of-epoch checkpoint (--epoch N)",
                progress.epoch_iter,
                progress.epoch,
                config.batch_size
            ),
        }));
    }
    if let Some(saved) = resized {
        tracing::warn!(
            "{} now has {} items per epoch, {saved} when this run was saved: the rest of epoch {} follows the new list, so the run no longer repeats one without the interruption",
            config.dataroot.display(),
            dataset.len(),
            progress.epoch
        );
    }
    progress.dataset_len = Some(dataset.len());

    let last_epoch = config.last_epoch();
    let loader = Loader::new(
        dataset,
        LoaderOptions {
            batch_size: config.batch_size,
            shuffle: !config.data.serial_batches,
            seed,
            workers: config.workers,
            prefetch: 2 * config.workers.max(1),
            start_epoch: progress.epoch as u64,
            start_iteration: progress.epoch_iter,
            last_epoch: Some(last_epoch as u64),
            on_bad_image: config.on_bad_image,
        },
    )?;
    let batches_per_epoch = loader.batches_per_epoch();
    let remaining_epochs = (last_epoch + 1).saturating_sub(progress.epoch) as u64;
    let mut planned =
        (remaining_epochs * batches_per_epoch as u64).saturating_sub(progress.epoch_iter as u64);
    if let Some(max) = config.max_steps {
        planned = planned.min(max.saturating_sub(progress.total_steps));
    }
    let (test_input, test_target) = test_folders(config);
    let test_set = PairedTestSet::open(
        &test_input,
        &test_target,
        config.data.input_nc,
        config.data.output_nc,
    );
    let loss_log = run_dir.join("loss_log.jsonl");
    // loss_log.txt, as the reference writes it: a header at each start, then the loss lines.
    let loss_text_log = run_dir.join("loss_log.txt");
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    append_line(
        &loss_text_log,
        &format!("================ Training Loss ({now}) ================"),
    )?;
    let metrics_log = run_dir.join("metrics.jsonl");
    let mut web = config.html.then(|| WebPage::new(&run_dir));
    if let Some(web) = &mut web {
        web.restore(&read_loss_log(&loss_log));
    }
    log_networks(&model, config.verbose);

    let bar = progress_bar.cloned().unwrap_or_else(ProgressBar::hidden);
    bar.set_length(planned);
    bar.set_position(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} it {per_sec} ETA {eta} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    if planned == 0 {
        tracing::info!(
            "{}: nothing left to train ({} steps done{}); raise --n-epochs-decay or --max-steps to train further",
            run_dir.display(),
            progress.total_steps,
            if progress.epoch > last_epoch {
                format!(", the schedule's last epoch {last_epoch} is finished")
            } else {
                String::new()
            }
        );
    } else {
        tracing::info!(
            "training {} to epoch {last_epoch} ({batches_per_epoch} iterations per epoch, {planned} to run) on {}",
            run_dir.display(),
            config.device
        );
    }

    let mut report = TrainReport {
        run_dir: run_dir.clone(),
        progress: progress.clone(),
        last_losses: None,
        last_metrics: None,
        results_dir: None,
        interrupted: false,
    };
    let started = Instant::now();
    let seconds_before = progress.seconds;
    let mut latest = LatestCheckpoint {
        saved_at_step: None,
        records: options_files,
        set_aside,
    };
    let mut reached_max = config.max_steps.is_some_and(|m| progress.total_steps >= m);
    let mut data_wait = 0.0;
    let mut wait_started = Instant::now();
    // Whether this epoch's sample images were saved yet (for --update-html-freq).
    let mut html_saved_in_epoch = false;
    for batch in loader {
        if reached_max || report.interrupted {
            break;
        }
        let batch = batch.map_err(|e| {
            if e.is_bad_image() {
                TrainError::BadImage(e)
            } else {
                e.into()
            }
        })?;
        data_wait += wait_started.elapsed().as_secs_f64();
        let names = |paths: &[PathBuf]| {
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        for (images, paths) in [(&batch.a, &batch.a_paths), (&batch.b, &batch.b_paths)] {
            let (_, _, height, width) = images.dims4()?;
            if let Some(problem) = config.image_size_problem(height, width) {
                return Err(TrainError::Options(format!(
                    "{}: {problem}; pass --preprocess resize_and_crop, scale_width_and_crop or crop (with a suitable --crop-size), or resize the images",
                    names(paths)
                )));
            }
        }
        let step_started = Instant::now();
        let (losses, visuals) =
            model
                .train_step(&batch.a, &batch.b)
                .map_err(|source| TrainError::Step {
                    a: names(&batch.a_paths),
                    b: names(&batch.b_paths),
                    source: Box::new(source),
                })?;
        let images_before = progress.total_images;
        progress.total_steps += 1;
        progress.total_images += batch.a.dim(0)? as u64;
        progress.epoch = batch.pos.epoch as usize;
        progress.epoch_iter = batch.pos.iteration + 1;
        progress.seconds = seconds_before + started.elapsed().as_secs_f64();
        report.last_losses = Some(losses);
        bar.inc(1);
        bar.set_message(format!(
            "epoch {} D_A {:.3} G_A {:.3} cyc_A {:.3} D_B {:.3} G_B {:.3} cyc_B {:.3}",
            progress.epoch,
            losses.D_A,
            losses.G_A,
            losses.cycle_A,
            losses.D_B,
            losses.G_B,
            losses.cycle_B
        ));

        if crossed(images_before, progress.total_images, config.print_freq) {
            let lr = model.lr();
            append_json(
                &loss_log,
                &LossRecord {
                    epoch: progress.epoch,
                    epoch_iter: progress.epoch_iter,
                    iteration: progress.total_steps,
                    images: progress.total_images,
                    losses: &losses,
                    lr,
                    seconds: progress.seconds,
                },
            )?;
            if let Some(web) = &mut web {
                web.record_losses(progress.total_images, losses);
            }
            // The reference's console and loss_log.txt line: the step's time per image.
            let batch_images = (progress.total_images - images_before).max(1) as f64;
            let line = loss_line(
                progress.epoch,
                progress.epoch_iter * config.batch_size,
                step_started.elapsed().as_secs_f64() / batch_images,
                data_wait,
                &losses,
            );
            tracing::info!("{line}");
            append_line(&loss_text_log, &line)?;
        }
        data_wait = 0.0;
        if let Some(web) = &mut web {
            if crossed(images_before, progress.total_images, config.display_freq) {
                // The reference saves the first refresh of each epoch, then those at multiples
                // of --update-html-freq.
                let save = config.update_html_freq.is_none_or(|freq| {
                    !html_saved_in_epoch || crossed(images_before, progress.total_images, freq)
                });
                if save {
                    web.display(progress.epoch, &visuals)?;
                    html_saved_in_epoch = true;
                }
            }
        }

        if batch.pos.is_last_in_epoch() {
            let epoch = progress.epoch;
            if let Some(web) = &mut web {
                web.display(epoch, &visuals)?;
            }
            html_saved_in_epoch = false;
            if let Some(test_set) = &test_set {
                let metrics = evaluate(&model, test_set)?;
                tracing::info!(
                    "epoch {epoch} test: L1 {:.4} (identity {:.4}), PSNR {:.2} dB (identity {:.2}), colour histogram distance {:.4} (identity {:.4})",
                    metrics.l1,
                    metrics.identity_l1,
                    metrics.psnr,
                    metrics.identity_psnr,
                    metrics.hist,
                    metrics.identity_hist
                );
                append_json(
                    &metrics_log,
                    &MetricsRecord {
                        epoch,
                        iteration: progress.total_steps,
                        metrics: &metrics,
                    },
                )?;
                report.last_metrics = Some(metrics);
            }
            // The reference steps the schedule at the end of each epoch (2025 code).
            let old_lr = model.lr();
            schedule.step(&config.schedule);
            let lr = schedule.lr(&config.schedule);
            model.set_lr(lr);
            tracing::info!(
                "end of epoch {epoch} / {last_epoch}: learning rate {old_lr:.7} -> {lr:.7}"
            );
            progress.epoch = epoch + 1;
            progress.epoch_iter = 0;
            if epoch.is_multiple_of(config.save_epoch_freq) {
                state::save(&run_dir, &epoch.to_string(), &model, None, &[])?;
                latest.save(&run_dir, &model, &progress, &schedule, seed)?;
                tracing::info!("saved the model at the end of epoch {epoch}");
            }
        }
        reached_max = config.max_steps.is_some_and(|m| progress.total_steps >= m);
        report.interrupted = stop.load(Ordering::Relaxed);
        let save_latest = crossed(
            images_before,
            progress.total_images,
            config.save_latest_freq,
        );
        if config.save_by_iter && save_latest {
            let label = format!("iter_{}", progress.total_images);
            state::save(&run_dir, &label, &model, None, &[])?;
            tracing::info!("saved the networks as {label}");
        }
        if (save_latest || reached_max || report.interrupted)
            && latest.save(&run_dir, &model, &progress, &schedule, seed)?
        {
            tracing::info!(
                "saved the latest model (epoch {}, {} steps)",
                progress.epoch,
                progress.total_steps
            );
        }
        wait_started = Instant::now();
    }
    if !reached_max && !report.interrupted {
        // Make sure the final state is on disk even when the last epoch was not a save epoch.
        latest.save(&run_dir, &model, &progress, &schedule, seed)?;
    }
    bar.finish_and_clear();
    report.progress = progress.clone();
    tracing::info!(
        "training stopped after {} steps ({:.0} s)",
        progress.total_steps,
        progress.seconds
    );
    if report.interrupted {
        tracing::info!(
            "interrupted: the latest checkpoint holds step {}; --continue-train goes on from there",
            progress.total_steps
        );
        return Ok(report);
    }

    if config.translate_test {
        if let Some(dir) = translate_test_set(config, &model, test_set.as_ref())? {
            report.results_dir = Some(dir);
        }
    }
    Ok(report)
}

/// G_A of every test A image, in evaluation mode: measuring must not touch the model (batch-norm
/// running statistics, dropout generators).
fn translate_all(model: &CycleGan, images: &[Tensor]) -> Result<Vec<Tensor>> {
    let g_a = model.inference_g_a()?;
    images
        .iter()
        .map(|a| {
            let x = a
                .unsqueeze(0)?
                .to_device(model.device())?
                .to_dtype(model.dtype())?;
            let y = g_a.forward_t(&x, false)?;
            Ok(y.squeeze(0)?
                .to_device(&Device::Cpu)?
                .to_dtype(DType::F32)?)
        })
        .collect()
}

fn evaluate(model: &CycleGan, test_set: &PairedTestSet) -> Result<TestMetrics> {
    let fakes = translate_all(model, &test_set.a)?;
    Ok(test_set.measure(&fakes)?)
}

/// G_A's test input folder and the folder of its true counterparts: testA and testB, swapped
/// under `--direction BtoA` (where G_A learns to map domain B to domain A, as in the reference).
fn test_folders(config: &TrainConfig) -> (PathBuf, PathBuf) {
    let (input, target) = config.data.direction.folders("test");
    (config.dataroot.join(input), config.dataroot.join(target))
}

/// Translates G_A's test input folder (testA, or testB under `--direction BtoA`) with G_A into
/// `<results-dir>/<name>/test_latest` (the reference's test page), and, for a paired test set,
/// writes `sample_sheet.png`: real A, fake B and true B side by side.
fn translate_test_set(
    config: &TrainConfig,
    model: &CycleGan,
    test_set: Option<&PairedTestSet>,
) -> Result<Option<PathBuf>> {
    let (test_a, _) = test_folders(config);
    if !test_a.is_dir() {
        tracing::info!("no {}: nothing to translate", test_a.display());
        return Ok(None);
    }
    let out = config.results_dir.join(&config.name).join("test_latest");
    let translator = cyclegan_translate::Translator::new(
        model.inference_g_a()?,
        model.config().generator,
        model.device(),
    );
    let opts = cyclegan_translate::TranslateOptions {
        input: test_a,
        output: out.clone(),
        resize: cyclegan_translate::Resize::Native,
        progress: config.progress,
    };
    let summary = cyclegan_translate::translate_files(&translator, &opts)?;
    tracing::info!(
        "translated {} test images: {}",
        summary.translated.len(),
        summary.index.display()
    );
    if !summary.skipped.is_empty() {
        tracing::warn!(
            "{} test image(s) could not be read and were left out (named above)",
            summary.skipped.len()
        );
    }
    if let Some(test_set) = test_set {
        let sheet = out.join("sample_sheet.png");
        let count = test_set.a.len().min(24);
        let fakes = translate_all(model, &test_set.a[..count])?;
        crate::sheet::write_sample_sheet(
            &sheet,
            &test_set.a[..count],
            &fakes,
            &test_set.b[..count],
        )?;
        tracing::info!(
            "sample sheet (real A | fake B | true B): {}",
            sheet.display()
        );
    }
    Ok(Some(out))
}
