//! What the coordinator remembers about a job, in the store and on the wire.

use serde::{Deserialize, Serialize};

use facetrain_proto::pb;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub const ALL: [JobState; 5] = [Self::Queued, Self::Running, Self::Succeeded, Self::Failed, Self::Cancelled];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    pub cause: String,
    pub detail: String,
    pub detected_unix_ms: u64,
    /// 0 while open.
    pub resolved_unix_ms: u64,
    pub resolved_by: String,
    pub lost_work_seconds: f64,
}

impl IncidentRecord {
    /// An incident detected now, still open.
    pub fn detected(cause: &str, detail: String, lost_work_seconds: f64) -> Self {
        Self {
            cause: cause.into(),
            detail,
            detected_unix_ms: now_unix_ms(),
            resolved_unix_ms: 0,
            resolved_by: String::new(),
            lost_work_seconds,
        }
    }
}

/// A manual action a person took on a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToilRecord {
    pub kind: String,
    pub by: String,
    pub unix_ms: u64,
    pub hands_on_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub location: String,
    pub step: u64,
    pub cursor: u64,
    #[serde(default)]
    pub written_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub name: String,
    pub job_toml: String,
    pub submitted_by: String,
    pub state: JobState,
    pub step: u64,
    pub max_steps: u64,
    pub cursor: u64,
    pub val_accuracy: Option<f64>,
    pub train_loss: f64,
    /// Accuracy on the last step's training batch.
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    pub message: String,
    pub latest_checkpoint: Option<CheckpointRef>,
    /// The checkpoints kept (oldest first, at most the job's `keep`), so a corrupt latest can be
    /// skipped for the one before it.
    #[serde(default)]
    pub checkpoints: Vec<CheckpointRef>,
    pub created_unix_ms: u64,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub running_seconds: f64,
    pub incidents: Vec<IncidentRecord>,
    #[serde(default)]
    pub toil: Vec<ToilRecord>,
}

impl JobRecord {
    /// A newer checkpoint becomes the latest; older ones beyond `keep` are forgotten (the
    /// worker's store deletes their files).
    pub fn record_checkpoint(&mut self, checkpoint: CheckpointRef, keep: usize) {
        if self.latest_checkpoint.as_ref().is_some_and(|c| c.step >= checkpoint.step) {
            return;
        }
        self.checkpoints.push(checkpoint.clone());
        let excess = self.checkpoints.len().saturating_sub(keep.max(1));
        self.checkpoints.drain(..excess);
        self.latest_checkpoint = Some(checkpoint);
    }

    /// Forgets an unreadable checkpoint; the one before it (if any) becomes the latest.
    pub fn reject_checkpoint(&mut self, location: &str) {
        self.checkpoints.retain(|c| c.location != location);
        if self.latest_checkpoint.as_ref().is_some_and(|c| c.location == location) {
            self.latest_checkpoint = self.checkpoints.last().cloned();
        }
    }

    /// A job just submitted: queued, nothing trained.
    pub fn queued(
        id: String,
        name: String,
        job_toml: String,
        submitted_by: String,
        max_steps: u64,
        created_unix_ms: u64,
    ) -> Self {
        Self {
            id,
            name,
            job_toml,
            submitted_by,
            state: JobState::Queued,
            step: 0,
            max_steps,
            cursor: 0,
            val_accuracy: None,
            train_loss: 0.0,
            train_accuracy: None,
            message: String::new(),
            latest_checkpoint: None,
            checkpoints: Vec::new(),
            created_unix_ms,
            started_unix_ms: 0,
            finished_unix_ms: 0,
            running_seconds: 0.0,
            incidents: Vec::new(),
            toil: Vec::new(),
        }
    }

    pub fn to_proto(&self, workers: u32) -> pb::Job {
        let state = match self.state {
            JobState::Queued => pb::JobState::Queued,
            JobState::Running => pb::JobState::Running,
            JobState::Succeeded => pb::JobState::Succeeded,
            JobState::Failed => pb::JobState::Failed,
            JobState::Cancelled => pb::JobState::Cancelled,
        };
        pb::Job {
            id: self.id.clone(),
            name: self.name.clone(),
            state: state as i32,
            step: self.step,
            max_steps: self.max_steps,
            cursor: self.cursor,
            val_accuracy: self.val_accuracy,
            train_loss: self.train_loss,
            workers,
            message: self.message.clone(),
            latest_checkpoint: self.latest_checkpoint.as_ref().map(|c| c.location.clone()).unwrap_or_default(),
            created_unix_ms: self.created_unix_ms,
            started_unix_ms: self.started_unix_ms,
            finished_unix_ms: self.finished_unix_ms,
            incidents: self
                .incidents
                .iter()
                .map(|i| pb::Incident {
                    cause: i.cause.clone(),
                    detail: i.detail.clone(),
                    detected_unix_ms: i.detected_unix_ms,
                    resolved_unix_ms: i.resolved_unix_ms,
                    resolved_by: i.resolved_by.clone(),
                    lost_work_seconds: i.lost_work_seconds,
                })
                .collect(),
            job_toml: self.job_toml.clone(),
            running_seconds: self.running_seconds,
            toil: self
                .toil
                .iter()
                .map(|t| pb::ToilEvent {
                    kind: t.kind.clone(),
                    by: t.by.clone(),
                    unix_ms: t.unix_ms,
                    hands_on_seconds: t.hands_on_seconds,
                })
                .collect(),
        }
    }
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(step: u64) -> CheckpointRef {
        CheckpointRef { location: format!("ckpt-{step}"), step, cursor: step * 10, written_unix_ms: 0 }
    }

    #[test]
    fn a_rejected_latest_checkpoint_falls_back_to_the_one_before() {
        let mut job = JobRecord::queued("j".into(), "n".into(), String::new(), "t".into(), 100, 0);
        for step in [5, 10, 15, 20] {
            job.record_checkpoint(checkpoint(step), 3);
        }
        job.record_checkpoint(checkpoint(15), 3);
        assert_eq!(job.latest_checkpoint.as_ref().unwrap().step, 20, "an older upload never replaces a newer one");
        assert_eq!(job.checkpoints.iter().map(|c| c.step).collect::<Vec<_>>(), vec![10, 15, 20]);
        job.reject_checkpoint("ckpt-20");
        assert_eq!(job.latest_checkpoint.as_ref().unwrap().step, 15);
        job.reject_checkpoint("ckpt-15");
        job.reject_checkpoint("ckpt-10");
        assert_eq!(job.latest_checkpoint, None, "nothing readable left: start over");
    }
}
