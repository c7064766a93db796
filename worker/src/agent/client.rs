//! The worker's side of the wire: typed calls to the coordinator, gradients and state chunked.

use std::time::Duration;

use facetrain_proto::auth::AttachToken;
use facetrain_proto::incidents::IncidentCause;
use facetrain_proto::internal::{self, worker_service_client::WorkerServiceClient};
use facetrain_proto::job::GradientDtype;
use facetrain_proto::{
    GRADIENT_CHUNK_ELEMENTS, MAX_MESSAGE_BYTES, STATE_CHUNK_BYTES, decode_gradients_into, encode_gradients,
    gradient_element_bytes,
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

/// What a failed call to the coordinator means for this worker, decided here once for every call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The round moved on, or the job is not where this worker thought: drop the step and take
    /// the redo the coordinator hands out.
    #[error("{0}")]
    Redo(String),
    /// The coordinator is gone or forgot this worker: reconnect and register again.
    #[error("{}", .0.message())]
    Lost(Status),
}

impl From<Status> for CallError {
    fn from(status: Status) -> Self {
        match status.code() {
            Code::Aborted | Code::FailedPrecondition => Self::Redo(status.message().to_string()),
            _ => Self::Lost(status),
        }
    }
}

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
            .initial_stream_window_size(facetrain_proto::STREAM_WINDOW_BYTES)
            .initial_connection_window_size(facetrain_proto::CONNECTION_WINDOW_BYTES)
            .max_frame_size(facetrain_proto::MAX_FRAME_BYTES)
            .connect()
            .await?;
        let inner = WorkerServiceClient::with_interceptor(channel, security.attach_token())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self { inner })
    }

    /// Returns the worker id and the heartbeat interval.
    pub async fn register(
        &self,
        name: &str,
        peer_address: &str,
        host: &crate::devices::Host,
    ) -> Result<(String, Duration), CallError> {
        let request = internal::RegisterRequest {
            name: name.to_string(),
            // Read by coordinators older than `backends`: the backend every build has.
            backend: "flex".into(),
            peer_address: peer_address.to_string(),
            backends: host.backends.iter().map(|b| b.name().to_string()).collect(),
            devices: host.devices.clone(),
        };
        let response = self.inner.clone().register(unary(request)).await?.into_inner();
        Ok((response.worker_id, Duration::from_millis(response.heartbeat_interval_ms.max(50) as u64)))
    }

    /// Beats until the coordinator forgets the worker (then the task loop re-registers).
    pub async fn heartbeat_loop(self, worker: String, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            match self.inner.clone().heartbeat(unary(internal::HeartbeatRequest { worker_id: worker.clone() })).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => return,
                Err(status) => warn!(error = %status.message(), "heartbeat failed"),
            }
        }
    }

    pub async fn next_task(&self, worker: &str, wait: Duration) -> Result<internal::Task, CallError> {
        let request = internal::NextTaskRequest { worker_id: worker.to_string(), wait_ms: wait.as_millis() as u32 };
        let mut request = tonic::Request::new(request);
        request.set_timeout(wait + Duration::from_secs(10));
        Ok(self.inner.clone().next_task(request).await?.into_inner())
    }

    /// Streams this worker's gradient; the first chunk carries the samples it came from.
    pub async fn push_gradients(
        &self,
        worker: &str,
        job: &str,
        (step, round): (u64, u64),
        values: &[f32],
        (dtype, samples): (GradientDtype, &internal::TrainedSamples),
    ) -> Result<(), CallError> {
        let total = values.len() as u64;
        let chunks: Vec<internal::GradientChunk> = values
            .chunks(GRADIENT_CHUNK_ELEMENTS)
            .enumerate()
            .map(|(i, chunk)| internal::GradientChunk {
                worker_id: worker.to_string(),
                job_id: job.to_string(),
                step,
                round,
                offset: (i * GRADIENT_CHUNK_ELEMENTS) as u64,
                total,
                data: encode_gradients(chunk, dtype),
                samples: (i == 0).then(|| samples.clone()),
            })
            .collect();
        self.inner.clone().push_gradients(futures::stream::iter(chunks)).await?;
        Ok(())
    }

    /// Blocks until every member has pushed, then writes the sum into `out` (nothing, for a
    /// ring or a lone member: an empty `out`); ABORTED when the round was abandoned.
    pub async fn pull_gradients(
        &self,
        worker: &str,
        job: &str,
        (step, round): (u64, u64),
        out: &mut [f32],
        dtype: GradientDtype,
    ) -> Result<(), CallError> {
        let request =
            internal::PullGradientsRequest { worker_id: worker.to_string(), job_id: job.to_string(), step, round };
        let mut stream = self.inner.clone().pull_gradients(request).await?.into_inner();
        let mut filled = 0;
        while let Some(chunk) = stream.message().await? {
            let count = chunk.data.len() / gradient_element_bytes(dtype);
            let fits =
                chunk.total as usize == out.len() && chunk.offset as usize == filled && filled + count <= out.len();
            if !fits || !decode_gradients_into(&chunk.data, dtype, &mut out[filled..filled + count]) {
                return Err(Status::data_loss(format!(
                    "reduced gradient chunk at {} of {} does not fit",
                    chunk.offset, chunk.total
                ))
                .into());
            }
            filled += count;
        }
        if filled != out.len() {
            return Err(Status::data_loss(format!("reduced gradient has {filled} of {} values", out.len())).into());
        }
        Ok(())
    }

    pub async fn report_step(&self, report: internal::StepReport) -> Result<(), CallError> {
        self.inner.clone().report_step(unary(report)).await?;
        Ok(())
    }

    pub async fn push_state(&self, worker: &str, job: &str, step: u64, bytes: Vec<u8>) -> Result<(), CallError> {
        let chunks: Vec<internal::StateChunk> = bytes
            .chunks(STATE_CHUNK_BYTES)
            .map(|data| internal::StateChunk {
                worker_id: worker.to_string(),
                job_id: job.to_string(),
                step,
                data: data.to_vec(),
            })
            .collect();
        self.inner.clone().push_state(futures::stream::iter(chunks)).await?;
        Ok(())
    }

    pub async fn fetch_state(&self, worker: &str, job: &str, step: u64) -> Result<Vec<u8>, CallError> {
        let request = internal::FetchStateRequest { worker_id: worker.to_string(), job_id: job.to_string(), step };
        let mut stream = self.inner.clone().fetch_state(request).await?.into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await? {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(bytes)
    }

    /// Ring strategy: this worker's all-reduce is done; its gradient came from `samples`.
    pub async fn reduce_done(
        &self,
        worker: &str,
        job: &str,
        (step, round): (u64, u64),
        samples: &internal::TrainedSamples,
    ) -> Result<(), CallError> {
        let request = internal::ReduceDoneRequest {
            worker_id: worker.to_string(),
            job_id: job.to_string(),
            step,
            round,
            samples: Some(samples.clone()),
        };
        self.inner.clone().reduce_done(unary(request)).await?;
        Ok(())
    }

    /// This worker is stopping: the coordinator gives it no more work.
    pub async fn leave(&self, worker: &str, reason: &str) -> Result<(), CallError> {
        let request = internal::LeaveRequest { worker_id: worker.to_string(), reason: reason.to_string() };
        self.inner.clone().leave(unary(request)).await?;
        Ok(())
    }

    /// This worker cannot go on with `job`: `message` says why.
    pub async fn report_failure(
        &self,
        worker: &str,
        job: &str,
        message: &str,
        failure: Failure<'_>,
    ) -> Result<(), CallError> {
        let (cause, unreadable_checkpoint) = match failure {
            Failure::Job(cause) => (cause.name().to_string(), String::new()),
            Failure::Checkpoint(location) => {
                (IncidentCause::CorruptCheckpoint.name().to_string(), location.to_string())
            }
        };
        let report = internal::FailureReport {
            worker_id: worker.to_string(),
            job_id: job.to_string(),
            message: message.to_string(),
            unreadable_checkpoint,
            cause,
        };
        self.inner.clone().report_failure(unary(report)).await?;
        Ok(())
    }
}

/// What a failure report is about.
#[derive(Debug, Clone, Copy)]
pub enum Failure<'a> {
    /// The job cannot go on, for this cause.
    Job(IncidentCause),
    /// This checkpoint could not be read: the coordinator falls back to an older one.
    Checkpoint(&'a str),
}
