//! A whole training job on this machine: load and validate the data, resume from the newest
//! checkpoint if there is one, train on a dedicated thread with batches prepared ahead,
//! validate every N steps, checkpoint every M, stop at the target accuracy or the step limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use facetrain_proto::ledger::{SampleLedger, Trained};
use facetrain_proto::plan::StepPlan;
pub use facetrain_proto::plan::StopReason;
use serde::Serialize;
use tracing::info;

use crate::backend::training_device;
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::data::batch::{Prefetcher, StreamSpec};
use crate::data::cache::CacheBudget;
use crate::data::dataset::{Dataset, LoadOptions, check_same_classes, open_dataset};
use crate::error::{Error, Result};
use crate::job::JobSpec;
use crate::model::Architecture;
use crate::train::evaluate::{Evaluation, evaluate};
use crate::train::trainer::{StepStats, Trainer};

/// Batches prepared ahead of the training step.
const PREFETCH_DEPTH: usize = 2;

/// What a long run reports as it goes (a progress bar, log lines, metrics).
pub trait Progress: Send + Sync {
    fn started(&self, _info: &StartInfo) {}
    fn step(&self, _report: &StepReport) {}
    fn evaluated(&self, _step: u64, _evaluation: &Evaluation) {}
    fn checkpointed(&self, _step: u64, _location: &str) {}
}

/// Reports nothing.
pub struct Silent;
impl Progress for Silent {}

#[derive(Debug, Clone, Serialize)]
pub struct StartInfo {
    pub train_samples: usize,
    pub validate_samples: usize,
    pub num_classes: usize,
    pub parameters: usize,
    pub first_step: u64,
    pub max_steps: u64,
    pub skipped_rows: usize,
    pub resized_images: usize,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepReport {
    pub step: u64,
    pub loss: f64,
    pub train_accuracy: f64,
    pub data_wait_seconds: f64,
    pub step_seconds: f64,
    pub images_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub steps: u64,
    pub resumed_from_step: Option<u64>,
    pub stopped: StopReason,
    pub val_accuracy: f64,
    /// Mean training loss over the last eval interval (or the last steps).
    pub train_loss: f64,
    pub wall_seconds: f64,
    pub train_seconds: f64,
    pub images_per_second: f64,
    pub checkpoint: Option<String>,
    pub skipped_rows: usize,
    pub resized_images: usize,
    /// `(step, validation accuracy)` at every evaluation.
    pub accuracy_curve: Vec<(u64, f64)>,
    pub evaluation: Evaluation,
    /// What the model was trained on, every step checked against the plan.
    pub ledger: SampleLedger,
}

/// Opens both datasets of a job, checking the validation set against the training classes.
/// When both fit the job's cache budget they are read whole now (every image checked before
/// anything trains); otherwise they stream through the cache as the job reads them.
pub async fn load_job_datasets(spec: &JobSpec) -> Result<(Dataset, Dataset)> {
    let options = LoadOptions {
        side: spec.model.image_size,
        num_classes: spec.dataset.num_classes,
        on_bad_row: spec.dataset.on_bad_row,
        allow_outside_paths: spec.dataset.allow_outside_paths,
        cache: CacheBudget::new(spec.dataset.cache_bytes()),
    };
    let (mut train, mut validate) =
        tokio::try_join!(open_dataset(&spec.dataset.train, &options), open_dataset(&spec.dataset.validate, &options))?;
    let num_classes = spec.dataset.num_classes.unwrap_or(train.num_classes.max(validate.num_classes));
    for dataset in [&mut train, &mut validate] {
        dataset.num_classes = num_classes;
        dataset.class_names.resize(num_classes, String::new());
    }
    let names = train.class_names.clone();
    validate.class_names = names;
    check_same_classes(&train, &validate)?;
    let whole = train.decoded_bytes() + validate.decoded_bytes();
    if options.cache.fits(whole) {
        tokio::try_join!(train.preload(), validate.preload())?;
    } else {
        info!(
            train_rows = train.len(),
            validate_rows = validate.len(),
            decoded_mb = whole >> 20,
            cache_mb = spec.dataset.cache_mb,
            "the datasets are larger than the cache: streaming them"
        );
    }
    Ok((train, validate))
}

/// Runs `spec` to completion (or until `interrupt` is set, which checkpoints and returns).
pub async fn run_local(spec: JobSpec, progress: Arc<dyn Progress>, interrupt: Arc<AtomicBool>) -> Result<RunSummary> {
    let started = Instant::now();
    if spec.workers.count != 1 {
        return Err(Error::InvalidJob(format!(
            "workers.count = {}: this loop trains one worker; several go through a coordinator (facectl local starts one in-process)",
            spec.workers.count
        )));
    }
    let device = training_device(spec.workers.backend, &spec.workers.device)?;
    let (train, validate) = load_job_datasets(&spec).await?;
    crate::memory::check_fits(&spec, train.num_classes, spec.training.batch_size, crate::memory::default_job_limit())?;
    let arch = Architecture::new(spec.model.clone(), train.num_classes);
    let mut trainer = Trainer::new(arch.clone(), &spec.training, device);
    let store = match spec.checkpoint.dir.as_str() {
        "" => None,
        dir => Some(CheckpointStore::new(dir, spec.checkpoint.keep)?),
    };
    let mut ledger = SampleLedger::default();
    let mut resumed_from_step = None;
    if let Some(store) = &store
        && let Some((location, checkpoint)) = store.latest().await?
    {
        check_resumable(&spec, &arch, &checkpoint, &location.to_string())?;
        trainer.load_state(&checkpoint.model, &checkpoint.optimizer, checkpoint.meta.step)?;
        let cursor = StepPlan::new(&spec).cursor_at(checkpoint.meta.step);
        ledger = checkpoint.meta.ledger.clone().unwrap_or_else(|| SampleLedger::starting_at(cursor));
        resumed_from_step = Some(checkpoint.meta.step);
        info!(checkpoint = %location, step = checkpoint.meta.step, "resuming from checkpoint");
    }
    progress.started(&StartInfo {
        train_samples: train.len(),
        validate_samples: validate.len(),
        num_classes: train.num_classes,
        parameters: crate::params::parameter_count(trainer.model()),
        first_step: trainer.step,
        max_steps: spec.training.max_steps,
        skipped_rows: skipped_rows(&train, &validate),
        resized_images: (train.read_counts().resized() + validate.read_counts().resized()) as usize,
    });
    let handle = tokio::runtime::Handle::current();
    let loop_result = tokio::task::spawn_blocking(move || {
        let class_names = train.class_names.clone();
        let mut job = TrainingLoop {
            spec: &spec,
            trainer,
            ledger,
            store,
            handle,
            progress: progress.as_ref(),
            interrupt: &interrupt,
            class_names,
        };
        let train = Arc::new(train);
        let summary = job.run(train.clone(), &validate);
        (summary, skipped_rows(&train, &validate), train.read_counts().resized() + validate.read_counts().resized())
    })
    .await
    .map_err(|e| Error::Training(format!("training thread failed: {e}")))?;
    let (loop_result, skipped_rows, resized_images) = loop_result;
    Ok(RunSummary {
        resumed_from_step,
        wall_seconds: started.elapsed().as_secs_f64(),
        skipped_rows,
        resized_images: resized_images as usize,
        ..loop_result?
    })
}

/// Bad rows skipped so far: in the CSVs and, as they were read, images.
fn skipped_rows(train: &Dataset, validate: &Dataset) -> usize {
    train.skipped.len() + validate.skipped.len() + train.bad_images().len() + validate.bad_images().len()
}

fn check_resumable(spec: &JobSpec, arch: &Architecture, checkpoint: &Checkpoint, location: &str) -> Result<()> {
    let saved = JobSpec::parse(&checkpoint.meta.job, location)?;
    if saved.model != spec.model || checkpoint.meta.num_classes != arch.num_classes {
        return Err(Error::checkpoint(
            location,
            "was written for another model or class count; point checkpoint.dir elsewhere or delete it",
        ));
    }
    Ok(())
}

struct TrainingLoop<'a> {
    spec: &'a JobSpec,
    trainer: Trainer,
    ledger: SampleLedger,
    store: Option<CheckpointStore>,
    handle: tokio::runtime::Handle,
    progress: &'a dyn Progress,
    interrupt: &'a AtomicBool,
    class_names: Vec<String>,
}

impl TrainingLoop<'_> {
    fn run(&mut self, train: Arc<Dataset>, validate: &Dataset) -> Result<RunSummary> {
        let training = &self.spec.training;
        let plan = StepPlan::new(self.spec);
        let batch_size = training.batch_size;
        let rows = train.len() as u64;
        let mut prefetcher = Prefetcher::spawn(
            train.clone(),
            StreamSpec {
                cursor: plan.cursor_at(self.trainer.step),
                global_batch: batch_size,
                rank: 0,
                world: 1,
                augment: self.spec.augment,
                seed: training.seed,
            },
            PREFETCH_DEPTH,
        )?;
        let loop_started = Instant::now();
        let mut trained_images = 0usize;
        let mut interval = StepStats::default();
        let mut last_interval_loss = f64::NAN;
        let mut curve = Vec::new();
        let mut last_eval: Option<(u64, Evaluation)> = None;
        let mut last_checkpoint = None;
        let mut stopped = StopReason::MaxSteps;
        // Counts from this run's first evaluation: a resumed local job starts counting again.
        let mut patience = facetrain_proto::plan::Patience::default();
        while self.trainer.step < training.max_steps {
            if self.interrupt.load(Ordering::Relaxed) {
                stopped = StopReason::Interrupted;
                break;
            }
            let step_started = Instant::now();
            let batch = prefetcher.next_batch()?;
            let data_wait = step_started.elapsed();
            let stats = self.trainer.train_step(&batch, batch_size, None)?;
            self.check_samples(&batch, rows)?;
            trained_images += batch.len();
            interval = interval.merge(stats);
            let step = self.trainer.step;
            self.progress.step(&StepReport {
                step,
                loss: stats.mean_loss(),
                train_accuracy: stats.accuracy(),
                data_wait_seconds: data_wait.as_secs_f64(),
                step_seconds: step_started.elapsed().as_secs_f64(),
                images_per_second: trained_images as f64 / loop_started.elapsed().as_secs_f64().max(1e-9),
            });
            let mut val_accuracy = None;
            if plan.evaluate_after(step) {
                let evaluation = evaluate(&self.trainer, validate)?;
                self.progress.evaluated(step, &evaluation);
                curve.push((step, evaluation.accuracy));
                val_accuracy = Some(evaluation.accuracy);
                last_interval_loss = interval.mean_loss();
                interval = StepStats::default();
                last_eval = Some((step, evaluation));
            }
            if self.store.is_some() && plan.checkpoint_after(step) {
                last_checkpoint = Some(self.save_checkpoint(last_eval.as_ref())?);
            }
            if let Some(reason) = plan.stop_after(step, val_accuracy, &mut patience) {
                stopped = reason;
                break;
            }
        }
        let train_seconds = loop_started.elapsed().as_secs_f64();
        drop(prefetcher);
        let step = self.trainer.step;
        let evaluation = match last_eval {
            Some((at, evaluation)) if at == step => evaluation,
            _ => {
                let evaluation = evaluate(&self.trainer, validate)?;
                self.progress.evaluated(step, &evaluation);
                curve.push((step, evaluation.accuracy));
                evaluation
            }
        };
        let final_eval = Some((step, evaluation.clone()));
        if self.store.is_some() && last_checkpoint.as_ref().is_none_or(|(at, _)| *at != step) {
            last_checkpoint = Some(self.save_checkpoint(final_eval.as_ref())?);
        }
        let train_loss = if interval.count > 0 { interval.mean_loss() } else { last_interval_loss };
        Ok(RunSummary {
            steps: step,
            resumed_from_step: None,
            stopped,
            val_accuracy: evaluation.accuracy,
            train_loss,
            wall_seconds: 0.0,
            train_seconds,
            images_per_second: trained_images as f64 / train_seconds.max(1e-9),
            checkpoint: last_checkpoint.map(|(_, location)| location),
            skipped_rows: 0,
            resized_images: 0,
            accuracy_curve: curve,
            evaluation,
            ledger: self.ledger.clone(),
        })
    }

    /// Checks the batch just trained against the plan (the sample ledger), as the coordinator
    /// does for distributed steps.
    fn check_samples(&mut self, batch: &crate::data::batch::Batch, rows: u64) -> Result<()> {
        let positions: Vec<u64> = batch.consumed().map(|p| p.position).collect();
        let picked_rows: Vec<u32> = batch.consumed().map(|p| p.row as u32).collect();
        let trained = [Trained { worker: "local", positions: &positions, rows: &picked_rows }];
        let batch_size = self.spec.training.batch_size as u64;
        self.ledger
            .record_step(batch_size, rows, &trained)
            .map_err(|v| Error::Training(format!("sample accounting failed at step {}: {v}", self.trainer.step)))
    }

    fn save_checkpoint(&self, evaluation: Option<&(u64, Evaluation)>) -> Result<(u64, String)> {
        let Some(store) = self.store.as_ref() else {
            return Err(Error::Training("no checkpoint folder is configured (checkpoint.dir)".into()));
        };
        let step = self.trainer.step;
        let val_accuracy = evaluation.filter(|(at, _)| *at == step).map(|(_, e)| e.accuracy);
        let checkpoint =
            Checkpoint::of(&self.trainer, self.spec, &self.class_names, val_accuracy, Some(self.ledger.clone()))?;
        let location = self.handle.block_on(store.save(&checkpoint))?;
        self.progress.checkpointed(step, &location.to_string());
        Ok((step, location.to_string()))
    }
}
