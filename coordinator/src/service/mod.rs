//! The gRPC layer: thin adapters from requests to [`crate::coordinator::Coordinator`], with the
//! domain's errors turned into status codes in one place ([`status`]) and records into wire
//! messages in another ([`convert`]).

pub mod convert;
pub mod jobs;
pub mod list;
pub mod workers;

use std::future::Future;
use std::time::Instant;

use facetrain_proto::ErrorCode;
use tonic_types::{ErrorDetails, StatusExt};
use tracing::Instrument;

use crate::cluster::DomainError;
use crate::metrics::CoordinatorMetrics;

/// The status a domain error travels as. An invalid request also carries a
/// `google.rpc.BadRequest` naming the field, so a client can point at it without parsing text.
pub fn status(error: DomainError) -> tonic::Status {
    let code = match &error {
        DomainError::Invalid { field, reason } => {
            let details = ErrorDetails::with_bad_request_violation(*field, reason.clone());
            return tonic::Status::with_error_details(ErrorCode::InvalidArgument.into(), reason.clone(), details);
        }
        DomainError::NotFound(_) => ErrorCode::NotFound,
        DomainError::Precondition(_) => ErrorCode::FailedPrecondition,
        DomainError::Stale(_) => ErrorCode::Aborted,
        DomainError::Exhausted(_) => ErrorCode::ResourceExhausted,
        DomainError::Unavailable(_) => ErrorCode::Unavailable,
    };
    code.status(error.to_string())
}

/// Runs one RPC handler inside a `grpc` span and counts it (unary calls also time it).
pub(crate) async fn observed<T>(
    metrics: &CoordinatorMetrics,
    rpc: &'static str,
    unary: bool,
    handler: impl Future<Output = Result<T, DomainError>>,
) -> Result<T, tonic::Status> {
    let started = Instant::now();
    let result = handler.instrument(tracing::info_span!("grpc", rpc)).await.map_err(status);
    metrics.rpc(rpc, started, unary, &result);
    result
}

/// A transport error inside a handler (a client stream that broke), as a domain error.
pub(crate) fn stream_error(status: tonic::Status) -> DomainError {
    DomainError::Unavailable(format!("request stream failed: {}", status.message()))
}
