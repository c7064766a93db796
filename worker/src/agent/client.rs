//! The worker's side of the wire: typed calls to the coordinator, gradients and state chunked.

use std::time::Duration;

use facetrain_proto::auth::AttachToken;
use facetrain_proto::job::GradientDtype;
use facetrain_proto::pb::{self, worker_service_client::WorkerServiceClient};
use facetrain_proto::{
    GRADIENT_CHUNK_ELEMENTS, MAX_MESSAGE_BYTES, STATE_CHUNK_BYTES, decode_gradients, encode_gradients,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tracing::warn;

use super::security::AgentSecurity;

/// Calls the coordinator answers at once (register, heartbeat, reports) give up after this.
const UNARY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds every other call, so nothing waits forever even if keep-alives pass: gradients
/// are pulled once every member pushed, and the coordinator's step deadline abandons a round
/// long before this.
const STREAM_TIMEOUT: Duration = Duration::from_secs(600);

fn unary<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(UNARY_TIMEOUT);
    request
}

#[derive(Clone)]
pub struct CoordinatorClient {
    inner: WorkerServiceClient<InterceptedService<Channel, AttachToken>>,
}

impl CoordinatorClient {
    pub async fn connect(url: &str, security: &AgentSecurity) -> anyhow::Result<Self> {
        let channel = security
            .coordinator_endpoint(url)?
            .connect_timeout(Duration::from_secs(3))
            .timeout(STREAM_TIMEOUT)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5))
            .connect()
            .await?;
        let inner = WorkerServiceClient::with_interceptor(channel, security.attach_token())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self { inner })
    }

    /// Returns the worker id and the heartbeat interval.
    pub async fn register(&self, name: &str, peer_address: &str) -> Result<(String, Duration), Status> {
        let request = pb::RegisterRequest {
            name: name.to_string(),
            backend: "flex".into(),
            peer_address: peer_address.to_string(),
        };
        let response = self.inner.clone().register(unary(request)).await?.into_inner();
        Ok((response.worker_id, Duration::from_millis(response.heartbeat_interval_ms.max(50) as u64)))
    }

    /// Beats until the coordinator forgets the worker (then the task loop re-registers).
    pub async fn heartbeat_loop(self, worker: String, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match self.inner.clone().heartbeat(unary(pb::HeartbeatRequest { worker_id: worker.clone() })).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => return,
                Err(status) => warn!(error = %status.message(), "heartbeat failed"),
            }
        }
    }

    pub async fn next_task(&self, worker: &str, wait: Duration) -> Result<pb::Task, Status> {
        let request = pb::NextTaskRequest { worker_id: worker.to_string(), wait_ms: wait.as_millis() as u32 };
        let mut request = tonic::Request::new(request);
        request.set_timeout(wait + Duration::from_secs(10));
        Ok(self.inner.clone().next_task(request).await?.into_inner())
    }

    pub async fn push_gradients(
        &self,
        worker: &str,
        job: &str,
        (step, round): (u64, u64),
        values: &[f32],
        dtype: GradientDtype,
    ) -> Result<(), Status> {
        let total = values.len() as u64;
        let chunks: Vec<pb::GradientChunk> = values
            .chunks(GRADIENT_CHUNK_ELEMENTS)
            .enumerate()
            .map(|(i, chunk)| pb::GradientChunk {
                worker_id: worker.to_string(),
                job_id: job.to_string(),
                step,
                round,
                offset: (i * GRADIENT_CHUNK_ELEMENTS) as u64,
                total,
                data: encode_gradients(chunk, dtype),
            })
            .collect();
        self.inner.clone().push_gradients(futures::stream::iter(chunks)).await?;
        Ok(())
    }

    /// Blocks until every member has pushed; ABORTED when the round was abandoned.
    pub async fn pull_gradients(
        &self,
        worker: &str,
        job: &str,
        (step, round): (u64, u64),
        expected: usize,
        dtype: GradientDtype,
    ) -> Result<Vec<f32>, Status> {
        let request = pb::PullGradientsRequest { worker_id: worker.to_string(), job_id: job.to_string(), step, round };
        let mut stream = self.inner.clone().pull_gradients(request).await?.into_inner();
        let mut values = Vec::with_capacity(expected);
        while let Some(chunk) = stream.message().await? {
            if chunk.total as usize != expected || chunk.offset as usize != values.len() {
                return Err(Status::data_loss(format!(
                    "reduced gradient chunk at {} of {} does not fit",
                    chunk.offset, chunk.total
                )));
            }
            let decoded = decode_gradients(&chunk.data, dtype)
                .ok_or_else(|| Status::data_loss("reduced gradient chunk is not whole values"))?;
            values.extend(decoded);
        }
        if values.len() != expected {
            return Err(Status::data_loss(format!("reduced gradient has {} of {expected} values", values.len())));
        }
        Ok(values)
    }

    pub async fn report_step(&self, report: pb::StepReport) -> Result<(), Status> {
        self.inner.clone().report_step(unary(report)).await?;
        Ok(())
    }

    pub async fn push_state(&self, worker: &str, job: &str, step: u64, bytes: Vec<u8>) -> Result<(), Status> {
        let chunks: Vec<pb::StateChunk> = bytes
            .chunks(STATE_CHUNK_BYTES)
            .map(|data| pb::StateChunk {
                worker_id: worker.to_string(),
                job_id: job.to_string(),
                step,
                data: data.to_vec(),
            })
            .collect();
        self.inner.clone().push_state(futures::stream::iter(chunks)).await?;
        Ok(())
    }

    pub async fn fetch_state(&self, worker: &str, job: &str, step: u64) -> Result<Vec<u8>, Status> {
        let request = pb::FetchStateRequest { worker_id: worker.to_string(), job_id: job.to_string(), step };
        let mut stream = self.inner.clone().fetch_state(request).await?.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await? {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(bytes)
    }

    pub async fn reduce_done(&self, worker: &str, job: &str, step: u64, round: u64) -> Result<(), Status> {
        let request = pb::ReduceDoneRequest { worker_id: worker.to_string(), job_id: job.to_string(), step, round };
        self.inner.clone().reduce_done(unary(request)).await?;
        Ok(())
    }

    /// `unreadable_checkpoint`: the checkpoint this worker could not load (empty otherwise).
    pub async fn report_failure(
        &self,
        worker: &str,
        job: &str,
        message: &str,
        unreadable_checkpoint: &str,
    ) -> Result<(), Status> {
        let report = pb::FailureReport {
            worker_id: worker.to_string(),
            job_id: job.to_string(),
            message: message.to_string(),
            unreadable_checkpoint: unreadable_checkpoint.to_string(),
        };
        self.inner.clone().report_failure(unary(report)).await?;
        Ok(())
    }
}
