//! `facetrain-coordinator`: binds, opens the job store and serves until SIGINT/SIGTERM.

/// mimalloc keeps freed pages for reuse: glibc returns the large per-step tensors to the OS and
/// faults them back in every step (~13% of a flex training step at batch 100).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use facetrain_coordinator::access::{AccessPolicy, SubmitLimit};
use facetrain_coordinator::cluster::{Limits, Retention, Timing};
use facetrain_coordinator::coordinator::Coordinator;
use facetrain_coordinator::metrics::{CoordinatorMetrics, register_job_metrics};
use facetrain_coordinator::server::Security;
use facetrain_coordinator::store::JobStore;
use facetrain_proto::auth::Token;
use facetrain_proto::tls::{ClientCertificates, TlsFiles};
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
    /// A worker silent this long is lost (100 ms to 1 h).
    #[arg(long, default_value = "5000", value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    heartbeat_timeout_ms: u64,
    /// Floor of the per-step deadline (k x recent p99 step time; 100 ms to 1 day).
    #[arg(long, default_value = "10000", value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    step_deadline_ms: u64,
    /// How long a queued job with `workers.min_count` waits for the rest of its workers once its
    /// minimum is free, before starting with fewer (0 to 1 h).
    #[arg(long, default_value = "5000", value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    start_grace_ms: u64,
    /// Refuse jobs whose model needs more than this much memory on one worker (GiB, estimated
    /// from the job's model, class count and per-worker batch at submit).
    #[arg(long, env = "FACETRAIN_MAX_JOB_MEMORY_GIB", default_value = "64",
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_job_memory_gib: u64,
    /// Delete ended jobs (record, curve, metric series; not checkpoints) this long after they
    /// ended: `90d`, `12h`, `30m` (unset: no age limit).
    #[arg(long, env = "FACETRAIN_RETAIN_JOBS_FOR", value_parser = retention_age)]
    retain_jobs_for: Option<Duration>,
    /// Keep at most this many ended jobs, deleting the oldest first (0: no count limit), so the
    /// job store stays bounded.
    #[arg(long, env = "FACETRAIN_RETAIN_ENDED_JOBS", default_value = "10000")]
    retain_ended_jobs: usize,
    /// Job submissions one client (address) may make at once, before --submit-per-minute applies.
    #[arg(long, env = "FACETRAIN_SUBMIT_BURST", default_value = "50",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    submit_burst: u32,
    /// Job submissions per minute one client may make after its burst.
    #[arg(long, env = "FACETRAIN_SUBMIT_PER_MINUTE", default_value = "60",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    submit_per_minute: u32,
    #[arg(long, env = "FACETRAIN_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// This server's certificate (PEM); with --tls-key, the API is served over TLS only.
    #[arg(long, env = "FACETRAIN_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "FACETRAIN_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that signs worker and client certificates: mutual TLS. Worker RPCs then need a
    /// certificate it signed; job RPCs need one or a bearer token.
    #[arg(long, env = "FACETRAIN_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// Bearer tokens accepted for job RPCs (and worker RPCs without mutual TLS), one per line.
    #[arg(long, env = "FACETRAIN_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The name (DNS SAN) a worker's client certificate must carry under mutual TLS.
    #[arg(long, env = "FACETRAIN_TLS_WORKER_NAME", default_value = "facetrain-worker")]
    tls_worker_name: String,
    /// Serve an unauthenticated plaintext API on a non-loopback address anyway.
    #[arg(long, env = "FACETRAIN_INSECURE")]
    insecure: bool,
}

impl Args {
    fn security(&self, listen: std::net::SocketAddr) -> anyhow::Result<Security> {
        let files = TlsFiles { ca: self.tls_client_ca.clone(), cert: self.tls_cert.clone(), key: self.tls_key.clone() };
        let tls = files.server_config(ClientCertificates::Optional)?;
        let tokens = match &self.token_file {
            Some(path) => Token::read_all(path).map_err(anyhow::Error::msg)?,
            None => Vec::new(),
        };
        let access = AccessPolicy::new(tokens, self.tls_client_ca.is_some(), &self.tls_worker_name);
        let exposed = !listen.ip().is_loopback();
        if exposed && tls.is_none() && !access.is_open() && !self.insecure {
            anyhow::bail!(
                "refusing to accept tokens in clear text on {listen}: give --tls-cert/--tls-key, or --insecure"
            );
        }
        if exposed && access.is_open() && !self.insecure {
            anyhow::bail!(
                "refusing to serve an unauthenticated API on {listen}: give --tls-cert/--tls-key/--tls-client-ca \
                 (mutual TLS) and/or --token-file, or --insecure to accept anyone who can reach the port"
            );
        }
        match (tls.is_some(), access.is_open()) {
            (false, true) => tracing::warn!(%listen, "plaintext gRPC without authentication"),
            (false, false) => {
                tracing::warn!(%listen, "plaintext gRPC: tokens travel unencrypted; use TLS off loopback")
            }
            (true, _) => tracing::info!(%listen, mutual_tls = self.tls_client_ca.is_some(), "TLS on"),
        }
        let submit_limit = SubmitLimit { burst: self.submit_burst, per_minute: self.submit_per_minute };
        Ok(Security { tls, access, submit_limit })
    }
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
    let retention = Retention {
        max_age: args.retain_jobs_for,
        max_ended: (args.retain_ended_jobs > 0).then_some(args.retain_ended_jobs),
    };
    let limits = Limits { max_job_bytes: args.max_job_memory_gib << 30, retention };
    let coordinator = Coordinator::open(store, timing, limits, metrics)?;
    register_job_metrics(&registry, coordinator.clone())?;
    let listener = facetrain_telemetry::bind(&args.listen, "gRPC").await?;
    let security = args.security(listener.local_addr()?)?;
    let metrics_listener = facetrain_telemetry::bind(&args.metrics_listen, "/metrics").await?;
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
    facetrain_coordinator::server::run(listener, coordinator, security, until_stopped(stopped)).await
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

/// `90d`, `12h`, `30m` or `45s`: at least a minute, at most ten years.
fn retention_age(text: &str) -> Result<Duration, String> {
    let expected = || format!("expected a number with a unit (s, m, h or d), e.g. `30d`; got `{text}`");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(expected)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| expected())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(expected()),
    };
    let seconds = number.saturating_mul(unit);
    if !(60..=10 * 365 * 86_400).contains(&seconds) {
        return Err(format!("`{text}`: expected at least a minute and at most ten years"));
    }
    Ok(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_ages_read_with_units_and_nonsense_is_refused() {
        assert_eq!(retention_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(retention_age("90m"), Ok(Duration::from_secs(5400)));
        for bad in ["30", "d", "30x", "-1d", "10s", "99999d", ""] {
            assert!(retention_age(bad).is_err(), "{bad}");
        }
    }
}
