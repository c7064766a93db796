//! Commands on the coordinator's jobs: submit, status, list, watch, cancel, and the connection
//! flags every command that talks to a coordinator takes.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use facetrain_proto::job::{JobSpec, MAX_PRIORITY};
use facetrain_proto::pb;

use crate::connection::Connection;
use crate::output::{Output, job_json, job_line, print_json, state_name};

/// Where the coordinator is and how to prove who we are.
#[derive(Args, Debug, Clone)]
pub struct Remote {
    /// Coordinator gRPC URL (https:// with --tls-ca).
    #[arg(long, env = "FACETRAIN_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    pub coordinator: String,
    /// CA (PEM) that signed the coordinator's certificate.
    #[arg(long, env = "FACETRAIN_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) instead of a token.
    #[arg(long, env = "FACETRAIN_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, env = "FACETRAIN_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Name to check on the coordinator's certificate (default: the URL's host).
    #[arg(long, env = "FACETRAIN_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// File holding the bearer token (first line). FACETRAIN_TOKEN, when set, wins; there is
    /// no flag for the value itself, so it never shows in `ps` or shell history.
    #[arg(long, env = "FACETRAIN_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Seconds to wait for the coordinator: a call unanswered this long fails, and `watch` gives
    /// up after this long without a sign of life from the connection (keep-alive pings).
    #[arg(long, env = "FACETRAIN_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Who asked, for the job's record and the toil ledger.
fn who() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}

#[derive(Args, Debug)]
pub struct SubmitArgs {
    job: PathBuf,
    /// Scheduling priority (higher first; FIFO within a priority), instead of job.toml's.
    #[arg(long, allow_hyphen_values = true, value_parser = clap::value_parser!(i32).range(-(MAX_PRIORITY as i64)..=MAX_PRIORITY as i64))]
    priority: Option<i32>,
    /// Follow the job until it ends, as `watch` does; exits non-zero unless it succeeds.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    remote: Remote,
}

impl SubmitArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        // Validate here so a mistake is reported against the file, with paths resolved from it.
        let mut spec = JobSpec::load(&self.job)?;
        if let Some(priority) = self.priority {
            spec.priority = priority;
        }
        for warning in local_path_warnings(&spec, &self.remote.coordinator) {
            eprintln!("warning: {warning}");
        }
        let mut connection = Connection::open(&self.remote, "submit").await?;
        let request = connection.request(pb::SubmitJobRequest {
            job_toml: spec.to_toml(),
            submitted_by: who(),
            ..Default::default()
        });
        let response = connection.client.submit_job(request).await.map_err(|s| connection.failed(s))?;
        let id = response.into_inner().job_id;
        match output {
            Output::Json => print_json(&serde_json::json!({"job_id": id})),
            Output::Text => println!("{id}"),
        }
        if self.wait {
            follow(&mut connection, &id, output).await?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    job_id: String,
    #[command(flatten)]
    remote: Remote,
}

impl StatusArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "status").await?;
        let request = connection.request(pb::GetJobRequest { job_id: self.job_id });
        let job = connection.client.get_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
        print_job(&job, output);
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    remote: Remote,
}

impl ListArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "list").await?;
        let jobs = connection.all_jobs().await?;
        match output {
            Output::Json => print_json(&serde_json::Value::Array(jobs.iter().map(job_json).collect())),
            Output::Text => jobs.iter().for_each(|job| println!("{}", job_line(job))),
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    job_id: String,
    #[command(flatten)]
    remote: Remote,
}

impl WatchArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "watch").await?;
        follow(&mut connection, &self.job_id, output).await
    }
}

/// Prints the job's line (with `-o json`, the job as one JSON line) each time it changes until
/// the job ends; an error unless it succeeded,
/// so scripts and CI can use the exit status. The stream has no deadline (a job may run for days
/// and stay quiet while queued); keep-alive pings bound how long a silent coordinator is waited for.
async fn follow(connection: &mut Connection, job_id: &str, output: Output) -> anyhow::Result<()> {
    let request = tonic::Request::new(pb::WatchJobRequest { job_id: job_id.to_string() });
    let mut stream = connection.client.watch_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
    let mut last_line = String::new();
    let mut last = None;
    while let Some(event) = stream.message().await.map_err(|s| connection.failed(s))? {
        let Some(job) = event.job else { continue };
        let line = match output {
            Output::Json => job_json(&job).to_string(),
            Output::Text => job_line(&job),
        };
        if line != last_line {
            if let Err(e) = writeln!(std::io::stdout(), "{line}") {
                // The reader left (`facectl watch JOB | head -1`): nothing more to show.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e.into());
            }
            last_line = line;
        }
        last = Some(job);
    }
    match last {
        Some(job) if job.state == pb::JobState::Succeeded as i32 => Ok(()),
        Some(job) if job.state == pb::JobState::Failed as i32 || job.state == pb::JobState::Cancelled as i32 => {
            anyhow::bail!("job {job_id} {}: {}", state_name(job.state), job.message)
        }
        _ => anyhow::bail!("the coordinator ended the watch of job {job_id} before the job ended"),
    }
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    job_id: String,
    /// Hands-on time this took you, in seconds (0..=604800), for the toil ledger (0: the
    /// coordinator's estimate, 300 s).
    #[arg(long, default_value_t = 0.0, value_parser = hands_on_seconds)]
    hands_on_seconds: f64,
    #[command(flatten)]
    remote: Remote,
}

impl CancelArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "cancel").await?;
        let request = connection.request(pb::CancelJobRequest {
            job_id: self.job_id,
            requested_by: who(),
            hands_on: Some(facetrain_proto::wire::duration(self.hands_on_seconds)),
        });
        let job = connection.client.cancel_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
        print_job(&job, output);
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    job_id: String,
    /// Train to this step instead of the job's max_steps (needed to train a succeeded job on).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_steps: Option<u64>,
    /// Hands-on time this took you, in seconds (0..=604800), for the toil ledger (0: the
    /// coordinator's estimate, 300 s).
    #[arg(long, default_value_t = 0.0, value_parser = hands_on_seconds)]
    hands_on_seconds: f64,
    /// Follow the job until it ends, as `watch` does; exits non-zero unless it succeeds.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    remote: Remote,
}

impl ResumeArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "resume").await?;
        let request = connection.request(pb::ResumeJobRequest {
            job_id: self.job_id.clone(),
            requested_by: who(),
            hands_on: Some(facetrain_proto::wire::duration(self.hands_on_seconds)),
            max_steps: self.max_steps,
        });
        let job = connection.client.resume_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
        print_job(&job, output);
        if self.wait {
            follow(&mut connection, &self.job_id, output).await?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    job_id: String,
    #[command(flatten)]
    remote: Remote,
}

impl DeleteArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "delete").await?;
        let request = connection.request(pb::DeleteJobRequest { job_id: self.job_id.clone() });
        connection.client.delete_job(request).await.map_err(|s| connection.failed(s))?;
        match output {
            Output::Json => print_json(&serde_json::json!({"job_id": self.job_id, "deleted": true})),
            Output::Text => println!("{} deleted", self.job_id),
        }
        Ok(())
    }
}

/// One job, as its line or as JSON.
fn print_job(job: &pb::Job, output: Output) {
    match output {
        Output::Json => print_json(&job_json(job)),
        Output::Text => println!("{}", job_line(job)),
    }
}

/// A job with file paths sent to a coordinator on another machine: its workers read those paths
/// from their own disks, where a laptop's files do not exist. On loopback (`facectl local`, a
/// coordinator on this machine) the paths are fine.
pub fn local_path_warnings(spec: &JobSpec, coordinator: &str) -> Vec<String> {
    let host = coordinator.split("://").nth(1).unwrap_or(coordinator);
    let host = host.split('/').next().unwrap_or(host);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback {
        return Vec::new();
    }
    spec.local_locations()
        .into_iter()
        .map(|(key, location)| {
            format!(
                "{key} = `{location}` is a path on a file system: the workers behind {coordinator} read it from their \
                 own disks, so it must exist there (use s3:// or gs:// for data the cluster shares)"
            )
        })
        .collect()
}

/// At most a week: more is a typo, and would swamp the ledger's toil ratio.
fn hands_on_seconds(text: &str) -> Result<f64, String> {
    const MAX: f64 = 7.0 * 86_400.0;
    match text.trim().parse::<f64>() {
        Ok(value) if (0.0..=MAX).contains(&value) => Ok(value),
        _ => Err(format!("expected a number of seconds in 0..={MAX} (a week)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_warned_about_only_for_a_remote_coordinator() {
        let text = "name = \"j\"\n[dataset]\ntrain = \"/home/me/t.csv\"\nvalidate = \"gs://b/v.csv\"\n";
        let spec = JobSpec::parse(text, "job.toml").unwrap();
        for local in ["http://127.0.0.1:7070", "https://localhost:7070", "http://[::1]:7070"] {
            assert!(local_path_warnings(&spec, local).is_empty(), "{local}");
        }
        let warnings = local_path_warnings(&spec, "https://facetrain.example.com:7070");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("dataset.train = `/home/me/t.csv` is a path"), "{warnings:?}");
    }
}
