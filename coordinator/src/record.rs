//! What the coordinator remembers about a job, in the store.

use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};
use facetrain_proto::ledger::SampleLedger;
use facetrain_proto::plan::Patience;
use serde::{Deserialize, Deserializer, Serialize};

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
    pub cause: IncidentCause,
    pub detail: String,
    pub detected_unix_ms: u64,
    /// 0 while open.
    pub resolved_unix_ms: u64,
    /// `None` while open (stores written before the enum hold "" there).
    #[serde(default, deserialize_with = "resolver_or_empty")]
    pub resolved_by: Option<Resolver>,
    pub lost_work_seconds: f64,
    /// The step the job was computing when it struck (0 in records from older stores).
    #[serde(default)]
    pub step: u64,
}

impl IncidentRecord {
    /// An incident detected at `unix_ms` while the job computed `step`, still open.
    pub fn detected(cause: IncidentCause, detail: String, step: u64, unix_ms: u64, lost_work_seconds: f64) -> Self {
        Self {
            cause,
            detail,
            detected_unix_ms: unix_ms,
            resolved_unix_ms: 0,
            resolved_by: None,
            lost_work_seconds,
            step,
        }
    }

    pub fn is_open(&self) -> bool {
        self.resolved_by.is_none()
    }

    /// Closes it; returns the seconds from detection to resolution.
    pub fn resolve(&mut self, by: Resolver, unix_ms: u64) -> f64 {
        self.resolved_unix_ms = unix_ms;
        self.resolved_by = Some(by);
        unix_ms.saturating_sub(self.detected_unix_ms) as f64 / 1000.0
    }
}

fn resolver_or_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Resolver>, D::Error> {
    let name = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    match name.as_str() {
        "" => Ok(None),
        other => {
            Resolver::parse(other).map(Some).ok_or_else(|| serde::de::Error::custom(format!("resolver `{other}`")))
        }
    }
}

/// A manual action a person took on a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToilRecord {
    pub kind: ToilKind,
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
    /// The sample ledger at `step`, restored when the job rewinds here (`None` in records from
    /// older stores: checking then starts afresh at the cursor).
    #[serde(default)]
    pub ledger: Option<SampleLedger>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub name: String,
    pub job_toml: String,
    pub submitted_by: String,
    /// The client's id for the submission (`SubmitJobRequest.request_id`), empty if none.
    #[serde(default)]
    pub request_id: String,
    /// The spec's scheduling priority (kept here so listing and queueing need not parse job.toml).
    #[serde(default)]
    pub priority: i32,
    pub state: JobState,
    pub step: u64,
    pub max_steps: u64,
    pub cursor: u64,
    pub val_accuracy: Option<f64>,
    pub train_loss: f64,
    /// Accuracy on the last step's training batch.
    #[serde(default)]
    pub train_accuracy: Option<f64>,
    /// The learning rate of the last applied step (the job's schedule at that step).
    #[serde(default)]
    pub learning_rate: Option<f64>,
    /// Early stopping's count of evaluations without improvement.
    #[serde(default)]
    pub patience: Patience,
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
    /// Samples trained in applied steps (steps redone after a rewind count again): only grows.
    #[serde(default)]
    pub samples_trained: u64,
    /// What the current model was trained on (follows rewinds).
    #[serde(default)]
    pub ledger: SampleLedger,
    /// The highest step the job ever completed: incidents at or below it recur, not progress.
    #[serde(default)]
    pub high_water_step: u64,
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

    pub fn knows_checkpoint(&self, location: &str) -> bool {
        self.checkpoints.iter().any(|c| c.location == location)
            || self.latest_checkpoint.as_ref().is_some_and(|c| c.location == location)
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
            request_id: String::new(),
            priority: 0,
            state: JobState::Queued,
            step: 0,
            max_steps,
            cursor: 0,
            val_accuracy: None,
            train_loss: 0.0,
            train_accuracy: None,
            learning_rate: None,
            patience: Patience::default(),
            message: String::new(),
            latest_checkpoint: None,
            checkpoints: Vec::new(),
            created_unix_ms,
            started_unix_ms: 0,
            finished_unix_ms: 0,
            running_seconds: 0.0,
            incidents: Vec::new(),
            toil: Vec::new(),
            samples_trained: 0,
            ledger: SampleLedger::default(),
            high_water_step: 0,
        }
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = (usize, &IncidentRecord)> {
        self.incidents.iter().enumerate().filter(|(_, i)| i.is_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(step: u64) -> CheckpointRef {
        CheckpointRef { location: format!("ckpt-{step}"), step, cursor: step * 10, written_unix_ms: 0, ledger: None }
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

    #[test]
    fn records_from_an_older_store_still_load() {
        let old = r#"{"cause":"worker_lost","detail":"d","detected_unix_ms":1,"resolved_unix_ms":0,"resolved_by":"","lost_work_seconds":0.0}"#;
        let incident: IncidentRecord = serde_json::from_str(old).unwrap();
        assert!(incident.is_open());
        let resolved = old.replace(r#""resolved_by":"""#, r#""resolved_by":"automation""#);
        let incident: IncidentRecord = serde_json::from_str(&resolved).unwrap();
        assert_eq!(incident.resolved_by, Some(Resolver::Automation));
    }
}
