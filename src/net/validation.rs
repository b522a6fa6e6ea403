//! The validation pipeline (sans-IO): every check a message goes through once its peer is
//! admitted, and delivery to group channels with back-pressure instead of loss.
//!
//! # Overview
//! Gossipsub runs in anonymous mode with content-addressed message ids (DESIGN.md section 4),
//! so a message reaches the pipeline once, whichever relays it came through. [`Pipeline::judge`]
//! runs the checks cheapest first, and stops short of the signature:
//! 1. size limit, then envelope decode (`oversize`, `undecodable`): every node, relays included;
//! 2. on a topic with an open channel ([`ChannelTable::precheck`]), on the sender the envelope
//!    claims: membership (`non_member`), a registered `type` (`unknown_type`), room in the
//!    backlog (`overloaded`), the (sender, sequence) window: a copy already delivered is a
//!    `duplicate` (ignored, unpunished), one older than the window a `replay`;
//! 3. the message *reserves* its (type, sender, sequence) and comes out as
//!    [`Outcome::Verify`]: the caller has [`verify`] check the signature off the event loop (a
//!    thread pool natively, `super::pubsub`) and hands the result to [`Pipeline::verified`]. A
//!    second copy with the same slot meanwhile is [`Outcome::Parked`] behind it: a duplicate
//!    if the first is delivered, verified in its turn if the first fails (a copy altered in
//!    transit cannot shadow the original);
//! 4. after the signature (`bad_signature`: the forwarder's offence, [`Outcome::Invalid`]),
//!    the payload must decode as its type (`undecodable_payload`), the slot is recorded as
//!    seen, and the message goes into the channel's bounded queue. When that is full it is
//!    *held* (its gossipsub validation left pending) in a bounded backlog and delivered, then
//!    accepted, as the application catches up ([`ChannelTable::poll_drain`]); only when the
//!    backlog is full too is it ignored as `overloaded` (retransmission brings it again);
//! 5. for types with an application validator (`Registry::register_validated`), the delivery
//!    carries [`Awaiting`] and the verdict waits for the channel's validator, which runs off
//!    the event loop, a bounded number at a time (`NodeHandle::report_validation`: accepted,
//!    or rejected as `invalid`).
//!
//! Channel refusals judge what the author signed; the ones before the signature name the
//! sender the envelope claims. A topic without a channel gets steps 1, 3 and 4's signature.
//!
//! Every outcome is a [`Verdict`] that pubsub (`super::pubsub`) turns into gossipsub's
//! `report_message_validation_result` (Accept / Reject / Ignore) and counters. A message held
//! longer than gossipsub's message cache (history_length heartbeats, 3.5 s here) is still
//! delivered; only its forwarding is lost (counted as `forward_expired`), which retransmission
//! covers.
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
    platform,
    wire::{
        self,
        signature::{self, Prepared, SignatureError},
        Envelope,
    },
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

    /// The channel checks that come before a message's signature is checked, cheapest first,
    /// on what its envelope claims: membership of the sender, a registered type, room in the
    /// backlog, and the sequence window (`duplicate`, `replay`). `Ok` with the (type, sender,
    /// sequence) to reserve while its signature is checked; `Err` with the verdict.
    pub fn precheck(
        &self,
        topic: &str,
        envelope: &Envelope,
        claimed: Address,
    ) -> Result<(String, Address, u64), Verdict> {
        let Some(channel) = self.channels.get(topic) else {
            return Err(Verdict::Ignore("no_channel"));
        };
        if !channel.filter.allows(&claimed) {
            return Err(Verdict::Reject(
                "non_member",
                format!("{claimed} is not a member of {topic}"),
            ));
        }
        let kind_name = &envelope.r#type;
        let Some(kind) = channel.kinds.get(kind_name) else {
            return Err(Verdict::Reject(
                "unknown_type",
                format!("no handler for {kind_name:?}"),
            ));
        };
        if channel.backlog.len() >= channel.max_backlog {
            return Err(Verdict::Ignore("overloaded"));
        }
        match kind.seen.peek(claimed, envelope.sequence) {
            Ok(()) => Ok((kind_name.clone(), claimed, envelope.sequence)),
            Err(Duplicate::Seen) => Err(Verdict::Ignore("duplicate")),
            Err(Duplicate::Replay) => Err(replay(claimed, envelope.sequence)),
        }
    }

    /// Every channel check and delivery at once, for a message whose signature holds.
    pub fn offer(
        &mut self,
        topic: &str,
        id: MessageId,
        source: PeerId,
        delivery: Delivery,
    ) -> Verdict {
        match self.precheck(topic, &delivery.envelope, delivery.sender) {
            Ok(_) => self.deliver(topic, id, source, delivery),
            Err(verdict) => verdict,
        }
    }

    /// The checks after the signature (the payload decodes as its type; the sequence is still
    /// new, and is recorded now), then delivery into the channel's queue.
    pub fn deliver(
        &mut self,
        topic: &str,
        id: MessageId,
        source: PeerId,
        delivery: Delivery,
    ) -> Verdict {
        let Some(channel) = self.channels.get_mut(topic) else {
            return Verdict::Ignore("no_channel");
        };
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
                return replay(delivery.sender, delivery.envelope.sequence);
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

fn replay(sender: Address, sequence: u64) -> Verdict {
    Verdict::Reject(
        "replay",
        format!("sequence {sequence} from {sender} is older than the window"),
    )
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
    /// The channel's verdict on a message from `sender`. A rejection judges what the author
    /// signed (membership, type, payload, replay), which relays, knowing no groups, forward in
    /// good faith. Membership, type and replay are judged before the signature (cheapest
    /// first), on the sender the envelope claims.
    Channel { verdict: Verdict, sender: Address },
    /// Its signature is to be checked: hand it to [`verify`] (off the event loop), then its
    /// result to [`Pipeline::verified`]. Gossipsub's verdict waits.
    Verify(Unverified),
    /// A copy with the same (type, sender, sequence) is being verified: this one waits for it
    /// (a duplicate if that one holds, checked in its turn if not).
    Parked,
    /// Dropped unchecked (no room to wait for the verifier), not penalised, with the reason.
    Ignored(&'static str),
}

/// A message whose signature is to be checked, with its pipeline ticket: a [`platform::Task`]
/// whose costly core is the public-key recovery (in a tab, a Web Worker gets only the
/// prepared hash and signature, 97 bytes, and answers with the signer, 21).
#[derive(Debug, Clone, PartialEq)]
pub struct Unverified {
    pub ticket: u64,
    pub envelope: Envelope,
    pub prepared: Prepared,
}

/// A checked signature: the envelope and its signer, or why it does not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub ticket: u64,
    pub envelope: Envelope,
    pub signer: Result<Address, SignatureError>,
}

/// Checks an envelope's signature: the CPU-heavy step, run off the event loop.
pub fn verify(job: Unverified) -> Verified {
    let recovered = signature::recover(&job.prepared);
    job.finish_with(recovered)
}

impl Unverified {
    fn finish_with(self, recovered: Result<Address, SignatureError>) -> Verified {
        Verified {
            ticket: self.ticket,
            signer: signature::check_signer(recovered, &self.envelope.sender),
            envelope: self.envelope,
        }
    }
}

impl platform::Task for Unverified {
    type Output = Verified;
    const REQUEST_LEN: usize = signature::PREPARED_LEN;
    const REPLY_LEN: usize = signature::RECOVERED_LEN;

    fn run(self) -> Verified {
        verify(self)
    }

    fn write_request(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prepared.to_bytes());
    }

    fn serve(request: &[u8], reply: &mut Vec<u8>) {
        let recovered = match Prepared::from_bytes(request) {
            Some(prepared) => signature::recover(&prepared),
            None => Err(SignatureError::NoKey),
        };
        reply.extend_from_slice(&signature::encode_recovered(&recovered));
    }

    fn finish(self, reply: &[u8]) -> Verified {
        let recovered = signature::decode_recovered(reply);
        self.finish_with(recovered)
    }
}

/// A message finished by [`Pipeline::verified`]: its topic, id, forwarder and outcome.
pub type Finished = (String, MessageId, PeerId, Outcome);

/// (topic, type, sender, sequence): one message of a channel, for de-duplication.
type Slot = (String, String, Address, u64);

/// A message whose signature is being checked.
struct InFlight {
    topic: String,
    id: MessageId,
    source: PeerId,
    /// The channel slot it reserved.
    slot: Option<Slot>,
}

/// Every check after admission; see the module docs.
pub struct Pipeline {
    max_message_size: usize,
    /// Forwarders' operator addresses (bounded by [`AUTHOR_CACHE`]).
    authors: HashMap<PeerId, Option<Address>>,
    /// Open group channels and their delivery queues.
    pub channels: ChannelTable,
    next_ticket: u64,
    in_flight: HashMap<u64, InFlight>,
    /// Reserved channel slots, each with the copies parked behind it.
    reserved: HashMap<Slot, VecDeque<(Unverified, InFlight)>>,
}

impl Pipeline {
    /// Refuses envelopes over `max_message_size` bytes before decoding them.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            authors: HashMap::new(),
            channels: ChannelTable::default(),
            next_ticket: 0,
            in_flight: HashMap::new(),
            reserved: HashMap::new(),
        }
    }

    /// Messages whose signature is being checked (parked copies included).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len() + self.reserved.values().map(VecDeque::len).sum::<usize>()
    }

    /// Judges message `id` on `topic`, forwarded by `source`, carrying `data`, up to its
    /// signature check.
    pub fn judge(&mut self, topic: &str, id: &MessageId, source: PeerId, data: &[u8]) -> Outcome {
        let envelope = match wire::decode_envelope(data, self.max_message_size) {
            Ok(envelope) => envelope,
            Err(e) => {
                return Outcome::Invalid {
                    reason: e.reason(),
                    detail: e.to_string(),
                    offence: None,
                }
            }
        };
        // (A sender that is no address goes straight to the signature check, which refuses it.)
        let claimed = Address::from_slice(&envelope.sender);
        let slot = match claimed {
            Some(claimed) if self.channels.is_open(topic) => {
                match self.channels.precheck(topic, &envelope, claimed) {
                    Ok((kind, sender, sequence)) => {
                        Some((topic.to_owned(), kind, sender, sequence))
                    }
                    Err(verdict) => {
                        return Outcome::Channel {
                            verdict,
                            sender: claimed,
                        }
                    }
                }
            }
            _ => None,
        };
        // The signature's form and hash are cheap: a malformed one is refused before it
        // reserves anything, and the pool gets only the recovery.
        let prepared = match signature::prepare(topic, &envelope) {
            Ok(prepared) => prepared,
            Err(e) => return Self::invalid_signature(e),
        };
        self.next_ticket += 1;
        let job = Unverified {
            ticket: self.next_ticket,
            envelope,
            prepared,
        };
        let meta = InFlight {
            topic: topic.to_owned(),
            id: id.clone(),
            source,
            slot: slot.clone(),
        };
        if let Some(slot) = slot {
            if let Some(parked) = self.reserved.get_mut(&slot) {
                parked.push_back((job, meta));
                return Outcome::Parked;
            }
            self.reserved.insert(slot, VecDeque::new());
        }
        self.in_flight.insert(job.ticket, meta);
        Outcome::Verify(job)
    }

    /// Gives up on a message waiting for the verifier (no room): it is ignored as `reason`,
    /// and the next copy parked behind it, if any, goes to be verified.
    pub fn abandon(&mut self, job: Unverified, reason: &'static str) -> Vec<Finished> {
        self.finish(job.ticket, Err(Outcome::Ignored(reason)), job.envelope)
    }

    /// Finishes a message once its signature was checked ([`verify`]): its outcome, and those
    /// of the copies parked behind it (duplicates if it was delivered; otherwise the next one
    /// goes to be verified).
    pub fn verified(&mut self, done: Verified) -> Vec<Finished> {
        self.finish(done.ticket, Ok(done.signer), done.envelope)
    }

    fn finish(
        &mut self,
        ticket: u64,
        signer: Result<Result<Address, SignatureError>, Outcome>,
        envelope: Envelope,
    ) -> Vec<Finished> {
        let Some(meta) = self.in_flight.remove(&ticket) else {
            return Vec::new();
        };
        let InFlight {
            topic,
            id,
            source,
            slot,
        } = meta;
        let outcome = match signer {
            Err(outcome) => outcome,
            Ok(Err(e)) => Self::invalid_signature(e),
            Ok(Ok(sender)) if slot.is_none() => Outcome::Plain { envelope, sender },
            Ok(Ok(sender)) => {
                let delivery = Delivery {
                    awaiting: None,
                    from: source,
                    sender,
                    envelope,
                };
                let verdict = self.channels.deliver(&topic, id.clone(), source, delivery);
                Outcome::Channel { verdict, sender }
            }
        };
        let delivered = matches!(
            outcome,
            Outcome::Channel {
                verdict: Verdict::Accept | Verdict::Hold,
                ..
            }
        );
        let mut finished = vec![(topic, id, source, outcome)];
        if let Some(slot) = slot {
            let mut parked = self.reserved.remove(&slot).unwrap_or_default();
            if delivered {
                for (job, meta) in parked {
                    let verdict = Verdict::Ignore("duplicate");
                    let Some(sender) = Address::from_slice(&job.envelope.sender) else {
                        continue;
                    };
                    finished.push((
                        meta.topic,
                        meta.id,
                        meta.source,
                        Outcome::Channel { verdict, sender },
                    ));
                }
            } else if let Some((job, meta)) = parked.pop_front() {
                // The next copy takes the slot and goes to be verified; the rest wait for it.
                let (topic, id, source) = (meta.topic.clone(), meta.id.clone(), meta.source);
                self.in_flight.insert(job.ticket, meta);
                self.reserved.insert(slot, parked);
                finished.push((topic, id, source, Outcome::Verify(job)));
            }
        }
        finished
    }

    fn invalid_signature(e: SignatureError) -> Outcome {
        Outcome::Invalid {
            reason: e.reason(),
            detail: e.to_string(),
            offence: Some(Offence::BadSignature),
        }
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

    /// Judges `data` and, when it comes to that, checks its signature at once.
    fn judge_through(p: &mut Pipeline, topic: &str, n: u8, data: &[u8]) -> Outcome {
        match p.judge(topic, &id(n), PeerId::random(), data) {
            Outcome::Verify(job) => {
                let mut finished = p.verified(verify(job));
                assert_eq!(finished.len(), 1, "nothing was parked");
                finished.remove(0).3
            }
            outcome => outcome,
        }
    }

    #[test]
    fn the_pipeline_checks_the_envelope_then_hands_channel_topics_to_their_channel() {
        let key = crate::identity::OperatorKey::generate();
        let mut pipeline = Pipeline::new(160);
        let good = signed_bytes(&key, "t", 1);
        assert!(matches!(
            judge_through(&mut pipeline, "t", 1, &good),
            Outcome::Plain { sender, .. } if sender == key.address()
        ));
        assert!(matches!(
            judge_through(&mut pipeline, "t", 2, &[0; 161]),
            Outcome::Invalid {
                reason: "oversize",
                offence: None,
                ..
            }
        ));
        // Signed for another topic: a replay across topics, the forwarder's offence.
        assert!(matches!(
            judge_through(&mut pipeline, "u", 3, &good),
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
        // Refused before its signature is even checked.
        assert!(matches!(
            pipeline.judge("g", &id(4), PeerId::random(), &signed_bytes(&key, "g", 1)),
            Outcome::Channel { verdict: Verdict::Reject("unknown_type", _), sender } if sender == key.address()
        ));
        assert!(pipeline.is_author(&key.peer_id(), &key.address()));
        assert!(!pipeline.is_author(&PeerId::random(), &key.address()));
        assert_eq!(pipeline.in_flight(), 0);
    }

    #[test]
    fn a_copy_altered_in_transit_does_not_shadow_the_original_and_duplicates_wait() {
        let key = crate::identity::OperatorKey::generate();
        let mut pipeline = Pipeline::new(1024);
        let (sink, mut inbox) = mpsc::channel(8);
        pipeline
            .channels
            .open("g", MembershipFilter::members([key.address()]), sink, 4);
        pipeline.channels.register(
            "g",
            KindSpec {
                kind: "k".into(),
                check: accepts_short,
                app_validated: false,
            },
        );
        let original = signed_bytes(&key, "g", 5);
        let mut altered = wire::decode_envelope(&original, 1024).unwrap();
        altered.payload = vec![2];
        let altered = wire::encode_envelope(&altered, 1024).unwrap();
        let forwarder = PeerId::random();

        // The altered copy arrives first and takes the slot (k, sender, 5); the original and a
        // third copy wait behind it, unverified.
        let Outcome::Verify(first) = pipeline.judge("g", &id(1), forwarder, &altered) else {
            panic!("the first copy goes to be verified")
        };
        assert_eq!(
            pipeline.judge("g", &id(2), forwarder, &original),
            Outcome::Parked
        );
        assert_eq!(
            pipeline.judge("g", &id(3), forwarder, &original),
            Outcome::Parked
        );
        assert_eq!(pipeline.in_flight(), 3);

        // Its signature fails: refused, and the original goes to be verified next.
        let finished = pipeline.verified(verify(first));
        assert!(matches!(
            &finished[..],
            [
                (_, a, _, Outcome::Invalid { reason: "bad_signature", .. }),
                (_, b, _, Outcome::Verify(_)),
            ] if *a == id(1) && *b == id(2)
        ));
        let Some((_, _, _, Outcome::Verify(next))) = finished.into_iter().nth(1) else {
            unreachable!()
        };
        // It holds: delivered; the copy behind it is a duplicate, never verified.
        let finished = pipeline.verified(verify(next));
        assert_eq!(
            finished
                .iter()
                .map(|(_, id, _, outcome)| (id.clone(), outcome.clone()))
                .map(|(id, outcome)| match outcome {
                    Outcome::Channel { verdict, sender } => (id, verdict, sender),
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>(),
            vec![
                (id(2), Verdict::Accept, key.address()),
                (id(3), Verdict::Ignore("duplicate"), key.address()),
            ]
        );
        assert_eq!(
            futures::executor::block_on(inbox.next())
                .unwrap()
                .envelope
                .payload,
            vec![1]
        );
        assert_eq!(pipeline.in_flight(), 0);
        // Later copies are duplicates before any signature check.
        assert_eq!(
            pipeline.judge("g", &id(4), forwarder, &original),
            Outcome::Channel {
                verdict: Verdict::Ignore("duplicate"),
                sender: key.address()
            }
        );
    }
}
