//! Token buckets by key, for pubsub's message limits: per forwarding peer, and at relays per
//! envelope author. Sans-IO: time is an argument.
//!
//! ```
//! use std::time::Duration;
//! use keep_light::net::rate_limit::RateLimit;
//! let mut limit = RateLimit::<u32>::new(1, 2);
//! assert!(limit.allow(7, Duration::ZERO) && limit.allow(7, Duration::ZERO));
//! assert!(!limit.allow(7, Duration::ZERO));
//! assert!(limit.allow(7, Duration::from_secs(1)));
//! ```

use std::{collections::HashMap, time::Duration};

use libp2p::PeerId;

/// Token buckets by key (a forwarding peer, or an envelope's author): `per_second` sustained,
/// `burst` at once; time is an argument, from any fixed origin. At most [`RATE_BUCKETS`] keys
/// are kept; beyond, those with more than half their burst left are forgotten, so made-up keys
/// cannot grow it without bound.
#[derive(Debug, Clone)]
pub struct RateLimit<K = PeerId> {
    per_second: f64,
    burst: f64,
    buckets: HashMap<K, (f64, f64)>,
}

/// Most keys a [`RateLimit`] keeps.
pub const RATE_BUCKETS: usize = 16_384;

impl<K: std::hash::Hash + Eq + Copy> RateLimit<K> {
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// `key`'s tokens at `now`, refilled.
    fn bucket(&mut self, key: K, now: Duration) -> &mut f64 {
        if self.buckets.len() >= RATE_BUCKETS && !self.buckets.contains_key(&key) {
            let (per_second, burst) = (self.per_second, self.burst);
            let now = now.as_secs_f64();
            // Keep the keys that spent more than half their burst: they are what the limit
            // is for; the others lose little by starting afresh.
            self.buckets
                .retain(|_, (tokens, last)| *tokens + (now - *last) * per_second < burst / 2.0);
            if self.buckets.len() >= RATE_BUCKETS {
                self.buckets.clear();
            }
        }
        let now = now.as_secs_f64();
        let (tokens, last) = self.buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + (now - *last).max(0.0) * self.per_second).min(self.burst);
        *last = now;
        tokens
    }

    /// One message from `key` at `now`: whether it is within the limit (then it is counted).
    pub fn allow(&mut self, key: K, now: Duration) -> bool {
        let tokens = self.bucket(key, now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Gives back what [`RateLimit::allow`] took for a message that turned out not to be
    /// `key`'s (its signature did not hold).
    pub fn refund(&mut self, key: K, now: Duration) {
        let burst = self.burst;
        let tokens = self.bucket(key, now);
        *tokens = (*tokens + 1.0).min(burst);
    }

    /// Forgets a key (a peer whose last connection closed).
    pub fn forget(&mut self, key: &K) {
        self.buckets.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_limit_allows_bursts_then_the_sustained_rate() {
        let mut limit = RateLimit::new(10, 20);
        let (peer, other) = (PeerId::random(), PeerId::random());
        let t = |ms: u64| Duration::from_millis(ms);
        assert_eq!((0..25).filter(|_| limit.allow(peer, t(0))).count(), 20);
        // Other peers have their own bucket.
        assert!(limit.allow(other, t(0)));
        // Half a second refills five.
        assert_eq!((0..10).filter(|_| limit.allow(peer, t(500))).count(), 5);
        // A long pause refills to the burst, not beyond.
        assert_eq!((0..50).filter(|_| limit.allow(peer, t(60_000))).count(), 20);
        limit.forget(&peer);
        assert_eq!((0..25).filter(|_| limit.allow(peer, t(60_000))).count(), 20);
        // A refund gives one back, never beyond the burst.
        limit.refund(peer, t(60_000));
        assert!(limit.allow(peer, t(60_000)));
        assert!(!limit.allow(peer, t(60_000)));
        (0..5).for_each(|_| limit.refund(other, t(0)));
        assert_eq!((0..50).filter(|_| limit.allow(other, t(0))).count(), 20);
    }

    #[test]
    fn made_up_keys_cannot_grow_a_rate_limit_without_bound() {
        let mut limit = RateLimit::<u32>::new(10, 20);
        // An author spending its burst is remembered; a flood of one-message keys is not.
        assert_eq!(
            (0..25).filter(|_| limit.allow(0, Duration::ZERO)).count(),
            20
        );
        for key in 1..3 * RATE_BUCKETS as u32 {
            limit.allow(key, Duration::ZERO);
            assert!(limit.buckets.len() <= RATE_BUCKETS);
        }
        assert!(
            !limit.allow(0, Duration::ZERO),
            "the spent author kept its (empty) bucket"
        );
    }
}
