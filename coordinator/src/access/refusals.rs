//! Rate limit for the "request refused" log line: a client retrying without credentials (or a
//! scanner) would otherwise write a line per call. At most one line per peer per window; the
//! refusals suppressed in between are counted in that peer's next line. The clock is passed in,
//! so the rule is tested without sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One line per peer per this long.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Peers remembered at most; beyond it the oldest is forgotten (memory stays bounded when many
/// addresses call, at worst one extra line for a forgotten peer).
pub const MAX_PEERS: usize = 1024;

#[derive(Debug)]
pub struct RefusalLog {
    window: Duration,
    max_peers: usize,
    /// Peer (IP, not port: each retry may use a new port) -> when it was last logged and the
    /// refusals not logged since.
    peers: HashMap<Option<IpAddr>, (Instant, u64)>,
}

impl Default for RefusalLog {
    fn default() -> Self {
        Self::new(WINDOW, MAX_PEERS)
    }
}

impl RefusalLog {
    pub fn new(window: Duration, max_peers: usize) -> Self {
        Self { window, max_peers: max_peers.max(1), peers: HashMap::new() }
    }

    /// Records a refusal of `peer` at `now`. `Some(suppressed)` when a line should be written,
    /// with the refusals suppressed since this peer's previous line; `None` to stay quiet.
    pub fn record(&mut self, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        if let Some((logged_at, suppressed)) = self.peers.get_mut(&peer) {
            if now.saturating_duration_since(*logged_at) < self.window {
                *suppressed += 1;
                return None;
            }
            let count = std::mem::take(suppressed);
            *logged_at = now;
            return Some(count);
        }
        if self.peers.len() >= self.max_peers {
            self.forget_one(now);
        }
        self.peers.insert(peer, (now, 0));
        Some(0)
    }

    /// Peers remembered now.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Drops every peer whose window is over; when none is, the one logged longest ago.
    fn forget_one(&mut self, now: Instant) {
        let window = self.window;
        self.peers.retain(|_, (logged_at, _)| now.saturating_duration_since(*logged_at) < window);
        if self.peers.len() >= self.max_peers
            && let Some(oldest) = self.peers.iter().min_by_key(|(_, (logged_at, _))| *logged_at).map(|(peer, _)| *peer)
        {
            self.peers.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn one_line_per_peer_per_window_with_the_suppressed_count() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        assert_eq!(log.record(ip(1), t0), Some(0));
        for second in 1..10 {
            assert_eq!(log.record(ip(1), t0 + Duration::from_secs(second)), None, "second {second}");
        }
        assert_eq!(log.record(ip(1), t0 + WINDOW), Some(9));
        assert_eq!(log.record(ip(1), t0 + WINDOW + Duration::from_millis(1)), None);
        assert_eq!(log.record(ip(1), t0 + WINDOW * 3), Some(1));
    }

    #[test]
    fn peers_are_limited_independently() {
        let mut log = RefusalLog::default();
        let t0 = Instant::now();
        assert_eq!(log.record(ip(1), t0), Some(0));
        assert_eq!(log.record(ip(2), t0), Some(0));
        assert_eq!(log.record(None, t0), Some(0));
        assert_eq!(log.record(ip(1), t0), None);
        assert_eq!(log.record(ip(2), t0), None);
    }

    #[test]
    fn memory_stays_bounded_when_many_peers_call() {
        let mut log = RefusalLog::new(WINDOW, 4);
        let t0 = Instant::now();
        for last in 0..100 {
            assert_eq!(log.record(ip(last), t0 + Duration::from_millis(u64::from(last))), Some(0));
            assert!(log.len() <= 4);
        }
        // The most recent peers are still limited; peers whose window is over are dropped first.
        assert_eq!(log.record(ip(99), t0 + Duration::from_millis(100)), None);
        assert_eq!(log.record(ip(200), t0 + WINDOW * 2), Some(0));
        assert_eq!(log.len(), 1);
    }
}
