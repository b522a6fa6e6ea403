//! Group channels: topic names, the membership filter, and the typed handler registry (sans-IO).
//!
//! # Overview
//! Protocols never see the swarm. A channel is a pubsub topic, named from the group's members
//! ([`group_topic`]) or from a DKG seed ([`dkg_topic`]) as DESIGN.md section 4 fixes. Every
//! envelope that passed the inline checks (size, decode, author = sender) and the channel's
//! [`MembershipFilter`] is handed to [`Registry::dispatch`], which routes it by its `type` to the
//! handler registered for that type, like an HTTP router: the payload is decoded as that
//! handler's protobuf message, a per-handler [`Deduplicator`] drops retransmitted copies, and the
//! handler sees each message once. Unknown types, undecodable payloads and replays are refused
//! with a reason the caller counts.
//!
//! # Usage
//! ```
//! use keep_light::{identity::Address, net::channel::{Registry, Received}, wire::Envelope};
//! #[derive(Clone, PartialEq, prost::Message)]
//! struct Share { #[prost(bytes = "vec", tag = "1")] signature: Vec<u8> }
//!
//! let mut registry = Registry::new();
//! registry.register("beacon.SignatureShare", |share: Received<Share>| {
//!     println!("share from {}: {} bytes", share.sender, share.message.signature.len());
//! });
//! let envelope = Envelope {
//!     r#type: "beacon.SignatureShare".into(),
//!     payload: prost::Message::encode_to_vec(&Share { signature: vec![1; 64] }),
//!     sender: vec![7; 20], sequence: 1, group: vec![], signature: vec![],
//! };
//! registry.dispatch(libp2p::PeerId::random(), Address([7; 20]), envelope).unwrap();
//! ```
//!
//! [`Channel`] puts it together over a running node: it opens the topic's channel in the node
//! (whose event loop runs the membership, type, decode and de-duplication checks before
//! accepting a message, see [`super::validation`]), dispatches what arrives through its
//! [`Registry`], publishes typed messages, and republishes them on ticks until their context
//! ends ([`super::retransmit`]).

use std::collections::HashMap;

use libp2p::PeerId;
use sha3::{Digest, Keccak256};

use std::{
    future::Future,
    task::{Context, Poll},
};

use futures::{
    channel::mpsc, future::LocalBoxFuture, stream::FuturesUnordered, FutureExt, StreamExt,
};

pub use super::validation::MembershipFilter;
use super::{
    handle::NodeHandle,
    retransmit::{Deduplicator, Duplicate, Retransmitter, Strategy},
    types::PublishError,
    validation::{payload_check, Delivery, KindSpec, PayloadCheck},
};
use crate::{identity::Address, wire::Envelope};

/// The topic of the group whose seats are held by `members` (an operator holding several seats
/// appears several times): `keep-light/group/<hex(keccak256(sorted addresses))>/1`.
pub fn group_topic(members: &[Address]) -> String {
    let mut sorted = members.to_vec();
    sorted.sort();
    let mut hasher = Keccak256::new();
    for member in &sorted {
        hasher.update(member.as_bytes());
    }
    format!("keep-light/group/{}/1", hex::encode(hasher.finalize()))
}

/// The DKG channel of the selection made from `seed`: `keep-light/dkg/<hex(seed)>/1`.
pub fn dkg_topic(seed: &[u8]) -> String {
    format!("keep-light/dkg/{}/1", hex::encode(seed))
}

/// A decoded message as its handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Received<M> {
    /// The peer that forwarded it to us (the author, or a relay).
    pub from: PeerId,
    /// The sender's operator address: its key signed the envelope (checked before dispatch).
    pub sender: Address,
    /// The sender's sequence number (retransmissions repeat it).
    pub sequence: u64,
    /// The decoded payload.
    pub message: M,
}

/// Why an envelope reached no handler. The caller counts the reason; `UnknownType` and
/// `Undecodable` also penalise the author (a correct peer sends neither), a `Duplicate::Seen` is
/// a normal retransmission and must not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No handler is registered for this `type`.
    #[error("no handler for message type {0:?}")]
    UnknownType(String),
    /// The payload is not a valid message of the registered type.
    #[error("payload of {kind:?} does not decode: {error}")]
    Undecodable {
        /// The envelope type.
        kind: String,
        /// The decoder's complaint.
        error: String,
    },
    /// Seen before (retransmission) or older than the window (replay).
    #[error("{0}")]
    Duplicate(Duplicate),
    /// The type's application validator refused it (the node rejected it as `invalid`).
    #[error("invalid: {0}")]
    Invalid(String),
}

impl DispatchError {
    /// A short stable name for counters and events.
    pub fn reason(&self) -> &'static str {
        match self {
            DispatchError::UnknownType(_) => "unknown_type",
            DispatchError::Undecodable { .. } => "undecodable_payload",
            DispatchError::Duplicate(Duplicate::Seen) => "duplicate",
            DispatchError::Duplicate(Duplicate::Replay) => "replay",
            DispatchError::Invalid(_) => "invalid",
        }
    }
}

/// Decodes a payload as the registered type, de-duplicates it, and calls the handler.
type Handle =
    Box<dyn FnMut(&mut Deduplicator, PeerId, Address, &Envelope) -> Result<(), DispatchError>>;

/// Decodes a payload and starts the type's application validator on it.
type Validate = Box<
    dyn FnMut(PeerId, Address, &Envelope) -> Option<LocalBoxFuture<'static, Result<(), String>>>,
>;

struct Entry {
    handle: Handle,
    seen: Deduplicator,
    check: PayloadCheck,
    validate: Option<Validate>,
}

/// Message type → decoder and handler, one per type.
#[derive(Default)]
pub struct Registry {
    handlers: HashMap<String, Entry>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("types", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry: every type is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes envelopes of type `kind` to `handler`, decoded as `M`. Registering a type again
    /// replaces its handler (and its de-duplication memory).
    pub fn register<M, F>(&mut self, kind: &str, mut handler: F)
    where
        M: prost::Message + Default + 'static,
        F: FnMut(Received<M>) + 'static,
    {
        let handle: Handle = Box::new(move |seen, from, sender, envelope| {
            // Decode before de-duplicating: a forged copy must not burn the sequence number.
            let message =
                M::decode(envelope.payload.as_slice()).map_err(|e| DispatchError::Undecodable {
                    kind: envelope.r#type.clone(),
                    error: e.to_string(),
                })?;
            seen.check(sender, envelope.sequence)
                .map_err(DispatchError::Duplicate)?;
            handler(Received {
                from,
                sender,
                sequence: envelope.sequence,
                message,
            });
            Ok(())
        });
        self.handlers.insert(
            kind.to_owned(),
            Entry {
                handle,
                seen: Deduplicator::default(),
                check: payload_check::<M>(),
                validate: None,
            },
        );
    }

    /// Like [`Registry::register`], with an application validator that runs before the message
    /// is accepted: gossipsub neither forwards it nor hands it to `handler` until `validator`'s
    /// future says `Ok`; an `Err(detail)` rejects it as `invalid` and penalises its source (use
    /// it for checks too slow for the event loop, e.g. a signature share's pairing check).
    /// [`Channel`] runs validators concurrently, a bounded number at a time.
    pub fn register_validated<M, V, Fut, F>(&mut self, kind: &str, mut validator: V, handler: F)
    where
        M: prost::Message + Default + 'static,
        V: FnMut(Received<M>) -> Fut + 'static,
        Fut: Future<Output = Result<(), String>> + 'static,
        F: FnMut(Received<M>) + 'static,
    {
        self.register(kind, handler);
        let validate: Validate = Box::new(move |from, sender, envelope| {
            let message = M::decode(envelope.payload.as_slice()).ok()?;
            Some(
                validator(Received {
                    from,
                    sender,
                    sequence: envelope.sequence,
                    message,
                })
                .boxed_local(),
            )
        });
        if let Some(entry) = self.handlers.get_mut(kind) {
            entry.validate = Some(validate);
        }
    }

    /// Starts the application validator of `envelope`'s type; `None` when the type has none
    /// (or the payload does not decode, which the node has already ruled out).
    fn validation(
        &mut self,
        from: PeerId,
        sender: Address,
        envelope: &Envelope,
    ) -> Option<LocalBoxFuture<'static, Result<(), String>>> {
        let validate = self.handlers.get_mut(&envelope.r#type)?.validate.as_mut()?;
        validate(from, sender, envelope)
    }

    /// Each registered type with its payload check and whether the application validates it
    /// (what the node's event loop checks with).
    pub fn kinds(&self) -> Vec<KindSpec> {
        self.handlers
            .iter()
            .map(|(kind, entry)| KindSpec {
                kind: kind.clone(),
                check: entry.check,
                app_validated: entry.validate.is_some(),
            })
            .collect()
    }

    /// Removes the handler of `kind`; its messages become unknown.
    pub fn unregister(&mut self, kind: &str) {
        self.handlers.remove(kind);
    }

    /// Whether a handler is registered for `kind`.
    pub fn handles(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// Hands an envelope that passed the inline checks to its handler; see [`DispatchError`]
    /// for refusals. The handler runs before this returns.
    pub fn dispatch(
        &mut self,
        from: PeerId,
        sender: Address,
        envelope: Envelope,
    ) -> Result<(), DispatchError> {
        let Entry { handle, seen, .. } = self
            .handlers
            .get_mut(&envelope.r#type)
            .ok_or_else(|| DispatchError::UnknownType(envelope.r#type.clone()))?;
        handle(seen, from, sender, &envelope)
    }
}

/// Channel settings. Defaults (from [`ChannelConfig::new`]): open membership, a queue of 1,024
/// messages and a backlog of 8,192 held ones, retransmission memory of 1,024 messages, 64
/// application validations at a time.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    topic: String,
    filter: MembershipFilter,
    capacity: usize,
    max_backlog: usize,
    max_validations: usize,
}

impl ChannelConfig {
    /// A channel on `topic` ([`group_topic`], [`dkg_topic`] or a name).
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            filter: MembershipFilter::open(),
            capacity: 1024,
            max_backlog: 8192,
            max_validations: 64,
        }
    }

    /// Application validations run concurrently at most (at least 1); beyond it the channel
    /// stops taking messages, so the node holds them (back-pressure).
    pub fn with_max_validations(mut self, max: usize) -> Self {
        self.max_validations = max.max(1);
        self
    }

    /// Only these operators may publish (a group's members).
    pub fn with_members(mut self, members: impl IntoIterator<Item = Address>) -> Self {
        self.filter = MembershipFilter::members(members);
        self
    }

    /// Messages queued for the application before the node starts holding them.
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Messages held (validation pending) beyond the queue before any is dropped.
    pub fn with_max_backlog(mut self, max_backlog: usize) -> Self {
        self.max_backlog = max_backlog;
        self
    }
}

/// A group channel over a running node: typed send, typed receive, retransmission.
///
/// Call order: [`Channel::open`] with a [`Registry`] holding every handler; then, in one task,
/// [`Channel::next`] in a loop (it runs handlers), [`Channel::send`] /
/// [`Channel::send_retransmitted`] as the protocol needs, [`Channel::tick`] on every block or
/// timer tick, [`Channel::end_context`] when a phase ends, and [`Channel::close`] at the end.
pub struct Channel {
    topic: String,
    node: NodeHandle,
    inbox: mpsc::Receiver<Delivery>,
    registry: Registry,
    retransmitter: Retransmitter,
    validating: FuturesUnordered<LocalBoxFuture<'static, (Delivery, Result<(), String>)>>,
    max_validations: usize,
}

impl Channel {
    /// Joins `config`'s topic with `registry`'s types. Fails only if the node has stopped.
    pub async fn open(
        node: &NodeHandle,
        config: ChannelConfig,
        registry: Registry,
    ) -> Result<Channel, PublishError> {
        let inbox = node
            .open_channel(
                &config.topic,
                config.filter,
                registry.kinds(),
                config.capacity,
                config.max_backlog,
            )
            .await?;
        Ok(Channel {
            topic: config.topic,
            node: node.clone(),
            inbox,
            registry,
            retransmitter: Retransmitter::new(),
            validating: FuturesUnordered::new(),
            max_validations: config.max_validations,
        })
    }

    /// The topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Adds a handler after opening (messages of `kind` were refused as unknown until now).
    pub fn register<M, F>(&mut self, kind: &str, handler: F)
    where
        M: prost::Message + Default + 'static,
        F: FnMut(Received<M>) + 'static,
    {
        self.node.register_kind(
            &self.topic,
            KindSpec {
                kind: kind.to_owned(),
                check: payload_check::<M>(),
                app_validated: false,
            },
        );
        self.registry.register(kind, handler);
    }

    /// Publishes `message` as type `kind`, once.
    pub async fn send<M: prost::Message>(
        &self,
        kind: &str,
        message: &M,
    ) -> Result<(), PublishError> {
        self.node
            .publish_envelope(&self.topic, kind, message.encode_to_vec())
            .await
            .and_then(|encoded| encoded.sent)
    }

    /// Publishes `message` and republishes it on ticks per `strategy` until `context` ends.
    /// The message is kept for the ticks even when this first publish fails (`NoPeers` before
    /// the mesh forms); the returned error only says the first copy did not go out.
    pub async fn send_retransmitted<M: prost::Message>(
        &mut self,
        context: &str,
        kind: &str,
        message: &M,
        strategy: Strategy,
    ) -> Result<(), PublishError> {
        let encoded = self
            .node
            .publish_envelope(&self.topic, kind, message.encode_to_vec())
            .await?;
        self.retransmitter.send(context, encoded.bytes, strategy);
        encoded.sent
    }

    /// One tick: republishes what is due; returns how many copies went out.
    pub async fn tick(&mut self) -> usize {
        let mut sent = 0;
        for (_context, bytes) in self.retransmitter.on_tick() {
            if self.node.republish(&self.topic, bytes).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Stops republishing everything sent in `context`.
    pub fn end_context(&mut self, context: &str) {
        self.retransmitter.end_context(context);
    }

    /// Waits for the next message and runs its handler (after its application validator, for
    /// types that have one). `None` when the channel or node closed. The node has already
    /// checked the message; an `Err` is a validator's refusal, or a handler removed meanwhile.
    pub async fn next(&mut self) -> Option<Result<(), DispatchError>> {
        futures::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<(), DispatchError>>> {
        loop {
            if let Poll::Ready(Some((delivery, verdict))) = self.validating.poll_next_unpin(cx) {
                return Poll::Ready(Some(self.finish_validation(delivery, verdict)));
            }
            if self.validating.len() >= self.max_validations {
                return Poll::Pending;
            }
            match self.inbox.poll_next_unpin(cx) {
                Poll::Ready(Some(delivery)) => {
                    if let Some(result) = self.take(delivery) {
                        return Poll::Ready(Some(result));
                    }
                }
                Poll::Ready(None) if self.validating.is_empty() => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Dispatches a delivery, or starts its validation (then `None`).
    fn take(&mut self, delivery: Delivery) -> Option<Result<(), DispatchError>> {
        if let Some(awaiting) = &delivery.awaiting {
            match self
                .registry
                .validation(delivery.from, delivery.sender, &delivery.envelope)
            {
                Some(validation) => {
                    self.validating.push(
                        validation
                            .map(move |verdict| (delivery, verdict))
                            .boxed_local(),
                    );
                    return None;
                }
                // The type lost its validator since: accept it like any other.
                None => self.node.report_validation(awaiting.clone(), Ok(())),
            }
        }
        Some(
            self.registry
                .dispatch(delivery.from, delivery.sender, delivery.envelope),
        )
    }

    /// Tells the node the verdict and, when valid, runs the handler.
    fn finish_validation(
        &mut self,
        delivery: Delivery,
        verdict: Result<(), String>,
    ) -> Result<(), DispatchError> {
        if let Some(awaiting) = delivery.awaiting.clone() {
            self.node.report_validation(awaiting, verdict.clone());
        }
        verdict.map_err(DispatchError::Invalid)?;
        self.registry
            .dispatch(delivery.from, delivery.sender, delivery.envelope)
    }

    /// Runs handlers for every message already queued, without waiting; returns how many
    /// messages it finished (handled or refused). Validations follow the same bound as in
    /// [`Channel::next`]: those that have finished are concluded here, and new ones start while
    /// fewer than `max_validations` run; the rest wait for the next call.
    pub fn drain(&mut self) -> usize {
        let mut cx = Context::from_waker(futures::task::noop_waker_ref());
        let mut finished = 0;
        while let Poll::Ready(Some(_)) = self.poll_next(&mut cx) {
            finished += 1;
        }
        finished
    }

    /// Leaves the topic and frees the channel's state in the node.
    pub fn close(self) {
        self.node.close_channel(&self.topic);
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc};

    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Ping {
        #[prost(uint64, tag = "1")]
        n: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    struct Share {
        #[prost(bytes = "vec", tag = "1")]
        signature: Vec<u8>,
    }

    fn envelope(kind: &str, payload: Vec<u8>, sender: Address, sequence: u64) -> Envelope {
        Envelope {
            r#type: kind.into(),
            payload,
            sender: sender.as_bytes().to_vec(),
            sequence,
            group: Vec::new(),
            signature: Vec::new(),
        }
    }

    #[test]
    fn group_topics_follow_the_sorted_member_list() {
        let (a, b) = (Address([1; 20]), Address([2; 20]));
        assert_eq!(group_topic(&[a, b]), group_topic(&[b, a]));
        assert_ne!(group_topic(&[a, b]), group_topic(&[a, a, b]));
        let mut concatenated = [1u8; 20].to_vec();
        concatenated.extend([2u8; 20]);
        assert_eq!(
            group_topic(&[b, a]),
            format!(
                "keep-light/group/{}/1",
                hex::encode(Keccak256::digest(&concatenated))
            )
        );
        assert_eq!(dkg_topic(&[0xab, 0xcd]), "keep-light/dkg/abcd/1");
    }

    #[test]
    fn membership_filter() {
        let filter = MembershipFilter::members([Address([1; 20])]);
        assert!(filter.allows(&Address([1; 20])));
        assert!(!filter.allows(&Address([2; 20])));
        assert!(MembershipFilter::open().allows(&Address([2; 20])));
    }

    #[test]
    fn envelopes_reach_the_handler_of_their_type_once() {
        let pings = Rc::new(RefCell::new(Vec::new()));
        let shares = Rc::new(RefCell::new(Vec::new()));
        let mut registry = Registry::new();
        let sink = pings.clone();
        registry.register("test.Ping", move |m: Received<Ping>| {
            sink.borrow_mut().push(m.message.n)
        });
        let sink = shares.clone();
        registry.register("test.Share", move |m: Received<Share>| {
            sink.borrow_mut()
                .push((m.sender, m.message.signature.len()))
        });
        let (from, alice, bob) = (PeerId::random(), Address([1; 20]), Address([2; 20]));
        let ping = |n, sender, sequence| {
            envelope(
                "test.Ping",
                prost::Message::encode_to_vec(&Ping { n }),
                sender,
                sequence,
            )
        };

        registry.dispatch(from, alice, ping(7, alice, 1)).unwrap();
        // A retransmission of the same (sender, sequence) is dropped …
        let again = registry
            .dispatch(from, alice, ping(7, alice, 1))
            .unwrap_err();
        assert_eq!(again.reason(), "duplicate");
        // … but the same sequence from another sender, or for another handler, is new.
        registry.dispatch(from, bob, ping(8, bob, 1)).unwrap();
        let share = envelope(
            "test.Share",
            prost::Message::encode_to_vec(&Share {
                signature: vec![0; 64],
            }),
            alice,
            1,
        );
        registry.dispatch(from, alice, share).unwrap();
        assert_eq!(*pings.borrow(), vec![7, 8]);
        assert_eq!(*shares.borrow(), vec![(alice, 64)]);
    }

    #[test]
    fn unknown_types_undecodable_payloads_and_replays_are_refused() {
        let calls = Rc::new(RefCell::new(0));
        let mut registry = Registry::new();
        let sink = calls.clone();
        registry.register("test.Ping", move |_: Received<Ping>| {
            *sink.borrow_mut() += 1
        });
        let (from, alice) = (PeerId::random(), Address([1; 20]));

        let unknown = envelope("test.Nope", vec![], alice, 1);
        assert_eq!(
            registry
                .dispatch(from, alice, unknown)
                .unwrap_err()
                .reason(),
            "unknown_type"
        );
        // A garbage payload does not burn sequence 2: the real message still gets through.
        let garbage = envelope("test.Ping", vec![0xff, 0xff, 0xff], alice, 2);
        assert_eq!(
            registry
                .dispatch(from, alice, garbage)
                .unwrap_err()
                .reason(),
            "undecodable_payload"
        );
        let real = envelope(
            "test.Ping",
            prost::Message::encode_to_vec(&Ping { n: 1 }),
            alice,
            2,
        );
        registry.dispatch(from, alice, real).unwrap();
        let later = envelope(
            "test.Ping",
            prost::Message::encode_to_vec(&Ping { n: 1 }),
            alice,
            500,
        );
        registry.dispatch(from, alice, later).unwrap();
        let replay = envelope(
            "test.Ping",
            prost::Message::encode_to_vec(&Ping { n: 1 }),
            alice,
            2,
        );
        assert_eq!(
            registry.dispatch(from, alice, replay).unwrap_err().reason(),
            "replay"
        );
        assert_eq!(
            *calls.borrow(),
            2,
            "the handler never saw a refused message"
        );

        registry.unregister("test.Ping");
        assert!(!registry.handles("test.Ping"));
    }
}
