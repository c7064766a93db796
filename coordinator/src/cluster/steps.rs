//! The running job's steps: gradients pushed and pulled, ring rounds marked done, reports
//! turned into an applied step (checked against the sample ledger), checkpoints noted or
//! rejected.

use std::sync::Arc;

use facetrain_proto::incidents::IncidentCause;
use facetrain_proto::internal;
use facetrain_proto::ledger::{SampleLedger, Trained};
use facetrain_proto::plan::{StepPlan, StopReason};

use super::error::{DomainError, Result, not_running, unknown_worker};
use super::{Cluster, Event, Now};
use crate::conditions::{Condition, SLOW_TO_REPORT, WINDOW};
use crate::history::{self, HistoryPoint};
use crate::record::{CheckpointRef, JobState};
use crate::run::{Pull, PushError, Report, StepOutcome};

impl From<PushError> for DomainError {
    fn from(error: PushError) -> Self {
        match error {
            PushError::Stale { .. } => DomainError::Stale(error.to_string()),
            PushError::NotMember | PushError::Bad(_) => DomainError::Precondition(error.to_string()),
        }
    }
}

impl Cluster {
    fn check_worker(&self, worker: &str) -> Result<()> {
        self.workers.contains_key(worker).then_some(()).ok_or_else(|| unknown_worker(worker))
    }

    /// One chunk of `worker`'s gradient (coordinator strategy), in the job's wire dtype. A
    /// malformed or non-finite gradient evicts the sender. Returns true when the sum was released.
    pub fn push_chunk(&mut self, worker: &str, chunk: &internal::GradientChunk, now: Now) -> Result<bool> {
        self.check_worker(worker)?;
        let (_, active) = self.running(&chunk.job_id).ok_or_else(|| not_running(&chunk.job_id))?;
        let decoded = facetrain_proto::decode_gradients(&chunk.data, active.run.gradient_dtype())
            .ok_or(crate::reduce::BadGradient::Ragged(chunk.data.len()));
        let result =
            decoded.map_err(PushError::from).and_then(|values| active.run.add_chunk(worker, chunk, &values, now.at));
        match result {
            Ok(released) => {
                self.emit(Event::ReduceBytes { job: chunk.job_id.clone(), bytes: chunk.data.len() as u64 });
                Ok(released)
            }
            Err(PushError::Bad(bad)) => {
                let detail = format!("evicted: {bad}");
                self.lose_worker(worker, IncidentCause::BadGradient, &detail, now);
                Err(DomainError::invalid("data", detail))
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Ring strategy: `worker` finished its all-reduce of (job, step, round), with the samples
    /// its gradient came from.
    pub fn reduce_done(&mut self, worker: &str, request: &internal::ReduceDoneRequest, now: Now) -> Result<bool> {
        self.check_worker(worker)?;
        let (_, active) = self.running(&request.job_id).ok_or_else(|| not_running(&request.job_id))?;
        let samples = request.samples.clone().unwrap_or_default();
        Ok(active.run.mark_reduced(worker, (request.step, request.round), samples, now.at)?)
    }

    /// The sum of (job, step, round): ready, pending, or abandoned.
    pub fn pull(&self, job: &str, step: u64, round: u64) -> Pull {
        match self.active.get(job) {
            Some(active) => active.run.pull(step, round),
            None => Pull::Aborted,
        }
    }

    /// The wire dtype of `job`'s gradients (f32 when it is not running).
    pub fn gradient_dtype(&self, job: &str) -> facetrain_proto::job::GradientDtype {
        self.active.get(job).map(|a| a.run.gradient_dtype()).unwrap_or_default()
    }

    pub fn store_state(&mut self, worker: &str, job: &str, step: u64, bytes: Vec<u8>) -> Result<()> {
        let active = self.active.get_mut(job).filter(|a| a.run.is_member(worker));
        let active = active.ok_or_else(|| DomainError::Precondition("not a member of a running job".into()))?;
        active.run.store_state(step, bytes);
        Ok(())
    }

    pub fn state(&self, job: &str, step: u64) -> Result<Arc<Vec<u8>>> {
        self.active
            .get(job)
            .and_then(|a| a.run.state_for(step))
            .ok_or_else(|| DomainError::NotFound(format!("no state for job `{job}` at step {step}")))
    }

    /// `worker` applied the step and reports it; the step completes once every member has.
    pub fn report(&mut self, worker: &str, report: &internal::StepReport, now: Now) -> Result<()> {
        self.check_worker(worker)?;
        let job = report.job_id.clone();
        self.running(&job).ok_or_else(|| not_running(&job))?;
        self.note_checkpoint(worker, report, now);
        let parsed = Report {
            loss_sum: report.loss_sum,
            correct: report.correct,
            samples: report.samples,
            checksum: report.parameter_checksum,
            val_accuracy: report.val_accuracy,
            val_counts: (report.val_correct, report.val_samples),
            compute_seconds: report.compute_seconds,
        };
        let (_, active) = self.running(&job).ok_or_else(|| not_running(&job))?;
        if let Some(outcome) = active.run.report(worker, report.step, report.round, parsed, now.at)? {
            self.complete_step(&job, outcome, now);
        }
        Ok(())
    }

    /// Every member reported: check the samples against the ledger, move the job on, resolve
    /// what the step got past, and end the job if the plan says so.
    pub(super) fn complete_step(&mut self, job: &str, outcome: StepOutcome, now: Now) {
        let Some((record, active)) = self.running(job) else { return };
        let batch = active.run.spec.training.batch_size as u64;
        let checked = check_samples(&record.ledger, batch, &outcome);
        active.run.advance(now.at);
        let (step, workers) = (active.run.step, active.run.members.len());
        let plan = StepPlan::new(&active.run.spec);
        let stop = plan.stop_after(step, outcome.val_accuracy, &mut record.patience);
        let patience = record.patience;
        record.step = step;
        record.cursor = active.run.cursor;
        record.samples_trained += outcome.trained.iter().map(|(_, t)| t.positions.len() as u64).sum::<u64>();
        record.high_water_step = record.high_water_step.max(step);
        record.train_loss = outcome.loss;
        record.train_accuracy = Some(outcome.train_accuracy);
        record.learning_rate = Some(active.run.spec.training.learning_rate().at(step - 1));
        if outcome.val_accuracy.is_some() {
            record.val_accuracy = outcome.val_accuracy;
        }
        if let Ok(ledger) = &checked {
            record.ledger = ledger.clone();
            // A checkpoint of this step reported before the step completed gets its ledger now.
            let checkpoints = record.checkpoints.iter_mut().chain(record.latest_checkpoint.iter_mut());
            for checkpoint in checkpoints.filter(|c| c.step == step && c.ledger.is_none()) {
                checkpoint.ledger = Some(ledger.clone());
            }
            if plan.checkpoint_after(step) {
                active.ledgers.insert(step, ledger.clone());
            }
        }
        let last = stop.is_some() || step >= record.max_steps;
        let point = history::records(step, outcome.val_accuracy.is_some(), last).then(|| HistoryPoint {
            step,
            unix_ms: now.unix_ms,
            train_loss: outcome.loss,
            train_accuracy: outcome.train_accuracy,
            val_accuracy: outcome.val_accuracy,
            learning_rate: record.learning_rate.unwrap_or_default(),
            step_seconds: outcome.seconds,
            samples_per_second: if outcome.seconds > 0.0 { batch as f64 / outcome.seconds } else { 0.0 },
            workers: workers as u32,
        });
        let members: Vec<String> = outcome.reports.iter().map(|(w, _)| w.clone()).collect();
        let (slowed, recovered) = active.stragglers.observe(&members, &outcome.stragglers);
        let compute = outcome.reports.iter().map(|(w, r)| (self.name_of(w), r.compute_seconds)).collect();
        if let Some(point) = point {
            self.emit(Event::History { job: job.to_string(), point });
        }
        self.emit(Event::StepApplied { job: job.to_string(), step, seconds: outcome.seconds, compute });
        self.changed(job);
        if let Err(violation) = checked {
            let message = format!("sample accounting failed at step {step}: {violation}");
            self.incident(job, IncidentCause::SampleAccounting, message.clone(), 0.0, now);
            self.finish(job, JobState::Failed, message, now);
            return;
        }
        self.resolve_progress(job, now);
        for worker in slowed {
            let seconds = outcome.reports.iter().find(|(w, _)| *w == worker).map_or(0.0, |(_, r)| r.compute_seconds);
            let detail = format!(
                "{}: {seconds:.2} s compute in the last step; behind the others (over twice their median) in \
                 {SLOW_TO_REPORT} of the last {WINDOW} steps",
                self.describe(&worker)
            );
            self.open_condition(job, Condition::Straggler(worker), detail, now);
        }
        for worker in recovered {
            self.close_condition(job, &Condition::Straggler(worker), now);
        }
        if outcome.diverged {
            let message = format!("replicas diverged at step {step} (parameter checksums differ)");
            self.incident(job, IncidentCause::ReplicasDiverged, message.clone(), 0.0, now);
            self.finish(job, JobState::Failed, message, now);
        } else if let Some(reason) = stop {
            let message = match reason {
                StopReason::TargetAccuracy => format!(
                    "reached validation accuracy {:.3} at step {step}",
                    outcome.val_accuracy.unwrap_or_default()
                ),
                StopReason::EarlyStopped => format!(
                    "early stopped at step {step}: validation accuracy did not improve on {:.3} for {} evaluations",
                    patience.best.unwrap_or_default(),
                    patience.evaluations_without_improvement
                ),
                _ => format!("completed {step} steps with {workers} worker{}", if workers == 1 { "" } else { "s" }),
            };
            self.finish(job, JobState::Succeeded, message, now);
        }
    }

    /// A checkpoint upload finished (it runs in the background, so it may be of an earlier step)
    /// or failed: the latest checkpoint moves on, or the storage incident opens.
    fn note_checkpoint(&mut self, worker: &str, report: &internal::StepReport, now: Now) {
        let job = report.job_id.as_str();
        if report.checkpoint_failed {
            let step = report.checkpoint_step;
            self.emit(Event::CheckpointFailed { job: job.into(), step, error: report.checkpoint_error.clone() });
            let detail = format!("checkpoint upload failed on {}: {}", self.describe(worker), report.checkpoint_error);
            self.open_condition(job, Condition::CheckpointStorage, detail, now);
            return;
        }
        if report.checkpoint.is_empty() {
            return;
        }
        let Some((record, active)) = self.running(job) else { return };
        let step = if report.checkpoint_step > 0 { report.checkpoint_step } else { report.step };
        let plan = StepPlan::new(&active.run.spec);
        let ledger = active.ledgers.get(&step).cloned();
        active.ledgers.retain(|at, _| *at > step);
        let checkpoint = CheckpointRef {
            location: report.checkpoint.clone(),
            step,
            cursor: plan.cursor_at(step),
            written_unix_ms: now.unix_ms,
            ledger,
        };
        record.record_checkpoint(checkpoint, active.run.spec.checkpoint.keep);
        self.emit(Event::CheckpointRecorded { job: job.into(), step, seconds: report.checkpoint_seconds });
        self.changed(job);
        self.close_condition(job, &Condition::CheckpointStorage, now);
    }

    /// A worker could not read the checkpoint it was told to load: that checkpoint is forgotten
    /// and everyone restarts from the one before it (or from scratch if none is left).
    pub fn reject_checkpoint(&mut self, worker: &str, job: &str, location: &str, reason: &str, now: Now) -> Result<()> {
        self.check_worker(worker)?;
        let Some(record) = self.jobs.get_mut(job).filter(|j| !j.state.is_terminal()) else { return Ok(()) };
        if !record.knows_checkpoint(location) {
            return Ok(()); // already rejected on another worker's word
        }
        record.reject_checkpoint(location);
        let fallback =
            record.latest_checkpoint.as_ref().map_or("the start".to_string(), |c| format!("step {}", c.step));
        let detail = format!("{location}: {reason}; resuming from {fallback}");
        self.incident(job, IncidentCause::CorruptCheckpoint, detail, 0.0, now);
        if let Some(active) = self.active.get_mut(job) {
            active.run.remove_everyone(now.at);
        }
        self.schedule(now);
        Ok(())
    }
}

/// The ledger after `outcome`'s samples, or why they are not the step's global batch.
fn check_samples(
    ledger: &SampleLedger,
    batch: u64,
    outcome: &StepOutcome,
) -> std::result::Result<SampleLedger, String> {
    let dataset_rows = outcome.trained.first().map_or(0, |(_, t)| t.dataset_rows);
    if let Some((worker, t)) = outcome.trained.iter().find(|(_, t)| t.dataset_rows != dataset_rows) {
        return Err(format!(
            "{worker} trains on {} rows, the others on {dataset_rows}: not the same dataset",
            t.dataset_rows
        ));
    }
    let trained: Vec<Trained<'_>> =
        outcome.trained.iter().map(|(w, t)| Trained { worker: w, positions: &t.positions, rows: &t.rows }).collect();
    let mut next = ledger.clone();
    next.record_step(batch, dataset_rows, &trained).map_err(|v| v.0)?;
    Ok(next)
}
