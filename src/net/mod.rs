//! libp2p networking: the node's event loop, its composed behaviour, transports, bootstrap and
//! the attestation exchange.

pub mod attest;
pub mod behaviour;
pub mod bootstrap;
pub mod channel;
pub mod firewall;
pub mod liveness;
pub mod node;
pub mod retransmit;
pub mod transport;
pub mod validation;

pub use behaviour::Router;
pub use node::{
    Encoded, EventReceiver, KindSpec, Node, NodeConfig, NodeEvent, NodeHandle, PublishError, Role,
    StartError, COUNTER_NAMES,
};
