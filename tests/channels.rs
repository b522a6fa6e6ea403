//! Group channels with many members in one process: a relay and members over libp2p's memory
//! transport (real swarms, noise, yamux, gossipsub; no sockets), plus interception tests in the
//! manner of keep-core's: dropped, replayed, altered, forged and outsider messages.
#![cfg(not(target_arch = "wasm32"))]

use std::{cell::RefCell, collections::HashMap, rc::Rc, time::Duration};

use futures::StreamExt;
use keep_light::{
    identity::{Address, OperatorKey},
    net::{
        channel::{group_topic, Channel, ChannelConfig, Received, Registry},
        retransmit::Strategy,
        EventReceiver, Node, NodeConfig, NodeEvent, NodeHandle, Role, Router,
    },
    wire::{self, signature, Envelope},
};
use libp2p::PeerId;

const HELLO: &str = "test.Hello";

#[derive(Clone, PartialEq, prost::Message)]
struct Hello {
    #[prost(uint64, tag = "1")]
    n: u64,
}

/// What one member's handler saw: sender → how many times.
type Seen = Rc<RefCell<HashMap<Address, u32>>>;

async fn start_relay() -> (NodeHandle, EventReceiver, String) {
    start_relay_with(Router::Gossipsub).await
}

async fn start_relay_with(router: Router) -> (NodeHandle, EventReceiver, String) {
    let config = NodeConfig::new(OperatorKey::generate())
        .with_router(router)
        .with_role(Role::Relay)
        .with_listen(vec!["/memory/0".parse().unwrap()]);
    let (relay, mut events) = Node::start(config).await.unwrap();
    let address = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(NodeEvent::Listening { address })) => break address,
            Ok(Some(_)) => {}
            other => panic!("relay did not listen: {other:?}"),
        }
    };
    (relay, events, address)
}

async fn start_member(key: OperatorKey, relay: &str) -> (NodeHandle, EventReceiver) {
    start_member_with(key, relay, Router::Gossipsub).await
}

async fn start_member_with(
    key: OperatorKey,
    relay: &str,
    router: Router,
) -> (NodeHandle, EventReceiver) {
    let config = NodeConfig::new(key)
        .with_router(router)
        .with_bootstrap(vec![relay.to_owned()]);
    Node::start(config).await.unwrap()
}

async fn open(node: &NodeHandle, members: &[Address]) -> (Channel, Seen) {
    let seen: Seen = Rc::default();
    let mut registry = Registry::new();
    let sink = seen.clone();
    registry.register(HELLO, move |m: Received<Hello>| {
        *sink.borrow_mut().entry(m.sender).or_default() += 1;
    });
    let config = ChannelConfig::new(group_topic(members)).with_members(members.iter().copied());
    (Channel::open(node, config, registry).await.unwrap(), seen)
}

/// Ticks every channel (republishing what is due) and runs handlers until `done` or `rounds`
/// ticks of 100 ms have passed; returns whether `done` held.
async fn drive(channels: &mut [Channel], rounds: usize, done: impl Fn() -> bool) -> bool {
    for _ in 0..rounds {
        for channel in channels.iter_mut() {
            channel.tick().await;
            channel.drain();
        }
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn sixty_four_members_each_receive_every_other_members_message_exactly_once() {
    every_member_hears_every_other_once(64, Router::Gossipsub).await;
}

#[tokio::test]
async fn floodsub_routing_delivers_each_message_exactly_once_too() {
    every_member_hears_every_other_once(16, Router::Floodsub).await;
}

/// `n` members behind one relay, all routing with `router`, each send one message at once.
async fn every_member_hears_every_other_once(n: usize, router: Router) {
    let (relay_node, _relay_events, relay) = start_relay_with(router).await;
    let keys: Vec<OperatorKey> = (0..n).map(|_| OperatorKey::generate()).collect();
    let members: Vec<Address> = keys.iter().map(|k| k.address()).collect();
    let mut nodes = Vec::new();
    let mut channels = Vec::new();
    let mut seen = Vec::new();
    for key in keys {
        let (node, events) = start_member_with(key, &relay, router).await;
        let (channel, counts) = open(&node, &members).await;
        nodes.push((node, events));
        channels.push(channel);
        seen.push(counts);
    }
    for (i, channel) in channels.iter_mut().enumerate() {
        // Sent before the meshes have formed: retransmission on every tick gets it through.
        let _ = channel
            .send_retransmitted(
                "round-1",
                HELLO,
                &Hello { n: i as u64 },
                Strategy::EveryTick,
            )
            .await;
    }
    let everyone = || seen.iter().all(|s| s.borrow().len() == n - 1);
    assert!(
        drive(&mut channels, 900, everyone).await,
        "not every member heard everyone"
    );
    // More ticks of retransmission, past gossipsub's duplicate cache (5 s): the late copies
    // are new to gossipsub and reach the channels' (sender, sequence) de-duplication, so
    // handlers still see each message once.
    drive(&mut channels, 60, || false).await;
    // The route taken: gossipsub's relay meshes every member; floodsub meshes nobody and
    // floods to all.
    let meshed = relay_node.mesh_peers(&group_topic(&members)).await;
    match router {
        Router::Gossipsub => assert_eq!(meshed, n),
        Router::Floodsub => assert_eq!(meshed, 0),
    }
    for (i, counts) in seen.iter().enumerate() {
        let counts = counts.borrow();
        assert!(!counts.contains_key(&members[i]), "member {i} heard itself");
        assert!(
            counts.values().all(|&n| n == 1),
            "member {i} saw a duplicate: {counts:?}"
        );
    }
    let duplicates: u64 = futures::future::join_all(nodes.iter().map(|(n, _)| n.counters()))
        .await
        .iter()
        .map(|c| c.get("duplicate").copied().unwrap_or(0))
        .sum();
    assert!(
        duplicates > 0,
        "retransmitted copies reached the nodes and were dropped there"
    );
}

/// Publishes `bytes` on `topic` from `node` until it goes out (a peer is in the topic).
async fn publish_raw_until_sent(node: &NodeHandle, topic: &str, bytes: Vec<u8>) {
    for _ in 0..100 {
        if node.republish(topic, bytes.clone()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("could not publish on {topic}");
}

/// An envelope signed by `sender` for `topic`.
fn envelope(
    sender: &OperatorKey,
    topic: &str,
    kind: &str,
    payload: Vec<u8>,
    sequence: u64,
) -> Vec<u8> {
    let mut envelope = Envelope {
        r#type: kind.into(),
        payload,
        sequence,
        ..Default::default()
    };
    signature::sign(&sender.signing_key(), topic, &mut envelope);
    wire::encode_envelope(&envelope, wire::DEFAULT_MAX_MESSAGE_SIZE).unwrap()
}

/// The rejections reported so far: (reason, forwarder, author, forwarder penalised).
fn rejections(events: &mut EventReceiver) -> Vec<(&'static str, PeerId, Option<Address>, bool)> {
    std::iter::from_fn(|| events.try_recv().ok())
        .filter_map(|event| match event {
            NodeEvent::Rejected {
                reason,
                from,
                author,
                penalised,
                ..
            } => Some((
                reason,
                from.parse().unwrap(),
                author.map(|a| a.parse().unwrap()),
                penalised,
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn interception_outsider_forged_altered_replayed_and_dropped_messages() {
    let (relay_node, mut relay_events, relay) = start_relay().await;
    let (honest, mallory, outsider) = (
        OperatorKey::generate(),
        OperatorKey::generate(),
        OperatorKey::generate(),
    );
    let (late_key, receiver_key) = (OperatorKey::generate(), OperatorKey::generate());
    let members = vec![
        honest.address(),
        mallory.address(),
        late_key.address(),
        receiver_key.address(),
    ];
    let topic = group_topic(&members);

    let (receiver, mut receiver_events) = start_member(receiver_key, &relay).await;
    let (mut receiver_channel, received) = open(&receiver, &members).await;
    let (honest_node, _e1) = start_member(honest.clone(), &relay).await;
    let (mut honest_channel, _) = open(&honest_node, &members).await;
    let (mallory_node, _e2) = start_member(mallory.clone(), &relay).await;
    mallory_node.join(&topic);
    let (outsider_node, _e3) = start_member(outsider.clone(), &relay).await;
    outsider_node.join(&topic);

    // Mallory, a member, misbehaves: an unknown type, a payload that is not a Hello, then a
    // genuine Hello, then 130 more so that a replay of the first falls out of the window.
    let hello = |n| prost::Message::encode_to_vec(&Hello { n });
    let signed = |kind, payload, sequence| envelope(&mallory, &topic, kind, payload, sequence);
    let mallory_sends = |bytes| publish_raw_until_sent(&mallory_node, &topic, bytes);
    mallory_sends(signed("test.Nope", hello(1), 1)).await;
    mallory_sends(signed(HELLO, vec![0xff; 3], 2)).await;
    mallory_sends(signed(HELLO, hello(3), 3)).await;
    for sequence in 4..=134 {
        mallory_sends(signed(HELLO, hello(sequence), sequence)).await;
    }
    // Only once all of them are in is sequence 3 out of the window: signatures are checked in
    // a pool, so a message can overtake the ones sent just before it.
    let all_in = || received.borrow().get(&mallory.address()) == Some(&132);
    assert!(
        drive(std::slice::from_mut(&mut receiver_channel), 200, all_in).await,
        "Mallory's genuine Hellos never all arrived"
    );
    // A replay: sequence 3 again, with a new payload (the same bytes again would be one
    // message to gossipsub, dropped as its duplicate).
    mallory_sends(signed(HELLO, hello(300), 3)).await;
    // Forged: an envelope Mallory signed, claiming the honest member as sender.
    let mut forged =
        wire::decode_envelope(&signed(HELLO, hello(9), 9), wire::DEFAULT_MAX_MESSAGE_SIZE).unwrap();
    forged.sender = honest.address().as_bytes().to_vec();
    mallory_sends(wire::encode_envelope(&forged, wire::DEFAULT_MAX_MESSAGE_SIZE).unwrap()).await;
    // An outsider (not in the member list) sends a well-formed Hello.
    publish_raw_until_sent(
        &outsider_node,
        &topic,
        envelope(&outsider, &topic, HELLO, hello(1), 1),
    )
    .await;

    // Dropped: the honest member sends before the late member has joined; retransmission on
    // ticks delivers it once the late member is there.
    let _ = honest_channel
        .send_retransmitted("round", HELLO, &Hello { n: 7 }, Strategy::EveryTick)
        .await;
    let (late_node, _e4) = start_member(late_key, &relay).await;
    let (late_channel, late_received) = open(&late_node, &members).await;
    let mut channels = vec![receiver_channel, honest_channel, late_channel];
    let settled = || {
        late_received.borrow().get(&honest.address()) == Some(&1)
            && received.borrow().get(&mallory.address()) == Some(&132)
    };
    assert!(
        drive(&mut channels, 200, settled).await,
        "late member never got the message"
    );
    receiver_channel = channels.remove(0);
    receiver_channel.drain();

    // The forgery dies at the relay (the signature is checked by every node); the channel
    // checks (membership, type, payload, replay) run at the members.
    let relay_counts = relay_node.counters().await;
    assert_eq!(
        relay_counts.get("bad_signature"),
        Some(&1),
        "{relay_counts:?}"
    );
    let reasons = [
        "unknown_type",
        "undecodable_payload",
        "replay",
        "non_member",
    ];
    let mut counts = receiver.counters().await;
    for _ in 0..100 {
        if reasons.iter().all(|reason| counts.contains_key(*reason)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        counts = receiver.counters().await;
    }
    for reason in reasons {
        assert_eq!(counts.get(reason), Some(&1), "{reason}: {counts:?}");
    }
    // Blame: the members' refusals name the author and spare the relay, which forwarded in
    // good faith (it knows no groups); the relay's own refusal of the forgery penalises Mallory,
    // who handed it over directly (its author is unknown: no signature holds).
    let (relay_peer, mallory_peer) = (relay_node.peer_id(), mallory_node.peer_id());
    let mut at_receiver = rejections(&mut receiver_events);
    at_receiver.sort();
    let by = |author: Address, reason| (reason, relay_peer, Some(author), false);
    assert_eq!(
        at_receiver,
        vec![
            by(outsider.address(), "non_member"),
            by(mallory.address(), "replay"),
            by(mallory.address(), "undecodable_payload"),
            by(mallory.address(), "unknown_type"),
        ]
    );
    assert_eq!(
        rejections(&mut relay_events),
        vec![("bad_signature", mallory_peer, None, true)]
    );

    // Handlers saw only good messages: Mallory's 132 genuine Hellos (3..=134), the honest
    // member's one, nothing from the outsider, the forgery or the replay.
    let received = received.borrow();
    assert_eq!(received.get(&mallory.address()), Some(&132));
    assert_eq!(received.get(&honest.address()), Some(&1));
    assert_eq!(received.get(&outsider.address()), None);
}

#[tokio::test]
async fn a_restarted_member_is_heard_again() {
    let (_relay_node, _relay_events, relay) = start_relay().await;
    let (sender_key, receiver_key) = (OperatorKey::generate(), OperatorKey::generate());
    let members = vec![sender_key.address(), receiver_key.address()];
    let (receiver, _r) = start_member(receiver_key, &relay).await;
    let (mut receiver_channel, received) = open(&receiver, &members).await;

    for round in 0..2u64 {
        // The same key each time: a restart. Its sequence numbers must not start over, or the
        // receiver would drop the new message as a duplicate of the old one.
        let (sender, _s) = start_member(sender_key.clone(), &relay).await;
        let (mut sender_channel, _) = open(&sender, &members).await;
        let _ = sender_channel
            .send_retransmitted("r", HELLO, &Hello { n: round }, Strategy::EveryTick)
            .await;
        let mut channels = vec![receiver_channel, sender_channel];
        let want = round as u32 + 1;
        let heard = || received.borrow().get(&sender_key.address()) == Some(&want);
        assert!(
            drive(&mut channels, 200, heard).await,
            "round {round} not heard"
        );
        let sender_channel = channels.pop().unwrap();
        receiver_channel = channels.pop().unwrap();
        sender_channel.close();
        sender.shutdown().await;
    }
}

#[tokio::test]
async fn an_application_validator_runs_before_acceptance_and_rejects_as_invalid() {
    let (_relay_node, _relay_events, relay) = start_relay().await;
    let (sender_key, receiver_key) = (OperatorKey::generate(), OperatorKey::generate());
    let members = vec![sender_key.address(), receiver_key.address()];
    let (sender, _s) = start_member(sender_key.clone(), &relay).await;
    let (mut sender_channel, _) = open(&sender, &members).await;
    let (receiver, _r) = start_member(receiver_key, &relay).await;

    // The receiver's validator is asynchronous (it waits, as a pairing check off the hot path
    // would) and accepts only even numbers; the handler must see only what it accepted.
    let handled: Rc<RefCell<Vec<u64>>> = Rc::default();
    let validated: Rc<RefCell<Vec<u64>>> = Rc::default();
    let mut registry = Registry::new();
    let (sink, seen) = (handled.clone(), validated.clone());
    registry.register_validated(
        HELLO,
        move |m: Received<Hello>| {
            seen.borrow_mut().push(m.message.n);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if m.message.n.is_multiple_of(2) {
                    Ok(())
                } else {
                    Err(format!("{} is odd", m.message.n))
                }
            }
        },
        move |m: Received<Hello>| sink.borrow_mut().push(m.message.n),
    );
    let config = ChannelConfig::new(group_topic(&members))
        .with_members(members.clone())
        .with_max_validations(2);
    let mut receiver_channel = Channel::open(&receiver, config, registry).await.unwrap();

    for n in [2u64, 3, 4] {
        let _ = sender_channel
            .send_retransmitted("r", HELLO, &Hello { n }, Strategy::EveryTick)
            .await;
    }
    let mut refused = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while handled.borrow().len() < 2 || refused.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "validated {:?}",
            validated.borrow()
        );
        sender_channel.tick().await;
        if let Ok(Some(Err(e))) =
            tokio::time::timeout(Duration::from_millis(100), receiver_channel.next()).await
        {
            refused.push(e.reason());
        }
    }
    let mut handled = handled.borrow().clone();
    handled.sort();
    assert_eq!(handled, vec![2, 4]);
    assert_eq!(refused, vec!["invalid"]);
    assert_eq!(receiver.counters().await.get("invalid"), Some(&1));
}
