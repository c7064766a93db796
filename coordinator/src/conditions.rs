//! Incidents that last while a condition holds (a straggling worker, checkpoint storage that
//! refuses writes, a job store that cannot be written), closed by the condition's own signal rather than by the next completed
//! step, as worker losses are.

use std::collections::{HashMap, HashSet, VecDeque};

use facetrain_proto::incidents::IncidentCause;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Straggler(String),
    CheckpointStorage,
    /// The job's record could not be saved (a full disk): progress lives in memory until it can.
    JobStore,
}

impl Condition {
    pub fn cause(&self) -> IncidentCause {
        match self {
            Self::Straggler(_) => IncidentCause::Straggler,
            Self::CheckpointStorage => IncidentCause::CheckpointStorage,
            Self::JobStore => IncidentCause::JobStore,
        }
    }
}

/// A straggler is also this much slower than the others' median: on millisecond steps,
/// scheduling noise alone doubles compute times.
pub const STRAGGLER_MIN_EXCESS_SECONDS: f64 = 0.05;

/// Members whose time (gradient arrival, else compute) is more than twice the median of the
/// other members' (the others, so that with two workers the slow one is not its own yardstick).
pub fn stragglers(times: &[(String, f64)]) -> Vec<String> {
    times
        .iter()
        .enumerate()
        .filter(|(i, (_, seconds))| {
            let mut others: Vec<f64> = times.iter().enumerate().filter(|(j, _)| j != i).map(|(_, (_, s))| *s).collect();
            others.sort_by(f64::total_cmp);
            let median = others.get(others.len().saturating_sub(1) / 2).copied().unwrap_or(0.0);
            median > 0.0 && *seconds > 2.0 * median && *seconds - median > STRAGGLER_MIN_EXCESS_SECONDS
        })
        .map(|(_, (worker, _))| worker.clone())
        .collect()
}

/// A worker is judged on its last `WINDOW` steps: reported when at least `SLOW_TO_REPORT` of them
/// were slow, cleared when at most `SLOW_TO_CLEAR` were. A window rather than a streak, because
/// on a busy machine one lucky step would otherwise restart the count; one slow step (a GC pause,
/// a noisy neighbour) is still not an incident.
pub const WINDOW: usize = 8;
pub const SLOW_TO_REPORT: usize = 5;
pub const SLOW_TO_CLEAR: usize = 1;

/// Per worker: its recent steps (slow or not), and who is currently reported.
#[derive(Debug, Default)]
pub struct StragglerTracker {
    recent: HashMap<String, VecDeque<bool>>,
    flagged: HashSet<String>,
}

impl StragglerTracker {
    /// One completed step: returns the workers that became stragglers and those that stopped
    /// being one (recovered, or no longer members).
    pub fn observe(&mut self, members: &[String], stragglers: &[String]) -> (Vec<String>, Vec<String>) {
        let mut started = Vec::new();
        let mut ended: Vec<String> = self.flagged.iter().filter(|w| !members.contains(w)).cloned().collect();
        for worker in &ended {
            self.flagged.remove(worker);
        }
        self.recent.retain(|w, _| members.contains(w));
        for worker in members {
            let recent = self.recent.entry(worker.clone()).or_default();
            recent.push_back(stragglers.contains(worker));
            if recent.len() > WINDOW {
                recent.pop_front();
            }
            let slow = recent.iter().filter(|s| **s).count();
            if slow >= SLOW_TO_REPORT && self.flagged.insert(worker.clone()) {
                started.push(worker.clone());
            } else if recent.len() == WINDOW && slow <= SLOW_TO_CLEAR && self.flagged.remove(worker) {
                ended.push(worker.clone());
            }
        }
        (started, ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_worker_is_reported_when_mostly_slow_and_cleared_when_mostly_fast() {
        let mut tracker = StragglerTracker::default();
        let members = names(&["a", "b"]);
        // A fast step in between (noise) does not restart the count: the 5th slow of 6 reports.
        for slow in [true, true, false, true, true] {
            let stragglers = if slow { names(&["b"]) } else { vec![] };
            assert_eq!(tracker.observe(&members, &stragglers), (vec![], vec![]));
        }
        assert_eq!(tracker.observe(&members, &names(&["b"])), (names(&["b"]), vec![]));
        assert_eq!(tracker.observe(&members, &names(&["b"])), (vec![], vec![]), "reported once");
        let mut cleared = Vec::new();
        for _ in 0..WINDOW {
            let (_, ended) = tracker.observe(&members, &[]);
            cleared.extend(ended);
        }
        assert_eq!(cleared, names(&["b"]));
    }

    #[test]
    fn one_slow_step_now_and_then_is_not_a_straggler() {
        let mut tracker = StragglerTracker::default();
        let members = names(&["a", "b"]);
        for step in 0..40 {
            let stragglers = if step % 3 == 0 { names(&["b"]) } else { vec![] };
            assert_eq!(tracker.observe(&members, &stragglers).0, Vec::<String>::new());
        }
    }

    #[test]
    fn with_two_workers_the_slow_one_is_a_straggler_and_even_speeds_are_not() {
        let times = |a: f64, b: f64| vec![("a".to_string(), a), ("b".to_string(), b)];
        assert_eq!(stragglers(&times(1.0, 4.0)), vec!["b".to_string()]);
        assert!(stragglers(&times(1.0, 1.5)).is_empty());
        assert!(stragglers(&times(0.01, 0.04)).is_empty(), "millisecond noise is not straggling");
        assert!(stragglers(&[("a".to_string(), 9.0)]).is_empty(), "one worker has nobody to lag behind");
    }

    #[test]
    fn a_reported_worker_that_leaves_is_cleared() {
        let mut tracker = StragglerTracker::default();
        for _ in 0..SLOW_TO_REPORT {
            tracker.observe(&names(&["a", "b"]), &names(&["b"]));
        }
        assert_eq!(tracker.observe(&names(&["a"]), &[]), (vec![], names(&["b"])));
    }
}
