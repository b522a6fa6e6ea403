//! libp2p networking: the node, and one file per concern it is made of.
//!
//! # Overview
//! [`node`] holds `Node::start` and a thin event loop over the composed [`behaviour`], whose
//! parts are, in hook order: [`bans`], [`ip_limits`], libp2p's connection limits, the
//! [`firewall`] gate, [`pubsub`] (gossipsub behind the [`validation`] pipeline), identify,
//! [`liveness`], [`bootstrap`], [`attest`] and the [`relay`] server and client. Each part keeps a
//! sans-IO core and a thin `NetworkBehaviour` shell with its own timer. Around them: [`config`]
//! (what a node is told), [`events`] (what it reports), [`handle`] (the application's side),
//! [`types`] (what the parts share; imports nothing from `net`), [`channel`] (group channels
//! for protocol code), [`retransmit`] and [`transport`]. No import cycle: `scripts/check-imports.py`.
//!
//! # Usage
//! See [`node`]: `Node::start(NodeConfig::new(key)…)` returns a [`NodeHandle`] and the events.

pub mod attest;
pub mod bans;
pub mod behaviour;
pub mod bootstrap;
pub mod channel;
pub mod config;
pub mod events;
pub mod firewall;
pub mod handle;
pub mod ip_limits;
pub mod liveness;
pub mod node;
pub mod pubsub;
pub mod rate_limit;
pub mod relay;
pub mod retransmit;
pub mod transport;
pub mod types;
pub mod validation;
mod wrap;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod test_support;

pub use config::NodeConfig;
pub use events::{EventReceiver, NodeEvent, COUNTER_NAMES};
pub use handle::{Encoded, NodeHandle};
pub use node::{Node, StartError};
pub use types::{PublishError, Role, Router, TEXT_TYPE};
pub use validation::KindSpec;
