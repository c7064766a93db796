//! The coordinator's shared state: jobs (persisted in the store), registered workers, and the
//! running job's [`JobRun`]. Services call in here; waiting is done on a version counter that
//! every change bumps, so a waiter never misses a change between checking and sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use facetrain_proto::job::JobSpec;
use facetrain_proto::{ErrorCode, pb};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::conditions::{Condition, StragglerTracker};
use crate::metrics::CoordinatorMetrics;
use crate::record::{CheckpointRef, IncidentRecord, JobRecord, JobState, ToilRecord, now_unix_ms};
use crate::run::{JobRun, Pull, PushError, Report, StateSource, StepOutcome};
use crate::store::{JobStore, StoreError};

#[derive(Debug, Clone)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    /// A worker silent this long is lost.
    pub heartbeat_timeout: Duration,
    /// Step deadline: k x p99 of recent steps, never below the floor.
    pub step_deadline_floor: Duration,
    pub step_deadline_factor: f64,
    /// Deadline for a round in which a worker loads data and state.
    pub load_deadline: Duration,
    /// How long a queued job waits for `workers.count` workers before starting with fewer.
    pub start_grace: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(5),
            step_deadline_floor: Duration::from_secs(10),
            step_deadline_factor: 5.0,
            load_deadline: Duration::from_secs(300),
            start_grace: Duration::from_secs(5),
        }
    }
}

struct WorkerEntry {
    name: String,
    /// Where peers reach this worker for ring all-reduce (may be empty).
    peer_address: String,
    last_seen: Instant,
    /// A job this worker must drop (sent once with its next task).
    release: Option<String>,
}

struct State {
    jobs: BTreeMap<String, JobRecord>,
    workers: BTreeMap<String, WorkerEntry>,
    run: Option<JobRun>,
    /// When the oldest queued job first had a worker available.
    waiting_since: Option<Instant>,
    next_worker: u64,
    /// Incidents opened by the running job, closed when it trains again: (job, index).
    open_incidents: Vec<(String, usize)>,
    /// Wall time of the running job is accumulated from here.
    running_since: Option<Instant>,
    /// Incidents open while their condition lasts: (job, index, condition).
    conditions: Vec<(String, usize, Condition)>,
    stragglers: StragglerTracker,
    /// Jobs whose latest change is not in the store yet (it refused the write).
    unsaved: BTreeSet<String>,
}

pub struct Coordinator {
    state: Mutex<State>,
    store: JobStore,
    changes: watch::Sender<u64>,
    pub timing: Timing,
    pub metrics: Arc<CoordinatorMetrics>,
    lost_workers: AtomicU64,
}

/// Hands-on time recorded for a manual action when the person does not say (minutes to notice,
/// decide and act; see docs/operations.md).
pub const DEFAULT_HANDS_ON_SECONDS: f64 = 300.0;

pub type Shared = Arc<Coordinator>;

fn store_error(e: StoreError) -> tonic::Status {
    ErrorCode::Unavailable.status(e.to_string())
}

impl Coordinator {
    /// Opens the store; a job that was running when the coordinator stopped resumes from its
    /// latest checkpoint, and the restart is recorded as an incident on it.
    pub fn open(store: JobStore, timing: Timing, metrics: Arc<CoordinatorMetrics>) -> Result<Shared, StoreError> {
        let mut jobs = BTreeMap::new();
        let mut open_incidents = Vec::new();
        let mut unsaved = BTreeSet::new();
        for mut job in store.all()? {
            if job.state == JobState::Running {
                let rewind = job.latest_checkpoint.as_ref().map_or(0, |c| c.step);
                let lost_steps = job.step.saturating_sub(rewind);
                let per_step = if job.step > 0 { job.running_seconds / job.step as f64 } else { 0.0 };
                job.incidents.push(IncidentRecord::detected(
                    "coordinator_restart",
                    format!("coordinator restarted at step {}; resuming from step {rewind}", job.step),
                    lost_steps as f64 * per_step,
                ));
                // Open incidents of any kind close when the job trains again: the conditions that
                // kept them open (stragglers, storage) were in the old process's memory.
                let unresolved = job.incidents.iter().enumerate().filter(|(_, i)| i.resolved_unix_ms == 0);
                open_incidents.extend(unresolved.map(|(index, _)| (job.id.clone(), index)));
                job.state = JobState::Queued;
                job.message = "resuming after a coordinator restart".into();
                if let Err(e) = store.put(&job) {
                    warn!(job = %job.id, error = %e, "job store write failed; will retry");
                    unsaved.insert(job.id.clone());
                }
                info!(job = %job.id, step = job.step, rewind, "job will resume after restart");
            }
            jobs.insert(job.id.clone(), job);
        }
        let (changes, _) = watch::channel(0);
        let state = State {
            jobs,
            workers: BTreeMap::new(),
            run: None,
            waiting_since: None,
            next_worker: 1,
            open_incidents,
            running_since: None,
            conditions: Vec::new(),
            stragglers: StragglerTracker::default(),
            unsaved,
        };
        Ok(Arc::new(Self {
            state: Mutex::new(state),
            store,
            changes,
            timing,
            metrics,
            lost_workers: AtomicU64::new(0),
        }))
    }

    /// Workers lost since this coordinator started.
    pub fn lost_workers(&self) -> u64 {
        self.lost_workers.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("coordinator state poisoned")
    }

    fn changed(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Saves a new job; refused when the store cannot take it (nothing was accepted).
    fn persist(&self, job: &JobRecord) -> Result<(), tonic::Status> {
        self.store.put(job).map_err(store_error)
    }

    /// Saves a job's progress. A store that refuses (a full disk) must not stop training: the
    /// change stays in memory, a `job_store` incident opens, and [`Self::supervise`] retries.
    fn persist_or_defer(&self, state: &mut State, job_id: &str) {
        let Some(job) = state.jobs.get(job_id).cloned() else { return };
        match self.store.put(&job) {
            Ok(()) => {
                if state.unsaved.remove(job_id) && self.close_condition(state, job_id, &Condition::JobStore) {
                    self.persist_or_defer(state, job_id); // with the incident closed
                }
            }
            Err(e) => {
                if state.unsaved.insert(job_id.to_string()) {
                    warn!(job = %job_id, error = %e, "job store write failed; keeping the job in memory and retrying");
                }
                self.open_condition(state, job_id, Condition::JobStore, e.to_string());
            }
        }
    }

    /// Retries the saves the store refused; closes the incident once a job is saved.
    fn retry_unsaved(&self, state: &mut State) {
        for job_id in state.unsaved.clone() {
            self.persist_or_defer(state, &job_id);
            if state.unsaved.contains(&job_id) {
                return; // still refused: try again on the next tick
            }
        }
    }

    // ---- jobs ----

    pub fn submit(&self, job_toml: &str, submitted_by: &str) -> Result<String, tonic::Status> {
        let spec =
            JobSpec::parse(job_toml, "job.toml").map_err(|e| ErrorCode::InvalidArgument.status(e.to_string()))?;
        let mut state = self.lock();
        let id = format!("j-{:x}{:04x}", now_unix_ms(), state.jobs.len() % 0x10000);
        let job = JobRecord::queued(
            id.clone(),
            spec.name.clone(),
            job_toml.to_string(),
            submitted_by.to_string(),
            spec.training.max_steps,
            now_unix_ms(),
        );
        self.persist(&job)?;
        info!(job = %id, name = %job.name, "job submitted");
        state.jobs.insert(id.clone(), job);
        drop(state);
        self.changed();
        Ok(id)
    }

    pub fn job(&self, id: &str) -> Result<pb::Job, tonic::Status> {
        let state = self.lock();
        let job = state.jobs.get(id).ok_or_else(|| ErrorCode::NotFound.status(format!("no job `{id}`")))?;
        Ok(job.to_proto(workers_of(&state, id)))
    }

    pub fn jobs(&self) -> Vec<pb::Job> {
        let state = self.lock();
        state.jobs.values().map(|j| j.to_proto(workers_of(&state, &j.id))).collect()
    }

    /// A snapshot for metrics: (job records, workers registered, workers training).
    pub fn snapshot(&self) -> (Vec<JobRecord>, usize, usize) {
        let state = self.lock();
        let training = state.run.as_ref().map_or(0, |r| r.members.len());
        (state.jobs.values().cloned().collect(), state.workers.len(), training)
    }

    pub fn cancel(&self, id: &str, requested_by: &str, hands_on_seconds: f64) -> Result<pb::Job, tonic::Status> {
        let mut state = self.lock();
        let job = state.jobs.get(id).ok_or_else(|| ErrorCode::NotFound.status(format!("no job `{id}`")))?;
        if job.state.is_terminal() {
            return Err(ErrorCode::FailedPrecondition.status(format!("job `{id}` already {}", job.state.name())));
        }
        let seconds = if hands_on_seconds > 0.0 { hands_on_seconds } else { DEFAULT_HANDS_ON_SECONDS };
        let job = state.jobs.get_mut(id).expect("checked above");
        job.toil.push(ToilRecord {
            kind: "cancel".into(),
            by: requested_by.into(),
            unix_ms: now_unix_ms(),
            hands_on_seconds: seconds,
        });
        self.finish(&mut state, id, JobState::Cancelled, format!("cancelled by {requested_by}"))?;
        info!(job = %id, by = requested_by, hands_on_seconds = seconds, "toil: manual cancel");
        let job = state.jobs[id].to_proto(0);
        drop(state);
        self.changed();
        Ok(job)
    }

    /// Ends a job: persists its final state and releases its workers.
    fn finish(&self, state: &mut State, id: &str, to: JobState, message: String) -> Result<(), tonic::Status> {
        if state.run.as_ref().is_some_and(|r| r.job_id == id) {
            let run = state.run.take().expect("checked");
            for member in run.members.iter().chain(&run.joining) {
                if let Some(worker) = state.workers.get_mut(member) {
                    worker.release = Some(id.to_string());
                }
            }
        }
        let lasting: Vec<Condition> =
            state.conditions.iter().filter(|(job, _, _)| job == id).map(|(_, _, c)| c.clone()).collect();
        for condition in lasting {
            self.close_condition(state, id, &condition);
        }
        let running = state.running_since.take().map_or(0.0, |t| t.elapsed().as_secs_f64());
        let job = state.jobs.get_mut(id).expect("caller checked");
        job.running_seconds += running;
        job.state = to;
        job.message = message;
        job.finished_unix_ms = now_unix_ms();
        info!(job = %id, state = to.name(), step = job.step, "job finished");
        self.persist_or_defer(state, id);
        Ok(())
    }

    // ---- workers ----

    pub fn register(&self, name: &str, peer_address: &str) -> String {
        let mut state = self.lock();
        // A worker that restarts under the same name replaces its old registration at once.
        let previous: Vec<String> =
            state.workers.iter().filter(|(_, w)| w.name == name).map(|(id, _)| id.clone()).collect();
        for id in previous {
            self.lose_worker(&mut state, &id, "worker_lost", "re-registered after a restart");
        }
        let id = format!("w{}", state.next_worker);
        state.next_worker += 1;
        state.workers.insert(
            id.clone(),
            WorkerEntry {
                name: name.to_string(),
                peer_address: peer_address.to_string(),
                last_seen: Instant::now(),
                release: None,
            },
        );
        info!(worker = %id, name, "worker registered");
        drop(state);
        self.changed();
        id
    }

    pub fn heartbeat(&self, worker: &str) -> Result<(), tonic::Status> {
        let mut state = self.lock();
        let entry = state.workers.get_mut(worker).ok_or_else(|| unknown_worker(worker))?;
        entry.last_seen = Instant::now();
        Ok(())
    }

    /// Evicts `worker` (heartbeat lost, deadline missed, bad gradient): the running job redoes
    /// its step without it and the incident is recorded.
    fn lose_worker(&self, state: &mut State, worker: &str, cause: &str, detail: &str) {
        let Some(entry) = state.workers.remove(worker) else { return };
        self.lost_workers.fetch_add(1, Ordering::Relaxed);
        warn!(worker = %worker, name = %entry.name, cause, detail, "worker lost");
        let Some(run) = state.run.as_mut() else { return };
        let was_member = run.is_member(worker);
        let lost_seconds = run.round_started.elapsed().as_secs_f64();
        let aborted = run.remove(worker, Instant::now());
        tracing::debug!(worker, aborted, "member removed");
        if !was_member {
            return;
        }
        let job_id = run.job_id.clone();
        let job = state.jobs.get_mut(&job_id).expect("running job is known");
        // Since the last completed step the job made no progress: the stall, plus the partial
        // step thrown away when the round was abandoned.
        let detail = format!("{} ({}): {detail}", entry.name, worker);
        job.incidents.push(IncidentRecord::detected(cause, detail, lost_seconds));
        let index = job.incidents.len() - 1;
        state.open_incidents.push((job_id, index));
        self.after_membership_change(state);
    }

    /// After a member left: complete the step if it was only waiting for it, or bring in idle
    /// workers when nobody is left to train.
    fn after_membership_change(&self, state: &mut State) {
        let Some(run) = state.run.as_ref() else { return };
        if let Some(outcome) = run.outcome_if_complete() {
            let _ = self.complete_step(state, outcome);
        }
        self.fill_members(state);
    }

    /// Assigns idle workers to the running job up to its worker count.
    fn fill_members(&self, state: &mut State) {
        if let Some(run) = state.run.as_mut()
            && run.members.is_empty()
        {
            // Joiners wait for a member to push them the state; with no member left they never
            // would: they start over with everyone else from the rewind below.
            run.joining.clear();
        }
        let busy: Vec<String> =
            state.run.as_ref().map(|r| r.members.iter().chain(&r.joining).cloned().collect()).unwrap_or_default();
        let idle: Vec<String> = state.workers.keys().filter(|w| !busy.contains(w)).cloned().collect();
        let Some(run) = state.run.as_mut() else { return };
        let now = Instant::now();
        for worker in idle {
            if run.members.len() + run.joining.len() >= run.wanted_workers() {
                break;
            }
            if run.members.is_empty() {
                // Nobody holds the state: rewind to the latest checkpoint (or start over).
                let job = state.jobs.get_mut(&run.job_id).expect("running job is known");
                let source = match &job.latest_checkpoint {
                    Some(checkpoint) => {
                        run.step = checkpoint.step;
                        run.cursor = checkpoint.cursor;
                        StateSource::Checkpoint(checkpoint.location.clone())
                    }
                    None => {
                        run.step = 0;
                        run.cursor = 0;
                        StateSource::Fresh
                    }
                };
                job.step = run.step;
                job.cursor = run.cursor;
                run.admit(&worker, source, now);
            } else if let Some(source) = run.shared_start() {
                // No step done since the members loaded this state: load it too and start now.
                run.admit(&worker, source, now);
            } else {
                run.queue_joiner(&worker);
            }
        }
    }

    /// Starts the oldest queued job when workers are available.
    fn maybe_start(&self, state: &mut State) -> Result<(), tonic::Status> {
        if state.run.is_some() {
            return Ok(());
        }
        let Some(job) =
            state.jobs.values().filter(|j| j.state == JobState::Queued).min_by_key(|j| j.created_unix_ms).cloned()
        else {
            state.waiting_since = None;
            return Ok(());
        };
        if state.workers.is_empty() {
            state.waiting_since = None;
            return Ok(());
        }
        let spec = JobSpec::parse(&job.job_toml, &job.id).map_err(|e| ErrorCode::Internal.status(e.to_string()))?;
        let since = *state.waiting_since.get_or_insert_with(Instant::now);
        if state.workers.len() < spec.workers.count && since.elapsed() < self.timing.start_grace {
            return Ok(());
        }
        state.waiting_since = None;
        let (step, cursor) = job.latest_checkpoint.as_ref().map_or((0, 0), |c| (c.step, c.cursor));
        state.run = Some(JobRun::new(job.id.clone(), spec, job.job_toml.clone(), step, cursor, Instant::now()));
        state.running_since = Some(Instant::now());
        state.stragglers = StragglerTracker::default();
        let record = state.jobs.get_mut(&job.id).expect("present");
        record.state = JobState::Running;
        record.step = step;
        record.cursor = cursor;
        record.message.clear();
        if record.started_unix_ms == 0 {
            record.started_unix_ms = now_unix_ms();
        }
        self.persist_or_defer(state, &job.id);
        info!(job = %job.id, step, workers = state.workers.len(), "job started");
        self.fill_members(state);
        Ok(())
    }

    /// Periodic duties: detect lost and overdue workers, start queued jobs.
    pub fn supervise(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        let silent: Vec<String> = state
            .workers
            .iter()
            .filter(|(_, w)| now.duration_since(w.last_seen) > self.timing.heartbeat_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for worker in silent {
            let detail = format!("no heartbeat for {:.1} s", self.timing.heartbeat_timeout.as_secs_f64());
            self.lose_worker(&mut state, &worker, "worker_lost", &detail);
        }
        if let Some(run) = state.run.as_ref() {
            let deadline = if run.loading() {
                self.timing.load_deadline
            } else {
                run.step_deadline(self.timing.step_deadline_floor, self.timing.step_deadline_factor)
            };
            for worker in run.overdue(now, deadline) {
                let detail = format!("no gradient within the {:.1} s step deadline", deadline.as_secs_f64());
                self.lose_worker(&mut state, &worker, "stalled_step", &detail);
            }
        }
        if !state.unsaved.is_empty() {
            self.retry_unsaved(&mut state);
        }
        if let Err(e) = self.maybe_start(&mut state) {
            warn!(error = %e, "cannot start a queued job");
        }
        self.fill_members(&mut state);
        if let Some(since) = state.running_since
            && let Some(run) = state.run.as_ref()
        {
            let job_id = run.job_id.clone();
            state.running_since = Some(now);
            if let Some(job) = state.jobs.get_mut(&job_id) {
                job.running_seconds += now.duration_since(since).as_secs_f64();
            }
        }
        drop(state);
        self.changed();
    }

    /// The next task for `worker`, or `None` when there is nothing to do yet.
    fn try_task(&self, worker: &str) -> Result<Option<pb::Task>, tonic::Status> {
        let mut state = self.lock();
        let entry = state.workers.get_mut(worker).ok_or_else(|| unknown_worker(worker))?;
        entry.last_seen = Instant::now();
        if let Some(job) = entry.release.take() {
            return Ok(Some(pb::Task { kind: Some(pb::task::Kind::ReleaseJob(job)) }));
        }
        let peers: Vec<String> = state
            .run
            .as_ref()
            .map(|run| {
                run.members
                    .iter()
                    .map(|m| state.workers.get(m).map(|w| w.peer_address.clone()).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default();
        let task = state.run.as_mut().and_then(|run| run.task_for(worker, peers));
        Ok(task.map(|step| pb::Task { kind: Some(pb::task::Kind::Step(step)) }))
    }

    pub async fn next_task(&self, worker: &str, wait: Duration) -> Result<pb::Task, tonic::Status> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.subscribe();
        loop {
            if let Some(task) = self.try_task(worker)? {
                return Ok(task);
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                return Ok(pb::Task { kind: Some(pb::task::Kind::Idle(pb::Idle {})) });
            }
        }
    }

    pub fn push_chunk(&self, worker: &str, chunk: &pb::GradientChunk) -> Result<(), tonic::Status> {
        let mut state = self.lock();
        if !state.workers.contains_key(worker) {
            return Err(unknown_worker(worker));
        }
        let run = state.run.as_mut().filter(|r| r.job_id == chunk.job_id);
        let Some(run) = run else {
            return Err(ErrorCode::FailedPrecondition.status(format!("job `{}` is not running", chunk.job_id)));
        };
        let decoded = facetrain_proto::decode_gradients(&chunk.data, run.spec.workers.gradient_dtype)
            .ok_or(crate::reduce::BadGradient::Ragged(chunk.data.len()));
        match decoded.map_err(PushError::from).and_then(|values| run.add_chunk(worker, chunk, &values)) {
            Ok(released) => {
                self.metrics
                    .reduce_bytes
                    .with_label_values(&[&chunk.job_id, "coordinator"])
                    .inc_by(chunk.data.len() as u64);
                drop(state);
                if released {
                    self.changed();
                }
                Ok(())
            }
            Err(PushError::Bad(bad)) => {
                let detail = format!("evicted: {bad}");
                self.lose_worker(&mut state, worker, "bad_gradient", &detail);
                drop(state);
                self.changed();
                Err(ErrorCode::InvalidArgument.status(detail))
            }
            Err(stale @ PushError::Stale { .. }) => Err(ErrorCode::Aborted.status(stale.to_string())),
            Err(other) => Err(ErrorCode::FailedPrecondition.status(other.to_string())),
        }
    }

    /// Ring strategy: `worker` finished its all-reduce of (job, step, round).
    pub fn reduce_done(&self, worker: &str, job: &str, step: u64, round: u64) -> Result<(), tonic::Status> {
        let mut state = self.lock();
        if !state.workers.contains_key(worker) {
            return Err(unknown_worker(worker));
        }
        let Some(run) = state.run.as_mut().filter(|r| r.job_id == job) else {
            return Err(ErrorCode::FailedPrecondition.status(format!("job `{job}` is not running")));
        };
        match run.mark_reduced(worker, step, round) {
            Ok(released) => {
                drop(state);
                if released {
                    self.changed();
                }
                Ok(())
            }
            Err(stale @ PushError::Stale { .. }) => Err(ErrorCode::Aborted.status(stale.to_string())),
            Err(other) => Err(ErrorCode::FailedPrecondition.status(other.to_string())),
        }
    }

    /// The wire dtype of `job`'s gradients (f32 when the job is unknown).
    pub fn gradient_dtype(&self, job: &str) -> facetrain_proto::job::GradientDtype {
        let state = self.lock();
        state.run.as_ref().filter(|r| r.job_id == job).map(|r| r.spec.workers.gradient_dtype).unwrap_or_default()
    }

    /// Waits for the sum of (job, step, round).
    pub async fn pull(&self, job: &str, step: u64, round: u64) -> Result<Arc<Vec<f32>>, tonic::Status> {
        let mut changes = self.subscribe();
        loop {
            let pull = {
                let state = self.lock();
                match state.run.as_ref().filter(|r| r.job_id == job) {
                    Some(run) => run.pull(step, round),
                    None => Pull::Aborted,
                }
            };
            match pull {
                Pull::Ready(sum) => {
                    self.metrics.reduce_bytes.with_label_values(&[job, "coordinator"]).inc_by(sum.len() as u64 * 4);
                    return Ok(sum);
                }
                Pull::Aborted => {
                    return Err(
                        ErrorCode::Aborted.status(format!("step {step} round {round} was abandoned: redo the step"))
                    );
                }
                Pull::Pending => {
                    if changes.changed().await.is_err() {
                        return Err(ErrorCode::Unavailable.status("coordinator shutting down"));
                    }
                }
            }
        }
    }

    pub fn store_state(&self, worker: &str, job: &str, step: u64, bytes: Vec<u8>) -> Result<(), tonic::Status> {
        let mut state = self.lock();
        let run = state.run.as_mut().filter(|r| r.job_id == job && r.is_member(worker));
        let run = run.ok_or_else(|| ErrorCode::FailedPrecondition.status("not a member of a running job"))?;
        run.store_state(step, bytes);
        Ok(())
    }

    pub fn state(&self, job: &str, step: u64) -> Result<Arc<Vec<u8>>, tonic::Status> {
        let state = self.lock();
        state
            .run
            .as_ref()
            .filter(|r| r.job_id == job)
            .and_then(|r| r.state_for(step))
            .ok_or_else(|| ErrorCode::NotFound.status(format!("no state for job `{job}` at step {step}")))
    }

    pub fn report(&self, worker: &str, report: &pb::StepReport) -> Result<(), tonic::Status> {
        let mut state = self.lock();
        if !state.workers.contains_key(worker) {
            return Err(unknown_worker(worker));
        }
        let Some(run) = state.run.as_mut().filter(|r| r.job_id == report.job_id) else {
            return Err(ErrorCode::FailedPrecondition.status(format!("job `{}` is not running", report.job_id)));
        };
        let (batch, keep) = (run.spec.training.batch_size as u64, run.spec.checkpoint.keep);
        self.note_checkpoint(&mut state, worker, report, batch, keep);
        let run = state.run.as_mut().expect("checked above");
        let parsed = Report {
            loss_sum: report.loss_sum,
            correct: report.correct,
            samples: report.samples,
            checksum: report.parameter_checksum,
            val_accuracy: report.val_accuracy,
            compute_seconds: report.compute_seconds,
        };
        let outcome = match run.report(worker, report.step, report.round, parsed) {
            Ok(outcome) => outcome,
            Err(stale @ PushError::Stale { .. }) => return Err(ErrorCode::Aborted.status(stale.to_string())),
            Err(other) => return Err(ErrorCode::FailedPrecondition.status(other.to_string())),
        };
        if let Some(outcome) = outcome {
            self.complete_step(&mut state, outcome)?;
        }
        drop(state);
        self.changed();
        Ok(())
    }

    fn complete_step(&self, state: &mut State, outcome: StepOutcome) -> Result<(), tonic::Status> {
        let run = state.run.as_mut().expect("a step completes in a running job");
        let job_id = run.job_id.clone();
        let batch = run.spec.training.batch_size as u64;
        let max_steps = run.spec.training.max_steps;
        let target = run.spec.training.target_accuracy;
        run.advance(Instant::now());
        let (step, cursor, workers) = (run.step, run.cursor, run.members.len());
        let members: Vec<String> = outcome.compute_seconds.iter().map(|(w, _)| w.clone()).collect();
        let (slowed, recovered) = state.stragglers.observe(&members, &outcome.stragglers);
        for worker in slowed {
            let name = state.workers.get(&worker).map_or(worker.clone(), |w| w.name.clone());
            let seconds = outcome.compute_seconds.iter().find(|(w, _)| *w == worker).map_or(0.0, |(_, s)| *s);
            let detail = format!(
                "{name} ({worker}): {seconds:.2} s compute in the last step; behind the others (over twice their \
                 median) in {} of the last {} steps",
                crate::conditions::SLOW_TO_REPORT,
                crate::conditions::WINDOW
            );
            warn!(job = %job_id, worker = %worker, step, "straggler");
            self.open_condition(state, &job_id, Condition::Straggler(worker), detail);
        }
        for worker in recovered {
            self.close_condition(state, &job_id, &Condition::Straggler(worker));
        }
        let now_ms = now_unix_ms();
        let closing: Vec<usize> =
            state.open_incidents.iter().filter(|(job, _)| *job == job_id).map(|(_, index)| *index).collect();
        state.open_incidents.retain(|(job, _)| *job != job_id);
        let job = state.jobs.get_mut(&job_id).expect("running job is known");
        for index in closing {
            self.resolve_by_automation(&job_id, &mut job.incidents[index], now_ms);
        }
        job.step = step;
        job.cursor = cursor;
        job.train_loss = outcome.loss;
        job.train_accuracy = Some(outcome.train_accuracy);
        self.metrics.step_duration.with_label_values(&[&job_id, "total"]).observe(outcome.seconds);
        for (worker, seconds) in &outcome.compute_seconds {
            self.metrics.worker_compute.with_label_values(&[&job_id, worker]).set(*seconds);
        }
        if outcome.val_accuracy.is_some() {
            job.val_accuracy = outcome.val_accuracy;
        }
        debug_assert_eq!(cursor, step * batch);
        self.persist_or_defer(state, &job_id);
        if outcome.diverged {
            self.finish(
                state,
                &job_id,
                JobState::Failed,
                format!("replicas diverged at step {step} (parameter checksums differ)"),
            )?;
        } else if outcome.val_accuracy.is_some_and(|a| target > 0.0 && a >= target) {
            let message =
                format!("reached validation accuracy {:.3} at step {step}", outcome.val_accuracy.unwrap_or(0.0));
            self.finish(state, &job_id, JobState::Succeeded, message)?;
        } else if step >= max_steps {
            self.finish(state, &job_id, JobState::Succeeded, format!("completed {step} steps with {workers} workers"))?;
        }
        Ok(())
    }

    /// A checkpoint upload finished (it runs in the background, so it may be of an earlier step)
    /// or failed: the latest checkpoint moves on, or the storage incident opens.
    fn note_checkpoint(&self, state: &mut State, worker: &str, report: &pb::StepReport, batch: u64, keep: usize) {
        if report.checkpoint_failed {
            self.metrics.checkpoint_failures.inc();
            warn!(job = %report.job_id, worker, step = report.step, error = %report.checkpoint_error, "checkpoint upload failed");
            let detail = format!("checkpoint upload failed on {worker}: {}", report.checkpoint_error);
            self.open_condition(state, &report.job_id, Condition::CheckpointStorage, detail);
        } else if !report.checkpoint.is_empty() {
            self.metrics.checkpoint_duration.observe(report.checkpoint_seconds);
            let step = if report.checkpoint_step > 0 { report.checkpoint_step } else { report.step };
            let checkpoint = CheckpointRef {
                location: report.checkpoint.clone(),
                step,
                cursor: step * batch,
                written_unix_ms: now_unix_ms(),
            };
            if let Some(job) = state.jobs.get_mut(&report.job_id) {
                job.record_checkpoint(checkpoint, keep);
            }
            self.close_condition(state, &report.job_id, &Condition::CheckpointStorage);
        }
    }

    /// Records an incident for `condition` unless one is already open.
    fn open_condition(&self, state: &mut State, job_id: &str, condition: Condition, detail: String) {
        if state.conditions.iter().any(|(job, _, c)| job == job_id && *c == condition) {
            return;
        }
        let Some(job) = state.jobs.get_mut(job_id) else { return };
        job.incidents.push(IncidentRecord::detected(condition.cause(), detail, 0.0));
        state.conditions.push((job_id.to_string(), job.incidents.len() - 1, condition));
    }

    /// Resolves the incident open for `condition`; false when none was open.
    fn close_condition(&self, state: &mut State, job_id: &str, condition: &Condition) -> bool {
        let Some(position) = state.conditions.iter().position(|(job, _, c)| job == job_id && c == condition) else {
            return false;
        };
        let (_, index, _) = state.conditions.remove(position);
        if let Some(incident) = state.jobs.get_mut(job_id).and_then(|j| j.incidents.get_mut(index)) {
            self.resolve_by_automation(job_id, incident, now_unix_ms());
        }
        true
    }

    fn resolve_by_automation(&self, job_id: &str, incident: &mut IncidentRecord, now_ms: u64) {
        incident.resolved_unix_ms = now_ms;
        incident.resolved_by = "automation".into();
        let recovery_ms = now_ms.saturating_sub(incident.detected_unix_ms);
        self.metrics.recovery_duration.with_label_values(&[&incident.cause]).observe(recovery_ms as f64 / 1000.0);
        info!(job = %job_id, cause = %incident.cause, recovery_ms, "incident resolved");
    }

    /// A worker could not read the checkpoint it was told to load: that checkpoint is forgotten
    /// and everyone restarts from the one before it (or from scratch if none is left).
    pub fn reject_checkpoint(&self, worker: &str, job_id: &str, location: &str, reason: &str) {
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(job_id).filter(|j| !j.state.is_terminal()) else { return };
        if !job.checkpoints.iter().any(|c| c.location == location)
            && job.latest_checkpoint.as_ref().is_none_or(|c| c.location != location)
        {
            return; // already rejected on another worker's word
        }
        job.reject_checkpoint(location);
        let fallback = job.latest_checkpoint.as_ref().map_or("the start".to_string(), |c| format!("step {}", c.step));
        warn!(job = %job_id, worker, location, reason, %fallback, "checkpoint unreadable");
        let detail = format!("{location}: {reason}; resuming from {fallback}");
        job.incidents.push(IncidentRecord::detected("corrupt_checkpoint", detail, 0.0));
        let index = job.incidents.len() - 1;
        state.open_incidents.push((job_id.to_string(), index));
        if let Some(run) = state.run.as_mut().filter(|r| r.job_id == job_id) {
            let everyone: Vec<String> = run.members.iter().chain(&run.joining).cloned().collect();
            let now = Instant::now();
            for member in everyone {
                run.remove(&member, now);
            }
            run.joining.clear();
        }
        self.fill_members(&mut state);
        self.persist_or_defer(&mut state, job_id);
        drop(state);
        self.changed();
    }

    /// Fails the running job (a worker reported a problem that retrying cannot fix).
    pub fn fail_job(&self, job: &str, reason: String) -> Result<(), tonic::Status> {
        let mut state = self.lock();
        if let Some(record) = state.jobs.get_mut(job).filter(|j| !j.state.is_terminal()) {
            // Bad data needs a person: the incident stays open until someone fixes and resubmits.
            record.incidents.push(IncidentRecord::detected("bad_data", reason.clone(), 0.0));
            self.finish(&mut state, job, JobState::Failed, reason)?;
        }
        drop(state);
        self.changed();
        Ok(())
    }
}

fn workers_of(state: &State, job: &str) -> u32 {
    state.run.as_ref().filter(|r| r.job_id == job).map_or(0, |r| r.members.len() as u32)
}

fn unknown_worker(worker: &str) -> tonic::Status {
    ErrorCode::NotFound.status(format!("unknown worker `{worker}`: register again"))
}
