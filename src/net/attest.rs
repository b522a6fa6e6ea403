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
//! # Usage (by the node's event loop)
//! `connected(peer)` on the first connection, `attested(peer, verified)` when an attestation
//! verifies, `disconnected(peer)` when the last connection closes, `operator(peer, now)` to ask.

use std::collections::HashMap;

use libp2p::{request_response, PeerId, StreamProtocol};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::identity::{
    attestation::{Attestation, Verified},
    Address,
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
