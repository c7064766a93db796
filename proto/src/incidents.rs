//! Names that cross every boundary (job store, wire, `/metrics`, dashboards, runbooks): why an
//! incident happened, who or what closed it, and which manual actions count as toil. One enum
//! each, one `name()` each; a test checks every name against the proto comments,
//! dashboards/METRICS.md and the runbook sections of docs/operations.md.

use serde::{Deserialize, Serialize};

/// Why a job's training was disturbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentCause {
    /// A worker stopped sending heartbeats, or re-registered after a restart.
    WorkerLost,
    /// A member did not deliver its gradient before the step deadline.
    StalledStep,
    /// A member sent a malformed or non-finite gradient and was evicted.
    BadGradient,
    /// The coordinator restarted while the job was running (it resumes from a checkpoint).
    CoordinatorRestart,
    /// A checkpoint could not be read; the job fell back to the one before it.
    CorruptCheckpoint,
    /// A member is much slower than the others in most recent steps.
    Straggler,
    /// Checkpoint uploads fail (the object store refuses or is unreachable).
    CheckpointStorage,
    /// The job store refused a write (a full disk): progress is kept in memory meanwhile.
    JobStore,
    /// A worker cannot read the job's data (missing file, bad row, bad image).
    BadData,
    /// The samples trained in a step were not the step's global batch, exactly once.
    SampleAccounting,
    /// The training loss or the summed gradient is not finite (a learning rate far too high).
    NonFinite,
    /// Replicas hold different parameters after the same step (a bug; never expected).
    ReplicasDiverged,
    /// A worker cannot run the job at all (backend not built in, model over its memory limit).
    UnsupportedJob,
}

impl IncidentCause {
    pub const ALL: [Self; 13] = [
        Self::WorkerLost,
        Self::StalledStep,
        Self::BadGradient,
        Self::CoordinatorRestart,
        Self::CorruptCheckpoint,
        Self::Straggler,
        Self::CheckpointStorage,
        Self::JobStore,
        Self::BadData,
        Self::SampleAccounting,
        Self::NonFinite,
        Self::ReplicasDiverged,
        Self::UnsupportedJob,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::WorkerLost => "worker_lost",
            Self::StalledStep => "stalled_step",
            Self::BadGradient => "bad_gradient",
            Self::CoordinatorRestart => "coordinator_restart",
            Self::CorruptCheckpoint => "corrupt_checkpoint",
            Self::Straggler => "straggler",
            Self::CheckpointStorage => "checkpoint_storage",
            Self::JobStore => "job_store",
            Self::BadData => "bad_data",
            Self::SampleAccounting => "sample_accounting",
            Self::NonFinite => "non_finite",
            Self::ReplicasDiverged => "replicas_diverged",
            Self::UnsupportedJob => "unsupported_job",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Causes a worker reports when it cannot go on with a job: retrying elsewhere would meet
    /// the same problem, so the job fails with the worker's reason.
    pub fn fails_the_job(self) -> bool {
        matches!(self, Self::BadData | Self::NonFinite | Self::UnsupportedJob | Self::SampleAccounting)
    }
}

impl std::fmt::Display for IncidentCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who or what closed an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolver {
    /// The platform recovered by itself: the job trained past the step the incident struck.
    Automation,
    /// A person acted (kept for incidents a person closes by hand).
    Person,
    /// Nobody recovered: the job ended (failed or cancelled) with the incident open.
    JobEnded,
}

impl Resolver {
    pub const ALL: [Self; 3] = [Self::Automation, Self::Person, Self::JobEnded];

    pub fn name(self) -> &'static str {
        match self {
            Self::Automation => "automation",
            Self::Person => "person",
            Self::JobEnded => "job_ended",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A manual action a person took through facectl, recorded with its hands-on time. Only actions
/// that exist are listed: a kind nobody can record would sit at 0 forever on the dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToilKind {
    /// `facectl cancel`.
    Cancel,
    /// `facectl resume`: a person continues a failed, cancelled or finished job.
    Resume,
}

impl ToilKind {
    pub const ALL: [Self; 2] = [Self::Cancel, Self::Resume];

    pub fn name(self) -> &'static str {
        match self {
            Self::Cancel => "cancel",
            Self::Resume => "resume",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for cause in IncidentCause::ALL {
            assert_eq!(IncidentCause::parse(cause.name()), Some(cause));
            assert_eq!(serde_json::to_string(&cause).unwrap(), format!("\"{}\"", cause.name()));
        }
        for resolver in Resolver::ALL {
            assert_eq!(Resolver::parse(resolver.name()), Some(resolver));
            assert_eq!(serde_json::to_string(&resolver).unwrap(), format!("\"{}\"", resolver.name()));
        }
        for kind in ToilKind::ALL {
            assert_eq!(ToilKind::parse(kind.name()), Some(kind));
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.name()));
        }
    }
}
