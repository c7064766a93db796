//! The incident ledger. An incident strikes while a job computes a step; automation has
//! resolved it once the job completes that step (redoing a rewound stretch is not progress).
//! Incidents that last while a condition holds (a straggler, failing checkpoint uploads, a full
//! job store) close on their condition's own signal instead. An incident a worker causes that
//! keeps striking before the job gets past it is not being resolved: past a bound the job fails
//! with the reason, and whatever is still open when a job ends is closed as `job_ended`.

use facetrain_proto::incidents::{IncidentCause, Resolver};

use super::{Cluster, Event, Now};
use crate::conditions::Condition;
use crate::record::{IncidentRecord, JobState};

/// How many open incidents of a worker-caused `cause` a job of `workers` workers may gather
/// before it fails: every worker may fail the same step twice (a crash and its restart); the
/// next one says the job itself is the problem. `None`: the cause is not the job's doing.
pub fn recurrence_limit(cause: IncidentCause, workers: usize) -> Option<usize> {
    match cause {
        IncidentCause::WorkerLost | IncidentCause::StalledStep | IncidentCause::BadGradient => Some(2 * workers + 1),
        _ => None,
    }
}

impl Cluster {
    /// Records an incident on `job`, struck while it computes its next step; fails the job when
    /// the cause keeps recurring (see [`recurrence_limit`]).
    pub(super) fn incident(&mut self, job: &str, cause: IncidentCause, detail: String, lost_seconds: f64, now: Now) {
        let Some(record) = self.jobs.get_mut(job) else { return };
        let step = record.step + 1;
        record.incidents.push(IncidentRecord::detected(cause, detail.clone(), step, now.unix_ms, lost_seconds));
        let count = record.open_incidents().filter(|(_, i)| i.cause == cause).count();
        let workers = self.workers_wanted(job);
        self.emit(Event::IncidentOpened { job: job.to_string(), cause, detail: detail.clone() });
        self.changed(job);
        if recurrence_limit(cause, workers).is_some_and(|limit| count >= limit) {
            let message = recurrence_message(cause, count, step, &detail);
            self.finish(job, JobState::Failed, message, now);
        }
    }

    /// Records an incident for `condition` unless one is already open.
    pub(super) fn open_condition(&mut self, job: &str, condition: Condition, detail: String, now: Now) {
        if self.conditions.iter().any(|(j, _, c)| j == job && *c == condition) {
            return;
        }
        let cause = condition.cause();
        let Some(record) = self.jobs.get_mut(job) else { return };
        let step = record.step + 1;
        record.incidents.push(IncidentRecord::detected(cause, detail.clone(), step, now.unix_ms, 0.0));
        self.conditions.push((job.to_string(), record.incidents.len() - 1, condition));
        self.emit(Event::IncidentOpened { job: job.to_string(), cause, detail });
        self.changed(job);
    }

    /// Resolves the incident open for `condition`; false when none was open.
    pub(super) fn close_condition(&mut self, job: &str, condition: &Condition, now: Now) -> bool {
        let Some(position) = self.conditions.iter().position(|(j, _, c)| j == job && c == condition) else {
            return false;
        };
        let (_, index, _) = self.conditions.remove(position);
        self.resolve(job, index, Resolver::Automation, now);
        true
    }

    /// After `job` completed a step: the incidents that struck at or before it are resolved.
    pub(super) fn resolve_progress(&mut self, job: &str, now: Now) {
        let Some(record) = self.jobs.get(job) else { return };
        let passed: Vec<usize> = record
            .open_incidents()
            .filter(|(index, incident)| incident.step <= record.step && !self.is_condition(job, *index))
            .map(|(index, _)| index)
            .collect();
        for index in passed {
            self.resolve(job, index, Resolver::Automation, now);
        }
    }

    /// A job ended: whatever is still open was not resolved.
    pub(super) fn close_all(&mut self, job: &str, now: Now) {
        self.conditions.retain(|(j, _, _)| j != job);
        let open: Vec<usize> =
            self.jobs.get(job).map(|r| r.open_incidents().map(|(i, _)| i).collect()).unwrap_or_default();
        for index in open {
            self.resolve(job, index, Resolver::JobEnded, now);
        }
    }

    fn is_condition(&self, job: &str, index: usize) -> bool {
        self.conditions.iter().any(|(j, i, _)| j == job && *i == index)
    }

    fn resolve(&mut self, job: &str, index: usize, by: Resolver, now: Now) {
        let Some(incident) = self.jobs.get_mut(job).and_then(|r| r.incidents.get_mut(index)) else { return };
        if !incident.is_open() {
            return;
        }
        let recovery_seconds = incident.resolve(by, now.unix_ms);
        let cause = incident.cause;
        self.emit(Event::IncidentResolved { job: job.to_string(), cause, resolver: by, recovery_seconds });
        self.changed(job);
    }
}

fn recurrence_message(cause: IncidentCause, count: usize, step: u64, last: &str) -> String {
    let (what, hint) = match cause {
        IncidentCause::BadGradient if last.contains("non-finite") => {
            ("gradients non-finite", ": learning rate too high, or the data out of range?")
        }
        IncidentCause::BadGradient => ("gradients refused", ""),
        IncidentCause::WorkerLost => ("workers lost", ": is the job crashing its workers (memory, a bad image)?"),
        IncidentCause::StalledStep => ("steps stalled", ": is the job too slow for its deadline, or hanging?"),
        other => (other.name(), ""),
    };
    format!("{what} {count} times at step {step} without getting past it (last: {last}){hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_worker_caused_incidents_are_bounded_and_the_bound_grows_with_the_workers() {
        assert_eq!(recurrence_limit(IncidentCause::BadGradient, 2), Some(5));
        assert_eq!(recurrence_limit(IncidentCause::WorkerLost, 3), Some(7));
        assert_eq!(recurrence_limit(IncidentCause::CoordinatorRestart, 2), None);
        assert_eq!(recurrence_limit(IncidentCause::Straggler, 2), None);
    }

    #[test]
    fn the_failure_message_names_the_cause_the_step_and_a_hint() {
        let message =
            recurrence_message(IncidentCause::BadGradient, 5, 2, "w1: evicted: non-finite value at element 3");
        assert_eq!(
            message,
            "gradients non-finite 5 times at step 2 without getting past it (last: w1: evicted: non-finite value at \
             element 3): learning rate too high, or the data out of range?"
        );
    }
}
