//! How results reach the user: `--output json` prints one JSON value on stdout for programs,
//! `--output text` lines for people. The job and ledger views several commands print live here
//! so that every command shows a job the same way.

use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};
use facetrain_proto::{pb, wire};

/// `-o/--output`, one global flag for every command: what it prints on stdout.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Lines and tables for people.
    Text,
    /// One JSON value (a line per event for `watch`, `submit --wait` and `events --follow`).
    Json,
    /// A table as CSV: `predict` and `metrics` only.
    Csv,
}

impl Format {
    /// The output of a command without a CSV form (`-o csv` there is refused before it runs).
    pub fn plain(self) -> Output {
        match self {
            Self::Json => Output::Json,
            Self::Text | Self::Csv => Output::Text,
        }
    }
}

/// What a command without a CSV form prints on stdout.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

/// One JSON value on one line (serde_json's `Display` is its compact form).
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// The sample ledger as `--output json` shows it (the digest in hex: JSON numbers lose u64s).
pub fn ledger_json(ledger: &pb::SampleLedger) -> serde_json::Value {
    serde_json::json!({
        "rows": ledger.rows,
        "next_position": ledger.next_position,
        "positions_trained": ledger.positions_trained,
        "epochs_checked": ledger.epochs_checked,
        "digest": format!("{:016x}", ledger.digest),
    })
}

/// A job state as facectl prints it; `unknown` for a state newer than this build.
pub fn state_name(state: i32) -> &'static str {
    match pb::JobState::try_from(state) {
        Ok(pb::JobState::Queued) => "queued",
        Ok(pb::JobState::Running) => "running",
        Ok(pb::JobState::Succeeded) => "succeeded",
        Ok(pb::JobState::Failed) => "failed",
        Ok(pb::JobState::Cancelled) => "cancelled",
        _ => "unknown",
    }
}

/// A wire duration in seconds (an invalid one, which the coordinator never sends, as 0).
pub fn seconds(duration: Option<&prost_types::Duration>) -> f64 {
    wire::seconds(duration).unwrap_or(0.0)
}

/// How long the job has run.
pub fn running_seconds(job: &pb::Job) -> f64 {
    seconds(job.running_time.as_ref())
}

/// A job as one line of text.
pub fn job_line(job: &pb::Job) -> String {
    let accuracy = job.val_accuracy.map_or("-".to_string(), |a| format!("{a:.3}"));
    let message = if job.message.is_empty() { String::new() } else { format!(" ({})", job.message) };
    let mut state = state_name(job.state).to_string();
    if job.queue_position > 0 {
        state += &format!(" #{}", job.queue_position);
    }
    if job.priority != 0 {
        state += &format!(" priority {}", job.priority);
    }
    format!(
        "{} {} {state} step {}/{} val_acc {accuracy} loss {:.4} workers {} incidents {}{message}",
        job.id,
        job.name,
        job.step,
        job.max_steps,
        job.train_loss.unwrap_or(f64::NAN),
        job.workers,
        job.incidents.len()
    )
}

/// A job as `--output json` shows it.
pub fn job_json(job: &pb::Job) -> serde_json::Value {
    serde_json::json!({
        "id": job.id,
        "name": job.name,
        "state": state_name(job.state),
        "step": job.step,
        "max_steps": job.max_steps,
        "cursor": job.cursor,
        "val_accuracy": job.val_accuracy,
        "train_loss": job.train_loss,
        "learning_rate": job.learning_rate,
        "workers": job.workers,
        "message": job.message,
        "priority": job.priority,
        "queue_position": job.queue_position,
        "submitted_by": job.submitted_by,
        "latest_checkpoint": job.latest_checkpoint,
        "running_seconds": running_seconds(job),
        "samples_trained": job.samples_trained,
        "ledger": job.ledger.as_ref().map(ledger_json),
        "created_unix_ms": wire::unix_ms(job.create_time.as_ref()),
        "started_unix_ms": wire::unix_ms(job.start_time.as_ref()),
        "finished_unix_ms": wire::unix_ms(job.end_time.as_ref()),
        "toil": job.toil.iter().map(|t| serde_json::json!({
            "kind": wire::toil_kind(t.kind).map_or("unknown", ToilKind::name),
            "by": t.by,
            "unix_ms": wire::unix_ms(t.time.as_ref()),
            "hands_on_seconds": seconds(t.hands_on.as_ref()),
        })).collect::<Vec<_>>(),
        "incidents": job.incidents.iter().map(|i| serde_json::json!({
            "cause": wire::incident_cause(i.cause).map_or("unknown", IncidentCause::name),
            "detail": i.detail,
            "detected_unix_ms": wire::unix_ms(i.detect_time.as_ref()),
            "resolved_unix_ms": wire::unix_ms(i.resolve_time.as_ref()),
            "resolved_by": wire::resolver(i.resolved_by).map_or("", Resolver::name),
            "lost_work_seconds": seconds(i.lost_work.as_ref()),
            "step": i.step,
        })).collect::<Vec<_>>(),
    })
}
