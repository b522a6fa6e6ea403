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
//!
//! [`Bootstrap`] is the behaviour the node runs over the schedule: it dials what is due on its
//! own timer, listens through each relay it reaches (when asked to), remembers the relays that
//! worked in the bootstrap store, and reports [`Event::Health`] changes and failed dials.
//!
//! # Usage
//! ```
//! use std::time::Duration;
//! use keep_light::{net::bootstrap::{Backoff, BootstrapSchedule, Health}, platform};
//! let now = platform::now();
//! let relays = vec!["/ip4/127.0.0.1/tcp/4001/ws".parse().unwrap()];
//! let mut schedule = BootstrapSchedule::new(relays, Backoff::default(), 1, now);
//! let (id, _address) = schedule.poll_dial(now).unwrap();
//! let retry = schedule.dial_failed(id, now, 0.5);
//! assert_eq!(schedule.health(), Health::Unhealthy);
//! assert!(schedule.poll_dial(now).is_none());
//! assert_eq!(schedule.poll_timeout(), Some(now + retry));
//! ```

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    convert::Infallible,
    task::{Context, Poll, Waker},
    time::Duration,
};

use libp2p::{
    multiaddr::Protocol,
    swarm::{
        dial_opts::DialOpts, dummy, ConnectionId, FromSwarm, ListenOpts, NetworkBehaviour,
        THandlerInEvent, ToSwarm,
    },
    Multiaddr,
};
use rand::Rng as _;

use super::wrap::dummy_connection_hooks;
use crate::platform::{self, Deadline, Instant};

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

/// Invalid bootstrap addresses reported one by one; the rest are only counted.
pub const INVALID_REPORTED: usize = 8;
/// Relays remembered as good.
const GOOD_RELAYS: usize = 8;
/// Failed dials remembered for [`Bootstrap::dialled`] (the swarm reports a failure at once).
const RECENT_FAILURES: usize = 64;

/// A bootstrap list put in dialling order by [`order`].
#[derive(Debug, Default)]
pub struct Ordered {
    /// The addresses to dial.
    pub addresses: Vec<Multiaddr>,
    /// The first [`INVALID_REPORTED`] unparsable entries, with the parse error.
    pub invalid: Vec<(String, String)>,
    /// Unparsable entries beyond those.
    pub more_invalid: usize,
    /// Addresses beyond [`MAX_ENTRIES`].
    pub over_limit: usize,
}

/// The bootstrap list in dialling order: the relays that worked last time (in `store`, the
/// platform storage key) first, then the configured ones shuffled, without repeats, at most
/// [`MAX_ENTRIES`].
pub fn order(configured: &[String], store: Option<&str>) -> Ordered {
    use rand::seq::SliceRandom as _;
    let remembered: Vec<String> = store
        .and_then(platform::load)
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let mut ordered = Ordered::default();
    let mut parsed = Vec::new();
    for text in configured {
        match text.parse::<Multiaddr>() {
            Ok(addr) => parsed.push(addr),
            Err(e) if ordered.invalid.len() < INVALID_REPORTED => ordered
                .invalid
                .push((text.chars().take(256).collect(), e.to_string())),
            Err(_) => ordered.more_invalid += 1,
        }
    }
    parsed.shuffle(&mut platform::rng());
    // Remembered relays only count while they are still configured.
    let mut addresses: Vec<Multiaddr> = remembered
        .iter()
        .filter_map(|text| text.parse().ok())
        .filter(|addr| parsed.contains(addr))
        .collect();
    for addr in parsed {
        if !addresses.contains(&addr) {
            addresses.push(addr);
        }
    }
    ordered.over_limit = addresses.len().saturating_sub(MAX_ENTRIES);
    addresses.truncate(MAX_ENTRIES);
    ordered.addresses = addresses;
    ordered
}

/// What [`Bootstrap`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The connected relays against the target changed, or the transports in use did.
    Health {
        state: Health,
        relays: usize,
        target: usize,
        transports: BTreeMap<&'static str, usize>,
    },
    /// A bootstrap dial failed; the address is retried after `retry`.
    DialFailed {
        address: Multiaddr,
        error: String,
        retry: Duration,
    },
}

/// The behaviour that runs a [`BootstrapSchedule`]; see the module docs.
pub struct Bootstrap {
    schedule: BootstrapSchedule,
    /// Bootstrap dials under way, and the connections they became.
    dialing: HashMap<ConnectionId, EntryId>,
    established: HashMap<ConnectionId, EntryId>,
    /// The last dials of ours that failed, so the node can tell them from other dials'
    /// failures, which the swarm reports after telling us ([`Bootstrap::dialled`]).
    failed: VecDeque<ConnectionId>,
    /// Whether to listen through each relay once connected to it (`…/p2p-circuit`).
    circuit_listen: bool,
    /// Where the relays that worked are remembered, and them, most recent first.
    store: Option<String>,
    good_relays: Vec<String>,
    /// The last health reported, and the transports in use then.
    health: Option<(Health, BTreeMap<&'static str, usize>)>,
    out: VecDeque<ToSwarm<Event, Infallible>>,
    timer: Deadline,
    waker: Option<Waker>,
}

impl Bootstrap {
    /// Runs `schedule`; with `circuit_listen`, listens through every relay it reaches.
    pub fn new(schedule: BootstrapSchedule, circuit_listen: bool, store: Option<String>) -> Self {
        let mut bootstrap = Self {
            schedule,
            dialing: HashMap::new(),
            established: HashMap::new(),
            failed: VecDeque::new(),
            circuit_listen,
            store,
            good_relays: Vec::new(),
            health: None,
            out: VecDeque::new(),
            timer: Deadline::default(),
            waker: None,
        };
        if !bootstrap.schedule.is_empty() {
            bootstrap.report_health();
        }
        bootstrap
    }

    /// Dials every address that is waiting now (the network came back).
    pub fn retry_now(&mut self) {
        self.schedule.retry_now(platform::now());
        self.wake();
    }

    /// Dials nothing until [`Bootstrap::retry_now`] (the network went away).
    pub fn pause(&mut self) {
        tracing::info!("network offline: bootstrap dials paused");
        self.schedule.pause();
    }

    /// Whether `connection` is a dial of ours (under way, or among the last that failed).
    pub fn dialled(&self, connection: &ConnectionId) -> bool {
        self.dialing.contains_key(connection) || self.failed.contains(connection)
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Queues `health` when the state or the transports in use change.
    fn report_health(&mut self) {
        let current = (self.schedule.health(), self.schedule.transports());
        if self.health.as_ref() != Some(&current) {
            let relays = self.schedule.connected();
            tracing::info!(?current, relays, "bootstrap health");
            self.out.push_back(ToSwarm::GenerateEvent(Event::Health {
                state: current.0,
                relays,
                target: self.schedule.target(),
                transports: current.1.clone(),
            }));
            self.health = Some(current);
        }
    }

    /// Puts the relay of entry `id` first among those tried next start.
    fn remember_good(&mut self, id: EntryId) {
        let (Some(key), Some(address)) = (&self.store, self.schedule.address(id)) else {
            return;
        };
        let address = address.to_string();
        self.good_relays.retain(|a| *a != address);
        self.good_relays.insert(0, address);
        self.good_relays.truncate(GOOD_RELAYS);
        let json = serde_json::to_string(&self.good_relays).unwrap_or_default();
        if let Err(e) = platform::store(key, &json) {
            tracing::debug!(%e, "good relays not stored");
        }
    }

    fn dial_failed(&mut self, id: EntryId, error: String) {
        let retry = self
            .schedule
            .dial_failed(id, platform::now(), platform::rng().gen::<f64>());
        let address = self.schedule.address(id).cloned();
        tracing::warn!(?address, %error, "bootstrap dial failed");
        if let Some(address) = address {
            self.out
                .push_back(ToSwarm::GenerateEvent(Event::DialFailed {
                    address,
                    error,
                    retry,
                }));
        }
    }
}

impl NetworkBehaviour for Bootstrap {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Event;

    dummy_connection_hooks!();

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                let Some(id) = self.dialing.remove(&e.connection_id) else {
                    return;
                };
                self.schedule.dial_succeeded(id);
                self.established.insert(e.connection_id, id);
                if self.circuit_listen {
                    if let Some(relay) = self.schedule.address(id) {
                        // A `listening` event follows once the relay grants the reservation.
                        let circuit = relay.clone().with(Protocol::P2pCircuit);
                        self.out.push_back(ToSwarm::ListenOn {
                            opts: ListenOpts::new(circuit),
                        });
                    }
                }
                self.remember_good(id);
                self.report_health();
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(id) = self.established.remove(&e.connection_id) {
                    self.schedule
                        .disconnected(id, platform::now(), platform::rng().gen::<f64>());
                    self.report_health();
                }
            }
            FromSwarm::DialFailure(e) => {
                if let Some(id) = self.dialing.remove(&e.connection_id) {
                    if self.failed.len() == RECENT_FAILURES {
                        self.failed.pop_front();
                    }
                    self.failed.push_back(e.connection_id);
                    self.dial_failed(id, e.error.to_string());
                }
            }
            _ => {}
        }
        self.wake();
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(out) = self.out.pop_front() {
                return Poll::Ready(out.map_in(|never| match never {}));
            }
            if let Some((id, addr)) = self.schedule.poll_dial(platform::now()) {
                let opts = match addr.iter().last() {
                    Some(Protocol::P2p(peer)) => DialOpts::peer_id(peer)
                        .addresses(vec![addr.clone()])
                        .build(),
                    _ => DialOpts::unknown_peer_id().address(addr).build(),
                };
                self.dialing.insert(opts.connection_id(), id);
                return Poll::Ready(ToSwarm::Dial { opts });
            }
            self.timer.set(self.schedule.poll_timeout());
            if self.timer.poll(cx).is_pending() {
                self.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
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

// The shell against real swarms: tokio and the memory transport exist only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod shell_tests {
    use futures::StreamExt as _;
    use libp2p::swarm::{NetworkBehaviour, SwarmEvent};

    use super::*;
    use crate::net::test_support::{memory_address, memory_swarm};

    fn swarm<B: NetworkBehaviour + Send>(behaviour: B) -> libp2p::Swarm<B> {
        memory_swarm(libp2p::identity::Keypair::generate_ed25519(), behaviour)
    }

    #[tokio::test]
    async fn it_dials_on_its_own_reports_failures_and_health_and_redials_a_lost_relay() {
        // Nobody listens at the second.
        let (up, down) = (memory_address(), memory_address());
        let mut relay = swarm(dummy::Behaviour);
        relay.listen_on(up.clone()).unwrap();
        // The dead address first, so its failure comes before the live one is tried.
        let backoff = Backoff::default().with_base(Duration::from_millis(50));
        let schedule =
            BootstrapSchedule::new(vec![down.clone(), up.clone()], backoff, 1, platform::now());
        let mut node = swarm(Bootstrap::new(schedule, false, None));
        let mut events = Vec::new();
        let mut relay_peer = None;
        // Nobody calls it: the behaviour dials when polled.
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        let mut closed = false;
        loop {
            tokio::select! {
                event = node.select_next_some() => match event {
                    SwarmEvent::Behaviour(event) => {
                        let healthy = matches!(event, Event::Health { state: Health::Healthy, .. });
                        events.push(event);
                        if healthy && !closed {
                            // Lose the relay: the schedule must see it and dial again.
                            closed = true;
                            assert!(node.disconnect_peer_id(relay_peer.unwrap()).is_ok());
                        } else if healthy {
                            break;
                        }
                    }
                    SwarmEvent::ConnectionEstablished { peer_id, .. } => relay_peer = Some(peer_id),
                    _ => {}
                },
                _ = relay.select_next_some() => {}
                _ = &mut deadline => panic!("no second healthy report: {events:?}"),
            }
        }
        assert!(matches!(
            &events[0],
            Event::Health {
                state: Health::Unhealthy,
                relays: 0,
                ..
            }
        ));
        assert!(events.iter().any(|e| matches!(e,
            Event::DialFailed { address, retry, .. } if *address == down && *retry > Duration::ZERO)));
        let states: Vec<Health> = events
            .iter()
            .filter_map(|e| match e {
                Event::Health { state, .. } => Some(*state),
                _ => None,
            })
            .collect();
        assert_eq!(
            states,
            [
                Health::Unhealthy,
                Health::Healthy,
                Health::Unhealthy,
                Health::Healthy
            ]
        );
    }
}
