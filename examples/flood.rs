//! A junk flooder for the tab flood test (`www/e2e/flood.test.mjs`).
//!
//! `cargo run --example flood -- --relay RELAY_TCP --target CIRCUIT --topic T [--messages 20000]`
//!
//! A bare libp2p peer that dials `target` (a tab's `…/p2p-circuit/p2p/<tab>` address, through
//! the relay at `relay`) and writes `messages` envelopes on `topic` whose signatures are junk,
//! in gossipsub frames of 100, all on one `/meshsub/1.1.0` stream, as fast as the circuit
//! takes them. It speaks gossipsub's wire format by hand, so nothing on its side checks or slows
//! what it sends. Prints JSON lines: `{"flooder":PEER}` first, `{"connected":PEER}` when the
//! target's connection is up, `{"sent":N,"bytes":B}` once the frames are handed to the
//! connection, and `{"closed":PEER,"cause":…}` when the target hangs up (the test expects a
//! ban); then exits.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
#[path = "../tests/support/meshsub.rs"]
mod meshsub;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::time::Duration;

    use clap::Parser;
    use futures::StreamExt as _;
    use keep_light::{identity::OperatorKey, wire::Envelope};
    use libp2p::{
        relay, request_response,
        swarm::{NetworkBehaviour, SwarmEvent},
        Multiaddr, PeerId,
    };
    use prost::Message as _;
    use serde_json::json;

    use super::meshsub::{anonymous, raw_behaviour, PubsubMessage, RawCodec, Rpc};

    /// Messages per gossipsub frame.
    const PER_FRAME: usize = 100;

    #[derive(Parser)]
    struct Args {
        /// The relay's TCP address (the circuit goes through it).
        #[arg(long)]
        relay: Multiaddr,
        /// The target's circuit address through that relay.
        #[arg(long)]
        target: Multiaddr,
        /// The pubsub topic the junk is published on.
        #[arg(long)]
        topic: String,
        /// How many junk messages to send.
        #[arg(long, default_value_t = 20_000)]
        messages: usize,
    }

    #[derive(NetworkBehaviour)]
    struct Flooder {
        relay: relay::client::Behaviour,
        raw: request_response::Behaviour<RawCodec>,
    }

    /// `count` junk envelopes in frames: well-formed texts from `key` whose signatures are
    /// random-looking bytes (low s, so only the recovery can refuse them). Nothing is signed:
    /// the flooder spends nothing per message.
    fn junk_frames(key: &OperatorKey, topic: &str, count: usize) -> Vec<u8> {
        let mut signature = vec![0x5a; 64];
        signature.push(0);
        let envelopes = (0..count).map(|i| Envelope {
            r#type: "net.Text".into(),
            payload: b"junk".to_vec(),
            sequence: 1 + i as u64,
            sender: key.address().0.to_vec(),
            signature: signature.clone(),
            ..Default::default()
        });
        let messages: Vec<PubsubMessage> = envelopes
            .map(|envelope| anonymous(topic, envelope.encode_to_vec()))
            .collect();
        messages
            .chunks(PER_FRAME)
            .flat_map(|publish| {
                Rpc {
                    publish: publish.to_vec(),
                }
                .encode_length_delimited_to_vec()
            })
            .collect()
    }

    #[tokio::main(flavor = "current_thread")]
    pub async fn main() {
        let args = Args::parse();
        let key = OperatorKey::generate();
        let target: PeerId = match args.target.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(peer)) => peer,
            _ => panic!("--target must end in /p2p/<peer>"),
        };
        let raw = raw_behaviour();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key.libp2p_keypair())
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("tcp transport")
            .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
            .expect("relay client transport")
            .with_behaviour(|_, relay| Flooder { relay, raw })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build();
        println!("{}", json!({ "flooder": key.peer_id().to_string() }));
        let frames = junk_frames(&key, &args.topic, args.messages);
        swarm.dial(args.relay.clone()).expect("dial the relay");
        let mut relay_up = false;
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), swarm.next())
                .await
                .expect("the target neither connected nor hung up within 60 s")
                .expect("the swarm runs");
            match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => {
                    println!("{}", json!({ "connected": peer_id.to_string() }));
                    swarm
                        .behaviour_mut()
                        .raw
                        .send_request(&target, frames.clone());
                    println!(
                        "{}",
                        json!({ "sent": args.messages, "bytes": frames.len() })
                    );
                }
                SwarmEvent::ConnectionEstablished { .. } if !relay_up => {
                    relay_up = true;
                    swarm.dial(args.target.clone()).expect("dial the target");
                }
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } if peer_id == target => {
                    let cause = cause.map(|c| c.to_string());
                    println!(
                        "{}",
                        json!({ "closed": peer_id.to_string(), "cause": cause })
                    );
                    return;
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                    panic!("dial {peer_id:?} failed: {error}")
                }
                _ => {}
            }
        }
    }
}
