//! The toil ledger's arithmetic: incidents, how they were resolved, MTTR, manual actions with
//! their hands-on time, and the toil ratio (hands-on time over the jobs' running time), as plain
//! functions over the jobs, tested below.

use facetrain_proto::incidents::{IncidentCause, Resolver};
use facetrain_proto::{pb, wire};

use crate::output::{running_seconds, seconds};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ledger {
    pub jobs: usize,
    pub incidents: usize,
    pub open_incidents: usize,
    pub resolved_by_automation: usize,
    pub resolved_by_person: usize,
    /// Closed without recovery: the job failed or was cancelled with them open.
    pub unresolved_at_job_end: usize,
    /// Mean time to recovery of resolved incidents, seconds (`null` with none).
    pub mttr_seconds: Option<f64>,
    pub lost_work_seconds: f64,
    pub manual_actions: usize,
    pub toil_seconds: f64,
    pub running_seconds: f64,
    /// Hands-on time / running time (`null` when nothing ran).
    pub toil_ratio: Option<f64>,
    pub incidents_by_cause: Vec<(String, usize)>,
}

/// The ledger of `jobs`, counting incidents and actions at or after `since_unix_ms`.
pub fn ledger(jobs: &[pb::Job], since_unix_ms: u64) -> Ledger {
    let detected = |i: &pb::Incident| wire::unix_ms(i.detect_time.as_ref());
    let incidents: Vec<&pb::Incident> =
        jobs.iter().flat_map(|j| &j.incidents).filter(|i| detected(i) >= since_unix_ms).collect();
    let toil: Vec<&pb::ToilEvent> =
        jobs.iter().flat_map(|j| &j.toil).filter(|t| wire::unix_ms(t.time.as_ref()) >= since_unix_ms).collect();
    let by = |resolver: Resolver| incidents.iter().filter(move |i| wire::resolver(i.resolved_by) == Some(resolver));
    let resolved: Vec<&&pb::Incident> = by(Resolver::Automation).chain(by(Resolver::Person)).collect();
    let ended = by(Resolver::JobEnded).count();
    let recovery: Vec<f64> = resolved
        .iter()
        .map(|i| wire::unix_ms(i.resolve_time.as_ref()).saturating_sub(detected(i)) as f64 / 1000.0)
        .collect();
    let mut by_cause: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    incidents.iter().for_each(|i| {
        let cause = wire::incident_cause(i.cause).map_or("unknown", IncidentCause::name);
        *by_cause.entry(cause.to_string()).or_default() += 1;
    });
    let toil_seconds: f64 = toil.iter().map(|t| seconds(t.hands_on.as_ref())).sum();
    let running_seconds: f64 = jobs.iter().map(running_seconds).sum();
    Ledger {
        jobs: jobs.len(),
        incidents: incidents.len(),
        open_incidents: incidents.len() - resolved.len() - ended,
        resolved_by_automation: by(Resolver::Automation).count(),
        resolved_by_person: by(Resolver::Person).count(),
        unresolved_at_job_end: ended,
        mttr_seconds: (!recovery.is_empty()).then(|| recovery.iter().sum::<f64>() / recovery.len() as f64),
        // + 0.0: an empty f64 sum is -0.0, which would print as "-0.0 s".
        lost_work_seconds: incidents.iter().map(|i| seconds(i.lost_work.as_ref())).sum::<f64>() + 0.0,
        manual_actions: toil.len(),
        toil_seconds,
        running_seconds,
        toil_ratio: (running_seconds > 0.0).then(|| toil_seconds / running_seconds),
        incidents_by_cause: by_cause.into_iter().collect(),
    }
}

pub fn print_text(ledger: &Ledger, scope: &str) {
    let mttr = ledger.mttr_seconds.map_or("-".to_string(), |s| format!("{s:.1} s"));
    let ratio = ledger.toil_ratio.map_or("-".to_string(), |r| format!("{:.2}%", r * 100.0));
    println!("toil ledger for {scope}: {} job(s), {:.0} s running", ledger.jobs, ledger.running_seconds);
    println!(
        "  incidents {} (open {}), resolved by automation {}, by a person {}, unresolved when the job ended {}, \
         MTTR {mttr}, lost work {:.1} s",
        ledger.incidents,
        ledger.open_incidents,
        ledger.resolved_by_automation,
        ledger.resolved_by_person,
        ledger.unresolved_at_job_end,
        ledger.lost_work_seconds
    );
    for (cause, count) in &ledger.incidents_by_cause {
        println!("    {cause:<22} {count}");
    }
    println!(
        "  manual actions {}, hands-on {:.0} s, toil ratio {ratio} (budget 50%)",
        ledger.manual_actions, ledger.toil_seconds
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(cause: IncidentCause, detected: u64, resolved: u64, by: Option<Resolver>) -> pb::Incident {
        pb::Incident {
            cause: pb::IncidentCause::from(cause) as i32,
            detail: String::new(),
            detect_time: wire::timestamp(detected),
            resolve_time: wire::timestamp(resolved),
            resolved_by: by.map_or(pb::Resolver::Unspecified, pb::Resolver::from) as i32,
            lost_work: Some(wire::duration(1.5)),
            step: 0,
        }
    }

    #[test]
    fn ledger_counts_recoveries_mttr_and_the_toil_ratio() {
        let job = pb::Job {
            running_time: Some(wire::duration(1000.0)),
            incidents: vec![
                incident(IncidentCause::WorkerLost, 10_000, 12_000, Some(Resolver::Automation)),
                incident(IncidentCause::WorkerLost, 20_000, 24_000, Some(Resolver::Automation)),
                incident(IncidentCause::BadData, 30_000, 0, None),
                incident(IncidentCause::NonFinite, 35_000, 36_000, Some(Resolver::JobEnded)),
            ],
            toil: vec![pb::ToilEvent {
                kind: pb::ToilKind::Cancel as i32,
                by: "ann".into(),
                time: wire::timestamp(40_000),
                hands_on: Some(wire::duration(50.0)),
            }],
            ..pb::Job::default()
        };
        let ledger = ledger(std::slice::from_ref(&job), 0);
        assert_eq!((ledger.incidents, ledger.open_incidents, ledger.resolved_by_automation), (4, 1, 2));
        assert_eq!(ledger.unresolved_at_job_end, 1);
        assert_eq!(ledger.mttr_seconds, Some(3.0), "an incident the job ended with is no recovery");
        assert_eq!(ledger.toil_ratio, Some(0.05));
        assert_eq!(ledger.lost_work_seconds, 6.0);
        assert_eq!(
            ledger.incidents_by_cause,
            vec![("bad_data".into(), 1), ("non_finite".into(), 1), ("worker_lost".into(), 2)]
        );
        let recent = super::ledger(&[job], 25_000);
        assert_eq!((recent.incidents, recent.manual_actions), (2, 1));
    }
}
