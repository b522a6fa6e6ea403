//! The page's warm-up: two nodes in the page connect over libp2p's memory transport, subscribe
//! to one topic and pass one signed text, then stop.
//!
//! V8 compiles a wasm function the first time it is called (lazy compilation), and that
//! compiling, not the network, is most of a page's first `connect()`: 67–95 ms against 18–25 ms
//! for a second connect in the same page (docs/benchmarks.md). The warm-up calls the same code
//! a relay connection runs (the node's start, Noise with the secp256k1 identity, yamux and
//! multistream-select over the erased stream type `transport.rs` gives every transport,
//! identify, gossipsub, an envelope signed and checked), so the shell runs it once the module
//! has loaded and before anyone connects. Nothing leaves the page and nothing is kept: both
//! nodes use fresh keys, no bootstrap store and no listener outside the page.

use std::time::Duration;

use futures::{future, StreamExt};
use libp2p::Multiaddr;
use rand::RngCore;

use crate::{
    identity::OperatorKey,
    net::{EventReceiver, Node, NodeConfig, NodeEvent},
    platform,
};

/// The warm-up's topic; a page never joins it otherwise.
const TOPIC: &str = "keep-light/warm-up";
/// Far more than the warm-up takes (tens of milliseconds); past it, both nodes stop anyway.
const DEADLINE: Duration = Duration::from_secs(5);

/// Runs the warm-up once; `Err` says why it stopped early (it is never needed to connect).
pub async fn run() -> Result<(), String> {
    // Memory addresses are process-wide: a random port keeps two warm-ups apart.
    let port = platform::rng().next_u64() | 1;
    let address: Multiaddr = format!("/memory/{port}")
        .parse()
        .map_err(|e| format!("warm-up address: {e}"))?;
    let listener_key = OperatorKey::generate();
    let (listener, listener_events) = Node::start(
        NodeConfig::new(listener_key.clone())
            .with_listen(vec![address.clone()])
            .with_topics(vec![TOPIC.into()]),
    )
    .await
    .map_err(|e| e.to_string())?;
    let dialer = Node::start(
        NodeConfig::new(OperatorKey::generate())
            .with_bootstrap(vec![format!("{address}/p2p/{}", listener_key.peer_id())])
            .with_bootstrap_target(1)
            .with_topics(vec![TOPIC.into()]),
    )
    .await;
    let outcome = match dialer {
        Ok((dialer, dialer_events)) => {
            let exchange = async {
                wait_for(dialer_events, |e| {
                    matches!(e, NodeEvent::PeerSubscribed { .. })
                })
                .await?;
                dialer
                    .publish(TOPIC, b"warm-up".to_vec())
                    .await
                    .map_err(|e| format!("warm-up publish: {e}"))?;
                wait_for(listener_events, |e| matches!(e, NodeEvent::Message { .. })).await
            };
            let outcome =
                match future::select(Box::pin(exchange), Box::pin(platform::sleep(DEADLINE))).await
                {
                    future::Either::Left((outcome, _)) => outcome,
                    future::Either::Right(_) => Err("warm-up timed out".to_owned()),
                };
            dialer.shutdown().await;
            outcome
        }
        Err(e) => Err(e.to_string()),
    };
    listener.shutdown().await;
    outcome
}

/// Reads `events` until one matches; `Err` when the node stopped first.
async fn wait_for(
    mut events: EventReceiver,
    wanted: impl Fn(&NodeEvent) -> bool,
) -> Result<(), String> {
    while let Some(event) = events.next().await {
        if wanted(&event) {
            return Ok(());
        }
    }
    Err("warm-up node stopped".to_owned())
}
