//! The coordinator's decisions as a pure state machine: the job queue, worker membership, the
//! running job's step rounds (joins and rewinds), the sample ledger and the incident ledger.
//!
//! Every call takes the time as a value ([`Now`]) and reports what happened as [`Event`]s that
//! the shell (`crate::coordinator`) turns into store writes, metrics and log lines. Nothing in
//! here reads a clock, touches the store or knows the transport, so the rules are unit-tested
//! directly and property-tested over random sequences of calls (`properties.rs`).

mod error;
mod events;
mod incidents;
mod jobs;
#[cfg(test)]
mod properties;
mod retention;
mod schedule;
mod steps;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
mod workers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use facetrain_proto::incidents::ToilKind;
use facetrain_proto::job::Backend;
use facetrain_proto::ledger::SampleLedger;

pub use error::{DomainError, Result};
pub use events::Event;
pub use incidents::recurrence_limit;
pub use jobs::DEFAULT_HANDS_ON_SECONDS;
pub use retention::Retention;

use crate::conditions::{Condition, StragglerTracker};
use crate::record::{JobRecord, JobState};
use crate::run::JobRun;

/// The time of a call: monotonic for deadlines, wall clock for the records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: u64,
}

impl Now {
    pub fn after(self, elapsed: Duration) -> Self {
        Self { at: self.at + elapsed, unix_ms: self.unix_ms + elapsed.as_millis() as u64 }
    }
}

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
    /// How long a queued job with `workers.min_count` waits for `workers.count` workers, once its
    /// minimum is free, before starting with fewer.
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

/// What the coordinator accepts.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Memory one worker needs to train a job's model on its share of the batch (estimated from
    /// the spec at submit; workers check again against their own memory once the class count is
    /// known).
    pub max_job_bytes: u64,
    /// Which ended jobs the store keeps.
    pub retention: Retention,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_job_bytes: 64 << 30, retention: Retention::default() }
    }
}

#[derive(Debug)]
struct WorkerEntry {
    name: String,
    /// Where peers reach this worker for ring all-reduce (may be empty).
    peer_address: String,
    backends: Vec<Backend>,
    devices: Vec<String>,
    last_seen: Instant,
    /// A job this worker must drop (sent once with its next task).
    release: Option<String>,
}

/// What a registering worker says it can run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offer {
    /// Job backends (none: an older worker, flex only).
    pub backends: Vec<Backend>,
    /// `cpu`, `cuda:N`, ... (none: `cpu`).
    pub devices: Vec<String>,
}

/// A registered worker as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub id: String,
    pub name: String,
    pub backends: Vec<Backend>,
    pub devices: Vec<String>,
    /// The job it trains now.
    pub job: Option<String>,
}

/// The running job with what only matters while it runs.
#[derive(Debug)]
struct Active {
    run: JobRun,
    /// Wall time of the run is accumulated from here.
    running_since: Instant,
    stragglers: StragglerTracker,
    /// The ledger after each step a checkpoint was asked for, kept until a checkpoint at or
    /// after it is recorded (uploads finish in the background, possibly steps later).
    ledgers: BTreeMap<u64, SampleLedger>,
}

/// A snapshot for metrics.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub jobs: Vec<JobRecord>,
    pub workers_registered: usize,
    pub workers_training: usize,
    pub workers_lost: u64,
    /// Manual actions on jobs deleted since the coordinator started, totalled by kind: the toil
    /// counters are sums over jobs and must not go backwards when one is deleted.
    pub deleted_toil: HashMap<ToilKind, ToilTotal>,
    /// Workers the running and queued jobs want, by backend (what an autoscaler sizes the pool to).
    pub workers_wanted: BTreeMap<Backend, usize>,
}

/// Manual actions of one kind and their hands-on time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ToilTotal {
    pub actions: u64,
    pub hands_on_seconds: f64,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    pub record: JobRecord,
    /// Workers training it now.
    pub workers: u32,
    /// 1 for the queued job that starts next, 2 for the one after, ...; 0 when not queued.
    pub queue_position: u32,
}

#[derive(Debug)]
pub struct Cluster {
    timing: Timing,
    limits: Limits,
    jobs: BTreeMap<String, JobRecord>,
    workers: BTreeMap<String, WorkerEntry>,
    next_worker: u64,
    /// The running jobs, each on its own synchronous group of workers.
    active: BTreeMap<String, Active>,
    /// When each queued job that may start with fewer than its count first had its minimum free.
    waiting_since: BTreeMap<String, Instant>,
    /// Incidents open while their condition lasts: (job, incident index, condition).
    conditions: Vec<(String, usize, Condition)>,
    /// Jobs whose latest change is not in the store yet (it refused the write).
    unsaved: BTreeSet<String>,
    workers_lost: u64,
    /// See [`Snapshot::deleted_toil`].
    deleted_toil: HashMap<ToilKind, ToilTotal>,
    events: Vec<Event>,
}

impl Cluster {
    /// The cluster over the jobs a store holds. A job that was running when the coordinator
    /// stopped is queued to resume from its latest checkpoint, with a `coordinator_restart`
    /// incident.
    pub fn open(records: Vec<JobRecord>, timing: Timing, limits: Limits, now: Now) -> Self {
        let mut cluster = Self {
            timing,
            limits,
            jobs: BTreeMap::new(),
            workers: BTreeMap::new(),
            next_worker: 1,
            active: BTreeMap::new(),
            waiting_since: BTreeMap::new(),
            conditions: Vec::new(),
            unsaved: BTreeSet::new(),
            workers_lost: 0,
            deleted_toil: HashMap::new(),
            events: Vec::new(),
        };
        for job in records {
            let id = job.id.clone();
            let was_running = job.state == crate::record::JobState::Running;
            cluster.jobs.insert(id.clone(), job);
            if was_running {
                cluster.requeue_after_restart(&id, now);
            }
        }
        cluster
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What happened since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    fn changed(&mut self, job: &str) {
        self.emit(Event::JobChanged { job: job.to_string() });
    }

    pub fn job(&self, id: &str) -> Result<JobView> {
        let record = self.requested(id)?;
        Ok(self.view(record))
    }

    /// The job a request names: an empty id is the caller's mistake, an unknown one not found.
    fn requested(&self, id: &str) -> Result<&JobRecord> {
        if id.is_empty() {
            return Err(DomainError::invalid("job_id", "`job_id` is empty: give the id `submit` printed"));
        }
        self.jobs.get(id).ok_or_else(|| error::unknown_job(id))
    }

    pub fn jobs(&self) -> Vec<JobView> {
        let positions = self.queue_positions();
        self.jobs.values().map(|j| self.view_at(j, &positions)).collect()
    }

    /// One job's view: the queue is ordered only when the job is in it.
    fn view(&self, record: &JobRecord) -> JobView {
        let positions = match record.state {
            JobState::Queued => self.queue_positions(),
            _ => HashMap::new(),
        };
        self.view_at(record, &positions)
    }

    fn view_at(&self, record: &JobRecord, positions: &HashMap<String, u32>) -> JobView {
        JobView {
            record: record.clone(),
            workers: self.workers_of(&record.id),
            queue_position: positions.get(&record.id).copied().unwrap_or(0),
        }
    }

    /// The record the store should hold for `id`.
    pub fn record(&self, id: &str) -> Option<&JobRecord> {
        self.jobs.get(id)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            jobs: self.jobs.values().cloned().collect(),
            workers_registered: self.workers.len(),
            workers_training: self.active.values().map(|a| a.run.members.len()).sum(),
            workers_lost: self.workers_lost,
            deleted_toil: self.deleted_toil.clone(),
            workers_wanted: self.pool_wanted(),
        }
    }

    /// The running jobs' step protocols (tests check invariants against them).
    pub fn active_runs(&self) -> impl Iterator<Item = &JobRun> {
        self.active.values().map(|a| &a.run)
    }

    /// `job`'s step protocol while it runs.
    pub fn active_run(&self, job: &str) -> Option<&JobRun> {
        self.active.get(job).map(|a| &a.run)
    }

    fn workers_of(&self, job: &str) -> u32 {
        self.active.get(job).map_or(0, |a| a.run.members.len() as u32)
    }

    /// The running job's record and run, when `job` runs.
    fn running(&mut self, job: &str) -> Option<(&mut JobRecord, &mut Active)> {
        let active = self.active.get_mut(job)?;
        let record = self.jobs.get_mut(job)?;
        Some((record, active))
    }

    /// The running job that holds `worker` (as a member or a joiner).
    fn job_holding(&self, worker: &str) -> Option<String> {
        self.active.iter().find(|(_, a)| a.run.holds(worker)).map(|(id, _)| id.clone())
    }

    /// A worker's name (its id when it is gone).
    fn name_of(&self, worker: &str) -> String {
        self.workers.get(worker).map_or(worker.to_string(), |w| w.name.clone())
    }

    /// A worker's display name (`name (id)`), for incident details.
    fn describe(&self, worker: &str) -> String {
        self.workers.get(worker).map_or(worker.to_string(), |w| format!("{} ({worker})", w.name))
    }

    /// Workers the cluster holds that are members of no job and can run `backend`.
    fn idle_workers(&self, backend: Backend) -> Vec<String> {
        self.workers
            .iter()
            .filter(|(id, w)| w.backends.contains(&backend) && !self.active.values().any(|a| a.run.holds(id)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Registered workers that can run `backend`, busy or not.
    fn workers_with(&self, backend: Backend) -> usize {
        self.workers.values().filter(|w| w.backends.contains(&backend)).count()
    }
}
