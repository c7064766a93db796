//! The shell around the [`Cluster`] state machine: it holds the lock, reads the clock, saves
//! the jobs the cluster changed, counts metrics and writes log lines for its events, and wakes
//! the long-polls (tasks, gradient pulls, watches) through a version counter that every change
//! bumps, so a waiter never misses a change between checking and sleeping.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use facetrain_proto::incidents::{IncidentCause, Resolver};
use facetrain_proto::internal;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cluster::{Cluster, DomainError, Event, JobView, Limits, Now, Offer, Result, Snapshot, Timing, WorkerView};
use crate::metrics::{CoordinatorMetrics, SnapshotSource};
use crate::run::Pull;
use crate::store::{JobStore, StoreError};

pub type Shared = Arc<Coordinator>;

pub struct Coordinator {
    cluster: Mutex<Cluster>,
    store: JobStore,
    changes: watch::Sender<u64>,
    pub metrics: Arc<CoordinatorMetrics>,
    heartbeat_interval: Duration,
}

/// The time now, read in one place.
pub fn now() -> Now {
    let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Now { at: std::time::Instant::now(), unix_ms }
}

impl Coordinator {
    /// Opens the cluster over the store's jobs (a job that was running resumes).
    pub fn open(
        store: JobStore,
        timing: Timing,
        limits: Limits,
        metrics: Arc<CoordinatorMetrics>,
    ) -> std::result::Result<Shared, StoreError> {
        let heartbeat_interval = timing.heartbeat_interval;
        let now = now();
        let cluster = Cluster::open(store.all()?, timing, limits, now);
        let (changes, _) = watch::channel(0);
        let coordinator = Self { cluster: Mutex::new(cluster), store, changes, metrics, heartbeat_interval };
        {
            let mut cluster = coordinator.lock();
            coordinator.settle(&mut cluster, now);
        }
        Ok(Arc::new(coordinator))
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        // A panic while holding the lock leaves the state as the panicking call left it; the
        // cluster's calls keep it consistent between statements, so go on with it.
        self.cluster.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn notify(&self) {
        self.changes.send_modify(|v| *v += 1);
    }

    /// Runs a call on the cluster at the current time, then acts on what it reported; waiters
    /// wake when anything happened.
    fn with_cluster<T>(&self, call: impl FnOnce(&mut Cluster, Now) -> T) -> T {
        let now = now();
        let mut cluster = self.lock();
        let result = call(&mut cluster, now);
        let acted = self.settle(&mut cluster, now);
        drop(cluster);
        if acted {
            self.notify();
        }
        result
    }

    fn read<T>(&self, call: impl FnOnce(&Cluster) -> T) -> T {
        call(&self.lock())
    }

    /// Acts on the cluster's events: saves changed jobs (a refused save is handed back to the
    /// cluster, which opens a `job_store` incident: more events, hence the passes). Returns
    /// whether there was anything.
    fn settle(&self, cluster: &mut Cluster, now: Now) -> bool {
        let mut any = false;
        for _ in 0..4 {
            let events = cluster.take_events();
            if events.is_empty() {
                break;
            }
            any = true;
            let mut changed = BTreeSet::new();
            for event in events {
                if let Event::JobChanged { job } = &event {
                    changed.insert(job.clone());
                }
                self.observe(event);
            }
            for job in changed {
                self.save(cluster, &job, now);
            }
        }
        any
    }

    fn save(&self, cluster: &mut Cluster, job: &str, now: Now) {
        let Some(record) = cluster.record(job) else { return };
        match self.store.put(record) {
            Ok(()) => cluster.store_saved(job, now),
            Err(e) => {
                warn!(job = %job, error = %e, "job store write failed; keeping the job in memory and retrying");
                cluster.store_refused(job, &e.to_string(), now);
            }
        }
    }

    /// Metrics and log lines for one event.
    fn observe(&self, event: Event) {
        let m = &self.metrics;
        match event {
            Event::JobChanged { .. } => {}
            Event::JobStarted { job, step, waited_seconds } => {
                if let Some(waited) = waited_seconds {
                    m.queue_wait.observe(waited);
                }
                info!(job = %job, step, "job started")
            }
            Event::JobFinished { job, state, message } => {
                info!(job = %job, state = state.name(), message, "job finished")
            }
            Event::WorkerRegistered { worker, name } => info!(worker = %worker, name, "worker registered"),
            Event::WorkerLost { worker, name, cause, detail } => {
                warn!(worker = %worker, name, cause = cause.name(), detail, "worker lost")
            }
            Event::WorkerLeft { worker, name, reason } => info!(worker = %worker, name, reason, "worker left"),
            Event::MemberLeft { job, name } => m.member_left(&job, &name),
            Event::IncidentOpened { job, cause, detail } => warn!(job = %job, cause = cause.name(), detail, "incident"),
            Event::IncidentResolved { job, cause, resolver, recovery_seconds } => {
                if resolver != Resolver::JobEnded {
                    m.recovery_duration.with_label_values(&[cause.name()]).observe(recovery_seconds);
                }
                info!(job = %job, cause = cause.name(), resolved_by = resolver.name(), recovery_seconds, "incident closed");
            }
            Event::StepApplied { job, step: _, seconds, compute } => m.step_applied(&job, seconds, &compute),
            Event::History { job, point } => {
                // The curve is a record of the job, not the job: a refused write costs a point.
                if let Err(e) = self.store.append_history(&job, &point) {
                    warn!(job = %job, step = point.step, error = %e, "job history point not stored");
                }
            }
            Event::ReduceBytes { job, bytes } => m.reduce_bytes.with_label_values(&[&job, "coordinator"]).inc_by(bytes),
            Event::CheckpointRecorded { seconds, .. } => m.checkpoint_duration.observe(seconds),
            Event::CheckpointFailed { job, step, error } => {
                m.checkpoint_failures.inc();
                warn!(job = %job, step, error, "checkpoint upload failed");
            }
            Event::JobDeleted { job } => m.job_deleted(&job),
            Event::Toil { job, kind, by, hands_on_seconds } => {
                info!(job = %job, kind = kind.name(), by, hands_on_seconds, "toil: manual action")
            }
        }
    }

    // ---- jobs ----

    /// Saves a new job; refused when the store cannot take it (nothing was accepted). A retry
    /// under the same `request_id` returns the job the first call created.
    pub fn submit(&self, job_toml: &str, submitted_by: &str, request_id: &str) -> Result<String> {
        self.with_cluster(|cluster, now| {
            if let Some(id) = cluster.submitted_as(request_id, job_toml)? {
                info!(job = %id, request_id, "job submitted again: the same request as before");
                return Ok(id);
            }
            let record = cluster.prepare_submit(job_toml, submitted_by, request_id, now)?;
            self.store.put(&record).map_err(|e| DomainError::Unavailable(e.to_string()))?;
            info!(job = %record.id, name = %record.name, "job submitted");
            Ok(cluster.accept(record))
        })
        .inspect(|_| self.notify())
    }

    pub fn job(&self, id: &str) -> Result<JobView> {
        self.read(|cluster| cluster.job(id))
    }

    pub fn jobs(&self) -> Vec<JobView> {
        self.read(Cluster::jobs)
    }

    pub fn cancel(&self, id: &str, requested_by: &str, hands_on_seconds: f64) -> Result<JobView> {
        self.with_cluster(|cluster, now| {
            cluster.cancel(id, requested_by, hands_on_seconds, now)?;
            cluster.job(id)
        })
    }

    pub fn resume(
        &self,
        id: &str,
        requested_by: &str,
        hands_on_seconds: f64,
        max_steps: Option<u64>,
    ) -> Result<JobView> {
        self.with_cluster(|cluster, now| {
            cluster.resume(id, requested_by, hands_on_seconds, max_steps, now)?;
            cluster.job(id)
        })
    }

    /// Up to `limit` points of the job's curve from `from_step` on.
    pub fn history(&self, id: &str, from_step: u64, limit: usize) -> Result<Vec<crate::history::HistoryPoint>> {
        self.read(|cluster| cluster.job(id).map(drop))?;
        self.store.history(id, from_step, limit).map_err(|e| DomainError::Unavailable(e.to_string()))
    }

    /// Deletes an ended job: from the store first, so a store that refuses leaves it as it was.
    pub fn delete(&self, id: &str) -> Result<()> {
        self.with_cluster(|cluster, _| {
            cluster.check_delete(id)?;
            self.remove(cluster, id)?;
            info!(job = %id, "job deleted");
            Ok(())
        })
        .inspect(|()| self.notify())
    }

    fn remove(&self, cluster: &mut Cluster, id: &str) -> Result<()> {
        self.store.delete(id).map_err(|e| DomainError::Unavailable(e.to_string()))?;
        cluster.forget(id);
        Ok(())
    }

    /// Deletes the ended jobs the retention no longer keeps (a store that refuses: next time).
    fn expire(&self, cluster: &mut Cluster, now: Now) {
        let retention = cluster.limits().retention.clone();
        for id in cluster.expired(&retention, now) {
            match self.remove(cluster, &id) {
                Ok(()) => info!(job = %id, "job expired: deleted by the retention"),
                Err(e) => {
                    warn!(job = %id, error = %e, "expired job not deleted; trying again later");
                    return;
                }
            }
        }
    }

    // ---- workers ----

    pub fn register(&self, name: &str, peer_address: &str, offer: Offer) -> String {
        self.with_cluster(|cluster, now| cluster.register(name, peer_address, offer, now))
    }

    pub fn workers(&self) -> Vec<WorkerView> {
        self.read(Cluster::workers)
    }

    pub fn heartbeat(&self, worker: &str) -> Result<()> {
        self.with_cluster(|cluster, now| cluster.heartbeat(worker, now))
    }

    /// Periodic duties: lost and overdue workers, queued jobs, saves the store refused.
    pub fn supervise(&self) {
        self.with_cluster(|cluster, now| {
            cluster.tick(now);
            self.expire(cluster, now);
            for job in cluster.unsaved() {
                self.save(cluster, &job, now);
                if cluster.unsaved().contains(&job) {
                    break; // still refused: try again on the next tick
                }
            }
        });
        // Members may have been admitted without an event: wake the task long-polls.
        self.notify();
    }

    /// The next task for `worker`, waiting up to `wait` for one.
    pub async fn next_task(&self, worker: &str, wait: Duration) -> Result<internal::Task> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = self.subscribe();
        loop {
            if let Some(task) = self.with_cluster(|cluster, now| cluster.next_task(worker, now))? {
                return Ok(task);
            }
            if tokio::time::timeout_at(deadline, changes.changed()).await.is_err() {
                return Ok(internal::Task { kind: Some(internal::task::Kind::Idle(internal::Idle {})) });
            }
        }
    }

    pub fn push_chunk(&self, worker: &str, chunk: &internal::GradientChunk) -> Result<()> {
        let released = self.with_cluster(|cluster, now| cluster.push_chunk(worker, chunk, now))?;
        if released {
            self.notify();
        }
        Ok(())
    }

    pub fn reduce_done(&self, request: &internal::ReduceDoneRequest) -> Result<()> {
        if self.with_cluster(|cluster, now| cluster.reduce_done(&request.worker_id, request, now))? {
            self.notify();
        }
        Ok(())
    }

    pub fn gradient_dtype(&self, job: &str) -> facetrain_proto::job::GradientDtype {
        self.read(|cluster| cluster.gradient_dtype(job))
    }

    /// Waits for the sum of (job, step, round).
    pub async fn pull(&self, job: &str, step: u64, round: u64) -> Result<Arc<Vec<f32>>> {
        let mut changes = self.subscribe();
        loop {
            match self.read(|cluster| cluster.pull(job, step, round)) {
                Pull::Ready(sum) => return Ok(sum),
                Pull::Aborted => {
                    return Err(DomainError::Stale(format!("step {step} round {round} was abandoned: redo the step")));
                }
                Pull::Pending => {
                    if changes.changed().await.is_err() {
                        return Err(DomainError::Unavailable("coordinator shutting down".into()));
                    }
                }
            }
        }
    }

    pub fn store_state(&self, worker: &str, job: &str, step: u64, bytes: Vec<u8>) -> Result<()> {
        self.with_cluster(|cluster, _| cluster.store_state(worker, job, step, bytes))
    }

    pub fn state(&self, job: &str, step: u64) -> Result<Arc<Vec<u8>>> {
        self.read(|cluster| cluster.state(job, step))
    }

    pub fn report(&self, worker: &str, report: &internal::StepReport) -> Result<()> {
        self.with_cluster(|cluster, now| cluster.report(worker, report, now))
    }

    /// A stopping worker leaves (an empty reason from the wire reads as "stopping").
    pub fn leave(&self, worker: &str, reason: &str) -> Result<()> {
        let reason = if reason.is_empty() { "stopping" } else { reason };
        self.with_cluster(|cluster, now| cluster.leave(worker, reason, now))
    }

    /// A worker cannot go on: a checkpoint it could not read (the job falls back to an older
    /// one), or a reason that fails the job.
    pub fn report_failure(&self, report: &internal::FailureReport) -> Result<()> {
        let (worker, job) = (&report.worker_id, &report.job_id);
        self.with_cluster(|cluster, now| {
            if !report.unreadable_checkpoint.is_empty() {
                return cluster.reject_checkpoint(worker, job, &report.unreadable_checkpoint, &report.message, now);
            }
            let cause = IncidentCause::parse(&report.cause).unwrap_or(IncidentCause::BadData);
            cluster.fail_job(worker, job, cause, &report.message, now)
        })
    }
}

impl SnapshotSource for Coordinator {
    fn snapshot(&self) -> Snapshot {
        self.read(Cluster::snapshot)
    }
}
