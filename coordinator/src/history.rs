//! A job's training curve: a point every [`HISTORY_EVERY`] steps, at each evaluation and at the
//! last step, kept in the job store beside the job's record (not in it: the record is written on
//! every step, and a growing curve inside it would make each write cost the whole history).
//! A step redone after a rewind replaces its point, so the curve is the job's one history.

use serde::{Deserialize, Serialize};

/// Steps between points besides evaluations and the last step.
pub const HISTORY_EVERY: u64 = 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub step: u64,
    pub unix_ms: u64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    /// Only at evaluation steps.
    pub val_accuracy: Option<f64>,
    pub learning_rate: f64,
    /// Wall time of the step, from its round's start to its last report.
    pub step_seconds: f64,
    pub samples_per_second: f64,
    pub workers: u32,
}

/// Whether `step` gets a point.
pub fn records(step: u64, evaluated: bool, last: bool) -> bool {
    evaluated || last || step.is_multiple_of(HISTORY_EVERY)
}
