//! One `-o/--output` for every facectl command, before or after the command: JSON a program can
//! read from the commands that change a job (submit, cancel, delete) and from the ones that follow
//! it (watch: a JSON line per change), against a real coordinator.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use facetrain_tests::{Sandbox, small_dataset, small_job};

fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
}

#[test]
fn json_from_submit_watch_cancel_and_delete() {
    // No worker: the job stays queued until it is cancelled.
    let sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "queued", &data, 1, 5, "");
    let submitted = sandbox.facectl(&["-o", "json", "submit", job.to_str().unwrap()]);
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let id = json_lines(&submitted)[0]["job_id"].as_str().unwrap().to_string();

    let status = sandbox.facectl(&["status", &id, "-o", "json"]);
    assert_eq!(json_lines(&status)[0]["state"], "queued");

    let cancelled = sandbox.facectl(&["--output", "json", "cancel", &id, "--hands-on-seconds", "60"]);
    let cancelled = &json_lines(&cancelled)[0];
    assert_eq!((cancelled["id"].as_str(), cancelled["state"].as_str()), (Some(id.as_str()), Some("cancelled")));

    // Watching a cancelled job: its JSON line, and the exit status of a job that did not succeed.
    let watched = sandbox.facectl(&["-o", "json", "watch", &id]);
    assert_eq!(watched.status.code(), Some(1));
    assert_eq!(json_lines(&watched).last().unwrap()["state"], "cancelled");

    let deleted = sandbox.facectl(&["-o", "json", "delete", &id]);
    assert_eq!(json_lines(&deleted)[0], serde_json::json!({"job_id": id, "deleted": true}));

    // CSV is for the commands that print a table; elsewhere it is a usage error (2).
    let refused = sandbox.facectl(&["-o", "csv", "list"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("predict and metrics"));
}
