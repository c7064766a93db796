//! One running job's synchronous step protocol, as plain logic (no I/O, no clocks but the
//! ones passed in), so the rules are unit-tested directly:
//!
//! - a step is computed by the current members; each is told its rank and the world size, and
//!   takes its share of the global batch at the job's data cursor;
//! - every member pushes its gradient; when all have, the sum is released to all of them;
//! - every member applies it and reports; when all have, the step is done and the cursor moves;
//! - if a member is lost before the sum is released, the round is abandoned and the survivors
//!   redo the same step with a new rank/world (their models have not moved);
//! - workers that join wait for a step boundary and load the state a member pushed for them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use facetrain_proto::job::JobSpec;
use facetrain_proto::pb;

use facetrain_proto::job::Reduction;

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

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub loss_sum: f64,
    pub correct: u64,
    pub samples: u64,
    pub checksum: u32,
    pub val_accuracy: Option<f64>,
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
    pub compute_seconds: Vec<(String, f64)>,
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
    reports: BTreeMap<String, Report>,
    /// Seconds from the round's start to each member's gradient (first chunk, or the end of its
    /// all-reduce): a worker the others wait for is late here whatever slowed it.
    arrivals: BTreeMap<String, f64>,
    pub round_started: Instant,
    step_seconds: VecDeque<f64>,
    state_blob: Option<(u64, Arc<Vec<u8>>)>,
}

impl JobRun {
    pub fn new(job_id: String, spec: JobSpec, job_toml: String, step: u64, cursor: u64, now: Instant) -> Self {
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
        if !self.is_member(worker) && !self.joining.iter().any(|w| w == worker) {
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
    pub fn task_for(&mut self, worker: &str, peers: Vec<String>) -> Option<pb::TrainStep> {
        let rank = self.members.iter().position(|m| m == worker)?;
        if !self.assigned.insert(worker.to_string()) {
            return None;
        }
        let source = self.sources.get(worker).cloned().unwrap_or(StateSource::Keep);
        let next = self.step + 1;
        let training = &self.spec.training;
        let last = next >= training.max_steps;
        let rank0 = rank == 0;
        let (state_source, checkpoint) = match source {
            StateSource::Keep => (pb::StateSource::Keep, String::new()),
            StateSource::Fresh => (pb::StateSource::Fresh, String::new()),
            StateSource::Checkpoint(location) => (pb::StateSource::Checkpoint, location),
            StateSource::Peer => (pb::StateSource::Peer, String::new()),
        };
        let checkpointing = !self.spec.checkpoint.dir.is_empty();
        Some(pb::TrainStep {
            job_id: self.job_id.clone(),
            job_toml: self.job_toml.clone(),
            step: self.step,
            round: self.round,
            cursor: self.cursor,
            rank: rank as u32,
            world: self.members.len() as u32,
            state_source: state_source as i32,
            checkpoint,
            evaluate: rank0 && (last || (training.eval_every > 0 && next.is_multiple_of(training.eval_every))),
            write_checkpoint: rank0 && checkpointing && (last || next.is_multiple_of(self.spec.checkpoint.every)),
            push_state: rank0 && !self.joining.is_empty(),
            reduction: self.spec.workers.reduction.name().into(),
            peers: if self.spec.workers.reduction == Reduction::Ring { peers } else { Vec::new() },
            gradient_dtype: match self.spec.workers.gradient_dtype {
                facetrain_proto::job::GradientDtype::F32 => "f32".into(),
                facetrain_proto::job::GradientDtype::Bf16 => "bf16".into(),
            },
        })
    }

    fn check_current(&self, worker: &str, step: u64, round: u64) -> Result<(), PushError> {
        if step != self.step || round != self.round {
            return Err(PushError::Stale { step, round, now_step: self.step, now_round: self.round });
        }
        if !self.is_member(worker) || self.reduced.is_some() {
            return Err(PushError::NotMember);
        }
        Ok(())
    }

    /// Ring strategy: `worker` finished the all-reduce. Returns true when every member has,
    /// which releases the step (PullGradients then answers with an empty sum).
    pub fn mark_reduced(&mut self, worker: &str, step: u64, round: u64) -> Result<bool, PushError> {
        self.check_current(worker, step, round)?;
        self.arrived(worker);
        self.ring_done.insert(worker.to_string());
        if self.members.iter().all(|m| self.ring_done.contains(m)) {
            self.reduced = Some(Arc::new(Vec::new()));
            self.sources.clear();
            return Ok(true);
        }
        Ok(false)
    }

    /// Coordinator strategy: one chunk of `worker`'s gradient, already decoded to f32.
    pub fn add_chunk(&mut self, worker: &str, chunk: &pb::GradientChunk, values: &[f32]) -> Result<bool, PushError> {
        self.check_current(worker, chunk.step, chunk.round)?;
        self.arrived(worker);
        let sum = self.sum.get_or_insert_with(|| GradientSum::new(chunk.total as usize));
        sum.add_values(worker, chunk.total, chunk.offset, values)?;
        if sum.completed() == self.members.len() && self.members.iter().all(|m| sum.is_complete_for(m)) {
            let sum = self.sum.take().expect("present");
            self.reduced = Some(Arc::new(sum.into_sum()));
            // Sources are consumed once every member has loaded and computed this round.
            self.sources.clear();
            return Ok(true);
        }
        Ok(false)
    }

    fn arrived(&mut self, worker: &str) {
        let seconds = self.round_started.elapsed().as_secs_f64();
        self.arrivals.entry(worker.to_string()).or_insert(seconds);
    }

    pub fn pull(&self, step: u64, round: u64) -> Pull {
        if step != self.step || round != self.round {
            return Pull::Aborted;
        }
        match &self.reduced {
            Some(sum) => Pull::Ready(sum.clone()),
            None => Pull::Pending,
        }
    }

    pub fn store_state(&mut self, step: u64, state: Vec<u8>) {
        self.state_blob = Some((step, Arc::new(state)));
    }

    pub fn state_for(&self, step: u64) -> Option<Arc<Vec<u8>>> {
        self.state_blob.as_ref().filter(|(at, _)| *at == step).map(|(_, blob)| blob.clone())
    }

    /// Records `worker`'s report of step `step + 1`. Returns the outcome once all members reported.
    pub fn report(
        &mut self,
        worker: &str,
        step: u64,
        round: u64,
        report: Report,
    ) -> Result<Option<StepOutcome>, PushError> {
        if step != self.step + 1 || round != self.round || self.reduced.is_none() {
            return Err(PushError::Stale { step, round, now_step: self.step, now_round: self.round });
        }
        if !self.is_member(worker) {
            return Err(PushError::NotMember);
        }
        self.reports.insert(worker.to_string(), report);
        if self.members.iter().any(|m| !self.reports.contains_key(m)) {
            return Ok(None);
        }
        Ok(Some(self.outcome()))
    }

    /// When a lost member was the last one missing, the survivors' reports complete the step.
    pub fn outcome_if_complete(&self) -> Option<StepOutcome> {
        (self.reduced.is_some()
            && !self.members.is_empty()
            && self.members.iter().all(|m| self.reports.contains_key(m)))
        .then(|| self.outcome())
    }

    fn outcome(&self) -> StepOutcome {
        let reports: Vec<(&String, &Report)> =
            self.members.iter().filter_map(|m| self.reports.get_key_value(m)).collect();
        let samples: u64 = reports.iter().map(|(_, r)| r.samples).sum();
        let loss_sum: f64 = reports.iter().map(|(_, r)| r.loss_sum).sum();
        let correct: u64 = reports.iter().map(|(_, r)| r.correct).sum();
        let first = reports.first().map(|(_, r)| r.checksum);
        let diverged = reports.iter().any(|(_, r)| Some(r.checksum) != first);
        let times: Vec<(String, f64)> = reports.iter().map(|(w, r)| ((*w).clone(), r.compute_seconds)).collect();
        let arrivals: Vec<(String, f64)> =
            self.members.iter().filter_map(|m| self.arrivals.get(m).map(|s| (m.clone(), *s))).collect();
        // Ring members all finish the all-reduce together (after the slowest), so only gradients
        // pushed to the coordinator tell who was late; rings fall back to reported compute time.
        let by_arrival = arrivals.len() == self.members.len() && self.ring_done.is_empty();
        let stragglers = stragglers(if by_arrival { &arrivals } else { &times });
        StepOutcome {
            step: self.step + 1,
            loss: if samples == 0 { 0.0 } else { loss_sum / samples as f64 },
            train_accuracy: if samples == 0 { 0.0 } else { correct as f64 / samples as f64 },
            samples,
            val_accuracy: reports.iter().find_map(|(_, r)| r.val_accuracy),
            seconds: self.round_started.elapsed().as_secs_f64(),
            diverged,
            stragglers,
            compute_seconds: times,
        }
    }

    /// Moves to the next step; joiners with a pushed state become members.
    pub fn advance(&mut self, now: Instant) {
        let seconds = now.duration_since(self.round_started).as_secs_f64();
        self.step_seconds.push_back(seconds);
        if self.step_seconds.len() > STEP_HISTORY {
            self.step_seconds.pop_front();
        }
        self.step += 1;
        self.cursor += self.spec.training.batch_size as u64;
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

    /// Members that have not pushed their gradient within the deadline.
    pub fn overdue(&self, now: Instant, deadline: Duration) -> Vec<String> {
        if self.reduced.is_some() || now.duration_since(self.round_started) < deadline {
            return Vec::new();
        }
        self.members
            .iter()
            .filter(|m| !self.sum.as_ref().is_some_and(|s| s.is_complete_for(m)) && !self.ring_done.contains(*m))
            .cloned()
            .collect()
    }

    /// k x the p99 of recent step times, never below `floor`.
    pub fn step_deadline(&self, floor: Duration, factor: f64) -> Duration {
        let mut times: Vec<f64> = self.step_seconds.iter().copied().collect();
        times.sort_by(f64::total_cmp);
        let p99 = times.get(((times.len() as f64) * 0.99) as usize).or(times.last()).copied().unwrap_or(0.0);
        floor.max(Duration::from_secs_f64(p99 * factor))
    }
}

/// A straggler is also this much slower than the others' median: on millisecond steps,
/// scheduling noise alone doubles compute times.
pub const STRAGGLER_MIN_EXCESS_SECONDS: f64 = 0.05;

/// Members whose time (gradient arrival, else compute) is more than twice the median of the
/// other members' (the others, so that with two workers the slow one is not its own yardstick).
pub fn stragglers(times: &[(String, f64)]) -> Vec<String> {
    times
        .iter()
        .enumerate()
        .filter(|(i, (_, seconds))| {
            let mut others: Vec<f64> = times.iter().enumerate().filter(|(j, _)| j != i).map(|(_, (_, s))| *s).collect();
            others.sort_by(f64::total_cmp);
            let median = others.get(others.len().saturating_sub(1) / 2).copied().unwrap_or(0.0);
            median > 0.0 && *seconds > 2.0 * median && *seconds - median > STRAGGLER_MIN_EXCESS_SECONDS
        })
        .map(|(_, (worker, _))| worker.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(workers: usize) -> JobRun {
        let toml = format!(
            "name = \"t\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n[training]\nbatch_size = 10\nmax_steps = 5\neval_every = 2\n[workers]\ncount = {workers}\n"
        );
        let spec = JobSpec::parse(&toml, "t").unwrap();
        JobRun::new("j".into(), spec, toml, 0, 0, Instant::now())
    }

    fn chunk(step: u64, round: u64, values: &[f32]) -> pb::GradientChunk {
        pb::GradientChunk {
            worker_id: String::new(),
            job_id: "j".into(),
            step,
            round,
            offset: 0,
            total: values.len() as u64,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    fn report(checksum: u32) -> Report {
        Report { samples: 5, loss_sum: 5.0, correct: 2, checksum, ..Report::default() }
    }

    #[test]
    fn a_step_releases_the_sum_once_everyone_pushed_and_ends_when_everyone_reported() {
        let now = Instant::now();
        let mut run = run(2);
        run.admit("a", StateSource::Fresh, now);
        run.admit("b", StateSource::Fresh, now);
        let round = run.round;
        let task = run.task_for("b", Vec::new()).unwrap();
        assert_eq!((task.rank, task.world, task.step, task.state_source), (1, 2, 0, pb::StateSource::Fresh as i32));
        assert!(run.task_for("b", Vec::new()).is_none(), "one task per round");
        assert!(!run.add_chunk("a", &chunk(0, round, &[1.0, 2.0]), &[1.0, 2.0]).unwrap());
        assert!(matches!(run.pull(0, round), Pull::Pending));
        assert!(run.add_chunk("b", &chunk(0, round, &[3.0, 4.0]), &[3.0, 4.0]).unwrap());
        let Pull::Ready(sum) = run.pull(0, round) else { panic!("sum not released") };
        assert_eq!(*sum, vec![4.0, 6.0]);
        assert_eq!(run.report("a", 1, round, report(7)).unwrap(), None);
        let outcome = run.report("b", 1, round, report(7)).unwrap().unwrap();
        assert_eq!((outcome.step, outcome.samples, outcome.loss, outcome.diverged), (1, 10, 1.0, false));
        run.advance(now);
        assert_eq!((run.step, run.cursor, run.round), (1, 10, round));
        assert_eq!(run.task_for("a", Vec::new()).unwrap().state_source, pb::StateSource::Keep as i32);
    }

    #[test]
    fn losing_a_member_before_the_sum_abandons_the_round_and_survivors_redo_the_step() {
        let now = Instant::now();
        let mut run = run(2);
        run.admit("a", StateSource::Fresh, now);
        run.admit("b", StateSource::Fresh, now);
        let round = run.round;
        run.task_for("a", Vec::new());
        run.add_chunk("a", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        assert!(run.remove("b", now));
        assert!(matches!(run.pull(0, round), Pull::Aborted));
        assert!(matches!(run.add_chunk("a", &chunk(0, round, &[1.0]), &[1.0]), Err(PushError::Stale { .. })));
        let task = run.task_for("a", Vec::new()).unwrap();
        assert_eq!((task.step, task.rank, task.world, task.round), (0, 0, 1, round + 1));
        assert!(run.add_chunk("a", &chunk(0, round + 1, &[1.0]), &[1.0]).unwrap());
    }

    #[test]
    fn losing_a_member_after_the_sum_lets_the_survivors_finish_the_step() {
        let now = Instant::now();
        let mut run = run(2);
        run.admit("a", StateSource::Fresh, now);
        run.admit("b", StateSource::Fresh, now);
        let round = run.round;
        run.add_chunk("a", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        run.add_chunk("b", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        run.report("a", 1, round, report(1)).unwrap();
        assert!(!run.remove("b", now));
        assert_eq!(run.outcome_if_complete().unwrap().step, 1);
    }

    #[test]
    fn joiners_enter_at_a_boundary_with_the_pushed_state() {
        let now = Instant::now();
        let mut run = run(2);
        run.admit("a", StateSource::Fresh, now);
        run.queue_joiner("b");
        let round = run.round;
        assert!(run.task_for("a", Vec::new()).unwrap().push_state);
        run.add_chunk("a", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        run.store_state(1, vec![1, 2, 3]);
        run.report("a", 1, round, report(1)).unwrap().unwrap();
        run.advance(now);
        assert_eq!(run.members, vec!["a".to_string(), "b".to_string()]);
        assert!(run.round > round, "membership changed: new round");
        let task = run.task_for("b", Vec::new()).unwrap();
        assert_eq!((task.state_source, task.rank, task.world, task.step), (pb::StateSource::Peer as i32, 1, 2, 1));
        assert_eq!(*run.state_for(1).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn newcomers_share_a_start_until_the_first_step_is_done() {
        let now = Instant::now();
        let mut run = run(3);
        run.admit("a", StateSource::Checkpoint("c".into()), now);
        assert_eq!(run.shared_start(), Some(StateSource::Checkpoint("c".into())));
        run.admit("b", StateSource::Checkpoint("c".into()), now);
        let round = run.round;
        run.add_chunk("a", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        run.add_chunk("b", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        assert_eq!(run.shared_start(), None, "once the step was reduced the members hold newer state");
    }

    #[test]
    fn diverged_replicas_and_stragglers_are_reported() {
        let now = Instant::now();
        let mut run = run(3);
        for w in ["a", "b", "c"] {
            run.admit(w, StateSource::Fresh, now);
        }
        let round = run.round;
        for w in ["a", "b"] {
            run.add_chunk(w, &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        }
        // c's gradient comes late: the others wait for it.
        std::thread::sleep(Duration::from_millis(120));
        run.add_chunk("c", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        run.report("a", 1, round, Report { compute_seconds: 1.0, ..report(1) }).unwrap();
        run.report("b", 1, round, Report { compute_seconds: 1.1, ..report(1) }).unwrap();
        let outcome = run.report("c", 1, round, Report { compute_seconds: 5.0, ..report(2) }).unwrap().unwrap();
        assert!(outcome.diverged);
        assert_eq!(outcome.stragglers, vec!["c".to_string()]);
    }

    #[test]
    fn with_two_workers_the_slow_one_is_a_straggler_and_even_speeds_are_not() {
        let times = |a: f64, b: f64| vec![("a".to_string(), a), ("b".to_string(), b)];
        assert_eq!(stragglers(&times(1.0, 4.0)), vec!["b".to_string()]);
        assert!(stragglers(&times(1.0, 1.5)).is_empty());
        assert!(stragglers(&times(0.01, 0.04)).is_empty(), "millisecond noise is not straggling");
        assert!(stragglers(&[("a".to_string(), 9.0)]).is_empty(), "one worker has nobody to lag behind");
    }

    #[test]
    fn ring_rounds_release_when_every_member_finished_the_all_reduce() {
        let now = Instant::now();
        let mut run = run(2);
        run.admit("a", StateSource::Fresh, now);
        run.admit("b", StateSource::Fresh, now);
        let round = run.round;
        assert!(!run.mark_reduced("a", 0, round).unwrap());
        assert!(matches!(run.pull(0, round), Pull::Pending));
        assert_eq!(run.overdue(now + Duration::from_secs(9), Duration::from_secs(1)), vec!["b".to_string()]);
        assert!(matches!(run.mark_reduced("a", 0, round - 1), Err(PushError::Stale { .. })));
        assert!(run.mark_reduced("b", 0, round).unwrap());
        let Pull::Ready(sum) = run.pull(0, round) else { panic!("not released") };
        assert!(sum.is_empty());
    }

    #[test]
    fn overdue_members_are_those_that_have_not_pushed() {
        let start = Instant::now();
        let mut run = run(2);
        run.admit("a", StateSource::Keep, start);
        run.admit("b", StateSource::Keep, start);
        let round = run.round;
        run.add_chunk("a", &chunk(0, round, &[1.0]), &[1.0]).unwrap();
        assert!(run.overdue(start, Duration::from_secs(1)).is_empty());
        assert_eq!(run.overdue(start + Duration::from_secs(2), Duration::from_secs(1)), vec!["b".to_string()]);
        assert_eq!(run.step_deadline(Duration::from_secs(3), 5.0), Duration::from_secs(3));
    }
}
