//! A real Prometheus server on 127.0.0.1 scraping the sandbox's processes, and its query API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::http_get;

pub struct Prometheus {
    child: Child,
    pub address: String,
}

pub fn prometheus_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|path| path.to_str().map(str::to_string))
        .and_then(|path| path.split(':').map(|d| Path::new(d).join("prometheus")).find(|p| p.exists()));
    found.expect("prometheus not found: run `make tools` (apt-get install prometheus)")
}

impl Prometheus {
    /// Scrapes `coordinator` and `workers` (host:port) every second, with the project's rules loaded.
    pub fn start(dir: &Path, coordinator: &str, workers: &[String], rules: &[PathBuf]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let quote = |targets: &[String]| targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let rule_files = rules.iter().map(|r| format!("  - '{}'\n", r.display())).collect::<String>();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{rule_files}scrape_configs:\n\
             - job_name: facetrain-coordinator\n  static_configs:\n  - targets: [{}]\n\
             - job_name: facetrain-worker\n  static_configs:\n  - targets: [{}]\n",
            quote(&[coordinator.to_string()]),
            quote(workers),
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(prometheus_binary())
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let server = Self { child, address };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(&server.address, "/-/ready").is_err() {
            assert!(Instant::now() < deadline, "prometheus did not become ready");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    /// An instant query; the `data.result` array.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let body = http_get(&self.address, &path).unwrap_or_else(|e| panic!("query {promql}: {e}"));
        let value: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
        assert_eq!(value["status"], "success", "{promql}: {value}");
        value["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The single value of `promql`, once it has one.
    pub fn wait_for_value(&self, promql: &str, timeout: Duration, accept: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + timeout;
        loop {
            let result = self.query(promql);
            let value = result.first().and_then(|r| r["value"][1].as_str()).and_then(|v| v.parse::<f64>().ok());
            if let Some(value) = value.filter(|v| accept(*v)) {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {promql}: last {result:?}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}
