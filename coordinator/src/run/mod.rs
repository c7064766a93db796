//! One running job's synchronous step protocol, as plain logic (no I/O; time is passed in),
//! so the rules are unit-tested directly:
//!
//! - a step is computed by the current members; each is told its rank and the world size, and
//!   takes its share of the global batch at the job's data cursor;
//! - every member pushes its gradient; when all have, the sum is released to all of them;
//! - every member applies it and reports; when all have, the step is done and the cursor moves;
//! - if a member is lost before the sum is released, the round is abandoned and the survivors
//!   redo the same step with a new rank/world (their models have not moved);
//! - workers that join wait for a step boundary and load the state a member pushed for them.

mod round;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facetrain_proto::internal;
use facetrain_proto::job::{GradientDtype, JobSpec, Reduction};
use facetrain_proto::plan::StepPlan;

use crate::reduce::{BadGradient, GradientSum};

/// Recent step durations kept for the step deadline.
const STEP_HISTORY: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateSource {
    Keep,
    Fresh,
    Checkpoint(String),
    Peer,
}

/// One member's report of a step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub loss_sum: f64,
    pub correct: u64,
    pub samples: u64,
    pub checksum: u32,
    pub val_accuracy: Option<f64>,
    /// The member's share of the validation set: (correct, samples); zero samples from workers
    /// that evaluate the whole set (their `val_accuracy` then is the job's).
    pub val_counts: (u64, u64),
    pub compute_seconds: f64,
}

/// A completed step, summed over the members.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub step: u64,
    pub loss: f64,
    pub train_accuracy: f64,
    pub samples: u64,
    pub val_accuracy: Option<f64>,
    pub seconds: f64,
    /// Replicas disagree on their parameters: a bug, never expected.
    pub diverged: bool,
    /// Members whose gradient came more than twice as late as the others' median (stragglers).
    pub stragglers: Vec<String>,
    /// Each member's report, in rank order.
    pub reports: Vec<(String, Report)>,
    /// The samples behind the applied sum, per contributor in rank order (a member lost after the
    /// sum was released still trained its share).
    pub trained: Vec<(String, internal::TrainedSamples)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PushError {
    #[error("step {step} round {round} is not current (now step {now_step} round {now_round}): redo the step")]
    Stale { step: u64, round: u64, now_step: u64, now_round: u64 },
    #[error("worker is not a member of this job's current round")]
    NotMember,
    #[error("bad gradient: {0}")]
    Bad(#[from] BadGradient),
}

pub enum Pull {
    Ready(Arc<Vec<f32>>),
    Pending,
    Aborted,
}

#[derive(Debug)]
pub struct JobRun {
    pub job_id: String,
    pub spec: JobSpec,
    pub job_toml: String,
    pub members: Vec<String>,
    pub joining: Vec<String>,
    pub step: u64,
    pub round: u64,
    pub cursor: u64,
    sources: HashMap<String, StateSource>,
    assigned: BTreeSet<String>,
    sum: Option<GradientSum>,
    /// Ring strategy: members that finished this round's all-reduce.
    ring_done: BTreeSet<String>,
    reduced: Option<Arc<Vec<f32>>>,
    /// Members whose gradients are in the released sum, in rank order.
    contributors: Vec<String>,
    /// The samples each member's gradient came from (sent with its first chunk, or with the end
    /// of its all-reduce).
    trained: BTreeMap<String, internal::TrainedSamples>,
    reports: BTreeMap<String, Report>,
    /// Seconds from the round's start to each member's gradient (first chunk, or the end of its
    /// all-reduce): a worker the others wait for is late here whatever slowed it.
    arrivals: BTreeMap<String, f64>,
    pub round_started: Instant,
    step_seconds: VecDeque<f64>,
    state_blob: Option<(u64, Arc<Vec<u8>>)>,
}

impl JobRun {
    /// A run starting after `step` applied steps (its cursor follows from the plan).
    pub fn new(job_id: String, spec: JobSpec, job_toml: String, step: u64, now: Instant) -> Self {
        let cursor = StepPlan::new(&spec).cursor_at(step);
        Self {
            job_id,
            spec,
            job_toml,
            members: Vec::new(),
            joining: Vec::new(),
            step,
            round: 0,
            cursor,
            sources: HashMap::new(),
            assigned: BTreeSet::new(),
            sum: None,
            ring_done: BTreeSet::new(),
            reduced: None,
            contributors: Vec::new(),
            trained: BTreeMap::new(),
            reports: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            round_started: now,
            step_seconds: VecDeque::new(),
            state_blob: None,
        }
    }

    pub fn wanted_workers(&self) -> usize {
        self.spec.workers.count
    }

    pub fn is_member(&self, worker: &str) -> bool {
        self.members.iter().any(|m| m == worker)
    }

    /// Members and joiners: every worker this run holds.
    pub fn holds(&self, worker: &str) -> bool {
        self.is_member(worker) || self.joining.iter().any(|w| w == worker)
    }

    /// Moves the run back to `step` (a rewind to a checkpoint, or to the start).
    pub fn rewind(&mut self, step: u64) {
        self.step = step;
        self.cursor = StepPlan::new(&self.spec).cursor_at(step);
    }

    /// Makes `worker` a member now, loading its state from `source`; starts a new round.
    pub fn admit(&mut self, worker: &str, source: StateSource, now: Instant) {
        self.joining.retain(|w| w != worker);
        if !self.is_member(worker) {
            self.members.push(worker.to_string());
        }
        self.sources.insert(worker.to_string(), source);
        self.new_round(now);
    }

    /// Queues `worker` to join at the next step boundary (state pushed by rank 0).
    pub fn queue_joiner(&mut self, worker: &str) {
        if !self.holds(worker) {
            self.joining.push(worker.to_string());
        }
    }

    fn new_round(&mut self, now: Instant) {
        self.round += 1;
        self.clear_step(now);
    }

    fn clear_step(&mut self, now: Instant) {
        self.assigned.clear();
        self.sum = None;
        self.ring_done.clear();
        self.reduced = None;
        self.contributors.clear();
        self.trained.clear();
        self.reports.clear();
        self.arrivals.clear();
        self.round_started = now;
    }

    /// The state every member is loading when none has finished a step since (a start or a
    /// rewind): a newcomer can load the same and join at once instead of waiting for a push.
    pub fn shared_start(&self) -> Option<StateSource> {
        let first = self.sources.get(self.members.first()?)?;
        let shared = self.members.iter().all(|m| self.sources.get(m) == Some(first));
        (shared && matches!(first, StateSource::Fresh | StateSource::Checkpoint(_))).then(|| first.clone())
    }

    /// Whether any member is still loading its state this round (it gets a longer deadline).
    pub fn loading(&self) -> bool {
        self.members.iter().any(|m| self.sources.get(m).is_some_and(|s| *s != StateSource::Keep))
    }

    /// The step task for `worker`, once per round; `None` when it has it already or is no member.
    /// `peers` are the members' ring addresses in rank order (used by the ring strategy).
    pub fn task_for(&mut self, worker: &str, peers: Vec<String>) -> Option<internal::TrainStep> {
        let rank = self.members.iter().position(|m| m == worker)?;
        if !self.assigned.insert(worker.to_string()) {
            return None;
        }
        let source = self.sources.get(worker).cloned().unwrap_or(StateSource::Keep);
        let plan = StepPlan::new(&self.spec);
        let next = self.step + 1;
        let rank0 = rank == 0;
        let (state_source, checkpoint) = match source {
            StateSource::Keep => (internal::StateSource::Keep, String::new()),
            StateSource::Fresh => (internal::StateSource::Fresh, String::new()),
            StateSource::Checkpoint(location) => (internal::StateSource::Checkpoint, location),
            StateSource::Peer => (internal::StateSource::Peer, String::new()),
        };
        Some(internal::TrainStep {
            job_id: self.job_id.clone(),
            job_toml: self.job_toml.clone(),
            step: self.step,
            round: self.round,
            cursor: self.cursor,
            rank: rank as u32,
            world: self.members.len() as u32,
            state_source: state_source as i32,
            checkpoint,
            // Every member scores its share of the validation set, except at a checkpoint: then
            // rank 0, which writes it, scores the whole set, so the checkpoint carries the job's
            // accuracy (the best checkpoint is chosen by it).
            evaluate: plan.evaluate_after(next) && (rank0 || !plan.checkpoint_after(next)),
            write_checkpoint: rank0 && plan.checkpoint_after(next),
            push_state: rank0 && !self.joining.is_empty(),
            reduction: self.spec.workers.reduction.name().into(),
            peers: if self.spec.workers.reduction == Reduction::Ring { peers } else { Vec::new() },
            gradient_dtype: self.spec.workers.gradient_dtype.name().into(),
        })
    }

    pub fn gradient_dtype(&self) -> GradientDtype {
        self.spec.workers.gradient_dtype
    }

    pub fn store_state(&mut self, step: u64, state: Vec<u8>) {
        self.state_blob = Some((step, Arc::new(state)));
    }

    pub fn state_for(&self, step: u64) -> Option<Arc<Vec<u8>>> {
        self.state_blob.as_ref().filter(|(at, _)| *at == step).map(|(_, blob)| blob.clone())
    }

    /// Moves to the next step; joiners with a pushed state become members.
    pub fn advance(&mut self, now: Instant) {
        let seconds = now.saturating_duration_since(self.round_started).as_secs_f64();
        self.step_seconds.push_back(seconds);
        if self.step_seconds.len() > STEP_HISTORY {
            self.step_seconds.pop_front();
        }
        self.rewind(self.step + 1);
        if self.state_for(self.step).is_some() && !self.joining.is_empty() {
            for joiner in std::mem::take(&mut self.joining) {
                self.members.push(joiner.clone());
                self.sources.insert(joiner, StateSource::Peer);
            }
            self.new_round(now);
        } else {
            self.clear_step(now);
        }
    }

    /// Removes a worker. Returns true when the current round was abandoned (the survivors redo
    /// the step); false when the sum had already been released and the step can still finish.
    pub fn remove(&mut self, worker: &str, now: Instant) -> bool {
        self.joining.retain(|w| w != worker);
        self.sources.remove(worker);
        let Some(index) = self.members.iter().position(|m| m == worker) else { return false };
        self.members.remove(index);
        self.reports.remove(worker);
        if self.reduced.is_some() {
            return false;
        }
        self.new_round(now);
        true
    }

    /// Removes every member and joiner (everyone reloads from a checkpoint).
    pub fn remove_everyone(&mut self, now: Instant) {
        self.joining.clear();
        for member in std::mem::take(&mut self.members) {
            self.sources.remove(&member);
        }
        self.new_round(now);
    }

    /// Members that have not delivered their gradient within the deadline.
    pub fn overdue(&self, now: Instant, deadline: Duration) -> Vec<String> {
        if self.reduced.is_some() || now.saturating_duration_since(self.round_started) < deadline {
            return Vec::new();
        }
        self.members
            .iter()
            .filter(|m| !self.sum.as_ref().is_some_and(|s| s.is_complete_for(m)) && !self.ring_done.contains(*m))
            .cloned()
            .collect()
    }

    /// The deadline for the current round: a load deadline while a member loads state, else k x
    /// the p99 of recent step times, never below `floor`.
    pub fn deadline(&self, timing: &crate::cluster::Timing) -> Duration {
        if self.loading() {
            return timing.load_deadline;
        }
        let mut times: Vec<f64> = self.step_seconds.iter().copied().collect();
        times.sort_by(f64::total_cmp);
        let p99 = times.get(((times.len() as f64) * 0.99) as usize).or(times.last()).copied().unwrap_or(0.0);
        timing.step_deadline_floor.max(Duration::from_secs_f64(p99 * timing.step_deadline_factor))
    }
}
