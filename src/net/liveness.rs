//! Which connections have gone quiet (sans-IO): a connection whose pings stopped being
//! answered is overdue once an answer should have come.
//!
//! libp2p's ping only reports, and only the second failure in a row; that one comes from a new
//! ping stream, which gets 10 s to negotiate. On its own it lets a peer gone without closing (a
//! relay behind WebRTC, whose UDP never says so; a half-open TCP connection) go about
//! 2 × interval + timeout + 10 s after its last answer (30 s with a member's defaults). A ping
//! sent `interval` after an answer must itself be answered within `timeout`, so a connection
//! silent for longer than `interval + timeout` (plus [`SLACK`] for a busy event loop) is
//! overdue here: 16 s with the same defaults.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    hash::Hash,
    time::Duration,
};

use crate::platform::Instant;

/// Allowance for an answer that arrived but waits for a busy event loop to read it.
pub const SLACK: Duration = Duration::from_secs(1);

/// Last signs of life by connection `K`, and their deadlines in order.
#[derive(Debug)]
pub struct Liveness<K> {
    limit: Duration,
    last: HashMap<K, Instant>,
    /// One entry per connection, checked when it comes up: a connection heard from since is
    /// put back with its new deadline, a forgotten one dropped. So an answered ping costs a
    /// map write, and a connection wakes the event loop about once per `limit`.
    deadlines: BinaryHeap<Reverse<(Instant, K)>>,
}

impl<K: Copy + Eq + Hash + Ord> Liveness<K> {
    /// Connections pinged every `interval` whose answers may take `timeout`.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            limit: interval + timeout + SLACK,
            last: HashMap::new(),
            deadlines: BinaryHeap::new(),
        }
    }

    /// `connection` is alive at `now`: just established, or a ping of it was answered.
    pub fn alive(&mut self, connection: K, now: Instant) {
        if self.last.insert(connection, now).is_none() {
            self.deadlines.push(Reverse((now + self.limit, connection)));
        }
    }

    /// `connection` is no longer watched: closed, or its peer does not answer pings at all.
    pub fn forget(&mut self, connection: K) {
        self.last.remove(&connection);
    }

    /// The connections that have been silent too long by `now`; they are forgotten.
    pub fn overdue(&mut self, now: Instant) -> Vec<K> {
        let mut overdue = Vec::new();
        while let Some(Reverse((deadline, connection))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            match self.last.get(&connection).map(|at| *at + self.limit) {
                None => {}
                Some(due) if due <= now => {
                    self.last.remove(&connection);
                    overdue.push(connection);
                }
                Some(due) => self.deadlines.push(Reverse((due, connection))),
            }
        }
        overdue
    }

    /// When [`Liveness::overdue`] may next have something (a connection heard from since
    /// is only put back then).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines
            .peek()
            .map(|Reverse((deadline, _))| *deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_overdue_only_when_silent_past_interval_timeout_and_slack() {
        let t0 = crate::platform::now();
        let (interval, timeout) = (Duration::from_secs(5), Duration::from_secs(10));
        let limit = interval + timeout + SLACK;
        let mut live = Liveness::new(interval, timeout);
        assert_eq!(live.poll_timeout(), None);
        for connection in [1, 2, 3] {
            live.alive(connection, t0);
        }
        live.forget(3);
        // 2 keeps answering every interval; 1 goes quiet after its first answer.
        live.alive(1, t0 + interval);
        let mut now = t0;
        while now < t0 + limit * 3 {
            now += interval;
            live.alive(2, now);
            let overdue = live.overdue(now);
            if now < t0 + interval + limit {
                assert!(overdue.is_empty(), "{overdue:?} at {:?}", now - t0);
            } else if !overdue.is_empty() {
                assert_eq!(overdue, [1]);
                assert_eq!(now - t0, Duration::from_secs(25));
            }
        }
        // 1 was reported once and is forgotten; 2 never was; 3 was forgotten.
        assert!(live
            .overdue(now + limit - Duration::from_millis(1))
            .is_empty());
        assert_eq!(live.overdue(now + limit), [2]);
        // Nothing left to wake for: 3 was forgotten, 1 and 2 reported.
        assert_eq!(live.poll_timeout(), None);
    }
}
