//! Saving and restoring a run: the four networks (reference key names, architecture in the
//! metadata) and everything else a resumed run needs to continue bit for bit — both
//! optimisers' moments and step counts, the schedule, both image pools with their generators,
//! the dropout generators, the seed and the position in the data.

use candle_core::Tensor;
use cyclegan_checkpoint::{find_network, load_network, network_bytes, network_path, FileSet};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::model::{CycleGan, ModelRngState, NetworkName};
use crate::schedule::Schedule;

/// Metadata key of the training state's JSON.
const STATE_KEY: &str = "cyclegan.train_state";

/// Where the run stands, saved with every latest checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// The epoch to run next (or to continue), numbered from `epoch_count`.
    pub epoch: usize,
    /// Batches of `epoch` already trained.
    pub epoch_iter: usize,
    /// Optimisation steps across all resumes.
    pub total_steps: u64,
    /// Images trained on across all resumes (the reference's `total_iters`).
    pub total_images: u64,
    /// Seconds spent training across all resumes.
    pub seconds: f64,
    /// Items per epoch of the dataset it was trained on (`None` in states saved before this
    /// was recorded), so that a resume can tell when the images changed.
    #[serde(default)]
    pub dataset_len: Option<usize>,
    /// The batch size `epoch_iter` counts in (`None` in states saved before this was
    /// recorded), so that a resume with another batch size starts at the same image.
    #[serde(default)]
    pub batch_size: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedState {
    progress: Progress,
    schedule: Schedule,
    seed: u64,
    opt_g_step: u64,
    opt_d_step: u64,
    pool_a_rng: ChaCha8Rng,
    pool_b_rng: ChaCha8Rng,
    pool_a_len: usize,
    pool_b_len: usize,
    model_rng: ModelRngState,
}

/// The training-state file that goes with the `<label>` networks.
pub fn state_path(dir: &Path, label: &str) -> PathBuf {
    dir.join(format!("{label}_train_state.safetensors"))
}

/// Writes the four networks under `label`, with `progress` the training state, and the
/// `records` given (file name and bytes, such as the run's options), as one [`FileSet`]: an
/// interruption at any moment leaves either all the old files or all the new ones (once
/// [`cyclegan_checkpoint::recover_file_sets`] has run), never networks of one step beside the
/// state of another.
pub fn save(
    dir: &Path,
    label: &str,
    model: &CycleGan,
    progress: Option<(&Progress, &Schedule, u64)>,
    records: &[(&str, &[u8])],
) -> Result<()> {
    // `begin` creates `dir` if needed.
    let mut set = FileSet::begin(dir, label).map_err(TrainError::io(format!(
        "cannot start writing the '{label}' checkpoint in {}",
        dir.display()
    )))?;
    let mut write = |path: &Path, bytes: &[u8]| -> Result<()> {
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        set.write(&file_name, |f| f.write_all(bytes))
            .map_err(TrainError::io(format!("cannot write {}", path.display())))
    };
    for (name, tensors) in model.state_dicts() {
        let path = network_path(dir, label, name.as_str());
        let bytes = network_bytes(&tensors, &model.network_config(name), &[]).map_err(|e| {
            TrainError::Io {
                context: format!("cannot serialise {}", path.display()),
                source: std::io::Error::other(e),
            }
        })?;
        write(&path, &bytes)?;
    }
    if let Some((progress, schedule, seed)) = progress {
        write(
            &state_path(dir, label),
            &state_bytes(model, progress, schedule, seed)?,
        )?;
    }
    for (file_name, bytes) in records {
        write(&dir.join(file_name), bytes)?;
    }
    set.commit().map_err(|source| TrainError::Io {
        context: format!(
            "cannot put the '{label}' checkpoint in place in {}; fix the folder (space, permissions): once its files were all written, the next run puts them in place",
            dir.display()
        ),
        source,
    })
}

/// The training-state file's bytes: both optimisers, both pools, the generators and `progress`.
fn state_bytes(
    model: &CycleGan,
    progress: &Progress,
    schedule: &Schedule,
    seed: u64,
) -> Result<Vec<u8>> {
    let mut tensors: HashMap<String, Tensor> = model.opt_g.state_tensors("opt_G");
    tensors.extend(model.opt_d.state_tensors("opt_D"));
    for (prefix, pool) in [("pool_A", &model.pool_a), ("pool_B", &model.pool_b)] {
        for (i, image) in pool.images().iter().enumerate() {
            tensors.insert(format!("{prefix}.{i}"), image.clone());
        }
    }
    let saved = SavedState {
        progress: progress.clone(),
        schedule: *schedule,
        seed,
        opt_g_step: model.opt_g.step_count(),
        opt_d_step: model.opt_d.step_count(),
        pool_a_rng: model.pool_a.rng().clone(),
        pool_b_rng: model.pool_b.rng().clone(),
        pool_a_len: model.pool_a.images().len(),
        pool_b_len: model.pool_b.images().len(),
        model_rng: model.rng_state(),
    };
    let json = serde_json::to_string(&saved).expect("the training state serialises");
    let metadata = HashMap::from([(STATE_KEY.to_string(), json)]);
    cyclegan_checkpoint::serialize_safetensors(&tensors, metadata).map_err(|e| TrainError::Io {
        context: "cannot serialise the training state".to_string(),
        source: std::io::Error::other(e),
    })
}

/// Loads the networks saved under `label` into `model`. A network with no file (for example a
/// run started from converted reference generators only) keeps its fresh initialisation, with a
/// warning; a reference `.pth` of the same name is read too. Returns how many were loaded.
pub fn load_networks(dir: &Path, label: &str, model: &CycleGan) -> Result<usize> {
    let mut loaded = 0;
    let mut missing = Vec::new();
    for name in NetworkName::ALL {
        let path = match find_network(dir, label, name.as_str()) {
            Ok(path) => path,
            Err([native, _]) => {
                missing.push((name, native));
                continue;
            }
        };
        let network = load_network(&path, model.device(), model.dtype())?;
        let expected = model.network_config(name);
        if network.config != expected {
            let advice = if dir.join("options.json").is_file() {
                "pass the architecture options it was trained with (or leave them out: a continued run takes its own options.json)"
            } else {
                "pass the architecture options it was trained with (this folder has no options.json to take them from)"
            };
            return Err(TrainError::RunFolder(format!(
                "{} holds a {}, but this run is configured for a {}; {advice}",
                path.display(),
                cyclegan_checkpoint::describe_config(&network.config),
                cyclegan_checkpoint::describe_config(&expected)
            )));
        }
        model
            .load_state_dict(name, &network.tensors)
            .map_err(|e| TrainError::RunFolder(format!("{}: {e}", path.display())))?;
        loaded += 1;
    }
    // With none loaded the caller refuses the folder; the warnings would only precede that.
    if loaded > 0 {
        for (name, path) in missing {
            tracing::warn!(
                "{} not found: {name} starts from a fresh initialisation",
                path.display()
            );
        }
    }
    Ok(loaded)
}

/// Restores the training state saved under `label`, if there is one: returns the position,
/// schedule and seed to continue with.
pub fn load_state(
    dir: &Path,
    label: &str,
    model: &mut CycleGan,
) -> Result<Option<(Progress, Schedule, u64)>> {
    let path = state_path(dir, label);
    if !path.exists() {
        return Ok(None);
    }
    let bytes =
        std::fs::read(&path).map_err(TrainError::io(format!("cannot read {}", path.display())))?;
    let corrupt = |e: String| {
        TrainError::RunFolder(format!(
            "{} is damaged ({e}); delete it to continue with fresh optimisers",
            path.display()
        ))
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| corrupt("no state".into()))?;
    let saved: SavedState = serde_json::from_str(json).map_err(|e| corrupt(e.to_string()))?;
    let device = model.device().clone();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &device)
        .map_err(|e| corrupt(e.to_string()))?;
    let dtype = model.dtype();
    model
        .opt_g
        .load_state(&tensors, "opt_G", saved.opt_g_step)
        .map_err(|e| corrupt(e.to_string()))?;
    model
        .opt_d
        .load_state(&tensors, "opt_D", saved.opt_d_step)
        .map_err(|e| corrupt(e.to_string()))?;
    let pool_images = |prefix: &str, len: usize| -> Result<Vec<Tensor>> {
        (0..len)
            .map(|i| {
                let t = tensors
                    .get(&format!("{prefix}.{i}"))
                    .ok_or_else(|| corrupt(format!("{prefix}.{i} missing")))?;
                Ok(t.to_dtype(dtype)?)
            })
            .collect()
    };
    let size = model.config().pool_size;
    model.pool_a = cyclegan_replay::ImagePool::from_parts(
        size,
        pool_images("pool_A", saved.pool_a_len)?,
        saved.pool_a_rng,
    );
    model.pool_b = cyclegan_replay::ImagePool::from_parts(
        size,
        pool_images("pool_B", saved.pool_b_len)?,
        saved.pool_b_rng,
    );
    model.restore_rng_state(&saved.model_rng);
    Ok(Some((saved.progress, saved.schedule, saved.seed)))
}
