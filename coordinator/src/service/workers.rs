//! `facetrain.internal.v1.WorkerService`: membership, tasks and the chunked gradient/state streams.

use std::pin::Pin;
use std::time::Duration;

use facetrain_proto::internal::{self, worker_service_server::WorkerService};
use facetrain_proto::job::Backend;
use facetrain_proto::{GRADIENT_CHUNK_ELEMENTS, STATE_CHUNK_BYTES, encode_gradients};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::{observed, stream_error};
use crate::cluster::{DomainError, Offer};
use crate::coordinator::Shared;

/// Longest a NextTask long-poll may wait.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// A state blob larger than this is refused (the seed CNN's is ~36 MB).
const MAX_STATE_BYTES: usize = 1 << 30;

pub struct WorkerApi {
    pub coordinator: Shared,
}

type ChunkStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl WorkerService for WorkerApi {
    async fn register(
        &self,
        request: Request<internal::RegisterRequest>,
    ) -> Result<Response<internal::RegisterResponse>, Status> {
        observed(&self.coordinator.metrics, "Register", true, async move {
            let request = request.into_inner();
            if request.name.is_empty() {
                return Err(DomainError::invalid("name", "register: `name` is empty"));
            }
            let offer = Offer { backends: backends(&request)?, devices: request.devices.clone() };
            let worker_id = self.coordinator.register(&request.name, &request.peer_address, offer);
            let heartbeat_interval_ms = self.coordinator.heartbeat_interval().as_millis() as u32;
            Ok(Response::new(internal::RegisterResponse { worker_id, heartbeat_interval_ms }))
        })
        .await
    }

    async fn heartbeat(
        &self,
        request: Request<internal::HeartbeatRequest>,
    ) -> Result<Response<internal::HeartbeatResponse>, Status> {
        observed(&self.coordinator.metrics, "Heartbeat", true, async move {
            self.coordinator.heartbeat(&request.into_inner().worker_id)?;
            Ok(Response::new(internal::HeartbeatResponse {}))
        })
        .await
    }

    async fn next_task(&self, request: Request<internal::NextTaskRequest>) -> Result<Response<internal::Task>, Status> {
        observed(&self.coordinator.metrics, "NextTask", true, async move {
            let request = request.into_inner();
            let wait = Duration::from_millis(request.wait_ms as u64).min(MAX_WAIT);
            Ok(Response::new(self.coordinator.next_task(&request.worker_id, wait).await?))
        })
        .await
    }

    async fn push_gradients(
        &self,
        request: Request<Streaming<internal::GradientChunk>>,
    ) -> Result<Response<internal::PushGradientsResponse>, Status> {
        observed(&self.coordinator.metrics, "PushGradients", false, async move {
            let mut stream = request.into_inner();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(stream_error)?;
                self.coordinator.push_chunk(&chunk.worker_id, &chunk)?;
            }
            Ok(Response::new(internal::PushGradientsResponse {}))
        })
        .await
    }

    type PullGradientsStream = ChunkStream<internal::GradientChunk>;

    async fn pull_gradients(
        &self,
        request: Request<internal::PullGradientsRequest>,
    ) -> Result<Response<Self::PullGradientsStream>, Status> {
        observed(&self.coordinator.metrics, "PullGradients", false, async move {
            let request = request.into_inner();
            let sum = self.coordinator.pull(&request.job_id, request.step, request.round).await?;
            let dtype = self.coordinator.gradient_dtype(&request.job_id);
            let bytes = (sum.len() * facetrain_proto::gradient_element_bytes(dtype)) as u64;
            self.coordinator.metrics.reduce_bytes.with_label_values(&[&request.job_id, "coordinator"]).inc_by(bytes);
            let total = sum.len() as u64;
            let (job_id, step, round) = (request.job_id, request.step, request.round);
            let chunks = (0..sum.len()).step_by(GRADIENT_CHUNK_ELEMENTS).map(move |offset| {
                let end = (offset + GRADIENT_CHUNK_ELEMENTS).min(sum.len());
                Ok::<_, Status>(internal::GradientChunk {
                    worker_id: String::new(),
                    job_id: job_id.clone(),
                    step,
                    round,
                    offset: offset as u64,
                    total,
                    data: encode_gradients(&sum[offset..end], dtype),
                    samples: None,
                })
            });
            Ok(Response::new(Box::pin(futures::stream::iter(chunks)) as Self::PullGradientsStream))
        })
        .await
    }

    async fn report_step(&self, request: Request<internal::StepReport>) -> Result<Response<internal::StepAck>, Status> {
        observed(&self.coordinator.metrics, "ReportStep", true, async move {
            let report = request.into_inner();
            self.coordinator.report(&report.worker_id, &report)?;
            Ok(Response::new(internal::StepAck {}))
        })
        .await
    }

    async fn push_state(
        &self,
        request: Request<Streaming<internal::StateChunk>>,
    ) -> Result<Response<internal::PushStateResponse>, Status> {
        observed(&self.coordinator.metrics, "PushState", false, async move {
            let mut stream = request.into_inner();
            let mut bytes = Vec::new();
            let mut header: Option<(String, String, u64)> = None;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(stream_error)?;
                header.get_or_insert_with(|| (chunk.worker_id.clone(), chunk.job_id.clone(), chunk.step));
                if bytes.len() + chunk.data.len() > MAX_STATE_BYTES {
                    return Err(DomainError::invalid("data", format!("state larger than {MAX_STATE_BYTES} bytes")));
                }
                bytes.extend_from_slice(&chunk.data);
            }
            let (worker, job, step) = header.ok_or_else(|| DomainError::invalid("data", "empty state stream"))?;
            self.coordinator.store_state(&worker, &job, step, bytes)?;
            Ok(Response::new(internal::PushStateResponse {}))
        })
        .await
    }

    type FetchStateStream = ChunkStream<internal::StateChunk>;

    async fn fetch_state(
        &self,
        request: Request<internal::FetchStateRequest>,
    ) -> Result<Response<Self::FetchStateStream>, Status> {
        observed(&self.coordinator.metrics, "FetchState", false, async move {
            let request = request.into_inner();
            let blob = self.coordinator.state(&request.job_id, request.step)?;
            let (job_id, step) = (request.job_id, request.step);
            let chunks = (0..blob.len().max(1)).step_by(STATE_CHUNK_BYTES).map(move |offset| {
                let end = (offset + STATE_CHUNK_BYTES).min(blob.len());
                Ok::<_, Status>(internal::StateChunk {
                    worker_id: String::new(),
                    job_id: job_id.clone(),
                    step,
                    data: blob[offset..end].to_vec(),
                })
            });
            Ok(Response::new(Box::pin(futures::stream::iter(chunks)) as Self::FetchStateStream))
        })
        .await
    }

    async fn report_failure(
        &self,
        request: Request<internal::FailureReport>,
    ) -> Result<Response<internal::FailureAck>, Status> {
        observed(&self.coordinator.metrics, "ReportFailure", true, async move {
            self.coordinator.report_failure(&request.into_inner())?;
            Ok(Response::new(internal::FailureAck {}))
        })
        .await
    }

    async fn leave(&self, request: Request<internal::LeaveRequest>) -> Result<Response<internal::LeaveAck>, Status> {
        observed(&self.coordinator.metrics, "Leave", true, async move {
            let request = request.into_inner();
            self.coordinator.leave(&request.worker_id, &request.reason)?;
            Ok(Response::new(internal::LeaveAck {}))
        })
        .await
    }

    async fn reduce_done(
        &self,
        request: Request<internal::ReduceDoneRequest>,
    ) -> Result<Response<internal::ReduceDoneAck>, Status> {
        observed(&self.coordinator.metrics, "ReduceDone", true, async move {
            self.coordinator.reduce_done(&request.into_inner())?;
            Ok(Response::new(internal::ReduceDoneAck {}))
        })
        .await
    }
}

/// The backends a worker says it can run (`backend` alone from older workers).
fn backends(request: &internal::RegisterRequest) -> Result<Vec<Backend>, DomainError> {
    let names: Vec<&str> = match request.backends.is_empty() {
        true => [request.backend.as_str()].into_iter().filter(|b| !b.is_empty()).collect(),
        false => request.backends.iter().map(String::as_str).collect(),
    };
    names
        .into_iter()
        .map(|name| {
            Backend::parse(name).ok_or_else(|| {
                DomainError::invalid(
                    "backends",
                    format!("register: unknown backend `{name}`: expected one of flex, tch"),
                )
            })
        })
        .collect()
}
