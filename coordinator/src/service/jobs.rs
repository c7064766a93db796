//! `facetrain.v1.JobService`.

use std::pin::Pin;

use facetrain_proto::pb::{self, job_service_server::JobService};
use futures::Stream;
use std::time::Instant;

use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;

use tonic::{Request, Response, Status};

use crate::coordinator::Shared;

pub struct JobApi {
    pub coordinator: Shared,
}

#[tonic::async_trait]
impl JobService for JobApi {
    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        let started = Instant::now();
        let result: Result<Response<pb::SubmitJobResponse>, Status> = async move {
            let request = request.into_inner();
            let job_id = self.coordinator.submit(&request.job_toml, &request.submitted_by)?;
            Ok(Response::new(pb::SubmitJobResponse { job_id }))
        }
        .instrument(tracing::info_span!("grpc", rpc = "SubmitJob"))
        .await;
        self.coordinator.metrics.rpc("SubmitJob", started, true, &result);
        result
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        let started = Instant::now();
        let result: Result<Response<pb::Job>, Status> =
            async move { Ok(Response::new(self.coordinator.job(&request.into_inner().job_id)?)) }
                .instrument(tracing::info_span!("grpc", rpc = "GetJob"))
                .await;
        self.coordinator.metrics.rpc("GetJob", started, true, &result);
        result
    }

    async fn list_jobs(
        &self,
        _request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        let started = Instant::now();
        let result: Result<Response<pb::ListJobsResponse>, Status> =
            async move { Ok(Response::new(pb::ListJobsResponse { jobs: self.coordinator.jobs() })) }
                .instrument(tracing::info_span!("grpc", rpc = "ListJobs"))
                .await;
        self.coordinator.metrics.rpc("ListJobs", started, true, &result);
        result
    }

    type WatchJobStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send>>;

    /// The job now and at every change, until it ends or the client leaves.
    async fn watch_job(&self, request: Request<pb::WatchJobRequest>) -> Result<Response<Self::WatchJobStream>, Status> {
        let started = Instant::now();
        let result: Result<Response<Self::WatchJobStream>, Status> = async move {
            let id = request.into_inner().job_id;
            let first = self.coordinator.job(&id)?;
            let coordinator = self.coordinator.clone();
            let (sender, receiver) = tokio::sync::mpsc::channel(16);
            tokio::spawn(async move {
                let mut changes = coordinator.subscribe();
                let mut last = first;
                if sender.send(Ok(pb::JobEvent { job: Some(last.clone()) })).await.is_err() {
                    return;
                }
                while !is_terminal(&last) {
                    if changes.changed().await.is_err() {
                        return;
                    }
                    let Ok(now) = coordinator.job(&id) else { return };
                    if now != last {
                        last = now;
                        if sender.send(Ok(pb::JobEvent { job: Some(last.clone()) })).await.is_err() {
                            return; // the client left
                        }
                    }
                }
            });
            Ok(Response::new(Box::pin(ReceiverStream::new(receiver)) as Self::WatchJobStream))
        }
        .instrument(tracing::info_span!("grpc", rpc = "WatchJob"))
        .await;
        self.coordinator.metrics.rpc("WatchJob", started, false, &result);
        result
    }

    async fn cancel_job(&self, request: Request<pb::CancelJobRequest>) -> Result<Response<pb::Job>, Status> {
        let started = Instant::now();
        let result: Result<Response<pb::Job>, Status> = async move {
            let request = request.into_inner();
            let by = if request.requested_by.is_empty() { "unknown" } else { &request.requested_by };
            Ok(Response::new(self.coordinator.cancel(&request.job_id, by, request.hands_on_seconds)?))
        }
        .instrument(tracing::info_span!("grpc", rpc = "CancelJob"))
        .await;
        self.coordinator.metrics.rpc("CancelJob", started, true, &result);
        result
    }
}

fn is_terminal(job: &pb::Job) -> bool {
    matches!(
        pb::JobState::try_from(job.state),
        Ok(pb::JobState::Succeeded | pb::JobState::Failed | pb::JobState::Cancelled)
    )
}
