//! The beacon over the real network in one process: a relay and native members over TCP
//! loopback (real swarms, noise, yamux, gossipsub), the dev chain behind its JSON-RPC server,
//! each member's service driven by `member::driver` through an `RpcChain` — as separate
//! processes would run it, minus the processes (`tests/cli.rs` runs those).
#![cfg(not(target_arch = "wasm32"))]

use std::{cell::RefCell, rc::Rc, sync::Arc, time::Duration};

use futures::StreamExt;
use keep_light::{
    beacon::entry,
    chain::{
        local::LocalChain,
        rpc::{self, RpcChain},
        rules::Config,
        watch::{self, EntryView, Watched},
        BeaconChain, Served,
    },
    identity::OperatorKey,
    member::{
        driver::{self, KeyValueStore},
        Member, MemberEvent,
    },
    net::{Node, NodeConfig, NodeEvent, NodeHandle, Role},
};

async fn start_relay() -> (NodeHandle, String) {
    let config = NodeConfig::new(OperatorKey::generate())
        .with_role(Role::Relay)
        .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]);
    let (relay, mut events) = Node::start(config).await.unwrap();
    let address = loop {
        match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
            Ok(Some(NodeEvent::Listening { address })) => break address,
            Ok(Some(_)) => {}
            other => panic!("relay did not listen: {other:?}"),
        }
    };
    tokio::task::spawn_local(async move { while events.next().await.is_some() {} });
    (relay, address)
}

/// A member node on `relay`, its service running against `chain_url`; its reports go to
/// `reports`.
async fn start_member(
    key: OperatorKey,
    relay: &str,
    chain_url: &str,
    reports: Rc<RefCell<Vec<MemberEvent>>>,
) -> NodeHandle {
    let config = NodeConfig::new(key.clone()).with_bootstrap(vec![relay.to_owned()]);
    let (node, mut events) = Node::start(config).await.unwrap();
    tokio::task::spawn_local(async move { while events.next().await.is_some() {} });
    let chain: Arc<dyn BeaconChain> = Arc::new(RpcChain::new(chain_url).unwrap());
    chain.faucet(key.address()).await.unwrap();
    let store = KeyValueStore::new(format!("test/{}", key.address()));
    let member = Member::new(key, rand::random());
    tokio::task::spawn_local(driver::run(
        node.clone(),
        chain,
        member,
        Rc::new(store),
        move |event| reports.borrow_mut().push(event),
    ));
    node
}

/// Waits until `count` entries are on chain (requesting one whenever none is pending).
async fn entries(chain: &LocalChain, count: usize, within: Duration) -> Vec<Served> {
    let deadline = tokio::time::Instant::now() + within;
    let mut asked = 0;
    loop {
        let served: Vec<Served> = (0..count as u64)
            .filter_map(|r| chain.with_rules(|rules| rules.served(r).copied()))
            .collect();
        if served.len() == count {
            return served;
        }
        let has_group = chain.with_rules(|rules| !rules.groups().is_empty());
        if has_group && asked <= served.len() {
            chain.request_entry().await.unwrap();
            asked += 1;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} entries; groups {:?}",
            served.len(),
            chain.with_rules(|rules| rules.groups().len())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn five_native_members_make_a_group_over_a_relay_and_chain_entries() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let config = Config::dev().with_group(5, 3).with_phase_blocks(20);
            let chain = LocalChain::from_config(config).unwrap();
            chain.spawn_miner(Duration::from_millis(100));
            let url = rpc::spawn_server("127.0.0.1:0".parse().unwrap(), Arc::new(chain.clone()))
                .await
                .unwrap();
            // A reader of the beacon, as a tab follows it: every entry, verified on its side.
            let reader: Arc<dyn BeaconChain> = Arc::new(RpcChain::new(&url).unwrap());
            let watched: Rc<RefCell<Vec<Watched>>> = Rc::default();
            let seen = watched.clone();
            tokio::task::spawn_local(watch::follow(reader.clone(), move |event| {
                seen.borrow_mut().push(event);
                true
            }));
            let (_relay, relay_address) = start_relay().await;
            let reports: Vec<Rc<RefCell<Vec<MemberEvent>>>> =
                (0..5).map(|_| Rc::default()).collect();
            let mut nodes = Vec::new();
            for member_reports in &reports {
                let node = start_member(
                    OperatorKey::generate(),
                    &relay_address,
                    &url,
                    member_reports.clone(),
                )
                .await;
                nodes.push(node);
            }
            let served = entries(&chain, 2, Duration::from_secs(60)).await;
            let mut previous = entry::genesis();
            for served in &served {
                let group = chain.with_rules(|rules| rules.groups()[served.group as usize].clone());
                assert!(entry::verify_entry(
                    &group.group_key,
                    &previous,
                    &served.entry
                ));
                assert_eq!(served.random, entry::random_number(&served.entry));
                previous = served.entry;
            }
            // The reader saw both entries, verified them, and knows the group's operators; its
            // own request resolves with the entry that answers it.
            let genesis = chain.with_rules(|rules| rules.groups()[0].clone());
            let views = |watched: &[Watched]| -> Vec<EntryView> {
                watched
                    .iter()
                    .filter_map(|w| match w {
                        Watched::Entry(view) => Some(view.clone()),
                        _ => None,
                    })
                    .collect()
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while views(&watched.borrow()).len() < 2 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let seen = views(&watched.borrow());
            assert_eq!(seen.len(), 2, "{:?}", watched.borrow());
            for (view, served) in seen.iter().zip(&served) {
                assert!(view.verified);
                assert_eq!(
                    (view.request, view.entry, view.random),
                    (served.request, served.entry, served.random)
                );
                assert_eq!(view.group_members, genesis.operators);
            }
            assert!(watched
                .borrow()
                .iter()
                .any(|w| matches!(w, Watched::Block { .. })));
            let answer = watch::request(&*reader).await.unwrap();
            assert!(answer.verified);
            assert_eq!(answer.request, 2);
            assert_eq!(answer.previous, served[1].entry);
            // Every member was in the genesis group (5 seats, 5 operators) and saw its DKG
            // phase by phase; nobody misbehaved.
            assert!(genesis.misbehaved.is_empty(), "{genesis:?}");
            for member_reports in &reports {
                let reports = member_reports.borrow();
                let phases = reports
                    .iter()
                    .filter(|e| matches!(e, MemberEvent::DkgPhase { .. }))
                    .count();
                assert!(phases >= 7, "{reports:?}");
                assert!(reports
                    .iter()
                    .any(|e| matches!(e, MemberEvent::Group { group: 0, .. })));
                let refused: Vec<_> = reports
                    .iter()
                    .filter(|e| matches!(e, MemberEvent::Refused { .. }))
                    .collect();
                assert!(refused.is_empty(), "{refused:?}");
            }
            for node in nodes {
                node.shutdown().await;
            }
        })
        .await;
}
