//! Chaos helpers: signals to real processes (freeze, throttle), the assertions every scenario
//! shares, and the scenario table `make chaos` prints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{Sandbox, scrape};

/// Sends a signal (`STOP`, `CONT`, `KILL`) with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid} failed");
}

/// Slows a process down as a throttled CPU or a noisy neighbour would: stopped `stopped` out of
/// every `period`, until the returned guard is dropped.
pub struct Throttle {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Throttle {
    pub fn start(pid: u32, stopped: Duration, period: Duration) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let thread = std::thread::spawn(move || {
            while flag.load(Ordering::SeqCst) {
                signal(pid, "STOP");
                std::thread::sleep(stopped);
                signal(pid, "CONT");
                std::thread::sleep(period.saturating_sub(stopped));
            }
        });
        Self { running, thread: Some(thread) }
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One scenario's figures, for the table.
#[derive(Debug)]
pub struct Outcome {
    pub scenario: &'static str,
    pub detect_ms: Option<u64>,
    pub recover_ms: Option<u64>,
    pub samples_lost: i64,
    pub manual_actions: u64,
}

/// The assertions every scenario shares: the job succeeded with every step done once; the
/// sample ledger (what the workers reported training, checked step by step by the coordinator)
/// covers every position of every global batch exactly once; validation accuracy reaches
/// `accuracy_floor`; each expected incident was recorded and resolved by automation, visible in
/// /metrics and in the toil ledger; no manual action. Returns the samples lost: positions of the
/// job's global batches the ledger did not check.
pub fn assert_recovered(
    sandbox: &Sandbox,
    job: &str,
    done: &serde_json::Value,
    (max_steps, batch, accuracy_floor): (u64, u64, f64),
    causes: &[&str],
) -> i64 {
    assert_eq!(done["state"], "succeeded", "{done}\n{}", sandbox.log("coordinator.log"));
    assert_eq!(done["step"].as_u64(), Some(max_steps), "{done}");
    let ledger = &done["ledger"];
    let checked = ledger["positions_trained"].as_u64().unwrap_or(0) as i64;
    let samples_lost = (max_steps * batch) as i64 - checked;
    assert_eq!(samples_lost, 0, "the sample ledger checked {checked} of {} positions: {done}", max_steps * batch);
    assert_eq!(ledger["next_position"].as_u64(), Some(max_steps * batch), "{done}");
    let rows = ledger["rows"].as_u64().unwrap_or(0);
    assert!(rows > 0, "{done}");
    // Epochs that began after the last rewind from a checkpoint without a ledger are all checked.
    assert_eq!(ledger["epochs_checked"].as_u64(), Some(max_steps * batch / rows), "every epoch's rows checked: {done}");
    assert!(
        done["samples_trained"].as_u64().unwrap_or(0) >= max_steps * batch,
        "samples trained (redone steps count again) never below the batches: {done}"
    );
    let accuracy = done["val_accuracy"].as_f64().unwrap_or(0.0);
    assert!(accuracy >= accuracy_floor, "validation accuracy {accuracy} below {accuracy_floor}: {done}");
    let incidents = done["incidents"].as_array().unwrap();
    for cause in causes {
        assert!(incidents.iter().any(|i| i["cause"] == *cause), "no {cause} incident: {done}");
    }
    for incident in incidents {
        assert_eq!(incident["resolved_by"], "automation", "{incident}");
    }
    let metrics = scrape(&sandbox.metrics_address);
    for cause in causes {
        let labels = [format!("cause=\"{cause}\""), "resolved_by=\"automation\"".to_string()];
        let counted = metrics.lines().any(|l| {
            l.starts_with("facetrain_incidents_total{")
                && labels.iter().all(|label| l.contains(label))
                && !l.ends_with(" 0")
        });
        assert!(
            counted,
            "facetrain_incidents_total{{cause=\"{cause}\",resolved_by=\"automation\"}} is not above 0 in /metrics"
        );
    }
    let toil = sandbox.facectl(&["toil", job, "--output", "json"]);
    let toil: serde_json::Value = serde_json::from_slice(&toil.stdout).expect("toil JSON");
    let ledger = &toil["ledger"];
    assert_eq!(ledger["incidents"].as_u64(), Some(incidents.len() as u64), "{toil}");
    assert_eq!(ledger["resolved_by_automation"].as_u64(), Some(incidents.len() as u64), "{toil}");
    assert_eq!(ledger["manual_actions"].as_u64(), Some(0), "{toil}");
    samples_lost
}

/// Chance is 0.2 on five classes. The synthetic faces (classes told apart by colour) are easy:
/// scenarios on them must clear this bar; the real-face scenario has its own.
pub const ACCURACY_FLOOR: f64 = 0.5;

/// Detection and recovery of the first incident with `cause`, from when the fault was injected.
pub fn timings(done: &serde_json::Value, cause: &str, injected_unix_ms: u64) -> (u64, u64) {
    let incident = done["incidents"].as_array().unwrap().iter().find(|i| i["cause"] == cause).cloned();
    let incident = incident.unwrap_or_else(|| panic!("no {cause} incident: {done}"));
    let detected = incident["detected_unix_ms"].as_u64().unwrap();
    let resolved = incident["resolved_unix_ms"].as_u64().unwrap();
    (detected.saturating_sub(injected_unix_ms), resolved.saturating_sub(detected))
}

/// Prints the scenario's row and appends it to `$FACETRAIN_CHAOS_REPORT` (JSON lines) when set.
pub fn report(outcome: &Outcome) {
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    eprintln!(
        "CHAOS {} detect_ms={} recover_ms={} samples_lost={} manual_actions={}",
        outcome.scenario,
        ms(outcome.detect_ms),
        ms(outcome.recover_ms),
        outcome.samples_lost,
        outcome.manual_actions
    );
    if let Ok(path) = std::env::var("FACETRAIN_CHAOS_REPORT") {
        use std::io::Write;
        let line = serde_json::json!({
            "scenario": outcome.scenario,
            "detect_ms": outcome.detect_ms,
            "recover_ms": outcome.recover_ms,
            "samples_lost": outcome.samples_lost,
            "manual_actions": outcome.manual_actions,
        });
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).expect("chaos report");
        writeln!(file, "{line}").expect("write chaos report");
    }
}

/// A small tmpfs (root only), unmounted on drop: a disk that can really fill up.
pub struct Tmpfs {
    pub dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts one, or `None` where that is impossible and FACETRAIN_CHAOS_NO_MOUNT is set (a
    /// non-root developer); without it, failing to mount fails the test.
    pub fn mount_or_skip(size: &str) -> Option<Self> {
        match Self::mount(size) {
            Ok(disk) => Some(disk),
            Err(e) if std::env::var("FACETRAIN_CHAOS_NO_MOUNT").is_ok() => {
                crate::record_skip("tmpfs (job store disk full)", &format!("cannot mount a tmpfs: {e}"));
                None
            }
            Err(e) => panic!("cannot mount a tmpfs ({e}): run as root, or set FACETRAIN_CHAOS_NO_MOUNT=1 to skip"),
        }
    }

    pub fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(Self { dir })
    }

    /// Writes `name` until the file system is full; returns the bytes written.
    pub fn fill(&self, name: &str) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(self.dir.path().join(name)).expect("create filler");
        let chunk = vec![0u8; 16 * 1024];
        let mut written = 0;
        while file.write_all(&chunk).is_ok() {
            written += chunk.len() as u64;
        }
        let _ = file.flush();
        written
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}
