//! Pubsub: gossipsub with our checks in front of everything it forwards or delivers.
//!
//! # Overview
//! [`Pubsub`] wraps gossipsub, which runs with `validate_messages()`: it forwards nothing until
//! told. Each message gossipsub hands up goes through, in order:
//! 1. the per-peer rate limit (relays by default): over it, ignored and an
//!    [`Offence::RateLimited`];
//! 2. admission: a peer the firewall has not admitted ([`Pubsub::admit`], default-deny) is
//!    ignored, unpunished (its attestation may be on the way; retransmission covers the loss);
//! 3. the [`Pipeline`] (`super::validation`): envelope checks, the group channel's cheap
//!    checks, the per-author rate limit (relays by default: over it, `sender_rate_limited`,
//!    ignored, no one punished; a message whose signature then fails is refunded), then the
//!    envelope signature in a verifier pool ([`platform::Offload`]: a thread per core, in a
//!    tab the page's Web Workers), so the event loop goes on serving while signatures are
//!    checked. While the pool is full, messages wait in order, their verdicts pending
//!    (counted as `held`); beyond [`MAX_WAITING`], `overloaded`.
//!
//! Its verdict goes back to gossipsub: Accept (forward), Reject (gossipsub penalises the
//! forwarder), Ignore, or none yet (held behind a full channel, or waiting for the
//! application's validator). Gossipsub runs anonymous (no libp2p signature, no author field)
//! with content-addressed ids: the envelope's own signature says who wrote a message, and
//! `from` in what we report is only the peer that forwarded it. A bad signature is the
//! forwarder's [`Offence::BadSignature`] (every honest node checks before forwarding); a
//! group's refusal penalises the forwarder only when it is the author ([`group_acceptance`]).
//!
//! It also signs and publishes our envelopes (each with the next sequence number),
//! republishes retransmissions byte for byte, joins and leaves topics
//! (a relay joins every topic a peer joins, to route it) and, under [`Router::Floodsub`], makes
//! every connected peer explicit. Everything a user sees comes out as a ready [`NodeEvent`];
//! what it counts is in [`Pubsub::counts`] ([`COUNTERS`]).
//!
//! # Usage
//! [`super::behaviour::build`] makes it; the node calls [`Pubsub::admit`] / [`Pubsub::revoke`] on
//! the firewall's events, bans on [`Event::Offence`], and forwards the application's commands
//! (publish, join, channels) to it.

use std::{
    collections::{HashSet, VecDeque},
    task::{Context, Poll, Waker},
    time::Duration,
};

use futures::channel::mpsc;
use k256::ecdsa::SigningKey;
use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance, MessageId},
    swarm::{
        ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    PeerId,
};
use sha2::{Digest, Sha256};

pub use super::rate_limit::{RateLimit, RATE_BUCKETS};
use super::{
    events::NodeEvent,
    types::{Counts, Encoded, Offence, PublishError, Role, Router},
    validation::{
        Awaiting, Delivery, KindSpec, LateVerdict, MembershipFilter, Outcome, Pipeline, Unverified,
        Verdict,
    },
    wrap::forward_connection_hooks,
};
use crate::{
    identity::Address,
    platform,
    wire::{self, signature, Envelope},
};

/// What [`Pubsub`] counts: messages refused (by reason), channel outcomes, and what gossipsub
/// dropped towards slow peers.
pub const COUNTERS: &[&str] = &[
    "bad_signature",
    "invalid",
    "non_member",
    "not_admitted",
    "oversize",
    "rate_limited",
    "replay",
    "sender_rate_limited",
    "undecodable",
    "undecodable_payload",
    "unknown_type",
    "channel_closed",
    "delivered",
    "duplicate",
    "forward_expired",
    "held",
    "no_channel",
    "overloaded",
    "slow_peer_dropped",
];

/// How long gossipsub remembers a message id to drop copies of it. Retransmissions come a few
/// blocks apart: a copy later than this is new to a peer and reaches its (sender, sequence)
/// de-duplication instead.
pub const DUPLICATE_CACHE_TIME: Duration = Duration::from_secs(5);

/// A message's gossipsub id: the first 20 bytes of sha256(data) (DESIGN.md section 4), so
/// equal bytes are one message, whoever forwards them.
pub fn message_id(message: &gossipsub::Message) -> MessageId {
    MessageId::new(&Sha256::digest(&message.data)[..20])
}

/// Signatures handed to the verifier pool and not yet back.
const VERIFY_IN_FLIGHT: usize = 1024;
/// Signatures a worker takes at a time (fewer wake-ups under a burst).
const VERIFY_BATCH: usize = 32;

/// Most messages waiting for room in the verifier pool; beyond, ignored as `overloaded`.
/// Natively the pool checks 4,000+ signatures per second per core, so the queue drains well
/// within gossipsub's message cache (3.5 s), before which every verdict must reach it.
pub const MAX_WAITING: usize = 8192;

/// A relay's default per-peer message limit: (per second, burst).
pub const RELAY_RATE_LIMIT: (u32, u32) = (2_000, 20_000);

/// A relay's default limit per author, whoever forwards its messages: 1,000/s sustained, bursts
/// of 10,000 (a member's share of a group burst with its retransmissions).
pub const RELAY_SENDER_RATE_LIMIT: (u32, u32) = (1_000, 10_000);

/// What [`Pubsub`] reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something for the application, as it is (message, rejection, drop, subscription).
    Report(NodeEvent),
    /// `peer` offended: ban it.
    Offence { peer: PeerId, offence: Offence },
}

/// How a node uses pubsub.
#[derive(Debug, Clone)]
pub struct Settings {
    pub role: Role,
    pub router: Router,
    /// Our operator key: it signs what we publish (its address is the envelope sender).
    pub key: SigningKey,
    /// The envelope size limit.
    pub max_message_size: usize,
    /// Messages per peer: (per second, burst), when limited.
    pub rate_limit: Option<(u32, u32)>,
    /// Messages per author (envelope sender), whoever forwards them: (per second, burst).
    pub sender_rate_limit: Option<(u32, u32)>,
}

/// Gossipsub's verdict on a message a group refused (non-member, unknown type, bad payload,
/// replay, a failed application check). Those judge what the author signed, and relays, which
/// know no groups, forward such messages in good faith. So the forwarder gets Reject (gossipsub's
/// penalty) only when it is the author; otherwise the message just goes no further (Ignore), and
/// the offence is the author's (named in [`NodeEvent::Rejected`]).
pub fn group_acceptance(forwarder_is_author: bool) -> MessageAcceptance {
    if forwarder_is_author {
        MessageAcceptance::Reject
    } else {
        MessageAcceptance::Ignore
    }
}

/// Gossipsub behind our checks; see the module docs.
pub struct Pubsub {
    inner: gossipsub::Behaviour,
    pipeline: Pipeline,
    settings: Settings,
    /// The last sequence number we published.
    sequence: u64,
    rate_limit: Option<RateLimit>,
    sender_limit: Option<RateLimit<Address>>,
    /// Peers whose messages count (the firewall's word).
    admitted: HashSet<PeerId>,
    /// Checks envelope signatures off the event loop (threads natively).
    verifier: platform::Offload<Unverified>,
    /// Messages waiting for room in the verifier, in arrival order.
    waiting: VecDeque<Unverified>,
    counts: Counts,
    out: VecDeque<Event>,
    waker: Option<Waker>,
}

impl Pubsub {
    /// Runs `inner` (built with `validate_messages()`) as `settings` say.
    pub fn new(inner: gossipsub::Behaviour, settings: Settings) -> Self {
        Self {
            inner,
            pipeline: Pipeline::new(settings.max_message_size),
            rate_limit: settings
                .rate_limit
                .map(|(per_second, burst)| RateLimit::new(per_second, burst)),
            sender_limit: settings
                .sender_rate_limit
                .map(|(per_second, burst)| RateLimit::new(per_second, burst)),
            settings,
            // Start from the wall clock (µs), so a restarted node's sequence numbers continue
            // above its earlier ones: receivers' de-duplication would drop a restart from 1.
            sequence: platform::unix_time().as_micros() as u64,
            admitted: HashSet::new(),
            verifier: platform::Offload::new(VERIFY_IN_FLIGHT, VERIFY_BATCH),
            waiting: VecDeque::new(),
            counts: Counts::new(COUNTERS),
            out: VecDeque::new(),
            waker: None,
        }
    }

    /// `peer` meets the firewall's policy: its messages count from now on.
    pub fn admit(&mut self, peer: PeerId) {
        self.admitted.insert(peer);
    }

    /// `peer` no longer meets it: its messages are ignored.
    pub fn revoke(&mut self, peer: PeerId) {
        self.admitted.remove(&peer);
    }

    /// Messages refused, channel outcomes, drops.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Peers in our mesh for `topic`.
    pub fn mesh_peers(&self, topic: &str) -> usize {
        self.inner
            .mesh_peers(&IdentTopic::new(topic).hash())
            .count()
    }

    fn report(&mut self, event: NodeEvent) {
        self.out.push_back(Event::Report(event));
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Joins `topic` (reported once, when new).
    pub fn join(&mut self, topic: &str) {
        match self.inner.subscribe(&IdentTopic::new(topic)) {
            Ok(true) => self.report(NodeEvent::Subscribed {
                topic: topic.to_owned(),
            }),
            Ok(false) => {}
            Err(e) => tracing::warn!(topic, error = %e, "cannot subscribe"),
        }
    }

    /// Leaves `topic`.
    pub fn leave(&mut self, topic: &str) {
        if self.inner.unsubscribe(&IdentTopic::new(topic)) {
            self.report(NodeEvent::Unsubscribed {
                topic: topic.to_owned(),
            });
        }
    }

    /// Publishes a new envelope of type `kind` (next sequence number) and returns its bytes.
    pub fn publish(
        &mut self,
        topic: &str,
        kind: String,
        payload: Vec<u8>,
    ) -> Result<Encoded, PublishError> {
        self.sequence += 1;
        let mut envelope = Envelope {
            r#type: kind,
            payload,
            sequence: self.sequence,
            ..Default::default()
        };
        signature::sign(&self.settings.key, topic, &mut envelope);
        let bytes = wire::encode_envelope(&envelope, self.settings.max_message_size)
            .map_err(|e| PublishError::TooLarge(e.to_string()))?;
        let sent = self.publish_bytes(topic, bytes.clone());
        Ok(Encoded { bytes, sent })
    }

    /// Publishes `bytes` as they are (a retransmission, or a test's hand-made envelope). A
    /// retransmission has its first copy's id: a duplicate for peers that saw it, new to the
    /// rest (`republish`, our gossipsub patch, skips our own duplicate cache).
    pub fn publish_bytes(&mut self, topic: &str, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.inner
            .republish(IdentTopic::new(topic), bytes)
            .map(|_| ())
            .map_err(|e| match e {
                gossipsub::PublishError::NoPeersSubscribedToTopic => PublishError::NoPeers,
                gossipsub::PublishError::MessageTooLarge => PublishError::TooLarge(e.to_string()),
                other => PublishError::Other(other.to_string()),
            })
    }

    /// Opens a group channel on `topic` (and joins it); its deliveries arrive on the receiver.
    pub fn open_channel(
        &mut self,
        topic: &str,
        filter: MembershipFilter,
        kinds: Vec<KindSpec>,
        capacity: usize,
        max_backlog: usize,
    ) -> mpsc::Receiver<Delivery> {
        let (sink, inbox) = mpsc::channel(capacity);
        let channels = &mut self.pipeline.channels;
        channels.open(topic, filter, sink, max_backlog);
        for kind in kinds {
            channels.register(topic, kind);
        }
        self.join(topic);
        inbox
    }

    /// Registers one more message type on `topic`'s channel.
    pub fn register_kind(&mut self, topic: &str, kind: KindSpec) {
        self.pipeline.channels.register(topic, kind);
    }

    /// Closes `topic`'s channel (what it held is ignored) and leaves the topic.
    pub fn close_channel(&mut self, topic: &str) {
        let late = self.pipeline.channels.close(topic);
        self.report_late(late);
        self.leave(topic);
    }

    /// The application's verdict on a message its validator checked.
    pub fn report_validation(&mut self, awaiting: Awaiting, verdict: Result<(), String>) {
        let acceptance = match verdict {
            Ok(()) => {
                self.counts.add("delivered", 1);
                MessageAcceptance::Accept
            }
            Err(detail) => {
                let forwarder_is_author =
                    self.pipeline.is_author(&awaiting.source, &awaiting.author);
                let acceptance = group_acceptance(forwarder_is_author);
                self.reject(
                    "invalid",
                    awaiting.source,
                    Some(awaiting.author),
                    acceptance,
                    detail,
                );
                acceptance
            }
        };
        self.tell(&awaiting.id, &awaiting.source, acceptance);
    }

    /// Verdicts for messages that were held behind a full channel.
    fn report_late(&mut self, late: Vec<LateVerdict>) {
        for (id, source, verdict) in late {
            let acceptance = match verdict {
                Verdict::Accept => {
                    self.counts.add("delivered", 1);
                    MessageAcceptance::Accept
                }
                Verdict::Ignore(reason) => {
                    self.counts.add(reason, 1);
                    MessageAcceptance::Ignore
                }
                // Late verdicts are only Accept or Ignore.
                Verdict::Reject(..) | Verdict::Hold => continue,
            };
            self.tell(&id, &source, acceptance);
        }
    }

    /// Tells gossipsub the verdict on `id`. An accepted message it no longer holds (the verdict
    /// came after its message cache let go of it, under a backlog longer than the cache) is
    /// delivered here but forwarded to nobody: counted as `forward_expired`.
    fn tell(&mut self, id: &MessageId, source: &PeerId, acceptance: MessageAcceptance) {
        let accepted = acceptance == MessageAcceptance::Accept;
        let known = self
            .inner
            .report_message_validation_result(id, source, acceptance);
        if accepted && !known {
            self.counts.add("forward_expired", 1);
        }
    }

    /// Counts a rejection by reason and reports it.
    fn reject(
        &mut self,
        reason: &'static str,
        from: PeerId,
        author: Option<Address>,
        acceptance: MessageAcceptance,
        detail: String,
    ) {
        let total = self.counts.add(reason, 1);
        // Debug, not info: a flood of bad messages must not become a flood of log lines (in
        // the page, each is a console call); the counter and the event carry it.
        tracing::debug!(reason, %detail, %from, "message rejected");
        self.report(NodeEvent::Rejected {
            reason,
            from: from.to_string(),
            author: author.map(|a| a.to_string()),
            penalised: acceptance == MessageAcceptance::Reject,
            detail,
            total,
        });
    }

    /// Tells gossipsub to drop `id` unforwarded, unpunished.
    fn ignore(&mut self, id: &MessageId, source: &PeerId) {
        self.inner
            .report_message_validation_result(id, source, MessageAcceptance::Ignore);
    }

    fn on_message(&mut self, source: PeerId, id: MessageId, message: gossipsub::Message) {
        if let Some(limit) = &mut self.rate_limit {
            if !limit.allow(source, platform::unix_time()) {
                self.counts.add("rate_limited", 1);
                self.ignore(&id, &source);
                self.out.push_back(Event::Offence {
                    peer: source,
                    offence: Offence::RateLimited,
                });
                return;
            }
        }
        if !self.admitted.contains(&source) {
            self.counts.add("not_admitted", 1);
            self.ignore(&id, &source);
            return;
        }
        let outcome = self
            .pipeline
            .judge(message.topic.as_str(), &id, source, &message.data);
        self.finish(message.topic.as_str(), id, source, outcome);
    }

    /// Hands a message to the verifier pool, or keeps it waiting (in order) while the pool is
    /// full: its gossipsub verdict waits too (back-pressure, counted as `held`). Beyond
    /// [`MAX_WAITING`] it is ignored as `overloaded`: memory stays bounded under a flood.
    fn submit(&mut self, job: Unverified) {
        if self.waiting.is_empty() {
            match self.verifier.try_submit(job) {
                Ok(()) => return,
                Err(job) => self.waiting.push_back(job),
            }
        } else if self.waiting.len() >= MAX_WAITING {
            for (topic, id, source, outcome) in self.pipeline.abandon(job, "overloaded") {
                self.finish(&topic, id, source, outcome);
            }
            return;
        } else {
            self.waiting.push_back(job);
        }
        self.counts.add("held", 1);
    }

    /// What the pipeline made of message `id`, told to gossipsub, counted and reported.
    fn finish(&mut self, topic: &str, id: MessageId, source: PeerId, outcome: Outcome) {
        let acceptance = match outcome {
            Outcome::Verify(job) => {
                // An author over its rate goes unchecked and unforwarded; the forwarder, likely
                // a relay, is not to blame. A message whose signature fails is refunded, so
                // forgeries in an author's name cannot spend its share.
                let claimed = Address::from_slice(&job.envelope.sender);
                if let (Some(limit), Some(author)) = (&mut self.sender_limit, claimed) {
                    if !limit.allow(author, platform::unix_time()) {
                        for (topic, id, source, outcome) in
                            self.pipeline.abandon(job, "sender_rate_limited")
                        {
                            self.finish(&topic, id, source, outcome);
                        }
                        return;
                    }
                }
                return self.submit(job);
            }
            Outcome::Parked => {
                self.counts.add("held", 1);
                return;
            }
            Outcome::Ignored(reason) => {
                let total = self.counts.add(reason, 1);
                self.report(NodeEvent::Dropped {
                    reason,
                    topic: Some(topic.to_owned()),
                    peer: None,
                    count: 1,
                    total,
                });
                MessageAcceptance::Ignore
            }
            Outcome::Invalid {
                reason,
                detail,
                offence,
            } => {
                self.reject(reason, source, None, MessageAcceptance::Reject, detail);
                // A bad signature is the forwarder's offence: relays check signatures too, so
                // whoever hands one over forged it or forwarded it unchecked.
                if let Some(offence) = offence {
                    self.out.push_back(Event::Offence {
                        peer: source,
                        offence,
                    });
                }
                MessageAcceptance::Reject
            }
            Outcome::Plain { envelope, sender } => {
                if self.settings.role == Role::Member {
                    self.report(NodeEvent::Message {
                        topic: topic.to_owned(),
                        from: source.to_string(),
                        sender: sender.to_string(),
                        kind: envelope.r#type,
                        sequence: envelope.sequence,
                        data: envelope.payload,
                    });
                }
                MessageAcceptance::Accept
            }
            Outcome::Channel {
                verdict: Verdict::Accept,
                ..
            } => {
                self.counts.add("delivered", 1);
                MessageAcceptance::Accept
            }
            Outcome::Channel {
                verdict: Verdict::Reject(reason, detail),
                sender,
            } => {
                let acceptance = group_acceptance(self.pipeline.is_author(&source, &sender));
                self.reject(reason, source, Some(sender), acceptance, detail);
                acceptance
            }
            Outcome::Channel {
                verdict: Verdict::Ignore(reason),
                ..
            } => {
                let total = self.counts.add(reason, 1);
                // Duplicates are the normal cost of retransmission: counted, not reported.
                if reason != "duplicate" {
                    tracing::debug!(%topic, reason, "message dropped");
                    self.report(NodeEvent::Dropped {
                        reason,
                        topic: Some(topic.to_owned()),
                        peer: None,
                        count: 1,
                        total,
                    });
                }
                MessageAcceptance::Ignore
            }
            Outcome::Channel {
                verdict: Verdict::Hold,
                ..
            } => {
                self.counts.add("held", 1);
                return;
            }
        };
        self.tell(&id, &source, acceptance);
    }

    fn on_inner(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => self.on_message(propagation_source, message_id, message),
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                let dropped = (failed_messages.priority + failed_messages.non_priority) as u64;
                let total = self.counts.add("slow_peer_dropped", dropped);
                tracing::warn!(%peer_id, dropped, "peer too slow: gossipsub dropped messages to it");
                self.report(NodeEvent::Dropped {
                    reason: "slow_peer",
                    topic: None,
                    peer: Some(peer_id.to_string()),
                    count: dropped,
                    total,
                });
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                // A relay routes every topic its peers join.
                if self.settings.role == Role::Relay {
                    self.join(topic.as_str());
                }
                self.report(NodeEvent::PeerSubscribed {
                    peer: peer_id.to_string(),
                    topic: topic.into_string(),
                });
            }
            _ => {}
        }
    }
}

// Every hook goes to gossipsub unchanged; connection events are looked at on the way (after
// gossipsub has seen them), its events taken in `poll`.
impl NetworkBehaviour for Pubsub {
    type ConnectionHandler = <gossipsub::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = Event;

    forward_connection_hooks!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
        let floodsub = self.settings.router == Router::Floodsub;
        match event {
            FromSwarm::ConnectionEstablished(e) if e.other_established == 0 && floodsub => {
                // Floodsub routing: an explicit peer gets every message of its topics.
                self.inner.add_explicit_peer(&e.peer_id);
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                self.admitted.remove(&e.peer_id);
                if let Some(limit) = &mut self.rate_limit {
                    limit.forget(&e.peer_id);
                }
                if floodsub {
                    // Or gossipsub would keep redialling it.
                    self.inner.remove_explicit_peer(&e.peer_id);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.out.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }
            match self.inner.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => {
                    self.on_inner(event);
                    continue;
                }
                Poll::Ready(other) => {
                    return Poll::Ready(other.map_out(|_| unreachable!("taken above")));
                }
                Poll::Pending => {}
            }
            // Checked signatures finish their messages; waiting ones take the freed places.
            if let Poll::Ready(done) = self.verifier.poll_done(cx) {
                if let (Some(limit), Err(_)) = (&mut self.sender_limit, &done.signer) {
                    if let Some(claimed) = Address::from_slice(&done.envelope.sender) {
                        limit.refund(claimed, platform::unix_time());
                    }
                }
                for (topic, id, source, outcome) in self.pipeline.verified(done) {
                    self.finish(&topic, id, source, outcome);
                }
                while let Some(job) = self.waiting.pop_front() {
                    if let Err(job) = self.verifier.try_submit(job) {
                        self.waiting.push_front(job);
                        break;
                    }
                }
                continue;
            }
            // Held messages move as their channels make room (wakers registered on full ones).
            if let Poll::Ready(late) = self.pipeline.channels.poll_drain(cx) {
                self.report_late(late);
                continue;
            }
            self.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}

// The shell against real swarms: tokio and the memory transport exist only natively.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod shell_tests {
    use futures::StreamExt as _;
    use libp2p::{swarm::SwarmEvent, Swarm};

    use super::*;
    use crate::{
        identity::OperatorKey,
        net::test_support::{memory_address, memory_swarm},
    };

    const TOPIC: &str = "keep-light/test/1";

    fn node(key: &OperatorKey) -> Swarm<Pubsub> {
        limited_node(key, None)
    }

    fn limited_node(key: &OperatorKey, sender_rate_limit: Option<(u32, u32)>) -> Swarm<Pubsub> {
        let keypair = key.libp2p_keypair();
        let config = gossipsub::ConfigBuilder::default()
            .validation_mode(gossipsub::ValidationMode::Anonymous)
            .message_id_fn(message_id)
            .validate_messages()
            .flood_publish(true)
            .heartbeat_interval(std::time::Duration::from_millis(100))
            .build()
            .unwrap();
        let inner =
            gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config).unwrap();
        let settings = Settings {
            role: Role::Member,
            router: Router::Gossipsub,
            key: key.signing_key(),
            max_message_size: 4096,
            rate_limit: None,
            sender_rate_limit,
        };
        let mut swarm = memory_swarm(keypair, Pubsub::new(inner, settings));
        swarm.behaviour_mut().join(TOPIC);
        swarm
    }

    /// Drives both swarms until `b` reports what `pick` looks for; `a`'s events are dropped.
    async fn until<T>(
        a: &mut Swarm<Pubsub>,
        b: &mut Swarm<Pubsub>,
        mut pick: impl FnMut(Event) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::sleep(std::time::Duration::from_secs(10));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                event = b.select_next_some() => {
                    if let SwarmEvent::Behaviour(event) = event {
                        if let Some(found) = pick(event) {
                            return found;
                        }
                    }
                }
                _ = &mut deadline => panic!("not reported in time"),
            }
        }
    }

    #[tokio::test]
    async fn only_admitted_peers_messages_count_and_a_bad_signature_is_the_forwarders_offence() {
        let (alice, bob) = (OperatorKey::generate(), OperatorKey::generate());
        let (mut a, mut b) = (node(&alice), node(&bob));
        let address = memory_address();
        b.listen_on(address.clone()).unwrap();
        a.dial(address).unwrap();
        // Bob's side sees Alice join the topic: from now on what she publishes reaches him.
        until(&mut a, &mut b, |e| {
            matches!(e, Event::Report(NodeEvent::PeerSubscribed { .. })).then_some(())
        })
        .await;
        // Let Alice hear of Bob's subscription too (one more exchange).
        let settle = tokio::time::sleep(std::time::Duration::from_millis(300));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                _ = b.select_next_some() => {}
                _ = &mut settle => break,
            }
        }

        // Not admitted by Bob's firewall yet: ignored, counted, never delivered.
        a.behaviour_mut()
            .publish(TOPIC, "k".into(), b"early".to_vec())
            .unwrap()
            .sent
            .unwrap();
        let early = tokio::time::sleep(std::time::Duration::from_millis(500));
        tokio::pin!(early);
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                event = b.select_next_some() => {
                    if let SwarmEvent::Behaviour(Event::Report(NodeEvent::Message { .. })) = event {
                        panic!("an unadmitted peer's message was delivered");
                    }
                }
                _ = &mut early => break,
            }
        }
        assert_eq!(b.behaviour().counts().get("not_admitted"), 1);

        // Admitted: delivered, with the authenticated sender.
        b.behaviour_mut().admit(*a.local_peer_id());
        a.behaviour_mut()
            .publish(TOPIC, "k".into(), b"hello".to_vec())
            .unwrap();
        let (from, sender, data) = until(&mut a, &mut b, |e| match e {
            Event::Report(NodeEvent::Message {
                from, sender, data, ..
            }) => Some((from, sender, data)),
            _ => None,
        })
        .await;
        assert_eq!(
            (from, sender, data),
            (
                a.local_peer_id().to_string(),
                alice.address().to_string(),
                b"hello".to_vec()
            )
        );

        // An envelope naming Bob, signed by Alice: rejected, the forwarder's offence.
        let mut forged = Envelope {
            r#type: "k".into(),
            payload: b"forged".to_vec(),
            sequence: 1,
            ..Default::default()
        };
        signature::sign(&alice.signing_key(), TOPIC, &mut forged);
        forged.sender = bob.address().as_bytes().to_vec();
        let bytes = wire::encode_envelope(&forged, 4096).unwrap();
        a.behaviour_mut().publish_bytes(TOPIC, bytes).unwrap();
        let mut rejected = false;
        let offender = until(&mut a, &mut b, |e| match e {
            Event::Report(NodeEvent::Rejected {
                reason, penalised, ..
            }) => {
                rejected = reason == "bad_signature" && penalised;
                None
            }
            Event::Offence { peer, offence } => Some((peer, offence)),
            _ => None,
        })
        .await;
        assert!(rejected, "the rejection comes first, penalised");
        assert_eq!(offender, (*a.local_peer_id(), Offence::BadSignature));
        assert_eq!(
            b.behaviour().counts().get("delivered"),
            0,
            "plain messages are not channel deliveries"
        );
    }

    #[tokio::test]
    async fn an_author_over_its_rate_is_dropped_unpunished_and_forgeries_in_its_name_cost_it_nothing(
    ) {
        let (alice, carol) = (OperatorKey::generate(), OperatorKey::generate());
        // Bob allows an author 3 messages at once, then one a second.
        let (mut a, mut b) = (
            node(&alice),
            limited_node(&OperatorKey::generate(), Some((1, 3))),
        );
        b.behaviour_mut().admit(*a.local_peer_id());
        let address = memory_address();
        b.listen_on(address.clone()).unwrap();
        a.dial(address).unwrap();
        until(&mut a, &mut b, |e| {
            matches!(e, Event::Report(NodeEvent::PeerSubscribed { .. })).then_some(())
        })
        .await;
        let settle = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                _ = b.select_next_some() => {}
                _ = &mut settle => break,
            }
        }

        // Three envelopes in Alice's name signed by Carol: refused, and refunded.
        for n in 0..3u8 {
            let mut forged = Envelope {
                r#type: "k".into(),
                payload: vec![n],
                sequence: u64::from(n) + 1,
                ..Default::default()
            };
            signature::sign(&carol.signing_key(), TOPIC, &mut forged);
            forged.sender = alice.address().as_bytes().to_vec();
            let bytes = wire::encode_envelope(&forged, 4096).unwrap();
            a.behaviour_mut().publish_bytes(TOPIC, bytes).unwrap();
        }
        let mut refused = 0;
        until(&mut a, &mut b, |e| {
            if let Event::Report(NodeEvent::Rejected { reason, .. }) = e {
                assert_eq!(reason, "bad_signature");
                refused += 1;
            }
            (refused == 3).then_some(())
        })
        .await;

        // Alice's own six: her burst of three is delivered, the rest dropped, no offence.
        for n in 0..6u8 {
            a.behaviour_mut()
                .publish(TOPIC, "k".into(), vec![n])
                .unwrap();
        }
        let (mut delivered, mut dropped) = (0, 0);
        until(&mut a, &mut b, |e| {
            match e {
                Event::Report(NodeEvent::Message { sender, .. }) => {
                    assert_eq!(sender, alice.address().to_string());
                    delivered += 1;
                }
                Event::Report(NodeEvent::Dropped { reason, .. }) => {
                    assert_eq!(reason, "sender_rate_limited");
                    dropped += 1;
                }
                // (The forgeries' offences are reported after their rejections.)
                Event::Offence { offence, .. } if offence != Offence::BadSignature => {
                    panic!("a relay-forwarded excess is no {offence:?}")
                }
                _ => {}
            }
            (delivered + dropped == 6).then_some(())
        })
        .await;
        // (One more may have refilled in the second the test takes.)
        assert!((3..=4).contains(&delivered), "{delivered} delivered");
        assert_eq!(b.behaviour().counts().get("sender_rate_limited"), dropped);
    }

    /// Drives three swarms for `time`; returns the payloads each one delivered.
    async fn deliveries(swarms: [&mut Swarm<Pubsub>; 3], time: Duration) -> [Vec<Vec<u8>>; 3] {
        let [a, b, c] = swarms;
        let mut got: [Vec<Vec<u8>>; 3] = Default::default();
        let stop = tokio::time::sleep(time);
        tokio::pin!(stop);
        let data = |event| match event {
            SwarmEvent::Behaviour(Event::Report(NodeEvent::Message { data, .. })) => Some(data),
            _ => None,
        };
        loop {
            tokio::select! {
                e = a.select_next_some() => got[0].extend(data(e)),
                e = b.select_next_some() => got[1].extend(data(e)),
                e = c.select_next_some() => got[2].extend(data(e)),
                _ = &mut stop => return got,
            }
        }
    }

    #[tokio::test]
    async fn a_retransmission_is_a_duplicate_to_peers_that_saw_it_and_new_to_the_rest() {
        let keys = [(); 3].map(|_| OperatorKey::generate());
        let [mut a, mut b, mut c] = [0, 1, 2].map(|i| node(&keys[i]));
        let peers = [&a, &b, &c].map(|s| *s.local_peer_id());
        for swarm in [&mut a, &mut b, &mut c] {
            for peer in peers {
                swarm.behaviour_mut().admit(peer);
            }
        }
        let settle = Duration::from_millis(400);
        let (to_b, to_c) = (memory_address(), memory_address());
        b.listen_on(to_b.clone()).unwrap();
        c.listen_on(to_c.clone()).unwrap();
        a.dial(to_b).unwrap();
        deliveries([&mut a, &mut b, &mut c], settle).await;

        let sent = a
            .behaviour_mut()
            .publish(TOPIC, "k".into(), b"once".to_vec())
            .unwrap();
        sent.sent.unwrap();
        let [_, at_b, at_c] = deliveries([&mut a, &mut b, &mut c], settle).await;
        assert_eq!((at_b, at_c), (vec![b"once".to_vec()], vec![]));

        // Carol joins later; Alice republishes the same bytes at once (the same message id,
        // still in every duplicate cache that saw it): Carol gets it, Bob drops his copy.
        a.dial(to_c).unwrap();
        deliveries([&mut a, &mut b, &mut c], settle).await;
        a.behaviour_mut()
            .publish_bytes(TOPIC, sent.bytes)
            .expect("a retransmission is not refused as our own duplicate");
        let [_, at_b, at_c] = deliveries([&mut a, &mut b, &mut c], settle).await;
        assert_eq!((at_b, at_c), (vec![], vec![b"once".to_vec()]));
    }
}
