//! libp2p networking: the node's event loop, its composed behaviour, transports, bootstrap and
//! the attestation exchange.

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
