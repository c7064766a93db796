//! Commands that talk to a coordinator: submit, status, list, watch, cancel.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use facetrain_proto::auth::{AttachToken, Token};
use facetrain_proto::job::JobSpec;
use facetrain_proto::pb::{self, job_service_client::JobServiceClient};
use facetrain_proto::tls::TlsFiles;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::cli::{Output, Remote};
use crate::output::print_json;

type Client = JobServiceClient<InterceptedService<Channel, AttachToken>>;

/// Every call but `watch` is answered at once; none may hang the CLI.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

async fn connect(remote: &Remote) -> anyhow::Result<Client> {
    let tls = TlsFiles { ca: remote.tls_ca.clone(), cert: remote.tls_cert.clone(), key: remote.tls_key.clone() };
    let channel = tls
        .endpoint(&remote.coordinator, remote.tls_server_name.as_deref())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {}", remote.coordinator))?;
    Ok(JobServiceClient::with_interceptor(channel, AttachToken::new(token(remote)?.as_ref())))
}

fn token(remote: &Remote) -> anyhow::Result<Option<Token>> {
    if let Ok(value) = std::env::var("FACETRAIN_TOKEN") {
        return Token::new(&value).map(Some).map_err(|e| anyhow::anyhow!("FACETRAIN_TOKEN: {e}"));
    }
    remote.token_file.as_deref().map(Token::read).transpose().map_err(anyhow::Error::msg)
}

/// The coordinator's answer as an error, with the gRPC code when it says more than the text.
fn refused(status: tonic::Status) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unauthenticated => anyhow::anyhow!("unauthenticated: {}", status.message()),
        tonic::Code::DeadlineExceeded => {
            anyhow::anyhow!("the coordinator did not answer in time: {}", status.message())
        }
        tonic::Code::Unavailable => anyhow::anyhow!("the coordinator is unavailable: {}", status.message()),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

/// A request that gives up after [`CALL_TIMEOUT`].
fn bounded<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

fn who() -> String {
    std::env::var("USER").unwrap_or_else(|_| "unknown".into())
}

pub async fn submit(remote: &Remote, job: &Path) -> anyhow::Result<()> {
    // Validate here so a mistake is reported against the file, with paths resolved from it.
    let spec = JobSpec::load(job)?;
    let response = connect(remote)
        .await?
        .submit_job(bounded(pb::SubmitJobRequest { job_toml: spec.to_toml(), submitted_by: who() }))
        .await
        .map_err(|s| refused(s).context("submit refused"))?;
    println!("{}", response.into_inner().job_id);
    Ok(())
}

pub async fn status(remote: &Remote, job_id: &str, output: Output) -> anyhow::Result<()> {
    let job = connect(remote)
        .await?
        .get_job(bounded(pb::GetJobRequest { job_id: job_id.into() }))
        .await
        .map_err(refused)?
        .into_inner();
    match output {
        Output::Json => print_json(&job_json(&job)),
        Output::Text => println!("{}", job_line(&job)),
    }
    Ok(())
}

pub async fn list(remote: &Remote, output: Output) -> anyhow::Result<()> {
    let jobs =
        connect(remote).await?.list_jobs(bounded(pb::ListJobsRequest {})).await.map_err(refused)?.into_inner().jobs;
    match output {
        Output::Json => print_json(&serde_json::Value::Array(jobs.iter().map(job_json).collect())),
        Output::Text => jobs.iter().for_each(|job| println!("{}", job_line(job))),
    }
    Ok(())
}

pub async fn watch(remote: &Remote, job_id: &str) -> anyhow::Result<()> {
    let mut stream = connect(remote)
        .await?
        .watch_job(pb::WatchJobRequest { job_id: job_id.into() })
        .await
        .map_err(refused)?
        .into_inner();
    let mut last_line = String::new();
    while let Some(event) = stream.message().await? {
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
    let job = connect(remote)
        .await?
        .cancel_job(bounded(pb::CancelJobRequest { job_id: job_id.into(), requested_by: who(), hands_on_seconds }))
        .await
        .map_err(|s| refused(s).context("cancel refused"))?
        .into_inner();
    println!("{}", job_line(&job));
    Ok(())
}

pub async fn toil(remote: &Remote, job_id: Option<&str>, since: Option<&str>, output: Output) -> anyhow::Result<()> {
    let mut client = connect(remote).await?;
    let jobs = match job_id {
        Some(id) => {
            vec![client.get_job(bounded(pb::GetJobRequest { job_id: id.into() })).await.map_err(refused)?.into_inner()]
        }
        None => client.list_jobs(bounded(pb::ListJobsRequest {})).await.map_err(refused)?.into_inner().jobs,
    };
    let since_unix_ms = match since {
        Some(text) => {
            let seconds = crate::toil::parse_duration(text).map_err(|e| anyhow::anyhow!("--since {e}"))?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64;
            now.saturating_sub(seconds * 1000)
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

pub fn state_name(state: i32) -> &'static str {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Queued) => "queued",
        Ok(pb::JobState::Running) => "running",
        Ok(pb::JobState::Succeeded) => "succeeded",
        Ok(pb::JobState::Failed) => "failed",
        Ok(pb::JobState::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

fn job_line(job: &pb::Job) -> String {
    let accuracy = job.val_accuracy.map_or("-".to_string(), |a| format!("{a:.3}"));
    let message = if job.message.is_empty() { String::new() } else { format!(" ({})", job.message) };
    format!(
        "{} {} {} step {}/{} val_acc {accuracy} loss {:.4} workers {} incidents {}{message}",
        job.id,
        job.name,
        state_name(job.state),
        job.step,
        job.max_steps,
        job.train_loss,
        job.workers,
        job.incidents.len()
    )
}

fn job_json(job: &pb::Job) -> serde_json::Value {
    serde_json::json!({
        "id": job.id,
        "name": job.name,
        "state": state_name(job.state),
        "step": job.step,
        "max_steps": job.max_steps,
        "cursor": job.cursor,
        "val_accuracy": job.val_accuracy,
        "train_loss": job.train_loss,
        "workers": job.workers,
        "message": job.message,
        "latest_checkpoint": job.latest_checkpoint,
        "running_seconds": job.running_seconds,
        "samples_trained": job.samples_trained,
        "ledger": job.ledger.as_ref().map(crate::output::ledger_json),
        "created_unix_ms": job.created_unix_ms,
        "started_unix_ms": job.started_unix_ms,
        "finished_unix_ms": job.finished_unix_ms,
        "toil": job.toil.iter().map(|t| serde_json::json!({
            "kind": t.kind, "by": t.by, "unix_ms": t.unix_ms, "hands_on_seconds": t.hands_on_seconds,
        })).collect::<Vec<_>>(),
        "incidents": job.incidents.iter().map(|i| serde_json::json!({
            "cause": i.cause,
            "detail": i.detail,
            "detected_unix_ms": i.detected_unix_ms,
            "resolved_unix_ms": i.resolved_unix_ms,
            "resolved_by": i.resolved_by,
            "lost_work_seconds": i.lost_work_seconds,
            "step": i.step,
        })).collect::<Vec<_>>(),
    })
}
