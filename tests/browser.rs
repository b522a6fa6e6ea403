//! Browser end-to-end: the wasm node in headless Chromium exchanges messages with a native node
//! through a native relay over WebSocket.
//!
//! This test starts nothing itself. `scripts/test.sh` starts a relay and a native echo node
//! (`keep-light node --echo`) that also publishes `native-tick-N` lines, and passes in at build
//! time: `KEEP_LIGHT_TEST_RELAY` (relay /ws multiaddr), `KEEP_LIGHT_TEST_NATIVE_PEER` (the
//! native node's peer ID) and `KEEP_LIGHT_TEST_TOPIC`. A missing variable fails the test.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use keep_light::{
    identity::OperatorKey,
    net::{Node, NodeConfig, NodeEvent, PublishError},
};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[path = "support/browser.rs"]
mod support;
use support::{echo_of, wait_for, Peers};

#[wasm_bindgen_test]
async fn browser_and_native_node_exchange_messages_through_the_relay() {
    let Peers {
        relay,
        native,
        topic,
    } = Peers::from_build_env();

    // A bad bootstrap entry must not stop the node from using the good one.
    let config = NodeConfig::new(OperatorKey::generate())
        .with_bootstrap(vec!["not-a-multiaddr".into(), relay.into()])
        .with_topics(vec![topic.into()]);
    let (node, mut events) = Node::start(config).await.expect("node starts");

    wait_for(&mut events, Duration::from_secs(5), |e| {
        matches!(e, NodeEvent::BootstrapInvalid { .. }).then_some(())
    })
    .await
    .expect("the malformed bootstrap address is reported");

    // native → browser: the native node publishes a tick every few hundred milliseconds.
    let tick = wait_for(&mut events, Duration::from_secs(30), |e| match e {
        NodeEvent::Message {
            from,
            data,
            topic: t,
            ..
        } if from == native && t == topic => {
            Some(String::from_utf8(data.clone()).expect("ticks are text"))
        }
        _ => None,
    })
    .await
    .expect("a message from the native node arrives");
    assert!(
        tick.starts_with("native-tick-"),
        "unexpected payload {tick:?}"
    );

    // browser → native: the native echo node republishes what it receives, so its echo proves
    // it got our message; scripts/test.sh also checks the native node's own output.
    let hello = format!("browser-hello-{}", node.peer_id());
    for attempt in 0.. {
        match node.publish(topic, hello.clone().into_bytes()).await {
            Ok(()) | Err(PublishError::NoPeers) => {}
            Err(e) => panic!("publish failed: {e}"),
        }
        let echoed = echo_of(
            &mut events,
            native,
            hello.as_bytes(),
            Duration::from_millis(500),
        )
        .await;
        if echoed {
            break;
        }
        assert!(attempt < 40, "the native node never echoed our message");
    }
    node.shutdown().await;
}
