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
//! Every pubsub message is an envelope signed by its author (wire v1, DESIGN.md section 4;
//! gossipsub itself runs anonymous) and checked by [`super::pubsub`] before it is forwarded or
//! delivered: size limit before decoding, envelope decode, the signature over the envelope and
//! its topic (whose key is the envelope sender), then the group's checks. Anything else
//! is rejected with a counted reason, reported to gossipsub as `Reject` (which penalises the peer
//! that forwarded it) and never delivered.
//!
//! The loop itself only forwards: commands to the part they are for, the parts' events to the
//! application, and the few events one part has for another (see `EventLoop::on_behaviour`).

use std::time::Duration;

use futures::{channel::mpsc, StreamExt};
use libp2p::{
    multiaddr::Protocol,
    swarm::{ListenError, SwarmEvent},
    Multiaddr, Swarm,
};

use super::{
    attest::{self, Attest},
    bans::{BanList, Bans},
    behaviour::{self, Behaviour, BehaviourEvent, Parts},
    bootstrap::{self, Bootstrap, BootstrapSchedule},
    firewall::{self, Firewall, Gate, IpLimitExceeded, Policy, Recognition},
    handle::Command,
    pubsub::{self, RELAY_RATE_LIMIT, RELAY_SENDER_RATE_LIMIT},
    transport,
    types::Counts,
};
// The paths these had before they moved out (`net::node::NodeConfig`, …) stay valid.
pub use super::{
    config::NodeConfig,
    events::{EventReceiver, NodeEvent, COUNTER_NAMES},
    handle::{Encoded, NodeHandle},
    types::{PublishError, Role, TEXT_TYPE},
    validation::KindSpec,
};
use crate::{identity::attestation, platform};

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
                pubsub: pubsub::Settings {
                    role: config.role,
                    router: config.router,
                    key: config.key.signing_key(),
                    max_message_size: config.max_message_size,
                    rate_limit: config
                        .rate_limit
                        .or((config.role == Role::Relay).then_some(RELAY_RATE_LIMIT)),
                    sender_rate_limit: config
                        .sender_rate_limit
                        .or((config.role == Role::Relay).then_some(RELAY_SENDER_RATE_LIMIT)),
                },
                relay_confirms_listen: config.external.is_empty(),
            },
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

        for topic in &config.topics {
            swarm.behaviour_mut().pubsub.join(topic);
        }

        let (commands_tx, commands_rx) = mpsc::unbounded();
        let state = EventLoop {
            events: events_tx,
            connections: Counts::new(CONNECTION_COUNTERS),
        };
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

/// What the event loop counts itself: connections refused or failed before any part saw them.
const CONNECTION_COUNTERS: &[&str] = &["connection_denied", "connection_failed", "ip_limited"];

/// The state the event loop owns besides the swarm.
struct EventLoop {
    events: mpsc::UnboundedSender<NodeEvent>,
    connections: Counts,
}

impl EventLoop {
    async fn run(
        mut self,
        mut swarm: Swarm<Behaviour>,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        loop {
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
            }
        }
    }

    fn emit(&self, event: NodeEvent) {
        // A closed receiver means nobody listens any more; the node still serves its peers.
        let _ = self.events.unbounded_send(event);
    }

    /// Hands each command to the part it is for.
    fn on_command(&mut self, swarm: &mut Swarm<Behaviour>, command: Command) {
        if let Command::Dial(address, reply) = command {
            let _ = reply.send(swarm.dial(address).map_err(|e| e.to_string()));
            return;
        }
        let b = swarm.behaviour_mut();
        match command {
            Command::Publish {
                topic,
                kind,
                payload,
                reply,
            } => {
                let sent = b.pubsub.publish(&topic, kind, payload);
                let _ = reply.send(sent.and_then(|encoded| encoded.sent));
            }
            Command::PublishRaw {
                topic,
                bytes,
                reply,
            } => {
                let _ = reply.send(b.pubsub.publish_bytes(&topic, bytes));
            }
            Command::PublishEnvelope {
                topic,
                kind,
                payload,
                reply,
            } => {
                let _ = reply.send(b.pubsub.publish(&topic, kind, payload));
            }
            Command::Join(topic) => b.pubsub.join(&topic),
            Command::Leave(topic) => b.pubsub.leave(&topic),
            Command::OpenChannel {
                topic,
                filter,
                kinds,
                capacity,
                max_backlog,
                reply,
            } => {
                let inbox = b
                    .pubsub
                    .open_channel(&topic, filter, kinds, capacity, max_backlog);
                let _ = reply.send(inbox);
            }
            Command::RegisterKind { topic, kind } => b.pubsub.register_kind(&topic, kind),
            Command::ReportValidation { awaiting, verdict } => {
                b.pubsub.report_validation(awaiting, verdict);
            }
            Command::CloseChannel(topic) => b.pubsub.close_channel(&topic),
            Command::MeshPeers(topic, reply) => {
                let _ = reply.send(b.pubsub.mesh_peers(&topic));
            }
            // Every part's counters and the loop's own, merged in this one place.
            Command::Counters(reply) => {
                let parts = b.counts();
                let _ = reply.send(Counts::merge(parts.into_iter().chain([&self.connections])));
            }
            Command::Ban {
                peer,
                duration,
                reason,
            } => b.bans.ban(peer, duration, &reason),
            Command::Unban(peer) => b.bans.unban(&peer),
            Command::Bans(reply) => {
                let _ = reply.send(b.bans.records());
            }
            Command::RetryBootstrap => b.bootstrap.retry_now(),
            Command::PauseBootstrap => b.bootstrap.pause(),
            Command::PeerOperator(peer, reply) => {
                let _ = reply.send(b.firewall.operator(&peer));
            }
            Command::Dial(..) | Command::Shutdown(_) => unreachable!("handled before"),
        }
    }

    fn on_swarm_event(&mut self, swarm: &mut Swarm<Behaviour>, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour(swarm.behaviour_mut(), event),
            SwarmEvent::NewListenAddr { address, .. } => {
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
            } if num_established.get() == 1 => {
                for ended in swarm.behaviour_mut().bans.take_ended() {
                    self.emit(ended.into());
                }
                self.emit(NodeEvent::Connected {
                    peer: peer_id.to_string(),
                })
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => self.emit(NodeEvent::Disconnected {
                peer: peer_id.to_string(),
            }),
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
                self.connections.add("connection_denied", 1);
                if cause.downcast_ref::<IpLimitExceeded>().is_some() {
                    self.connections.add("ip_limited", 1);
                }
                tracing::debug!(%cause, %send_back_addr, "incoming connection denied");
            }
            SwarmEvent::IncomingConnectionError { error, .. } => {
                // Garbage instead of a handshake, a peer that went silent halfway: counted.
                self.connections.add("connection_failed", 1);
                tracing::debug!(%error, "incoming connection failed");
            }
            _ => {}
        }
    }

    /// The parts' events: the few that another part needs are wired here, and only here (who
    /// attested → firewall, admitted → pubsub, offences → bans); the rest are reported.
    fn on_behaviour(&mut self, b: &mut Behaviour, event: BehaviourEvent) {
        use BehaviourEvent as E;
        match event {
            E::Attest(attest::Event::Attested { peer, verified }) => {
                b.firewall.attested(peer, &verified);
                self.emit(NodeEvent::PeerAttested {
                    peer: peer.to_string(),
                    operator: verified.operator.to_string(),
                    expires_at: attestation::timestamp(verified.expires_at),
                });
            }
            E::Firewall(firewall::Event::Admitted { peer }) => b.pubsub.admit(peer),
            E::Firewall(firewall::Event::Revoked { peer }) => b.pubsub.revoke(peer),
            E::Attest(attest::Event::Offence {
                peer,
                offence,
                after,
            }) => b.bans.punish(peer, offence, after),
            E::Firewall(firewall::Event::Offence { peer, offence })
            | E::Pubsub(pubsub::Event::Offence { peer, offence }) => {
                b.bans.punish(peer, offence, Duration::ZERO);
            }
            E::Pubsub(pubsub::Event::Report(event)) => self.emit(event),
            E::Bans(event) => self.emit(event.into()),
            E::Bootstrap(event) => self.emit(event.into()),
            E::Firewall(firewall::Event::OperatorChecked {
                operator,
                recognised,
                stake,
            }) => self.emit(NodeEvent::OperatorChecked {
                operator: operator.to_string(),
                recognised,
                stake: stake.stake.to_string(),
                minimum: stake.minimum.to_string(),
            }),
            E::Attest(attest::Event::Refused {
                peer,
                reason,
                detail,
                total,
            }) => self.emit(NodeEvent::AttestationRejected {
                peer: peer.to_string(),
                reason,
                detail,
                total,
            }),
            E::Attest(attest::Event::Acknowledged {
                peer,
                accepted,
                reason,
            }) => self.emit(NodeEvent::AttestationAcknowledged {
                peer: peer.to_string(),
                accepted,
                reason,
            }),
            E::Attest(attest::Event::Failed { peer, error }) => {
                self.emit(NodeEvent::AttestationFailed {
                    peer: peer.to_string(),
                    error,
                });
            }
            E::Identify(libp2p::identify::Event::Received { peer_id, info, .. }) => {
                tracing::debug!(%peer_id, agent = %info.agent_version, "identified");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_declares_its_own_counters_and_together_they_are_the_contract() {
        let parts: [&[&str]; 5] = [
            pubsub::COUNTERS,
            attest::COUNTERS,
            firewall::COUNTERS,
            super::super::liveness::COUNTERS,
            CONNECTION_COUNTERS,
        ];
        let mut all: Vec<&str> = parts.concat();
        let declared = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), declared, "a counter is declared by two parts");
        let mut contract = COUNTER_NAMES.to_vec();
        contract.sort_unstable();
        assert_eq!(all, contract);
    }
}
