//! Native multi-node tests over real loopback TCP and WebSocket connections: a relay and member
//! nodes in one process, each with its own swarm.
#![cfg(not(target_arch = "wasm32"))]

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::StreamExt;
use keep_light::{
    chain::{
        local::LocalChain,
        rpc::{self, RpcChain},
    },
    identity::{attestation, OperatorKey},
    net::{
        bootstrap::{Backoff, Health},
        firewall::{BanPolicy, Policy},
        EventReceiver, Node, NodeConfig, NodeEvent, NodeHandle, Role, StartError,
    },
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

/// The next ban within 10 s: (peer, reason).
async fn next_ban(events: &mut EventReceiver) -> Option<(String, String)> {
    next_matching(events, Duration::from_secs(10), |e| match e {
        NodeEvent::Banned { peer, reason, .. } => Some((peer.clone(), reason.clone())),
        _ => None,
    })
    .await
}

/// Starts a relay from `config` (one listen address); returns it with that address.
async fn start_relay_from(config: NodeConfig) -> (NodeHandle, EventReceiver, String) {
    let (relay, mut events) = Node::start(config).await.unwrap();
    let address = next_matching(&mut events, Duration::from_secs(10), |e| match e {
        NodeEvent::Listening { address } => Some(address.clone()),
        _ => None,
    })
    .await
    .expect("relay listens");
    (relay, events, address)
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

/// An envelope from `bad`'s node claiming another operator as its sender.
fn spoofed_envelope() -> Vec<u8> {
    Envelope {
        r#type: "net.Text".into(),
        payload: b"i am someone else".to_vec(),
        sender: OperatorKey::generate().address().as_bytes().to_vec(),
        sequence: 1,
        group: Vec::new(),
    }
    .encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_garbage_and_oversize_messages_are_rejected_counted_and_the_forger_banned() {
    let (relay, mut relay_events, tcp, _ws) = start_relay().await;
    let (bad, _bad_events) = start_member(vec![tcp.clone()]).await;
    let (good, mut good_events) = start_member(vec![tcp.clone()]).await;
    deliver(&bad, &mut good_events, "warm-up").await;

    // Garbage first, then the forgery, which gets the forger banned.
    bad.publish_raw(TOPIC, vec![0x0a, 0xff, 0xff, 0x01])
        .await
        .unwrap();
    bad.publish_raw(TOPIC, vec![0u8; wire::DEFAULT_MAX_MESSAGE_SIZE + 100])
        .await
        .unwrap();
    bad.publish_raw(TOPIC, spoofed_envelope()).await.unwrap();

    let mut reasons = Vec::new();
    let mut banned = None;
    while reasons.len() < 3 || banned.is_none() {
        let event = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
            NodeEvent::Rejected { .. } | NodeEvent::Banned { .. } => Some(e.clone()),
            _ => None,
        })
        .await
        .expect("the relay rejects each bad message and bans the forger");
        match event {
            NodeEvent::Rejected { reason, total, .. } => reasons.push((reason, total)),
            NodeEvent::Banned {
                peer,
                reason,
                duration_ms,
                offences,
                ..
            } => banned = Some((peer, reason, duration_ms, offences)),
            _ => unreachable!(),
        }
    }
    reasons.sort();
    assert_eq!(
        reasons,
        vec![("oversize", 1), ("spoofed_sender", 1), ("undecodable", 1)]
    );
    // Garbage is counted; only the forgery is an offence (the default first step: a minute).
    assert_eq!(
        banned,
        Some((
            bad.peer_id().to_string(),
            "spoofed_sender".into(),
            60_000,
            1
        ))
    );
    let records = relay.bans().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].peer, bad.peer_id().to_string());

    // The relay keeps serving everyone else, and none of the bad messages reached the good
    // member.
    let (other, _other_events) = start_member(vec![tcp]).await;
    let after = "still serving";
    let first = loop {
        let _ = other.publish(TOPIC, after.as_bytes().to_vec()).await;
        if let Some(data) = next_matching(&mut good_events, Duration::from_millis(300), |e| match e
        {
            NodeEvent::Message { data, .. } => Some(data.clone()),
            _ => None,
        })
        .await
        {
            break data;
        }
    };
    assert_eq!(first, after.as_bytes());
    drop(good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_peer_is_refused_until_the_ban_ends_then_admitted_again() {
    // Short steps so the test sees a ban end: 2 s, then 4 s.
    let policy = BanPolicy {
        steps: vec![Duration::from_secs(2), Duration::from_secs(4)],
        ..BanPolicy::default()
    };
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_ban_policy(policy)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, mut relay_events, tcp) = start_relay_from(config).await;
    // The forger redials quickly (its bootstrap backoff), so refusals are seen during the ban.
    let config = NodeConfig::new(OperatorKey::generate())
        .with_bootstrap(vec![tcp])
        .with_topics(vec![TOPIC.into()])
        .with_backoff(
            Backoff::default()
                .with_base(Duration::from_millis(100))
                .with_cap(Duration::from_millis(300)),
        );
    let (bad, _bad_events) = Node::start(config).await.unwrap();
    let bad_peer = bad.peer_id().to_string();
    let connected = |e: &NodeEvent| matches!(e, NodeEvent::Connected { peer } if *peer == bad_peer);
    next_matching(&mut relay_events, Duration::from_secs(10), |e| {
        connected(e).then_some(())
    })
    .await
    .expect("the forger connects");

    for (round, seconds) in [(1u32, 2u64), (2, 4)] {
        // Until the relay has seen the topic, publishing finds no peer: retry.
        while bad.publish_raw(TOPIC, spoofed_envelope()).await.is_err() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let banned_at = tokio::time::Instant::now();
        let ban = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
            NodeEvent::Banned {
                peer,
                offences,
                duration_ms,
                ..
            } if *peer == bad_peer => Some((*offences, *duration_ms)),
            _ => None,
        })
        .await
        .expect("the forger is banned");
        assert_eq!(ban, (round, seconds * 1000), "escalates");
        // While banned, its redials are refused; the next event about it is the ban's end.
        let next = next_matching(
            &mut relay_events,
            Duration::from_secs(seconds + 10),
            |e| match e {
                NodeEvent::Connected { peer } if *peer == bad_peer => Some("connected"),
                NodeEvent::Unbanned { peer, .. } if *peer == bad_peer => Some("unbanned"),
                _ => None,
            },
        )
        .await;
        assert_eq!(next, Some("unbanned"));
        assert!(banned_at.elapsed() >= Duration::from_secs(seconds - 1));
        let denied = relay.counters().await.get("connection_denied").copied();
        assert!(
            denied.unwrap_or(0) >= round as u64,
            "redials refused: {denied:?}"
        );
        // Then it is admitted again.
        next_matching(&mut relay_events, Duration::from_secs(10), |e| {
            connected(e).then_some(())
        })
        .await
        .expect("admitted after the ban");
    }
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
    let (relay, mut relay_events, ws) = start_relay_from(config).await;
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
        // Unattested, the peer never counts as the wallet's (it is its own key's operator,
        // or, once banned, nobody's).
        assert_ne!(relay.peer_operator(peer).await, Some(wallet.address()));
        // A refused attestation is an offence: banned once it has read the refusal.
        let banned = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
            NodeEvent::Banned {
                peer: p, reason, ..
            } if *p == peer.to_string() => Some(reason.clone()),
            _ => None,
        })
        .await;
        assert_eq!(banned, Some(format!("attestation_{reason}")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_attested_policy_only_attested_or_allowed_peers_stay() {
    let allowed_key = OperatorKey::generate();
    // A short grace so the test sees it run out.
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_firewall(Policy::Attested, vec![allowed_key.peer_id()])
        .with_attestation_grace(Duration::from_secs(1))
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, mut relay_events, tcp) = start_relay_from(config).await;

    let wallet = OperatorKey::generate();
    let session = OperatorKey::generate();
    let attested_peer = session.peer_id();
    let (_attested, _a) =
        start_attested_member(tcp.clone(), &wallet, session, attested_peer, 31337).await;
    let (bare, _b) = start_member(vec![tcp.clone()]).await;
    let (_allowed, _c) =
        Node::start(NodeConfig::new(allowed_key.clone()).with_bootstrap(vec![tcp]))
            .await
            .unwrap();

    // The peer without an attestation fails the policy once its grace is over; nobody else.
    let banned = next_ban(&mut relay_events).await;
    assert_eq!(
        banned,
        Some((bare.peer_id().to_string(), "policy_unattested".to_owned()))
    );
    // Well past the others' grace, nobody else was banned or cut off.
    let mut leaving = std::collections::HashSet::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Some(peer) = next_matching(
        &mut relay_events,
        until.saturating_duration_since(tokio::time::Instant::now()),
        |e| match e {
            NodeEvent::Banned { peer, .. } | NodeEvent::Disconnected { peer } => Some(peer.clone()),
            _ => None,
        },
    )
    .await
    {
        leaving.insert(peer);
    }
    leaving.remove(&bare.peer_id().to_string());
    assert!(leaving.is_empty(), "others left: {leaving:?}");
    assert_eq!(
        relay.peer_operator(attested_peer).await,
        Some(wallet.address())
    );
    assert_eq!(
        relay.peer_operator(allowed_key.peer_id()).await,
        Some(allowed_key.address())
    );
    assert_eq!(relay.peer_operator(bare.peer_id()).await, None);
}

/// Bans and disconnections on `events` until `quiet` passes without one (peer → what).
async fn leavers(events: &mut EventReceiver, quiet: Duration) -> HashMap<String, String> {
    let mut left = HashMap::new();
    while let Some((peer, what)) = next_matching(events, quiet, |e| match e {
        NodeEvent::Banned { peer, reason, .. } => Some((peer.clone(), reason.clone())),
        NodeEvent::Disconnected { peer } => Some((peer.clone(), "disconnected".into())),
        _ => None,
    })
    .await
    {
        // A ban's own disconnection does not hide its reason.
        if what != "disconnected" || !left.contains_key(&peer) {
            left.insert(peer, what);
        }
    }
    left
}

/// A relay on loopback TCP under the `staked` policy, asking the chain at `url`, with a 1 s
/// grace so the tests see it run out.
fn staked_relay(url: &str) -> NodeConfig {
    NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_firewall(Policy::Staked, vec![])
        .with_chain(Arc::new(RpcChain::new(url).unwrap()))
        .with_attestation_grace(Duration::from_secs(1))
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_staked_policy_the_chain_decides_and_is_asked_again() {
    let chain = LocalChain::new(100);
    let url = rpc::spawn_server("127.0.0.1:0".parse().unwrap(), Arc::new(chain.clone()))
        .await
        .unwrap();
    // Short trust, so the test sees the re-check; the chain over real HTTP.
    let config =
        staked_relay(&url).with_recognition_ttl(Duration::from_secs(3), Duration::from_secs(1));
    let (relay, mut events, tcp) = start_relay_from(config).await;

    let (staked, unstaked, wallet, poor_wallet) = (
        OperatorKey::generate(),
        OperatorKey::generate(),
        OperatorKey::generate(),
        OperatorKey::generate(),
    );
    chain.set_stake(staked.address(), 150);
    chain.set_stake(wallet.address(), 100);
    chain.set_stake(poor_wallet.address(), 99);
    let join = |key: &OperatorKey| {
        Node::start(NodeConfig::new(key.clone()).with_bootstrap(vec![tcp.clone()]))
    };
    let (staked_node, _s) = join(&staked).await.unwrap();
    let (unstaked_node, _u) = join(&unstaked).await.unwrap();
    let session = OperatorKey::generate();
    let session_peer = session.peer_id();
    let (_delegated, _d) =
        start_attested_member(tcp.clone(), &wallet, session, session_peer, 31337).await;
    let poor_session = OperatorKey::generate();
    let poor_peer = poor_session.peer_id();
    let (_poor, _p) =
        start_attested_member(tcp.clone(), &poor_wallet, poor_session, poor_peer, 31337).await;

    // Those whose operator lacks the stake fail the policy when their grace runs out; the
    // staked operator and the staked wallet's session key stay.
    let left = leavers(&mut events, Duration::from_millis(2500)).await;
    let expected: HashMap<String, String> = [
        (unstaked_node.peer_id(), "policy_unstaked"),
        (poor_peer, "policy_unstaked"),
    ]
    .into_iter()
    .map(|(peer, reason)| (peer.to_string(), reason.to_owned()))
    .collect();
    assert_eq!(left, expected);
    assert_eq!(
        relay.peer_operator(session_peer).await,
        Some(wallet.address())
    );

    // The stake is withdrawn: when the 3 s trust ends the chain is asked again, and only
    // that operator goes.
    chain.set_stake(staked.address(), 0);
    let left = leavers(&mut events, Duration::from_secs(5)).await;
    let expected: HashMap<String, String> = [(
        staked_node.peer_id().to_string(),
        "policy_unstaked".to_owned(),
    )]
    .into();
    assert_eq!(left, expected);
    let counters = relay.counters().await;
    assert!(
        counters.get("recognised").copied().unwrap_or(0) >= 2,
        "{counters:?}"
    );
    assert!(
        counters.get("unrecognised").copied().unwrap_or(0) >= 3,
        "{counters:?}"
    );

    // Without a chain to ask, `staked` does not start.
    let refused = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_role(Role::Relay)
            .with_firewall(Policy::Staked, vec![]),
    )
    .await;
    assert!(matches!(refused, Err(StartError::Config(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_chain_is_down_staked_peers_are_disconnected_not_banned() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    let (relay, mut events, tcp) = start_relay_from(staked_relay(&url)).await;
    let (member, _m) = start_member(vec![tcp]).await;
    let gone = next_matching(&mut events, Duration::from_secs(10), |e| match e {
        NodeEvent::Banned { peer, .. } | NodeEvent::Disconnected { peer } => {
            Some(e.clone()).filter(|_| *peer == member.peer_id().to_string())
        }
        _ => None,
    })
    .await;
    assert!(
        matches!(gone, Some(NodeEvent::Disconnected { .. })),
        "{gone:?}"
    );
    assert!(relay
        .bans()
        .await
        .iter()
        .all(|b| b.peer != member.peer_id().to_string()));
    assert!(
        relay
            .counters()
            .await
            .get("chain_unavailable")
            .copied()
            .unwrap_or(0)
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_relay_dies_messages_keep_flowing_through_the_other() {
    let (first, _e1, first_tcp, _) = start_relay().await;
    let (_second, _e2, second_tcp, _) = start_relay().await;
    let both = vec![first_tcp, second_tcp];
    let (a, mut a_events) = start_member(both.clone()).await;
    let (_b, mut b_events) = start_member(both).await;
    // Both members keep both relays (the target, 3, is more than there are).
    for events in [&mut a_events, &mut b_events] {
        let healthy = next_matching(events, Duration::from_secs(10), |e| match e {
            NodeEvent::Health { state, relays, .. } if *relays == 2 => Some(*state),
            _ => None,
        })
        .await;
        assert_eq!(healthy, Some(Health::Healthy));
    }
    deliver(&a, &mut b_events, "before").await;

    first.shutdown().await;
    let killed = tokio::time::Instant::now();
    let degraded = next_matching(&mut a_events, Duration::from_secs(10), |e| match e {
        NodeEvent::Health { state, relays, .. } => Some((*state, *relays)),
        _ => None,
    })
    .await;
    assert_eq!(degraded, Some((Health::Degraded, 1)));
    deliver(&a, &mut b_events, "after").await;
    // The gap is a figure for the benchmark notes, not an assertion (shared machines).
    println!(
        "KEEP_LIGHT_BENCH {{\"failover_gap_ms\":{}}}",
        killed.elapsed().as_millis()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_half_open_sockets_and_bogus_bootstrap_lists_leave_everyone_served() {
    use tokio::io::AsyncWriteExt as _;
    let (relay, _relay_events, tcp, ws) = start_relay().await;
    let (a, _a_events) = start_member(vec![tcp.clone()]).await;
    let (_b, mut b_events) = start_member(vec![ws.clone()]).await;
    deliver(&a, &mut b_events, "before").await;

    // Garbage: raw bytes instead of a WebSocket upgrade, and instead of a multistream header.
    let socket = |address: &str| {
        let port: u16 = address.split('/').nth(4).unwrap().parse().unwrap();
        tokio::net::TcpStream::connect(("127.0.0.1", port))
    };
    for address in [&ws, &tcp] {
        let mut garbage = socket(address).await.unwrap();
        garbage
            .write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(4096))
            .await
            .unwrap();
        drop(garbage);
    }
    // Half-open: more sockets than the relay lets wait in a handshake, all silent.
    let mut silent = Vec::new();
    for _ in 0..300 {
        if let Ok(s) = socket(&tcp).await {
            silent.push(s);
        }
    }
    // A member with 9,999 bogus bootstrap entries and one good one.
    let mut list: Vec<String> = (0..9_999).map(|i| format!("not an address {i}")).collect();
    list.push(tcp.clone());
    let (_c, mut c_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(list)
            .with_topics(vec![TOPIC.into()]),
    )
    .await
    .unwrap();
    let mut reported = 0;
    let skipped = next_matching(&mut c_events, Duration::from_secs(10), |e| match e {
        NodeEvent::BootstrapInvalid { .. } => {
            reported += 1;
            None
        }
        NodeEvent::BootstrapSkipped {
            invalid,
            over_limit,
        } => Some((*invalid, *over_limit)),
        _ => None,
    })
    .await;
    assert_eq!((reported, skipped), (8, Some((9_991, 0))));

    // The established members still talk, each bad case was counted, and the silent sockets
    // beyond the handshake limit were refused.
    deliver(&a, &mut b_events, "after").await;
    let counts = relay.counters().await;
    assert!(
        counts.get("connection_failed").copied().unwrap_or(0) >= 2,
        "{counts:?}"
    );
    assert!(
        counts.get("connection_denied").copied().unwrap_or(0) >= 1,
        "{counts:?}"
    );
    drop(silent);
}

/// A TCP forwarder to `target` that goes silent when `silent` is set: it stops forwarding but
/// keeps every socket open, which is how a peer looks when its machine or route vanished
/// without closing anything.
async fn silenceable_proxy(target: u16) -> (u16, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let silent = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let flag = silent.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let (client, server) = (client.into_split(), server.into_split());
            for (mut from, mut to) in [(client.0, server.1), (server.0, client.1)] {
                let silent = flag.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 16 * 1024];
                    while let Ok(n @ 1..) = from.read(&mut buffer).await {
                        if silent.load(Ordering::SeqCst) {
                            // Swallow everything from now on, closing nothing.
                            continue;
                        }
                        if to.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                    // Even on the peer's end, hold both halves open: the task never ends.
                    std::future::pending::<()>().await;
                });
            }
        }
    });
    (port, silent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_gone_silent_without_closing_is_let_go_after_failed_pings() {
    let (_relay, _relay_events, tcp, _) = start_relay().await;
    let relay_port: u16 = tcp.split('/').nth(4).unwrap().parse().unwrap();
    let relay_peer = tcp.rsplit('/').next().unwrap();
    let (proxy, silent) = silenceable_proxy(relay_port).await;
    let (member, mut events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![format!("/ip4/127.0.0.1/tcp/{proxy}/p2p/{relay_peer}")])
            .with_ping(Duration::from_millis(300), Duration::from_millis(300)),
    )
    .await
    .unwrap();
    async fn health(events: &mut EventReceiver, relays: usize, seconds: u64) -> Option<Health> {
        next_matching(events, Duration::from_secs(seconds), |e| match e {
            NodeEvent::Health {
                state, relays: n, ..
            } if *n == relays => Some(*state),
            _ => None,
        })
        .await
    }
    assert_eq!(health(&mut events, 1, 10).await, Some(Health::Healthy));
    // Several pings go through while the proxy forwards.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(member.counters().await.get("unresponsive"), None);

    silent.store(true, std::sync::atomic::Ordering::SeqCst);
    let silenced = tokio::time::Instant::now();
    // Let go once no ping has been answered for interval + timeout + 1 s of slack (1.6 s).
    assert_eq!(
        health(&mut events, 0, 30).await,
        Some(Health::Unhealthy),
        "the silent relay is let go"
    );
    eprintln!(
        "KEEP_LIGHT_BENCH {{\"silent_relay_noticed_ms\":{}}}",
        silenced.elapsed().as_millis()
    );
    assert_eq!(member.counters().await.get("unresponsive"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dial_storm_from_one_address_leaves_the_relay_to_everyone_else() {
    let (relay, _relay_events, tcp, _ws) = start_relay().await;
    let port: u16 = tcp.split('/').nth(4).unwrap().parse().unwrap();
    // 400 silent sockets from 127.0.0.2 (all of 127/8 is loopback): more than the relay's 256
    // pending handshakes in all, so without a per-address share they would shut out the rest.
    let mut storm = Vec::new();
    for _ in 0..400 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        if let Ok(stream) = socket.connect(([127, 0, 0, 1], port).into()).await {
            storm.push(stream);
        }
    }
    // Members dialling from 127.0.0.1 meanwhile get in at the first try and talk.
    let (a, mut a_events) = start_member(vec![tcp.clone()]).await;
    let (_b, mut b_events) = start_member(vec![tcp]).await;
    let first = next_matching(&mut a_events, Duration::from_secs(10), |e| match e {
        NodeEvent::Connected { .. } | NodeEvent::DialFailed { .. } => Some(e.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(first, Some(NodeEvent::Connected { .. })),
        "{first:?}"
    );
    deliver(&a, &mut b_events, "during the storm").await;
    // The storm beyond its address's 32 handshakes was refused, and counted.
    let counts = relay.counters().await;
    let limited = counts.get("ip_limited").copied().unwrap_or(0);
    assert!(limited >= 400 - 32, "{counts:?}");
    drop(storm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_over_the_message_rate_limit_is_banned() {
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_rate_limit(10, 20)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, mut relay_events, tcp) = start_relay_from(config).await;
    let (_calm, mut calm_events) = start_member(vec![tcp.clone()]).await;
    let (flood, _f) = start_member(vec![tcp]).await;
    // Within the burst: delivered.
    deliver(&flood, &mut calm_events, "a few").await;
    for i in 0..100 {
        let _ = flood
            .publish(TOPIC, format!("flood {i}").into_bytes())
            .await;
    }
    let banned = next_ban(&mut relay_events).await;
    assert_eq!(
        banned,
        Some((flood.peer_id().to_string(), "rate_limited".to_owned()))
    );
    assert!(
        relay
            .counters()
            .await
            .get("rate_limited")
            .copied()
            .unwrap_or(0)
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_reach_each_other_through_a_relay_circuit() {
    let (_relay, _relay_events, _tcp, ws) = start_relay().await;
    // A listens through the relay; it cannot be dialled directly (it listens on nothing else).
    let (a, mut a_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![ws.clone()])
            .with_circuit_listen(true),
    )
    .await
    .unwrap();
    let circuit = next_matching(&mut a_events, Duration::from_secs(10), |e| match e {
        NodeEvent::Listening { address } if address.contains("/ws/p2p/") => {
            address.contains("/p2p-circuit/").then(|| address.clone())
        }
        _ => None,
    })
    .await
    .expect("the relay grants a reservation");
    assert!(circuit.ends_with(&format!("/p2p-circuit/p2p/{}", a.peer_id())));

    // B dials A's circuit address with a wallet delegation: A verifies it and answers, a
    // request-response exchange over the relayed connection.
    let wallet = OperatorKey::generate();
    let session = OperatorKey::generate();
    let session_peer = session.peer_id();
    let (b, mut b_events) = start_attested_member(ws, &wallet, session, session_peer, 31337).await;
    // Through its relay connection: B dials once it has one.
    next_matching(&mut b_events, Duration::from_secs(10), |e| {
        matches!(e, NodeEvent::Health { relays: 1, .. }).then_some(())
    })
    .await
    .expect("B reaches the relay");
    b.dial(&circuit).await.unwrap();
    let a_peer = a.peer_id().to_string();
    let ack = next_matching(&mut b_events, Duration::from_secs(10), |e| match e {
        NodeEvent::AttestationAcknowledged { peer, accepted, .. } if *peer == a_peer => {
            Some(*accepted)
        }
        _ => None,
    })
    .await;
    assert_eq!(ack, Some(true), "A answered B through the circuit");
    assert_eq!(a.peer_operator(session_peer).await, Some(wallet.address()));
    assert!(b.dial("not an address").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_announces_its_configured_external_address_in_reservations() {
    let public: libp2p::Multiaddr = "/ip4/203.0.113.7/tcp/4001".parse().unwrap();
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_external(vec![public.clone()])
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, _relay_events, tcp) = start_relay_from(config).await;
    let (member, mut events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![tcp])
            .with_circuit_listen(true),
    )
    .await
    .unwrap();
    let circuit = next_matching(&mut events, Duration::from_secs(10), |e| match e {
        NodeEvent::Listening { address } if address.contains("/p2p-circuit/") => {
            Some(address.clone())
        }
        _ => None,
    })
    .await
    .expect("a reservation");
    assert_eq!(
        circuit,
        format!(
            "{public}/p2p/{}/p2p-circuit/p2p/{}",
            relay.peer_id(),
            member.peer_id()
        )
    );
}
