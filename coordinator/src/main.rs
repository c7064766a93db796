//! `facetrain-coordinator`: binds, opens the job store and serves until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use facetrain_coordinator::coordinator::{Coordinator, Timing};
use facetrain_coordinator::metrics::{CoordinatorMetrics, register_job_metrics};
use facetrain_coordinator::store::JobStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "facetrain-coordinator",
    version,
    about = "facetrain coordinator: jobs, workers, synchronous data-parallel steps"
)]
struct Args {
    /// gRPC address.
    #[arg(long, env = "FACETRAIN_LISTEN", default_value = "0.0.0.0:7070")]
    listen: String,
    /// Prometheus /metrics address (its own port).
    #[arg(long, env = "FACETRAIN_METRICS_LISTEN", default_value = "0.0.0.0:9464")]
    metrics_listen: String,
    /// Job store file (redb), on a persistent volume.
    #[arg(long, env = "FACETRAIN_STORE", default_value = "/var/lib/facetrain/jobs.redb")]
    store: PathBuf,
    /// A worker silent this long is lost.
    #[arg(long, default_value = "5000")]
    heartbeat_timeout_ms: u64,
    /// Floor of the per-step deadline (k x recent p99 step time).
    #[arg(long, default_value = "10000")]
    step_deadline_ms: u64,
    /// How long a queued job waits for all its workers before starting with fewer.
    #[arg(long, default_value = "5000")]
    start_grace_ms: u64,
    #[arg(long, env = "FACETRAIN_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _traces = facetrain_telemetry::init_observability(&args.log_format, "info", Some("facetrain-coordinator"));

    let timing = Timing {
        heartbeat_timeout: Duration::from_millis(args.heartbeat_timeout_ms),
        heartbeat_interval: Duration::from_millis((args.heartbeat_timeout_ms / 5).clamp(100, 1000)),
        step_deadline_floor: Duration::from_millis(args.step_deadline_ms),
        start_grace: Duration::from_millis(args.start_grace_ms),
        ..Timing::default()
    };
    let registry = prometheus::Registry::new();
    facetrain_telemetry::register_build_info(&registry, "coordinator")?;
    let metrics = CoordinatorMetrics::new(&registry)?;
    let store = JobStore::open(&args.store)?;
    let coordinator = Coordinator::open(store, timing, metrics)?;
    register_job_metrics(&registry, &coordinator)?;
    let listener = TcpListener::bind(&args.listen).await?;
    let metrics_listener = TcpListener::bind(&args.metrics_listen).await?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    // Tests and scripts read the bound addresses (ports may be 0) from these lines.
    println!("facetrain-coordinator listening on {}", listener.local_addr()?);
    println!("facetrain-coordinator metrics on {}", metrics_listener.local_addr()?);
    tokio::spawn(facetrain_telemetry::serve_metrics(metrics_listener, registry, until_stopped(stopped.clone())));
    facetrain_coordinator::server::run(listener, coordinator, until_stopped(stopped)).await
}

/// SIGINT or SIGTERM (Kubernetes sends SIGTERM, then waits terminationGracePeriodSeconds).
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
