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
//!
//! # Overview
//! [`Liveness`] is the sans-IO core (`now` in, [`Liveness::poll_timeout`], overdue connections
//! out). [`Watchdog`] is the behaviour the node runs: libp2p's ping, with every ping answer fed
//! to the core, and the overdue connections closed on its own timer (counted as
//! `unresponsive`). It emits nothing: what it does shows as a closed connection.
//!
//! # Usage
//! ```
//! use std::time::Duration;
//! use keep_light::{net::liveness::Liveness, platform};
//! let (t0, second) = (platform::now(), Duration::from_secs(1));
//! let mut live = Liveness::new(5 * second, 10 * second);
//! live.alive(1u32, t0);
//! assert!(live.overdue(t0 + 15 * second).is_empty());
//! assert_eq!(live.overdue(t0 + 16 * second), [1]);
//! ```

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, VecDeque},
    convert::Infallible,
    hash::Hash,
    task::{Context, Poll},
    time::Duration,
};

use libp2p::{
    ping,
    swarm::{
        CloseConnection, ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
    PeerId,
};

use super::{types::Counts, wrap::forward_connection_hooks};
use crate::platform::{self, Deadline, Instant};

/// What [`Watchdog`] counts: connections closed because their pings went unanswered.
pub const COUNTERS: &[&str] = &["unresponsive"];

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

/// libp2p's ping, watched: closes a connection whose pings stop being answered; see the
/// module docs.
pub struct Watchdog {
    ping: ping::Behaviour,
    live: Liveness<ConnectionId>,
    peers: HashMap<ConnectionId, PeerId>,
    timer: Deadline,
    /// Overdue connections not yet handed to the swarm to close.
    closing: VecDeque<(PeerId, ConnectionId)>,
    /// Connections closed for silence so far.
    counts: Counts,
}

impl Watchdog {
    /// Pings every `interval`; an answer may take `timeout`.
    pub fn new(interval: Duration, timeout: Duration) -> Self {
        Self {
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(interval)
                    .with_timeout(timeout),
            ),
            live: Liveness::new(interval, timeout),
            peers: HashMap::new(),
            timer: Deadline::default(),
            closing: VecDeque::new(),
            counts: Counts::new(COUNTERS),
        }
    }

    /// Connections closed because their pings went unanswered (`unresponsive`).
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(_) => self.live.alive(event.connection, platform::now()),
            // A peer without ping cannot be judged by it.
            Err(ping::Failure::Unsupported) => self.live.forget(event.connection),
            // Silence is judged by the deadline, not by one failure.
            Err(error) => {
                tracing::debug!(connection = ?event.connection, %error, "ping failed")
            }
        }
    }
}

// Every hook goes to ping unchanged (a hook left out would fail silently); only the connection
// events and ping's own events are looked at on the way.
impl NetworkBehaviour for Watchdog {
    type ConnectionHandler = <ping::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = Infallible;

    forward_connection_hooks!(ping);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match &event {
            FromSwarm::ConnectionEstablished(e) => {
                self.live.alive(e.connection_id, platform::now());
                self.peers.insert(e.connection_id, e.peer_id);
            }
            FromSwarm::ConnectionClosed(e) => {
                self.live.forget(e.connection_id);
                self.peers.remove(&e.connection_id);
            }
            _ => {}
        }
        self.ping.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.ping.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        while let Poll::Ready(out) = self.ping.poll(cx) {
            match out {
                ToSwarm::GenerateEvent(event) => self.on_ping(event),
                // Ping asks the swarm for nothing else today; pass on whatever it may.
                other => {
                    return Poll::Ready(other.map_out(|_| unreachable!("handled above")));
                }
            }
        }
        loop {
            if let Some((peer_id, connection)) = self.closing.pop_front() {
                return Poll::Ready(ToSwarm::CloseConnection {
                    peer_id,
                    connection: CloseConnection::One(connection),
                });
            }
            self.timer.set(self.live.poll_timeout());
            if self.timer.poll(cx).is_pending() {
                return Poll::Pending;
            }
            for connection in self.live.overdue(platform::now()) {
                if let Some(peer) = self.peers.get(&connection) {
                    // Gone without closing (a relay behind WebRTC, a half-open TCP
                    // connection): let go, so the bootstrap and `health` see the loss.
                    self.counts.add("unresponsive", 1);
                    tracing::info!(?connection, %peer, "pings unanswered; closing the connection");
                    self.closing.push_back((*peer, connection));
                }
            }
        }
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

    #[test]
    fn the_watchdog_closes_a_silent_connection_on_its_own_timer_once_then_sleeps() {
        use libp2p::core::{transport::PortUse, ConnectedPoint, Endpoint};
        let mut dog = Watchdog::new(Duration::from_millis(20), Duration::from_millis(20));
        let (peer, connection) = (PeerId::random(), ConnectionId::new_unchecked(7));
        let endpoint = ConnectedPoint::Dialer {
            address: "/memory/1".parse().unwrap(),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        dog.on_swarm_event(FromSwarm::ConnectionEstablished(
            libp2p::swarm::behaviour::ConnectionEstablished {
                peer_id: peer,
                connection_id: connection,
                endpoint: &endpoint,
                failed_addresses: &[],
                other_established: 0,
            },
        ));
        // No ping is ever answered (no handler runs here): closed once the limit has passed.
        let started = platform::now();
        let close = futures::executor::block_on(futures::future::poll_fn(|cx| dog.poll(cx)));
        assert!(platform::now() - started >= Duration::from_millis(40) + SLACK);
        assert!(matches!(
            close,
            ToSwarm::CloseConnection { peer_id, connection: CloseConnection::One(id) }
                if peer_id == peer && id == connection
        ));
        assert_eq!(dog.counts().get("unresponsive"), 1);
        // Nothing left to do: polling finds nothing, however often (a fired timer kept
        // would make every poll ready).
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        for _ in 0..1000 {
            assert!(dog.poll(&mut cx).is_pending());
        }
        assert_eq!(dog.counts().get("unresponsive"), 1);
    }
}
