//! What the node reports: [`NodeEvent`] (one JSON object per event, the CLI's output and what
//! the page's JavaScript receives) and the names of its counters ([`COUNTER_NAMES`]). Both are
//! contracts, pinned by `tests/contracts.rs`.
//!
//! # Overview
//! The parts of the node report in their own types; what the user sees is converted here (the
//! `From` impls) or by the part itself (pubsub reports ready events). Each part declares the
//! counters it keeps; together they are exactly [`COUNTER_NAMES`] (a test in `node.rs`).
//!
//! # Usage
//! ```
//! use keep_light::net::NodeEvent;
//! let event = NodeEvent::Connected { peer: "12D3KooW…".into() };
//! assert_eq!(event.to_json(), r#"{"event":"connected","peer":"12D3KooW…"}"#);
//! ```

use std::collections::BTreeMap;

use futures::channel::mpsc;
use serde::Serialize;

use super::{
    bans,
    bootstrap::{self, Health},
};

/// Everything the node reports. Serialised as one JSON object with an `event` tag, which is the
/// CLI's output format and what the browser API hands to JavaScript.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum NodeEvent {
    /// A listen address is active (full address including `/p2p/<id>`).
    Listening { address: String },
    /// First connection to `peer` established.
    Connected { peer: String },
    /// Last connection to `peer` closed.
    Disconnected { peer: String },
    /// We joined `topic`.
    Subscribed { topic: String },
    /// We left `topic`.
    Unsubscribed { topic: String },
    /// A connected peer joined `topic`: from now on it receives what we publish there.
    PeerSubscribed { peer: String, topic: String },
    /// A validated message on a topic we joined.
    Message {
        topic: String,
        /// The peer ID that forwarded it to us: its author, or a relay (wire v1 pubsub is
        /// anonymous; it says nothing about who wrote the message).
        from: String,
        /// The author: the operator address (EIP-55) whose key signed the envelope.
        sender: String,
        #[serde(rename = "type")]
        kind: String,
        sequence: u64,
        /// UTF-8 text, or 0x-hex when the payload is not UTF-8.
        #[serde(serialize_with = "text_or_hex")]
        data: Vec<u8>,
    },
    /// A message was rejected; `total` is the count for this reason so far. `from` forwarded
    /// it; `author` is the operator address its envelope names as sender: checked by the
    /// signature, except for refusals made before it (`non_member`, `unknown_type`, `replay`:
    /// cheapest first), and absent for `bad_signature`. `penalised` says whether `from` got
    /// gossipsub's Reject (see [`group_acceptance`](super::pubsub::group_acceptance)).
    Rejected {
        reason: &'static str,
        from: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        author: Option<String>,
        penalised: bool,
        detail: String,
        total: u64,
    },
    /// A peer was banned: its connections are closed and new ones refused until `until_ms`
    /// (ms since the Unix epoch). `offences` counts this one; repeats ban for longer.
    Banned {
        peer: String,
        reason: String,
        duration_ms: u64,
        until_ms: u64,
        offences: u32,
    },
    /// A ban ended (expired or lifted); the peer may connect again.
    Unbanned { peer: String, reason: String },
    /// A bootstrap address could not be parsed; it is skipped and the others are used. After
    /// the first few, the rest are summed up in one [`NodeEvent::BootstrapSkipped`].
    BootstrapInvalid { address: String, error: String },
    /// Bootstrap addresses not used: `invalid` beyond those reported one by one, and
    /// `over_limit` beyond the schedule's bound.
    BootstrapSkipped { invalid: usize, over_limit: usize },
    /// The connected relays against the target changed: `unhealthy` (none), `degraded`,
    /// `healthy`.
    Health {
        state: Health,
        relays: usize,
        target: usize,
        /// The connected relays by transport (`{"ws":1,"webrtc-direct":1}`).
        transports: BTreeMap<&'static str, usize>,
    },
    /// A dial failed; a bootstrap address is retried after `retry_in_ms` (0: an application's
    /// dial, not retried; `address` is then the peer dialled, when known).
    DialFailed {
        address: String,
        error: String,
        retry_in_ms: u64,
    },
    /// A peer's attestation verified: `peer` acts for `operator` until `expires_at`.
    PeerAttested {
        peer: String,
        operator: String,
        expires_at: String,
    },
    /// The chain's answer about an operator (`staked` firewall): `recognised` when its stake
    /// (decimal, smallest unit) is at least the minimum.
    OperatorChecked {
        operator: String,
        recognised: bool,
        stake: String,
        minimum: String,
    },
    /// A peer's attestation was refused; `total` counts refusals for this reason.
    AttestationRejected {
        peer: String,
        reason: &'static str,
        detail: String,
        total: u64,
    },
    /// A peer's verdict on our attestation.
    AttestationAcknowledged {
        peer: String,
        accepted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Our attestation got no answer (peer without the protocol, timeout, closed connection).
    AttestationFailed { peer: String, error: String },
    /// Messages were dropped without being invalid: `overloaded` (a channel's queue and
    /// backlog were full), `slow_peer` (gossipsub could not queue messages to `peer` in time).
    /// Retransmission makes up for them; `total` counts this reason so far.
    Dropped {
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        count: u64,
        total: u64,
    },
}

impl NodeEvent {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"event":"error","error":"{e}"}}"#))
    }
}

impl From<bans::Event> for NodeEvent {
    fn from(event: bans::Event) -> Self {
        match event {
            bans::Event::Banned { peer, reason, ban } => Self::Banned {
                peer: peer.to_string(),
                reason,
                duration_ms: ban.duration.as_millis() as u64,
                until_ms: ban.until.as_millis() as u64,
                offences: ban.offences,
            },
            bans::Event::Unbanned { peer, reason } => Self::Unbanned {
                peer: peer.to_string(),
                reason,
            },
        }
    }
}

impl From<bootstrap::Event> for NodeEvent {
    fn from(event: bootstrap::Event) -> Self {
        match event {
            bootstrap::Event::Health {
                state,
                relays,
                target,
                transports,
            } => Self::Health {
                state,
                relays,
                target,
                transports,
            },
            bootstrap::Event::DialFailed {
                address,
                error,
                retry,
            } => Self::DialFailed {
                address: address.to_string(),
                error,
                retry_in_ms: retry.as_millis() as u64,
            },
        }
    }
}

/// Every name [`NodeHandle::counters`](super::NodeHandle::counters) may report (a stable contract, like [`NodeEvent`]).
pub const COUNTER_NAMES: &[&str] = &[
    // Messages refused, connections refused or lost.
    "bad_signature",
    "connection_denied",
    "connection_failed",
    "invalid",
    "ip_limited",
    "non_member",
    "not_admitted",
    "oversize",
    "rate_limited",
    "replay",
    "sender_rate_limited",
    "undecodable",
    "undecodable_payload",
    "unknown_type",
    "unresponsive",
    // Channel outcomes.
    "channel_closed",
    "delivered",
    "duplicate",
    "forward_expired",
    "held",
    "no_channel",
    "overloaded",
    "slow_peer_dropped",
    // Refused attestations (`AttestationError::reason`).
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
    // The chain's answers (`staked` firewall).
    "chain_unavailable",
    "recognised",
    "unrecognised",
];

/// Events from the node, in order. Unbounded for now; the channels issue adds back-pressure.
pub type EventReceiver = mpsc::UnboundedReceiver<NodeEvent>;

fn text_or_hex<S: serde::Serializer>(data: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(data) {
        Ok(text) => s.serialize_str(text),
        Err(_) => s.serialize_str(&format!("0x{}", hex::encode(data))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::types::TEXT_TYPE;

    fn message(data: &[u8]) -> NodeEvent {
        NodeEvent::Message {
            topic: "t".into(),
            from: "p".into(),
            sender: "s".into(),
            kind: TEXT_TYPE.into(),
            sequence: 1,
            data: data.to_vec(),
        }
    }

    #[test]
    fn message_data_is_text_or_hex() {
        assert!(message(b"hi there")
            .to_json()
            .contains(r#""data":"hi there""#));
        assert!(message(&[0xff, 0x00, 0x12])
            .to_json()
            .contains(r#""data":"0xff0012""#));
        assert!(message(b"x")
            .to_json()
            .starts_with(r#"{"event":"message","#));
    }
}
