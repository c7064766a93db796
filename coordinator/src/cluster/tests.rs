//! The cluster's rules, one test each, on a simulated clock.

use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};

use super::testkit::{GRADIENT, Sim, job_toml};
use super::{DomainError, Event};
use crate::record::JobState;

fn started(workers: &[&str], job_workers: usize, max_steps: u64) -> (Sim, String) {
    let mut sim = Sim::new();
    let id = sim.submit(&job_toml("t", job_workers, max_steps, 10, ""));
    for name in workers {
        sim.register(name);
    }
    sim.tick();
    (sim, id)
}

#[test]
fn a_job_starts_on_free_workers_and_succeeds_after_its_steps() {
    let (mut sim, id) = started(&["a", "b"], 2, 3);
    assert_eq!(sim.job(&id).state, JobState::Running);
    for _ in 0..3 {
        sim.step(&["a", "b"]);
    }
    let job = sim.job(&id);
    assert_eq!((job.state, job.step, job.samples_trained), (JobState::Succeeded, 3, 30));
    assert_eq!((job.ledger.next_position, job.ledger.positions_trained), (30, 30));
    assert_eq!(job.message, "completed 3 steps with 2 workers");
}

#[test]
fn a_silent_worker_is_lost_after_the_heartbeat_timeout_and_not_before() {
    let (mut sim, id) = started(&["a", "b"], 2, 10);
    sim.step(&["a", "b"]);
    sim.advance(1900);
    sim.heartbeat("a");
    sim.tick();
    assert_eq!(sim.cluster.job(&id).unwrap().workers, 2, "1.9 s of silence is within the 2 s timeout");
    sim.advance(200);
    sim.tick();
    let job = sim.job(&id);
    assert_eq!(sim.cluster.job(&id).unwrap().workers, 1);
    assert_eq!(job.incidents.len(), 1);
    assert_eq!((job.incidents[0].cause, job.incidents[0].step), (IncidentCause::WorkerLost, 2));
    sim.step(&["a"]);
    let job = sim.job(&id);
    assert_eq!(job.incidents[0].resolved_by, Some(Resolver::Automation), "resolved once step 2 is done");
}

#[test]
fn incidents_stay_open_until_the_job_gets_past_the_step_they_struck() {
    let (mut sim, id) = started(&["a"], 1, 20);
    for _ in 0..4 {
        sim.step(&["a"]);
    }
    // The only worker dies at step 5: nobody holds the state, the job rewinds to the checkpoint.
    let job = sim.job(&id);
    assert_eq!(job.step, 4);
    sim.advance(2100);
    sim.tick();
    assert_eq!(sim.job(&id).incidents[0].step, 5);
    assert_eq!(
        sim.job(&id).message,
        "no worker left: waiting for one with backend flex; training resumes from step 3 (the latest checkpoint) \
         when one is free"
    );
    sim.register("a2");
    sim.tick();
    assert_eq!(sim.job(&id).step, 3, "rewound to the checkpoint of step 3 (every = 3)");
    assert_eq!(sim.job(&id).message, "", "a member is back: nothing to wait for");
    sim.step(&["a2"]);
    let job = sim.job(&id);
    assert_eq!(job.step, 4);
    assert!(job.incidents[0].is_open(), "redoing step 4 is not recovery from an incident at step 5");
    sim.step(&["a2"]);
    assert_eq!(sim.job(&id).incidents[0].resolved_by, Some(Resolver::Automation));
    assert_eq!(sim.job(&id).samples_trained, 10 * (4 + 2), "redone steps count again in the samples trained");
    assert_eq!(sim.job(&id).ledger.positions_trained, 50, "the ledger follows the history: steps 1-5");
}

#[test]
fn a_gradient_that_keeps_being_non_finite_fails_the_job_with_the_reason() {
    let (mut sim, id) = started(&["a", "b"], 2, 10);
    let mut rejected = 0;
    while sim.job(&id).state == JobState::Running && rejected < 20 {
        for name in ["a", "b"] {
            if sim.workers.get(name).is_none_or(|w| sim.cluster.heartbeat(&w.id, sim.now).is_err()) {
                sim.register(name); // the agent registers again after an eviction
            }
        }
        sim.tick();
        for name in ["a", "b"] {
            let Some(task) = sim.take_task(name) else { continue };
            let worker = &sim.workers[name];
            let chunk = facetrain_proto::internal::GradientChunk {
                worker_id: worker.id.clone(),
                job_id: id.clone(),
                step: task.step,
                round: task.round,
                offset: 0,
                total: GRADIENT as u64,
                data: [f32::NAN; GRADIENT].iter().flat_map(|v| v.to_le_bytes()).collect(),
                samples: None,
            };
            if let Err(DomainError::Invalid { .. }) = sim.cluster.push_chunk(&worker.id.clone(), &chunk, sim.now) {
                rejected += 1;
            }
        }
    }
    let job = sim.job(&id);
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    assert_eq!(rejected, 5, "2 workers: the fifth rejection at the same step fails the job");
    assert!(job.message.starts_with("gradients non-finite 5 times at step 1"), "{}", job.message);
    assert!(job.message.ends_with("learning rate too high, or the data out of range?"), "{}", job.message);
    assert!(job.incidents.iter().all(|i| i.resolved_by == Some(Resolver::JobEnded)), "nothing was resolved");
}

#[test]
fn a_step_that_missed_a_sample_fails_the_job_as_sample_accounting() {
    let (mut sim, id) = started(&["a", "b"], 2, 10);
    sim.step(&["a", "b"]);
    for name in ["a", "b"] {
        sim.take_task(name);
    }
    assert!(sim.push("a"));
    assert!(sim.push_with("b", |positions| {
        positions.pop();
    }));
    sim.step(&["a", "b"]);
    let job = sim.job(&id);
    assert_eq!(job.state, JobState::Failed);
    assert!(
        job.message.contains("sample accounting failed at step 2: 1 of the step's 10 positions were not trained: 19"),
        "{}",
        job.message
    );
    assert_eq!(job.incidents.last().unwrap().cause, IncidentCause::SampleAccounting);
    assert_eq!(job.ledger.next_position, 10, "the ledger holds only checked steps");
}

#[test]
fn a_repeated_sample_is_caught_too() {
    let (mut sim, id) = started(&["a", "b"], 2, 10);
    for name in ["a", "b"] {
        sim.take_task(name);
    }
    assert!(sim.push_with("a", |positions| positions[1] = positions[0]));
    sim.step(&["a", "b"]);
    let job = sim.job(&id);
    assert!(job.message.contains("position 0 trained twice in one step"), "{}", job.message);
}

/// Found by the chaos suite once the ledger was in: a member lost after the sum was released had
/// trained its share (its gradient is in the applied sum) but never reported; counting samples
/// from the reports failed the job. Samples now travel with the gradient.
#[test]
fn a_member_lost_after_the_sum_was_released_still_counts_its_samples() {
    let (mut sim, id) = started(&["a", "b"], 2, 10);
    sim.prepare(&["a", "b"]);
    assert!(sim.report("a"));
    sim.workers.remove("b");
    for _ in 0..3 {
        sim.advance(1000);
        sim.heartbeat("a");
        sim.tick();
    }
    let job = sim.job(&id);
    assert_eq!((job.state, job.step, job.ledger.positions_trained), (JobState::Running, 1, 10), "{job:?}");
    assert_eq!(job.incidents[0].cause, IncidentCause::WorkerLost);
}

#[test]
fn only_an_ended_job_can_be_deleted_and_its_toil_stays_counted() {
    let (mut sim, id) = started(&["a"], 1, 10);
    let queued = sim.submit(&job_toml("later", 1, 10, 4, ""));
    for running_or_queued in [&id, &queued] {
        assert!(matches!(sim.cluster.check_delete(running_or_queued), Err(DomainError::Precondition(_))));
    }
    assert!(matches!(sim.cluster.check_delete("j-none"), Err(DomainError::NotFound(_))));
    assert!(matches!(sim.cluster.check_delete(""), Err(DomainError::Invalid { field: "job_id", .. })));
    sim.cluster.cancel(&id, "ann", 42.0, sim.now).unwrap();
    sim.cluster.check_delete(&id).unwrap();
    sim.cluster.forget(&id);
    assert!(matches!(sim.cluster.job(&id), Err(DomainError::NotFound(_))));
    assert_eq!(sim.cluster.jobs().len(), 1, "only the queued job is left");
    let snapshot = sim.cluster.snapshot();
    let deleted = snapshot.deleted_toil[&facetrain_proto::incidents::ToilKind::Cancel];
    assert_eq!((deleted.actions, deleted.hands_on_seconds), (1, 42.0));
    assert!(sim.cluster.take_events().iter().any(|e| matches!(e, Event::JobDeleted { job } if *job == id)));
}

#[test]
fn cancelling_takes_the_hands_on_time_and_refuses_nonsense() {
    let (mut sim, id) = started(&["a"], 1, 10);
    for bad in [f64::INFINITY, f64::NAN, -1.0, 1e9] {
        assert!(matches!(sim.cluster.cancel(&id, "ann", bad, sim.now), Err(DomainError::Invalid { .. })), "{bad}");
    }
    sim.cluster.cancel(&id, "ann", 42.0, sim.now).unwrap();
    let job = sim.job(&id);
    assert_eq!((job.state, job.toil.len(), job.toil[0].hands_on_seconds), (JobState::Cancelled, 1, 42.0));
    assert!(matches!(sim.cluster.cancel(&id, "ann", 0.0, sim.now), Err(DomainError::Precondition(_))));
}

#[test]
fn only_the_running_job_accumulates_running_time() {
    let (mut sim, running) = started(&["a"], 1, 100);
    let queued = sim.submit(&job_toml("q", 1, 10, 10, ""));
    sim.advance(3000);
    sim.heartbeat("a");
    sim.tick();
    sim.cluster.cancel(&queued, "ann", 0.0, sim.now).unwrap();
    assert_eq!(sim.job(&queued).running_seconds, 0.0, "a queued job never ran");
    sim.advance(1000);
    sim.heartbeat("a");
    sim.tick();
    assert!((sim.job(&running).running_seconds - 4.0).abs() < 1e-9, "{}", sim.job(&running).running_seconds);
}

#[test]
fn a_job_no_registered_worker_can_run_waits_with_the_reason() {
    let mut sim = Sim::new();
    let id = sim.submit(&job_toml("t", 2, 10, 10, "").replace("count = 2", "count = 2\nbackend = \"tch\""));
    sim.register("flex-only");
    sim.tick();
    sim.advance(1500);
    sim.heartbeat("flex-only");
    sim.tick();
    let job = sim.job(&id);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.message, "waiting for 2 workers with backend tch; 0 of the 1 registered can run it");
    assert!(sim.take_task("flex-only").is_none());
}

#[test]
fn a_failed_job_closes_what_is_open_as_job_ended() {
    let (mut sim, id) = started(&["a"], 1, 10);
    let worker = sim.workers["a"].id.clone();
    sim.cluster.fail_job(&worker, &id, IncidentCause::BadData, "train.csv:3: image missing", sim.now).unwrap();
    let job = sim.job(&id);
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.incidents[0].cause, IncidentCause::BadData);
    assert_eq!(job.incidents[0].resolved_by, Some(Resolver::JobEnded));
    assert!(job.message.ends_with("train.csv:3: image missing"), "{}", job.message);
}

#[test]
fn a_restart_requeues_the_running_job_with_an_incident_resolved_past_its_step() {
    let (mut sim, id) = started(&["a"], 1, 20);
    for _ in 0..3 {
        sim.step(&["a"]);
    }
    let record = sim.job(&id);
    let mut sim2 = Sim::new();
    sim2.cluster = super::Cluster::open(vec![record], super::testkit::timing(), Default::default(), sim.now);
    let job = sim2.job(&id);
    assert_eq!(job.state, JobState::Queued);
    assert_eq!((job.incidents[0].cause, job.incidents[0].step), (IncidentCause::CoordinatorRestart, 4));
    sim2.register("a");
    sim2.tick();
    while sim2.job(&id).step < 4 {
        sim2.step(&["a"]);
    }
    assert_eq!(sim2.job(&id).incidents[0].resolved_by, Some(Resolver::Automation));
}

#[test]
fn a_refused_save_opens_a_job_store_incident_that_the_next_save_closes() {
    let (mut sim, id) = started(&["a"], 1, 10);
    sim.cluster.store_refused(&id, "No space left on device", sim.now);
    sim.cluster.store_refused(&id, "No space left on device", sim.now);
    assert_eq!(sim.cluster.unsaved(), vec![id.clone()]);
    let job = sim.job(&id);
    assert_eq!(job.incidents.len(), 1, "one incident while the condition lasts");
    sim.cluster.store_saved(&id, sim.now);
    assert!(sim.cluster.unsaved().is_empty());
    assert_eq!(sim.job(&id).incidents[0].resolved_by, Some(Resolver::Automation));
}

#[test]
fn a_model_too_large_for_the_coordinator_is_refused_at_submit() {
    let sim = Sim::new();
    let toml = job_toml("big", 1, 10, 10, "").replace("[dataset]", "[model]\nfc_units = [1000000000]\n[dataset]");
    let Err(DomainError::Invalid { reason: message, .. }) = sim.cluster.prepare_submit(&toml, "t", "", sim.now) else {
        panic!("accepted a billion-unit layer")
    };
    assert!(message.contains("the model is too large"), "{message}");
    assert!(message.contains("--max-job-memory-gib"), "{message}");
}

#[test]
fn steps_report_what_the_shell_must_do() {
    let (mut sim, id) = started(&["a"], 1, 2);
    sim.cluster.take_events();
    sim.step(&["a"]);
    let events = sim.cluster.take_events();
    assert!(events.iter().any(|e| matches!(e, Event::StepApplied { step: 1, .. })), "{events:?}");
    assert!(events.iter().any(|e| matches!(e, Event::JobChanged { job } if *job == id)), "{events:?}");
}

#[test]
fn a_stopping_worker_leaves_at_once_and_is_handed_no_job() {
    let mut sim = Sim::new();
    sim.register("idle");
    let idle = sim.workers["idle"].id.clone();
    sim.cluster.leave(&idle, "stopping", sim.now).unwrap();
    let id = sim.submit(&job_toml("t", 1, 5, 10, ""));
    sim.tick();
    assert_eq!(sim.job(&id).state, JobState::Queued, "the job waits rather than going to a leaving worker");
    assert!(sim.job(&id).incidents.is_empty(), "an idle worker leaving is no incident");
    assert!(matches!(sim.cluster.leave(&idle, "again", sim.now), Err(DomainError::NotFound(_))));

    // A member leaving: its job goes on without it now, not after the heartbeat timeout.
    sim.register("a");
    sim.tick();
    sim.step(&["a"]);
    assert_eq!(sim.cluster.job(&id).unwrap().workers, 1);
    sim.register("b");
    let a = sim.workers["a"].id.clone();
    sim.cluster.leave(&a, "stopping", sim.now).unwrap();
    let job = sim.job(&id);
    assert_eq!(job.incidents.len(), 1);
    assert_eq!(job.incidents[0].cause, IncidentCause::WorkerLost);
    assert!(job.incidents[0].detail.ends_with("left: stopping"), "{}", job.incidents[0].detail);
    sim.tick();
    assert_eq!(sim.cluster.job(&id).unwrap().workers, 1, "b took over");
}

/// Several jobs on one pool (schedule.rs): side by side, by priority, holding workers for the
/// job ahead, not held back by a job the pool cannot run, starting smaller with `min_count`.
mod pool {
    use super::*;

    fn running(sim: &Sim, id: &str) -> u32 {
        let view = sim.cluster.job(id).unwrap();
        if view.record.state == JobState::Running { view.workers } else { 0 }
    }

    fn with(workers: &[&str]) -> Sim {
        let mut sim = Sim::new();
        for name in workers {
            sim.register(name);
        }
        sim
    }

    #[test]
    fn two_jobs_run_side_by_side_and_both_succeed() {
        let mut sim = with(&["a", "b", "c"]);
        let two = sim.submit(&job_toml("two", 2, 3, 10, ""));
        let one = sim.submit(&job_toml("one", 1, 2, 10, ""));
        sim.tick();
        assert_eq!((running(&sim, &two), running(&sim, &one)), (2, 1));
        for _ in 0..3 {
            sim.step(&["a", "b", "c"]);
        }
        for id in [&two, &one] {
            let job = sim.job(id);
            assert_eq!(job.state, JobState::Succeeded, "{}", job.message);
            assert_eq!(job.ledger.positions_trained, job.step * 10, "every step's batch trained once");
        }
    }

    #[test]
    fn a_higher_priority_job_starts_before_an_earlier_lower_one() {
        let mut sim = with(&["a"]);
        let long = sim.submit(&job_toml("long", 1, 2, 10, ""));
        sim.tick();
        let low = sim.submit(&job_toml("low", 1, 1, 10, ""));
        sim.advance(10);
        let high = sim.submit(&job_toml("high", 1, 1, 10, "priority = 5"));
        sim.tick();
        let position = |sim: &Sim, id: &str| sim.cluster.job(id).unwrap().queue_position;
        assert_eq!((position(&sim, &high), position(&sim, &low), position(&sim, &long)), (1, 2, 0));
        for _ in 0..2 {
            sim.step(&["a"]);
        }
        sim.tick();
        assert_eq!(sim.job(&long).state, JobState::Succeeded);
        assert_eq!((running(&sim, &high), running(&sim, &low)), (1, 0), "the pool freed: priority first");
        // The worker first takes the release of the job that ended, then the new job's step.
        sim.step(&["a"]);
        sim.step(&["a"]);
        sim.tick();
        assert_eq!(sim.job(&high).state, JobState::Succeeded);
        assert_eq!(running(&sim, &low), 1, "a low-priority job still runs once the pool frees");
        sim.step(&["a"]);
        sim.step(&["a"]);
        assert_eq!(sim.job(&low).state, JobState::Succeeded);
    }

    #[test]
    fn a_waiting_job_holds_free_workers_from_the_jobs_behind_it() {
        let mut sim = with(&["a", "b"]);
        let first = sim.submit(&job_toml("first", 1, 5, 10, ""));
        sim.tick();
        let wide = sim.submit(&job_toml("wide", 2, 1, 10, ""));
        let small = sim.submit(&job_toml("small", 1, 1, 10, ""));
        sim.tick();
        assert_eq!((running(&sim, &first), running(&sim, &wide), running(&sim, &small)), (1, 0, 0));
        assert_eq!(sim.job(&wide).message, "waiting for 2 free workers with backend flex; 1 free");
        assert_eq!(
            sim.job(&small).message,
            "waiting for 1 free worker with backend flex; 0 free, 1 held for jobs ahead in the queue"
        );
        for _ in 0..5 {
            sim.step(&["a", "b"]);
        }
        sim.tick();
        assert_eq!(sim.job(&first).state, JobState::Succeeded);
        assert_eq!((running(&sim, &wide), running(&sim, &small)), (2, 0));
    }

    #[test]
    fn a_job_larger_than_the_pool_does_not_hold_back_the_jobs_behind_it() {
        let mut sim = with(&["a", "b"]);
        let huge = sim.submit(&job_toml("huge", 3, 1, 10, ""));
        let small = sim.submit(&job_toml("small", 1, 1, 10, ""));
        sim.tick();
        assert_eq!((running(&sim, &huge), running(&sim, &small)), (0, 1));
        assert_eq!(
            sim.job(&huge).message,
            "waiting for 3 workers with backend flex; 2 of the 2 registered can run it (workers.min_count lets a job \
             start with fewer)"
        );
    }

    #[test]
    fn min_count_starts_smaller_after_the_grace_and_grows_to_count() {
        let mut sim = with(&["a", "b"]);
        let id = sim.submit(&job_toml("elastic", 3, 10, 12, "").replace("count = 3", "count = 3\nmin_count = 2"));
        sim.tick();
        assert_eq!(running(&sim, &id), 0, "waits the grace for the third");
        sim.advance(1000);
        sim.heartbeat("a");
        sim.heartbeat("b");
        sim.tick();
        assert_eq!(running(&sim, &id), 2);
        sim.step(&["a", "b"]);
        sim.register("c");
        sim.tick();
        let c = sim.workers["c"].id.clone();
        let run = sim.cluster.active_run(&id).unwrap();
        assert!(run.joining.contains(&c), "the third joins at the next step boundary (run/tests.rs)");
    }
}

#[test]
fn a_cancelled_job_resumes_from_its_checkpoint_as_the_same_job_on_fewer_workers() {
    let (mut sim, id) = started(&["a", "b"], 2, 10);
    for _ in 0..4 {
        sim.step(&["a", "b"]);
    }
    let refused = sim.cluster.resume(&id, "ann", 0.0, None, sim.now);
    assert!(matches!(refused, Err(DomainError::Precondition(_))), "a running job: {refused:?}");
    sim.cluster.cancel(&id, "ann", 0.0, sim.now).unwrap();
    let too_short = sim.cluster.resume(&id, "ann", 0.0, Some(3), sim.now);
    assert!(matches!(too_short, Err(DomainError::Invalid { .. })), "it resumes from step 3: {too_short:?}");

    // Only `a` is left: a job that ran before goes on with the workers there are.
    sim.workers.remove("b");
    for _ in 0..3 {
        sim.advance(800);
        sim.heartbeat("a");
        sim.tick();
    }
    sim.cluster.resume(&id, "bob", 60.0, Some(12), sim.now).unwrap();
    let job = sim.job(&id);
    assert_eq!((job.state, job.max_steps), (JobState::Queued, 12), "one worker: it waits the start grace");
    let resume = job.toil.last().unwrap();
    assert_eq!((resume.kind, resume.by.as_str(), resume.hands_on_seconds), (ToilKind::Resume, "bob", 60.0));
    for _ in 0..2 {
        sim.advance(800);
        sim.heartbeat("a");
        sim.tick();
    }
    assert_eq!(sim.cluster.job(&id).unwrap().workers, 1);
    sim.take_task("a"); // the release of the cancelled run
    let task = sim.take_task("a").expect("a step of the resumed run");
    assert_eq!(task.step, 3, "from the latest checkpoint");
    let spec = facetrain_proto::job::JobSpec::parse(&task.job_toml, "task").unwrap();
    assert_eq!((spec.training.max_steps, spec.checkpoint.dir), (12, format!("/checkpoints/{id}")));
    for _ in 0..9 {
        sim.step(&["a"]);
    }
    let job = sim.job(&id);
    assert_eq!((job.state, job.step), (JobState::Succeeded, 12), "{}", job.message);
    assert_eq!(job.ledger.positions_trained, 12 * 10, "one continuous ledger: every position once");
    assert_eq!(job.samples_trained, 4 * 10 + 9 * 10, "samples trained count step 4 twice");
    let again = sim.cluster.resume(&id, "bob", 0.0, None, sim.now);
    assert!(matches!(again, Err(DomainError::Precondition(_))), "a succeeded job needs max_steps: {again:?}");
}
