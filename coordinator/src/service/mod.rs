//! The gRPC layer: thin adapters from requests to [`crate::coordinator::Coordinator`].

pub mod jobs;
pub mod workers;

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::metrics::CoordinatorMetrics;

/// Runs one RPC handler inside a `grpc` span and counts it (unary calls also time it).
pub(crate) async fn observed<T>(
    metrics: &CoordinatorMetrics,
    rpc: &'static str,
    unary: bool,
    handler: impl Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    let started = Instant::now();
    let result = handler.instrument(tracing::info_span!("grpc", rpc)).await;
    metrics.rpc(rpc, started, unary, &result);
    result
}
