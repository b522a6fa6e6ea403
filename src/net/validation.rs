//! The validation pipeline (sans-IO): every check a message goes through once its peer is
//! admitted, and delivery to group channels with back-pressure instead of loss.
//!
//! # Overview
//! [`Pipeline::judge`] runs the checks cheapest first. Gossipsub runs in anonymous mode with
//! content-addressed message ids (DESIGN.md section 4), so a message reaches the pipeline once,
//! whichever relays it came through. The envelope checks every node makes, relays included:
//! size limit, envelope decode, the author's signature over the envelope and the topic
//! ([`crate::wire::signature`]); an [`Outcome::Invalid`] blames the forwarder, which should have
//! checked. Then, on a topic with an open channel ([`ChannelTable::offer`]):
//! 1. membership: the sender must be one of the channel's members (`non_member`, penalised);
//! 2. type: a validator must be registered for the envelope `type` (`unknown_type`, penalised)
//!    and the payload must decode as that type (`undecodable_payload`, penalised);
//! 3. de-duplication per type by (sender, sequence): a retransmitted copy is ignored (counted as
//!    `duplicate`, not penalised); a sequence older than the window is a `replay` (penalised);
//! 4. delivery into the channel's bounded queue. When it is full the message is *held* (its
//!    gossipsub validation left pending) in a bounded backlog and delivered, then accepted, as
//!    the application catches up ([`ChannelTable::poll_drain`]); only when the backlog is full
//!    too is it ignored as `overloaded` (counted; retransmission brings it again);
//! 5. for types with an application validator (`Registry::register_validated`), the delivery
//!    carries [`Awaiting`] and the verdict waits for the channel's validator, which runs off
//!    the event loop, a bounded number at a time (`NodeHandle::report_validation`: accepted,
//!    or rejected as `invalid`).
//!
//! Every outcome is a [`Verdict`] that pubsub (`super::pubsub`) turns into gossipsub's
//! `report_message_validation_result` (Accept / Reject / Ignore) and counters. A message held
//! longer than gossipsub's message cache (history_length heartbeats, 3.5 s here) is still
//! delivered; only its forwarding is lost, which retransmission covers.
//!
//! # Usage
//! ```
//! use keep_light::{identity::OperatorKey, net::validation::{Outcome, Pipeline}};
//! let mut pipeline = Pipeline::new(1024);
//! let forwarder = OperatorKey::generate().peer_id();
//! let id = libp2p::gossipsub::MessageId::new(b"1");
//! let outcome = pipeline.judge("t", &id, forwarder, b"not an envelope");
//! assert!(matches!(outcome, Outcome::Invalid { reason: "undecodable", .. }));
//! ```

use std::{
    collections::{HashMap, HashSet, VecDeque},
    task::{Context, Poll},
};

use futures::channel::mpsc;
use libp2p::{gossipsub::MessageId, PeerId};

use super::{
    retransmit::{Deduplicator, Duplicate},
    types::Offence,
};
use crate::{
    identity::Address,
    wire::{self, signature, Envelope},
};

/// A checked message on its way to a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The peer that forwarded it to us (the author itself, or a relay).
    pub from: PeerId,
    /// The author's operator address: the envelope sender, whose signature was checked.
    pub sender: Address,
    /// The envelope (type, payload, sequence…).
    pub envelope: Envelope,
    /// Set when the type needs the application's own (async) validation: the gossipsub message
    /// waits for [`crate::net::NodeHandle::report_validation`] with this.
    pub awaiting: Option<Awaiting>,
}

/// A message whose gossipsub verdict waits for the application's validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awaiting {
    /// Gossipsub's message id.
    pub id: MessageId,
    /// The peer it came from.
    pub source: PeerId,
    /// Its author (the signed envelope sender): the one an application rejection blames.
    pub author: Address,
}

/// Checks that a payload decodes as the registered type ([`payload_check`] makes one per
/// protobuf type). A plain function, so it moves into the event loop on any platform.
pub type PayloadCheck = fn(&[u8]) -> Result<(), String>;

/// The [`PayloadCheck`] of protobuf type `M`.
pub fn payload_check<M: prost::Message + Default>() -> PayloadCheck {
    |payload| M::decode(payload).map(|_| ()).map_err(|e| e.to_string())
}

/// Who may publish on a channel: its members' operator addresses. A message from anyone else
/// is rejected as `non_member` (and its forwarder penalised).
#[derive(Debug, Clone, Default)]
pub struct MembershipFilter {
    members: Option<HashSet<Address>>,
}

impl MembershipFilter {
    /// Admits everyone (named channels without a member list).
    pub fn open() -> Self {
        Self { members: None }
    }

    /// Admits exactly `members`.
    pub fn members(members: impl IntoIterator<Item = Address>) -> Self {
        Self {
            members: Some(members.into_iter().collect()),
        }
    }

    /// Whether `sender` may publish here.
    pub fn allows(&self, sender: &Address) -> bool {
        self.members.as_ref().is_none_or(|m| m.contains(sender))
    }
}

/// A message type a channel accepts.
#[derive(Debug, Clone)]
pub struct KindSpec {
    /// The envelope `type`.
    pub kind: String,
    /// Checks that its payload decodes.
    pub check: PayloadCheck,
    /// Whether the application validates it (asynchronously) before it is accepted.
    pub app_validated: bool,
}

/// What to tell gossipsub about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: accept and forward.
    Accept,
    /// Invalid: reject (penalises the forwarder), with the reason and details.
    Reject(&'static str, String),
    /// Not forwarded, not penalised (a duplicate, or no room), with the reason.
    Ignore(&'static str),
    /// Queued behind a full channel: the verdict comes later from [`ChannelTable::poll_drain`].
    Hold,
}

struct Kind {
    check: PayloadCheck,
    seen: Deduplicator,
    /// The application validates it (asynchronously) before it is accepted.
    app_validated: bool,
}

struct OpenChannel {
    filter: MembershipFilter,
    kinds: HashMap<String, Kind>,
    sink: mpsc::Sender<Delivery>,
    backlog: VecDeque<(MessageId, PeerId, Delivery)>,
    max_backlog: usize,
}

/// Open channels by topic.
#[derive(Default)]
pub struct ChannelTable {
    channels: HashMap<String, OpenChannel>,
}

/// A held message's late verdict: `Accept` once delivered, `Ignore` when its channel closed.
pub type LateVerdict = (MessageId, PeerId, Verdict);

impl ChannelTable {
    /// Opens (or reopens, replacing) the channel on `topic`.
    pub fn open(
        &mut self,
        topic: &str,
        filter: MembershipFilter,
        sink: mpsc::Sender<Delivery>,
        max_backlog: usize,
    ) {
        self.channels.insert(
            topic.to_owned(),
            OpenChannel {
                filter,
                kinds: HashMap::new(),
                sink,
                backlog: VecDeque::new(),
                max_backlog: max_backlog.max(1),
            },
        );
    }

    /// Registers a message type on `topic`'s channel (no-op if not open). With
    /// `app_validated`, delivered messages of this kind stay pending in gossipsub until the
    /// application reports its verdict.
    pub fn register(&mut self, topic: &str, spec: KindSpec) {
        if let Some(channel) = self.channels.get_mut(topic) {
            channel.kinds.insert(
                spec.kind,
                Kind {
                    check: spec.check,
                    seen: Deduplicator::default(),
                    app_validated: spec.app_validated,
                },
            );
        }
    }

    /// Closes `topic`'s channel; returns its held messages (to be ignored).
    pub fn close(&mut self, topic: &str) -> Vec<LateVerdict> {
        self.channels
            .remove(topic)
            .map(|c| {
                c.backlog
                    .into_iter()
                    .map(|(id, source, _)| (id, source, Verdict::Ignore("channel_closed")))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether `topic` has an open channel.
    pub fn is_open(&self, topic: &str) -> bool {
        self.channels.contains_key(topic)
    }

    /// Runs the channel checks on a message that passed the inline ones, and delivers it.
    pub fn offer(
        &mut self,
        topic: &str,
        id: MessageId,
        source: PeerId,
        delivery: Delivery,
    ) -> Verdict {
        let Some(channel) = self.channels.get_mut(topic) else {
            return Verdict::Ignore("no_channel");
        };
        if !channel.filter.allows(&delivery.sender) {
            return Verdict::Reject(
                "non_member",
                format!("{} is not a member of {topic}", delivery.sender),
            );
        }
        let kind_name = &delivery.envelope.r#type;
        let Some(kind) = channel.kinds.get_mut(kind_name) else {
            return Verdict::Reject("unknown_type", format!("no handler for {kind_name:?}"));
        };
        let app_validated = kind.app_validated;
        if let Err(error) = (kind.check)(&delivery.envelope.payload) {
            return Verdict::Reject("undecodable_payload", format!("{kind_name}: {error}"));
        }
        // Refuse for lack of room before de-duplicating, so a dropped message is not marked as
        // seen and its retransmission still gets in.
        if channel.backlog.len() >= channel.max_backlog {
            return Verdict::Ignore("overloaded");
        }
        match kind.seen.check(delivery.sender, delivery.envelope.sequence) {
            Ok(()) => {}
            Err(Duplicate::Seen) => return Verdict::Ignore("duplicate"),
            Err(Duplicate::Replay) => {
                return Verdict::Reject(
                    "replay",
                    format!(
                        "sequence {} from {} is older than the window",
                        delivery.envelope.sequence, delivery.sender
                    ),
                )
            }
        }
        let mut delivery = delivery;
        if app_validated {
            delivery.awaiting = Some(Awaiting {
                id: id.clone(),
                source,
                author: delivery.sender,
            });
        }
        if channel.backlog.is_empty() {
            match channel.sink.try_send(delivery) {
                // The application's validator answers later.
                Ok(()) if app_validated => return Verdict::Hold,
                Ok(()) => return Verdict::Accept,
                Err(e) if e.is_disconnected() => return Verdict::Ignore("channel_closed"),
                Err(e) => channel.backlog.push_back((id, source, e.into_inner())),
            }
        } else {
            channel.backlog.push_back((id, source, delivery));
        }
        Verdict::Hold
    }

    /// Delivers held messages as their channels make room; `Ready` with their verdicts when any
    /// moved. Registers wakers on the full channels, so the event loop polls it again then.
    pub fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<Vec<LateVerdict>> {
        let mut verdicts = Vec::new();
        let mut closed = Vec::new();
        for (topic, channel) in &mut self.channels {
            while !channel.backlog.is_empty() {
                match channel.sink.poll_ready(cx) {
                    Poll::Ready(Ok(())) => {
                        let (id, source, delivery) =
                            channel.backlog.pop_front().expect("not empty");
                        let awaiting = delivery.awaiting.is_some();
                        match channel.sink.start_send(delivery) {
                            // Its verdict comes from the application's validator.
                            Ok(()) if awaiting => {}
                            Ok(()) => verdicts.push((id, source, Verdict::Accept)),
                            Err(_) => {
                                verdicts.push((id, source, Verdict::Ignore("channel_closed")))
                            }
                        }
                    }
                    Poll::Ready(Err(_)) => {
                        closed.push(topic.clone());
                        break;
                    }
                    Poll::Pending => break,
                }
            }
        }
        for topic in closed {
            verdicts.extend(self.close(&topic));
        }
        if verdicts.is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(verdicts)
        }
    }
}

/// Most cached author addresses; the cache starts over when full.
const AUTHOR_CACHE: usize = 4096;

/// What the pipeline made of a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An envelope check every node makes failed (size, decode, signature): whoever forwarded
    /// it should have checked, so it is to blame; for a bad signature, with an offence.
    Invalid {
        reason: &'static str,
        detail: String,
        offence: Option<Offence>,
    },
    /// Checked, on a topic without a channel: a plain message from `sender`.
    Plain { envelope: Envelope, sender: Address },
    /// The channel's verdict on a message signed by `sender`. A rejection judges what the
    /// author signed (membership, type, payload, replay), which relays, knowing no groups,
    /// forward in good faith.
    Channel { verdict: Verdict, sender: Address },
}

/// Every check after admission; see the module docs.
pub struct Pipeline {
    max_message_size: usize,
    /// Forwarders' operator addresses (bounded by [`AUTHOR_CACHE`]).
    authors: HashMap<PeerId, Option<Address>>,
    /// Open group channels and their delivery queues.
    pub channels: ChannelTable,
}

impl Pipeline {
    /// Refuses envelopes over `max_message_size` bytes before decoding them.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            authors: HashMap::new(),
            channels: ChannelTable::default(),
        }
    }

    /// Judges message `id` on `topic`, forwarded by `source`, carrying `data`.
    pub fn judge(&mut self, topic: &str, id: &MessageId, source: PeerId, data: &[u8]) -> Outcome {
        let (envelope, sender) = match self.check(topic, data) {
            Ok(checked) => checked,
            Err(invalid) => return invalid,
        };
        if !self.channels.is_open(topic) {
            return Outcome::Plain { envelope, sender };
        }
        let delivery = Delivery {
            awaiting: None,
            from: source,
            sender,
            envelope,
        };
        let verdict = self.channels.offer(topic, id.clone(), source, delivery);
        Outcome::Channel { verdict, sender }
    }

    /// The envelope checks, cheapest first. On success: the envelope and its verified sender.
    fn check(&mut self, topic: &str, data: &[u8]) -> Result<(Envelope, Address), Outcome> {
        let envelope =
            wire::decode_envelope(data, self.max_message_size).map_err(|e| Outcome::Invalid {
                reason: e.reason(),
                detail: e.to_string(),
                offence: None,
            })?;
        let sender = signature::verify(topic, &envelope).map_err(|e| Outcome::Invalid {
            reason: e.reason(),
            detail: e.to_string(),
            offence: Some(Offence::BadSignature),
        })?;
        Ok((envelope, sender))
    }

    /// Whether `peer` (a forwarder) is `author` itself: only then does a group's refusal
    /// penalise it ([`super::pubsub::group_acceptance`]).
    pub fn is_author(&mut self, peer: &PeerId, author: &Address) -> bool {
        self.author_address(peer).as_ref() == Some(author)
    }

    /// The operator address of a peer's key, cached: deriving it decodes the key and hashes
    /// it, which every message of a burst would otherwise repeat.
    fn author_address(&mut self, peer: &PeerId) -> Option<Address> {
        if let Some(known) = self.authors.get(peer) {
            return *known;
        }
        if self.authors.len() >= AUTHOR_CACHE {
            self.authors.clear();
        }
        let address = Address::from_peer_id(peer);
        self.authors.insert(*peer, address);
        address
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn delivery(sender: Address, kind: &str, payload: Vec<u8>, sequence: u64) -> Delivery {
        Delivery {
            awaiting: None,
            from: PeerId::random(),
            sender,
            envelope: Envelope {
                r#type: kind.into(),
                payload,
                sender: sender.as_bytes().to_vec(),
                sequence,
                group: Vec::new(),
                signature: Vec::new(),
            },
        }
    }

    fn id(n: u8) -> MessageId {
        MessageId::new(&[n])
    }

    fn accepts_short(payload: &[u8]) -> Result<(), String> {
        (payload.len() < 4)
            .then_some(())
            .ok_or_else(|| "too long".into())
    }

    #[test]
    fn checks_in_order_then_backpressure_then_overload() {
        let (alice, mallory) = (Address([1; 20]), Address([9; 20]));
        let (sink, mut inbox) = mpsc::channel(0); // room for one message (one per sender)
        let mut table = ChannelTable::default();
        table.open("t", MembershipFilter::members([alice]), sink, 2);
        table.register(
            "t",
            KindSpec {
                kind: "k".into(),
                check: accepts_short,
                app_validated: false,
            },
        );
        let source = PeerId::random();
        let mut offer = |n: u8, d: Delivery| table.offer("t", id(n), source, d);

        assert_eq!(
            offer(0, delivery(mallory, "k", vec![], 1)),
            Verdict::Reject("non_member", format!("{mallory} is not a member of t"))
        );
        assert!(matches!(
            offer(0, delivery(alice, "x", vec![], 1)),
            Verdict::Reject("unknown_type", _)
        ));
        assert!(matches!(
            offer(0, delivery(alice, "k", vec![0; 9], 1)),
            Verdict::Reject("undecodable_payload", _)
        ));
        assert_eq!(offer(1, delivery(alice, "k", vec![1], 1)), Verdict::Accept);
        assert_eq!(
            offer(1, delivery(alice, "k", vec![1], 1)),
            Verdict::Ignore("duplicate")
        );
        // The channel is full now: the next two are held, the third is over the backlog.
        assert_eq!(offer(2, delivery(alice, "k", vec![2], 2)), Verdict::Hold);
        assert_eq!(offer(3, delivery(alice, "k", vec![3], 3)), Verdict::Hold);
        assert_eq!(
            offer(4, delivery(alice, "k", vec![4], 4)),
            Verdict::Ignore("overloaded")
        );

        // The application reads; the held messages move in order and are accepted.
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(table.poll_drain(&mut cx).is_pending(), "still full");
        let next = |inbox: &mut mpsc::Receiver<Delivery>| {
            futures::executor::block_on(inbox.next())
                .unwrap()
                .envelope
                .payload
        };
        assert_eq!(next(&mut inbox), vec![1]);
        let Poll::Ready(verdicts) = table.poll_drain(&mut cx) else {
            panic!("room now")
        };
        assert_eq!(verdicts, vec![(id(2), source, Verdict::Accept)]);
        assert_eq!(next(&mut inbox), vec![2]);
        let Poll::Ready(verdicts) = table.poll_drain(&mut cx) else {
            panic!("room now")
        };
        assert_eq!(verdicts, vec![(id(3), source, Verdict::Accept)]);
        assert_eq!(next(&mut inbox), vec![3]);

        // The overloaded message was not marked seen: its retransmission gets in.
        let mut offer = |n: u8, d: Delivery| table.offer("t", id(n), source, d);
        assert_eq!(offer(4, delivery(alice, "k", vec![4], 4)), Verdict::Accept);
        assert_eq!(next(&mut inbox), vec![4]);
        assert_eq!(
            offer(5, delivery(alice, "k", vec![5], 400)),
            Verdict::Accept
        );
        assert!(matches!(
            offer(6, delivery(alice, "k", vec![6], 1)),
            Verdict::Reject("replay", _)
        ));

        // Closing ignores whatever is still held.
        assert_eq!(offer(7, delivery(alice, "k", vec![7], 401)), Verdict::Hold);
        assert_eq!(
            table.close("t"),
            vec![(id(7), source, Verdict::Ignore("channel_closed"))]
        );
        assert!(!table.is_open("t"));
    }

    fn signed_bytes(key: &crate::identity::OperatorKey, topic: &str, sequence: u64) -> Vec<u8> {
        let mut envelope = Envelope {
            r#type: "k".into(),
            payload: vec![1],
            sequence,
            ..Default::default()
        };
        signature::sign(&key.signing_key(), topic, &mut envelope);
        wire::encode_envelope(&envelope, 1024).unwrap()
    }

    #[test]
    fn the_pipeline_checks_the_envelope_then_hands_channel_topics_to_their_channel() {
        let key = crate::identity::OperatorKey::generate();
        let forwarder = PeerId::random();
        let mut pipeline = Pipeline::new(160);
        let judge =
            |p: &mut Pipeline, topic: &str, data: &[u8]| p.judge(topic, &id(1), forwarder, data);
        let good = signed_bytes(&key, "t", 1);
        assert!(matches!(
            judge(&mut pipeline, "t", &good),
            Outcome::Plain { sender, .. } if sender == key.address()
        ));
        assert!(matches!(
            judge(&mut pipeline, "t", &[0; 161]),
            Outcome::Invalid {
                reason: "oversize",
                offence: None,
                ..
            }
        ));
        // Signed for another topic: a replay across topics, the forwarder's offence.
        assert!(matches!(
            judge(&mut pipeline, "u", &good),
            Outcome::Invalid {
                reason: "bad_signature",
                offence: Some(Offence::BadSignature),
                ..
            }
        ));
        let (sink, _inbox) = mpsc::channel(4);
        pipeline
            .channels
            .open("g", MembershipFilter::open(), sink, 4);
        assert!(matches!(
            judge(&mut pipeline, "g", &signed_bytes(&key, "g", 1)),
            Outcome::Channel { verdict: Verdict::Reject("unknown_type", _), sender } if sender == key.address()
        ));
        assert!(pipeline.is_author(&key.peer_id(), &key.address()));
        assert!(!pipeline.is_author(&forwarder, &key.address()));
    }
}
