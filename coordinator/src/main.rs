//! `facetrain-coordinator`: binds, opens the job store and serves until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use facetrain_coordinator::coordinator::{Coordinator, Timing};
use facetrain_coordinator::store::JobStore;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

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
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init()
    } else {
        logs.with_target(false).compact().init()
    }

    let timing = Timing {
        heartbeat_timeout: Duration::from_millis(args.heartbeat_timeout_ms),
        heartbeat_interval: Duration::from_millis((args.heartbeat_timeout_ms / 5).clamp(100, 1000)),
        step_deadline_floor: Duration::from_millis(args.step_deadline_ms),
        start_grace: Duration::from_millis(args.start_grace_ms),
        ..Timing::default()
    };
    let store = JobStore::open(&args.store)?;
    let coordinator = Coordinator::open(store, timing)?;
    let listener = TcpListener::bind(&args.listen).await?;
    // Tests and scripts read the bound address (the port may be 0) from this line.
    println!("facetrain-coordinator listening on {}", listener.local_addr()?);
    facetrain_coordinator::server::run(listener, coordinator, shutdown_signal()).await
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
