//! `facetrain.v1.JobService`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use facetrain_proto::pb::{self, job_service_server::JobService};
use facetrain_proto::wire;
use futures::Stream;

use tokio_stream::wrappers::ReceiverStream;

use tonic::{Request, Response, Status};

use super::{convert, list, observed};
use crate::access::Submissions;
use crate::cluster::DomainError;
use crate::coordinator::Shared;

pub struct JobApi {
    pub coordinator: Shared,
    /// Per-caller submission rate.
    pub submissions: Arc<Mutex<Submissions>>,
}

impl JobApi {
    /// Refuses a submission over the caller's rate with how long to wait.
    fn admit_submission<T>(&self, request: &Request<T>) -> Result<(), DomainError> {
        let peer = request.remote_addr().map(|a| a.ip());
        let Ok(mut submissions) = self.submissions.lock() else {
            return Ok(()); // a poisoned lock only loses the limit
        };
        let limit = submissions.limit();
        submissions.admit(peer, Instant::now()).map_err(|wait| {
            DomainError::Exhausted(format!(
                "too many job submissions from this client: at most {} at once and {} per minute \
                 (coordinator flags --submit-burst, --submit-per-minute); retry in {:.1} s",
                limit.burst,
                limit.per_minute,
                wait.as_secs_f64()
            ))
        })
    }
}

#[tonic::async_trait]
impl JobService for JobApi {
    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        observed(&self.coordinator.metrics, "SubmitJob", true, async move {
            self.admit_submission(&request)?;
            let request = request.into_inner();
            let job_id = self.coordinator.submit(&request.job_toml, &request.submitted_by, &request.request_id)?;
            let job = Some(convert::job(&self.coordinator.job(&job_id)?));
            Ok(Response::new(pb::SubmitJobResponse { job_id, job }))
        })
        .await
    }

    async fn get_job(&self, request: Request<pb::GetJobRequest>) -> Result<Response<pb::Job>, Status> {
        observed(&self.coordinator.metrics, "GetJob", true, async move {
            Ok(Response::new(convert::job(&self.coordinator.job(&request.into_inner().job_id)?)))
        })
        .await
    }

    async fn list_jobs(&self, request: Request<pb::ListJobsRequest>) -> Result<Response<pb::ListJobsResponse>, Status> {
        observed(&self.coordinator.metrics, "ListJobs", true, async move {
            Ok(Response::new(list::page(self.coordinator.jobs(), &request.into_inner())?))
        })
        .await
    }

    type WatchJobStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send>>;

    /// The job now, at every change a reader can see, and every [`WATCH_HEARTBEAT`] without one,
    /// until it ends or the client leaves.
    async fn watch_job(&self, request: Request<pb::WatchJobRequest>) -> Result<Response<Self::WatchJobStream>, Status> {
        observed(&self.coordinator.metrics, "WatchJob", false, async move {
            let id = request.into_inner().job_id;
            let first = convert::job(&self.coordinator.job(&id)?);
            let coordinator = self.coordinator.clone();
            let (sender, receiver) = tokio::sync::mpsc::channel(16);
            tokio::spawn(async move {
                let mut changes = coordinator.subscribe();
                let mut last = first;
                if sender.send(Ok(pb::JobEvent { job: Some(last.clone()) })).await.is_err() {
                    return;
                }
                let mut sent_at = tokio::time::Instant::now();
                while !is_terminal(&last) {
                    let heartbeat = tokio::select! {
                        changed = changes.changed() => match changed {
                            Ok(()) => false,
                            Err(_) => return,
                        },
                        () = tokio::time::sleep_until(sent_at + WATCH_HEARTBEAT) => true,
                    };
                    let Ok(now) = coordinator.job(&id).map(|view| convert::job(&view)) else { return };
                    if heartbeat || worth_sending(&last, &now) {
                        last = now;
                        sent_at = tokio::time::Instant::now();
                        if sender.send(Ok(pb::JobEvent { job: Some(last.clone()) })).await.is_err() {
                            return; // the client left
                        }
                    }
                }
            });
            Ok(Response::new(Box::pin(ReceiverStream::new(receiver)) as Self::WatchJobStream))
        })
        .await
    }

    async fn cancel_job(&self, request: Request<pb::CancelJobRequest>) -> Result<Response<pb::Job>, Status> {
        observed(&self.coordinator.metrics, "CancelJob", true, async move {
            let request = request.into_inner();
            let (by, hands_on) = manual_action(&request.requested_by, wire::seconds(request.hands_on.as_ref()))?;
            Ok(Response::new(convert::job(&self.coordinator.cancel(&request.job_id, by, hands_on)?)))
        })
        .await
    }

    async fn resume_job(&self, request: Request<pb::ResumeJobRequest>) -> Result<Response<pb::Job>, Status> {
        observed(&self.coordinator.metrics, "ResumeJob", true, async move {
            let request = request.into_inner();
            let (by, hands_on) = manual_action(&request.requested_by, wire::seconds(request.hands_on.as_ref()))?;
            let job = self.coordinator.resume(&request.job_id, by, hands_on, request.max_steps)?;
            Ok(Response::new(convert::job(&job)))
        })
        .await
    }

    async fn get_job_history(
        &self,
        request: Request<pb::GetJobHistoryRequest>,
    ) -> Result<Response<pb::GetJobHistoryResponse>, Status> {
        observed(&self.coordinator.metrics, "GetJobHistory", true, async move {
            let request = request.into_inner();
            let size = list::page_size(i64::from(request.page_size), DEFAULT_HISTORY_PAGE, MAX_HISTORY_PAGE)?;
            let mut points = self.coordinator.history(&request.job_id, request.start_step, size + 1)?;
            let next_start_step = if points.len() > size { points.pop().map_or(0, |p| p.step) } else { 0 };
            let points = points.iter().map(convert::history_point).collect();
            Ok(Response::new(pb::GetJobHistoryResponse { points, next_start_step }))
        })
        .await
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        observed(&self.coordinator.metrics, "ListWorkers", true, async move {
            let workers = self.coordinator.workers().into_iter().map(|w| pb::Worker {
                id: w.id,
                name: w.name,
                backends: w.backends.iter().map(|b| b.name().to_string()).collect(),
                devices: w.devices,
                job_id: w.job.unwrap_or_default(),
            });
            Ok(Response::new(pb::ListWorkersResponse { workers: workers.collect() }))
        })
        .await
    }

    async fn delete_job(&self, request: Request<pb::DeleteJobRequest>) -> Result<Response<()>, Status> {
        observed(&self.coordinator.metrics, "DeleteJob", true, async move {
            self.coordinator.delete(&request.into_inner().job_id)?;
            Ok(Response::new(()))
        })
        .await
    }
}

/// Who took a manual action (`unknown` when the client did not say) and the hands-on time it
/// claims, in seconds (`None`: the wire duration was not a valid one).
fn manual_action(requested_by: &str, hands_on: Option<f64>) -> Result<(&str, f64), DomainError> {
    let by = if requested_by.is_empty() { "unknown" } else { requested_by };
    let seconds = hands_on.ok_or_else(|| {
        DomainError::invalid("hands_on", "hands_on: not a valid google.protobuf.Duration (nanos out of range)")
    })?;
    Ok((by, seconds))
}

/// History points per page when the client does not say, and at most.
const DEFAULT_HISTORY_PAGE: usize = 1000;
const MAX_HISTORY_PAGE: usize = 10_000;

/// A watch without changes still sends the job this often, so a client knows the stream lives
/// (and sees the running time move).
pub const WATCH_HEARTBEAT: Duration = Duration::from_secs(15);

/// Whether `now` differs from `last` in more than the running time, which grows on every tick:
/// a job waiting for workers would otherwise send an event each time anything in the cluster
/// moved.
fn worth_sending(last: &pb::Job, now: &pb::Job) -> bool {
    pb::Job { running_time: None, ..now.clone() } != pb::Job { running_time: None, ..last.clone() }
}

fn is_terminal(job: &pb::Job) -> bool {
    matches!(
        pb::JobState::try_from(job.state),
        Ok(pb::JobState::Succeeded | pb::JobState::Failed | pb::JobState::Cancelled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_running_time_moving_is_not_worth_an_event() {
        let last = pb::Job { id: "j".into(), running_time: Some(wire::duration(1.0)), step: 3, ..Default::default() };
        assert!(!worth_sending(&last, &pb::Job { running_time: Some(wire::duration(2.5)), ..last.clone() }));
        assert!(worth_sending(&last, &pb::Job { step: 4, ..last.clone() }));
        assert!(worth_sending(&last, &pb::Job { message: "waiting".into(), ..last.clone() }));
    }
}
