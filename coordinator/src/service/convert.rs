//! Job records as the wire shows them.

use facetrain_proto::pb;

use crate::cluster::JobView;
use crate::record::JobState;

pub fn state(state: JobState) -> pb::JobState {
    match state {
        JobState::Queued => pb::JobState::Queued,
        JobState::Running => pb::JobState::Running,
        JobState::Succeeded => pb::JobState::Succeeded,
        JobState::Failed => pb::JobState::Failed,
        JobState::Cancelled => pb::JobState::Cancelled,
    }
}

pub fn job(view: &JobView) -> pb::Job {
    let job = &view.record;
    let state = state(job.state);
    pb::Job {
        id: job.id.clone(),
        name: job.name.clone(),
        state: state as i32,
        step: job.step,
        max_steps: job.max_steps,
        cursor: job.cursor,
        val_accuracy: job.val_accuracy,
        train_loss: job.train_loss,
        workers: view.workers,
        message: job.message.clone(),
        submitted_by: job.submitted_by.clone(),
        latest_checkpoint: job.latest_checkpoint.as_ref().map(|c| c.location.clone()).unwrap_or_default(),
        created_unix_ms: job.created_unix_ms,
        started_unix_ms: job.started_unix_ms,
        finished_unix_ms: job.finished_unix_ms,
        incidents: job
            .incidents
            .iter()
            .map(|i| pb::Incident {
                cause: i.cause.name().into(),
                detail: i.detail.clone(),
                detected_unix_ms: i.detected_unix_ms,
                resolved_unix_ms: i.resolved_unix_ms,
                resolved_by: i.resolved_by.map(|r| r.name().to_string()).unwrap_or_default(),
                lost_work_seconds: i.lost_work_seconds,
                step: i.step,
            })
            .collect(),
        job_toml: job.job_toml.clone(),
        running_seconds: job.running_seconds,
        toil: job
            .toil
            .iter()
            .map(|t| pb::ToilEvent {
                kind: t.kind.name().into(),
                by: t.by.clone(),
                unix_ms: t.unix_ms,
                hands_on_seconds: t.hands_on_seconds,
            })
            .collect(),
        samples_trained: job.samples_trained,
        ledger: Some((&job.ledger).into()),
    }
}
