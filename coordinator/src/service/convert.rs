//! Job records as the wire shows them.

use facetrain_proto::{pb, wire};

use crate::cluster::JobView;
use crate::history::HistoryPoint;
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
        train_loss: (job.step > 0).then_some(job.train_loss),
        learning_rate: job.learning_rate,
        priority: job.priority,
        queue_position: view.queue_position,
        workers: view.workers,
        message: job.message.clone(),
        submitted_by: job.submitted_by.clone(),
        latest_checkpoint: job.latest_checkpoint.as_ref().map(|c| c.location.clone()).unwrap_or_default(),
        create_time: wire::timestamp(job.created_unix_ms),
        start_time: wire::timestamp(job.started_unix_ms),
        end_time: wire::timestamp(job.finished_unix_ms),
        running_time: Some(wire::duration(job.running_seconds)),
        incidents: job
            .incidents
            .iter()
            .map(|i| pb::Incident {
                cause: pb::IncidentCause::from(i.cause) as i32,
                detail: i.detail.clone(),
                detect_time: wire::timestamp(i.detected_unix_ms),
                resolve_time: wire::timestamp(i.resolved_unix_ms),
                resolved_by: i.resolved_by.map_or(pb::Resolver::Unspecified, pb::Resolver::from) as i32,
                lost_work: Some(wire::duration(i.lost_work_seconds)),
                step: i.step,
            })
            .collect(),
        job_toml: job.job_toml.clone(),
        toil: job
            .toil
            .iter()
            .map(|t| pb::ToilEvent {
                kind: pb::ToilKind::from(t.kind) as i32,
                by: t.by.clone(),
                time: wire::timestamp(t.unix_ms),
                hands_on: Some(wire::duration(t.hands_on_seconds)),
            })
            .collect(),
        samples_trained: job.samples_trained,
        ledger: Some((&job.ledger).into()),
    }
}

pub fn history_point(point: &HistoryPoint) -> pb::HistoryPoint {
    pb::HistoryPoint {
        step: point.step,
        time: wire::timestamp(point.unix_ms),
        train_loss: point.train_loss,
        train_accuracy: point.train_accuracy,
        val_accuracy: point.val_accuracy,
        learning_rate: point.learning_rate,
        step_time: Some(wire::duration(point.step_seconds)),
        samples_per_second: point.samples_per_second,
        workers: point.workers,
    }
}
