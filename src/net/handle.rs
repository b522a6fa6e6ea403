//! [`NodeHandle`]: the application's side of a running node.
//!
//! # Overview
//! A handle only sends commands to the event loop (and awaits a oneshot answer where there
//! is one), so it is cheap to clone and the same on tokio and on the browser's single thread.
//! When every handle is dropped the node stops; [`NodeHandle::shutdown`] stops it and waits.
//!
//! # Usage
//! ```no_run
//! # async fn demo(node: keep_light::net::NodeHandle) {
//! node.publish("keep-light/demo/1", b"hello".to_vec()).await.ok();
//! let counters = node.counters().await;
//! # let _ = counters; }
//! ```

use std::{collections::HashMap, time::Duration};

use futures::channel::{mpsc, oneshot};
use libp2p::{Multiaddr, PeerId};

pub use super::types::Encoded;
use super::{
    firewall::BanRecord,
    types::{PublishError, TEXT_TYPE},
    validation::{Awaiting, Delivery, KindSpec, MembershipFilter},
};
use crate::identity::Address;

/// Requests from handles to the event loop.
#[derive(Debug)]
pub(super) enum Command {
    Publish {
        topic: String,
        kind: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
    PublishRaw {
        topic: String,
        bytes: Vec<u8>,
        reply: oneshot::Sender<Result<(), PublishError>>,
    },
    /// Publishes and returns the envelope bytes (for retransmission).
    PublishEnvelope {
        topic: String,
        kind: String,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<Encoded, PublishError>>,
    },
    Join(String),
    Leave(String),
    OpenChannel {
        topic: String,
        filter: MembershipFilter,
        kinds: Vec<KindSpec>,
        capacity: usize,
        max_backlog: usize,
        reply: oneshot::Sender<mpsc::Receiver<Delivery>>,
    },
    RegisterKind {
        topic: String,
        kind: KindSpec,
    },
    ReportValidation {
        awaiting: Awaiting,
        verdict: Result<(), String>,
    },
    CloseChannel(String),
    Counters(oneshot::Sender<HashMap<String, u64>>),
    MeshPeers(String, oneshot::Sender<usize>),
    Ban {
        peer: PeerId,
        duration: Option<Duration>,
        reason: String,
    },
    Unban(PeerId),
    RetryBootstrap,
    PauseBootstrap,
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    Bans(oneshot::Sender<Vec<BanRecord>>),
    PeerOperator(PeerId, oneshot::Sender<Option<Address>>),
    Shutdown(oneshot::Sender<()>),
}

/// The application's side of a running node. Dropping every handle stops the node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(super) commands: mpsc::UnboundedSender<Command>,
    pub(super) peer_id: PeerId,
    pub(super) address: Address,
}

impl NodeHandle {
    /// This node's peer ID.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's operator address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Publishes `text` on `topic` as a [`TEXT_TYPE`] envelope.
    pub async fn publish(&self, topic: &str, text: Vec<u8>) -> Result<(), PublishError> {
        self.publish_typed(topic, TEXT_TYPE, text).await
    }

    /// Publishes an envelope of type `kind` carrying `payload` on `topic`.
    pub async fn publish_typed(
        &self,
        topic: &str,
        kind: &str,
        payload: Vec<u8>,
    ) -> Result<(), PublishError> {
        self.request(|reply| Command::Publish {
            topic: topic.to_owned(),
            kind: kind.to_owned(),
            payload,
            reply,
        })
        .await
    }

    /// Publishes `bytes` exactly as given, without an envelope. For interception tests that
    /// play a misbehaving peer (garbage, forged senders, oversize); a correct node never needs it.
    #[doc(hidden)]
    pub async fn publish_raw(&self, topic: &str, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.request(|reply| Command::PublishRaw {
            topic: topic.to_owned(),
            bytes,
            reply,
        })
        .await
    }

    /// Sends the command built by `command` and waits for the event loop's answer.
    async fn request(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<(), PublishError>>) -> Command,
    ) -> Result<(), PublishError> {
        self.ask(command)
            .await
            .unwrap_or(Err(PublishError::Stopped))
    }

    /// Sends the command built by `command` and waits for its answer; `None` when the node has
    /// stopped.
    async fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, answer) = oneshot::channel();
        self.commands.unbounded_send(command(reply)).ok()?;
        answer.await.ok()
    }

    /// Joins `topic`; a `subscribed` event confirms it.
    pub fn join(&self, topic: &str) {
        let _ = self
            .commands
            .unbounded_send(Command::Join(topic.to_owned()));
    }

    /// Leaves `topic`.
    pub fn leave(&self, topic: &str) {
        let _ = self
            .commands
            .unbounded_send(Command::Leave(topic.to_owned()));
    }

    /// Publishes an envelope and returns its encoded bytes, which [`NodeHandle::republish`] can
    /// send again unchanged (same sequence: receivers de-duplicate it). Fails only when the
    /// envelope cannot be built (too large) or the node has stopped; the publish itself may
    /// still have failed (see [`Encoded::sent`]).
    pub async fn publish_envelope(
        &self,
        topic: &str,
        kind: &str,
        payload: Vec<u8>,
    ) -> Result<Encoded, PublishError> {
        self.ask(|reply| Command::PublishEnvelope {
            topic: topic.to_owned(),
            kind: kind.to_owned(),
            payload,
            reply,
        })
        .await
        .unwrap_or(Err(PublishError::Stopped))
    }

    /// Publishes envelope bytes from [`NodeHandle::publish_envelope`] again (retransmission).
    pub async fn republish(&self, topic: &str, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.publish_raw(topic, bytes).await
    }

    /// Opens a channel on `topic`: joins it, and from now on delivers its messages that pass
    /// the checks of [`crate::net::validation`] into the returned queue (`capacity` messages;
    /// up to `max_backlog` more wait with their validation pending). Use
    /// [`crate::net::channel::Channel`] rather than this directly.
    pub async fn open_channel(
        &self,
        topic: &str,
        filter: MembershipFilter,
        kinds: Vec<KindSpec>,
        capacity: usize,
        max_backlog: usize,
    ) -> Result<mpsc::Receiver<Delivery>, PublishError> {
        self.ask(|reply| Command::OpenChannel {
            topic: topic.to_owned(),
            filter,
            kinds,
            capacity,
            max_backlog,
            reply,
        })
        .await
        .ok_or(PublishError::Stopped)
    }

    /// Accepts messages of `kind` on `topic`'s channel from now on.
    pub fn register_kind(&self, topic: &str, kind: KindSpec) {
        let _ = self.commands.unbounded_send(Command::RegisterKind {
            topic: topic.to_owned(),
            kind,
        });
    }

    /// The application's verdict on a delivered message that awaited it: `Ok` accepts it
    /// (gossipsub forwards it), `Err(detail)` rejects it as `invalid` (penalising its source).
    pub fn report_validation(&self, awaiting: Awaiting, verdict: Result<(), String>) {
        let _ = self
            .commands
            .unbounded_send(Command::ReportValidation { awaiting, verdict });
    }

    /// Closes `topic`'s channel and leaves the topic.
    pub fn close_channel(&self, topic: &str) {
        let _ = self
            .commands
            .unbounded_send(Command::CloseChannel(topic.to_owned()));
    }

    /// Every counter by reason: rejected messages, channel outcomes (`delivered`, `duplicate`,
    /// `overloaded`, `held`, …); the names are [`COUNTER_NAMES`](super::COUNTER_NAMES). Empty when the node has
    /// stopped.
    pub async fn counters(&self) -> HashMap<String, u64> {
        self.ask(Command::Counters).await.unwrap_or_default()
    }

    /// Bans `peer`: for `duration`, or for the ban policy's next step when `None`. A `banned`
    /// event confirms it.
    pub fn ban(&self, peer: PeerId, duration: Option<Duration>, reason: &str) {
        let _ = self.commands.unbounded_send(Command::Ban {
            peer,
            duration,
            reason: reason.to_owned(),
        });
    }

    /// Dials `address` (e.g. another peer's `<relay>/p2p-circuit/p2p/<peer>`); `connected`
    /// follows on success. Fails at once on an address no transport takes.
    pub async fn dial(&self, address: &str) -> Result<(), String> {
        let address: Multiaddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
        self.ask(|reply| Command::Dial(address, reply))
            .await
            .unwrap_or_else(|| Err("the node has stopped".into()))
    }

    /// The network is back (a browser's `online` event): redials every bootstrap relay that
    /// waits out a backoff, now.
    pub fn retry_bootstrap(&self) {
        let _ = self.commands.unbounded_send(Command::RetryBootstrap);
    }

    /// The network is gone (a browser's `offline` event): no bootstrap dials until
    /// [`NodeHandle::retry_bootstrap`], so backoffs do not grow while nothing can succeed.
    pub fn pause_bootstrap(&self) {
        let _ = self.commands.unbounded_send(Command::PauseBootstrap);
    }

    /// Lifts a running ban (an `unbanned` event follows); the offences stay on record.
    pub fn unban(&self, peer: PeerId) {
        let _ = self.commands.unbounded_send(Command::Unban(peer));
    }

    /// Every ban and remembered offence, for persistence ([`NodeConfig::with_bans`](super::NodeConfig::with_bans)).
    pub async fn bans(&self) -> Vec<BanRecord> {
        self.ask(Command::Bans).await.unwrap_or_default()
    }

    /// How many peers are in this node's gossipsub mesh for `topic` (0 under the floodsub
    /// router, which floods to every neighbour instead; 0 when stopped).
    pub async fn mesh_peers(&self, topic: &str) -> usize {
        let topic = topic.to_owned();
        self.ask(|reply| Command::MeshPeers(topic, reply))
            .await
            .unwrap_or_default()
    }

    /// The operator address behind a connected peer: from its verified attestation, else from its
    /// key. `None` when unknown, not connected, or the node has stopped.
    pub async fn peer_operator(&self, peer: PeerId) -> Option<Address> {
        self.ask(|reply| Command::PeerOperator(peer, reply))
            .await
            .flatten()
    }

    /// Stops the node: closes its connections and ends the event loop; resolves when done.
    pub async fn shutdown(&self) {
        self.ask(Command::Shutdown).await;
    }
}
