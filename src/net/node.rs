//! The node: a handle for commands, a stream of events, and the event loop that owns the swarm.
//!
//! # Overview
//! [`Node::start`] builds the swarm, starts listening and dialing, spawns the event loop through
//! [`crate::platform::spawn`] and returns a [`NodeHandle`] (cheap to clone) plus an event
//! receiver. The loop owns everything mutable; the handle only sends it commands
//! ([`super::handle`]), so the same code runs on tokio and on the browser's single thread. The
//! settings are in [`super::config`], what the node reports in [`super::events`].
//!
//! # Usage
//! ```no_run
//! # async fn demo() -> Result<(), keep_light::net::StartError> {
//! use futures::StreamExt;
//! use keep_light::{identity::OperatorKey, net::{Node, NodeConfig}};
//! let config = NodeConfig::new(OperatorKey::generate())
//!     .with_bootstrap(vec!["/ip4/127.0.0.1/tcp/4001/ws".into()])
//!     .with_topics(vec!["keep-light/demo/1".into()]);
//! let (node, mut events) = Node::start(config).await?;
//! node.publish("keep-light/demo/1", b"hello".to_vec()).await.ok();
//! while let Some(event) = events.next().await { println!("{}", event.to_json()); }
//! # Ok(()) }
//! ```
//!
//! # Security
//! Every pubsub message is signed by its author (StrictSign, checked by gossipsub) and then
//! checked here: size limit before decoding, envelope decode, author's operator = envelope
//! sender. Anything else is rejected with a counted reason, reported to gossipsub as `Reject`
//! (which penalises the peer that forwarded it) and never delivered.

use std::collections::HashMap;

use futures::{channel::mpsc, FutureExt, StreamExt};
use libp2p::{
    gossipsub::{self, IdentTopic, MessageAcceptance},
    multiaddr::Protocol,
    swarm::{ListenError, SwarmEvent},
    Multiaddr, PeerId, Swarm,
};

use super::{
    attest::{self, Attest},
    bans::{self, BanList, Bans},
    behaviour::{self, Behaviour, BehaviourEvent, Parts},
    bootstrap::{self, Bootstrap, BootstrapSchedule},
    firewall::{self, Firewall, Gate, IpLimitExceeded, Policy, RateLimit, Recognition},
    handle::Command,
    transport,
    types::Router,
    validation::{ChannelTable, Delivery, LateVerdict, Verdict},
};
// The paths these had before they moved out (`net::node::NodeConfig`, …) stay valid.
pub use super::{
    config::NodeConfig,
    events::{EventReceiver, NodeEvent, COUNTER_NAMES},
    handle::{Encoded, NodeHandle},
    types::{PublishError, Role, TEXT_TYPE},
    validation::KindSpec,
};
use crate::{
    identity::{attestation, Address},
    platform,
    wire::{self, Envelope},
};

/// Why [`Node::start`] failed. Nothing here is transient: fix the configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The behaviour or transport could not be built.
    #[error("cannot build the swarm: {0}")]
    Build(String),
    /// A listen address was refused (malformed for this transport, port taken, …).
    #[error("cannot listen on {address}: {error}")]
    Listen { address: Multiaddr, error: String },
    /// The settings contradict each other (e.g. a `staked` firewall without a chain).
    #[error("{0}")]
    Config(String),
}

/// Gossipsub's verdict on a message a group refused (non-member, unknown type, bad payload,
/// replay, a failed application check). Those judge what the author signed, and relays, which
/// know no groups, forward such messages in good faith. So the forwarder gets Reject (gossipsub's
/// penalty) only when it is the author; otherwise the message just goes no further (Ignore), and
/// the offence is the author's (named in [`NodeEvent::Rejected`]).
fn group_acceptance(author: PeerId, forwarder: PeerId) -> MessageAcceptance {
    if author == forwarder {
        MessageAcceptance::Reject
    } else {
        MessageAcceptance::Ignore
    }
}

/// Entry point; see the module docs.
pub struct Node;

impl Node {
    /// Builds the swarm, listens, starts dialing and spawns the event loop.
    pub async fn start(config: NodeConfig) -> Result<(NodeHandle, EventReceiver), StartError> {
        if config.policy == Policy::Staked && config.chain.is_none() {
            return Err(StartError::Config(
                "the staked firewall needs a chain to ask (with_chain / --chain URL)".into(),
            ));
        }
        let keypair = config.key.libp2p_keypair();
        let peer_id = config.key.peer_id();
        let address = config.key.address();
        let limits = config
            .limits
            .clone()
            .unwrap_or_else(|| behaviour::default_limits(config.role));
        let ping = config
            .ping
            .unwrap_or_else(|| behaviour::default_ping(config.role));
        let (bans, skipped) = BanList::restore(
            config.ban_policy.clone(),
            &config.bans,
            platform::unix_time(),
        );
        if skipped > 0 {
            tracing::warn!(skipped, "ban records with malformed peer IDs skipped");
        }
        let (events_tx, events_rx) = mpsc::unbounded();
        let ordered = bootstrap::order(&config.bootstrap, config.bootstrap_store.as_deref());
        for (address, error) in ordered.invalid {
            let _ = events_tx.unbounded_send(NodeEvent::BootstrapInvalid { address, error });
        }
        if (ordered.more_invalid, ordered.over_limit) != (0, 0) {
            tracing::warn!(
                invalid = ordered.more_invalid,
                over_limit = ordered.over_limit,
                "bootstrap addresses skipped"
            );
            let _ = events_tx.unbounded_send(NodeEvent::BootstrapSkipped {
                invalid: ordered.more_invalid,
                over_limit: ordered.over_limit,
            });
        }
        let schedule = BootstrapSchedule::new(
            ordered.addresses,
            config.backoff,
            config.bootstrap_target,
            platform::now(),
        );
        let behaviour = behaviour::build(
            &keypair,
            config.role,
            Parts {
                bans: Bans::new(bans),
                bootstrap: Bootstrap::new(
                    schedule,
                    config.circuit_listen,
                    config.bootstrap_store.clone(),
                ),
                attest: Attest::new(config.attestation, config.chain_id),
                firewall: Firewall::new(
                    Gate::new(config.policy, config.allowed, config.attestation_grace),
                    config.chain.map(|c| c.0),
                    Recognition::new(config.recognition.0, config.recognition.1),
                ),
            },
            config.max_message_size,
            limits,
            config
                .ip_limits
                .unwrap_or_else(|| behaviour::default_ip_limits(config.role)),
            config.circuits,
            ping,
        )
        .map_err(StartError::Build)?;
        let mut swarm =
            transport::build_swarm(keypair, config.webrtc_certificate.as_deref(), behaviour)
                .await
                .map_err(StartError::Build)?;
        for addr in &config.external {
            swarm.add_external_address(addr.clone());
        }
        for addr in &config.listen {
            swarm
                .listen_on(addr.clone())
                .map_err(|e| StartError::Listen {
                    address: addr.clone(),
                    error: e.to_string(),
                })?;
        }

        let mut state = EventLoop {
            events: events_tx,
            role: config.role,
            router: config.router,
            address,
            max_message_size: config.max_message_size,
            // Start from the wall clock (µs), so a restarted node's sequence numbers continue
            // above its earlier ones: receivers' de-duplication would drop a restart from 1.
            sequence: platform::unix_time().as_micros() as u64,
            rejected: HashMap::new(),
            channels: ChannelTable::default(),
            channel_counts: HashMap::new(),
            authors: HashMap::new(),
            pending_bans: Vec::new(),
            external_configured: !config.external.is_empty(),
            rate_limit: config
                .rate_limit
                .or((config.role == Role::Relay).then_some(RELAY_RATE_LIMIT))
                .map(|(per_second, burst)| RateLimit::new(per_second, burst)),
        };
        for topic in &config.topics {
            state.join(&mut swarm, topic);
        }

        let (commands_tx, commands_rx) = mpsc::unbounded();
        platform::spawn(state.run(swarm, commands_rx));
        Ok((
            NodeHandle {
                commands: commands_tx,
                peer_id,
                address,
            },
            events_rx,
        ))
    }
}

/// The state the event loop owns besides the swarm.
struct EventLoop {
    /// Offences seen where the swarm is out of reach, banned on the next turn of the loop.
    pending_bans: Vec<(PeerId, String)>,
    /// Messages per peer, when limited.
    rate_limit: Option<RateLimit>,
    /// Whether external addresses were configured (else a relay confirms its listen ones).
    external_configured: bool,
    events: mpsc::UnboundedSender<NodeEvent>,
    role: Role,
    router: Router,
    address: Address,
    max_message_size: usize,
    sequence: u64,
    rejected: HashMap<&'static str, u64>,
    /// Open group channels and their delivery queues.
    channels: ChannelTable,
    /// Channel outcomes that are not rejections (delivered, duplicate, held, overloaded…).
    channel_counts: HashMap<&'static str, u64>,
    /// Message authors' operator addresses (bounded by [`AUTHOR_CACHE`]).
    authors: HashMap<PeerId, Option<Address>>,
}

/// A relay's default per-peer message limit: (per second, burst).
const RELAY_RATE_LIMIT: (u32, u32) = (2_000, 20_000);

/// Most cached author addresses; the cache starts over when full.
const AUTHOR_CACHE: usize = 4096;

impl EventLoop {
    async fn run(
        mut self,
        mut swarm: Swarm<Behaviour>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
            let bans = &mut swarm.behaviour_mut().bans;
            for (peer, reason) in std::mem::take(&mut self.pending_bans) {
                bans.ban(peer, None, &reason);
            }
            futures::select! {
                event = swarm.select_next_some() => self.on_swarm_event(&mut swarm, event),
                command = commands.next() => match command {
                    Some(Command::Shutdown(done)) => {
                        drop(swarm);
                        let _ = done.send(());
                        return;
                    }
                    Some(command) => self.on_command(&mut swarm, command),
                    // Every handle is gone: stop.
                    None => return,
                },
                late = futures::future::poll_fn(|cx| self.channels.poll_drain(cx)).fuse() => {
                    self.report_late(&mut swarm, late);
                }
            }
        }
    }

    fn emit(&self, event: NodeEvent) {
        // A closed receiver means nobody listens any more; the node still serves its peers.
        let _ = self.events.unbounded_send(event);
    }

    fn join(&mut self, swarm: &mut Swarm<Behaviour>, topic: &str) {
        match swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&IdentTopic::new(topic))
        {
            Ok(true) => self.emit(NodeEvent::Subscribed {
                topic: topic.to_owned(),
            }),
            Ok(false) => {}
            Err(e) => tracing::warn!(topic, error = %e, "cannot subscribe"),
        }
    }

    fn on_command(&mut self, swarm: &mut Swarm<Behaviour>, command: Command) {
        match command {
            Command::Publish {
                topic,
                kind,
                payload,
                reply,
            } => {
                let _ = reply.send(self.publish(swarm, &topic, kind, payload));
            }
            Command::PublishRaw {
                topic,
                bytes,
                reply,
            } => {
                let _ = reply.send(publish_bytes(swarm, &topic, bytes));
            }
            Command::Join(topic) => self.join(swarm, &topic),
            Command::Leave(topic) => {
                if swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&IdentTopic::new(&topic))
                {
                    self.emit(NodeEvent::Unsubscribed { topic });
                }
            }
            Command::PublishEnvelope {
                topic,
                kind,
                payload,
                reply,
            } => {
                let _ = reply.send(self.publish_returning_bytes(swarm, &topic, kind, payload));
            }
            Command::OpenChannel {
                topic,
                filter,
                kinds,
                capacity,
                max_backlog,
                reply,
            } => {
                let (sink, inbox) = mpsc::channel(capacity);
                self.channels.open(&topic, filter, sink, max_backlog);
                for kind in kinds {
                    self.channels.register(&topic, kind);
                }
                self.join(swarm, &topic);
                let _ = reply.send(inbox);
            }
            Command::RegisterKind { topic, kind } => {
                self.channels.register(&topic, kind);
            }
            Command::ReportValidation { awaiting, verdict } => {
                let acceptance = match verdict {
                    Ok(()) => {
                        *self.channel_counts.entry("delivered").or_default() += 1;
                        MessageAcceptance::Accept
                    }
                    Err(detail) => {
                        let acceptance = group_acceptance(awaiting.author, awaiting.source);
                        self.count_rejection(
                            "invalid",
                            awaiting.source,
                            Some(awaiting.author),
                            acceptance,
                            detail,
                        );
                        acceptance
                    }
                };
                swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&awaiting.id, &awaiting.source, acceptance);
            }
            Command::CloseChannel(topic) => {
                let late = self.channels.close(&topic);
                self.report_late(swarm, late);
                if swarm
                    .behaviour_mut()
                    .gossipsub
                    .unsubscribe(&IdentTopic::new(&topic))
                {
                    self.emit(NodeEvent::Unsubscribed { topic });
                }
            }
            Command::Counters(reply) => {
                let mut all: HashMap<String, u64> = HashMap::new();
                for (reason, n) in self
                    .rejected
                    .iter()
                    .chain(&self.channel_counts)
                    .chain(swarm.behaviour().attest.refusals())
                    .chain(swarm.behaviour().firewall.counts())
                {
                    debug_assert!(
                        COUNTER_NAMES.contains(reason),
                        "counter {reason:?} is missing from COUNTER_NAMES"
                    );
                    *all.entry((*reason).to_owned()).or_default() += n;
                }
                let unresponsive = swarm.behaviour().liveness.unresponsive();
                if unresponsive > 0 {
                    *all.entry("unresponsive".into()).or_default() += unresponsive;
                }
                let _ = reply.send(all);
            }
            Command::Ban {
                peer,
                duration,
                reason,
            } => swarm.behaviour_mut().bans.ban(peer, duration, &reason),
            Command::Unban(peer) => swarm.behaviour_mut().bans.unban(&peer),
            Command::RetryBootstrap => swarm.behaviour_mut().bootstrap.retry_now(),
            Command::PauseBootstrap => swarm.behaviour_mut().bootstrap.pause(),
            Command::Dial(address, reply) => {
                let _ = reply.send(swarm.dial(address).map_err(|e| e.to_string()));
            }
            Command::Bans(reply) => {
                let _ = reply.send(swarm.behaviour().bans.records());
            }
            Command::MeshPeers(topic, reply) => {
                let hash = IdentTopic::new(topic).hash();
                let _ = reply.send(swarm.behaviour().gossipsub.mesh_peers(&hash).count());
            }
            Command::PeerOperator(peer, reply) => {
                let _ = reply.send(swarm.behaviour().firewall.operator(&peer));
            }
            Command::Shutdown(_) => unreachable!("handled in run"),
        }
    }

    fn publish(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        topic: &str,
        kind: String,
        payload: Vec<u8>,
    ) -> Result<(), PublishError> {
        self.publish_returning_bytes(swarm, topic, kind, payload)
            .and_then(|encoded| encoded.sent)
    }

    /// Publishes a new envelope (next sequence number) and returns its bytes.
    fn publish_returning_bytes(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        topic: &str,
        kind: String,
        payload: Vec<u8>,
    ) -> Result<Encoded, PublishError> {
        self.sequence += 1;
        let envelope = Envelope {
            r#type: kind,
            payload,
            sender: self.address.as_bytes().to_vec(),
            sequence: self.sequence,
            group: Vec::new(),
        };
        let bytes = wire::encode_envelope(&envelope, self.max_message_size)
            .map_err(|e| PublishError::TooLarge(e.to_string()))?;
        let sent = publish_bytes(swarm, topic, bytes.clone());
        Ok(Encoded { bytes, sent })
    }

    /// Verdicts for messages that were held behind a full channel.
    fn report_late(&mut self, swarm: &mut Swarm<Behaviour>, late: Vec<LateVerdict>) {
        for (id, source, verdict) in late {
            let acceptance = match verdict {
                Verdict::Accept => {
                    *self.channel_counts.entry("delivered").or_default() += 1;
                    MessageAcceptance::Accept
                }
                Verdict::Ignore(reason) => {
                    *self.channel_counts.entry(reason).or_default() += 1;
                    MessageAcceptance::Ignore
                }
                // Late verdicts are only Accept or Ignore.
                Verdict::Reject(..) | Verdict::Hold => continue,
            };
            swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&id, &source, acceptance);
        }
    }

    /// Counts a rejection by reason and reports it as an event.
    fn count_rejection(
        &mut self,
        reason: &'static str,
        from: PeerId,
        author: Option<PeerId>,
        acceptance: MessageAcceptance,
        detail: String,
    ) {
        let total = self.rejected.entry(reason).or_default();
        *total += 1;
        let total = *total;
        // Debug, not info: a flood of bad messages must not become a flood of log lines (in
        // the page, each is a console call); the counter and the event carry it.
        tracing::debug!(reason, %detail, %from, "message rejected");
        // A forgery handed to us by the forger itself is an offence (a relay checks senders
        // too, so a relay that forwards one is as guilty).
        if reason == "spoofed_sender" && acceptance == MessageAcceptance::Reject {
            self.pending_bans.push((from, reason.to_owned()));
        }
        self.emit(NodeEvent::Rejected {
            reason,
            from: from.to_string(),
            author: author.map(|a| a.to_string()),
            penalised: acceptance == MessageAcceptance::Reject,
            detail,
            total,
        });
    }

    fn on_swarm_event(&mut self, swarm: &mut Swarm<Behaviour>, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                if self.role == Role::Relay
                    && !self.external_configured
                    && !address.iter().any(|p| p == Protocol::P2pCircuit)
                {
                    // A relay serves circuits only at confirmed external addresses; without
                    // configured ones (`with_external`), it is reachable where it listens.
                    swarm.add_external_address(address.clone());
                }
                // Circuit addresses arrive with our /p2p already; others get it appended.
                let full = match address.iter().last() {
                    Some(Protocol::P2p(_)) => address,
                    _ => address.with(Protocol::P2p(*swarm.local_peer_id())),
                };
                self.emit(NodeEvent::Listening {
                    address: full.to_string(),
                });
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                if num_established.get() == 1 {
                    if self.router == Router::Floodsub {
                        // Floodsub routing: an explicit peer gets every message of its topics.
                        swarm.behaviour_mut().gossipsub.add_explicit_peer(&peer_id);
                    }
                    self.emit(NodeEvent::Connected {
                        peer: peer_id.to_string(),
                    });
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    if let Some(limit) = &mut self.rate_limit {
                        limit.forget(&peer_id);
                    }
                    if self.router == Router::Floodsub {
                        // Or gossipsub would keep redialling it.
                        swarm
                            .behaviour_mut()
                            .gossipsub
                            .remove_explicit_peer(&peer_id);
                    }
                    self.emit(NodeEvent::Disconnected {
                        peer: peer_id.to_string(),
                    });
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                // Not a bootstrap dial (which the bootstrap reports with its retry): an
                // application's, or one a behaviour made; reported, not retried here.
                if !swarm.behaviour().bootstrap.dialled(&connection_id) {
                    self.emit(NodeEvent::DialFailed {
                        address: peer_id.map(|p| p.to_string()).unwrap_or_default(),
                        error: error.to_string(),
                        retry_in_ms: 0,
                    });
                }
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                send_back_addr,
                ..
            } => {
                // A banned peer redialling, or a limit reached: counted, one debug line each
                // (and per address, the storms from one).
                *self.rejected.entry("connection_denied").or_default() += 1;
                if cause.downcast_ref::<IpLimitExceeded>().is_some() {
                    *self.rejected.entry("ip_limited").or_default() += 1;
                }
                tracing::debug!(%cause, %send_back_addr, "incoming connection denied");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                // Garbage instead of a handshake, a peer that went silent halfway: counted.
                *self.rejected.entry("connection_failed").or_default() += 1;
                tracing::debug!(%error, "incoming connection failed");
            }
            SwarmEvent::Behaviour(BehaviourEvent::Bans(event)) => self.emit(match event {
                bans::Event::Banned { peer, reason, ban } => NodeEvent::Banned {
                    peer: peer.to_string(),
                    reason,
                    duration_ms: ban.duration.as_millis() as u64,
                    until_ms: ban.until.as_millis() as u64,
                    offences: ban.offences,
                },
                bans::Event::Unbanned { peer, reason } => NodeEvent::Unbanned {
                    peer: peer.to_string(),
                    reason,
                },
            }),
            SwarmEvent::Behaviour(BehaviourEvent::Firewall(event)) => match event {
                firewall::Event::OperatorChecked {
                    operator,
                    recognised,
                    stake,
                } => self.emit(NodeEvent::OperatorChecked {
                    operator: operator.to_string(),
                    recognised,
                    stake: stake.stake.to_string(),
                    minimum: stake.minimum.to_string(),
                }),
                firewall::Event::Offence { peer, reason } => {
                    swarm.behaviour_mut().bans.ban(peer, None, reason)
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Bootstrap(event)) => self.emit(match event {
                bootstrap::Event::Health {
                    state,
                    relays,
                    target,
                    transports,
                } => NodeEvent::Health {
                    state,
                    relays,
                    target,
                    transports,
                },
                bootstrap::Event::DialFailed {
                    address,
                    error,
                    retry,
                } => NodeEvent::DialFailed {
                    address: address.to_string(),
                    error,
                    retry_in_ms: retry.as_millis() as u64,
                },
            }),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => {
                self.on_gossipsub(swarm, event);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Attest(event)) => self.on_attest(swarm, event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(
                libp2p::identify::Event::Received { peer_id, info, .. },
            )) => {
                tracing::debug!(%peer_id, agent = %info.agent_version, "identified");
            }
            _ => {}
        }
    }

    fn on_gossipsub(&mut self, swarm: &mut Swarm<Behaviour>, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                if let Some(limit) = &mut self.rate_limit {
                    if !limit.allow(propagation_source, platform::unix_time()) {
                        // Over the limit: dropped unforwarded, and an offence.
                        *self.rejected.entry("rate_limited").or_default() += 1;
                        swarm
                            .behaviour_mut()
                            .gossipsub
                            .report_message_validation_result(
                                &message_id,
                                &propagation_source,
                                MessageAcceptance::Ignore,
                            );
                        self.pending_bans
                            .push((propagation_source, "rate_limited".to_owned()));
                        return;
                    }
                }
                if !swarm.behaviour().firewall.admitted(&propagation_source) {
                    // Not yet through the firewall: dropped unforwarded, counted, no penalty
                    // (its attestation may be on the way; retransmission covers the loss).
                    *self.rejected.entry("not_admitted").or_default() += 1;
                    swarm
                        .behaviour_mut()
                        .gossipsub
                        .report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            MessageAcceptance::Ignore,
                        );
                    return;
                }
                let topic = message.topic.as_str().to_owned();
                let author = message.source;
                // Whether the verdict is a group's (membership, type, payload, replay) rather
                // than the envelope checks every node, relays included, makes.
                let mut group_level = false;
                let verdict = match self.check(&message) {
                    Err((reason, detail)) => Verdict::Reject(reason, detail),
                    Ok((envelope, sender)) if self.channels.is_open(&topic) => {
                        group_level = true;
                        let delivery = Delivery {
                            awaiting: None,
                            from: message.source.unwrap_or(propagation_source),
                            sender,
                            envelope,
                        };
                        let verdict = self.channels.offer(
                            &topic,
                            message_id.clone(),
                            propagation_source,
                            delivery,
                        );
                        if verdict == Verdict::Accept {
                            *self.channel_counts.entry("delivered").or_default() += 1;
                        }
                        verdict
                    }
                    Ok((envelope, sender)) => {
                        if self.role == Role::Member {
                            self.emit(NodeEvent::Message {
                                topic: topic.clone(),
                                from: message.source.map(|p| p.to_string()).unwrap_or_default(),
                                sender: sender.to_string(),
                                kind: envelope.r#type,
                                sequence: envelope.sequence,
                                data: envelope.payload,
                            });
                        }
                        Verdict::Accept
                    }
                };
                let acceptance = match verdict {
                    Verdict::Accept => MessageAcceptance::Accept,
                    Verdict::Reject(reason, detail) => {
                        let acceptance = match author {
                            Some(author) if group_level => {
                                group_acceptance(author, propagation_source)
                            }
                            _ => MessageAcceptance::Reject,
                        };
                        self.count_rejection(
                            reason,
                            propagation_source,
                            author,
                            acceptance,
                            detail,
                        );
                        acceptance
                    }
                    Verdict::Ignore(reason) => {
                        let total = self.channel_counts.entry(reason).or_default();
                        *total += 1;
                        let total = *total;
                        // Duplicates are the normal cost of retransmission: counted, not reported.
                        if reason != "duplicate" {
                            tracing::debug!(%topic, reason, "message dropped");
                            self.emit(NodeEvent::Dropped {
                                reason,
                                topic: Some(topic),
                                peer: None,
                                count: 1,
                                total,
                            });
                        }
                        MessageAcceptance::Ignore
                    }
                    Verdict::Hold => {
                        *self.channel_counts.entry("held").or_default() += 1;
                        return;
                    }
                };
                swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
            }
            gossipsub::Event::SlowPeer {
                peer_id,
                failed_messages,
            } => {
                let dropped = (failed_messages.priority + failed_messages.non_priority) as u64;
                let total = self.channel_counts.entry("slow_peer_dropped").or_default();
                *total += dropped;
                let total = *total;
                tracing::warn!(%peer_id, dropped, "peer too slow: gossipsub dropped messages to it");
                self.emit(NodeEvent::Dropped {
                    reason: "slow_peer",
                    topic: None,
                    peer: Some(peer_id.to_string()),
                    count: dropped,
                    total,
                });
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                // A relay routes every topic its peers join.
                if self.role == Role::Relay {
                    self.join(swarm, topic.as_str());
                }
                self.emit(NodeEvent::PeerSubscribed {
                    peer: peer_id.to_string(),
                    topic: topic.into_string(),
                });
            }
            _ => {}
        }
    }

    fn on_attest(&mut self, swarm: &mut Swarm<Behaviour>, event: attest::Event) {
        match event {
            attest::Event::Attested { peer, verified } => {
                swarm.behaviour_mut().firewall.attested(peer, &verified);
                self.emit(NodeEvent::PeerAttested {
                    peer: peer.to_string(),
                    operator: verified.operator.to_string(),
                    expires_at: attestation::timestamp(verified.expires_at),
                });
            }
            attest::Event::Refused {
                peer,
                reason,
                detail,
                total,
            } => self.emit(NodeEvent::AttestationRejected {
                peer: peer.to_string(),
                reason,
                detail,
                total,
            }),
            attest::Event::Acknowledged {
                peer,
                accepted,
                reason,
            } => self.emit(NodeEvent::AttestationAcknowledged {
                peer: peer.to_string(),
                accepted,
                reason,
            }),
            attest::Event::Failed { peer, error } => self.emit(NodeEvent::AttestationFailed {
                peer: peer.to_string(),
                error,
            }),
            attest::Event::Offence {
                peer,
                reason,
                after,
            } => swarm.behaviour_mut().bans.ban_after(peer, reason, after),
        }
    }

    /// The operator address of a message author's key, cached: deriving it decodes the key and
    /// hashes it, which every message of a burst would otherwise repeat.
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

    /// Inline checks, cheapest first. On success: the envelope and its verified sender.
    fn check(
        &mut self,
        message: &gossipsub::Message,
    ) -> Result<(Envelope, Address), (&'static str, String)> {
        let envelope = wire::decode_envelope(&message.data, self.max_message_size)
            .map_err(|e| (e.reason(), e.to_string()))?;
        // StrictSign guarantees a source whose signature gossipsub has checked.
        let author = message
            .source
            .as_ref()
            .and_then(|peer| self.author_address(peer))
            .ok_or((
                "unknown_author",
                "author is not a secp256k1 operator key".to_owned(),
            ))?;
        if envelope.sender.as_slice() != author.as_bytes() {
            return Err((
                "spoofed_sender",
                format!(
                    "envelope sender 0x{} is not the author {author}",
                    hex::encode(&envelope.sender)
                ),
            ));
        }
        Ok((envelope, author))
    }
}

fn publish_bytes(
    swarm: &mut Swarm<Behaviour>,
    topic: &str,
    bytes: Vec<u8>,
) -> Result<(), PublishError> {
    swarm
        .behaviour_mut()
        .gossipsub
        .publish(IdentTopic::new(topic), bytes)
        .map(|_| ())
        .map_err(|e| match e {
            gossipsub::PublishError::NoPeersSubscribedToTopic => PublishError::NoPeers,
            gossipsub::PublishError::MessageTooLarge => PublishError::TooLarge(e.to_string()),
            other => PublishError::Other(other.to_string()),
        })
}
