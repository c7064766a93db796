//! What happened during a call into the cluster, for the shell to act on: save a job, count a
//! metric, log a line, wake the waiters. The cluster decides; the shell does the I/O.

use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};

use crate::record::JobState;

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The job's record changed: save it.
    JobChanged {
        job: String,
    },
    JobStarted {
        job: String,
        step: u64,
        /// From submission to the first start (`None` when it ran before).
        waited_seconds: Option<f64>,
    },
    JobFinished {
        job: String,
        state: JobState,
        message: String,
    },
    /// An ended job was deleted: its series go.
    JobDeleted {
        job: String,
    },
    WorkerRegistered {
        worker: String,
        name: String,
    },
    WorkerLost {
        worker: String,
        name: String,
        cause: IncidentCause,
        detail: String,
    },
    /// A worker that was stopping said so and left (not a loss).
    WorkerLeft {
        worker: String,
        name: String,
        reason: String,
    },
    /// A worker stopped training a job (lost, released, or the job ended).
    MemberLeft {
        job: String,
        name: String,
    },
    IncidentOpened {
        job: String,
        cause: IncidentCause,
        detail: String,
    },
    IncidentResolved {
        job: String,
        cause: IncidentCause,
        resolver: Resolver,
        recovery_seconds: f64,
    },
    StepApplied {
        job: String,
        step: u64,
        seconds: f64,
        compute: Vec<(String, f64)>,
    },
    /// A point of the job's training curve: append it to the job's history.
    History {
        job: String,
        point: crate::history::HistoryPoint,
    },
    ReduceBytes {
        job: String,
        bytes: u64,
    },
    CheckpointRecorded {
        job: String,
        step: u64,
        seconds: f64,
    },
    CheckpointFailed {
        job: String,
        step: u64,
        error: String,
    },
    Toil {
        job: String,
        kind: ToilKind,
        by: String,
        hands_on_seconds: f64,
    },
}
