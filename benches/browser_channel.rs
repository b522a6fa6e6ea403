//! Browser group-channel throughput harness (run by `scripts/bench-browser.sh`, not by the test
//! suite): in headless Chromium, the tab is the fourth member of a group with three native
//! `keep-light node --member … --echo` processes behind a loopback WebSocket relay. It asks for
//! a burst (`burst:N`); each native then publishes N texts at once, and the tab's handler counts
//! them. Prints `KEEP_LIGHT_BENCH {"tab_msgs_per_s","delivered","expected","dropped",
//! "burst_ms","first_ms"}`: envelope signature checks, the node's checks, dispatch and the
//! handler, all in the tab, from the request to the last burst message (`first_ms`: the
//! request to the first). Settings at build time, as the browser test: `KEEP_LIGHT_TEST_RELAY`,
//! `KEEP_LIGHT_TEST_GROUP`, `KEEP_LIGHT_TEST_GROUP_KEY`.
#![cfg(target_arch = "wasm32")]

use std::{cell::RefCell, rc::Rc, time::Duration};

use futures::FutureExt;
use keep_light::{
    net::{
        channel::{group_topic, Channel, ChannelConfig, Received, Registry},
        retransmit::Strategy,
        Node, NodeConfig,
    },
    platform::{self, Instant},
    wire::{Text, CHANNEL_TEXT_TYPE},
};
use wasm_bindgen_test::*;

#[path = "../tests/support/browser.rs"]
mod support;
use support::{Group, Peers};

wasm_bindgen_test_configure!(run_in_browser);

/// Texts each native publishes.
const BURST: usize = 3000;

#[derive(Default)]
struct Count {
    received: usize,
    first: Option<Instant>,
    last: Option<Instant>,
}

#[wasm_bindgen_test]
async fn group_burst_into_one_tab() {
    let Peers { relay, .. } = Peers::from_build_env();
    let Group { members, key } = Group::from_build_env();
    let natives = members.iter().filter(|a| **a != key.address()).count();
    let (node, _events) = Node::start(NodeConfig::new(key).with_bootstrap(vec![relay.into()]))
        .await
        .expect("node starts");

    let count: Rc<RefCell<Count>> = Rc::default();
    let mut registry = Registry::new();
    let sink = count.clone();
    registry.register(CHANNEL_TEXT_TYPE, move |m: Received<Text>| {
        if m.message.text.starts_with("burst-") {
            let now = platform::now();
            let mut count = sink.borrow_mut();
            count.received += 1;
            count.first.get_or_insert(now);
            count.last = Some(now);
        }
    });
    let config = ChannelConfig::new(group_topic(&members))
        .with_members(members.clone())
        .with_capacity(BURST * natives);
    let mut channel = Channel::open(&node, config, registry).await.unwrap();
    let request = Text {
        text: format!("burst:{BURST}"),
    };
    // The clock starts at the request: texts that arrive (and are checked) while the harness
    // waits for the first one are part of the burst.
    let start = platform::now();
    let _ = channel
        .send_retransmitted("request", CHANNEL_TEXT_TYPE, &request, Strategy::EveryTick)
        .await;
    // Handlers run as texts arrive; the request is republished after every 100 ms without one.
    let mut quiet = 0;
    while count.borrow().received == 0 {
        futures::select! {
            handled = channel.next().fuse() => assert!(handled.is_some(), "channel closed"),
            _ = platform::sleep(Duration::from_millis(100)).fuse() => {
                quiet += 1;
                assert!(quiet < 600, "no burst message arrived within a minute");
                channel.tick().await;
            }
        }
    }
    channel.end_context("request");

    let expected = BURST * natives;
    while count.borrow().received < expected {
        futures::select! {
            handled = channel.next().fuse() => assert!(handled.is_some(), "channel closed"),
            _ = platform::sleep(Duration::from_secs(5)).fuse() => break,
        }
    }
    let count = count.borrow();
    let since_start = |at: Option<Instant>| at.map_or(0.0, |at| (at - start).as_secs_f64());
    let seconds = since_start(count.last);
    wasm_bindgen_test::console_log!(
        "KEEP_LIGHT_BENCH {}",
        serde_json::json!({
            "tab_msgs_per_s": (count.received as f64 / seconds.max(1e-9)).round(),
            "delivered": count.received,
            "expected": expected,
            "dropped": expected - count.received,
            "burst_ms": (seconds * 1e4).round() / 10.0,
            "first_ms": (since_start(count.first) * 1e4).round() / 10.0,
        })
    );
}
