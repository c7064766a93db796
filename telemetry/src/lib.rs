//! What every facetrain process shares for observability: a Prometheus `/metrics` endpoint on
//! its own port over a registry the caller owns (so tests scrape the same registry), the
//! `facetrain_build_info` gauge, gRPC status names as Prometheus labels, and log and trace
//! set-up: structured logs (text or JSON) on stderr, and OpenTelemetry spans exported over OTLP
//! when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set (off otherwise).

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::net::TcpListener;
use tracing::{debug, info};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

mod listen;

pub use listen::bind;

/// Registers `facetrain_build_info{version, component} 1`.
pub fn register_build_info(registry: &Registry, component: &str) -> prometheus::Result<()> {
    let info =
        IntGaugeVec::new(Opts::new("facetrain_build_info", "facetrain build: always 1"), &["version", "component"])?;
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), component]).set(1);
    registry.register(Box::new(info))
}

/// The registry's metrics in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buffer = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut buffer) {
        tracing::warn!(error = %e, "metrics could not all be encoded");
    }
    String::from_utf8_lossy(&buffer).into_owned()
}

/// Serves `GET /metrics` (and `/healthz`) until `shutdown` resolves.
pub async fn serve_metrics(listener: TcpListener, registry: Registry, shutdown: impl Future<Output = ()>) {
    info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "metrics endpoint serving /metrics");
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let registry = registry.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let registry = registry.clone();
                async move { Ok::<_, Infallible>(respond(request.uri().path(), &registry)) }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

fn respond(path: &str, registry: &Registry) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", render(registry)),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        _ => (StatusCode::NOT_FOUND, "text/plain", "not found: try /metrics\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}

/// gRPC status names as grpc-go spells them (the convention dashboards and alerts use).
pub fn grpc_code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "Canceled",
        Unknown => "Unknown",
        InvalidArgument => "InvalidArgument",
        DeadlineExceeded => "DeadlineExceeded",
        NotFound => "NotFound",
        AlreadyExists => "AlreadyExists",
        PermissionDenied => "PermissionDenied",
        ResourceExhausted => "ResourceExhausted",
        FailedPrecondition => "FailedPrecondition",
        Aborted => "Aborted",
        OutOfRange => "OutOfRange",
        Unimplemented => "Unimplemented",
        Internal => "Internal",
        Unavailable => "Unavailable",
        DataLoss => "DataLoss",
        Unauthenticated => "Unauthenticated",
    }
}

/// Logs on stderr, text or JSON, filtered by `directives` (RUST_LOG syntax; `warn` if invalid).
/// For tools that take the filter from their own flags; services use [`init_observability`].
pub fn init_logging(format: &str, directives: &str) {
    let _ = install(format, directives, "warn", None);
}

/// Flushes buffered spans when dropped (at process exit).
pub struct TraceGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Logs filtered by `RUST_LOG` (default `default_filter`), plus OpenTelemetry spans (info and
/// above) exported over OTLP/gRPC as `service` when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Call
/// inside a Tokio runtime.
pub fn init_observability(format: &str, default_filter: &str, service: Option<&str>) -> TraceGuard {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_string());
    install(format, &directives, default_filter, service)
}

fn install(format: &str, directives: &str, fallback: &str, service: Option<&str>) -> TraceGuard {
    let filter = || EnvFilter::try_new(directives).unwrap_or_else(|_| EnvFilter::new(fallback));
    // Colours only on a terminal: in a log file or a pipe the escape codes split the fields.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = (format != "json").then(|| {
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(ansi).compact()
    });
    let json = (format == "json").then(|| tracing_subscriber::fmt::layer().with_writer(std::io::stderr).json());
    let logs = text.with_filter(filter()).and_then(json.with_filter(filter()));
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty());
    let provider = service.zip(endpoint).and_then(|(service, endpoint)| match otlp_provider(service) {
        Ok(provider) => Some(provider),
        Err(e) => {
            eprintln!("traces off: cannot export to {endpoint}: {e}");
            None
        }
    });
    let traces = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider;
        tracing_opentelemetry::layer().with_tracer(provider.tracer("facetrain")).with_filter(LevelFilter::INFO)
    });
    let _ = tracing_subscriber::registry().with(logs).with(traces).try_init();
    TraceGuard { provider }
}

fn otlp_provider(service: &str) -> Result<opentelemetry_sdk::trace::SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build().map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_string()).build();
    Ok(opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Histogram buckets from 5 ms to 120 s (step phases).
pub const STEP_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// Histogram buckets from 1 s to 4 h (recovery).
pub const RECOVERY_BUCKETS: &[f64] =
    &[0.1, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_renders_in_the_text_format() {
        let registry = Registry::new();
        register_build_info(&registry, "worker").unwrap();
        let text = render(&registry);
        assert!(text.contains("facetrain_build_info{component=\"worker\",version=\""), "{text}");
        assert_eq!(grpc_code_name(tonic::Code::Cancelled), "Canceled");
    }
}
