//! Shared by the browser test (`tests/browser.rs`) and the browser harnesses
//! (`benches/browser_rtt.rs`, `benches/browser_channel.rs`): the peers the driving script
//! started, and waiting on events. Each user takes a part of it.
#![allow(dead_code)]

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use keep_light::{
    identity::{Address, OperatorKey},
    net::{EventReceiver, NodeEvent},
    platform,
};

/// What the script (`scripts/test.sh`, `scripts/bench-browser.sh`) started before the browser:
/// passed at build time, so a missing value fails the run instead of skipping it.
pub struct Peers {
    /// The relay's `/ws` multiaddr.
    pub relay: &'static str,
    /// The same relay's `/webrtc-direct/certhash/…` multiaddr.
    pub relay_webrtc: &'static str,
    /// The native echo node's peer ID.
    pub native: &'static str,
    /// The topic both join.
    pub topic: &'static str,
}

/// A build-time setting; missing means the test was not started by its script.
fn setting(value: Option<&'static str>, name: &str) -> &'static str {
    value.unwrap_or_else(|| {
        panic!("{name} was not set when this test was built: run it through its script")
    })
}

impl Peers {
    pub fn from_build_env() -> Self {
        Self {
            relay: setting(
                option_env!("KEEP_LIGHT_TEST_RELAY"),
                "KEEP_LIGHT_TEST_RELAY",
            ),
            relay_webrtc: setting(
                option_env!("KEEP_LIGHT_TEST_RELAY_WEBRTC"),
                "KEEP_LIGHT_TEST_RELAY_WEBRTC",
            ),
            native: setting(
                option_env!("KEEP_LIGHT_TEST_NATIVE_PEER"),
                "KEEP_LIGHT_TEST_NATIVE_PEER",
            ),
            topic: setting(
                option_env!("KEEP_LIGHT_TEST_TOPIC"),
                "KEEP_LIGHT_TEST_TOPIC",
            ),
        }
    }
}

/// The group channel `scripts/lib.sh`'s `kl_start_group` set up: three native members that echo
/// its texts, and the browser's place in it.
pub struct Group {
    /// Every member's operator address, the browser's included.
    pub members: Vec<Address>,
    /// The browser's operator key (one of the members).
    pub key: OperatorKey,
}

impl Group {
    pub fn from_build_env() -> Self {
        let members = setting(
            option_env!("KEEP_LIGHT_TEST_GROUP"),
            "KEEP_LIGHT_TEST_GROUP",
        )
        .split(',')
        .map(|a| a.parse().expect("KEEP_LIGHT_TEST_GROUP holds addresses"))
        .collect();
        let key = setting(
            option_env!("KEEP_LIGHT_TEST_GROUP_KEY"),
            "KEEP_LIGHT_TEST_GROUP_KEY",
        );
        Self {
            members,
            key: OperatorKey::from_hex(key).expect("KEEP_LIGHT_TEST_GROUP_KEY is a secret"),
        }
    }
}

/// The next event accepted by `pick`, or `None` after `timeout`.
pub async fn wait_for<T>(
    events: &mut EventReceiver,
    timeout: Duration,
    mut pick: impl FnMut(&NodeEvent) -> Option<T>,
) -> Option<T> {
    let mut deadline = platform::sleep(timeout).fuse();
    loop {
        futures::select! {
            event = events.next() => {
                let event = event.expect("the node stopped");
                if let Some(found) = pick(&event) {
                    return Some(found);
                }
            }
            _ = deadline => return None,
        }
    }
}

/// The operator address (as events print it) of peer `peer`'s key: the `sender` of what it
/// signs. A message's `from` is only the peer that forwarded it (the relay, here).
pub fn signer_of(peer: &str) -> String {
    let peer = peer.parse().expect("a peer ID");
    Address::from_peer_id(&peer)
        .expect("a secp256k1 peer ID")
        .to_string()
}

/// Waits for `native` (a peer ID) to send `payload` back (the echo node's answer).
pub async fn echo_of(
    events: &mut EventReceiver,
    native: &str,
    payload: &[u8],
    timeout: Duration,
) -> bool {
    let native = signer_of(native);
    wait_for(events, timeout, |e| match e {
        NodeEvent::Message { sender, data, .. } if *sender == native && data == payload => Some(()),
        _ => None,
    })
    .await
    .is_some()
}
