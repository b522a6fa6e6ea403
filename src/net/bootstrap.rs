//! Bootstrap dial schedule (sans-IO): which relay address to dial when, with capped exponential
//! backoff and jitter.
//!
//! # Overview
//! The schedule owns no sockets and reads no clock. The node's event loop drives it:
//! 1. [`BootstrapSchedule::poll_dial`] with `now` returns the next due address (marking it dialing);
//! 2. the loop dials it and reports back [`BootstrapSchedule::dial_succeeded`] or
//!    [`BootstrapSchedule::dial_failed`] (which returns the retry delay);
//! 3. a connection that later closes is reported with [`BootstrapSchedule::disconnected`];
//! 4. [`BootstrapSchedule::poll_timeout`] is the next instant at which `poll_dial` has work.
//!
//! Jitter is an argument in `[0, 1)` so tests are deterministic. Diversity, target counts and
//! persistence of good peers are the connection-management issue's to add here.

use std::time::Duration;

use libp2p::Multiaddr;

use crate::platform::Instant;

/// Index of an address in the schedule.
pub type EntryId = usize;

/// Backoff parameters. Defaults: first retry after 500 ms, doubling, capped at 30 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Sets the first retry delay.
    pub fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Sets the longest retry delay.
    pub fn with_cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    /// Delay after `failures` consecutive failures; `jitter` in `[0, 1)` spreads it over
    /// `[d/2, d)` so many clients restarting together do not dial in lock step.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(failures.min(20)).unwrap_or(u32::MAX));
        let full = exp.min(self.cap);
        full / 2 + full.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Due(Instant),
    Dialing,
    Connected,
}

#[derive(Debug)]
struct Entry {
    address: Multiaddr,
    state: State,
    failures: u32,
}

/// Dial schedule over a fixed list of bootstrap addresses.
#[derive(Debug)]
pub struct BootstrapSchedule {
    entries: Vec<Entry>,
    backoff: Backoff,
}

impl BootstrapSchedule {
    /// All addresses are due at `now`.
    pub fn new(addresses: Vec<Multiaddr>, backoff: Backoff, now: Instant) -> Self {
        let entries = addresses
            .into_iter()
            .map(|address| Entry {
                address,
                state: State::Due(now),
                failures: 0,
            })
            .collect();
        Self { entries, backoff }
    }

    /// The next address due at `now`, now marked as dialing.
    pub fn poll_dial(&mut self, now: Instant) -> Option<(EntryId, Multiaddr)> {
        let (id, entry) = self
            .entries
            .iter_mut()
            .enumerate()
            .find(|(_, e)| matches!(e.state, State::Due(at) if at <= now))?;
        entry.state = State::Dialing;
        Some((id, entry.address.clone()))
    }

    /// The dial of `id` produced a connection.
    pub fn dial_succeeded(&mut self, id: EntryId) {
        if let Some(entry) = self.entries.get_mut(id) {
            entry.state = State::Connected;
            entry.failures = 0;
        }
    }

    /// The dial of `id` failed; returns when it will be retried.
    pub fn dial_failed(&mut self, id: EntryId, now: Instant, jitter: f64) -> Duration {
        let Some(entry) = self.entries.get_mut(id) else {
            return Duration::ZERO;
        };
        let delay = self.backoff.delay(entry.failures, jitter);
        entry.failures = entry.failures.saturating_add(1);
        entry.state = State::Due(now + delay);
        delay
    }

    /// The connection made through `id` closed; it is redialled after the base delay.
    pub fn disconnected(&mut self, id: EntryId, now: Instant, jitter: f64) -> Duration {
        let Some(entry) = self.entries.get_mut(id) else {
            return Duration::ZERO;
        };
        let delay = self.backoff.delay(0, jitter);
        entry.state = State::Due(now + delay);
        delay
    }

    /// The earliest instant at which [`Self::poll_dial`] will return something.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter_map(|e| match e.state {
                State::Due(at) => Some(at),
                _ => None,
            })
            .min()
    }

    /// How many bootstrap addresses currently hold a connection.
    pub fn connected(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state == State::Connected)
            .count()
    }

    /// The address of entry `id`.
    pub fn address(&self, id: EntryId) -> Option<&Multiaddr> {
        self.entries.get(id).map(|e| &e.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<Multiaddr> {
        (0..n)
            .map(|i| format!("/ip4/127.0.0.1/tcp/{}", 4000 + i).parse().unwrap())
            .collect()
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let b = Backoff::default();
        // jitter 0.999.. ≈ the full delay, jitter 0 = half of it.
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(250));
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(2));
        assert_eq!(b.delay(10, 0.0), Duration::from_secs(15));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(15));
        assert!(b.delay(10, 0.999) < Duration::from_secs(30));
    }

    #[test]
    fn failed_dials_are_retried_after_backoff() {
        let t0 = crate::platform::now();
        let mut s = BootstrapSchedule::new(addrs(2), Backoff::default(), t0);
        let (a, _) = s.poll_dial(t0).unwrap();
        let (b, _) = s.poll_dial(t0).unwrap();
        assert!(s.poll_dial(t0).is_none(), "both are dialing");
        assert_eq!(s.poll_timeout(), None);

        s.dial_succeeded(a);
        let retry = s.dial_failed(b, t0, 0.0);
        assert_eq!(retry, Duration::from_millis(250));
        assert_eq!(s.poll_timeout(), Some(t0 + retry));
        assert!(s.poll_dial(t0 + retry / 2).is_none());
        assert_eq!(s.poll_dial(t0 + retry).map(|(id, _)| id), Some(b));

        // A second failure waits twice as long.
        assert_eq!(s.dial_failed(b, t0, 0.0), Duration::from_millis(500));
        assert_eq!(s.connected(), 1);
    }

    #[test]
    fn a_lost_connection_is_redialled() {
        let t0 = crate::platform::now();
        let mut s = BootstrapSchedule::new(addrs(1), Backoff::default(), t0);
        let (a, _) = s.poll_dial(t0).unwrap();
        s.dial_failed(a, t0, 0.0);
        s.dial_failed(a, t0, 0.0);
        s.poll_dial(t0 + Duration::from_secs(5)).unwrap();
        s.dial_succeeded(a);
        assert_eq!(s.connected(), 1);
        // Success resets the failure count: the redial uses the base delay.
        assert_eq!(s.disconnected(a, t0, 0.0), Duration::from_millis(250));
        assert_eq!(s.connected(), 0);
    }
}
