use std::time::{Duration, Instant};

use facetrain_proto::internal;
use facetrain_proto::job::JobSpec;

use super::*;

fn run(workers: usize) -> JobRun {
    let toml = format!(
        "name = \"t\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n[training]\nbatch_size = 10\nmax_steps = 5\neval_every = 2\n[workers]\ncount = {workers}\n"
    );
    let spec = JobSpec::parse(&toml, "t").unwrap();
    JobRun::new("j".into(), spec, toml, 0, Instant::now())
}

fn chunk(step: u64, round: u64, values: &[f32]) -> internal::GradientChunk {
    internal::GradientChunk {
        worker_id: String::new(),
        job_id: "j".into(),
        step,
        round,
        offset: 0,
        total: values.len() as u64,
        data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        samples: None,
    }
}

fn push(run: &mut JobRun, worker: &str, step: u64, round: u64, values: &[f32]) -> Result<bool, PushError> {
    run.add_chunk(worker, &chunk(step, round, values), values, Instant::now())
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
    assert_eq!((task.rank, task.world, task.step, task.state_source), (1, 2, 0, internal::StateSource::Fresh as i32));
    assert!(run.task_for("b", Vec::new()).is_none(), "one task per round");
    assert!(!push(&mut run, "a", 0, round, &[1.0, 2.0]).unwrap());
    assert!(matches!(run.pull(0, round), Pull::Pending));
    assert!(push(&mut run, "b", 0, round, &[3.0, 4.0]).unwrap());
    let Pull::Ready(sum) = run.pull(0, round) else { panic!("sum not released") };
    assert_eq!(*sum, vec![4.0, 6.0]);
    assert_eq!(run.report("a", 1, round, report(7), now).unwrap(), None);
    let outcome = run.report("b", 1, round, report(7), now).unwrap().unwrap();
    assert_eq!((outcome.step, outcome.samples, outcome.loss, outcome.diverged), (1, 10, 1.0, false));
    assert_eq!(outcome.reports.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>(), vec!["a", "b"], "rank order");
    run.advance(now);
    assert_eq!((run.step, run.cursor, run.round), (1, 10, round));
    assert_eq!(run.task_for("a", Vec::new()).unwrap().state_source, internal::StateSource::Keep as i32);
}

#[test]
fn losing_a_member_before_the_sum_abandons_the_round_and_survivors_redo_the_step() {
    let now = Instant::now();
    let mut run = run(2);
    run.admit("a", StateSource::Fresh, now);
    run.admit("b", StateSource::Fresh, now);
    let round = run.round;
    run.task_for("a", Vec::new());
    push(&mut run, "a", 0, round, &[1.0]).unwrap();
    assert!(run.remove("b", now));
    assert!(matches!(run.pull(0, round), Pull::Aborted));
    assert!(matches!(push(&mut run, "a", 0, round, &[1.0]), Err(PushError::Stale { .. })));
    let task = run.task_for("a", Vec::new()).unwrap();
    assert_eq!((task.step, task.rank, task.world, task.round), (0, 0, 1, round + 1));
    assert!(push(&mut run, "a", 0, round + 1, &[1.0]).unwrap());
}

#[test]
fn losing_a_member_after_the_sum_lets_the_survivors_finish_the_step() {
    let now = Instant::now();
    let mut run = run(2);
    run.admit("a", StateSource::Fresh, now);
    run.admit("b", StateSource::Fresh, now);
    let round = run.round;
    push(&mut run, "a", 0, round, &[1.0]).unwrap();
    push(&mut run, "b", 0, round, &[1.0]).unwrap();
    run.report("a", 1, round, report(1), now).unwrap();
    assert!(!run.remove("b", now));
    assert_eq!(run.outcome_if_complete(now).unwrap().step, 1);
}

#[test]
fn joiners_enter_at_a_boundary_with_the_pushed_state() {
    let now = Instant::now();
    let mut run = run(2);
    run.admit("a", StateSource::Fresh, now);
    run.queue_joiner("b");
    let round = run.round;
    assert!(run.task_for("a", Vec::new()).unwrap().push_state);
    push(&mut run, "a", 0, round, &[1.0]).unwrap();
    run.store_state(1, vec![1, 2, 3]);
    run.report("a", 1, round, report(1), now).unwrap().unwrap();
    run.advance(now);
    assert_eq!(run.members, vec!["a".to_string(), "b".to_string()]);
    assert!(run.round > round, "membership changed: new round");
    let task = run.task_for("b", Vec::new()).unwrap();
    assert_eq!((task.state_source, task.rank, task.world, task.step), (internal::StateSource::Peer as i32, 1, 2, 1));
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
    push(&mut run, "a", 0, round, &[1.0]).unwrap();
    push(&mut run, "b", 0, round, &[1.0]).unwrap();
    assert_eq!(run.shared_start(), None, "once the step was reduced the members hold newer state");
}

#[test]
fn diverged_replicas_and_late_gradients_are_reported() {
    let start = Instant::now();
    let mut run = run(3);
    for w in ["a", "b", "c"] {
        run.admit(w, StateSource::Fresh, start);
    }
    let round = run.round;
    for w in ["a", "b"] {
        run.add_chunk(w, &chunk(0, round, &[1.0]), &[1.0], start + Duration::from_millis(10)).unwrap();
    }
    // c's gradient comes late: the others wait for it.
    run.add_chunk("c", &chunk(0, round, &[1.0]), &[1.0], start + Duration::from_millis(130)).unwrap();
    run.report("a", 1, round, Report { compute_seconds: 1.0, ..report(1) }, start).unwrap();
    run.report("b", 1, round, Report { compute_seconds: 1.1, ..report(1) }, start).unwrap();
    let outcome = run.report("c", 1, round, Report { compute_seconds: 5.0, ..report(2) }, start).unwrap().unwrap();
    assert!(outcome.diverged);
    assert_eq!(outcome.stragglers, vec!["c".to_string()]);
}

#[test]
fn ring_rounds_release_when_every_member_finished_the_all_reduce() {
    let now = Instant::now();
    let mut run = run(2);
    run.admit("a", StateSource::Fresh, now);
    run.admit("b", StateSource::Fresh, now);
    let round = run.round;
    assert!(!run.mark_reduced("a", (0, round), Default::default(), now).unwrap());
    assert!(matches!(run.pull(0, round), Pull::Pending));
    assert_eq!(run.overdue(now + Duration::from_secs(9), Duration::from_secs(1)), vec!["b".to_string()]);
    assert!(matches!(run.mark_reduced("a", (0, round - 1), Default::default(), now), Err(PushError::Stale { .. })));
    assert!(run.mark_reduced("b", (0, round), Default::default(), now).unwrap());
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
    run.add_chunk("a", &chunk(0, round, &[1.0]), &[1.0], start).unwrap();
    assert!(run.overdue(start, Duration::from_secs(1)).is_empty());
    assert_eq!(run.overdue(start + Duration::from_secs(2), Duration::from_secs(1)), vec!["b".to_string()]);
    let timing = crate::cluster::Timing { step_deadline_floor: Duration::from_secs(3), ..Default::default() };
    assert_eq!(run.deadline(&timing), Duration::from_secs(3));
}

#[test]
fn tasks_follow_the_plan_for_evaluation_and_checkpoints() {
    let now = Instant::now();
    let mut run = run(1);
    run.admit("a", StateSource::Fresh, now);
    let flags: Vec<(bool, bool)> = (0..5)
        .map(|step| {
            run.rewind(step);
            run.admit("a", StateSource::Keep, now);
            let task = run.task_for("a", Vec::new()).unwrap();
            (task.evaluate, task.write_checkpoint)
        })
        .collect();
    // eval_every = 2 and at the last step (5); no checkpoint folder.
    assert_eq!(flags, vec![(false, false), (true, false), (false, false), (true, false), (true, false)]);
}

#[test]
fn validation_accuracy_is_the_sum_of_the_members_shares() {
    let now = Instant::now();
    let mut run = run(2);
    run.admit("a", StateSource::Fresh, now);
    run.admit("b", StateSource::Fresh, now);
    let round = run.round;
    push(&mut run, "a", 0, round, &[1.0]).unwrap();
    push(&mut run, "b", 0, round, &[1.0]).unwrap();
    // a scored 9 of its 10, b 1 of its 30: the set's accuracy is 10/40, not the mean of 0.9 and 0.03.
    let a = Report { val_accuracy: Some(0.9), val_counts: (9, 10), ..report(1) };
    let b = Report { val_accuracy: Some(1.0 / 30.0), val_counts: (1, 30), ..report(1) };
    run.report("a", 1, round, a, now).unwrap();
    let outcome = run.report("b", 1, round, b, now).unwrap().unwrap();
    assert_eq!(outcome.val_accuracy, Some(0.25));
}
