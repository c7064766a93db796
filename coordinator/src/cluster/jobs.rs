//! Jobs: submission, cancellation, failure reported by a worker, the end of a job, and the
//! bookkeeping of saves the store refused.

use facetrain_proto::incidents::{IncidentCause, ToilKind};
use facetrain_proto::job::{JobSpec, check_model_fits};

use super::error::{DomainError, Result, unknown_job};
use super::{Cluster, Event, Now};
use crate::conditions::Condition;
use crate::record::{IncidentRecord, JobRecord, JobState, ToilRecord};

/// Hands-on time recorded for a manual action when the person does not say (minutes to notice,
/// decide and act; see docs/operations.md).
pub const DEFAULT_HANDS_ON_SECONDS: f64 = 300.0;

/// The longest `request_id` a client may choose.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// The most hands-on time one action may claim: a week.
const MAX_HANDS_ON_SECONDS: f64 = 7.0 * 24.0 * 3600.0;

impl Cluster {
    /// Checks a submission and builds its record; nothing is accepted until [`Self::accept`]
    /// (the shell saves the record in between, so a store that refuses means no job).
    pub fn prepare_submit(&self, job_toml: &str, submitted_by: &str, request_id: &str, now: Now) -> Result<JobRecord> {
        let spec = JobSpec::parse(job_toml, "job.toml").map_err(|e| DomainError::invalid("job_toml", e.to_string()))?;
        if let Some((key, location)) = spec.relative_locations().first() {
            return Err(DomainError::invalid(
                "job_toml",
                format!(
                    "job.toml: `{key}` = `{location}` is a relative path, which each worker would resolve against its \
                 own working directory: give an absolute path or a URL (s3://, gs://, file://); `facectl submit` \
                 resolves relative paths against the job file"
                ),
            ));
        }
        let classes = spec.dataset.num_classes.unwrap_or(2);
        let share = spec.training.batch_size.div_ceil(spec.workers.count);
        check_model_fits(&spec.model, classes, share, self.limits.max_job_bytes).map_err(|e| {
            DomainError::invalid("job_toml", format!("job.toml: {e} (this coordinator's --max-job-memory-gib)"))
        })?;
        let id = self.new_job_id(now);
        let mut record = JobRecord::queued(
            id,
            spec.name.clone(),
            job_toml.to_string(),
            submitted_by.to_string(),
            spec.training.max_steps,
            now.unix_ms,
        );
        record.request_id = request_id.to_string();
        record.priority = spec.priority;
        Ok(record)
    }

    /// The job an earlier submission under `request_id` created, if any: a retry with the same
    /// job.toml gets it back instead of a second job; another job.toml under the id is refused.
    pub fn submitted_as(&self, request_id: &str, job_toml: &str) -> Result<Option<String>> {
        if request_id.is_empty() {
            return Ok(None);
        }
        if request_id.len() > MAX_REQUEST_ID_BYTES {
            return Err(DomainError::invalid(
                "request_id",
                format!("request_id: at most {MAX_REQUEST_ID_BYTES} bytes, got {}", request_id.len()),
            ));
        }
        match self.jobs.values().find(|job| job.request_id == request_id) {
            None => Ok(None),
            Some(job) if job.job_toml == job_toml => Ok(Some(job.id.clone())),
            Some(job) => Err(DomainError::invalid(
                "request_id",
                format!(
                    "request_id `{request_id}` was already used for another job.toml (job {}): a retry sends the same \
                 request, a new job a new id",
                    job.id
                ),
            )),
        }
    }

    fn new_job_id(&self, now: Now) -> String {
        let mut n = self.jobs.len() as u64;
        loop {
            let id = format!("j-{:x}{:04x}", now.unix_ms, n % 0x10000);
            if !self.jobs.contains_key(&id) {
                return id;
            }
            n += 1;
        }
    }

    /// A job prepared by [`Self::prepare_submit`] and saved.
    pub fn accept(&mut self, job: JobRecord) -> String {
        let id = job.id.clone();
        self.jobs.insert(id.clone(), job);
        id
    }

    /// A manual cancel: recorded as toil with the hands-on time the person gives (0: the default).
    pub fn cancel(&mut self, id: &str, requested_by: &str, hands_on_seconds: f64, now: Now) -> Result<()> {
        check_hands_on(hands_on_seconds)?;
        let job = self.jobs.get_mut(id).ok_or_else(|| unknown_job(id))?;
        if job.state.is_terminal() {
            return Err(DomainError::Precondition(format!("job `{id}` already {}", job.state.name())));
        }
        self.record_toil(id, ToilKind::Cancel, requested_by, hands_on_seconds, now);
        self.finish(id, JobState::Cancelled, format!("cancelled by {requested_by}"), now);
        Ok(())
    }

    /// A person continues an ended job from its latest checkpoint (or from the start when it has
    /// none): it is queued again as the same job, with its history, and may start on fewer
    /// workers than its count. Recorded as toil. A succeeded job needs a `max_steps` beyond it.
    pub fn resume(
        &mut self,
        id: &str,
        requested_by: &str,
        hands_on_seconds: f64,
        max_steps: Option<u64>,
        now: Now,
    ) -> Result<()> {
        check_hands_on(hands_on_seconds)?;
        let job = self.requested(id)?;
        let from = job.latest_checkpoint.as_ref().map_or(0, |c| c.step);
        let target = max_steps.unwrap_or(job.max_steps);
        match job.state {
            JobState::Queued | JobState::Running => {
                return Err(DomainError::Precondition(format!(
                    "job `{id}` is {}: nothing to resume",
                    job.state.name()
                )));
            }
            JobState::Succeeded if max_steps.is_none() => {
                return Err(DomainError::Precondition(format!(
                    "job `{id}` succeeded: give a max_steps above {} to train it further",
                    job.step
                )));
            }
            _ => {}
        }
        if target <= from {
            return Err(DomainError::invalid(
                "max_steps",
                format!("max_steps = {target}: the job resumes from step {from}; expected more"),
            ));
        }
        let mut spec = JobSpec::parse(&job.job_toml, id).map_err(|e| DomainError::Precondition(e.to_string()))?;
        spec.training.max_steps = target;
        spec.validate().map_err(|e| DomainError::invalid("max_steps", e))?;
        self.record_toil(id, ToilKind::Resume, requested_by, hands_on_seconds, now);
        let Some(job) = self.jobs.get_mut(id) else { return Err(unknown_job(id)) };
        job.max_steps = target;
        job.state = JobState::Queued;
        job.finished_unix_ms = 0;
        job.patience = Default::default();
        job.message = format!("resumed by {requested_by} from step {from}");
        self.changed(id);
        self.schedule(now);
        Ok(())
    }

    /// A manual action on `id` in its toil ledger, with the hands-on time the person gave (0: the
    /// default estimate).
    fn record_toil(&mut self, id: &str, kind: ToilKind, by: &str, hands_on_seconds: f64, now: Now) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let seconds = if hands_on_seconds > 0.0 { hands_on_seconds } else { DEFAULT_HANDS_ON_SECONDS };
        job.toil.push(ToilRecord { kind, by: by.into(), unix_ms: now.unix_ms, hands_on_seconds: seconds });
        self.emit(Event::Toil { job: id.to_string(), kind, by: by.into(), hands_on_seconds: seconds });
    }

    /// Whether `id` may be deleted: it exists and has ended (a queued or running job is
    /// cancelled first, so deleting never stops training behind anyone's back).
    pub fn check_delete(&self, id: &str) -> Result<()> {
        let job = self.requested(id)?;
        if !job.state.is_terminal() {
            return Err(DomainError::Precondition(format!(
                "job `{id}` is {}: cancel it before deleting it",
                job.state.name()
            )));
        }
        Ok(())
    }

    /// Forgets an ended job once the store no longer holds it ([`Self::check_delete`] first).
    /// Its manual actions stay counted in the toil totals.
    pub fn forget(&mut self, id: &str) {
        if let Some(job) = self.jobs.remove(id) {
            for toil in &job.toil {
                let total = self.deleted_toil.entry(toil.kind).or_default();
                total.actions += 1;
                total.hands_on_seconds += toil.hands_on_seconds;
            }
            self.unsaved.remove(id);
            self.conditions.retain(|(job, _, _)| job != id);
            self.emit(Event::JobDeleted { job: id.to_string() });
        }
    }

    /// A worker cannot go on with `job` for a reason retrying elsewhere would meet too (its data
    /// is bad, the loss is not finite, it cannot run the job): the job fails with the reason.
    pub fn fail_job(&mut self, worker: &str, job: &str, cause: IncidentCause, reason: &str, now: Now) -> Result<()> {
        if !self.workers.contains_key(worker) {
            return Err(super::error::unknown_worker(worker));
        }
        if self.jobs.get(job).is_none_or(|j| j.state.is_terminal()) {
            return Ok(()); // already ended, on another worker's word
        }
        let cause = if cause.fails_the_job() { cause } else { IncidentCause::BadData };
        let message = format!("{}: {reason}", self.describe(worker));
        self.incident(job, cause, message.clone(), 0.0, now);
        self.finish(job, JobState::Failed, message, now);
        Ok(())
    }

    /// Ends a job: releases its workers, closes what is open, records the running time.
    pub(super) fn finish(&mut self, id: &str, to: JobState, message: String, now: Now) {
        if self.jobs.get(id).is_none_or(|j| j.state.is_terminal()) {
            return;
        }
        let mut running = 0.0;
        if let Some(active) = self.active.remove(id) {
            running = now.at.saturating_duration_since(active.running_since).as_secs_f64();
            for member in active.run.members.iter().chain(&active.run.joining) {
                if let Some(worker) = self.workers.get_mut(member) {
                    worker.release = Some(id.to_string());
                    let name = worker.name.clone();
                    self.emit(Event::MemberLeft { job: id.to_string(), name });
                }
            }
        }
        self.close_all(id, now);
        let Some(job) = self.jobs.get_mut(id) else { return };
        job.running_seconds += running;
        job.state = to;
        job.message = message.clone();
        job.finished_unix_ms = now.unix_ms;
        self.emit(Event::JobFinished { job: id.to_string(), state: to, message });
        self.changed(id);
    }

    /// A job that was running when the coordinator stopped: queued again to resume from its
    /// latest checkpoint; the restart is an incident on it.
    pub(super) fn requeue_after_restart(&mut self, id: &str, now: Now) {
        let Some(job) = self.jobs.get_mut(id) else { return };
        let rewind = job.latest_checkpoint.as_ref().map_or(0, |c| c.step);
        let lost_steps = job.step.saturating_sub(rewind);
        let per_step = if job.step > 0 { job.running_seconds / job.step as f64 } else { 0.0 };
        let detail = format!("coordinator restarted at step {}; resuming from step {rewind}", job.step);
        let step = job.step + 1;
        job.incidents.push(IncidentRecord::detected(
            IncidentCause::CoordinatorRestart,
            detail,
            step,
            now.unix_ms,
            lost_steps as f64 * per_step,
        ));
        // Conditions (stragglers, storage) lived in the old process's memory: incidents they
        // kept open close once the job is past the step they struck, as any other.
        job.state = JobState::Queued;
        job.message = "resuming after a coordinator restart".into();
        self.changed(id);
    }

    /// The store took `job`'s latest record.
    pub fn store_saved(&mut self, job: &str, now: Now) {
        if self.unsaved.remove(job) {
            self.close_condition(job, &Condition::JobStore, now);
        }
    }

    /// The store refused `job`'s latest record: it stays in memory under a `job_store`
    /// incident, and the shell retries (see [`Self::unsaved`]).
    pub fn store_refused(&mut self, job: &str, error: &str, now: Now) {
        self.unsaved.insert(job.to_string());
        self.open_condition(job, Condition::JobStore, error.to_string(), now);
    }

    /// Jobs whose latest record the store has not taken yet.
    pub fn unsaved(&self) -> Vec<String> {
        self.unsaved.iter().cloned().collect()
    }

    /// How many workers `job` wants (1 if its spec cannot be read).
    pub(super) fn workers_wanted(&self, job: &str) -> usize {
        if let Some(active) = self.active.get(job) {
            return active.run.wanted_workers();
        }
        self.jobs.get(job).and_then(|j| JobSpec::parse(&j.job_toml, job).ok()).map_or(1, |s| s.workers.count)
    }
}

/// The hands-on time a person may claim for one action.
fn check_hands_on(seconds: f64) -> Result<()> {
    if seconds.is_finite() && (0.0..=MAX_HANDS_ON_SECONDS).contains(&seconds) {
        return Ok(());
    }
    Err(DomainError::invalid(
        "hands_on",
        format!(
            "hands_on = {seconds}: expected a number of seconds in 0..={MAX_HANDS_ON_SECONDS} (0: the default \
             estimate of {DEFAULT_HANDS_ON_SECONDS} s)"
        ),
    ))
}
