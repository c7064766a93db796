//! `facetrain-worker`: trains whatever the coordinator assigns, until SIGINT/SIGTERM.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use facetrain_worker::agent::{AgentOptions, WorkerMetrics, run_agent};

#[derive(Parser, Debug)]
#[command(name = "facetrain-worker", version, about = "facetrain worker: trains the face CNN for the coordinator")]
struct Args {
    /// Coordinator gRPC URL.
    #[arg(long, env = "FACETRAIN_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    coordinator: String,
    /// Stable worker name (defaults to HOSTNAME, as a pod name, else host-pid).
    #[arg(long, env = "FACETRAIN_WORKER_NAME")]
    name: Option<String>,
    /// Ring all-reduce traffic from peer workers.
    #[arg(long, env = "FACETRAIN_PEER_LISTEN", default_value = "0.0.0.0:7071")]
    peer_listen: String,
    /// Address peers dial (e.g. the pod IP with the peer port); default: this host's name.
    #[arg(long, env = "FACETRAIN_PEER_ADVERTISE")]
    peer_advertise: Option<String>,
    /// Prometheus /metrics address (its own port).
    #[arg(long, env = "FACETRAIN_METRICS_LISTEN", default_value = "0.0.0.0:9465")]
    metrics_listen: String,
    #[arg(long, env = "FACETRAIN_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let registry = prometheus::Registry::new();
    facetrain_telemetry::register_build_info(&registry, "worker")?;
    let metrics = Arc::new(WorkerMetrics::new(&registry)?);
    let name = args
        .name
        .unwrap_or_else(|| std::env::var("HOSTNAME").unwrap_or_else(|_| format!("worker-{}", std::process::id())));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let _traces = {
        let _runtime = runtime.enter();
        facetrain_telemetry::init_observability(&args.log_format, "info", Some("facetrain-worker"))
    };
    runtime.block_on(async {
        let metrics_listener = tokio::net::TcpListener::bind(&args.metrics_listen).await?;
        // Tests read the bound address (the port may be 0) from this line.
        println!("facetrain-worker metrics on {}", metrics_listener.local_addr()?);
        tokio::spawn(facetrain_telemetry::serve_metrics(metrics_listener, registry, std::future::pending()));
        let stop = Arc::new(AtomicBool::new(false));
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("stopping after the current step");
            on_signal.store(true, Ordering::Relaxed);
        });
        let peer_advertise = args.peer_advertise.or_else(|| {
            // Listening on all interfaces: peers need a routable name, not 0.0.0.0.
            let port = args.peer_listen.rsplit(':').next().unwrap_or("7071");
            args.peer_listen.starts_with("0.0.0.0").then(|| format!("{}:{port}", name))
        });
        let options = AgentOptions { coordinator: args.coordinator, name, peer_listen: Some(args.peer_listen), peer_advertise };
        run_agent(options, metrics, stop).await
    })
}
