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
    start_member_as(OperatorKey::generate(), bootstrap).await
}

/// A member with `key` in [`TOPIC`].
async fn start_member_as(key: OperatorKey, bootstrap: Vec<String>) -> (NodeHandle, EventReceiver) {
    let config = NodeConfig::new(key)
        .with_bootstrap(bootstrap)
        .with_topics(vec![TOPIC.into()]);
    Node::start(config).await.unwrap()
}

/// A relay on loopback TCP whose firewall applies `policy`, exempting `allowed`, with `grace`.
fn gated_relay(policy: Policy, allowed: Vec<libp2p::PeerId>, grace: Duration) -> NodeConfig {
    NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_firewall(policy, allowed)
        .with_attestation_grace(grace)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()])
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
    let (relay, _relay_events, tcp, ws) = start_relay().await;
    let (a, mut a_events) = start_member(vec![tcp]).await;
    let (b, mut b_events) = start_member(vec![ws]).await;
    // `from` is the peer that forwarded a message (the relay), `sender` its signing author.
    let relay_peer = relay.peer_id().to_string();

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
    assert_eq!(from, relay_peer);
    assert_eq!(sender, a.address().to_string());
    assert_eq!(topic, TOPIC);
    assert_eq!(kind, keep_light::net::node::TEXT_TYPE);

    let event = deliver(&b, &mut a_events, "hello from b").await;
    assert!(matches!(
        event,
        NodeEvent::Message { from, sender, .. }
            if from == relay_peer && sender == b.address().to_string()
    ));
}

/// An envelope claiming another operator (a new one each time, so the bytes differ) as its
/// sender, with no signature.
fn forged_envelope() -> Vec<u8> {
    Envelope {
        r#type: "net.Text".into(),
        payload: b"i am someone else".to_vec(),
        sender: OperatorKey::generate().address().as_bytes().to_vec(),
        sequence: 1,
        group: Vec::new(),
        signature: Vec::new(),
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
    bad.publish_raw(TOPIC, forged_envelope()).await.unwrap();

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
        vec![("bad_signature", 1), ("oversize", 1), ("undecodable", 1)]
    );
    // Garbage is counted; only the forgery is an offence (the default first step: a minute).
    assert_eq!(
        banned,
        Some((bad.peer_id().to_string(), "bad_signature".into(), 60_000, 1))
    );
    let records = relay.bans().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].peer, bad.peer_id().to_string());

    // The relay keeps serving everyone else, and none of the bad messages reached the good
    // member.
    let (other, _other_events) = start_member(vec![tcp]).await;
    let after = "still serving";
    // The first message the good member gets is the new one: nothing bad came before it.
    let mut first = None;
    for _ in 0..50 {
        let _ = other.publish(TOPIC, after.as_bytes().to_vec()).await;
        first = next_matching(&mut good_events, Duration::from_millis(300), |e| match e {
            NodeEvent::Message { data, .. } => Some(data.clone()),
            _ => None,
        })
        .await;
        if first.is_some() {
            break;
        }
    }
    assert_eq!(first.as_deref(), Some(after.as_bytes()), "still serving");
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
        while bad.publish_raw(TOPIC, forged_envelope()).await.is_err() {
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
    // A grace short enough for the test to see it run out, long enough that a stalled machine
    // still admits the attested peer within it.
    let config = gated_relay(
        Policy::Attested,
        vec![allowed_key.peer_id()],
        Duration::from_secs(4),
    );
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

/// Bans and disconnections on `events` (peer → what): until `expected` peers have left (at
/// most 30 s), then for `settle` more, so that anyone else leaving shows too.
async fn leavers(
    events: &mut EventReceiver,
    expected: usize,
    settle: Duration,
) -> HashMap<String, String> {
    let mut left: HashMap<String, String> = HashMap::new();
    let mut until = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut settling = false;
    loop {
        if !settling && left.len() >= expected {
            settling = true;
            until = tokio::time::Instant::now() + settle;
        }
        let wait = until.saturating_duration_since(tokio::time::Instant::now());
        let Some((peer, what)) = next_matching(events, wait, |e| match e {
            NodeEvent::Banned { peer, reason, .. } => Some((peer.clone(), reason.clone())),
            NodeEvent::Disconnected { peer } => Some((peer.clone(), "disconnected".into())),
            _ => None,
        })
        .await
        else {
            return left;
        };
        // A ban's own disconnection does not hide its reason.
        if what != "disconnected" || !left.contains_key(&peer) {
            left.insert(peer, what);
        }
    }
}

/// A relay on loopback TCP under the `staked` policy, asking the chain at `url`, with a 4 s
/// grace: the tests see it run out, and a stalled machine still admits staked peers within it.
fn staked_relay(url: &str) -> NodeConfig {
    gated_relay(Policy::Staked, vec![], Duration::from_secs(4))
        .with_chain(Arc::new(RpcChain::new(url).unwrap()))
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
    chain.set_stake(staked.address(), 150).unwrap();
    chain.set_stake(wallet.address(), 100).unwrap();
    chain.set_stake(poor_wallet.address(), 99).unwrap();
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
    let left = leavers(&mut events, 2, Duration::from_secs(2)).await;
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
    chain.set_stake(staked.address(), 0).unwrap();
    let left = leavers(&mut events, 1, Duration::from_secs(2)).await;
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

/// A chain that answers (from `chain`) only once `open` says so: the test decides when a
/// peer's operator is recognised.
struct HeldChain {
    chain: LocalChain,
    open: tokio::sync::watch::Receiver<bool>,
}

impl keep_light::chain::Chain for HeldChain {
    fn operator_stake(
        &self,
        operator: keep_light::identity::Address,
    ) -> keep_light::platform::BoxFuture<
        'static,
        Result<keep_light::chain::OperatorStake, keep_light::chain::ChainError>,
    > {
        let (chain, mut open) = (self.chain.clone(), self.open.clone());
        Box::pin(async move {
            let _ = open.wait_for(|open| *open).await;
            chain.operator_stake(operator).await
        })
    }
}

/// Publishes `count` texts `{prefix} i` from `node` once its relay takes them (publishing
/// finds no peer until the relay has seen the topic).
async fn publish_texts(node: &NodeHandle, prefix: &str, count: usize) {
    for i in 0..count {
        let text = format!("{prefix} {i}").into_bytes();
        let mut tries = 0;
        while node.publish(TOPIC, text.clone()).await.is_err() {
            tries += 1;
            assert!(tries < 100, "the relay never took {prefix} {i}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Texts starting with `prefix` that reach `events` within `time`.
async fn texts_seen(events: &mut EventReceiver, prefix: &str, time: Duration) -> usize {
    let mut seen = 0;
    let until = tokio::time::Instant::now() + time;
    while let Some(()) = next_matching(
        events,
        until.saturating_duration_since(tokio::time::Instant::now()),
        |e| match e {
            NodeEvent::Message { data, .. } if data.starts_with(prefix.as_bytes()) => Some(()),
            _ => None,
        },
    )
    .await
    {
        seen += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_staked_policy_messages_sent_before_admission_are_dropped_then_flow() {
    let chain = LocalChain::new(100);
    let (open, held) = tokio::sync::watch::channel(false);
    let listener_key = OperatorKey::generate();
    // A grace far longer than the test: only the chain's answer admits the talker.
    let config = gated_relay(
        Policy::Staked,
        vec![listener_key.peer_id()],
        Duration::from_secs(60),
    )
    .with_chain(Arc::new(HeldChain {
        chain: chain.clone(),
        open: held,
    }));
    let (relay, mut relay_events, tcp) = start_relay_from(config).await;
    let talker_key = OperatorKey::generate();
    chain.set_stake(talker_key.address(), 100).unwrap();
    let (_listener, mut listener_events) = start_member_as(listener_key, vec![tcp.clone()]).await;
    let (talker, _talker_events) = start_member_as(talker_key.clone(), vec![tcp]).await;

    // Before the chain has answered: dropped at the relay, counted, not forwarded.
    publish_texts(&talker, "early", 5).await;
    let counts = counters_until(&relay, 10, |c| count(c, "not_admitted") >= 5).await;
    assert_eq!(count(&counts, "not_admitted"), 5, "{counts:?}");
    assert_eq!(
        texts_seen(&mut listener_events, "early", Duration::from_secs(2)).await,
        0
    );
    // No penalty: nobody is banned for it.
    assert!(relay.bans().await.is_empty());

    // Recognised: admitted, and what it sends now flows.
    open.send(true).unwrap();
    let recognised = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
        NodeEvent::OperatorChecked { recognised, .. } => Some(*recognised),
        _ => None,
    })
    .await;
    assert_eq!(recognised, Some(true));
    let before = count(&relay.counters().await, "not_admitted");
    deliver(&talker, &mut listener_events, "admitted").await;
    assert_eq!(count(&relay.counters().await, "not_admitted"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_attested_policy_an_unattested_peers_messages_are_dropped_unforwarded() {
    let listener_key = OperatorKey::generate();
    let config = gated_relay(
        Policy::Attested,
        vec![listener_key.peer_id()],
        Duration::from_secs(60),
    );
    let (relay, _relay_events, tcp) = start_relay_from(config).await;
    let (_listener, mut listener_events) = start_member_as(listener_key, vec![tcp.clone()]).await;
    let (bare, _bare_events) = start_member(vec![tcp.clone()]).await;
    publish_texts(&bare, "unattested", 5).await;
    let counts = counters_until(&relay, 10, |c| count(c, "not_admitted") >= 5).await;
    assert_eq!(count(&counts, "not_admitted"), 5, "{counts:?}");
    assert_eq!(
        texts_seen(&mut listener_events, "unattested", Duration::from_secs(2)).await,
        0
    );
    // An attested peer's messages on the same relay flow.
    let wallet = OperatorKey::generate();
    let session = OperatorKey::generate();
    let session_peer = session.peer_id();
    let (attested, _a) = start_attested_member(tcp, &wallet, session, session_peer, 31337).await;
    attested.join(TOPIC);
    deliver(&attested, &mut listener_events, "attested").await;
    assert_eq!(count(&relay.counters().await, "not_admitted"), 5);
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
async fn a_chain_that_accepts_and_never_answers_costs_staked_peers_a_disconnection_not_a_ban() {
    let chain = LocalChain::new(100);
    let url = rpc::spawn_server("127.0.0.1:0".parse().unwrap(), Arc::new(chain.clone()))
        .await
        .unwrap();
    let chain_port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    // The chain behind a proxy that takes requests and answers nothing until told to.
    let (proxy, silent) = silenceable_proxy(chain_port).await;
    silent.store(true, std::sync::atomic::Ordering::SeqCst);
    // A 2 s grace ends while the client still waits (its limit is 5 s): either way, no ban.
    let config = staked_relay(&format!("http://127.0.0.1:{proxy}/"))
        .with_attestation_grace(Duration::from_secs(2));
    let (relay, mut events, tcp) = start_relay_from(config).await;
    let (staked, listener_key) = (OperatorKey::generate(), OperatorKey::generate());
    chain.set_stake(staked.address(), 100).unwrap();
    chain.set_stake(listener_key.address(), 100).unwrap();
    let quick = Backoff::default()
        .with_base(Duration::from_millis(200))
        .with_cap(Duration::from_secs(1));
    let join = |key: &OperatorKey| {
        Node::start(
            NodeConfig::new(key.clone())
                .with_bootstrap(vec![tcp.clone()])
                .with_topics(vec![TOPIC.into()])
                .with_backoff(quick.clone()),
        )
    };
    let (member, _member_events) = join(&staked).await.unwrap();
    let peer = member.peer_id().to_string();
    let gone = next_matching(&mut events, Duration::from_secs(20), |e| match e {
        NodeEvent::Banned { peer: p, .. } | NodeEvent::Disconnected { peer: p } if *p == peer => {
            Some(e.clone())
        }
        _ => None,
    })
    .await;
    assert!(
        matches!(gone, Some(NodeEvent::Disconnected { .. })),
        "{gone:?}"
    );
    // The client's 5 s limit fired: counted as the chain's failure.
    let counts = counters_until(&relay, 15, |c| count(c, "chain_unavailable") >= 1).await;
    assert!(count(&counts, "chain_unavailable") >= 1, "{counts:?}");
    assert_eq!(count(&counts, "recognised"), 0, "{counts:?}");
    assert!(relay.bans().await.is_empty());

    // The chain answers again: the member, redialling, is recognised and admitted; its
    // messages reach another staked member.
    silent.store(false, std::sync::atomic::Ordering::SeqCst);
    let recognised = next_matching(&mut events, Duration::from_secs(30), |e| match e {
        NodeEvent::OperatorChecked {
            operator,
            recognised,
            ..
        } if *operator == staked.address().to_string() => Some(*recognised),
        _ => None,
    })
    .await;
    assert_eq!(recognised, Some(true));
    let (_listener, mut listener_events) = join(&listener_key).await.unwrap();
    deliver(&member, &mut listener_events, "the chain is back").await;
    assert!(relay.bans().await.is_empty());
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

/// Polls `node`'s counters until `done` holds of them (within `seconds`); returns them.
async fn counters_until(
    node: &NodeHandle,
    seconds: u64,
    done: impl Fn(&HashMap<String, u64>) -> bool,
) -> HashMap<String, u64> {
    let until = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let counters = node.counters().await;
        if done(&counters) || tokio::time::Instant::now() >= until {
            return counters;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(counters: &HashMap<String, u64>, name: &str) -> u64 {
    counters.get(name).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_half_open_sockets_and_bogus_bootstrap_lists_leave_everyone_served() {
    use tokio::io::AsyncWriteExt as _;
    let (relay, _relay_events, tcp, ws) = start_relay().await;
    let (a, _a_events) = start_member(vec![tcp.clone()]).await;
    let (_b, mut b_events) = start_member(vec![ws.clone()]).await;
    deliver(&a, &mut b_events, "before").await;

    // Garbage: raw bytes instead of a WebSocket upgrade, and instead of a multistream header.
    let port = |address: &str| -> u16 { address.split('/').nth(4).unwrap().parse().unwrap() };
    for address in [&ws, &tcp] {
        let mut garbage = tokio::net::TcpStream::connect(("127.0.0.1", port(address)))
            .await
            .unwrap();
        garbage
            .write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(4096))
            .await
            .unwrap();
        drop(garbage);
    }
    let counts = counters_until(&relay, 10, |c| count(c, "connection_failed") >= 2).await;
    assert_eq!(count(&counts, "connection_failed"), 2, "{counts:?}");
    assert_eq!(count(&counts, "connection_denied"), 0, "{counts:?}");

    // Half-open: 300 silent sockets from ten addresses (all of 127/8 is loopback), 30 each:
    // within every address's share of 32 handshakes, past the relay's 256 in all.
    let mut silent = Vec::new();
    for i in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from((
                [127, 0, 0, 10 + (i % 10) as u8],
                0,
            )))
            .unwrap();
        silent.push(
            socket
                .connect(([127, 0, 0, 1], port(&tcp)).into())
                .await
                .unwrap(),
        );
    }
    // Exactly the 44 beyond the bound are refused, none for its address's share.
    let counts = counters_until(&relay, 10, |c| count(c, "connection_denied") >= 44).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = relay.counters().await;
    assert_eq!(
        count(&later, "connection_denied"),
        count(&counts, "connection_denied"),
        "nothing more was refused"
    );
    assert_eq!(count(&counts, "connection_denied"), 300 - 256, "{counts:?}");
    assert_eq!(count(&counts, "ip_limited"), 0, "{counts:?}");

    // The established members still talk while the silent sockets are held.
    deliver(&a, &mut b_events, "during").await;

    // A member with 9,999 bogus bootstrap entries and one good one.
    let mut list: Vec<String> = (0..9_999).map(|i| format!("not an address {i}")).collect();
    list.push(tcp.clone());
    let (c, mut c_events) = Node::start(
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
    // Its dials are refused while the relay's handshake slots are taken; the silent sockets
    // time out (libp2p's 10 s handshake limit), and then it gets in and talks, sockets held.
    let connected = next_matching(&mut c_events, Duration::from_secs(40), |e| {
        matches!(e, NodeEvent::Connected { .. }).then_some(())
    })
    .await;
    assert_eq!(connected, Some(()), "the late member gets in");
    deliver(&c, &mut b_events, "late").await;
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
            // Let go after 1 + 2 + 1 s unanswered: a machine stalled for 2 s keeps it.
            .with_ping(Duration::from_secs(1), Duration::from_secs(2)),
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
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(member.counters().await.get("unresponsive"), None);

    silent.store(true, std::sync::atomic::Ordering::SeqCst);
    let silenced = tokio::time::Instant::now();
    // Let go once no ping has been answered for interval + timeout + 1 s of slack (4 s).
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
async fn an_author_over_the_relays_per_author_limit_is_cut_back_unbanned_and_others_still_heard() {
    // 2 messages a second per author, bursts of 10; the per-peer limit stays far above.
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_sender_rate_limit(2, 10)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, mut relay_events, tcp) = start_relay_from(config).await;
    let (_listener, mut listener_events) = start_member(vec![tcp.clone()]).await;
    let (loud, _l) = start_member(vec![tcp.clone()]).await;
    let (calm, _c) = start_member(vec![tcp]).await;
    deliver(&loud, &mut listener_events, "loud warm-up").await;
    publish_texts(&loud, "loud", 60).await;
    // Its burst (less the warm-up) and a few refills get through; the rest does not.
    let heard = texts_seen(&mut listener_events, "loud ", Duration::from_secs(3)).await;
    assert!((1..=20).contains(&heard), "{heard} of 60 forwarded");
    let counters = relay.counters().await;
    assert!(
        count(&counters, "sender_rate_limited") >= 40,
        "{counters:?}"
    );
    // Another author is not held back by it, and no one was banned (the relay forwards
    // authors' messages in good faith; the per-peer limit is the one that bans).
    deliver(&calm, &mut listener_events, "calm still heard").await;
    let ban = next_matching(&mut relay_events, Duration::from_millis(500), |e| match e {
        NodeEvent::Banned { peer, .. } => Some(peer.clone()),
        _ => None,
    })
    .await;
    assert_eq!(ban, None);
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

    // More than libp2p's default 128 KiB per circuit: A's own messages go to every subscribed
    // peer (flood publishing), so to B over the circuit, which the relay's raised limit keeps
    // open (with the default, it closes at 128 KiB and B loses A).
    a.join(TOPIC);
    b.join(TOPIC);
    let chunk = vec![b'x'; 30 * 1024];
    deliver(&a, &mut b_events, "circuit warm-up").await;
    for i in 0..10u8 {
        let mut data = chunk.clone();
        data[0] = i;
        a.publish(TOPIC, data).await.unwrap();
    }
    let mut got = std::collections::HashSet::new();
    let mut lost_a = false;
    while got.len() < 10 && !lost_a {
        match next_matching(&mut b_events, Duration::from_secs(20), |e| match e {
            NodeEvent::Message { data, .. } if data.len() == chunk.len() => Some(Some(data[0])),
            NodeEvent::Disconnected { peer } if *peer == a_peer => Some(None),
            _ => None,
        })
        .await
        {
            Some(Some(i)) => {
                got.insert(i);
            }
            Some(None) => lost_a = true,
            None => panic!("B got {} of 10 chunks", got.len()),
        }
    }
    assert!(!lost_a, "the circuit closed after {} chunks", got.len());
    // The circuit is still up after 300 KiB: B still knows A's operator, a connected peer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.peer_operator(a.peer_id()).await, Some(a.address()));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_ban_cuts_a_peer_off_and_an_unban_lets_it_straight_back() {
    let (relay, mut relay_events, tcp, _ws) = start_relay().await;
    let (member, _member_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![tcp])
            .with_backoff(
                Backoff::default()
                    .with_base(Duration::from_millis(100))
                    .with_cap(Duration::from_millis(300)),
            ),
    )
    .await
    .unwrap();
    let peer = member.peer_id();
    let about = |e: &NodeEvent| match e {
        NodeEvent::Connected { peer: p } if *p == peer.to_string() => Some("connected"),
        NodeEvent::Disconnected { peer: p } if *p == peer.to_string() => Some("disconnected"),
        NodeEvent::Unbanned { peer: p, .. } if *p == peer.to_string() => Some("unbanned"),
        _ => None,
    };
    assert_eq!(
        next_matching(&mut relay_events, Duration::from_secs(10), about).await,
        Some("connected")
    );

    // An hour, for a reason of the operator's own: cut off, and its redials refused.
    relay.ban(peer, Some(Duration::from_secs(3600)), "operator_said_so");
    let banned = next_matching(&mut relay_events, Duration::from_secs(10), |e| match e {
        NodeEvent::Banned {
            peer: p,
            reason,
            duration_ms,
            ..
        } if *p == peer.to_string() => Some((reason.clone(), *duration_ms)),
        _ => None,
    })
    .await;
    assert_eq!(banned, Some(("operator_said_so".into(), 3_600_000)));
    assert_eq!(
        next_matching(&mut relay_events, Duration::from_secs(10), about).await,
        Some("disconnected")
    );
    let counts = counters_until(&relay, 10, |c| count(c, "connection_denied") >= 3).await;
    assert!(count(&counts, "connection_denied") >= 3, "{counts:?}");
    let bans = relay.bans().await;
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].peer, peer.to_string());
    // Refused all along: the next event about it is its unban, then it is back.
    relay.unban(peer);
    assert_eq!(
        next_matching(&mut relay_events, Duration::from_secs(10), about).await,
        Some("unbanned")
    );
    assert_eq!(
        next_matching(&mut relay_events, Duration::from_secs(10), about).await,
        Some("connected")
    );
}

/// Dials `address` (the node `to`) `dials` times from one new peer that sets no limits of its
/// own; returns how many of them `to` refused.
async fn refused_of(to: &NodeHandle, address: &str, dials: usize) -> u64 {
    let (from, _events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_connection_limits(libp2p::connection_limits::ConnectionLimits::default()),
    )
    .await
    .unwrap();
    for _ in 0..dials {
        from.dial(address).await.unwrap();
    }
    counters_until(to, 10, |c| count(c, "connection_denied") >= 1).await;
    // Every dial is answered well within this; a late refusal would show in the count.
    tokio::time::sleep(Duration::from_secs(1)).await;
    count(&to.counters().await, "connection_denied")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_peer_are_limited_by_role_four_to_a_relay_two_to_a_member() {
    let (relay, _relay_events, tcp, _ws) = start_relay().await;
    assert_eq!(refused_of(&relay, &tcp, 6).await, 6 - 4);

    let (member, mut member_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]),
    )
    .await
    .unwrap();
    let address = next_matching(&mut member_events, Duration::from_secs(10), |e| match e {
        NodeEvent::Listening { address } => Some(address.clone()),
        _ => None,
    })
    .await
    .expect("the member listens");
    assert_eq!(refused_of(&member, &address, 5).await, 5 - 2);
}

/// A TCP forwarder to `target` whose `target` → client direction stops reading while `stall`
/// says so (the client's socket and the target's stay open): how a peer that cannot keep up
/// looks to the target, whose sends then back up.
async fn stallable_proxy(target: u16) -> (u16, tokio::sync::watch::Sender<bool>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let (stall, stalled) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let ((mut client_read, mut client_write), (mut server_read, mut server_write)) =
                (client.into_split(), server.into_split());
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let mut stalled = stalled.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0; 16 * 1024];
                loop {
                    if stalled.wait_for(|stall| !*stall).await.is_err() {
                        return;
                    }
                    match server_read.read(&mut buffer).await {
                        Ok(n @ 1..) => {
                            if client_write.write_all(&buffer[..n]).await.is_err() {
                                return;
                            }
                        }
                        _ => return,
                    }
                }
            });
        }
    });
    (port, stall)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_too_slow_to_read_has_its_messages_dropped_and_counted_while_others_are_served() {
    // A rate limit the burst stays under: only the slow peer's queue is in question.
    // Pings that do not end the connection during the test: a peer that reads nothing
    // answers no ping either.
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_rate_limit(1_000_000, 1_000_000)
        .with_ping(Duration::from_secs(60), Duration::from_secs(60))
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, mut relay_events, tcp) = start_relay_from(config).await;
    let relay_port: u16 = tcp.split('/').nth(4).unwrap().parse().unwrap();
    let relay_peer = tcp.rsplit('/').next().unwrap();
    let (proxy, stall) = stallable_proxy(relay_port).await;
    let (slow, mut slow_events) = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![format!("/ip4/127.0.0.1/tcp/{proxy}/p2p/{relay_peer}")])
            .with_topics(vec![TOPIC.into()])
            .with_ping(Duration::from_secs(60), Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let (talker, _talker_events) = start_member(vec![tcp.clone()]).await;
    let (_fast, mut fast_events) = start_member(vec![tcp]).await;
    deliver(&talker, &mut slow_events, "before").await;
    deliver(&talker, &mut fast_events, "before, fast").await;

    // The slow peer stops reading: more than the relay's per-peer queue (8,192) of 1 KiB
    // messages goes its way, in batches the fast member has seen (so the relay has taken
    // them: the talker's own queue to the relay is no larger).
    stall.send(true).unwrap();
    let text = vec![b'.'; 1024];
    for batch in 0..11u32 {
        for i in 0..1000u32 {
            let mut data = text.clone();
            data[..4].copy_from_slice(&(batch * 1000 + i).to_be_bytes());
            talker.publish(TOPIC, data).await.unwrap();
        }
        let mut seen = 0;
        while seen < 1000 {
            next_matching(&mut fast_events, Duration::from_secs(30), |e| match e {
                NodeEvent::Message { data, .. } if data.len() == text.len() => Some(()),
                _ => None,
            })
            .await
            .unwrap_or_else(|| panic!("batch {batch}: the fast member saw {seen} of 1000"));
            seen += 1;
        }
    }
    let dropped = next_matching(&mut relay_events, Duration::from_secs(30), |e| match e {
        NodeEvent::Dropped {
            reason: "slow_peer",
            peer: Some(peer),
            count,
            ..
        } => Some((peer.clone(), *count)),
        _ => None,
    })
    .await;
    let Some(dropped) = dropped else {
        panic!(
            "the relay dropped nothing for the slow peer: {:?}",
            relay.counters().await
        );
    };
    assert_eq!(dropped.0, slow.peer_id().to_string());
    assert!(dropped.1 >= 1, "{dropped:?}");
    let counts = relay.counters().await;
    assert!(
        count(&counts, "slow_peer_dropped") >= dropped.1,
        "{counts:?}"
    );
    // Everyone else is served meanwhile, and nobody was banned for it.
    deliver(&talker, &mut fast_events, "after the burst").await;
    assert!(relay.bans().await.is_empty());
}
