//! Plain types the node's parts share: a node's role, its pubsub router, why a publish failed,
//! and the free-text message type. A leaf: it imports nothing from `net`, so every part may
//! import it without a cycle.

/// Envelope type of free-text messages (`publish TOPIC TEXT`).
pub const TEXT_TYPE: &str = "net.Text";

/// What a node does in the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An operator: joins its own topics, publishes and receives.
    Member,
    /// Infrastructure: joins every topic a peer joins so it can route it, originates nothing and
    /// delivers nothing to the application.
    Relay,
}

/// How a network routes pubsub messages; every node of a network must use the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Router {
    /// Gossipsub: a mesh per topic plus lazy gossip, flood publishing (the default).
    #[default]
    Gossipsub,
    /// Floodsub routing: every message goes to every neighbour in its topic at once, with no
    /// mesh and no gossip (each connected peer is a gossipsub "explicit peer"), on the same
    /// signed wire: StrictSign, and our checks before anything is forwarded. rust-libp2p's
    /// floodsub crate is not used: it has no signatures (anyone can claim any author), forwards
    /// before validation, caps frames at 2 KiB, and reads one RPC per stream, so it cannot even
    /// follow gossipsub's long-lived streams (tried: it sees only the first RPC).
    Floodsub,
}

impl std::str::FromStr for Router {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gossipsub" => Ok(Self::Gossipsub),
            "floodsub" => Ok(Self::Floodsub),
            other => Err(format!("unknown router {other:?}: gossipsub or floodsub")),
        }
    }
}

/// Why a publish failed. The node keeps running in every case.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No connected peer is in the topic yet: wait for a `peer_subscribed` event and retry.
    #[error("no peer subscribed to the topic yet")]
    NoPeers,
    /// The envelope exceeds the size limit: send less.
    #[error("message too large: {0}")]
    TooLarge(String),
    /// The node has stopped.
    #[error("node stopped")]
    Stopped,
    /// Anything else gossipsub refused (duplicate, queues full, signing).
    #[error("{0}")]
    Other(String),
}
