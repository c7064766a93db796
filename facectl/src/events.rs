//! `facectl events JOB [--follow]`: the job's lifecycle in time order (submitted, started,
//! incidents opened and resolved, manual actions, the end), from the record the coordinator
//! keeps; `--follow` prints new entries as the job changes, until it ends.

use std::collections::HashSet;

use clap::Args;
use facetrain_proto::incidents::{IncidentCause, Resolver, ToilKind};
use facetrain_proto::{pb, wire};

use crate::connection::Connection;
use crate::output::{Output, seconds, state_name};
use crate::remote::Remote;

#[derive(Args, Debug)]
pub struct EventsArgs {
    job_id: String,
    /// Keep printing new events until the job ends.
    #[arg(long)]
    follow: bool,
    #[command(flatten)]
    remote: Remote,
}

/// One line of a job's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    pub unix_ms: u64,
    pub kind: &'static str,
    pub text: String,
}

/// The job's timeline, oldest first (entries at the same time keep the record's order).
pub fn timeline(job: &pb::Job) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut add = |time: Option<&prost_types::Timestamp>, kind: &'static str, text: String| {
        let unix_ms = wire::unix_ms(time);
        if unix_ms > 0 {
            entries.push(Entry { unix_ms, kind, text });
        }
    };
    let by = if job.submitted_by.is_empty() { String::new() } else { format!(" by {}", job.submitted_by) };
    add(job.create_time.as_ref(), "submitted", format!("submitted{by}"));
    add(job.start_time.as_ref(), "started", "started".into());
    for incident in &job.incidents {
        let cause = wire::incident_cause(incident.cause).map_or("unknown", IncidentCause::name);
        let text = format!("{cause} at step {}: {}", incident.step, incident.detail);
        add(incident.detect_time.as_ref(), "incident", text);
        let resolver = wire::resolver(incident.resolved_by).map_or("unknown", Resolver::name);
        let lost = seconds(incident.lost_work.as_ref());
        let text = format!("{cause} at step {} resolved by {resolver} ({lost:.1} s of work lost)", incident.step);
        add(incident.resolve_time.as_ref(), "resolved", text);
    }
    for toil in &job.toil {
        let kind = wire::toil_kind(toil.kind).map_or("unknown", ToilKind::name);
        let text = format!("{kind} by {} ({:.0} s hands-on)", toil.by, seconds(toil.hands_on.as_ref()));
        add(toil.time.as_ref(), "manual", text);
    }
    let message = if job.message.is_empty() { String::new() } else { format!(": {}", job.message) };
    add(job.end_time.as_ref(), "ended", format!("{}{message}", state_name(job.state)));
    entries.sort_by_key(|e| e.unix_ms);
    entries
}

fn print(entry: &Entry, output: Output) {
    match output {
        Output::Json => {
            println!("{}", serde_json::json!({ "unix_ms": entry.unix_ms, "kind": entry.kind, "text": entry.text }))
        }
        Output::Text => println!("{} {:<9} {}", rfc3339(entry.unix_ms), entry.kind, entry.text),
    }
}

/// UTC, to the millisecond.
fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", rest / 3600, rest % 3600 / 60, rest % 60, unix_ms % 1000)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl EventsArgs {
    pub async fn run(self, output: Output) -> anyhow::Result<()> {
        let mut connection = Connection::open(&self.remote, "events").await?;
        if !self.follow {
            let request = connection.request(pb::GetJobRequest { job_id: self.job_id.clone() });
            let job = connection.client.get_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
            timeline(&job).iter().for_each(|entry| print(entry, output));
            return Ok(());
        }
        let request = tonic::Request::new(pb::WatchJobRequest { job_id: self.job_id.clone() });
        let mut stream = connection.client.watch_job(request).await.map_err(|s| connection.failed(s))?.into_inner();
        let mut shown = HashSet::new();
        while let Some(event) = stream.message().await.map_err(|s| connection.failed(s))? {
            let Some(job) = event.job else { continue };
            for entry in timeline(&job) {
                if shown.insert(entry.clone()) {
                    print(&entry, output);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unix_ms: u64) -> Option<prost_types::Timestamp> {
        wire::timestamp(unix_ms)
    }

    #[test]
    fn the_timeline_is_in_time_order_and_leaves_out_what_has_not_happened() {
        let job = pb::Job {
            submitted_by: "ann".into(),
            create_time: at(1_000),
            start_time: at(2_000),
            state: pb::JobState::Running as i32,
            incidents: vec![pb::Incident {
                cause: pb::IncidentCause::WorkerLost as i32,
                detail: "w1: no heartbeat".into(),
                step: 7,
                detect_time: at(5_000),
                resolve_time: None,
                ..Default::default()
            }],
            toil: vec![pb::ToilEvent {
                kind: pb::ToilKind::Resume as i32,
                by: "bob".into(),
                time: at(3_000),
                hands_on: Some(wire::duration(20.0)),
            }],
            ..Default::default()
        };
        let lines: Vec<(u64, &str, String)> = timeline(&job).into_iter().map(|e| (e.unix_ms, e.kind, e.text)).collect();
        assert_eq!(
            lines,
            [
                (1_000, "submitted", "submitted by ann".to_string()),
                (2_000, "started", "started".into()),
                (3_000, "manual", "resume by bob (20 s hands-on)".into()),
                (5_000, "incident", "worker_lost at step 7: w1: no heartbeat".into()),
            ]
        );
    }

    #[test]
    fn times_print_as_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_105_888_267), "2026-12-01T06:18:08.267Z");
    }
}
