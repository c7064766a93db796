//! The metrics the dashboards and alerts need, from real processes, scraped by a real
//! Prometheus: a job that loses a worker shows the incident and its automated recovery.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use facetrain_tests::prometheus::Prometheus;
use facetrain_tests::{Sandbox, scrape, small_dataset, small_job};

const LONG: Duration = Duration::from_secs(120);

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `promtool check metrics` on one scrape: the exposition must be valid and lint-clean.
fn promtool_check(text: &str, what: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool not found: run `make tools`");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed on the {what} scrape:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn prometheus_sees_the_incident_its_automated_recovery_and_every_dashboard_metric() {
    let mut sandbox = Sandbox::start();
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "watched", &data, 2, 150, "");
    sandbox.add_worker("a");
    sandbox.add_worker("b");
    let workers: Vec<String> = sandbox.worker_metrics.iter().map(|(_, address)| address.clone()).collect();
    let rules = [repo().join("dashboards/rules/recording.yml"), repo().join("dashboards/rules/alerts.yml")];
    let prometheus = Prometheus::start(sandbox.dir.path(), &sandbox.metrics_address, &workers, &rules);

    let id = sandbox.submit(&job);
    sandbox.wait_for_job(&id, LONG, |s| s["step"].as_u64().unwrap_or(0) >= 10 && s["workers"] == 2);
    // Per-member series exist while members train (they are removed when a member leaves), so the
    // mid-job scrapes count for the export check as much as the end-of-job one.
    let worker_scrape = scrape(&sandbox.worker_metrics[1].1);
    let running_scrape = scrape(&sandbox.metrics_address);
    sandbox.kill_worker("b");
    let done = sandbox.wait_for_state(&id, LONG, "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");

    let selector = format!("job_id=\"{id}\"");
    let up = prometheus.wait_for_value("up{job=\"facetrain-coordinator\"}", LONG, |v| v == 1.0);
    assert_eq!(up, 1.0);
    let incidents = prometheus.wait_for_value(
        &format!("facetrain_incidents_total{{{selector},cause=\"worker_lost\",resolved_by=\"automation\"}}"),
        LONG,
        |v| v >= 1.0,
    );
    assert_eq!(incidents, 1.0, "one worker lost, recovered by automation");
    let step = prometheus.wait_for_value(&format!("facetrain_job_step{{{selector}}}"), LONG, |v| v >= 150.0);
    assert_eq!(step, 150.0);
    let recoveries =
        prometheus
            .wait_for_value("facetrain_recovery_duration_seconds_count{cause=\"worker_lost\"}", LONG, |v| v >= 1.0);
    assert_eq!(recoveries, 1.0);
    let open = prometheus.wait_for_value(&format!("facetrain_incidents_open{{{selector}}}"), LONG, |v| v == 0.0);
    assert_eq!(open, 0.0);
    let manual = prometheus.wait_for_value("sum(facetrain_toil_events_total)", LONG, |_| true);
    assert_eq!(manual, 0.0, "no person touched this job");
    let samples = prometheus.wait_for_value(
        &format!("facetrain_samples_total{{{selector},job=\"facetrain-coordinator\"}}"),
        LONG,
        |v| v >= 3000.0,
    );
    assert_eq!(samples, 150.0 * 20.0);
    let worker_steps = prometheus.wait_for_value(
        "sum(facetrain_step_duration_seconds_count{job=\"facetrain-worker\",phase=\"compute\"})",
        LONG,
        |v| v > 0.0,
    );
    assert!(worker_steps > 0.0);

    let coordinator_scrape = scrape(&sandbox.metrics_address);
    promtool_check(&coordinator_scrape, "coordinator");
    promtool_check(&running_scrape, "running coordinator");
    promtool_check(&worker_scrape, "worker");
    let exported: BTreeSet<String> = [&coordinator_scrape, &running_scrape, &worker_scrape]
        .into_iter()
        .flat_map(|text| exported_names(text))
        .collect();
    let wanted = std::fs::read_to_string(repo().join("dashboards/metrics.txt")).unwrap();
    let missing: Vec<&str> = wanted.lines().filter(|m| !m.is_empty() && !exported.contains(*m)).collect();
    assert!(missing.is_empty(), "dashboards and rules use metrics no process exports: {missing:?}");
}
