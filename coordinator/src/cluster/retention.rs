//! Retention: ended jobs past their time, or beyond the newest N, leave the store, so it stays
//! bounded however long the coordinator runs.

use std::time::Duration;

use super::{Cluster, Now};

/// How long ended jobs are kept (`None`: no limit of that kind).
#[derive(Debug, Clone, Default)]
pub struct Retention {
    /// Since the job ended.
    pub max_age: Option<Duration>,
    /// The newest ended jobs kept (by when they ended).
    pub max_ended: Option<usize>,
}

impl Cluster {
    /// Ended jobs the retention no longer keeps, oldest first.
    pub fn expired(&self, retention: &Retention, now: Now) -> Vec<String> {
        let mut ended: Vec<(u64, &str)> =
            self.jobs.values().filter(|j| j.state.is_terminal()).map(|j| (j.finished_unix_ms, j.id.as_str())).collect();
        let too_many = retention.max_ended.map_or(0, |keep| ended.len().saturating_sub(keep));
        let cutoff = retention.max_age.map(|age| now.unix_ms.saturating_sub(age.as_millis() as u64));
        let too_old = |finished: u64| cutoff.is_some_and(|c| finished < c);
        if too_many == 0 && !ended.iter().any(|(finished, _)| too_old(*finished)) {
            return Vec::new();
        }
        ended.sort_unstable();
        ended
            .iter()
            .enumerate()
            .filter(|(i, (finished, _))| *i < too_many || too_old(*finished))
            .map(|(_, (_, id))| id.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testkit::{Sim, job_toml};

    fn ended(sim: &mut Sim, name: &str) -> String {
        let id = sim.submit(&job_toml(name, 1, 10, 10, ""));
        sim.cluster.cancel(&id, "ann", 0.0, sim.now).unwrap();
        sim.advance(3_600_000);
        id
    }

    #[test]
    fn ended_jobs_expire_by_age_and_by_count_and_nothing_else_does() {
        let mut sim = Sim::new();
        let first = ended(&mut sim, "first");
        let second = ended(&mut sim, "second");
        let third = ended(&mut sim, "third");
        let queued = sim.submit(&job_toml("queued", 1, 10, 10, ""));
        sim.advance(3_600_000);
        let keep_all = Retention::default();
        assert!(sim.cluster.expired(&keep_all, sim.now).is_empty());
        let by_count = Retention { max_ended: Some(1), ..Retention::default() };
        assert_eq!(sim.cluster.expired(&by_count, sim.now), [first.clone(), second.clone()]);
        // They ended 4 h, 3 h and 2 h ago.
        let by_age = Retention { max_age: Some(Duration::from_secs(9000)), ..Retention::default() };
        assert_eq!(sim.cluster.expired(&by_age, sim.now), [first, second]);
        let short = Retention { max_age: Some(Duration::from_secs(60)), ..Retention::default() };
        assert!(!sim.cluster.expired(&short, sim.now).contains(&queued), "a queued job never expires");
        assert!(sim.cluster.expired(&short, sim.now).contains(&third));
    }
}
