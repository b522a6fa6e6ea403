//! Pubsub: gossipsub with our checks in front of everything it forwards or delivers.
//!
//! # Overview
//! [`Pubsub`] wraps gossipsub, which runs with `validate_messages()`: it forwards nothing until
//! told. Each message gossipsub hands up goes through, in order:
//! 1. the per-peer rate limit (relays by default): over it, ignored and an
//!    [`Offence::RateLimited`];
//! 2. admission: a peer the firewall has not admitted ([`Pubsub::admit`], default-deny) is
//!    ignored, unpunished (its attestation may be on the way; retransmission covers the loss);
//! 3. the [`Pipeline`] (`super::validation`): envelope checks, then the group channel's.
//!
//! Its verdict goes back to gossipsub: Accept (forward), Reject (gossipsub penalises the
//! forwarder), Ignore, or none yet (held behind a full channel, or waiting for the
//! application's validator). A group's refusal penalises the forwarder only when it is the
//! author ([`group_acceptance`]). A message whose envelope names someone else than its author,
//! handed over by the forger itself, is an [`Offence::SpoofedSender`].
//!
//! It also publishes our envelopes (each with the next sequence number), joins and leaves topics
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
};

use futures::channel::mpsc;
use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance, MessageId},
    swarm::{
        ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    PeerId,
};

use super::{
    events::NodeEvent,
    firewall::RateLimit,
    types::{Counts, Encoded, Offence, PublishError, Role, Router},
    validation::{
        Awaiting, Delivery, KindSpec, LateVerdict, MembershipFilter, Outcome, Pipeline, Verdict,
    },
    wrap::forward_connection_hooks,
};
use crate::{
    identity::Address,
    platform,
    wire::{self, Envelope},
};

/// What [`Pubsub`] counts: messages refused (by reason), channel outcomes, and what gossipsub
/// dropped towards slow peers.
pub const COUNTERS: &[&str] = &[
    "invalid",
    "non_member",
    "not_admitted",
    "oversize",
    "rate_limited",
    "replay",
    "spoofed_sender",
    "undecodable",
    "undecodable_payload",
    "unknown_author",
    "unknown_type",
    "channel_closed",
    "delivered",
    "duplicate",
    "held",
    "no_channel",
    "overloaded",
    "slow_peer_dropped",
];

/// A relay's default per-peer message limit: (per second, burst).
pub const RELAY_RATE_LIMIT: (u32, u32) = (2_000, 20_000);

/// What [`Pubsub`] reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Something for the application, as it is (message, rejection, drop, subscription).
    Report(NodeEvent),
    /// `peer` offended: ban it.
    Offence { peer: PeerId, offence: Offence },
}

/// How a node uses pubsub.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub role: Role,
    pub router: Router,
    /// Our operator address, the sender of what we publish.
    pub address: Address,
    /// The envelope size limit.
    pub max_message_size: usize,
    /// Messages per peer: (per second, burst), when limited.
    pub rate_limit: Option<(u32, u32)>,
}

/// Gossipsub's verdict on a message a group refused (non-member, unknown type, bad payload,
/// replay, a failed application check). Those judge what the author signed, and relays, which
/// know no groups, forward such messages in good faith. So the forwarder gets Reject (gossipsub's
/// penalty) only when it is the author; otherwise the message just goes no further (Ignore), and
/// the offence is the author's (named in [`NodeEvent::Rejected`]).
pub fn group_acceptance(author: PeerId, forwarder: PeerId) -> MessageAcceptance {
    if author == forwarder {
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
    /// Peers whose messages count (the firewall's word).
    admitted: HashSet<PeerId>,
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
            settings,
            // Start from the wall clock (µs), so a restarted node's sequence numbers continue
            // above its earlier ones: receivers' de-duplication would drop a restart from 1.
            sequence: platform::unix_time().as_micros() as u64,
            rate_limit: settings
                .rate_limit
                .map(|(per_second, burst)| RateLimit::new(per_second, burst)),
            admitted: HashSet::new(),
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
        let envelope = Envelope {
            r#type: kind,
            payload,
            sender: self.settings.address.as_bytes().to_vec(),
            sequence: self.sequence,
            group: Vec::new(),
        };
        let bytes = wire::encode_envelope(&envelope, self.settings.max_message_size)
            .map_err(|e| PublishError::TooLarge(e.to_string()))?;
        let sent = self.publish_bytes(topic, bytes.clone());
        Ok(Encoded { bytes, sent })
    }

    /// Publishes `bytes` as they are (a retransmission, or a test's hand-made envelope).
    pub fn publish_bytes(&mut self, topic: &str, bytes: Vec<u8>) -> Result<(), PublishError> {
        self.inner
            .publish(IdentTopic::new(topic), bytes)
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
                let acceptance = group_acceptance(awaiting.author, awaiting.source);
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
        self.inner
            .report_message_validation_result(&awaiting.id, &awaiting.source, acceptance);
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
            self.inner
                .report_message_validation_result(&id, &source, acceptance);
        }
    }

    /// Counts a rejection by reason and reports it.
    fn reject(
        &mut self,
        reason: &'static str,
        from: PeerId,
        author: Option<PeerId>,
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
        let topic = message.topic.as_str();
        let author = message.source;
        let acceptance = match self
            .pipeline
            .judge(topic, &id, source, author, &message.data)
        {
            Outcome::Invalid {
                reason,
                detail,
                offence,
            } => {
                self.reject(reason, source, author, MessageAcceptance::Reject, detail);
                // A forgery handed to us by the forger itself is an offence (a relay checks
                // senders too, so a relay that forwards one is as guilty).
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
                        from: author.map(|p| p.to_string()).unwrap_or_default(),
                        sender: sender.to_string(),
                        kind: envelope.r#type,
                        sequence: envelope.sequence,
                        data: envelope.payload,
                    });
                }
                MessageAcceptance::Accept
            }
            Outcome::Channel(Verdict::Accept) => {
                self.counts.add("delivered", 1);
                MessageAcceptance::Accept
            }
            Outcome::Channel(Verdict::Reject(reason, detail)) => {
                let acceptance = match author {
                    Some(author) => group_acceptance(author, source),
                    None => MessageAcceptance::Reject,
                };
                self.reject(reason, source, author, acceptance, detail);
                acceptance
            }
            Outcome::Channel(Verdict::Ignore(reason)) => {
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
            Outcome::Channel(Verdict::Hold) => {
                self.counts.add("held", 1);
                return;
            }
        };
        self.inner
            .report_message_validation_result(&id, &source, acceptance);
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
