//! Attestation exchange (`/keep-light/attest/1`) and the peer → operator map it feeds.
//!
//! # Overview
//! Right after the first connection to a peer, a node whose identity is a wallet-delegated session
//! key sends its [`Attestation`] as a request; the receiver verifies it (the attestation must name
//! the connecting peer, and the configured chain) and answers with its verdict. A node whose peer
//! ID *is* its operator key sends nothing: its operator is derived from the peer ID.
//!
//! [`PeerOperators`] is the sans-IO record of what each connected peer is known to be: its
//! operator address and how that is known. The firewall and membership filters consult it.
//!
//! [`Attest`] is the behaviour the node runs: the request-response protocol, with the
//! exchange done inside it (send on a peer's first connection, verify what arrives, answer,
//! count refusals). It reports [`Event`]s: who attested (the node hands it to the firewall,
//! which keeps the [`PeerOperators`]), refusals, our own attestation's fate, and an
//! [`Event::Offence`] for a refused attestation once its answer has gone out.
//!
//! # Usage
//! `connected(peer)` on the first connection, `attested(peer, verified)` when an attestation
//! verifies, `disconnected(peer)` when the last connection closes, `operator(peer, now)` to ask:
//! ```
//! use keep_light::{identity::OperatorKey, net::attest::PeerOperators, platform};
//! let key = OperatorKey::generate();
//! let mut peers = PeerOperators::default();
//! peers.connected(key.peer_id());
//! assert_eq!(peers.operator(&key.peer_id(), platform::utc_now()), Some(key.address()));
//! ```

use std::{
    collections::{HashMap, VecDeque},
    task::{Context, Poll},
    time::Duration,
};

use libp2p::{
    request_response,
    swarm::{
        ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    PeerId, StreamProtocol,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    types::{Counts, Offence},
    wrap::forward_connection_hooks,
};
use crate::{
    identity::{
        attestation::{self, Attestation, Expect, Verified},
        Address,
    },
    platform,
};

/// The request-response protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/keep-light/attest/1");
/// Requests and responses are tiny; cap what a peer can make us read.
pub const MAX_FRAME: u64 = 16 * 1024;

/// Sent by a session-keyed node right after connecting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestRequest {
    /// The sender's delegation.
    pub attestation: Attestation,
}

/// The receiver's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestResponse {
    /// Whether the attestation verified.
    pub accepted: bool,
    /// The refusal reason (`expired`, `wrong_peer`, …) when not accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The behaviour type, JSON on the wire (the attestation is JSON already).
pub type Behaviour = request_response::json::Behaviour<AttestRequest, AttestResponse>;

/// Builds the behaviour with [`MAX_FRAME`] limits.
pub fn behaviour() -> Behaviour {
    let codec = request_response::json::codec::Codec::default()
        .set_request_size_maximum(MAX_FRAME)
        .set_response_size_maximum(MAX_FRAME);
    request_response::Behaviour::with_codec(
        codec,
        [(PROTOCOL, request_response::ProtocolSupport::Full)],
        request_response::Config::default(),
    )
}

/// How a peer's operator is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerIdentity {
    /// The peer ID is a secp256k1 operator key: its address is the operator.
    OwnKey(Address),
    /// A verified attestation delegates `operator`'s identity to this peer until `expires_at`.
    Attested {
        /// The wallet address.
        operator: Address,
        /// When the delegation ends.
        expires_at: OffsetDateTime,
    },
    /// Neither (not a secp256k1 peer ID, and no attestation).
    Unknown,
}

/// What each connected peer is known to be. Bounded by the number of connected peers.
#[derive(Debug, Default)]
pub struct PeerOperators {
    peers: HashMap<PeerId, PeerIdentity>,
}

impl PeerOperators {
    /// Records a newly connected peer (its own key is the first guess).
    pub fn connected(&mut self, peer: PeerId) {
        self.peers.entry(peer).or_insert_with(|| {
            Address::from_peer_id(&peer).map_or(PeerIdentity::Unknown, PeerIdentity::OwnKey)
        });
    }

    /// Records a verified attestation for `peer` (the caller checked it names `peer`).
    pub fn attested(&mut self, peer: PeerId, verified: &Verified) {
        self.peers.insert(
            peer,
            PeerIdentity::Attested {
                operator: verified.operator,
                expires_at: verified.expires_at,
            },
        );
    }

    /// Forgets a peer whose last connection closed.
    pub fn disconnected(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// How `peer` is known; an expired attestation counts as none.
    pub fn identity(&self, peer: &PeerId, now: OffsetDateTime) -> PeerIdentity {
        match self.peers.get(peer) {
            Some(PeerIdentity::Attested { expires_at, .. }) if now >= *expires_at => {
                PeerIdentity::Unknown
            }
            Some(identity) => *identity,
            None => PeerIdentity::Unknown,
        }
    }

    /// The operator address behind `peer`, if known and current.
    pub fn operator(&self, peer: &PeerId, now: OffsetDateTime) -> Option<Address> {
        match self.identity(peer, now) {
            PeerIdentity::OwnKey(address)
            | PeerIdentity::Attested {
                operator: address, ..
            } => Some(address),
            PeerIdentity::Unknown => None,
        }
    }
}

/// What [`Attest`] counts: refused attestations by reason (`AttestationError::reason`).
pub const COUNTERS: &[&str] = &[
    "bad_checksum",
    "expired",
    "malformed",
    "malformed_signature",
    "no_expiration",
    "no_peer_resource",
    "not_yet_valid",
    "signer_mismatch",
    "too_large",
    "wrong_chain",
    "wrong_peer",
    "wrong_v",
];

/// How long a peer whose attestation we refused gets to read our answer before its ban.
pub const BAN_GRACE: Duration = Duration::from_millis(500);

/// What [`Attest`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `peer`'s attestation verified: it acts for `verified.operator` until it expires.
    Attested { peer: PeerId, verified: Verified },
    /// `peer`'s attestation was refused; `total` counts refusals for this reason.
    Refused {
        peer: PeerId,
        reason: &'static str,
        detail: String,
        total: u64,
    },
    /// A peer's verdict on our attestation.
    Acknowledged {
        peer: PeerId,
        accepted: bool,
        reason: Option<String>,
    },
    /// Our attestation got no answer (peer without the protocol, timeout, closed connection).
    Failed { peer: PeerId, error: String },
    /// `peer`'s attestation was refused ([`Offence::Attestation`]): ban it `after` this long.
    Offence {
        peer: PeerId,
        offence: Offence,
        after: Duration,
    },
}

/// The attestation exchange; see the module docs.
pub struct Attest {
    inner: Behaviour,
    /// Ours, sent to each new peer (none when our key is our operator key).
    attestation: Option<Attestation>,
    /// The chain attestations must name, when set.
    chain_id: Option<u64>,
    refusals: Counts,
    /// Refused peers whose answer has not gone out yet, with the refusal reason.
    answering: HashMap<PeerId, &'static str>,
    out: VecDeque<Event>,
}

impl Attest {
    /// Sends `attestation` (if any) to every new peer; accepts attestations naming `chain_id`
    /// (any chain when `None`).
    pub fn new(attestation: Option<Attestation>, chain_id: Option<u64>) -> Self {
        Self {
            inner: behaviour(),
            attestation,
            chain_id,
            refusals: Counts::new(COUNTERS),
            answering: HashMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Refused attestations by reason.
    pub fn counts(&self) -> &Counts {
        &self.refusals
    }

    fn on_inner(&mut self, event: request_response::Event<AttestRequest, AttestResponse>) {
        use request_response::{Event as Inner, Message};
        match event {
            Inner::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                let response = self.verify(peer, &request.attestation);
                // The peer may have gone already; nothing to do then.
                let _ = self.inner.send_response(channel, response);
            }
            Inner::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => self.out.push_back(Event::Acknowledged {
                peer,
                accepted: response.accepted,
                reason: response.reason,
            }),
            Inner::OutboundFailure { peer, error, .. } => self.out.push_back(Event::Failed {
                peer,
                error: error.to_string(),
            }),
            Inner::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound attestation failed");
                if let Some(reason) = self.answering.remove(&peer) {
                    self.out.push_back(Event::Offence {
                        peer,
                        offence: Offence::Attestation(reason),
                        after: Duration::ZERO,
                    });
                }
            }
            Inner::ResponseSent { peer, .. } => {
                // Written is not yet read: closing the connection now could swallow it.
                if let Some(reason) = self.answering.remove(&peer) {
                    self.out.push_back(Event::Offence {
                        peer,
                        offence: Offence::Attestation(reason),
                        after: BAN_GRACE,
                    });
                }
            }
        }
    }

    fn verify(&mut self, peer: PeerId, attestation: &Attestation) -> AttestResponse {
        let mut expect = Expect::new().with_peer(peer);
        if let Some(chain_id) = self.chain_id {
            expect = expect.with_chain_id(chain_id);
        }
        match attestation::verify(attestation, platform::utc_now(), &expect) {
            Ok(verified) => {
                tracing::info!(%peer, operator = %verified.operator, "peer attested");
                self.out.push_back(Event::Attested { peer, verified });
                AttestResponse {
                    accepted: true,
                    reason: None,
                }
            }
            Err(error) => {
                let reason = error.reason();
                let total = self.refusals.add(reason, 1);
                tracing::warn!(%peer, reason, %error, "attestation rejected");
                self.answering.insert(peer, reason);
                self.out.push_back(Event::Refused {
                    peer,
                    reason,
                    detail: error.to_string(),
                    total,
                });
                AttestResponse {
                    accepted: false,
                    reason: Some(reason.to_owned()),
                }
            }
        }
    }
}

// Every hook goes to the request-response behaviour unchanged (a hook left out would fail
// silently); connection events are looked at on the way, its events taken in `poll`.
impl NetworkBehaviour for Attest {
    type ConnectionHandler = <Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = Event;

    forward_connection_hooks!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(e) = &event {
            if e.remaining_established == 0 {
                self.answering.remove(&e.peer_id);
            }
        }
        self.inner.on_swarm_event(event);
        // After the inner behaviour knows the connection, so the request can go out on it.
        if let FromSwarm::ConnectionEstablished(e) = event {
            if let (0, Some(attestation)) = (e.other_established, &self.attestation) {
                self.inner.send_request(
                    &e.peer_id,
                    AttestRequest {
                        attestation: attestation.clone(),
                    },
                );
            }
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => self.on_inner(event),
                Poll::Ready(other) => {
                    return Poll::Ready(other.map_out(|_| unreachable!("taken above")));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{attestation, OperatorKey};
    use std::time::Duration;

    #[test]
    fn own_keys_attestations_expiry_and_disconnects() {
        let wallet = OperatorKey::from_bytes(&[1; 32]).unwrap();
        let session = OperatorKey::from_bytes(&[2; 32]).unwrap();
        let now = attestation::parse_time("2026-11-26T10:00:00Z").unwrap();
        let mut peers = PeerOperators::default();
        peers.connected(session.peer_id());
        assert_eq!(
            peers.operator(&session.peer_id(), now),
            Some(session.address())
        );
        let att = attestation::create(
            &wallet,
            &session.peer_id(),
            1,
            "localhost",
            now,
            Duration::from_secs(60),
            "abcdefgh1",
        )
        .unwrap();
        let verified = attestation::verify(&att, now, &attestation::Expect::new()).unwrap();
        peers.attested(session.peer_id(), &verified);
        // A later `connected` (second connection) keeps the attestation.
        peers.connected(session.peer_id());
        assert_eq!(
            peers.operator(&session.peer_id(), now),
            Some(wallet.address())
        );
        let later = now + Duration::from_secs(60);
        assert_eq!(
            peers.identity(&session.peer_id(), later),
            PeerIdentity::Unknown
        );
        peers.disconnected(&session.peer_id());
        assert_eq!(peers.operator(&session.peer_id(), now), None);
    }
}

// The shell against real swarms: tokio and the memory transport exist only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod shell_tests {
    use futures::StreamExt as _;
    use libp2p::swarm::SwarmEvent;

    use super::*;
    use crate::identity::OperatorKey;
    use crate::net::test_support::{memory_address, memory_swarm};

    fn swarm(key: &OperatorKey, attest: Attest) -> libp2p::Swarm<Attest> {
        memory_swarm(key.libp2p_keypair(), attest)
    }

    /// Connects a session-keyed node sending `attestation` to a verifier; returns what each
    /// side reported once the verifier has judged and the sender heard the verdict.
    async fn exchange(session: &OperatorKey, attestation: Attestation) -> (Vec<Event>, Vec<Event>) {
        let address = memory_address();
        let mut verifier = swarm(&OperatorKey::generate(), Attest::new(None, Some(1)));
        verifier.listen_on(address.clone()).unwrap();
        let mut sender = swarm(session, Attest::new(Some(attestation), None));
        sender.dial(address).unwrap();
        let (mut judged, mut heard) = (Vec::new(), Vec::new());
        let wait = async {
            // The verifier's verdict (and, when refused, the offence) and the sender's answer.
            while !heard
                .iter()
                .any(|e| matches!(e, Event::Acknowledged { .. }))
                || !judged
                    .iter()
                    .any(|e| matches!(e, Event::Attested { .. } | Event::Offence { .. }))
            {
                tokio::select! {
                    event = verifier.select_next_some() => if let SwarmEvent::Behaviour(e) = event { judged.push(e) },
                    event = sender.select_next_some() => if let SwarmEvent::Behaviour(e) = event { heard.push(e) },
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .expect("the exchange finished");
        (judged, heard)
    }

    #[tokio::test]
    async fn an_attestation_is_sent_on_connecting_verified_and_answered() {
        let (wallet, session) = (OperatorKey::generate(), OperatorKey::generate());
        let now = platform::utc_now();
        let attestation = attestation::create(
            &wallet,
            &session.peer_id(),
            1,
            "localhost",
            now,
            Duration::from_secs(600),
            "abcdefgh1",
        )
        .unwrap();
        let (judged, heard) = exchange(&session, attestation).await;
        assert!(matches!(&judged[..], [Event::Attested { peer, verified }]
            if *peer == session.peer_id() && verified.operator == wallet.address()));
        assert!(matches!(
            &heard[..],
            [Event::Acknowledged {
                accepted: true,
                reason: None,
                ..
            }]
        ));
    }

    #[tokio::test]
    async fn a_refused_attestation_is_counted_answered_then_an_offence_after_the_grace() {
        let (wallet, session) = (OperatorKey::generate(), OperatorKey::generate());
        let now = platform::utc_now();
        // For another chain than the verifier's.
        let attestation = attestation::create(
            &wallet,
            &session.peer_id(),
            5,
            "localhost",
            now,
            Duration::from_secs(600),
            "abcdefgh1",
        )
        .unwrap();
        let (judged, heard) = exchange(&session, attestation).await;
        assert!(matches!(&judged[..], [
            Event::Refused { reason: "wrong_chain", total: 1, .. },
            Event::Offence { offence: Offence::Attestation("wrong_chain"), after, .. },
        ] if *after == BAN_GRACE));
        assert!(
            matches!(&heard[..], [Event::Acknowledged { accepted: false, reason: Some(r), .. }]
            if r == "wrong_chain")
        );
    }
}
