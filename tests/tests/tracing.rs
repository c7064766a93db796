//! OpenTelemetry traces: with OTEL_EXPORTER_OTLP_ENDPOINT set, a short job's spans (a span per
//! step with a child per phase on the worker, a span per RPC on the coordinator) reach a real
//! OTLP/gRPC receiver.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use facetrain_tests::{Sandbox, small_dataset, small_job};

#[test]
fn spans_of_a_short_job_reach_an_otlp_receiver() {
    let repo = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let python = repo.join(".venv-test/bin/python");
    assert!(python.exists(), "run `make tools` first (installs the OTLP receiver's Python packages)");
    let spans = tempfile::NamedTempFile::new().unwrap();
    let receiver = Command::new(python)
        .arg(repo.join("tests/otlp_receiver.py"))
        .arg(spans.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the OTLP receiver");
    let mut receiver = KillOnDrop(receiver);
    let mut ready = String::new();
    BufReader::new(receiver.0.stdout.take().unwrap()).read_line(&mut ready).unwrap();
    let port = ready.trim().strip_prefix("ready ").expect("receiver announces its port").to_string();

    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), format!("http://127.0.0.1:{port}")),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "200".to_string()),
    ];
    let mut sandbox = Sandbox::start_with_env(env);
    let data = small_dataset(sandbox.dir.path());
    let job = small_job(sandbox.dir.path(), "traced", &data, 1, 5, "");
    sandbox.add_worker("a");
    let id = sandbox.submit(&job);
    let done = sandbox.wait_for_state(&id, Duration::from_secs(120), "succeeded");
    assert_eq!(done["state"], "succeeded", "{done}");

    let wanted = [
        ("facetrain-worker", "train_step"),
        ("facetrain-worker", "data"),
        ("facetrain-worker", "compute"),
        ("facetrain-worker", "reduce"),
        ("facetrain-worker", "apply"),
        ("facetrain-coordinator", "grpc"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let received = std::fs::read_to_string(spans.path()).unwrap_or_default();
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(service, name)| !received.lines().any(|l| l == format!("{service}\t{name}")))
            .collect();
        let steps = received.lines().filter(|l| *l == "facetrain-worker\ttrain_step").count();
        if missing.is_empty() && steps == 5 {
            break; // one span per step, each with its phase spans
        }
        assert!(
            Instant::now() < deadline,
            "spans never arrived: {missing:?}, {steps} step spans\nreceived:\n{received}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}
