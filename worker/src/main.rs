//! `facetrain-worker`: trains whatever the coordinator assigns, until SIGINT/SIGTERM.

/// mimalloc keeps freed pages for reuse: glibc returns the large per-step tensors to the OS and
/// faults them back in every step (~13% of a flex training step at batch 100).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;

use facetrain_proto::auth::Token;
use facetrain_proto::tls::TlsFiles;
use facetrain_worker::agent::{
    AgentOptions, AgentSecurity, DEFAULT_PEER_SERVER_NAME, Placement, WorkerMetrics, run_agent,
};
use facetrain_worker::devices::{Host, PerDevice};

#[derive(Parser, Debug)]
#[command(name = "facetrain-worker", version, about = "facetrain worker: trains the face CNN for the coordinator")]
struct Args {
    /// Coordinator gRPC URL.
    #[arg(long, env = "FACETRAIN_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    coordinator: String,
    /// Stable worker name (defaults to HOSTNAME, as a pod name, else host-pid; with
    /// `--device cuda:N`, `-cudaN` is appended).
    #[arg(long, env = "FACETRAIN_WORKER_NAME")]
    name: Option<String>,
    /// The device this worker trains on: `cpu` (no GPU work), or `cuda:N` to run one worker per
    /// GPU on a host (its GPU jobs train on GPU N; the name and the default ports follow N).
    /// Default: what the build and the host offer.
    #[arg(long, env = "FACETRAIN_DEVICE")]
    device: Option<String>,
    /// Ring all-reduce traffic from peer workers (default `0.0.0.0:7071`, plus N with
    /// `--device cuda:N`).
    #[arg(long, env = "FACETRAIN_PEER_LISTEN")]
    peer_listen: Option<String>,
    /// Address peers dial (e.g. the pod IP with the peer port); default: this host's name.
    #[arg(long, env = "FACETRAIN_PEER_ADVERTISE")]
    peer_advertise: Option<String>,
    /// Prometheus /metrics address (default `0.0.0.0:9465`, plus N with `--device cuda:N`).
    #[arg(long, env = "FACETRAIN_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    #[arg(long, env = "FACETRAIN_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// CA (PEM) that signed the coordinator's and the other workers' certificates; use an
    /// https:// coordinator URL with it.
    #[arg(long, env = "FACETRAIN_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// This worker's certificate (PEM), for mutual TLS with the coordinator and ring peers.
    #[arg(long, env = "FACETRAIN_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "FACETRAIN_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Name to check on the coordinator's certificate (default: the URL's host).
    #[arg(long, env = "FACETRAIN_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,
    /// Name every worker certificate carries, checked on ring peers.
    #[arg(long, env = "FACETRAIN_TLS_PEER_NAME", default_value = DEFAULT_PEER_SERVER_NAME)]
    tls_peer_name: String,
    /// Bearer token for a coordinator that uses tokens instead of mutual TLS (first line of the file).
    #[arg(long, env = "FACETRAIN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Fail jobs whose model needs more memory than this on this worker, in GiB (default: 80% of
    /// this machine's memory).
    #[arg(long, env = "FACETRAIN_MAX_JOB_MEMORY_GIB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_job_memory_gib: Option<u64>,
}

impl Args {
    fn security(&self) -> anyhow::Result<AgentSecurity> {
        let token = self.token_file.as_deref().map(Token::read).transpose().map_err(anyhow::Error::msg)?;
        let security = AgentSecurity {
            tls: TlsFiles { ca: self.tls_ca.clone(), cert: self.tls_cert.clone(), key: self.tls_key.clone() },
            coordinator_server_name: self.tls_server_name.clone(),
            peer_server_name: self.tls_peer_name.clone(),
            token,
        };
        // Fail at start-up on a bad file or URL, not on the first reconnect.
        security.coordinator_endpoint(&self.coordinator)?;
        security.peer_server_tls()?;
        Ok(security)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let security = args.security()?;
    let built = facetrain_worker::backend::built_backends();
    let host = Host::detect(&built, args.device.as_deref()).map_err(anyhow::Error::msg)?;
    let registry = prometheus::Registry::new();
    facetrain_telemetry::register_build_info(&registry, "worker")?;
    let metrics = Arc::new(WorkerMetrics::new(&registry)?);
    metrics.offers(&host);
    let defaults = PerDevice::new(host.gpu);
    let name = args.name.unwrap_or_else(|| {
        let base = std::env::var("HOSTNAME").unwrap_or_else(|_| format!("worker-{}", std::process::id()));
        format!("{base}{}", defaults.name_suffix)
    });
    let metrics_listen = args.metrics_listen.unwrap_or(defaults.metrics_listen);
    let peer_listen = args.peer_listen.unwrap_or(defaults.peer_listen);
    tracing::info!(backends = ?host.backends, devices = ?host.devices, "what this worker offers");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let _traces = {
        let _runtime = runtime.enter();
        facetrain_telemetry::init_observability(&args.log_format, "info", Some("facetrain-worker"))
    };
    runtime.block_on(async {
        let metrics_listener = facetrain_telemetry::bind(&metrics_listen, "/metrics").await?;
        // Tests read the bound address (the port may be 0) from this line.
        println!("facetrain-worker metrics on {}", metrics_listener.local_addr()?);
        tokio::spawn(facetrain_telemetry::serve_metrics(metrics_listener, registry, std::future::pending()));
        let (on_signal, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
            }
            tracing::info!("stopping after the current step");
            let _ = on_signal.send(true);
        });
        let peer_advertise = args.peer_advertise.or_else(|| {
            // Listening on all interfaces: peers need a routable name, not 0.0.0.0.
            let port = peer_listen.rsplit(':').next().unwrap_or("7071");
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| name.clone());
            peer_listen.starts_with("0.0.0.0").then(|| format!("{host}:{port}"))
        });
        let options = AgentOptions {
            coordinator: args.coordinator,
            name,
            peer_listen: Some(peer_listen),
            peer_advertise,
            security,
            placement: Placement {
                max_job_bytes: args
                    .max_job_memory_gib
                    .map_or_else(facetrain_worker::memory::default_job_limit, |g| g << 30),
                host,
            },
        };
        run_agent(options, metrics, stop).await
    })
}
