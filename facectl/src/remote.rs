//! Commands that talk to a coordinator: submit, status, list, watch, cancel.

use std::path::Path;

use facetrain_proto::job::JobSpec;
use facetrain_proto::pb;

use crate::cli::Remote;
use crate::connection::Connection;
use crate::output::{Output, job_json, job_line, print_json};

fn who() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}

pub async fn submit(remote: &Remote, job: &Path) -> anyhow::Result<()> {
    // Validate here so a mistake is reported against the file, with paths resolved from it.
    let spec = JobSpec::load(job)?;
    let mut connection = Connection::open(remote, "submit").await?;
    let request = connection.request(pb::SubmitJobRequest { job_toml: spec.to_toml(), submitted_by: who() });
    let response = connection.client.submit_job(request).await.map_err(|s| connection.failed(s))?;
    println!("{}", response.into_inner().job_id);
    Ok(())
}

pub async fn status(remote: &Remote, job_id: &str, output: Output) -> anyhow::Result<()> {
    let mut connection = Connection::open(remote, "status").await?;
    let request = connection.request(pb::GetJobRequest { job_id: job_id.into() });
    let job = connection.client.get_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
    match output {
        Output::Json => print_json(&job_json(&job)),
        Output::Text => println!("{}", job_line(&job)),
    }
    Ok(())
}

pub async fn list(remote: &Remote, output: Output) -> anyhow::Result<()> {
    let mut connection = Connection::open(remote, "list").await?;
    let request = connection.request(pb::ListJobsRequest {});
    let jobs = connection.client.list_jobs(request).await.map_err(|s| connection.failed(s))?.into_inner().jobs;
    match output {
        Output::Json => print_json(&serde_json::Value::Array(jobs.iter().map(job_json).collect())),
        Output::Text => jobs.iter().for_each(|job| println!("{}", job_line(job))),
    }
    Ok(())
}

/// Follows the job until it ends. The stream has no deadline (a job may run for days and stay
/// quiet while queued); keep-alive pings bound how long a silent coordinator is waited for.
pub async fn watch(remote: &Remote, job_id: &str) -> anyhow::Result<()> {
    let mut connection = Connection::open(remote, "watch").await?;
    let request = tonic::Request::new(pb::WatchJobRequest { job_id: job_id.into() });
    let mut stream = connection.client.watch_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
    let mut last_line = String::new();
    while let Some(event) = stream.message().await.map_err(|s| connection.failed(s))? {
        if let Some(job) = event.job {
            let line = job_line(&job);
            if line != last_line {
                println!("{line}");
                last_line = line;
            }
        }
    }
    Ok(())
}

pub async fn cancel(remote: &Remote, job_id: &str, hands_on_seconds: f64) -> anyhow::Result<()> {
    let mut connection = Connection::open(remote, "cancel").await?;
    let request =
        connection.request(pb::CancelJobRequest { job_id: job_id.into(), requested_by: who(), hands_on_seconds });
    let job = connection.client.cancel_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
    println!("{}", job_line(&job));
    Ok(())
}

/// `since_seconds`: only incidents and actions within this window.
pub async fn toil(
    remote: &Remote,
    job_id: Option<&str>,
    since_seconds: Option<u64>,
    output: Output,
) -> anyhow::Result<()> {
    let mut connection = Connection::open(remote, "toil").await?;
    let jobs = match job_id {
        Some(id) => {
            let request = connection.request(pb::GetJobRequest { job_id: id.into() });
            vec![connection.client.get_job(request).await.map_err(|s| connection.failed(s))?.into_inner()]
        }
        None => {
            let request = connection.request(pb::ListJobsRequest {});
            connection.client.list_jobs(request).await.map_err(|s| connection.failed(s))?.into_inner().jobs
        }
    };
    let since_unix_ms = match since_seconds {
        Some(seconds) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
            now.saturating_sub(seconds.saturating_mul(1000))
        }
        None => 0,
    };
    let ledger = crate::toil::ledger(&jobs, since_unix_ms);
    let scope = job_id.map_or("all jobs".to_string(), |id| format!("job {id}"));
    match output {
        Output::Json => {
            print_json(&serde_json::json!({"scope": scope, "since_unix_ms": since_unix_ms, "ledger": ledger}))
        }
        Output::Text => crate::toil::print_text(&ledger, &scope),
    }
    Ok(())
}
