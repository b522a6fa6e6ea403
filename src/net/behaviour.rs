//! The composed libp2p behaviour of every keep-light node, and the settings of its parts.
//!
//! # Overview
//! [`Behaviour`] is a `#[derive(NetworkBehaviour)]` of one part per concern; the field order is
//! the order of the connection hooks and of polling: bans first (a banned peer costs nothing
//! else), the firewall before pubsub (an admission is known before the peer's messages).
//! [`build`] makes it from the [`Parts`] `Node::start` prepared; [`Behaviour::counts`] gives
//! every part's counters, which the node merges in one place.
//!
//! # Usage
//! `behaviour::build(&keypair, role, parts, limits, ip_limits, circuits, ping)?`, then hand the
//! closure to the swarm builder (`super::transport::build_swarm`), which adds the relay client.

use std::time::Duration;

use libp2p::{
    connection_limits::{self, ConnectionLimits},
    gossipsub, identify,
    identity::Keypair,
    relay,
    swarm::NetworkBehaviour,
};

pub use super::types::Router;
use super::{
    attest::Attest,
    bans::Bans,
    bootstrap::Bootstrap,
    firewall::Firewall,
    ip_limits::{IpLimits, PerIp},
    liveness::Watchdog,
    pubsub::{self, Pubsub},
    relay::RelayServer,
    types::{Counts, Role},
};

/// Protocol name announced over identify.
pub const PROTOCOL_VERSION: &str = "/keep-light/0.1.0";

/// Gossipsub frames may carry a little more than one envelope (signature, key, topic, control):
/// this margin lets slightly oversize envelopes reach our own counted size check instead of
/// being cut off anonymously by the codec.
const FRAME_OVERHEAD: usize = 4 * 1024;

/// Messages queued per connection before gossipsub drops (64 members × 64 messages fit).
const QUEUE_LEN: usize = 8192;

/// Mesh size a relay keeps per topic: every subscriber, up to the relay's connection limit (a
/// relay is the hub its members hang off; beyond its mesh they would get messages only by lazy
/// gossip: the load harness lost a third of a fan-out to 1,000 clients with a mesh of 256).
const RELAY_MESH: usize = 4096;

/// Connection limits by role: small for members (a tab talks to a few relays), large for relays.
pub fn default_limits(role: Role) -> ConnectionLimits {
    match role {
        Role::Member => ConnectionLimits::default()
            .with_max_established(Some(64))
            .with_max_established_per_peer(Some(2))
            .with_max_pending_incoming(Some(16)),
        Role::Relay => ConnectionLimits::default()
            .with_max_established(Some(4096))
            .with_max_established_per_peer(Some(4))
            // A dial storm waits in the handshake queue, bounded, instead of exhausting memory.
            .with_max_pending_incoming(Some(256)),
    }
}

/// Per-address bounds by role: (handshakes pending, connections established) from one IP.
/// A relay's 256 pending handshakes would otherwise all go to one address's dial storm.
pub fn default_ip_limits(role: Role) -> (usize, usize) {
    match role {
        Role::Member => (8, 16),
        Role::Relay => (32, 256),
    }
}

/// What every node runs.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Banned peers: their connections are closed and new ones denied (first, so a banned peer
    /// costs no other behaviour anything).
    pub bans: Bans,
    /// Per remote address, before the global limits, so one address's storm fills only its share.
    pub per_ip: PerIp,
    pub limits: connection_limits::Behaviour,
    /// The admission gate: who may stay, checked on its own timer.
    pub firewall: Firewall,
    /// Gossipsub behind our checks: nothing is forwarded or delivered before they pass.
    pub pubsub: Pubsub,
    pub identify: identify::Behaviour,
    /// Ping, closing connections whose pings go unanswered.
    pub liveness: Watchdog,
    /// Dials the bootstrap relays, keeps the target connected, reports health.
    pub bootstrap: Bootstrap,
    /// `/keep-light/attest/1`: wallet delegations exchanged right after connecting.
    pub attest: Attest,
    /// Circuit relay v2 server: relays only.
    pub relay: RelayServer,
    /// Circuit relay v2 client: reservations on relays (listening on `…/p2p-circuit`) and
    /// dials through them.
    pub relay_client: relay::client::Behaviour,
}

/// Circuit limits a relay grants: libp2p's defaults (2 min, 128 KiB per circuit) cut a
/// browser-to-browser session off almost at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitLimits {
    pub duration: Duration,
    pub bytes: u64,
    pub reservations: usize,
    pub circuits: usize,
}

impl Default for CircuitLimits {
    /// One hour and 64 MiB per circuit, 1,024 reservations, 256 circuits.
    fn default() -> Self {
        Self {
            duration: Duration::from_secs(3600),
            bytes: 64 << 20,
            reservations: 1024,
            circuits: 256,
        }
    }
}

/// The parts of the behaviour that carry what `Node::start` restored or was told (bans, the
/// bootstrap list, our attestation); [`build`] makes the rest.
pub struct Parts {
    pub bans: Bans,
    pub bootstrap: Bootstrap,
    pub attest: Attest,
    pub firewall: Firewall,
    pub pubsub: pubsub::Settings,
    /// Whether a relay takes its listen addresses as external (none were configured).
    pub relay_confirms_listen: bool,
}

impl Behaviour {
    /// Every part's counters, for [`Counts::merge`].
    pub fn counts(&self) -> [&Counts; 4] {
        [
            self.pubsub.counts(),
            self.attest.counts(),
            self.firewall.counts(),
            self.liveness.counts(),
        ]
    }
}

/// Ping (interval, timeout) by role. The node closes a connection whose pings go unanswered
/// (`liveness.rs`): the only sign of a peer gone without closing, which is how a dead relay looks
/// to a tab over WebRTC (UDP), and a half-open TCP connection to anyone. Members ping their few
/// relays often, to notice a dead one soon; a relay pings its thousands of peers less often,
/// and they notice it dying through their own pings. (`examples/relay_load.rs`, whose 1,000
/// clients connect within 2 s, so their pings come in waves: fan-out 19,100 deliveries/s at
/// 15 s everywhere, 13,300 at 5 s everywhere, 15,400 with these.) The timeout is generous, so
/// that a busy event loop is not taken for a dead peer.
pub fn default_ping(role: Role) -> (Duration, Duration) {
    match role {
        Role::Member => (Duration::from_secs(5), Duration::from_secs(10)),
        Role::Relay => (Duration::from_secs(15), Duration::from_secs(10)),
    }
}

/// Builds the behaviour for `role`. (The floodsub router is pubsub's doing: it makes each
/// connected peer explicit.) What can fail is built here; the result completes it with the
/// relay client the swarm builder makes.
pub fn build(
    keypair: &Keypair,
    role: Role,
    parts: Parts,
    limits: ConnectionLimits,
    ip_limits: (usize, usize),
    circuits: CircuitLimits,
    ping: (Duration, Duration),
) -> Result<impl FnOnce(relay::client::Behaviour) -> Behaviour, String> {
    let mut config = gossipsub::ConfigBuilder::default();
    config
        // Wire v1 (DESIGN.md section 4): no libp2p signature or author on the message (the
        // envelope carries its author's signature, checked once per message by pubsub's
        // pipeline, not in the codec per copy), and content-addressed ids, so a message that
        // arrives through two relays is one message.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(pubsub::message_id)
        .duplicate_cache_time(pubsub::DUPLICATE_CACHE_TIME)
        // We answer each message ourselves (size, decode, signature) before it is forwarded.
        .validate_messages()
        .max_transmit_size(parts.pubsub.max_message_size + FRAME_OVERHEAD)
        .flood_publish(true)
        .heartbeat_initial_delay(Duration::from_millis(100))
        .heartbeat_interval(Duration::from_millis(700))
        // Bursts (a 64-member group all publishing at once) must queue, not be dropped: room
        // for a whole group burst per connection, and forwards may wait in it far longer than
        // gossipsub's 1 s default while the CPU catches up (the queue length bounds memory). What still drops is counted
        // (gossipsub's SlowPeer event → `slow_peer_dropped`).
        .connection_handler_queue_len(QUEUE_LEN)
        .forward_queue_duration(Duration::from_secs(30))
        .publish_queue_duration(Duration::from_secs(30));
    match role {
        // A member usually sees only its relays: a mesh of one must be healthy.
        Role::Member => config
            .mesh_n(4)
            .mesh_n_low(1)
            .mesh_n_high(8)
            .mesh_outbound_min(0),
        // A relay is the hub of its members' topics: every subscriber must be in its mesh, or
        // members beyond gossipsub's default D_hi = 12 only get messages by lazy gossip (slow,
        // lossy: keep-core's 64-member groups lost messages, #1138). Relays accept connections
        // and dial none: no outbound quota.
        Role::Relay => config
            .mesh_n_low(RELAY_MESH / 2)
            .mesh_n(RELAY_MESH)
            .mesh_n_high(RELAY_MESH * 2)
            .mesh_outbound_min(0),
    };
    let config = config.build().map_err(|e| e.to_string())?;
    let gossipsub = gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
        .map_err(str::to_string)?;
    let identify = identify::Behaviour::new(
        identify::Config::new(PROTOCOL_VERSION.into(), keypair.public())
            .with_agent_version(format!("keep-light/{}", env!("CARGO_PKG_VERSION"))),
    );
    let relay = (role == Role::Relay).then(|| {
        let peer = keypair.public().to_peer_id();
        relay::Behaviour::new(
            peer,
            relay::Config {
                max_reservations: circuits.reservations,
                max_circuits: circuits.circuits,
                max_circuit_duration: circuits.duration,
                max_circuit_bytes: circuits.bytes,
                ..relay::Config::default()
            },
        )
    });
    Ok(move |relay_client| Behaviour {
        relay: RelayServer::new(relay, parts.relay_confirms_listen),
        relay_client,
        bans: parts.bans,
        per_ip: PerIp(IpLimits::new(ip_limits.0, ip_limits.1)),
        limits: connection_limits::Behaviour::new(limits),
        firewall: parts.firewall,
        pubsub: Pubsub::new(gossipsub, parts.pubsub),
        identify,
        liveness: Watchdog::new(ping.0, ping.1),
        bootstrap: parts.bootstrap,
        attest: parts.attest,
    })
}
