//! A worker's hold on one job: its datasets (loaded once), its model replica, and the step
//! task: load state if told to, compute this worker's share, exchange gradients through the
//! coordinator, apply, validate/checkpoint/share state if asked, report.

use std::sync::Arc;
use std::time::Instant;

use facetrain_proto::incidents::IncidentCause;
use facetrain_proto::internal;
use facetrain_proto::job::{GradientDtype, JobSpec};
use tokio::runtime::Handle;
use tonic::Status;
use tracing::Instrument;

use super::Placement;
use super::client::{CallError, CoordinatorClient};
use super::metrics::{DataTotals, WorkerMetrics};
use super::ring::Ring;
use super::upload::{UploadNews, Uploader};
use crate::backend::training_device;
use crate::checkpoint::{Checkpoint, read_checkpoint};
use crate::data::batch::assemble;
use crate::data::dataset::{Dataset, Sample};
use crate::data::lookahead::{Lookahead, StepKey};
use crate::data::shard::Pick;
use crate::error::Error;
use crate::model::Architecture;
use crate::params;
use crate::train::evaluate::{Evaluation, evaluate, evaluate_share};
use crate::train::exchange::GradientExchange;
use crate::train::run::load_job_datasets;
use crate::train::trainer::Trainer;

#[derive(Debug)]
pub enum StepError {
    /// The round was abandoned (a member left); the coordinator will hand out the redo.
    Abandoned(String),
    /// This job cannot go on (bad data, a diverged model, more than this worker can run):
    /// report it with its cause and drop the job.
    JobFailed { cause: IncidentCause, reason: String },
    /// The coordinator is gone or forgot us: reconnect.
    Coordinator(Status),
    /// The checkpoint this worker was told to load is corrupt: the coordinator falls back.
    UnreadableCheckpoint { location: String, reason: String },
}

impl From<CallError> for StepError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Redo(reason) => Self::Abandoned(reason),
            CallError::Lost(status) => Self::Coordinator(status),
        }
    }
}

impl StepError {
    /// A worker-side error that ends the job, with the incident cause it is filed under.
    /// A step's samples could not be read. A store that cannot be reached may come back: the
    /// step is redone; a bad image under `on_bad_row = "fail"` ends the job.
    fn read_failed(error: Error) -> Self {
        match error {
            Error::Storage { .. } => Self::Abandoned(error.to_string()),
            other => Self::job_failed(other),
        }
    }

    fn job_failed(error: Error) -> Self {
        let cause = match &error {
            Error::NonFinite(_) => IncidentCause::NonFinite,
            Error::Unsupported(_) => IncidentCause::UnsupportedJob,
            _ => IncidentCause::BadData,
        };
        Self::JobFailed { cause, reason: error.to_string() }
    }
}

/// Steps whose samples are read ahead of the one computing.
const LOOKAHEAD_STEPS: usize = 2;

pub struct JobSession {
    pub job_id: String,
    spec: JobSpec,
    train: Arc<Dataset>,
    validate: Arc<Dataset>,
    /// The next steps' samples, read while this one computes.
    lookahead: Lookahead,
    /// What the datasets had read when the metrics last heard.
    data_reported: DataTotals,
    /// `None` until state is loaded (and while a step runs on the training thread).
    trainer: Option<Trainer>,
    uploads: Uploader,
    /// Upload news not yet acknowledged by the coordinator (kept if a report fails).
    unreported: Option<UploadNews>,
}

struct StepResult {
    stats: crate::train::trainer::StepStats,
    timings: crate::train::trainer::StepTimings,
    reduce_bytes: u64,
    checksum: u32,
    validation: Option<Evaluation>,
    /// A checkpoint due at this step, to upload in the background.
    checkpoint: Option<Checkpoint>,
    state: Option<Vec<u8>>,
    data_seconds: f64,
    compute_seconds: f64,
    reduce_seconds: f64,
}

impl JobSession {
    async fn open(task: &internal::TrainStep, placement: &Placement) -> Result<Self, StepError> {
        let mut spec = JobSpec::parse(&task.job_toml, &task.job_id).map_err(|e| StepError::job_failed(e.into()))?;
        placement.host.place(&mut spec);
        if GradientDtype::parse(&task.gradient_dtype).is_none() {
            let reason = format!("gradient dtype `{}` is not one this worker knows (f32, bf16)", task.gradient_dtype);
            return Err(StepError::JobFailed { cause: IncidentCause::UnsupportedJob, reason });
        }
        let (train, validate) = load_job_datasets(&spec).await.map_err(StepError::job_failed)?;
        let share = spec.training.batch_size.div_ceil(spec.workers.count);
        crate::memory::check_fits(&spec, train.num_classes, share, placement.max_job_bytes)
            .map_err(StepError::job_failed)?;
        let train = Arc::new(train);
        let steps = (spec.training.batch_size, spec.training.max_steps);
        let lookahead = Lookahead::new(train.clone(), spec.training.seed, steps, LOOKAHEAD_STEPS);
        Ok(Self {
            job_id: task.job_id.clone(),
            spec,
            train,
            validate: Arc::new(validate),
            lookahead,
            data_reported: DataTotals::default(),
            trainer: None,
            uploads: Uploader::default(),
            unreported: None,
        })
    }

    pub async fn run_step(
        slot: &mut Option<JobSession>,
        client: &CoordinatorClient,
        worker: &str,
        task: internal::TrainStep,
        (metrics, ring, placement): (&WorkerMetrics, &Arc<Ring>, &Placement),
    ) -> Result<(), StepError> {
        let session = match slot.take() {
            Some(session) if session.job_id == task.job_id => slot.insert(session),
            _ => slot.insert(Self::open(&task, placement).await?),
        };
        session.ensure_state(&task, client, worker).await?;
        let result = session.compute(&task, client, worker, ring).await?;
        metrics.step(
            &task.job_id,
            &task.reduction,
            result.stats.count,
            result.data_seconds,
            result.timings,
            result.reduce_bytes,
        );
        let data = session.data_totals();
        metrics.data(&task.job_id, session.data_reported, data);
        session.data_reported = data;
        if let Some(state) = result.state {
            client.push_state(worker, &task.job_id, task.step + 1, state).await?;
        }
        let upload = session.checkpoint(result.checkpoint, task.step + 1).await;
        client
            .report_step(internal::StepReport {
                worker_id: worker.to_string(),
                job_id: task.job_id.clone(),
                step: task.step + 1,
                round: task.round,
                loss_sum: result.stats.loss_sum,
                correct: result.stats.correct as u64,
                samples: result.stats.count as u64,
                parameter_checksum: result.checksum,
                val_accuracy: result.validation.as_ref().map(|e| e.accuracy),
                val_samples: result.validation.as_ref().map_or(0, |e| e.samples as u64),
                val_correct: result.validation.as_ref().map_or(0, |e| e.correct() as u64),
                checkpoint: upload.as_ref().and_then(|u| u.result.clone().ok()).unwrap_or_default(),
                compute_seconds: result.compute_seconds,
                reduce_seconds: result.reduce_seconds,
                data_seconds: result.data_seconds,
                checkpoint_seconds: upload.as_ref().map_or(0.0, |u| u.seconds),
                checkpoint_failed: upload.as_ref().is_some_and(|u| u.result.is_err()),
                checkpoint_step: upload.as_ref().map_or(0, |u| u.step),
                checkpoint_error: upload.and_then(|u| u.result.err()).unwrap_or_default(),
            })
            .await?;
        session.unreported = None;
        Ok(())
    }

    fn data_totals(&self) -> DataTotals {
        let (train, validate) = (self.train.read_counts(), self.validate.read_counts());
        DataTotals {
            bytes: train.bytes() + validate.bytes(),
            requests: train.requests() + validate.requests(),
            cache_bytes: self.train.cache_bytes(),
        }
    }

    /// Starts uploading a due checkpoint and collects a finished upload for the report. The
    /// job's last step waits for its checkpoint, so a finished job always has its final one.
    async fn checkpoint(&mut self, due: Option<Checkpoint>, step: u64) -> Option<UploadNews> {
        let last = step >= self.spec.training.max_steps;
        let mut news = self.uploads.finished(last && due.is_some()).await;
        if let Some(checkpoint) = due
            && !self.uploads.start(checkpoint, &self.spec.checkpoint.dir, self.spec.checkpoint.keep)
        {
            tracing::info!(step, "checkpoint skipped: the previous upload is still running");
        }
        if last {
            news = newer(news, self.uploads.finished(true).await);
        }
        self.unreported = newer(self.unreported.take(), news);
        self.unreported.clone()
    }

    async fn ensure_state(
        &mut self,
        task: &internal::TrainStep,
        client: &CoordinatorClient,
        worker: &str,
    ) -> Result<(), StepError> {
        let source = internal::StateSource::try_from(task.state_source).unwrap_or(internal::StateSource::Unspecified);
        let device =
            training_device(self.spec.workers.backend, &self.spec.workers.device).map_err(StepError::job_failed)?;
        let arch = Architecture::new(self.spec.model.clone(), self.train.num_classes);
        let loaded = match source {
            internal::StateSource::Keep | internal::StateSource::Unspecified => None,
            internal::StateSource::Fresh => Some(Trainer::new(arch, &self.spec.training, device)),
            internal::StateSource::Checkpoint => {
                let unreadable =
                    |reason: String| StepError::UnreadableCheckpoint { location: task.checkpoint.clone(), reason };
                let (location, checkpoint) = read_checkpoint(&task.checkpoint).await.map_err(|e| match e {
                    // A missing file will not come back; an unreachable store may: redo the step
                    // (the load deadline bounds this).
                    Error::Storage { ref message, .. } if message != "not found" => StepError::Abandoned(e.to_string()),
                    other => unreadable(other.to_string()),
                })?;
                Some(
                    Trainer::from_checkpoint(&checkpoint, &location.to_string(), device)
                        .map_err(|e| unreadable(e.to_string()))?,
                )
            }
            internal::StateSource::Peer => {
                let bytes = client.fetch_state(worker, &task.job_id, task.step).await?;
                let checkpoint = Checkpoint::decode(&bytes)
                    .map_err(|e| StepError::Abandoned(format!("peer state unreadable: {e}")))?;
                Some(Trainer::from_checkpoint(&checkpoint, "peer state", device).map_err(StepError::job_failed)?)
            }
        };
        if let Some(trainer) = loaded {
            self.trainer = Some(trainer);
        }
        match &self.trainer {
            Some(trainer) if trainer.step == task.step => Ok(()),
            Some(trainer) => Err(StepError::Abandoned(format!(
                "replica is at step {} but the task is step {}",
                trainer.step, task.step
            ))),
            None => Err(StepError::Abandoned("no model state yet".into())),
        }
    }

    /// The step on a blocking thread; the exchange calls back into the runtime.
    async fn compute(
        &mut self,
        task: &internal::TrainStep,
        client: &CoordinatorClient,
        worker: &str,
        ring: &Arc<Ring>,
    ) -> Result<StepResult, StepError> {
        let batch_size = self.spec.training.batch_size;
        if task.rank >= task.world || task.world as usize > batch_size {
            let reason =
                format!("the task gives rank {} of {} workers for a batch of {batch_size}", task.rank, task.world);
            return Err(StepError::job_failed(Error::InvalidJob(reason)));
        }
        let key = StepKey { cursor: task.cursor, rank: task.rank as usize, world: task.world as usize };
        let mut picks = self.lookahead.picks(key);
        crate::fault::alter_picks(&mut picks, task.step + 1);
        let started = Instant::now();
        let read = tracing::info_span!("read", samples = picks.len());
        let samples = self.lookahead.take(key, &picks).instrument(read).await.map_err(StepError::read_failed)?;
        let data = (picks, samples, started);
        let mut trainer = self.trainer.take().ok_or_else(|| StepError::Abandoned("no model state yet".into()))?;
        let train = self.train.clone();
        let validate = self.validate.clone();
        let spec = self.spec.clone();
        let task = task.clone();
        // The dtype on the wire is the task's: both sides encode and decode with it.
        let dtype = GradientDtype::parse(&task.gradient_dtype).unwrap_or_default();
        let route = match (task.world, task.reduction.as_str()) {
            (1, _) => Route::Alone,
            (_, "ring") => Route::Ring(ring.clone()),
            _ => Route::Coordinator,
        };
        let mut exchange = RemoteExchange {
            handle: Handle::current(),
            client: client.clone(),
            worker: worker.to_string(),
            task: task.clone(),
            dtype,
            route,
            samples: internal::TrainedSamples::default(),
            seconds: 0.0,
            bytes: 0,
        };
        let span = tracing::info_span!("train_step", job_id = %task.job_id, step = task.step, rank = task.rank, world = task.world);
        let joined = tokio::task::spawn_blocking(move || {
            let _step = span.entered();
            let result = step_on_thread(&mut trainer, (&train, data), &validate, &spec, &task, &mut exchange);
            (trainer, result)
        })
        .await
        .map_err(|e| StepError::job_failed(Error::Training(format!("training thread failed: {e}"))))?;
        let (trainer, result) = joined;
        self.trainer = Some(trainer);
        match result {
            Ok(result) => Ok(result),
            Err(Error::Exchange { retry: true, message }) => Err(StepError::Abandoned(message)),
            Err(Error::Exchange { retry: false, message }) => Err(StepError::Coordinator(Status::unavailable(message))),
            Err(other) => Err(StepError::job_failed(other)),
        }
    }
}

/// The news worth reporting: a success over a failure, the later of two alike.
fn newer(old: Option<UploadNews>, new: Option<UploadNews>) -> Option<UploadNews> {
    match (old, new) {
        (Some(old), Some(new)) if old.result.is_ok() && new.result.is_err() => Some(old),
        (old, new) => new.or(old),
    }
}

fn step_on_thread(
    trainer: &mut Trainer,
    (train, (picks, samples, started)): (&Dataset, (Vec<Pick>, Vec<Sample>, Instant)),
    validate: &Dataset,
    spec: &JobSpec,
    task: &internal::TrainStep,
    exchange: &mut RemoteExchange,
) -> crate::Result<StepResult> {
    let batch_size = spec.training.batch_size;
    let augment = Some((&spec.augment, spec.training.seed));
    let batch = tracing::info_span!("data").in_scope(|| assemble(train, picks, samples, augment));
    let data_seconds = started.elapsed().as_secs_f64();
    // What the batch consumed travels with the gradient: the coordinator's sample ledger checks it.
    exchange.samples = internal::TrainedSamples {
        positions: batch.consumed().map(|p| p.position).collect(),
        rows: batch.consumed().map(|p| p.row as u32).collect(),
        dataset_rows: train.len() as u64,
    };
    let stats = trainer.train_step(&batch, batch_size, Some(exchange))?;
    let compute_seconds = trainer.last_timings.compute + trainer.last_timings.apply;
    let validation = match (task.evaluate, task.write_checkpoint) {
        (false, _) => None,
        (true, true) => Some(evaluate(trainer, validate)?),
        (true, false) => Some(evaluate_share(trainer, validate, task.rank as usize, task.world as usize)?),
    };
    let val_accuracy = validation.as_ref().filter(|_| task.write_checkpoint).map(|e| e.accuracy);
    let needs_state = task.write_checkpoint || task.push_state;
    let state =
        needs_state.then(|| Checkpoint::of(trainer, spec, &train.class_names, val_accuracy, None)).transpose()?;
    Ok(StepResult {
        stats,
        timings: trainer.last_timings,
        reduce_bytes: exchange.bytes,
        checksum: params::checksum(&trainer.parameters()),
        validation,
        state: state.as_ref().filter(|_| task.push_state).map(|s| s.encode()),
        checkpoint: state.filter(|_| task.write_checkpoint),
        data_seconds,
        compute_seconds,
        reduce_seconds: exchange.seconds,
    })
}

/// Where a step's gradient goes.
enum Route {
    /// Pushed to the coordinator, which sums the members' and streams the sum back.
    Coordinator,
    /// Around the ring of peers, with the coordinator as the barrier.
    Ring(Arc<Ring>),
    /// Nowhere: the only member's gradient is already the sum. The coordinator still hears of
    /// the step (and its samples, for the ledger) and still releases it, as for a ring.
    Alone,
}

/// Gradient exchange for a distributed step: through the coordinator (push this worker's
/// gradient, pull the sum), or around the ring of peers with the coordinator as the barrier
/// (the step is applied only once every member finished, so a lost member never leaves the
/// replicas at different steps), or not at all for a job's only member.
struct RemoteExchange {
    handle: Handle,
    client: CoordinatorClient,
    worker: String,
    task: internal::TrainStep,
    dtype: GradientDtype,
    route: Route,
    /// The samples of this step's batch, sent with the gradient.
    samples: internal::TrainedSamples,
    seconds: f64,
    /// Gradient bytes sent plus received in the last exchange.
    bytes: u64,
}

impl RemoteExchange {
    async fn through_coordinator(&self, step: u64, gradients: &mut [f32]) -> Result<u64, CallError> {
        let (client, worker, job, at) = (&self.client, &self.worker, &self.task.job_id, (step, self.task.round));
        client.push_gradients(worker, job, at, gradients, (self.dtype, &self.samples)).await?;
        client.pull_gradients(worker, job, at, gradients, self.dtype).await?;
        Ok(2 * (gradients.len() * facetrain_proto::gradient_element_bytes(self.dtype)) as u64)
    }

    /// The only member: its gradient is the sum. Saying it is done releases the step (or
    /// learns that the round was abandoned) without a byte of gradient on the wire.
    async fn alone(&self, step: u64) -> Result<u64, CallError> {
        let (client, worker, job, round) = (&self.client, &self.worker, &self.task.job_id, self.task.round);
        client.reduce_done(worker, job, (step, round), &self.samples).await?;
        client.pull_gradients(worker, job, (step, round), &mut [], self.dtype).await?;
        Ok(0)
    }

    async fn around_the_ring(&self, ring: &Ring, step: u64, gradients: &mut [f32]) -> Result<u64, CallError> {
        let (client, worker, job, round) = (&self.client, &self.worker, &self.task.job_id, self.task.round);
        // Answers once every member is done, or ABORTED as soon as the round is abandoned
        // (a member was lost): that also cancels a ring waiting on the lost member.
        let mut nothing = [];
        let released = client.pull_gradients(worker, job, (step, round), &mut nothing, self.dtype);
        tokio::pin!(released);
        let sent = tokio::select! {
            reduced = ring.all_reduce(gradients, &self.task, self.dtype) => reduced?,
            early = &mut released => {
                early?;
                let early = "the coordinator released the step before this worker finished its ring";
                return Err(Status::internal(early).into());
            }
        };
        client.reduce_done(worker, job, (step, round), &self.samples).await?;
        released.await?;
        Ok(2 * sent) // a ring receives as much as it sends
    }
}

impl GradientExchange for RemoteExchange {
    fn moves_gradients(&self) -> bool {
        !matches!(self.route, Route::Alone)
    }

    fn all_reduce(&mut self, step: u64, gradients: &mut [f32]) -> crate::Result<()> {
        let started = Instant::now();
        let result = match &self.route {
            Route::Ring(ring) => self.handle.block_on(self.around_the_ring(ring, step, gradients)),
            Route::Coordinator => self.handle.block_on(self.through_coordinator(step, gradients)),
            Route::Alone => self.handle.block_on(self.alone(step)),
        };
        self.seconds = started.elapsed().as_secs_f64();
        result
            .map(|bytes| self.bytes = bytes)
            .map_err(|error| Error::Exchange { retry: matches!(error, CallError::Redo(_)), message: error.to_string() })
    }
}
