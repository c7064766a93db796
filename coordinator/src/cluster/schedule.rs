//! The shared pool: which queued jobs start, on which free workers, and what the others wait for.
//!
//! The rule (docs/operations.md, "Several jobs on one pool"):
//! - running jobs keep their groups and refill them first (a running job is never preempted);
//! - queued jobs go by priority, higher first, then by submission;
//! - a job starts when `workers.count` free workers can run its backend, or `workers.min_count`
//!   of them once they have been free for the start grace (a job that ran before, such as one
//!   resumed after a coordinator restart, may start with one);
//! - a job that cannot start yet holds the free workers it could use, so no job behind it takes
//!   them: a job is never overtaken for good by a stream of smaller ones. A job that needs more
//!   workers than are registered holds nothing, since holding would idle the pool for a job that
//!   cannot start, and says what it lacks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use facetrain_proto::job::{Backend, JobSpec};

use super::{Active, Cluster, Event, Now};
use crate::conditions::StragglerTracker;
use crate::record::JobState;
use crate::run::JobRun;

/// What a queued job does this tick.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Admission {
    /// Start on this many of the free workers.
    Start(usize),
    /// Wait, holding the free workers it could use (`hold`), saying why.
    Wait { hold: bool, message: String },
}

/// The free workers a queued job sees, and how long its minimum has been free.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pool {
    pub free: usize,
    /// Free workers that jobs ahead hold.
    pub held: usize,
    /// Registered workers that can run the backend, busy or not.
    pub registered: usize,
    /// Registered workers of any backend.
    pub all: usize,
    /// How long at least the minimum has been free (`None`: not yet).
    pub minimum_free_for: Option<Duration>,
}

/// The decision for a job wanting `count` workers (at least `minimum`) of `backend`.
pub(super) fn admit(count: usize, minimum: usize, backend: Backend, pool: Pool, grace: Duration) -> Admission {
    if pool.free >= count {
        return Admission::Start(count);
    }
    if pool.free >= minimum && pool.minimum_free_for.is_some_and(|waited| waited >= grace) {
        return Admission::Start(pool.free);
    }
    let workers = |n: usize, kind: &str| format!("{n} {kind}worker{}", if n == 1 { "" } else { "s" });
    if pool.registered < minimum {
        let can_start_smaller = minimum == count && count > 1 && pool.registered > 0;
        let hint = if can_start_smaller { " (workers.min_count lets a job start with fewer)" } else { "" };
        let message = format!(
            "waiting for {} with backend {}; {} of the {} registered can run it{hint}",
            workers(minimum, ""),
            backend.name(),
            pool.registered,
            pool.all
        );
        return Admission::Wait { hold: false, message };
    }
    let held = if pool.held > 0 { format!(", {} held for jobs ahead in the queue", pool.held) } else { String::new() };
    let message =
        format!("waiting for {} with backend {}; {} free{held}", workers(count, "free "), backend.name(), pool.free);
    Admission::Wait { hold: true, message }
}

/// A queued job in queue order.
struct Queued {
    id: String,
    spec: JobSpec,
    /// It ran before (requeued after a coordinator restart): it may go on with one worker.
    ran: bool,
}

impl Cluster {
    /// Queued jobs' ids in the order they start: priority (higher first), then submission.
    fn queue_order(&self) -> Vec<&str> {
        let mut queued: Vec<&crate::record::JobRecord> =
            self.jobs.values().filter(|j| j.state == JobState::Queued).collect();
        queued.sort_by_key(|j| (-j.priority, j.created_unix_ms, j.id.as_str()));
        queued.into_iter().map(|j| j.id.as_str()).collect()
    }

    /// Queued jobs in queue order, with their specs (a job whose spec does not read is left out).
    fn queue(&self) -> Vec<Queued> {
        let queued = self.queue_order().into_iter().filter_map(|id| {
            let record = self.jobs.get(id)?;
            let spec = JobSpec::parse(&record.job_toml, id).ok()?;
            Some(Queued { id: id.to_string(), spec, ran: record.started_unix_ms > 0 })
        });
        queued.collect()
    }

    /// Workers the jobs want, by backend: each running job its count, each queued job its count.
    /// 0 for every backend when nothing is queued or running, so an autoscaler (KEDA on
    /// `facetrain_workers_wanted`) can take the pool, and its GPUs, to zero.
    pub fn pool_wanted(&self) -> BTreeMap<Backend, usize> {
        let mut wanted: BTreeMap<Backend, usize> = Backend::ALL.into_iter().map(|b| (b, 0)).collect();
        for active in self.active.values() {
            *wanted.entry(active.run.spec.workers.backend).or_default() += active.run.wanted_workers();
        }
        for queued in self.queue() {
            *wanted.entry(queued.spec.workers.backend).or_default() += queued.spec.workers.count;
        }
        wanted
    }

    /// Each queued job's place in the queue, from 1.
    pub(super) fn queue_positions(&self) -> HashMap<String, u32> {
        self.queue_order().into_iter().enumerate().map(|(i, id)| (id.to_string(), i as u32 + 1)).collect()
    }

    /// Refills the running jobs, then starts what the queue allows.
    pub(super) fn schedule(&mut self, now: Now) {
        let running: Vec<String> = self.active.keys().cloned().collect();
        for job in running {
            let backend = self.active.get(&job).map(|a| a.run.spec.workers.backend);
            let candidates = backend.map(|b| self.idle_workers(b)).unwrap_or_default();
            self.fill(&job, candidates, now);
        }
        let queue = self.queue();
        self.waiting_since.retain(|id, _| queue.iter().any(|q| &q.id == id));
        let mut held: BTreeSet<String> = BTreeSet::new();
        for queued in queue {
            let backend = queued.spec.workers.backend;
            let idle = self.idle_workers(backend);
            let free: Vec<String> = idle.iter().filter(|w| !held.contains(*w)).cloned().collect();
            let count = queued.spec.workers.count;
            let minimum = if queued.ran { 1 } else { queued.spec.workers.min_count() };
            if free.len() < minimum {
                self.waiting_since.remove(&queued.id);
            }
            let since = (free.len() >= minimum).then(|| *self.waiting_since.entry(queued.id.clone()).or_insert(now.at));
            let pool = Pool {
                free: free.len(),
                held: idle.len() - free.len(),
                registered: self.workers_with(backend),
                all: self.workers.len(),
                minimum_free_for: since.map(|s| now.at.saturating_duration_since(s)),
            };
            match admit(count, minimum, backend, pool, self.timing.start_grace) {
                Admission::Start(n) => {
                    self.waiting_since.remove(&queued.id);
                    let workers = free.into_iter().take(n).collect();
                    self.start(&queued.id, queued.spec, workers, now);
                }
                Admission::Wait { hold, message } => {
                    if hold {
                        held.extend(free.into_iter().take(count));
                    }
                    self.set_message(&queued.id, message);
                }
            }
        }
    }

    pub(super) fn set_message(&mut self, job: &str, message: String) {
        if let Some(record) = self.jobs.get_mut(job).filter(|r| r.message != message) {
            record.message = message;
            self.changed(job);
        }
    }

    fn start(&mut self, id: &str, mut spec: JobSpec, workers: Vec<String>, now: Now) {
        let Some(record) = self.jobs.get_mut(id) else { return };
        let step = record.latest_checkpoint.as_ref().map_or(0, |c| c.step);
        // What the workers run: the record's step target (a resume may raise it) and the job's
        // own checkpoint folder.
        spec.training.max_steps = record.max_steps;
        spec.checkpoint.dir = spec.checkpoint.for_job(id);
        let job_toml = spec.to_toml();
        let run = JobRun::new(id.to_string(), spec, job_toml, step, now.at);
        record.state = JobState::Running;
        record.step = step;
        record.cursor = run.cursor;
        record.message.clear();
        // How long a new job waited for its workers (with an autoscaler: how long scaling up took).
        let waited =
            (record.started_unix_ms == 0).then(|| now.unix_ms.saturating_sub(record.created_unix_ms) as f64 / 1e3);
        if record.started_unix_ms == 0 {
            record.started_unix_ms = now.unix_ms;
        }
        let active =
            Active { run, running_since: now.at, stragglers: StragglerTracker::default(), ledgers: Default::default() };
        self.active.insert(id.to_string(), active);
        self.emit(Event::JobStarted { job: id.to_string(), step, waited_seconds: waited });
        self.changed(id);
        self.fill(id, workers, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(free: usize, held: usize, registered: usize, waited_ms: Option<u64>) -> Pool {
        Pool { free, held, registered, all: registered, minimum_free_for: waited_ms.map(Duration::from_millis) }
    }

    const GRACE: Duration = Duration::from_secs(5);

    #[test]
    fn a_job_starts_when_its_count_is_free_and_not_before() {
        assert_eq!(admit(2, 2, Backend::Flex, pool(2, 0, 3, Some(0)), GRACE), Admission::Start(2));
        let waiting = admit(2, 2, Backend::Flex, pool(1, 1, 3, None), GRACE);
        assert_eq!(
            waiting,
            Admission::Wait {
                hold: true,
                message: "waiting for 2 free workers with backend flex; 1 free, 1 held for jobs ahead in the queue"
                    .into()
            }
        );
    }

    #[test]
    fn the_pool_wanted_goes_to_zero_without_jobs_and_up_with_one() {
        use crate::cluster::testkit::{Sim, job_toml};
        let mut sim = Sim::new();
        let wanted = |sim: &Sim| sim.cluster.pool_wanted();
        assert!(wanted(&sim).values().all(|n| *n == 0), "no job: no worker, for every backend: {:?}", wanted(&sim));
        let id = sim.submit(&job_toml("w", 2, 1, 10, ""));
        assert_eq!(wanted(&sim)[&Backend::Flex], 2, "a queued job wants its workers before any is there");
        sim.register("a");
        sim.register("b");
        sim.tick();
        assert_eq!(wanted(&sim)[&Backend::Flex], 2, "running");
        sim.step(&["a", "b"]);
        assert_eq!(sim.job(&id).state, JobState::Succeeded);
        assert_eq!(wanted(&sim)[&Backend::Flex], 0, "back to zero when it ends");
    }

    #[test]
    fn a_minimum_starts_smaller_only_after_the_grace() {
        assert!(matches!(admit(4, 2, Backend::Flex, pool(3, 0, 3, Some(4999)), GRACE), Admission::Wait { .. }));
        assert_eq!(admit(4, 2, Backend::Flex, pool(3, 0, 3, Some(5000)), GRACE), Admission::Start(3));
    }

    #[test]
    fn a_job_larger_than_the_pool_holds_nothing_and_says_what_it_lacks() {
        let Admission::Wait { hold, message } = admit(4, 4, Backend::Tch, pool(0, 0, 2, None), GRACE) else {
            panic!("must wait")
        };
        assert!(!hold);
        assert_eq!(
            message,
            "waiting for 4 workers with backend tch; 2 of the 2 registered can run it (workers.min_count lets a job \
             start with fewer)"
        );
    }
}
