//! Property tests over random sequences of calls (workers registering, beating, taking tasks,
//! pushing, applying, reporting, dying; the clock moving; the coordinator restarting from what
//! the store holds). After every call:
//!
//! - every member that keeps its state holds the run's step, or the next one once the round's
//!   sum was released (no replica is ever ahead: a lost member never leaves replicas apart);
//! - applied steps follow each other (no step applied twice, none skipped) except for a rewind
//!   to a checkpoint, which only happens when no member holds the state;
//! - with honest workers the sample ledger never objects, and it matches the cursor: every
//!   applied step's global batch was trained exactly once;
//! - a worker is lost for silence only after the heartbeat timeout, and for a missing gradient
//!   only after the round's deadline.

use proptest::prelude::*;

use super::testkit::{Sim, job_toml, timing};
use super::{Cluster, Event};
use facetrain_proto::incidents::IncidentCause;

const WORKERS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Call {
    Register(usize),
    Heartbeat(usize),
    Task(usize),
    Push(usize),
    Apply(usize),
    Report(usize),
    /// Every live worker beats (keeps the run going between bigger clock moves).
    HeartbeatAll,
    /// Every live worker takes its task, pushes, applies and reports (the job makes progress).
    StepAll,
    /// A worker dies: it never calls again (the cluster loses it once the clock moves on).
    Die(usize),
    /// A worker dies and the heartbeat timeout passes while the others keep beating.
    Lose(usize),
    Advance(u64),
    Tick,
    /// The coordinator restarts over what its store holds; workers must register again.
    Restart,
}

fn call() -> impl Strategy<Value = Call> {
    let worker = 0..WORKERS.len();
    prop_oneof![
        1 => worker.clone().prop_map(Call::Register),
        2 => worker.clone().prop_map(Call::Heartbeat),
        4 => worker.clone().prop_map(Call::Task),
        4 => worker.clone().prop_map(Call::Push),
        4 => worker.clone().prop_map(Call::Apply),
        4 => worker.clone().prop_map(Call::Report),
        1 => worker.clone().prop_map(Call::Die),
        2 => worker.prop_map(Call::Lose),
        4 => Just(Call::HeartbeatAll),
        6 => Just(Call::StepAll),
        2 => (1u64..2500).prop_map(Call::Advance),
        3 => Just(Call::Tick),
        1 => Just(Call::Restart),
    ]
}

struct Checker {
    /// Each job, with the step its record held after the previous call.
    jobs: Vec<(String, u64)>,
}

impl Checker {
    fn check(&mut self, sim: &Sim, events: &[Event], before: &Before) -> Result<(), TestCaseError> {
        for (id, last_step) in &mut self.jobs {
            check_job(sim, id, last_step, events)?;
        }
        for event in events {
            match event {
                Event::WorkerLost { name, cause: IncidentCause::WorkerLost, detail, .. }
                    if detail.starts_with("no heartbeat") =>
                {
                    let silent = before.silent_for(name, sim);
                    prop_assert!(silent > timing().heartbeat_timeout, "{} lost after {:?} of silence", name, silent);
                }
                Event::WorkerLost { worker, name, cause: IncidentCause::StalledStep, .. } => {
                    let round = before.rounds.get(worker).copied();
                    let (started, deadline) = round.expect("a stalled step needs a round the worker is in");
                    let waited = sim.now.at.saturating_duration_since(started);
                    prop_assert!(waited >= deadline, "{} evicted {:?} into a {:?} round", name, waited, deadline);
                }
                _ => {}
            }
        }
        for name in WORKERS {
            let Some(worker) = sim.workers.get(name) else { continue };
            let runs = sim.cluster.active_runs().filter(|run| run.holds(&worker.id)).count();
            prop_assert!(runs <= 1, "{} is held by {} running jobs", name, runs);
        }
        Ok(())
    }
}

fn check_job(sim: &Sim, id: &str, last_step: &mut u64, events: &[Event]) -> Result<(), TestCaseError> {
    let job = sim.job(id);
    prop_assert!(
        !job.incidents.iter().any(|i| i.cause == IncidentCause::SampleAccounting),
        "honest workers broke the ledger: {:?}",
        job.incidents
    );
    prop_assert_eq!(job.ledger.next_position, job.cursor, "the ledger follows the cursor");
    let mut step = *last_step;
    for event in events {
        if let Event::StepApplied { job: applied_job, step: applied, .. } = event
            && applied_job == id
        {
            // A rewind happens only when no member is left, never before a step completes in
            // the same call: applied steps follow the record's step one by one.
            prop_assert_eq!(*applied, step + 1, "step {} applied after {}", applied, step);
            step = *applied;
        }
    }
    *last_step = job.step;
    if let Some(run) = sim.cluster.active_run(id) {
        for name in WORKERS {
            let Some(worker) = sim.workers.get(name) else { continue };
            if !run.is_member(&worker.id) || worker.task.as_ref().is_none_or(|t| t.round != run.round) {
                continue;
            }
            let ahead = worker.model_step == run.step + 1;
            prop_assert!(
                worker.model_step == run.step || (ahead && run.released()),
                "{} holds step {} in a round at step {} (released: {})",
                name,
                worker.model_step,
                run.step,
                run.released()
            );
        }
    }
    Ok(())
}

/// What the checks need from before a call.
struct Before {
    beats: Vec<(String, Option<std::time::Instant>)>,
    /// The round each worker of a running job is in (by worker id): when it started, its deadline.
    rounds: std::collections::HashMap<String, (std::time::Instant, std::time::Duration)>,
}

impl Before {
    fn of(sim: &Sim) -> Self {
        let beats = sim.workers.iter().map(|(name, w)| (name.clone(), w.last_beat)).collect();
        let rounds = sim.cluster.active_runs().flat_map(|run| {
            let round = (run.round_started, run.deadline(&timing()));
            run.members.iter().map(move |m| (m.clone(), round))
        });
        Self { beats, rounds: rounds.collect() }
    }

    fn silent_for(&self, name: &str, sim: &Sim) -> std::time::Duration {
        let last = self.beats.iter().find(|(n, _)| n == name).and_then(|(_, t)| *t);
        last.map_or(std::time::Duration::MAX, |t| sim.now.at.saturating_duration_since(t))
    }
}

fn apply(sim: &mut Sim, call: &Call) {
    let name = |i: &usize| WORKERS[*i];
    match call {
        Call::Register(i) => sim.register(name(i)),
        Call::Heartbeat(i) if sim.workers.contains_key(name(i)) => sim.heartbeat(name(i)),
        Call::Task(i) if sim.workers.contains_key(name(i)) => {
            sim.take_task(name(i));
        }
        Call::Push(i) if sim.workers.contains_key(name(i)) => {
            sim.push(name(i));
        }
        Call::Apply(i) if sim.workers.contains_key(name(i)) => {
            sim.apply(name(i));
        }
        Call::Report(i) if sim.workers.contains_key(name(i)) => {
            sim.report(name(i));
        }
        Call::HeartbeatAll => {
            let names: Vec<String> = sim.workers.keys().cloned().collect();
            names.iter().for_each(|n| sim.heartbeat(n));
        }
        Call::StepAll => {
            let names: Vec<String> = sim.workers.keys().cloned().collect();
            sim.step(&names.iter().map(String::as_str).collect::<Vec<_>>());
        }
        Call::Die(i) => {
            sim.workers.remove(name(i));
        }
        Call::Lose(i) => {
            sim.workers.remove(name(i));
            let beat = timing().heartbeat_timeout / 2;
            for _ in 0..3 {
                sim.advance(beat.as_millis() as u64);
                let names: Vec<String> = sim.workers.keys().cloned().collect();
                names.iter().for_each(|n| sim.heartbeat(n));
                sim.tick();
            }
        }
        Call::Advance(ms) => sim.advance(*ms),
        Call::Tick => sim.tick(),
        Call::Restart => {
            let records = sim.cluster.jobs().into_iter().map(|v| v.record).collect();
            sim.cluster = Cluster::open(records, timing(), Default::default(), sim.now);
            // Replicas keep their models, but the new coordinator knows no worker.
            sim.workers.clear();
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_cluster_keeps_its_invariants_under_any_sequence_of_calls(calls in proptest::collection::vec(call(), 1..200)) {
        let mut sim = Sim::new();
        // A 3-worker job and a 1-worker job share the 4 workers.
        let job = sim.submit(&job_toml("p", 3, 40, 12, ""));
        let small = sim.submit(&job_toml("q", 1, 60, 5, ""));
        let mut checker = Checker { jobs: vec![(job, 0), (small, 0)] };
        for call in &calls {
            let before = Before::of(&sim);
            apply(&mut sim, call);
            let events = sim.cluster.take_events();
            checker.check(&sim, &events, &before)?;
        }
    }
}

/// A sequence that keeps the job moving: the invariants are not checked only on stuck runs.
#[test]
fn a_well_behaved_sequence_finishes_the_job() {
    let mut sim = Sim::new();
    let job = sim.submit(&job_toml("p", 3, 40, 12, ""));
    for name in ["a", "b", "c"] {
        sim.register(name);
    }
    sim.tick();
    for _ in 0..40 {
        sim.step(&["a", "b", "c"]);
    }
    let record = sim.job(&job);
    assert_eq!((record.state, record.ledger.epochs_checked), (crate::record::JobState::Succeeded, 40 * 12 / 50));
}
