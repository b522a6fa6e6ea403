//! [`NodeConfig`]: everything [`super::Node::start`] is told, with defaults by role.
//!
//! # Overview
//! A builder over one operator key: `NodeConfig::new(key)` gives a member with no addresses,
//! peers or topics; each `with_*` call sets one thing (role, listen and bootstrap addresses,
//! topics, firewall policy and chain, limits, timers). Fields stay private to `net`:
//! `Node::start` hands each part what it needs.
//!
//! # Usage
//! ```
//! use keep_light::{identity::OperatorKey, net::{NodeConfig, Role}};
//! let config = NodeConfig::new(OperatorKey::generate())
//!     .with_role(Role::Relay)
//!     .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
//! # let _ = config;
//! ```

use std::{sync::Arc, time::Duration};

use libp2p::{connection_limits::ConnectionLimits, Multiaddr, PeerId};

use super::{
    behaviour::CircuitLimits,
    bootstrap::Backoff,
    firewall::{BanPolicy, BanRecord, Policy, ATTESTATION_GRACE, RECOGNISED_FOR, UNRECOGNISED_FOR},
    types::{Role, Router},
};
use crate::{
    chain::Chain,
    identity::{attestation::Attestation, Address, OperatorKey},
    wire,
};

/// Node settings. Defaults (from [`NodeConfig::new`]): role [`Role::Member`], no listen
/// addresses, no bootstrap peers, no topics, 64 KiB message limit, default [`Backoff`], no
/// attestation (the key is the operator key), attestations from any chain accepted, gossipsub,
/// the default [`BanPolicy`], the role's connection limits and an open firewall.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub(super) key: OperatorKey,
    pub(super) role: Role,
    pub(super) listen: Vec<Multiaddr>,
    pub(super) bootstrap: Vec<String>,
    pub(super) topics: Vec<String>,
    pub(super) max_message_size: usize,
    pub(super) backoff: Backoff,
    pub(super) attestation: Option<Attestation>,
    pub(super) chain_id: Option<u64>,
    pub(super) router: Router,
    pub(super) ban_policy: BanPolicy,
    pub(super) bans: Vec<BanRecord>,
    pub(super) limits: Option<ConnectionLimits>,
    pub(super) ip_limits: Option<(usize, usize)>,
    pub(super) policy: Policy,
    pub(super) allowed: Vec<PeerId>,
    pub(super) attestation_grace: Duration,
    pub(super) bootstrap_target: usize,
    pub(super) bootstrap_store: Option<String>,
    pub(super) rate_limit: Option<(u32, u32)>,
    pub(super) sender_rate_limit: Option<(u32, u32)>,
    pub(super) circuits: CircuitLimits,
    pub(super) circuit_listen: bool,
    pub(super) webrtc_certificate: Option<String>,
    pub(super) external: Vec<Multiaddr>,
    pub(super) chain: Option<ChainRef>,
    pub(super) recognition: (Duration, Duration),
    /// Ping interval and timeout; by role when not set.
    pub(super) ping: Option<(Duration, Duration)>,
}

/// The chain a `staked` firewall asks (a newtype so the config stays `Debug`).
#[derive(Clone)]
pub(super) struct ChainRef(pub(super) Arc<dyn Chain>);

impl std::fmt::Debug for ChainRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chain")
    }
}

impl NodeConfig {
    /// A member node with identity `key`.
    pub fn new(key: OperatorKey) -> Self {
        Self {
            key,
            role: Role::Member,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            topics: Vec::new(),
            max_message_size: wire::DEFAULT_MAX_MESSAGE_SIZE,
            backoff: Backoff::default(),
            attestation: None,
            chain_id: None,
            router: Router::default(),
            ban_policy: BanPolicy::default(),
            bans: Vec::new(),
            limits: None,
            ip_limits: None,
            policy: Policy::Open,
            allowed: Vec::new(),
            attestation_grace: ATTESTATION_GRACE,
            bootstrap_target: 3,
            bootstrap_store: None,
            rate_limit: None,
            sender_rate_limit: None,
            circuits: CircuitLimits::default(),
            circuit_listen: false,
            webrtc_certificate: None,
            external: Vec::new(),
            chain: None,
            recognition: (RECOGNISED_FOR, UNRECOGNISED_FOR),
            ping: None,
        }
    }

    /// How often connections are pinged and how long an answer may take (default by role:
    /// [`behaviour::default_ping`](super::behaviour::default_ping)). After two failed pings in a row the connection is closed.
    pub fn with_ping(mut self, interval: Duration, timeout: Duration) -> Self {
        self.ping = Some((interval, timeout));
        self
    }

    /// The chain that recognises operators under [`Policy::Staked`] (required by it).
    pub fn with_chain(mut self, chain: Arc<dyn Chain>) -> Self {
        self.chain = Some(ChainRef(chain));
        self
    }

    /// How long the chain's yes and no about an operator are trusted (default
    /// [`RECOGNISED_FOR`] 12 h, [`UNRECOGNISED_FOR`] 1 h). An admitted peer is checked again
    /// when its yes runs out.
    pub fn with_recognition_ttl(mut self, recognised: Duration, unrecognised: Duration) -> Self {
        self.recognition = (recognised, unrecognised);
        self
    }

    /// The addresses others reach this relay at (behind NAT, a port forward). Without any, a
    /// relay takes its listen addresses as reachable.
    pub fn with_external(mut self, addresses: Vec<Multiaddr>) -> Self {
        self.external = addresses;
        self
    }

    /// The WebRTC-direct certificate (PEM, from [`transport::new_webrtc_certificate`](super::transport::new_webrtc_certificate)); its
    /// hash is part of the `/webrtc-direct/certhash/…` address, so a relay keeps it to keep its
    /// address. Without one a fresh certificate is made.
    pub fn with_webrtc_certificate(mut self, pem: String) -> Self {
        self.webrtc_certificate = Some(pem);
        self
    }

    /// Circuit limits a relay grants (default [`CircuitLimits::default`]: 1 h, 64 MiB).
    pub fn with_circuit_limits(mut self, limits: CircuitLimits) -> Self {
        self.circuits = limits;
        self
    }

    /// Listens through every bootstrap relay it connects to (`<relay>/p2p-circuit`), so peers
    /// that cannot dial it directly, such as other tabs, reach it through the relay.
    pub fn with_circuit_listen(mut self, listen: bool) -> Self {
        self.circuit_listen = listen;
        self
    }

    /// Bans a peer that forwards more than `per_second` pubsub messages a second, sustained,
    /// or more than `burst` at once (default: relays 2,000/s with bursts of 20,000, a whole
    /// 64-member group burst and its retransmissions; members none, their relays aggregate).
    pub fn with_rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.rate_limit = Some((per_second, burst));
        self
    }

    /// Forwards no more than `per_second` messages a second of one author (envelope sender),
    /// sustained, or `burst` at once, whichever peers they come from: the rest is dropped
    /// unchecked and unforwarded (`sender_rate_limited`), punishing no forwarder (default:
    /// relays 1,000/s with bursts of 10,000; members none). Only messages whose signature
    /// held count, so forgeries in an author's name cannot spend its share.
    pub fn with_sender_rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.sender_rate_limit = Some((per_second, burst));
        self
    }

    /// How many bootstrap relays to keep connected (default 3; browsers use 2).
    pub fn with_bootstrap_target(mut self, target: usize) -> Self {
        self.bootstrap_target = target;
        self
    }

    /// Remembers the relays that worked under this storage key ([`platform::store`](crate::platform::store): the
    /// page's `localStorage` in wasm) and tries them first on the next start.
    pub fn with_bootstrap_store(mut self, key: &str) -> Self {
        self.bootstrap_store = Some(key.to_owned());
        self
    }

    /// Who may connect ([`Policy`]); `allowed` peers (other relays) are always admitted.
    pub fn with_firewall(mut self, policy: Policy, allowed: Vec<PeerId>) -> Self {
        self.policy = policy;
        self.allowed = allowed;
        self
    }

    /// How long a peer has to attest under [`Policy::Attested`] (default [`ATTESTATION_GRACE`]).
    pub fn with_attestation_grace(mut self, grace: Duration) -> Self {
        self.attestation_grace = grace;
        self
    }

    /// How offences ban peers (default: 1 min, 10 min, 1 h; see [`BanPolicy`]).
    pub fn with_ban_policy(mut self, policy: BanPolicy) -> Self {
        self.ban_policy = policy;
        self
    }

    /// Bans and offences from an earlier run ([`NodeHandle::bans`](super::NodeHandle::bans)); running ones apply at once.
    pub fn with_bans(mut self, records: Vec<BanRecord>) -> Self {
        self.bans = records;
        self
    }

    /// Connection limits (default: [`behaviour::default_limits`](super::behaviour::default_limits) of the role).
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Inbound connections one remote IP may have: `pending` in their handshake and
    /// `established` (default: [`behaviour::default_ip_limits`](super::behaviour::default_ip_limits) of the role: relays 32 and 256).
    pub fn with_ip_limits(mut self, pending: usize, established: usize) -> Self {
        self.ip_limits = Some((pending, established));
        self
    }

    /// The operator address of the configured key.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The network's pubsub router (every node of a network must use the same).
    pub fn with_router(mut self, router: Router) -> Self {
        self.router = router;
        self
    }

    /// The wallet's delegation to this node's key, sent to every peer right after connecting
    /// (browser session keys). Without one, peers take the key itself as the operator.
    pub fn with_attestation(mut self, attestation: Attestation) -> Self {
        self.attestation = Some(attestation);
        self
    }

    /// Only accept peers' attestations for this chain id.
    pub fn with_chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = Some(chain_id);
        self
    }

    /// Sets the role.
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Addresses to listen on (native only; browsers cannot listen).
    pub fn with_listen(mut self, listen: Vec<Multiaddr>) -> Self {
        self.listen = listen;
        self
    }

    /// Bootstrap addresses as text: a malformed one is reported as an event, not a start error,
    /// so one bad entry in a list never stops the node.
    pub fn with_bootstrap(mut self, bootstrap: Vec<String>) -> Self {
        self.bootstrap = bootstrap;
        self
    }

    /// Topics to join at start.
    pub fn with_topics(mut self, topics: Vec<String>) -> Self {
        self.topics = topics;
        self
    }

    /// The envelope size limit, checked before decoding.
    pub fn with_max_message_size(mut self, max: usize) -> Self {
        self.max_message_size = max;
        self
    }

    /// Bootstrap redial backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }
}
