//! Several jobs on one pool of workers, with real processes: side by side, by priority, and
//! `submit --wait` for scripts.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use facetrain_tests::{Sandbox, small_dataset, small_job};

const LONG: Duration = Duration::from_secs(180);

fn u64_of(status: &serde_json::Value, key: &str) -> u64 {
    status[key].as_u64().unwrap_or(0)
}

/// Before: one running job at a time; the 1-worker job waited behind the 2-worker one while a
/// worker sat idle.
#[test]
fn two_jobs_run_side_by_side_on_a_three_worker_pool_and_both_succeed() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let wide = small_job(sandbox.dir.path(), "wide", &data, 2, 40, "");
    let narrow = small_job(sandbox.dir.path(), "narrow", &data, 1, 40, "");
    for name in ["a", "b", "c"] {
        sandbox.add_worker(name);
    }
    let wide = sandbox.submit(&wide);
    let narrow = sandbox.submit(&narrow);
    let both = sandbox.wait_for_job(&narrow, LONG, |s| {
        s["state"] == "running" && u64_of(s, "step") >= 1 && {
            let other = sandbox.status(&wide);
            other["state"] == "running" && u64_of(&other, "workers") == 2
        }
    });
    assert_eq!(u64_of(&both, "workers"), 1, "{both}");
    for (id, workers) in [(&wide, 2), (&narrow, 1)] {
        let done = sandbox.wait_for_state(id, LONG, "succeeded");
        assert_eq!(done["state"], "succeeded", "{done}");
        assert_eq!(done["message"], format!("completed 40 steps with {workers} worker{}", ["", "s"][workers - 1]));
        assert_eq!(u64_of(&done["ledger"], "positions_trained"), 40 * 20, "every step's batch once: {done}");
    }
}

/// A high-priority job submitted while the pool is busy starts before an earlier low-priority
/// one; the low-priority one still runs once the pool frees.
#[test]
fn a_higher_priority_job_overtakes_an_earlier_lower_one_in_the_queue() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let busy = small_job(sandbox.dir.path(), "busy", &data, 1, 30, "");
    let low = small_job(sandbox.dir.path(), "low", &data, 1, 5, "");
    let high = small_job(sandbox.dir.path(), "high", &data, 1, 5, "");
    sandbox.add_worker("a");
    let busy = sandbox.submit(&busy);
    sandbox.wait_for_state(&busy, LONG, "running");
    let low = sandbox.submit(&low);
    let output = sandbox.facectl(&["submit", "--priority", "10", high.to_str().unwrap()]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let high = String::from_utf8(output.stdout).unwrap().trim().to_string();

    let queued = sandbox.status(&high);
    assert_eq!((queued["state"].as_str(), u64_of(&queued, "queue_position")), (Some("queued"), 1), "{queued}");
    assert_eq!(queued["priority"], 10);
    let listed = sandbox.facectl(&["list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&format!("{high} high queued #1 priority 10")), "{listed}");
    assert!(listed.contains(&format!("{low} low queued #2 step")), "{listed}");
    let waiting = sandbox.wait_for_job(&low, LONG, |s| !s["message"].as_str().unwrap_or("").is_empty());
    assert_eq!(waiting["message"], "waiting for 1 free worker with backend flex; 0 free", "{waiting}");

    let high_done = sandbox.wait_for_state(&high, LONG, "succeeded");
    let low_done = sandbox.wait_for_state(&low, LONG, "succeeded");
    assert_eq!((high_done["state"].as_str(), low_done["state"].as_str()), (Some("succeeded"), Some("succeeded")));
    assert!(
        u64_of(&high_done, "started_unix_ms") < u64_of(&low_done, "started_unix_ms"),
        "high started first: {high_done} {low_done}"
    );
    assert!(u64_of(&high_done, "finished_unix_ms") <= u64_of(&low_done, "started_unix_ms"), "one worker: one job");
}

/// `submit --wait` and `watch` end with the job: 0 when it succeeded, non-zero with the reason
/// when it failed.
#[test]
fn submit_wait_exits_with_the_jobs_outcome() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    sandbox.add_worker("a");
    let good = small_job(sandbox.dir.path(), "good", &data, 1, 3, "");
    let output = sandbox.facectl(&["submit", "--wait", good.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.lines().last().unwrap().contains("succeeded"), "{stdout}");

    let csv = data.join("train.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str("train/nobody/ghost.jpg,Ada_Lovelace,0\n");
    std::fs::write(&csv, text).unwrap();
    let bad = small_job(sandbox.dir.path(), "bad", &data, 1, 3, "");
    let output = sandbox.facectl(&["submit", "--wait", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("failed") && stderr.contains("ghost.jpg"), "{stderr}");
    let id = String::from_utf8_lossy(&output.stdout).lines().next().unwrap().to_string();
    let watched = sandbox.facectl(&["watch", &id]);
    assert_eq!(watched.status.code(), Some(1), "watch of a failed job: {}", String::from_utf8_lossy(&watched.stderr));
}

/// Before: a cancelled job could not be continued; a re-run started at step 0 and, sharing the
/// checkpoint folder, pruned the old job's checkpoints.
#[test]
fn a_cancelled_job_resumes_on_fewer_workers_as_one_job_with_one_history() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "resumed", &data, 2, 40, "");
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let id = sandbox.submit(&job);
    sandbox.wait_for_job(&id, LONG, |s| s["latest_checkpoint"].as_str().is_some_and(|c| c.contains("ckpt-0000000010")));
    let cancel = sandbox.facectl(&["cancel", &id, "--hands-on-seconds", "30"]);
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    let cancelled = sandbox.wait_for_state(&id, LONG, "cancelled");
    let resume_from = cancelled["latest_checkpoint"].as_str().unwrap().to_string();
    assert!(
        resume_from.starts_with(&format!("{}/{id}/", sandbox.dir.path().join("checkpoints-resumed").display())),
        "the job's checkpoints are in its own folder: {resume_from}"
    );
    sandbox.kill_worker("b");

    let resumed = sandbox.facectl(&["resume", &id, "--max-steps", "50", "--hands-on-seconds", "20", "--wait"]);
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(resumed.status.success(), "{stdout}{}", String::from_utf8_lossy(&resumed.stderr));
    let done = sandbox.status(&id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["message"], "completed 50 steps with 1 worker", "{done}");
    assert_eq!(u64_of(&done["ledger"], "positions_trained"), 50 * 20, "every step's batch once, across both runs");
    assert!(u64_of(&done["ledger"], "epochs_checked") >= 10, "epochs checked row by row: {done}");
    let causes: Vec<&str> =
        done["incidents"].as_array().unwrap().iter().map(|i| i["cause"].as_str().unwrap()).collect();
    assert!(!causes.contains(&"sample_accounting"), "{causes:?}");
    let toil: Vec<(&str, f64)> = done["toil"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["hands_on_seconds"].as_f64().unwrap()))
        .collect();
    assert_eq!(toil, [("cancel", 30.0), ("resume", 20.0)]);
    let events = sandbox.facectl(&["events", &id]);
    let events = String::from_utf8_lossy(&events.stdout);
    let kinds: Vec<&str> = events.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    // (b's loss may show too: the resume can start before the coordinator notices it is gone.)
    assert_eq!(kinds[..4], ["submitted", "started", "manual", "manual"], "{events}");
    assert_eq!(kinds.last(), Some(&"ended"), "{events}");
    assert!(events.contains("cancel by ") && events.contains("resume by "), "{events}");
    assert!(events.lines().last().unwrap().ends_with("succeeded: completed 50 steps with 1 worker"), "{events}");
    let again = sandbox.facectl(&["resume", &id]);
    assert!(!again.status.success(), "a succeeded job resumes only with --max-steps");
}

/// Before: every worker registered as `flex` and a job's backend was not checked against the
/// worker: a GPU job could train on a CPU worker without a word.
#[test]
fn a_cuda_job_never_lands_on_a_cpu_worker_and_says_what_it_waits_for() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    sandbox.add_worker("cpu-only");
    let gpu = small_job(sandbox.dir.path(), "gpu", &data, 1, 5, "");
    let text = std::fs::read_to_string(&gpu)
        .unwrap()
        .replace("count = 1", "count = 1\nbackend = \"cuda\"\ndevice = \"cuda:0\"");
    std::fs::write(&gpu, text).unwrap();
    let gpu = sandbox.submit(&gpu);
    let cpu = small_job(sandbox.dir.path(), "cpu", &data, 1, 5, "");
    let cpu = sandbox.submit(&cpu);
    let done = sandbox.wait_for_state(&cpu, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "the GPU job holds nothing back: {done}");
    let waiting = sandbox.status(&gpu);
    assert_eq!((waiting["state"].as_str(), u64_of(&waiting, "step")), (Some("queued"), 0), "{waiting}");
    assert_eq!(waiting["message"], "waiting for 1 worker with backend cuda; 0 of the 1 registered can run it");

    let workers = sandbox.facectl(&["workers", "--output", "json"]);
    let workers: serde_json::Value = serde_json::from_slice(&workers.stdout).unwrap();
    assert_eq!(workers[0]["backends"], serde_json::json!(["flex"]), "{workers}");
    assert_eq!(workers[0]["devices"], serde_json::json!(["cpu"]), "{workers}");
    let (_, address) = sandbox.worker_metrics.iter().find(|(name, _)| name == "cpu-only").unwrap();
    let metrics = facetrain_tests::scrape(address);
    assert!(metrics.contains("facetrain_worker_info{backend=\"flex\",device=\"cpu\"} 1"), "{metrics}");
}
