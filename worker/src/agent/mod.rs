//! The worker agent: registers with the coordinator, keeps a heartbeat, takes step tasks and
//! trains, exchanging gradients through the coordinator. It reconnects with backoff when the
//! coordinator goes away and registers again when the coordinator no longer knows it.

mod client;
mod metrics;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use facetrain_proto::pb;
use tracing::{info, warn};

pub use client::CoordinatorClient;
pub use metrics::WorkerMetrics;
use session::{JobSession, StepError};

/// NextTask long-poll length.
const POLL: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub coordinator: String,
    pub name: String,
}

/// Runs until `stop` is set.
pub async fn run_agent(
    options: AgentOptions,
    metrics: Arc<WorkerMetrics>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let mut backoff = Duration::from_millis(100);
    let mut session: Option<JobSession> = None;
    while !stop.load(Ordering::Relaxed) {
        let client = match CoordinatorClient::connect(&options.coordinator).await {
            Ok(client) => client,
            Err(e) => {
                warn!(coordinator = %options.coordinator, error = %e, retry_in_ms = backoff.as_millis() as u64, "coordinator unreachable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let worker_id = match client.register(&options.name).await {
            Ok(registered) => registered,
            Err(e) => {
                warn!(error = %e, "register failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        info!(worker = %worker_id.0, name = %options.name, "registered");
        let heartbeat = tokio::spawn(client.clone().heartbeat_loop(worker_id.0.clone(), worker_id.1));
        let result = serve_tasks(&client, &worker_id.0, &mut session, &metrics, &stop).await;
        heartbeat.abort();
        if let Err(e) = result {
            warn!(error = %e, "lost the coordinator; reconnecting");
            tokio::time::sleep(backoff).await;
        }
    }
    Ok(())
}

/// Takes tasks until the coordinator forgets this worker or becomes unreachable.
async fn serve_tasks(
    client: &CoordinatorClient,
    worker: &str,
    session: &mut Option<JobSession>,
    metrics: &WorkerMetrics,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let task = client.next_task(worker, POLL).await?;
        match task.kind {
            Some(pb::task::Kind::Step(step)) => {
                let job_id = step.job_id.clone();
                match JobSession::run_step(session, client, worker, step, metrics).await {
                    Ok(()) => {}
                    Err(StepError::Abandoned(reason)) => {
                        info!(job = %job_id, reason, "step abandoned; waiting for the redo")
                    }
                    Err(StepError::JobFailed(reason)) => {
                        warn!(job = %job_id, reason, "cannot run this job");
                        *session = None;
                        client.report_failure(worker, &job_id, &reason).await?;
                    }
                    Err(StepError::Coordinator(status)) => return Err(status.into()),
                }
            }
            Some(pb::task::Kind::ReleaseJob(job)) => {
                if session.as_ref().is_some_and(|s| s.job_id == job) {
                    info!(job = %job, "job released");
                    *session = None;
                }
            }
            Some(pb::task::Kind::Idle(_)) | None => {}
        }
    }
    Ok(())
}
