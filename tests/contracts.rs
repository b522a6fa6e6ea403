//! What users of the node see, pinned before the node's insides are rearranged: the JSON of
//! every `NodeEvent` (the CLI's output and what the page's JavaScript receives), the names
//! `NodeHandle::counters` may report, and the public paths other crates and the binaries import.
//! A change here is a change of contract: the CLI docs, `www/` and DESIGN.md section 6 change
//! with it.
// Native: the WebRTC certificate path exists only there.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeMap;

// The public paths, as dependants spell them; a move that forgets its re-export fails here.
#[allow(unused_imports)]
use keep_light::net::{
    bootstrap::{Backoff, Health},
    channel::{dkg_topic, group_topic, Channel, ChannelConfig, MembershipFilter, Received},
    firewall::{BanPolicy, BanRecord, Policy},
    node::{
        EventReceiver, KindSpec, Node, NodeConfig, NodeEvent, NodeHandle, PublishError, Role,
        StartError, COUNTER_NAMES, TEXT_TYPE,
    },
    transport::new_webrtc_certificate,
    Encoded, Router,
};

/// One event of every kind with its JSON line. `every_kind` below does not compile when a kind
/// is added without a line here.
fn events() -> Vec<(NodeEvent, &'static str)> {
    let peer = || "12D3KooWpeer".to_owned();
    vec![
        (
            NodeEvent::Listening {
                address: "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWpeer".into(),
            },
            r#"{"event":"listening","address":"/ip4/127.0.0.1/tcp/1/p2p/12D3KooWpeer"}"#,
        ),
        (
            NodeEvent::Connected { peer: peer() },
            r#"{"event":"connected","peer":"12D3KooWpeer"}"#,
        ),
        (
            NodeEvent::Disconnected { peer: peer() },
            r#"{"event":"disconnected","peer":"12D3KooWpeer"}"#,
        ),
        (
            NodeEvent::Subscribed { topic: "t".into() },
            r#"{"event":"subscribed","topic":"t"}"#,
        ),
        (
            NodeEvent::Unsubscribed { topic: "t".into() },
            r#"{"event":"unsubscribed","topic":"t"}"#,
        ),
        (
            NodeEvent::PeerSubscribed {
                peer: peer(),
                topic: "t".into(),
            },
            r#"{"event":"peer_subscribed","peer":"12D3KooWpeer","topic":"t"}"#,
        ),
        (
            NodeEvent::Message {
                topic: "t".into(),
                from: peer(),
                sender: "0xAb".into(),
                kind: TEXT_TYPE.into(),
                sequence: 7,
                data: b"hi".to_vec(),
            },
            r#"{"event":"message","topic":"t","from":"12D3KooWpeer","sender":"0xAb","type":"net.Text","sequence":7,"data":"hi"}"#,
        ),
        (
            NodeEvent::Message {
                topic: "t".into(),
                from: peer(),
                sender: "0xAb".into(),
                kind: "x.Y".into(),
                sequence: 0,
                data: vec![0xff, 0x00],
            },
            r#"{"event":"message","topic":"t","from":"12D3KooWpeer","sender":"0xAb","type":"x.Y","sequence":0,"data":"0xff00"}"#,
        ),
        (
            NodeEvent::Rejected {
                reason: "non_member",
                from: peer(),
                author: Some("0xAb".into()),
                penalised: true,
                detail: "d".into(),
                total: 2,
            },
            r#"{"event":"rejected","reason":"non_member","from":"12D3KooWpeer","author":"0xAb","penalised":true,"detail":"d","total":2}"#,
        ),
        (
            NodeEvent::Rejected {
                reason: "oversize",
                from: peer(),
                author: None,
                penalised: false,
                detail: "d".into(),
                total: 1,
            },
            r#"{"event":"rejected","reason":"oversize","from":"12D3KooWpeer","penalised":false,"detail":"d","total":1}"#,
        ),
        (
            NodeEvent::Banned {
                peer: peer(),
                reason: "rate_limited".into(),
                duration_ms: 60_000,
                until_ms: 1_800_000_000_000,
                offences: 1,
            },
            r#"{"event":"banned","peer":"12D3KooWpeer","reason":"rate_limited","duration_ms":60000,"until_ms":1800000000000,"offences":1}"#,
        ),
        (
            NodeEvent::Unbanned {
                peer: peer(),
                reason: "expired".into(),
            },
            r#"{"event":"unbanned","peer":"12D3KooWpeer","reason":"expired"}"#,
        ),
        (
            NodeEvent::BootstrapInvalid {
                address: "nope".into(),
                error: "e".into(),
            },
            r#"{"event":"bootstrap_invalid","address":"nope","error":"e"}"#,
        ),
        (
            NodeEvent::BootstrapSkipped {
                invalid: 3,
                over_limit: 4,
            },
            r#"{"event":"bootstrap_skipped","invalid":3,"over_limit":4}"#,
        ),
        (
            NodeEvent::Health {
                state: Health::Degraded,
                relays: 1,
                target: 2,
                transports: BTreeMap::from([("webrtc-direct", 0), ("ws", 1)]),
            },
            r#"{"event":"health","state":"degraded","relays":1,"target":2,"transports":{"webrtc-direct":0,"ws":1}}"#,
        ),
        (
            NodeEvent::DialFailed {
                address: "/dns/x".into(),
                error: "e".into(),
                retry_in_ms: 500,
            },
            r#"{"event":"dial_failed","address":"/dns/x","error":"e","retry_in_ms":500}"#,
        ),
        (
            NodeEvent::PeerAttested {
                peer: peer(),
                operator: "0xAb".into(),
                expires_at: "2027-01-01T00:00:00Z".into(),
            },
            r#"{"event":"peer_attested","peer":"12D3KooWpeer","operator":"0xAb","expires_at":"2027-01-01T00:00:00Z"}"#,
        ),
        (
            NodeEvent::OperatorChecked {
                operator: "0xAb".into(),
                recognised: false,
                stake: "5".into(),
                minimum: "10".into(),
            },
            r#"{"event":"operator_checked","operator":"0xAb","recognised":false,"stake":"5","minimum":"10"}"#,
        ),
        (
            NodeEvent::AttestationRejected {
                peer: peer(),
                reason: "expired",
                detail: "d".into(),
                total: 1,
            },
            r#"{"event":"attestation_rejected","peer":"12D3KooWpeer","reason":"expired","detail":"d","total":1}"#,
        ),
        (
            NodeEvent::AttestationAcknowledged {
                peer: peer(),
                accepted: false,
                reason: Some("wrong_chain".into()),
            },
            r#"{"event":"attestation_acknowledged","peer":"12D3KooWpeer","accepted":false,"reason":"wrong_chain"}"#,
        ),
        (
            NodeEvent::AttestationAcknowledged {
                peer: peer(),
                accepted: true,
                reason: None,
            },
            r#"{"event":"attestation_acknowledged","peer":"12D3KooWpeer","accepted":true}"#,
        ),
        (
            NodeEvent::AttestationFailed {
                peer: peer(),
                error: "e".into(),
            },
            r#"{"event":"attestation_failed","peer":"12D3KooWpeer","error":"e"}"#,
        ),
        (
            NodeEvent::Dropped {
                reason: "overloaded",
                topic: Some("t".into()),
                peer: None,
                count: 1,
                total: 9,
            },
            r#"{"event":"dropped","reason":"overloaded","topic":"t","count":1,"total":9}"#,
        ),
        (
            NodeEvent::Dropped {
                reason: "slow_peer",
                topic: None,
                peer: Some(peer()),
                count: 3,
                total: 3,
            },
            r#"{"event":"dropped","reason":"slow_peer","peer":"12D3KooWpeer","count":3,"total":3}"#,
        ),
    ]
}

/// Every kind's tag, by an exhaustive match: a new kind must be added here and to `events`.
fn tag(event: &NodeEvent) -> &'static str {
    match event {
        NodeEvent::Listening { .. } => "listening",
        NodeEvent::Connected { .. } => "connected",
        NodeEvent::Disconnected { .. } => "disconnected",
        NodeEvent::Subscribed { .. } => "subscribed",
        NodeEvent::Unsubscribed { .. } => "unsubscribed",
        NodeEvent::PeerSubscribed { .. } => "peer_subscribed",
        NodeEvent::Message { .. } => "message",
        NodeEvent::Rejected { .. } => "rejected",
        NodeEvent::Banned { .. } => "banned",
        NodeEvent::Unbanned { .. } => "unbanned",
        NodeEvent::BootstrapInvalid { .. } => "bootstrap_invalid",
        NodeEvent::BootstrapSkipped { .. } => "bootstrap_skipped",
        NodeEvent::Health { .. } => "health",
        NodeEvent::DialFailed { .. } => "dial_failed",
        NodeEvent::PeerAttested { .. } => "peer_attested",
        NodeEvent::OperatorChecked { .. } => "operator_checked",
        NodeEvent::AttestationRejected { .. } => "attestation_rejected",
        NodeEvent::AttestationAcknowledged { .. } => "attestation_acknowledged",
        NodeEvent::AttestationFailed { .. } => "attestation_failed",
        NodeEvent::Dropped { .. } => "dropped",
    }
}

#[test]
fn every_event_kind_serialises_as_the_cli_and_the_page_read_it() {
    for (event, json) in events() {
        assert_eq!(event.to_json(), json);
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(value["event"], tag(&event), "{json}");
    }
}

#[test]
fn every_event_kind_has_a_pinned_line() {
    let pinned: std::collections::BTreeSet<&str> = events().iter().map(|(e, _)| tag(e)).collect();
    assert_eq!(pinned.len(), 20, "one line per kind at least: {pinned:?}");
}

#[test]
fn the_counter_names_are_the_documented_ones() {
    // By concern: messages refused and connections refused or lost; channel outcomes;
    // refused attestations; chain answers (`staked` firewall).
    let expected = [
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
        "channel_closed",
        "delivered",
        "duplicate",
        "forward_expired",
        "held",
        "no_channel",
        "overloaded",
        "slow_peer_dropped",
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
        "chain_unavailable",
        "recognised",
        "unrecognised",
    ];
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    let mut names = COUNTER_NAMES.to_vec();
    names.sort_unstable();
    assert_eq!(names, expected);
}
