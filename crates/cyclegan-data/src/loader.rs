//! A deterministic, resumable, prefetching batch loader on worker threads.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::dataset::{BatchPos, Dataset};
use crate::error::{DataError, Result};
use crate::rng::{epoch_order, item_rng};

/// What the loader does with an image it cannot read, decode or crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    /// Log a `tracing` warning naming the file and leave that item out of its batch (a batch
    /// whose items are all bad is left out; the other batches keep their positions).
    Skip,
    /// Yield the error (which names the file) and end the iteration.
    #[default]
    Fail,
}

/// How a [`Loader`] batches, orders and prefetches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoaderOptions {
    /// Items per batch; the last batch of an epoch may be smaller (nothing is dropped).
    pub batch_size: usize,
    /// Visit the items in a new random order each epoch (the reference shuffles unless
    /// `serial_batches`).
    pub shuffle: bool,
    /// The seed every random choice derives from.
    pub seed: u64,
    /// Worker threads decoding and transforming; 0 loads in the calling thread.
    pub workers: usize,
    /// Batches prepared ahead of the one being consumed (at least 1).
    pub prefetch: usize,
    /// The first epoch to yield.
    pub start_epoch: u64,
    /// The first batch to yield within `start_epoch` (batches already consumed there).
    pub start_iteration: usize,
    /// The last epoch to yield, inclusive; `None` runs on without end.
    pub last_epoch: Option<u64>,
    /// What to do with unreadable images.
    pub on_bad_image: OnBadImage,
}

impl Default for LoaderOptions {
    /// Batch size 1, shuffled, seed 0, [`default_workers`] threads, prefetch twice that,
    /// from epoch 1 (as the reference counts) batch 0, endless, failing on bad images.
    fn default() -> Self {
        let workers = default_workers();
        LoaderOptions {
            batch_size: 1,
            shuffle: true,
            seed: 0,
            workers,
            prefetch: 2 * workers.max(1),
            start_epoch: 1,
            start_iteration: 0,
            last_epoch: None,
            on_bad_image: OnBadImage::Fail,
        }
    }
}

/// The default number of workers: a quarter of the available cores, between 1 and 2, so that
/// loading does not compete with training for the CPU (1 on a 2-core machine).
pub fn default_workers() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    (cores / 4).clamp(1, 2)
}

struct Job {
    seq: u64,
    pos: BatchPos,
    indices: Vec<usize>,
}

type JobResult<B> = (u64, Result<Option<B>>);

/// Iterates over batches of a [`Dataset`], prepared ahead on worker threads.
///
/// Every batch depends only on the seed, its epoch, and the dataset: the epoch's order is a
/// permutation drawn from (seed, epoch) and each item's random choices come from
/// (seed, epoch, item index). So the batches are the same whatever the number of workers and
/// their timing, and a loader started at (`start_epoch`, `start_iteration`) yields exactly the
/// batches an uninterrupted run yields from that point.
///
/// Workers take batch jobs in order; at most `prefetch` batches are in flight, and results are
/// handed out in order. Dropping the loader stops the workers (after their current batch).
///
/// ```no_run
/// use cyclegan_data::{DataOptions, Loader, LoaderOptions, UnalignedDataset};
/// let data = UnalignedDataset::open("datasets/horse2zebra", &DataOptions::default())?;
/// let loader = Loader::new(data, LoaderOptions { seed: 1, last_epoch: Some(200), ..Default::default() })?;
/// for batch in loader {
///     let batch = batch?;
///     // batch.a, batch.b: [1, 3, 256, 256] in [-1, 1]; batch.pos.epoch, batch.pos.iteration
/// }
/// # Ok::<(), cyclegan_data::DataError>(())
/// ```
pub struct Loader<D: Dataset> {
    dataset: Arc<D>,
    opts: LoaderOptions,
    batches_per_epoch: usize,
    /// The next batch to hand out (epoch, iteration) and to issue.
    next_issue: (u64, usize),
    order: Option<(u64, Vec<usize>)>,
    issued: u64,
    returned: u64,
    finished_issuing: bool,
    done: bool,
    /// Batches skipped in a row because none of their items could be read.
    skipped_in_row: usize,
    pending: BTreeMap<u64, Result<Option<D::Batch>>>,
    jobs: Option<SyncSender<Job>>,
    results: Option<Receiver<JobResult<D::Batch>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<D: Dataset> Loader<D> {
    /// Starts the workers. Fails when the options cannot work (batch size 0, a start
    /// iteration past the epoch's end) or the dataset is empty.
    pub fn new(dataset: D, opts: LoaderOptions) -> Result<Self> {
        Self::from_arc(Arc::new(dataset), opts)
    }

    /// Like [`Loader::new`] for a dataset shared with the caller (e.g. to start another
    /// loader later without listing the folders again).
    pub fn from_arc(dataset: Arc<D>, opts: LoaderOptions) -> Result<Self> {
        let bad = |m: String| Err(DataError::InvalidOptions(m));
        if opts.batch_size == 0 {
            return bad("batch_size must be positive".into());
        }
        if dataset.is_empty() {
            return bad("the dataset is empty".into());
        }
        let batches_per_epoch = dataset.len().div_ceil(opts.batch_size);
        if opts.start_iteration >= batches_per_epoch {
            return bad(format!(
                "start_iteration {} is past the end of an epoch of {batches_per_epoch} batches",
                opts.start_iteration
            ));
        }
        let prefetch = opts.prefetch.max(1);
        let mut loader = Loader {
            dataset,
            batches_per_epoch,
            next_issue: (opts.start_epoch, opts.start_iteration),
            order: None,
            issued: 0,
            returned: 0,
            finished_issuing: opts.last_epoch.is_some_and(|last| opts.start_epoch > last),
            done: false,
            skipped_in_row: 0,
            pending: BTreeMap::new(),
            jobs: None,
            results: None,
            workers: Vec::new(),
            opts: LoaderOptions { prefetch, ..opts },
        };
        if loader.opts.workers > 0 {
            loader.spawn_workers()?;
        }
        Ok(loader)
    }

    fn spawn_workers(&mut self) -> Result<()> {
        let (job_tx, job_rx) = sync_channel::<Job>(self.opts.prefetch);
        let (res_tx, res_rx) = sync_channel::<JobResult<D::Batch>>(self.opts.prefetch);
        let job_rx = Arc::new(Mutex::new(job_rx));
        for i in 0..self.opts.workers {
            let (job_rx, res_tx) = (Arc::clone(&job_rx), res_tx.clone());
            let (dataset, seed, policy) = (
                Arc::clone(&self.dataset),
                self.opts.seed,
                self.opts.on_bad_image,
            );
            let handle = std::thread::Builder::new()
                .name(format!("cyclegan-data-{i}"))
                .spawn(move || loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = run_job(&*dataset, seed, policy, &job);
                    if res_tx.send((job.seq, result)).is_err() {
                        return;
                    }
                })
                .map_err(|e| DataError::Worker(format!("cannot start a worker thread: {e}")))?;
            self.workers.push(handle);
        }
        self.jobs = Some(job_tx);
        self.results = Some(res_rx);
        Ok(())
    }

    /// Batches per epoch: ceil(dataset length / batch size).
    pub fn batches_per_epoch(&self) -> usize {
        self.batches_per_epoch
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<D> {
        &self.dataset
    }

    /// The options in use.
    pub fn options(&self) -> &LoaderOptions {
        &self.opts
    }

    /// The next job, advancing the issue cursor; `None` past `last_epoch`.
    fn next_job(&mut self) -> Option<Job> {
        if self.finished_issuing {
            return None;
        }
        let (epoch, iteration) = self.next_issue;
        if self.order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            self.order = Some((
                epoch,
                epoch_order(self.opts.seed, epoch, self.dataset.len(), self.opts.shuffle),
            ));
        }
        let order = &self.order.as_ref().expect("set above").1;
        let start = iteration * self.opts.batch_size;
        let indices = order[start..(start + self.opts.batch_size).min(order.len())].to_vec();
        let pos = BatchPos {
            epoch,
            iteration,
            batches_in_epoch: self.batches_per_epoch,
        };
        if iteration + 1 < self.batches_per_epoch {
            self.next_issue = (epoch, iteration + 1);
        } else {
            match epoch.checked_add(1) {
                Some(next) if self.opts.last_epoch.is_none_or(|last| next <= last) => {
                    self.next_issue = (next, 0)
                }
                _ => self.finished_issuing = true,
            }
        }
        let seq = self.issued;
        self.issued += 1;
        Some(Job { seq, pos, indices })
    }

    /// Keeps `prefetch` jobs in flight.
    fn fill(&mut self) {
        while self.issued - self.returned < self.opts.prefetch as u64 {
            let Some(job) = self.next_job() else { return };
            let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
            if !sent {
                self.pending.insert(
                    self.issued - 1,
                    Err(DataError::Worker("the workers have stopped".into())),
                );
            }
        }
    }

    /// The result of the next batch in order, waiting for the workers as needed.
    fn next_result(&mut self) -> Option<Result<Option<D::Batch>>> {
        if self.jobs.is_none() {
            let job = self.next_job()?;
            self.returned += 1;
            return Some(run_job(
                &*self.dataset,
                self.opts.seed,
                self.opts.on_bad_image,
                &job,
            ));
        }
        self.fill();
        if self.returned == self.issued {
            return None;
        }
        loop {
            if let Some(r) = self.pending.remove(&self.returned) {
                self.returned += 1;
                return Some(r);
            }
            let received = self.results.as_ref().expect("workers running").recv();
            match received {
                Ok((seq, r)) => {
                    self.pending.insert(seq, r);
                }
                Err(_) => return Some(Err(DataError::Worker("the workers have stopped".into()))),
            }
        }
    }
}

/// Loads one batch: each item with its own generator, bad images skipped or reported.
/// `Ok(None)` when every item was skipped.
fn run_job<D: Dataset>(
    dataset: &D,
    seed: u64,
    policy: OnBadImage,
    job: &Job,
) -> Result<Option<D::Batch>> {
    let work = || {
        let mut items = Vec::with_capacity(job.indices.len());
        for &index in &job.indices {
            match dataset.load(index, &mut item_rng(seed, job.pos.epoch, index)) {
                Ok(item) => items.push((index, item)),
                Err(e) if policy == OnBadImage::Skip && e.is_bad_image() => {
                    tracing::warn!(
                        epoch = job.pos.epoch,
                        iteration = job.pos.iteration,
                        index,
                        "skipping item: {e}"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        if items.is_empty() {
            return Ok(None);
        }
        dataset.collate(items, job.pos).map(Some)
    };
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(DataError::Worker(format!(
            "loading epoch {} batch {} panicked: {msg}",
            job.pos.epoch, job.pos.iteration
        )))
    })
}

impl<D: Dataset> Iterator for Loader<D> {
    type Item = Result<D::Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            match self.next_result() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Ok(Some(batch))) => {
                    self.skipped_in_row = 0;
                    return Some(Ok(batch));
                }
                Some(Ok(None)) => {
                    self.skipped_in_row += 1;
                    if self.skipped_in_row >= self.batches_per_epoch {
                        self.done = true;
                        return Some(Err(DataError::NothingReadable {
                            batches: self.skipped_in_row,
                        }));
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl<D: Dataset> Drop for Loader<D> {
    fn drop(&mut self) {
        // Closing the job queue ends each worker after its current batch; the result queue
        // has room for every batch in flight, so none blocks on sending.
        self.jobs = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

impl<D: Dataset> std::fmt::Debug for Loader<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("opts", &self.opts)
            .field("batches_per_epoch", &self.batches_per_epoch)
            .field("next_issue", &self.next_issue)
            .finish_non_exhaustive()
    }
}
