//! Distributed training against real processes: a coordinator and worker processes talking gRPC
//! over loopback, driven with `facectl`.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use facetrain_tests::{Sandbox, small_dataset, small_job, unix_ms};
use facetrain_worker::backend::training_device;
use facetrain_worker::checkpoint::read_checkpoint;
use facetrain_worker::job::Backend;
use facetrain_worker::train::trainer::Trainer;

const LONG: Duration = Duration::from_secs(120);

fn parameters(checkpoint: &str) -> Vec<f32> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (location, checkpoint) = runtime.block_on(read_checkpoint(checkpoint)).unwrap();
    let device = training_device(Backend::Flex, "cpu").unwrap();
    Trainer::from_checkpoint(&checkpoint, &location.to_string(), device).unwrap().parameters()
}

fn step(status: &serde_json::Value) -> u64 {
    status["step"].as_u64().unwrap_or(0)
}

#[test]
fn a_job_runs_to_completion_on_two_workers() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "lifecycle", &data, 2, 30, "");
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let id = sandbox.submit(&job);
    let running = sandbox.wait_for_job(&id, LONG, |s| s["workers"] == 2 || facetrain_tests::is_terminal(s));
    assert_eq!(running["workers"], 2, "{running}");
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(step(&done), 30);
    let ledger = &done["ledger"];
    assert_eq!(ledger["positions_trained"], 30 * 20, "the workers reported every position of every batch: {done}");
    assert_eq!(ledger["epochs_checked"], 30 * 20 / 40, "each epoch trained every row once: {done}");
    assert_eq!(done["samples_trained"], 30 * 20);
    assert!(done["val_accuracy"].as_f64().is_some(), "{done}");
    assert_eq!(done["incidents"].as_array().unwrap().len(), 0);
    assert!(done["latest_checkpoint"].as_str().unwrap().ends_with("ckpt-0000000030.ftck"));
    let list = sandbox.facectl(&["list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(&id));
}

/// The largest difference between two runs' parameters allowed where only the summation order of
/// the gradients differs (one worker sums 20 samples, two sum 10 each and then add). Measured:
/// 3.0e-8 after 12 steps.
const REORDERED_SUMS_TOLERANCE: f32 = 1e-6;

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max)
}

/// With augmentation and dropout on: both are drawn per sample from the seed and the sample's
/// position, so they do not depend on which worker trains the sample.
#[test]
fn two_workers_with_half_batches_match_one_worker_with_the_whole_batch() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let one = small_job(sandbox.dir.path(), "one", &data, 1, 12, "");
    let two = small_job(sandbox.dir.path(), "two", &data, 2, 12, "");
    sandbox.add_worker("a");
    let first = sandbox.submit(&one);
    let done = sandbox.wait_for_state(&first, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    sandbox.add_worker("b");
    let second = sandbox.submit(&two);
    let done2 = sandbox.wait_for_state(&second, LONG, "succeeded");
    assert_eq!(done2["state"], "succeeded", "{done2}");
    assert_eq!(done["ledger"]["digest"], done2["ledger"]["digest"], "the same samples, whatever the worker count");

    let a = parameters(done["latest_checkpoint"].as_str().unwrap());
    let b = parameters(done2["latest_checkpoint"].as_str().unwrap());
    let max_error = max_difference(&a, &b);
    eprintln!("1 x 20 vs 2 x 10 after 12 steps: max parameter difference {max_error:e}");
    assert!(max_error < REORDERED_SUMS_TOLERANCE, "2 workers differ from 1 worker by {max_error}");
    // The comparison means something only if the two runs differed in their worker count.
    assert_eq!(done["message"], "completed 12 steps with 1 worker", "{done}");
    assert_eq!(done2["message"], "completed 12 steps with 2 workers", "{done2}");
}

#[test]
fn a_killed_worker_is_detected_and_the_job_trains_on_then_a_replacement_rejoins() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "chaos", &data, 2, 200, "");
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let id = sandbox.submit(&job);
    let before = sandbox.wait_for_job(&id, LONG, |s| step(s) >= 10 && s["workers"] == 2);
    let killed_at = unix_ms();
    sandbox.kill_worker("b");
    let after = sandbox
        .wait_for_job(&id, LONG, |s| !s["incidents"].as_array().unwrap().is_empty() && step(s) > step(&before) + 5);
    let incident = after["incidents"].as_array().unwrap().iter().find(|i| i["cause"] == "worker_lost");
    let incident = incident.unwrap_or_else(|| panic!("no worker_lost incident: {after}"));
    assert_eq!(incident["resolved_by"], "automation", "{after}");
    let detected = incident["detected_unix_ms"].as_u64().unwrap();
    let resolved = incident["resolved_unix_ms"].as_u64().unwrap();
    eprintln!(
        "worker loss detected after {} ms, training again {} ms later",
        detected - killed_at,
        resolved.saturating_sub(detected)
    );
    assert!(detected - killed_at < 10_000, "detection took {} ms", detected - killed_at);
    assert!(resolved >= detected && resolved - killed_at < 30_000);
    assert_eq!(after["workers"], 1);

    sandbox.add_worker("b");
    let rejoined = sandbox.wait_for_job(&id, LONG, |s| s["workers"] == 2 || facetrain_tests::is_terminal(s));
    assert_eq!(rejoined["workers"], 2, "the replacement joined at a step boundary: {rejoined}");
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["ledger"]["positions_trained"], 200 * 20, "no global batch lost or repeated: {done}");
    assert!(done["samples_trained"].as_u64().unwrap() >= 200 * 20, "{done}");
    let toil = sandbox.facectl(&["toil", &id, "--output", "json"]);
    let toil: serde_json::Value = serde_json::from_slice(&toil.stdout).unwrap();
    let ledger = &toil["ledger"];
    assert!(ledger["incidents"].as_u64() >= Some(1), "{toil}");
    assert_eq!(ledger["incidents"], ledger["resolved_by_automation"], "{toil}");
    assert_eq!((ledger["manual_actions"].as_u64(), ledger["toil_ratio"].as_f64()), (Some(0), Some(0.0)), "{toil}");
}

#[test]
fn a_restarted_coordinator_resumes_the_job_from_its_checkpoint_with_fewer_workers() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "restart", &data, 2, 120, "");
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let id = sandbox.submit(&job);
    sandbox.wait_for_job(&id, LONG, |s| step(s) >= 12);
    // Lose the coordinator and one worker at once; the job resumes on the survivor alone.
    sandbox.kill_worker("b");
    sandbox.restart_coordinator();
    let resumed = sandbox.wait_for_job(&id, LONG, |s| s["state"] == "running" && s["workers"] == 1 && step(s) > 0);
    let restart =
        resumed["incidents"].as_array().unwrap().iter().find(|i| i["cause"] == "coordinator_restart").cloned();
    let restart = restart.unwrap_or_else(|| panic!("no coordinator_restart incident: {resumed}"));
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}\n{}", sandbox.log("coordinator.log"));
    assert_eq!(done["ledger"]["positions_trained"], 120 * 20, "the ledger continued from the checkpoint: {done}");
    assert_eq!(done["ledger"]["epochs_checked"], 120 * 20 / 40, "{done}");
    let restart = done["incidents"].as_array().unwrap().iter().find(|i| i["cause"] == restart["cause"]).unwrap();
    assert_eq!(restart["resolved_by"], "automation", "{done}");
}

#[test]
fn cancel_stops_the_job_and_leaves_a_usable_checkpoint() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "cancel", &data, 1, 100_000, "");
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);
    sandbox.wait_for_job(&id, LONG, |s| step(s) >= 10);
    let output = sandbox.facectl(&["cancel", &id, "--hands-on-seconds", "42"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let cancelled = sandbox.status(&id);
    assert_eq!(cancelled["state"], "cancelled");
    let stopped_at = step(&cancelled);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(step(&sandbox.status(&id)), stopped_at, "no step after cancel");
    let checkpoint = cancelled["latest_checkpoint"].as_str().unwrap().to_string();
    let eval = sandbox.facectl(&[
        "eval",
        "--checkpoint",
        &checkpoint,
        "--csv",
        data.join("validate.csv").to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(eval.status.success(), "{}", String::from_utf8_lossy(&eval.stderr));
    let result: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    assert_eq!(result["samples"], 20);
    let toil = sandbox.facectl(&["toil", &id, "--output", "json"]);
    assert!(toil.status.success(), "{}", String::from_utf8_lossy(&toil.stderr));
    let toil: serde_json::Value = serde_json::from_slice(&toil.stdout).unwrap();
    assert_eq!(
        (toil["ledger"]["manual_actions"].as_u64(), toil["ledger"]["toil_seconds"].as_f64()),
        (Some(1), Some(42.0)),
        "{toil}"
    );
    assert!(toil["ledger"]["toil_ratio"].as_f64().unwrap() > 0.0);
    assert_eq!(cancelled["toil"][0]["kind"], "cancel");
    let again = sandbox.facectl(&["cancel", &id]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already cancelled"));
}

#[test]
fn a_job_with_bad_data_fails_with_the_file_and_line() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let csv = data.join("train.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("train/nobody/ghost.jpg,Ada_Lovelace,0\n");
    std::fs::write(&csv, text).unwrap();
    let job = small_job(sandbox.dir.path(), "bad", &data, 1, 10, "");
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);
    let failed = sandbox.wait_for_state(&id, LONG, "failed");
    assert_eq!(failed["state"], "failed");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("train.csv:41") && message.contains("ghost.jpg"), "{message}");
    assert_eq!(failed["incidents"][0]["cause"], "bad_data");
}

#[test]
fn an_invalid_job_is_refused_at_submit_with_the_key() {
    let sandbox = Sandbox::start();
    let path = sandbox.dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "name = \"x\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n[training]\nbatch_sise = 3\n",
    )
    .unwrap();
    let output = sandbox.facectl(&["submit", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("batch_sise") && stderr.contains("bad.toml"), "{stderr}");
}

/// Two workers: the ring adds the two halves in one addition per element, as the coordinator
/// does (rank order), so the results are the same bit for bit.
#[test]
fn ring_all_reduce_matches_the_coordinator_and_survives_a_lost_worker() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let via_coordinator = small_job(sandbox.dir.path(), "via-coordinator", &data, 2, 12, "");
    let via_ring = small_job(sandbox.dir.path(), "via-ring", &data, 2, 12, "");
    let text = std::fs::read_to_string(&via_ring).unwrap().replace("count = 2", "count = 2\nreduction = \"ring\"");
    std::fs::write(&via_ring, text).unwrap();
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let first = sandbox.submit(&via_coordinator);
    let done = sandbox.wait_for_state(&first, LONG, "succeeded");
    let second = sandbox.submit(&via_ring);
    let done2 = sandbox.wait_for_state(&second, LONG, "succeeded");
    assert_eq!((done["state"].as_str(), done2["state"].as_str()), (Some("succeeded"), Some("succeeded")), "{done2}");
    let a = parameters(done["latest_checkpoint"].as_str().unwrap());
    let b = parameters(done2["latest_checkpoint"].as_str().unwrap());
    assert_eq!(max_difference(&a, &b), 0.0, "ring and coordinator reduction differ");

    // A third worker joins; then one is killed mid-job: the ring re-forms without it.
    sandbox.add_worker("c");
    let long = small_job(sandbox.dir.path(), "ring-chaos", &data, 3, 150, "");
    let text = std::fs::read_to_string(&long)
        .unwrap()
        .replace("count = 3", "count = 3\nreduction = \"ring\"\ngradient_dtype = \"bf16\"");
    std::fs::write(&long, text).unwrap();
    let id = sandbox.submit(&long);
    sandbox.wait_for_job(&id, LONG, |s| step(s) >= 10 && s["workers"] == 3);
    sandbox.kill_worker("c");
    let finished = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(finished["state"], "succeeded", "{finished}");
    assert_eq!(finished["ledger"]["positions_trained"], 150 * 20, "{finished}");
    assert_eq!(finished["incidents"][0]["resolved_by"], "automation", "{finished}");
}

/// A client that registers as a worker and sends a poisoned gradient: it is evicted with the
/// reason, the incident is recorded, and the job goes on with the real worker.
#[test]
fn a_worker_sending_a_non_finite_gradient_is_evicted_and_the_job_survives() {
    use facetrain_proto::internal::{self, worker_service_client::WorkerServiceClient};

    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "poisoned", &data, 2, 40, "");
    let url = sandbox.url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rogue = runtime.block_on(WorkerServiceClient::connect(url)).unwrap();
    let registered = runtime
        .block_on(rogue.register(internal::RegisterRequest { name: "rogue".into(), ..Default::default() }))
        .unwrap()
        .into_inner();
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);

    // Take tasks until the rogue gets a step to compute, then poison it.
    let step = loop {
        let request = internal::NextTaskRequest { worker_id: registered.worker_id.clone(), wait_ms: 1000 };
        let task = runtime.block_on(rogue.next_task(request)).unwrap().into_inner();
        if let Some(internal::task::Kind::Step(step)) = task.kind {
            break step;
        }
    };
    // The right length for this model, so the value itself is what gets it refused.
    let spec = facetrain_worker::job::JobSpec::load(&job).unwrap();
    let model = facetrain_worker::model::Architecture::new(spec.model, 5).build(&burn::tensor::Device::flex());
    let total = facetrain_worker::params::parameter_count(&model) as u64;
    let poisoned = internal::GradientChunk {
        worker_id: registered.worker_id.clone(),
        job_id: step.job_id.clone(),
        step: step.step,
        round: step.round,
        offset: 0,
        total,
        data: [1.0f32, f32::NAN, 0.0, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
        samples: None,
    };
    let refused = runtime.block_on(rogue.push_gradients(futures_iter(vec![poisoned]))).unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("non-finite"), "{}", refused.message());

    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    let incident = done["incidents"].as_array().unwrap().iter().find(|i| i["cause"] == "bad_gradient").cloned();
    let incident = incident.unwrap_or_else(|| panic!("no bad_gradient incident: {done}"));
    assert!(incident["detail"].as_str().unwrap().contains("rogue"), "{incident}");
    assert_eq!(incident["resolved_by"], "automation");
    let heartbeat = runtime.block_on(rogue.heartbeat(internal::HeartbeatRequest { worker_id: registered.worker_id }));
    assert_eq!(heartbeat.unwrap_err().code(), tonic::Code::NotFound, "the rogue is no longer registered");
}

fn futures_iter(
    chunks: Vec<facetrain_proto::internal::GradientChunk>,
) -> impl tokio_stream::Stream<Item = facetrain_proto::internal::GradientChunk> {
    tokio_stream::iter(chunks)
}

/// A worker that trains one sample too few (or one twice) in a step is caught by the coordinator's
/// sample ledger: the job fails with a `sample_accounting` incident that names the worker and the
/// position. This is the proof that the ledger's "every position once" can fail.
#[test]
fn a_worker_that_drops_or_repeats_a_sample_is_caught_by_the_ledger() {
    for (fault, expected) in [("drop_sample@3", "were not trained"), ("repeat_sample@3", "trained twice")] {
        let mut sandbox = Sandbox::start();
        let data = small_dataset(sandbox.dir.path());
        let job = small_job(sandbox.dir.path(), "faulty", &data, 2, 20, "");
        sandbox.add_worker("honest");
        sandbox.add_worker_with_env("faulty", &[("FACETRAIN_TEST_FAULT", fault)]);
        let id = sandbox.submit(&job);
        let failed = sandbox.wait_for_state(&id, LONG, "failed");
        assert_eq!(failed["state"], "failed", "{fault}: {failed}");
        let message = failed["message"].as_str().unwrap();
        assert!(message.starts_with("sample accounting failed at step 3"), "{fault}: {message}");
        assert!(message.contains(expected), "{fault}: {message}");
        let incident = failed["incidents"].as_array().unwrap().iter().find(|i| i["cause"] == "sample_accounting");
        assert!(incident.is_some(), "{fault}: {failed}");
        assert_eq!(failed["ledger"]["positions_trained"], 2 * 20, "only the checked steps count: {failed}");
    }
}

/// A job's only member has nothing to add its gradient to: before, it pushed the whole gradient to
/// the coordinator and pulled it back every step (17% of the step in `make bench-distributed`).
/// Now no gradient byte moves, and the coordinator still checks each step's samples and releases it.
#[test]
fn a_single_worker_sends_no_gradient_and_its_samples_are_still_checked() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "solo", &data, 1, 12, "");
    // Step decay every 5 steps: the 12th step (rate at 11 applied steps) runs at a quarter.
    let text = std::fs::read_to_string(&job).unwrap().replace(
        "learning_rate = 0.001\n",
        "learning_rate = 0.001\nschedule = \"step\"\ndecay_every = 5\ndecay_factor = 0.5\n",
    );
    std::fs::write(&job, text).unwrap();
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["ledger"]["positions_trained"], 12 * 20, "every step's batch was checked: {done}");
    let rows = done["ledger"]["rows"].as_u64().unwrap();
    assert_eq!(done["ledger"]["epochs_checked"], 12 * 20 / rows, "each completed epoch was checked: {done}");
    let metrics = facetrain_tests::scrape(&sandbox.metrics_address);
    let bytes: Vec<&str> = metrics.lines().filter(|l| l.starts_with("facetrain_reduce_bytes_total{")).collect();
    assert!(bytes.iter().all(|l| l.ends_with(" 0")), "no gradient reached the coordinator: {bytes:?}");
    assert_eq!(done["learning_rate"], 0.00025, "the schedule's rate of the last step: {done}");
    assert!(metrics.contains(&format!("facetrain_learning_rate{{job_id=\"{id}\"}} 0.00025")), "{metrics}");
}

/// A distributed job with `patience` ends succeeded once validation accuracy stops improving,
/// saying so; the count lives in the coordinator's record.
#[test]
fn a_job_stops_early_when_validation_accuracy_stops_improving() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "patient", &data, 1, 100, "");
    let text = std::fs::read_to_string(&job)
        .unwrap()
        .replace("eval_every = 10\n", "eval_every = 3\npatience = 1\nmin_delta = 0.99\n");
    std::fs::write(&job, text).unwrap();
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["step"], 6, "the second evaluation (step 6) did not improve on the first: {done}");
    let message = done["message"].as_str().unwrap();
    assert!(message.starts_with("early stopped at step 6: validation accuracy did not improve"), "{message}");
}
