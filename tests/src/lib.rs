//! A sandbox for integration tests: a real coordinator process and real worker processes on
//! 127.0.0.1, driven through the real `facectl`, with `wait_for` polling and chaos helpers
//! (kill -9, restart).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use facetrain_worker::data::synth::{SynthOptions, write_synthetic_dataset};

pub mod s3;

/// Where cargo put the workspace binaries (next to the test executable's `deps/`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built: run `cargo build --workspace --bins` first", path.display());
    path
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub address: String,
    coordinator: Option<Child>,
    workers: Vec<(String, Child)>,
    coordinator_args: Vec<String>,
    /// Extra environment for worker and facectl processes (e.g. S3 credentials).
    pub env: Vec<(String, String)>,
}

impl Sandbox {
    /// A coordinator with short timeouts (heartbeat 2 s, step deadline floor 5 s, start grace 2 s).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = vec![
            "--heartbeat-timeout-ms".to_string(),
            "2000".into(),
            "--step-deadline-ms".into(),
            "5000".into(),
            "--start-grace-ms".into(),
            "2000".into(),
        ];
        let mut sandbox = Self {
            dir,
            address: String::new(),
            coordinator: None,
            workers: Vec::new(),
            coordinator_args: args,
            env: Vec::new(),
        };
        sandbox.start_coordinator("127.0.0.1:0");
        sandbox
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn start_coordinator(&mut self, listen: &str) {
        let store = self.dir.path().join("store/jobs.redb");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("coordinator.log"))
            .unwrap();
        let mut child = Command::new(binary("facetrain-coordinator"))
            .args(["--listen", listen, "--store", store.to_str().unwrap()])
            .args(&self.coordinator_args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start coordinator");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("coordinator prints its address");
        let address = line.trim().rsplit(' ').next().expect("address").to_string();
        assert!(address.contains(':'), "unexpected coordinator output: {line}");
        self.address = address;
        self.coordinator = Some(child);
    }

    pub fn kill_coordinator(&mut self) {
        if let Some(mut child) = self.coordinator.take() {
            child.kill().expect("SIGKILL coordinator");
            child.wait().ok();
        }
    }

    /// Restarts on the same address, so workers reconnect to the URL they know.
    pub fn restart_coordinator(&mut self) {
        self.kill_coordinator();
        let address = self.address.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpListener::bind(&address).is_ok() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.start_coordinator(&address);
    }

    pub fn add_worker(&mut self, name: &str) {
        let log = std::fs::File::create(self.dir.path().join(format!("worker-{name}.log"))).unwrap();
        let child = Command::new(binary("facetrain-worker"))
            .args(["--coordinator", &self.url(), "--name", name])
            .env("RUST_LOG", "info")
            .envs(self.env.iter().cloned())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start worker");
        self.workers.push((name.to_string(), child));
    }

    /// SIGKILL, as a node failure would.
    pub fn kill_worker(&mut self, name: &str) {
        let index = self.workers.iter().position(|(n, _)| n == name).expect("known worker");
        let (_, mut child) = self.workers.remove(index);
        child.kill().expect("SIGKILL worker");
        child.wait().ok();
    }

    pub fn facectl(&self, args: &[&str]) -> Output {
        Command::new(binary("facectl"))
            .args(args)
            .env("FACETRAIN_COORDINATOR", self.url())
            .output()
            .expect("run facectl")
    }

    pub fn submit(&self, job: &Path) -> String {
        let output = self.facectl(&["submit", job.to_str().unwrap()]);
        assert!(output.status.success(), "submit failed: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    pub fn status(&self, job: &str) -> serde_json::Value {
        let output = self.facectl(&["status", job, "--output", "json"]);
        assert!(output.status.success(), "status failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("status JSON")
    }

    /// Polls the job until `done` holds, failing with the last status after `timeout`.
    pub fn wait_for_job(
        &self,
        job: &str,
        timeout: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let output = self.facectl(&["status", job, "--output", "json"]);
            if output.status.success() {
                let status: serde_json::Value = serde_json::from_slice(&output.stdout).expect("status JSON");
                if done(&status) {
                    return status;
                }
                if Instant::now() > deadline {
                    panic!(
                        "timed out waiting for job {job}: {status}\ncoordinator log:\n{}",
                        self.log("coordinator.log")
                    );
                }
            } else if Instant::now() > deadline {
                panic!("timed out waiting for job {job}: {}", String::from_utf8_lossy(&output.stderr));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_for_state(&self, job: &str, timeout: Duration, state: &str) -> serde_json::Value {
        self.wait_for_job(job, timeout, |s| s["state"] == state || is_terminal(s))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for (_, child) in &mut self.workers {
            child.kill().ok();
            child.wait().ok();
        }
        self.kill_coordinator();
    }
}

pub fn is_terminal(status: &serde_json::Value) -> bool {
    matches!(status["state"].as_str(), Some("succeeded" | "failed" | "cancelled"))
}

/// A small generated dataset (32x32 faces) under `dir`.
pub fn small_dataset(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let options = SynthOptions { side: 32, train_per_person: 8, validate_per_person: 4, seed: 11 };
    write_synthetic_dataset(&data, &options).expect("write synthetic dataset");
    data
}

/// Writes a job file for the small model on `data`; `extra` is appended (TOML).
pub fn small_job(dir: &Path, name: &str, data: &Path, workers: usize, max_steps: u64, extra: &str) -> PathBuf {
    let text = format!(
        r#"name = "{name}"
[dataset]
train = "{train}"
validate = "{validate}"
[model]
image_size = 32
conv_channels = [8, 16]
fc_units = [32]
[training]
batch_size = 20
learning_rate = 0.001
max_steps = {max_steps}
eval_every = 10
seed = 3
[workers]
count = {workers}
[checkpoint]
dir = "{checkpoints}"
every = 5
keep = 3
{extra}
"#,
        train = data.join("train.csv").display(),
        validate = data.join("validate.csv").display(),
        checkpoints = dir.join(format!("checkpoints-{name}")).display(),
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}
