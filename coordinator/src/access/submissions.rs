//! Per-caller limit on job submissions: a script submitting in a loop (a sweep gone wrong) must
//! not fill the job store and the queue faster than anyone can read them. A token bucket per
//! peer address: `burst` submissions at once, refilled at `per_minute`. The clock is passed in,
//! so the rule is tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Peers remembered at most; beyond it a peer whose bucket is full again (or else the one
/// heard from longest ago) is forgotten, so memory stays bounded when many addresses call.
pub const MAX_PEERS: usize = 4096;

/// How many submissions one caller may make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubmitLimit {
    /// Submissions accepted at once from an idle caller.
    pub burst: u32,
    /// Submissions accepted per minute after the burst.
    pub per_minute: u32,
}

/// A sweep of a few dozen jobs goes through at once; a loop is slowed to one a second.
impl Default for SubmitLimit {
    fn default() -> Self {
        Self { burst: 50, per_minute: 60 }
    }
}

#[derive(Debug)]
pub struct Submissions {
    limit: SubmitLimit,
    /// Peer (IP, not port: each call may use a new connection) -> tokens left and when counted.
    peers: HashMap<Option<IpAddr>, (f64, Instant)>,
}

impl Submissions {
    pub fn new(limit: SubmitLimit) -> Self {
        let limit = SubmitLimit { burst: limit.burst.max(1), per_minute: limit.per_minute.max(1) };
        Self { limit, peers: HashMap::new() }
    }

    pub fn limit(&self) -> SubmitLimit {
        self.limit
    }

    /// Takes one submission from `peer`'s bucket at `now`; `Err(wait)` when it is empty, with
    /// how long until the next one is allowed.
    pub fn admit(&mut self, peer: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            self.forget_one(now);
        }
        let (limit, burst) = (self.limit, f64::from(self.limit.burst));
        let bucket = self.peers.entry(peer).or_insert((burst, now));
        let tokens = refilled(limit, *bucket, now);
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            return Ok(());
        }
        *bucket = (tokens, now);
        Err(Duration::from_secs_f64((1.0 - tokens) / tokens_per_second(limit)))
    }

    /// Peers remembered now.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    fn forget_one(&mut self, now: Instant) {
        let (limit, burst) = (self.limit, f64::from(self.limit.burst));
        let victim = self
            .peers
            .iter()
            .find(|(_, bucket)| refilled(limit, **bucket, now) >= burst)
            .or_else(|| self.peers.iter().min_by_key(|(_, (_, counted))| *counted))
            .map(|(peer, _)| *peer);
        if let Some(peer) = victim {
            self.peers.remove(&peer);
        }
    }
}

fn tokens_per_second(limit: SubmitLimit) -> f64 {
    f64::from(limit.per_minute) / 60.0
}

/// The tokens a bucket (tokens, when counted) holds at `now`: refilled since, up to the burst.
fn refilled(limit: SubmitLimit, (tokens, counted): (f64, Instant), now: Instant) -> f64 {
    let refill = now.saturating_duration_since(counted).as_secs_f64() * tokens_per_second(limit);
    (tokens + refill).min(f64::from(limit.burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn a_burst_is_accepted_then_one_per_refill_interval() {
        let mut gate = Submissions::new(SubmitLimit { burst: 3, per_minute: 6 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(gate.admit(peer(1), t0), Ok(()));
        }
        let wait = gate.admit(peer(1), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(10), "6 per minute: the next one in 10 s");
        assert!(gate.admit(peer(1), t0 + Duration::from_secs(9)).is_err());
        assert_eq!(gate.admit(peer(1), t0 + Duration::from_secs(10)), Ok(()));
        assert!(gate.admit(peer(1), t0 + Duration::from_secs(10)).is_err());
    }

    #[test]
    fn callers_have_their_own_buckets() {
        let mut gate = Submissions::new(SubmitLimit { burst: 1, per_minute: 1 });
        let now = Instant::now();
        assert_eq!(gate.admit(peer(1), now), Ok(()));
        assert!(gate.admit(peer(1), now).is_err());
        assert_eq!(gate.admit(peer(2), now), Ok(()));
    }

    #[test]
    fn an_idle_caller_gets_its_burst_back_and_no_more() {
        let mut gate = Submissions::new(SubmitLimit { burst: 2, per_minute: 60 });
        let t0 = Instant::now();
        gate.admit(peer(1), t0).unwrap();
        gate.admit(peer(1), t0).unwrap();
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(gate.admit(peer(1), later), Ok(()));
        assert_eq!(gate.admit(peer(1), later), Ok(()));
        assert!(gate.admit(peer(1), later).is_err());
    }

    #[test]
    fn memory_is_bounded_and_throttled_peers_are_not_the_ones_forgotten() {
        let mut gate = Submissions::new(SubmitLimit { burst: 1, per_minute: 1 });
        let t0 = Instant::now();
        gate.admit(peer(1), t0).unwrap();
        // Two minutes later peer 1's bucket is full again; every other peer has just spent its.
        let later = t0 + Duration::from_secs(120);
        let other = |i: u32| Some(IpAddr::from((i + 1000).to_be_bytes()));
        for i in 0..MAX_PEERS as u32 - 1 {
            gate.admit(other(i), later).unwrap();
        }
        assert_eq!(gate.len(), MAX_PEERS);
        gate.admit(peer(2), later).unwrap();
        assert_eq!(gate.len(), MAX_PEERS, "one peer was forgotten to make room");
        // Forgetting a throttled peer would hand it a fresh burst: the oldest throttled one is
        // still remembered, and still throttled.
        assert!(gate.admit(other(0), later).is_err());
    }
}
