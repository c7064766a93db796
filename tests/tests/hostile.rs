//! Hostile and broken input against real processes: jobs that can never succeed fail with the
//! reason instead of running forever, absurd model sizes are refused before anything is
//! allocated, and a damaged job store is an error that says what to do, never a panic.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use facetrain_tests::{Sandbox, binary, small_dataset, small_job};

const LONG: Duration = Duration::from_secs(120);

fn with_learning_rate(path: &std::path::Path, rate: &str) {
    let text =
        std::fs::read_to_string(path).unwrap().replace("learning_rate = 0.001", &format!("learning_rate = {rate}"));
    std::fs::write(path, text).unwrap();
}

/// Before: two workers with a learning rate of 1e30 were evicted and re-admitted forever (305
/// `bad_gradient` incidents in 81 s, all "resolved by automation"), the job `running` at step 1.
#[test]
fn a_job_whose_model_diverges_fails_with_the_reason() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "diverges", &data, 2, 200, "");
    with_learning_rate(&job, "1e30");
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let id = sandbox.submit(&job);
    let failed = sandbox.wait_for_state(&id, LONG, "failed");
    assert_eq!(failed["state"], "failed", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("learning rate too high"), "{message}");
    let incidents = failed["incidents"].as_array().unwrap();
    assert!(incidents.len() <= 5, "a bounded number of incidents: {failed}");
    assert!(incidents.iter().all(|i| i["resolved_by"] == "job_ended"), "none was resolved: {failed}");
    assert!(incidents.iter().any(|i| i["cause"] == "non_finite" || i["cause"] == "bad_gradient"), "{failed}");
}

/// Before: one worker with the same job exited 0 with `train loss NaN`.
#[test]
fn a_local_job_whose_loss_is_not_finite_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let job = small_job(dir.path(), "nan", &data, 1, 50, "");
    with_learning_rate(&job, "1e30");
    let output = Command::new(binary("facectl")).args(["local", job.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("the training loss is") && stderr.contains("learning rate too high"), "{stderr}");
}

/// Before: accepted at submit; the worker then aborted on `memory allocation of 2048000000000
/// bytes failed` and the job stayed `running` with 0 workers.
#[test]
fn a_model_too_large_is_refused_at_submit_with_its_size() {
    let sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "huge", &data, 1, 10, "");
    let text = std::fs::read_to_string(&job).unwrap().replace("fc_units = [32]", "fc_units = [1000000000]");
    std::fs::write(&job, text).unwrap();
    let output = sandbox.facectl(&["submit", job.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("the model is too large") && stderr.contains("parameters"), "{stderr}");
    assert!(stderr.contains("--max-job-memory-gib"), "{stderr}");
}

/// Before: a CSV label of 999999 made a million-class output layer and aborted the worker.
/// Now the worker measures the model against its own limit and fails the job; it lives on.
#[test]
fn a_class_count_over_the_workers_memory_fails_the_job_and_not_the_worker() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let csv = data.join("train.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let first = text.lines().next().unwrap().to_string();
    let image = first.split(',').next().unwrap();
    text.push_str(&format!("{image},Somebody,999999\n"));
    std::fs::write(&csv, text).unwrap();
    let job = small_job(sandbox.dir.path(), "classes", &data, 1, 10, "");
    // The tutorial's widest layer: 1024 x 1,000,000 output weights.
    let text = std::fs::read_to_string(&job).unwrap().replace("fc_units = [32]", "fc_units = [1024]");
    std::fs::write(&job, text).unwrap();
    sandbox.add_worker_with_env("a", &[("FACETRAIN_MAX_JOB_MEMORY_GIB", "1")]);
    let id = sandbox.submit(&job);
    let failed = sandbox.wait_for_state(&id, LONG, "failed");
    assert_eq!(failed["state"], "failed", "{failed}");
    let message = failed["message"].as_str().unwrap();
    assert!(message.contains("the model is too large") && message.contains("1000000 classes"), "{message}");
    assert_eq!(failed["incidents"][0]["cause"], "unsupported_job", "{failed}");
    // The worker is still there to take the next job.
    let small = small_job(sandbox.dir.path(), "after", &small_dataset(&sandbox.dir.path().join("more")), 1, 3, "");
    let next = sandbox.submit(&small);
    let done = sandbox.wait_for_state(&next, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
}

/// A checkpoint whose checksum is right but whose job asks for a billion-unit layer: evaluating
/// it is an error with the numbers, not an allocation failure.
#[test]
fn a_checkpoint_with_absurd_sizes_is_refused_before_it_is_loaded() {
    use facetrain_worker::checkpoint::{Checkpoint, CheckpointMeta};
    let dir = tempfile::tempdir().unwrap();
    let data = small_dataset(dir.path());
    let job = "name = \"x\"\n[dataset]\ntrain = \"t.csv\"\nvalidate = \"v.csv\"\n[model]\nfc_units = [1000000000]\n";
    let checkpoint = Checkpoint {
        meta: CheckpointMeta {
            step: 1,
            cursor: 100,
            job: job.into(),
            num_classes: 5,
            class_names: vec!["a".into(); 5],
            val_accuracy: None,
            created_unix: 0,
            ledger: None,
        },
        model: vec![0; 16],
        optimizer: vec![0; 16],
    };
    let path = dir.path().join("ckpt-0000000001.ftck");
    std::fs::write(&path, checkpoint.encode()).unwrap();
    let output = Command::new(binary("facectl"))
        .args(["eval", "--checkpoint", path.to_str().unwrap(), "--csv", data.join("validate.csv").to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "an error exit, not an abort: {stderr}");
    assert!(stderr.contains("the model is too large"), "{stderr}");
}

/// Before: scattered byte flips in the store made the coordinator panic (exit 101) with
/// `Malformed allocator state`. Now a store it cannot repair is an error naming the file.
#[test]
fn a_store_that_is_not_a_store_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("jobs.redb");
    std::fs::write(&store, vec![0x5au8; 256 * 1024]).unwrap();
    let output = Command::new(binary("facetrain-coordinator"))
        .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--store", store.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "exit 1 with a message (101 is a panic): {stderr}");
    assert!(stderr.contains(store.to_str().unwrap()) && stderr.contains("move the file aside"), "{stderr}");
}

/// Before: one unreadable job record stopped the coordinator from starting at all.
#[test]
fn an_unreadable_job_record_is_quarantined_and_the_coordinator_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store/jobs.redb");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut jobs = txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("jobs")).unwrap();
            jobs.insert("j-broken", b"{\"id\": \"j-broken\", \"state\": ".as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let sandbox = Sandbox::start_with_store(path);
    let status = sandbox.status("j-broken");
    assert_eq!(status["state"], "failed", "{status}");
    assert!(status["message"].as_str().unwrap().contains("unreadable"), "{status}");
}

/// A job for a backend no registered worker can run waits, saying why, instead of failing as bad
/// data on a worker that cannot run it.
#[test]
fn a_job_for_a_backend_no_worker_has_waits_with_the_reason() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "tch", &data, 1, 10, "");
    let text = std::fs::read_to_string(&job).unwrap().replace("count = 1", "count = 1\nbackend = \"tch\"");
    std::fs::write(&job, text).unwrap();
    sandbox.add_worker("flex-only");
    let id = sandbox.submit(&job);
    let waiting = sandbox.wait_for_job(&id, LONG, |s| s["message"].as_str().is_some_and(|m| m.contains("backend tch")));
    assert_eq!(waiting["state"], "queued", "{waiting}");
    std::thread::sleep(Duration::from_secs(3));
    let later = sandbox.status(&id);
    assert_eq!(
        (later["state"].as_str(), later["incidents"].as_array().map(Vec::len)),
        (Some("queued"), Some(0)),
        "{later}"
    );
}

/// Before: 200 submissions from one client were accepted in 4 s, each a job record kept forever.
#[test]
fn a_client_submitting_in_a_loop_is_slowed_down_with_the_wait() {
    let sandbox = Sandbox::start_with_args(&["--submit-burst", "3", "--submit-per-minute", "1"]);
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "sweep", &data, 1, 10, "");
    for _ in 0..3 {
        sandbox.submit(&job);
    }
    let refused = sandbox.facectl(&["submit", job.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "the fourth submission is refused: {stderr}");
    assert!(
        stderr.contains("too many job submissions")
            && stderr.contains("at most 3 at once")
            && stderr.contains("retry in"),
        "{stderr}"
    );
    let list = sandbox.facectl(&["list", "--output", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(jobs.as_array().map(Vec::len), Some(3), "{jobs}");
}
