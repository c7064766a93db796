//! The worker agent: registers with the coordinator, keeps a heartbeat, takes step tasks and
//! trains, exchanging gradients through the coordinator. It reconnects with backoff when the
//! coordinator goes away and registers again when the coordinator no longer knows it.

mod client;
mod metrics;
pub mod ring;
mod security;
mod session;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use facetrain_proto::internal;
use tokio::sync::watch;
use tracing::{info, warn};

pub use client::{CoordinatorClient, Failure};
pub use metrics::WorkerMetrics;
pub use security::{AgentSecurity, DEFAULT_PEER_SERVER_NAME};
use session::{JobSession, StepError};

/// NextTask long-poll length.
const POLL: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub coordinator: String,
    pub name: String,
    /// Where to accept ring all-reduce traffic (`None`: this worker cannot join ring jobs).
    pub peer_listen: Option<String>,
    /// The address peers should dial (defaults to the bound peer address).
    pub peer_advertise: Option<String>,
    pub security: AgentSecurity,
    /// What a job must fit and where it runs on this worker.
    pub placement: Placement,
}

/// What a job must fit on this worker, and the backends and devices it offers.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Jobs whose model needs more memory than this on this worker fail with the numbers.
    pub max_job_bytes: u64,
    pub host: crate::devices::Host,
}

/// Runs until `stop` turns true.
pub async fn run_agent(
    options: AgentOptions,
    metrics: Arc<WorkerMetrics>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mailbox = Arc::new(ring::Mailbox::default());
    let peer_address = match &options.peer_listen {
        Some(listen) => {
            let listener = facetrain_telemetry::bind(listen, "ring peers").await?;
            let bound = listener.local_addr()?;
            let api = ring::PeerApi { mailbox: mailbox.clone() };
            let service = facetrain_proto::internal::peer_service_server::PeerServiceServer::new(api)
                .max_decoding_message_size(facetrain_proto::MAX_MESSAGE_BYTES);
            let access = security::PeerAccess::for_agent(&options.security);
            let service = tonic::service::interceptor::InterceptedService::new(service, access);
            let mut server = tonic::transport::Server::builder()
                .initial_stream_window_size(facetrain_proto::STREAM_WINDOW_BYTES)
                .initial_connection_window_size(facetrain_proto::CONNECTION_WINDOW_BYTES)
                .max_frame_size(facetrain_proto::MAX_FRAME_BYTES);
            if let Some(tls) = options.security.peer_server_tls()? {
                server = server.tls_config(tls)?;
            }
            tokio::spawn(
                server
                    .add_service(service)
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
            );
            info!(address = %bound, "accepting ring all-reduce traffic");
            options.peer_advertise.clone().unwrap_or_else(|| bound.to_string())
        }
        None => String::new(),
    };
    let ring = Arc::new(ring::Ring::new(mailbox, options.security.clone()));
    let mut backoff = Duration::from_millis(100);
    let mut session: Option<JobSession> = None;
    while !*stop.borrow() {
        let client = match CoordinatorClient::connect(&options.coordinator, &options.security).await {
            Ok(client) => client,
            Err(e) => {
                warn!(coordinator = %options.coordinator, error = %e, retry_in_ms = backoff.as_millis() as u64, "coordinator unreachable");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let worker_id = match client.register(&options.name, &peer_address, &options.placement.host).await {
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
        let result =
            serve_tasks(&client, &worker_id.0, &mut session, (&metrics, &ring, &options.placement), &stop).await;
        heartbeat.abort();
        if *stop.borrow() {
            // Said at once, so no job is handed to a worker that is going away and none waits for
            // the heartbeat timeout to learn it.
            match client.leave(&worker_id.0, "the worker is stopping (SIGTERM)").await {
                Ok(()) => info!(worker = %worker_id.0, "left the coordinator"),
                Err(e) => warn!(error = %e, "could not tell the coordinator this worker is leaving"),
            }
            break;
        }
        if let Err(e) = result {
            warn!(error = %e, "lost the coordinator; reconnecting");
            tokio::time::sleep(backoff).await;
        }
    }
    Ok(())
}

/// Resolves once `stop` turns true (never, if its sender is gone without saying so).
async fn stopped(mut stop: watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Takes tasks until the coordinator forgets this worker or becomes unreachable.
async fn serve_tasks(
    client: &CoordinatorClient,
    worker: &str,
    session: &mut Option<JobSession>,
    (metrics, ring, placement): (&WorkerMetrics, &Arc<ring::Ring>, &Placement),
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    while !*stop.borrow() {
        // A stop during the long poll ends it: a task handed out after the stop is not started
        // (leaving tells the coordinator, which gives the step to the others).
        let task = tokio::select! {
            task = client.next_task(worker, POLL) => task?,
            () = stopped(stop.clone()) => return Ok(()),
        };
        if *stop.borrow() {
            return Ok(());
        }
        match task.kind {
            Some(internal::task::Kind::Step(step)) => {
                let job_id = step.job_id.clone();
                match JobSession::run_step(session, client, worker, step, (metrics, ring, placement)).await {
                    Ok(()) => {}
                    Err(StepError::Abandoned(reason)) => {
                        info!(job = %job_id, reason, "step abandoned; waiting for the redo")
                    }
                    Err(StepError::JobFailed { cause, reason }) => {
                        warn!(job = %job_id, cause = cause.name(), reason, "cannot go on with this job");
                        *session = None;
                        client.report_failure(worker, &job_id, &reason, Failure::Job(cause)).await?;
                    }
                    Err(StepError::UnreadableCheckpoint { location, reason }) => {
                        warn!(job = %job_id, location, reason, "checkpoint unreadable; the coordinator picks an older one");
                        *session = None;
                        client.report_failure(worker, &job_id, &reason, Failure::Checkpoint(&location)).await?;
                    }
                    Err(StepError::Coordinator(status)) => return Err(status.into()),
                }
            }
            Some(internal::task::Kind::ReleaseJob(job)) => {
                if session.as_ref().is_some_and(|s| s.job_id == job) {
                    info!(job = %job, "job released");
                    *session = None;
                }
            }
            Some(internal::task::Kind::Idle(_)) | None => {}
        }
    }
    Ok(())
}
