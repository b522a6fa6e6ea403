//! Native multi-node tests over real loopback TCP and WebSocket connections: a relay and member
//! nodes in one process, each with its own swarm.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use futures::StreamExt;
use keep_light::{
    identity::{attestation, OperatorKey},
    net::{EventReceiver, Node, NodeConfig, NodeEvent, NodeHandle, Role},
    wire::{self, Envelope},
};
use prost::Message as _;

const TOPIC: &str = "keep-light/test/1";

async fn next_matching<T>(
    events: &mut EventReceiver,
    timeout: Duration,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> Option<T> {
    tokio::time::timeout(timeout, async {
        while let Some(event) = events.next().await {
            if let Some(found) = pick(&event) {
                return Some(found);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// A relay listening on loopback TCP and WebSocket; returns (tcp, ws) addresses.
async fn start_relay() -> (NodeHandle, EventReceiver, String, String) {
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_listen(vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/0/ws".parse().unwrap(),
        ]);
    let (relay, mut events) = Node::start(config).await.unwrap();
    let (mut tcp, mut ws) = (None, None);
    while tcp.is_none() || ws.is_none() {
        let address = next_matching(&mut events, Duration::from_secs(10), |e| match e {
            NodeEvent::Listening { address } => Some(address.clone()),
            _ => None,
        })
        .await
        .expect("relay listens");
        if address.contains("/ws/") {
            ws = Some(address);
        } else {
            tcp = Some(address);
        }
    }
    (relay, events, tcp.unwrap(), ws.unwrap())
}

async fn start_member(bootstrap: Vec<String>) -> (NodeHandle, EventReceiver) {
    let config = NodeConfig::new(OperatorKey::generate())
        .with_bootstrap(bootstrap)
        .with_topics(vec![TOPIC.into()]);
    Node::start(config).await.unwrap()
}

/// Publishes `text` from `from` until `to` receives it (the mesh forms within a heartbeat or
/// two); returns the received event.
async fn deliver(from: &NodeHandle, to: &mut EventReceiver, text: &str) -> NodeEvent {
    for _ in 0..50 {
        let _ = from.publish(TOPIC, text.as_bytes().to_vec()).await;
        let got = next_matching(to, Duration::from_millis(300), |e| match e {
            NodeEvent::Message { data, .. } if data == text.as_bytes() => Some(e.clone()),
            _ => None,
        })
        .await;
        if let Some(event) = got {
            return event;
        }
    }
    panic!("{text:?} was never delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_tcp_and_websocket_exchange_signed_messages() {
    let (_relay, _relay_events, tcp, ws) = start_relay().await;
    let (a, mut a_events) = start_member(vec![tcp]).await;
    let (b, mut b_events) = start_member(vec![ws]).await;

    let event = deliver(&a, &mut b_events, "hello from a").await;
    let NodeEvent::Message {
        from,
        sender,
        topic,
        kind,
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(from, a.peer_id().to_string());
    assert_eq!(sender, a.address().to_string());
    assert_eq!(topic, TOPIC);
    assert_eq!(kind, keep_light::net::node::TEXT_TYPE);

    let event = deliver(&b, &mut a_events, "hello from b").await;
    assert!(matches!(event, NodeEvent::Message { from, .. } if from == b.peer_id().to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_garbage_and_oversize_messages_are_rejected_and_counted() {
    let (_relay, mut relay_events, tcp, _ws) = start_relay().await;
    let (bad, _bad_events) = start_member(vec![tcp.clone()]).await;
    let (_good, mut good_events) = start_member(vec![tcp]).await;
    deliver(&bad, &mut good_events, "warm-up").await;

    // An envelope claiming another operator as sender.
    let spoofed = Envelope {
        r#type: "net.Text".into(),
        payload: b"i am someone else".to_vec(),
        sender: OperatorKey::generate().address().as_bytes().to_vec(),
        sequence: 1,
        group: Vec::new(),
    }
    .encode_to_vec();
    bad.publish_raw(TOPIC, spoofed).await.unwrap();
    bad.publish_raw(TOPIC, vec![0x0a, 0xff, 0xff, 0x01])
        .await
        .unwrap();
    bad.publish_raw(TOPIC, vec![0u8; wire::DEFAULT_MAX_MESSAGE_SIZE + 100])
        .await
        .unwrap();

    let mut reasons = Vec::new();
    while reasons.len() < 3 {
        let reason = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
            NodeEvent::Rejected { reason, total, .. } => Some((*reason, *total)),
            _ => None,
        })
        .await
        .expect("the relay rejects each bad message");
        reasons.push(reason);
    }
    reasons.sort();
    assert_eq!(
        reasons,
        vec![("oversize", 1), ("spoofed_sender", 1), ("undecodable", 1)]
    );

    // The relay keeps serving, and none of the bad messages reached the good member.
    let after = "still serving";
    bad.publish(TOPIC, after.as_bytes().to_vec()).await.unwrap();
    let first = next_matching(&mut good_events, Duration::from_secs(10), |e| match e {
        NodeEvent::Message { data, .. } => Some(data.clone()),
        _ => None,
    })
    .await
    .expect("a valid message after the bad ones is delivered");
    assert_eq!(first, after.as_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bootstrap_entries_are_reported_and_the_good_one_is_used() {
    let (_relay, _relay_events, tcp, _ws) = start_relay().await;
    // Port 1 on loopback refuses connections.
    let (_member, mut events) = start_member(vec![
        "definitely not a multiaddr".into(),
        "/ip4/127.0.0.1/tcp/1".into(),
        tcp,
    ])
    .await;
    let (mut invalid, mut failed, mut connected) = (false, false, false);
    while !(invalid && failed && connected) {
        let event = next_matching(&mut events, Duration::from_secs(10), |e| Some(e.clone()))
            .await
            .expect("events keep coming");
        match event {
            NodeEvent::BootstrapInvalid { address, .. } => {
                assert_eq!(address, "definitely not a multiaddr");
                invalid = true;
            }
            NodeEvent::DialFailed {
                address,
                retry_in_ms,
                ..
            } => {
                assert_eq!(address, "/ip4/127.0.0.1/tcp/1");
                assert!(retry_in_ms > 0);
                failed = true;
            }
            NodeEvent::Connected { .. } => connected = true,
            _ => {}
        }
    }
}

/// A browser-style member: a session key whose attestation, signed by `wallet`, names `named`.
async fn start_attested_member(
    relay: String,
    wallet: &OperatorKey,
    session: OperatorKey,
    named: libp2p::PeerId,
    chain_id: u64,
) -> (NodeHandle, EventReceiver) {
    let now = keep_light::platform::utc_now();
    let attestation = attestation::create(
        wallet,
        &named,
        chain_id,
        "localhost",
        now,
        Duration::from_secs(600),
        "abcdefgh12",
    )
    .unwrap();
    let config = NodeConfig::new(session)
        .with_bootstrap(vec![relay])
        .with_attestation(attestation);
    Node::start(config).await.unwrap()
}

#[tokio::test]
async fn relay_maps_an_attested_session_key_to_its_wallet_and_refuses_bad_attestations() {
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_chain_id(31337)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0/ws".parse().unwrap()]);
    let (relay, mut relay_events) = Node::start(config).await.unwrap();
    let ws = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
        NodeEvent::Listening { address } => Some(address.clone()),
        _ => None,
    })
    .await
    .unwrap();
    let wallet = OperatorKey::generate();

    // A good delegation: the relay maps the session peer to the wallet; the member hears "accepted".
    let session = OperatorKey::generate();
    let session_peer = session.peer_id();
    let (_good, mut good_events) =
        start_attested_member(ws.clone(), &wallet, session, session_peer, 31337).await;
    let attested = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
        NodeEvent::PeerAttested { peer, operator, .. } => Some((peer.clone(), operator.clone())),
        _ => None,
    })
    .await
    .expect("relay verifies the attestation");
    assert_eq!(
        attested,
        (session_peer.to_string(), wallet.address().to_string())
    );
    let ack = next_matching(&mut good_events, Duration::from_secs(10), |e| match e {
        NodeEvent::AttestationAcknowledged { accepted, .. } => Some(*accepted),
        _ => None,
    })
    .await;
    assert_eq!(ack, Some(true));
    assert_eq!(
        relay.peer_operator(session_peer).await,
        Some(wallet.address())
    );

    // A delegation naming another peer, and one for another chain: refused, each with its reason.
    for (named_other, chain_id, reason) in [(true, 31337, "wrong_peer"), (false, 1, "wrong_chain")]
    {
        let session = OperatorKey::generate();
        let peer = session.peer_id();
        let named = if named_other {
            OperatorKey::generate().peer_id()
        } else {
            peer
        };
        let (_bad, mut bad_events) =
            start_attested_member(ws.clone(), &wallet, session, named, chain_id).await;
        let rejected = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
            NodeEvent::AttestationRejected {
                peer: p, reason, ..
            } if *p == peer.to_string() => Some(*reason),
            _ => None,
        })
        .await;
        assert_eq!(rejected, Some(reason));
        let ack = next_matching(&mut bad_events, Duration::from_secs(10), |e| match e {
            NodeEvent::AttestationAcknowledged {
                accepted, reason, ..
            } => Some((*accepted, reason.clone())),
            _ => None,
        })
        .await;
        assert_eq!(ack, Some((false, Some(reason.to_string()))));
        // Unattested, the peer counts as its own key's operator, never the wallet's.
        assert_eq!(
            relay.peer_operator(peer).await,
            keep_light::identity::Address::from_peer_id(&peer)
        );
    }
}
