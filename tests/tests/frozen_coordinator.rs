//! A coordinator that stops answering (SIGSTOP: its sockets stay open, nothing replies) must not
//! hang facectl: `watch` notices through keep-alive pings, calls through their deadline, and both
//! give up within `--timeout` with the command and the address in the message.
// Test helpers: an unmet expectation is a failed test, which is what unwrap/expect say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facetrain_tests::{binary, small_dataset, small_job};

/// The bound the test gives facectl, and how long past it an exit may take on a busy machine.
const BOUND_S: u64 = 2;
const SLACK: Duration = Duration::from_secs(15);

/// A coordinator process of this test's own (the sandbox does not hand out its pid), resumed
/// and killed when dropped so a failing test leaves nothing stopped behind.
struct Coordinator {
    child: Child,
    url: String,
    /// Kept open: the coordinator prints more start-up lines, and a closed pipe would kill it.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Coordinator {
    fn start(dir: &std::path::Path) -> Self {
        let mut child = Command::new(binary("facetrain-coordinator"))
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--store"])
            .arg(dir.join("jobs.redb"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start coordinator");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("listening on") {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "coordinator exited before listening");
        }
        let url = format!("http://{}", line.trim().rsplit(' ').next().unwrap());
        Self { child, url, _stdout: stdout }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([name, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {name}");
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn facectl(url: &str) -> Command {
    let mut command = Command::new(binary("facectl"));
    command.env("FACETRAIN_COORDINATOR", url).env("FACETRAIN_TIMEOUT", BOUND_S.to_string());
    command
}

/// Waits for `child` to exit within `limit`; kills it and fails otherwise.
fn exit_within(mut child: Child, limit: Duration, what: &str) -> (std::process::ExitStatus, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
            return (status, stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("{what} still running {limit:?} after the coordinator froze");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn watch_and_calls_give_up_on_a_frozen_coordinator_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(dir.path());
    let data = small_dataset(dir.path());
    // No workers: the job stays queued, so the watch stream is legitimately quiet.
    let job = small_job(dir.path(), "frozen", &data, 1, 5, "");
    let submitted = facectl(&coordinator.url).args(["submit"]).arg(&job).output().unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let id = String::from_utf8(submitted.stdout).unwrap().trim().to_string();

    let mut watch =
        facectl(&coordinator.url).args(["watch", &id]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("queued"), "{first}");
    // Keep reading, as a terminal would: the job's message may still change (it says what it waits for).
    std::thread::spawn(move || lines.for_each(drop));
    // Quiet but alive: keep-alive pings are answered, so the watch stays.
    std::thread::sleep(Duration::from_secs(BOUND_S * 2));
    assert!(watch.try_wait().unwrap().is_none(), "watch gave up on a live coordinator");

    coordinator.signal("-STOP");
    let frozen_at = Instant::now();
    let (status, stderr) = exit_within(watch, Duration::from_secs(BOUND_S) + SLACK, "facectl watch");
    assert!(!status.success());
    let expected = format!("facectl watch: no answer from {} within {BOUND_S} s", coordinator.url);
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(frozen_at.elapsed() >= Duration::from_secs(BOUND_S) / 2, "gave up before the bound");

    for command in [vec!["status", &id], vec!["list"]] {
        let child = facectl(&coordinator.url).args(&command).stderr(Stdio::piped()).spawn().unwrap();
        let (status, stderr) = exit_within(child, Duration::from_secs(BOUND_S) + SLACK, command[0]);
        assert!(!status.success());
        let expected = format!("facectl {}: no answer from {} within {BOUND_S} s", command[0], coordinator.url);
        assert!(stderr.contains(&expected), "{stderr}");
    }

    // Thawed, it answers again.
    coordinator.signal("-CONT");
    let output = facectl(&coordinator.url).args(["status", &id]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
