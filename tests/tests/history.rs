//! A job's training curve, kept by the coordinator in its job store: there after the job ends
//! and after a coordinator restart, gone with the job.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use facetrain_tests::{Sandbox, small_dataset, small_job};

const LONG: Duration = Duration::from_secs(180);

fn curve(sandbox: &Sandbox, id: &str, output: &str) -> String {
    let out = sandbox.facectl(&["metrics", id, "--output", output]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Before: loss and accuracy were last-value gauges; a finished job had no curve.
#[test]
fn a_finished_jobs_curve_survives_a_coordinator_restart_and_goes_with_the_job() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    // eval_every = 10: points at the evaluations (10, 20) and the last step (25).
    let job = small_job(sandbox.dir.path(), "curve", &data, 1, 25, "");
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");
    sandbox.restart_coordinator();

    let points: serde_json::Value = serde_json::from_str(&curve(&sandbox, &id, "json")).unwrap();
    let points = points.as_array().unwrap();
    let steps: Vec<u64> = points.iter().map(|p| p["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [10, 20, 25], "{points:?}");
    for point in points {
        assert!(point["train_loss"].as_f64().unwrap().is_finite(), "{point}");
        assert!(point["val_accuracy"].as_f64().is_some_and(|a| (0.0..=1.0).contains(&a)), "evaluated: {point}");
        assert_eq!((point["workers"].as_u64(), point["learning_rate"].as_f64()), (Some(1), Some(0.001)));
        assert!(point["samples_per_second"].as_f64().unwrap() > 0.0 && point["step_seconds"].as_f64().unwrap() > 0.0);
    }
    let last = points.last().unwrap();
    assert_eq!(last["val_accuracy"], done["val_accuracy"], "the last point is the job's final evaluation");

    let csv = curve(&sandbox, &id, "csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("step,unix_ms,train_loss,") && lines[3].starts_with("25,"), "{csv}");
    let text = curve(&sandbox, &id, "text");
    assert!(text.contains("train_loss   ") && text.contains("val_accuracy "), "{text}");

    let deleted = sandbox.facectl(&["delete", &id]);
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    let gone = sandbox.facectl(&["metrics", &id]);
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(!gone.status.success() && stderr.contains("no job"), "{stderr}");
}

/// Before: every ended job stayed in the store forever, with its metric series.
#[test]
fn retention_deletes_the_oldest_ended_jobs_with_their_curves() {
    let mut sandbox = Sandbox::start_with_args(&["--retain-ended-jobs", "1"]);
    let data = small_dataset(sandbox.dir.path());
    sandbox.add_worker("a");
    let first = small_job(sandbox.dir.path(), "first", &data, 1, 10, "");
    let first = sandbox.submit(&first);
    sandbox.wait_for_state(&first, LONG, "succeeded");
    assert!(curve(&sandbox, &first, "csv").lines().count() > 1, "the first job has a curve while kept");
    let second = small_job(sandbox.dir.path(), "second", &data, 1, 10, "");
    let second = sandbox.submit(&second);
    sandbox.wait_for_state(&second, LONG, "succeeded");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sandbox.facectl(&["status", &first]).status.success() {
        assert!(std::time::Instant::now() < deadline, "the first job outlived the retention");
        std::thread::sleep(Duration::from_millis(100));
    }
    let gone = sandbox.facectl(&["metrics", &first]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("no job"), "its curve went with it");
    assert_eq!(sandbox.status(&second)["state"], "succeeded", "the newest ended job stays");
    let metrics = facetrain_tests::scrape(&sandbox.metrics_address);
    assert!(!metrics.contains(&first) && metrics.contains(&second), "the expired job's series went too");
}
