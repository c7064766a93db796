//! `facectl local` with `[workers] count > 1`: an embedded coordinator and N worker agents in
//! this process, talking real gRPC over loopback, so local mode runs exactly the protocol a
//! cluster runs (sharding, gradient reduction, step barrier). The job store is a temporary file:
//! the run is one job.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use facetrain_proto::job::JobSpec;
use facetrain_proto::pb::{self, job_service_client::JobServiceClient};
use facetrain_worker::agent::{AgentOptions, Placement, WorkerMetrics, run_agent};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::output::state_name;

/// What a local cluster run measured, beside the job itself.
pub struct ClusterRun {
    pub job: pb::Job,
    pub wall_seconds: f64,
    /// Mean seconds per worker-step by phase.
    pub phase_seconds: Vec<(&'static str, f64)>,
    /// Gradient bytes sent plus received per worker per step.
    pub reduce_bytes_per_worker_step: f64,
}

/// Runs `spec` on `spec.workers.count` in-process workers; returns the finished job.
pub async fn run(spec: &JobSpec) -> anyhow::Result<ClusterRun> {
    let started = Instant::now();
    let scratch = tempfile::tempdir().context("cannot create a temporary folder for the job store")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop_server, server_stopped) = watch::channel(false);
    let store_dir = scratch.path().to_path_buf();
    let server = tokio::spawn(async move {
        let mut stopped = server_stopped;
        facetrain_coordinator::server::embedded(listener, &store_dir, async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });

    let (stop_workers, workers_stopped) = watch::channel(false);
    let worker_registry = prometheus::Registry::new();
    let worker_metrics = Arc::new(WorkerMetrics::new(&worker_registry)?);
    let built = facetrain_worker::backend::built_backends();
    let host = facetrain_worker::devices::Host::detect(&built, None).map_err(anyhow::Error::msg)?;
    let placement = Placement { max_job_bytes: facetrain_worker::memory::default_job_limit(), host };
    let workers: Vec<_> = (0..spec.workers.count)
        .map(|i| {
            let options = AgentOptions {
                coordinator: url.clone(),
                name: format!("local-{i}"),
                peer_listen: Some("127.0.0.1:0".into()),
                peer_advertise: None,
                security: Default::default(),
                placement: placement.clone(),
            };
            tokio::spawn(run_agent(options, worker_metrics.clone(), workers_stopped.clone()))
        })
        .collect();

    let channel = tonic::transport::Endpoint::from_shared(url)?.connect().await?;
    let mut client = JobServiceClient::new(channel);
    let submitted = client
        .submit_job(pb::SubmitJobRequest {
            job_toml: spec.to_toml(),
            submitted_by: "facectl local".into(),
            ..Default::default()
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    let id = submitted.into_inner().job_id;
    eprintln!("local cluster: job {id} on {} workers over loopback gRPC", spec.workers.count);
    let mut events = client.watch_job(pb::WatchJobRequest { job_id: id.clone() }).await?.into_inner();
    let mut last = None::<pb::Job>;
    let mut last_accuracy = None;
    while let Some(event) = events.message().await? {
        let Some(job) = event.job else { continue };
        if job.val_accuracy != last_accuracy && job.val_accuracy.is_some() {
            eprintln!(
                "step {} validation accuracy {:.3} ({} workers)",
                job.step,
                job.val_accuracy.unwrap_or(0.0),
                job.workers
            );
            last_accuracy = job.val_accuracy;
        }
        last = Some(job);
    }
    let _ = stop_workers.send(true);
    let _ = stop_server.send(true);
    for worker in workers {
        worker.abort();
    }
    let _ = server.await;
    let job = last.context("the coordinator closed the watch without a final state")?;
    if state_name(job.state) != "succeeded" {
        anyhow::bail!("job {} {}: {}", job.id, state_name(job.state), job.message);
    }
    let (phase_seconds, bytes) = worker_metrics.summary(&job.id, spec.workers.reduction.name());
    let worker_steps = (job.step * spec.workers.count as u64).max(1);
    Ok(ClusterRun {
        reduce_bytes_per_worker_step: bytes as f64 / worker_steps as f64,
        job,
        wall_seconds: started.elapsed().as_secs_f64(),
        phase_seconds,
    })
}
