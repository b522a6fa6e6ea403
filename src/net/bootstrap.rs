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
//! The schedule keeps `target` relays connected, not all of them: it dials only while fewer are
//! connected or dialing, in the order given (the node shuffles the list and puts the relays that
//! worked last time first), and prefers a relay on a host not already in use, so one machine
//! going down does not take every connection with it. [`BootstrapSchedule::health`] says how
//! far from the target it is.
//!
//! Jitter is an argument in `[0, 1)` so tests are deterministic; so is the order.

use std::{collections::BTreeMap, time::Duration};

use libp2p::{multiaddr::Protocol, Multiaddr};

use crate::platform::Instant;

/// The transport an address dials: the outermost protocol that names one.
pub fn transport_name(address: &Multiaddr) -> &'static str {
    let mut name = "other";
    let mut tls = false;
    for protocol in address.iter() {
        name = match protocol {
            Protocol::Tcp(_) => "tcp",
            Protocol::Udp(_) => "udp",
            Protocol::Memory(_) => "memory",
            Protocol::Tls => {
                tls = true;
                continue;
            }
            Protocol::Ws(_) if tls => "wss",
            Protocol::Ws(_) => "ws",
            Protocol::Wss(_) => "wss",
            Protocol::WebRTCDirect => "webrtc-direct",
            Protocol::P2pCircuit => "circuit",
            _ => continue,
        };
    }
    name
}

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

/// Addresses a schedule keeps at most; the rest of a longer list is dropped (and reported by
/// the node), so a huge or hostile list costs bounded memory.
pub const MAX_ENTRIES: usize = 1024;

/// How the connected relays compare with the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No relay: the node is cut off.
    Unhealthy,
    /// Some relays, fewer than the target.
    Degraded,
    /// At least the target (or every address there is).
    Healthy,
}

/// Dial schedule over a fixed list of bootstrap addresses.
#[derive(Debug)]
pub struct BootstrapSchedule {
    entries: Vec<Entry>,
    backoff: Backoff,
    target: usize,
    /// The network is down (the browser's `offline` event): no dials, so no failures pile up.
    paused: bool,
}

impl BootstrapSchedule {
    /// Keeps `target` (at least 1) of `addresses` connected, trying them in the given order;
    /// all are due at `now`. Only the first [`MAX_ENTRIES`] are kept.
    pub fn new(addresses: Vec<Multiaddr>, backoff: Backoff, target: usize, now: Instant) -> Self {
        let entries = addresses
            .into_iter()
            .take(MAX_ENTRIES)
            .map(|address| Entry {
                address,
                state: State::Due(now),
                failures: 0,
            })
            .collect();
        Self {
            entries,
            backoff,
            target: target.max(1),
            paused: false,
        }
    }

    /// The next address to dial at `now`, now marked as dialing: none while `target` relays
    /// are connected or being dialled. A due address on a host not in use goes first.
    pub fn poll_dial(&mut self, now: Instant) -> Option<(EntryId, Multiaddr)> {
        let due = |e: &Entry| matches!(e.state, State::Due(at) if at <= now);
        // Called on every turn of the node's loop: the cheap answers first.
        if self.paused || self.in_use() >= self.target || !self.entries.iter().any(due) {
            return None;
        }
        let used: Vec<Option<String>> = self
            .entries
            .iter()
            .filter(|e| matches!(e.state, State::Dialing | State::Connected))
            .map(|e| host(&e.address))
            .collect();
        let id = self
            .entries
            .iter()
            .position(|e| due(e) && !used.contains(&host(&e.address)))
            .or_else(|| self.entries.iter().position(due))?;
        let entry = &mut self.entries[id];
        entry.state = State::Dialing;
        Some((id, entry.address.clone()))
    }

    /// Relays connected or being dialled.
    fn in_use(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| matches!(e.state, State::Dialing | State::Connected))
            .count()
    }

    /// How the connected relays compare with the target.
    pub fn health(&self) -> Health {
        match self.connected() {
            0 => Health::Unhealthy,
            n if n >= self.target.min(self.entries.len()) => Health::Healthy,
            _ => Health::Degraded,
        }
    }

    /// Addresses in the schedule.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The network is back (the browser's `online` event): every address waiting out a backoff
    /// is due at `now`, with its failures forgotten.
    pub fn retry_now(&mut self, now: Instant) {
        self.paused = false;
        for entry in &mut self.entries {
            if let State::Due(_) = entry.state {
                entry.state = State::Due(now);
                entry.failures = 0;
            }
        }
    }

    /// The network is gone (the browser's `offline` event): nothing is dialled until
    /// [`Self::retry_now`]; dials in flight and connections are left to end on their own.
    pub fn pause(&mut self) {
        self.paused = true;
    }

    /// The number of relays the schedule keeps connected.
    pub fn target(&self) -> usize {
        self.target
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
        if self.paused || self.in_use() >= self.target {
            return None;
        }
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

    /// The connected relays by transport (`ws`, `wss`, `webrtc-direct`, `tcp`, …), so a page
    /// can see which one it is using, e.g. whether WebRTC took over after a WebSocket relay
    /// died.
    pub fn transports(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.entries.iter().filter(|e| e.state == State::Connected) {
            *counts.entry(transport_name(&entry.address)).or_default() += 1;
        }
        counts
    }

    /// The address of entry `id`.
    pub fn address(&self, id: EntryId) -> Option<&Multiaddr> {
        self.entries.get(id).map(|e| &e.address)
    }
}

/// The machine an address points at (its IP or DNS name), for diversity.
fn host(address: &Multiaddr) -> Option<String> {
    address.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(ip.to_string()),
        Protocol::Ip6(ip) => Some(ip.to_string()),
        Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => Some(name.to_string()),
        _ => None,
    })
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
        let mut s = BootstrapSchedule::new(addrs(2), Backoff::default(), 3, t0);
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
    fn health_counts_the_connected_relays_by_transport() {
        let name = |text: &str| transport_name(&text.parse().unwrap());
        assert_eq!(
            name("/ip4/10.0.0.1/tcp/1/ws/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"),
            "ws"
        );
        assert_eq!(name("/dns4/relay.test/tcp/443/wss"), "wss");
        assert_eq!(name("/dns4/relay.test/tcp/443/tls/ws"), "wss");
        assert_eq!(name("/ip4/10.0.0.1/tcp/1"), "tcp");
        assert_eq!(
            name("/ip4/10.0.0.1/udp/1/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g"),
            "webrtc-direct"
        );
        assert_eq!(name("/memory/7"), "memory");

        let t0 = crate::platform::now();
        let list = vec![
            "/ip4/10.0.0.1/tcp/1/ws".parse().unwrap(),
            "/ip4/10.0.0.2/udp/1/webrtc-direct".parse().unwrap(),
        ];
        let mut s = BootstrapSchedule::new(list, Backoff::default(), 2, t0);
        assert!(s.transports().is_empty());
        let (a, _) = s.poll_dial(t0).unwrap();
        let (b, _) = s.poll_dial(t0).unwrap();
        s.dial_succeeded(a);
        s.dial_succeeded(b);
        assert_eq!(
            s.transports(),
            BTreeMap::from([("webrtc-direct", 1), ("ws", 1)])
        );
        s.disconnected(a, t0, 0.0);
        assert_eq!(s.transports(), BTreeMap::from([("webrtc-direct", 1)]));
    }

    fn on(host: &str, port: u16) -> Multiaddr {
        format!("/ip4/{host}/tcp/{port}").parse().unwrap()
    }

    #[test]
    fn it_keeps_the_target_connected_on_distinct_hosts_and_reports_health() {
        let t0 = crate::platform::now();
        // Two relays on host A first, then one on B and one on C.
        let list = vec![
            on("10.0.0.1", 1),
            on("10.0.0.1", 2),
            on("10.0.0.2", 1),
            on("10.0.0.3", 1),
        ];
        let mut s = BootstrapSchedule::new(list, Backoff::default(), 2, t0);
        assert_eq!(s.health(), Health::Unhealthy);
        let (a, _) = s.poll_dial(t0).unwrap();
        let (b, addr) = s.poll_dial(t0).unwrap();
        assert_eq!((a, b), (0, 2), "the second dial skips A's other relay");
        assert_eq!(addr, on("10.0.0.2", 1));
        assert!(s.poll_dial(t0).is_none(), "two in use is the target");
        assert_eq!(s.poll_timeout(), None);
        s.dial_succeeded(a);
        assert_eq!(s.health(), Health::Degraded);
        s.dial_succeeded(b);
        assert_eq!(s.health(), Health::Healthy);
        // B goes down: C (a new host) replaces it, not A's second relay.
        s.disconnected(b, t0, 0.0);
        assert_eq!(s.health(), Health::Degraded);
        assert_eq!(s.poll_dial(t0).map(|(id, _)| id), Some(3));
        // If only A's hosts are left, the same host is better than nothing.
        s.dial_failed(3, t0, 0.0);
        let later = t0 + Duration::from_millis(100);
        assert_eq!(s.poll_dial(later).map(|(id, _)| id), Some(1));
    }

    #[test]
    fn offline_dials_nothing_and_coming_back_online_retries_at_once() {
        let t0 = crate::platform::now();
        let mut s = BootstrapSchedule::new(addrs(1), Backoff::default(), 1, t0);
        let (a, _) = s.poll_dial(t0).unwrap();
        s.dial_failed(a, t0, 0.0);
        // Offline: even once the backoff is over, nothing is due and no deadline is set.
        s.pause();
        let much_later = t0 + Duration::from_secs(3600);
        assert!(s.poll_dial(much_later).is_none());
        assert_eq!(s.poll_timeout(), None);
        for _ in 0..4 {
            s.dial_failed(a, t0, 0.0);
        }
        assert!(s.poll_dial(t0 + Duration::from_secs(1)).is_none());
        s.retry_now(t0 + Duration::from_secs(1));
        assert!(s.poll_dial(t0 + Duration::from_secs(1)).is_some());
        // And the next failure starts the backoff over.
        assert_eq!(s.dial_failed(a, t0, 0.0), Duration::from_millis(250));
    }

    #[test]
    fn a_huge_list_is_cut_to_the_bound() {
        let t0 = crate::platform::now();
        let list: Vec<Multiaddr> = (0..10_000u32)
            .map(|i| {
                format!("/ip4/10.{}.{}.1/tcp/1", i / 256, i % 256)
                    .parse()
                    .unwrap()
            })
            .collect();
        let s = BootstrapSchedule::new(list, Backoff::default(), 3, t0);
        assert_eq!(s.entries.len(), MAX_ENTRIES);
        // Fewer addresses than the target: all of them connected is healthy.
        let mut one = BootstrapSchedule::new(addrs(1), Backoff::default(), 3, t0);
        let (a, _) = one.poll_dial(t0).unwrap();
        one.dial_succeeded(a);
        assert_eq!(one.health(), Health::Healthy);
    }

    #[test]
    fn a_lost_connection_is_redialled() {
        let t0 = crate::platform::now();
        let mut s = BootstrapSchedule::new(addrs(1), Backoff::default(), 3, t0);
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
