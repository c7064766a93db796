//! Incidents that last while a condition holds (a straggling worker, checkpoint storage that
//! refuses writes, a job store that cannot be written), closed by the condition's own signal rather than by the next completed
//! step, as worker losses are.

use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Straggler(String),
    CheckpointStorage,
    /// The job's record could not be saved (a full disk): progress lives in memory until it can.
    JobStore,
}

impl Condition {
    pub fn cause(&self) -> &'static str {
        match self {
            Self::Straggler(_) => "straggler",
            Self::CheckpointStorage => "checkpoint_storage",
            Self::JobStore => "job_store",
        }
    }
}

/// Consecutive steps a worker must be slow (or normal again) before it is reported (or cleared),
/// so one slow step (a GC pause, a noisy neighbour) is not an incident.
pub const STREAK: u32 = 5;

/// Per worker: consecutive slow and normal steps, and who is currently reported.
#[derive(Debug, Default)]
pub struct StragglerTracker {
    slow: HashMap<String, u32>,
    normal: HashMap<String, u32>,
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
        self.slow.retain(|w, _| members.contains(w));
        self.normal.retain(|w, _| members.contains(w));
        for worker in members {
            let slow = stragglers.contains(worker);
            let (grow, reset) =
                if slow { (&mut self.slow, &mut self.normal) } else { (&mut self.normal, &mut self.slow) };
            *grow.entry(worker.clone()).or_default() += 1;
            reset.remove(worker);
            let streak = grow[worker];
            if slow && streak >= STREAK && self.flagged.insert(worker.clone()) {
                started.push(worker.clone());
            } else if !slow && streak >= STREAK && self.flagged.remove(worker) {
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
    fn a_worker_is_reported_after_a_streak_and_cleared_after_another() {
        let mut tracker = StragglerTracker::default();
        let members = names(&["a", "b"]);
        assert_eq!(tracker.observe(&members, &names(&["b"])), (vec![], vec![]));
        assert_eq!(tracker.observe(&members, &[]), (vec![], vec![]), "one slow step is noise");
        for _ in 0..STREAK - 1 {
            assert_eq!(tracker.observe(&members, &names(&["b"])), (vec![], vec![]));
        }
        assert_eq!(tracker.observe(&members, &names(&["b"])), (names(&["b"]), vec![]));
        assert_eq!(tracker.observe(&members, &names(&["b"])), (vec![], vec![]), "reported once");
        for _ in 0..STREAK - 1 {
            assert_eq!(tracker.observe(&members, &[]), (vec![], vec![]));
        }
        assert_eq!(tracker.observe(&members, &[]), (vec![], names(&["b"])));
    }

    #[test]
    fn a_reported_worker_that_leaves_is_cleared() {
        let mut tracker = StragglerTracker::default();
        for _ in 0..STREAK {
            tracker.observe(&names(&["a", "b"]), &names(&["b"]));
        }
        assert_eq!(tracker.observe(&names(&["a"]), &[]), (vec![], names(&["b"])));
    }
}
