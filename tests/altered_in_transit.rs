//! A message whose payload is changed after it was signed, sent to a real relay by a peer that
//! speaks gossipsub's wire protocol by hand (the interceptor), ahead of the original: refused
//! for its signature (`bad_signature`, the interceptor banned), while the original, forwarded
//! afterwards by an honest member, is still delivered.
//!
//! The altered payload is itself a valid text from the same sender, so nothing but the
//! envelope signature can tell it apart. Gossipsub runs anonymous (wire v1): frames carry no
//! libp2p author, sequence number or signature, and a message's id is a hash of its bytes, so
//! the altered copy does not shadow the original.
#![cfg(not(target_arch = "wasm32"))]

use std::time::Duration;

use futures::{channel::mpsc, StreamExt};
use keep_light::{
    identity::OperatorKey,
    net::{EventReceiver, Node, NodeConfig, NodeEvent, Role},
    wire::{signature, Envelope},
};
use libp2p::{swarm::SwarmEvent, Multiaddr};
use prost::Message as _;

#[path = "support/meshsub.rs"]
mod meshsub;
use meshsub::{anonymous, raw_behaviour, Rpc};

const TOPIC: &str = "keep-light/test/altered/1";
/// The envelope of a text from `key`, signed for [`TOPIC`].
fn signed_text(key: &OperatorKey, sequence: u64, text: &str) -> Envelope {
    let mut envelope = Envelope {
        r#type: "net.Text".into(),
        payload: text.as_bytes().to_vec(),
        sequence,
        ..Default::default()
    };
    signature::sign(&key.signing_key(), TOPIC, &mut envelope);
    envelope
}

/// An anonymous pubsub message (the wire-v1 form) carrying `envelope`.
fn frame(envelope: &Envelope) -> Vec<u8> {
    Rpc {
        publish: vec![anonymous(TOPIC, envelope.encode_to_vec())],
    }
    .encode_length_delimited_to_vec()
}

/// The interceptor: a bare libp2p peer (`key`) connected to `relay` that sends each frame it
/// is given on a stream of its own.
async fn start_interceptor(key: &OperatorKey, relay: Multiaddr) -> mpsc::UnboundedSender<Vec<u8>> {
    let behaviour = raw_behaviour();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair())
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm.dial(relay).unwrap();
    let relay_peer = loop {
        match tokio::time::timeout(Duration::from_secs(10), swarm.next()).await {
            Ok(Some(SwarmEvent::ConnectionEstablished { peer_id, .. })) => break peer_id,
            Ok(Some(_)) => {}
            other => panic!("the interceptor did not connect: {other:?}"),
        }
    };
    let (frames, mut to_send) = mpsc::unbounded::<Vec<u8>>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                frame = to_send.next() => match frame {
                    Some(frame) => {
                        swarm.behaviour_mut().send_request(&relay_peer, frame);
                    }
                    None => return,
                },
                _ = swarm.next() => {}
            }
        }
    });
    frames
}

/// The next text delivered on `events` within `timeout`.
async fn next_text(events: &mut EventReceiver, timeout: Duration) -> Option<String> {
    tokio::time::timeout(timeout, async {
        while let Some(event) = events.next().await {
            if let NodeEvent::Message { data, .. } = event {
                return Some(String::from_utf8_lossy(&data).into_owned());
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_changed_in_transit_is_refused_and_banned_while_the_original_is_delivered() {
    let (relay, mut relay_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_role(Role::Relay)
            .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]),
    )
    .await
    .unwrap();
    let address = loop {
        match tokio::time::timeout(Duration::from_secs(10), relay_events.next()).await {
            Ok(Some(NodeEvent::Listening { address })) => break address,
            Ok(Some(_)) => {}
            other => panic!("relay did not listen: {other:?}"),
        }
    };
    let (_listener, mut listener_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![address.clone()])
            .with_topics(vec![TOPIC.into()]),
    )
    .await
    .unwrap();
    let (member, _member_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![address.clone()])
            .with_topics(vec![TOPIC.into()]),
    )
    .await
    .unwrap();
    let key = OperatorKey::generate();
    let frames = start_interceptor(&key, address.parse().unwrap()).await;

    // Hand-built anonymous messages get through (the relay routes the topic once the listener
    // has joined it: resend until then).
    let mut sequence = 0;
    let mut delivered = None;
    for _ in 0..50 {
        sequence += 1;
        frames
            .unbounded_send(frame(&signed_text(&key, sequence, "unaltered")))
            .unwrap();
        delivered = next_text(&mut listener_events, Duration::from_millis(300)).await;
        if delivered.is_some() {
            break;
        }
    }
    assert_eq!(delivered.as_deref(), Some("unaltered"));

    // The interceptor alters a message in transit and sends its copy first: refused for its
    // signature and banned, at the relay, before anything is forwarded.
    let original = signed_text(&key, sequence + 1, "original");
    let mut altered = original.clone();
    altered.payload = b"altered".to_vec();
    frames.unbounded_send(frame(&altered)).unwrap();
    let interceptor = key.peer_id().to_string();
    let (mut rejected, mut banned) = (false, false);
    while !(rejected && banned) {
        match tokio::time::timeout(Duration::from_secs(10), relay_events.next()).await {
            Ok(Some(NodeEvent::Rejected {
                reason,
                from,
                author,
                penalised,
                ..
            })) => {
                assert_eq!(
                    (reason, from.as_str(), author, penalised),
                    ("bad_signature", interceptor.as_str(), None, true)
                );
                rejected = true;
            }
            Ok(Some(NodeEvent::Banned { peer, reason, .. })) => {
                assert_eq!(
                    (peer, reason.as_str()),
                    (interceptor.clone(), "bad_signature")
                );
                banned = true;
            }
            Ok(Some(_)) => {}
            other => panic!("no rejection and ban at the relay: {other:?}"),
        }
    }

    // The original, forwarded as it is by an honest member, is still delivered, once.
    let bytes = original.encode_to_vec();
    for _ in 0..50 {
        if member.republish(TOPIC, bytes.clone()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut texts = Vec::new();
    while let Some(text) = next_text(&mut listener_events, Duration::from_secs(3)).await {
        texts.push(text);
    }
    assert_eq!(texts, vec!["original".to_owned()]);
    let counters = relay.counters().await;
    assert_eq!(counters.get("bad_signature"), Some(&1), "{counters:?}");
    assert_eq!(counters.get("undecodable"), None, "{counters:?}");
}

/// Starts a node from `config` and returns it with its first listen address.
async fn start_listening(
    config: NodeConfig,
) -> (keep_light::net::NodeHandle, EventReceiver, String) {
    let (node, mut events) = Node::start(config).await.unwrap();
    let address = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(NodeEvent::Listening { address })) => break address,
            Ok(Some(_)) => {}
            other => panic!("no listen address: {other:?}"),
        }
    };
    (node, events, address)
}

/// A flooder connected straight to a member sends 20,000 messages whose signatures are junk,
/// in frames of 100 on one stream, while three honest members send 1,000 texts each through a relay: the
/// member bans the flooder at its first junk message and delivers every honest text once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_junk_signature_flood_gets_its_sender_banned_while_every_honest_text_arrives() {
    const HONEST: usize = 3;
    const TEXTS: usize = 1_000;
    let tcp = || vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (_relay, _relay_events, relay) = start_listening(
        NodeConfig::new(OperatorKey::generate())
            .with_role(Role::Relay)
            .with_listen(tcp()),
    )
    .await;
    let (listener, mut events, direct) = start_listening(
        NodeConfig::new(OperatorKey::generate())
            .with_listen(tcp())
            .with_bootstrap(vec![relay.clone()])
            .with_topics(vec![TOPIC.into()]),
    )
    .await;
    let mut honest = Vec::new();
    for _ in 0..HONEST {
        let (node, _events) = Node::start(
            NodeConfig::new(OperatorKey::generate())
                .with_bootstrap(vec![relay.clone()])
                .with_topics(vec![TOPIC.into()]),
        )
        .await
        .unwrap();
        honest.push((node, _events));
    }
    // Every honest member reaches the listener before the burst (the meshes have formed).
    for (i, (node, _)) in honest.iter().enumerate() {
        let warm = format!("warm-{i}");
        let mut heard = false;
        for _ in 0..100 {
            let _ = node.publish(TOPIC, warm.clone().into_bytes()).await;
            if next_text(&mut events, Duration::from_millis(200))
                .await
                .as_deref()
                == Some(&warm)
            {
                heard = true;
                break;
            }
        }
        assert!(heard, "honest member {i} never reached the listener");
    }

    let flooder = OperatorKey::generate();
    let frames = start_interceptor(&flooder, direct.parse().unwrap()).await;
    let junk: Vec<Vec<u8>> = (0..200u64)
        .map(|frame| {
            let publish = (0..100u64)
                .map(|i| {
                    let mut envelope = signed_text(&flooder, 1 + frame * 100 + i, "junk");
                    envelope.signature[..64].copy_from_slice(&[0x5a; 64]);
                    anonymous(TOPIC, envelope.encode_to_vec())
                })
                .collect();
            Rpc { publish }.encode_length_delimited_to_vec()
        })
        .collect();
    // All on one stream: gossipsub takes a few inbound streams per connection, then refuses more.
    frames.unbounded_send(junk.concat()).unwrap();
    for (i, (node, _)) in honest.iter().enumerate() {
        for n in 0..TEXTS {
            node.publish(TOPIC, format!("h{i}-{n}").into_bytes())
                .await
                .unwrap();
        }
    }

    let flooder_peer = flooder.peer_id().to_string();
    let mut texts = std::collections::HashSet::new();
    let mut banned = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while texts.len() < HONEST * TEXTS || !banned {
        let Ok(event) = tokio::time::timeout_at(deadline, events.next()).await else {
            panic!(
                "{} of {} honest texts, flooder banned: {banned}; {:?}",
                texts.len(),
                HONEST * TEXTS,
                listener.counters().await
            )
        };
        let event = event.expect("the listener runs");
        match event {
            NodeEvent::Message { data, .. } => {
                let text = String::from_utf8(data).unwrap();
                assert_ne!(text, "junk", "a junk message was delivered");
                if text.starts_with('h') {
                    assert!(texts.insert(text.clone()), "{text} delivered twice");
                }
            }
            NodeEvent::Banned { peer, reason, .. } if peer == flooder_peer => {
                assert_eq!(reason, "bad_signature");
                banned = true;
            }
            _ => {}
        }
    }
    let counters = listener.counters().await;
    assert!(
        counters.get("bad_signature").copied().unwrap_or(0) >= 1,
        "{counters:?}"
    );
}
