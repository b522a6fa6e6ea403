//! The circuit relay v2 server, and the addresses it serves circuits at.
//!
//! # Overview
//! libp2p's relay grants reservations only at confirmed external addresses. A relay told where
//! others reach it (`NodeConfig::with_external`, behind NAT or a port forward) has those; one
//! told nothing is reachable where it listens, so [`RelayServer`] confirms each new direct
//! listen address (never a circuit one: a relay does not serve through another relay). On a
//! member it is off and does nothing.
//!
//! # Usage
//! [`super::behaviour::build`] makes it: `RelayServer::new(Some(relay), confirm_listen)` on
//! relays, `RelayServer::new(None, false)` on members.

use std::{
    collections::VecDeque,
    task::{Context, Poll},
};

use libp2p::{
    multiaddr::Protocol,
    relay,
    swarm::{
        behaviour::toggle::Toggle, ConnectionId, FromSwarm, NetworkBehaviour, THandlerInEvent,
        THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};

use super::wrap::forward_connection_hooks;

/// libp2p's relay server (when on), confirming listen addresses as external when told to.
pub struct RelayServer {
    inner: Toggle<relay::Behaviour>,
    /// Whether listen addresses are taken as external (a relay without configured ones).
    confirm_listen: bool,
    confirmed: VecDeque<Multiaddr>,
}

impl RelayServer {
    /// Serves circuits with `relay` (none: off); `confirm_listen` as the module docs say.
    pub fn new(relay: Option<relay::Behaviour>, confirm_listen: bool) -> Self {
        Self {
            confirm_listen: confirm_listen && relay.is_some(),
            inner: relay.into(),
            confirmed: VecDeque::new(),
        }
    }
}

impl NetworkBehaviour for RelayServer {
    type ConnectionHandler = <Toggle<relay::Behaviour> as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = relay::Event;

    forward_connection_hooks!(inner);

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::NewListenAddr(e) = &event {
            if self.confirm_listen && !e.addr.iter().any(|p| p == Protocol::P2pCircuit) {
                self.confirmed.push_back(e.addr.clone());
            }
        }
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<relay::Event, THandlerInEvent<Self>>> {
        // Queued only from `on_swarm_event`, after which the swarm polls every behaviour.
        if let Some(address) = self.confirmed.pop_front() {
            return Poll::Ready(ToSwarm::ExternalAddrConfirmed(address));
        }
        self.inner.poll(cx)
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use futures::StreamExt as _;
    use libp2p::swarm::SwarmEvent;

    use super::*;
    use crate::net::test_support::{memory_address, memory_swarm};

    /// What a swarm running only `server` has confirmed once it listens on a memory address and a
    /// circuit-like one it cannot listen on.
    async fn confirmed(server: impl FnOnce(PeerId) -> RelayServer) -> Vec<Multiaddr> {
        let key = libp2p::identity::Keypair::generate_ed25519();
        let peer = key.public().to_peer_id();
        let mut swarm = memory_swarm(key, server(peer));
        swarm.listen_on(memory_address()).unwrap();
        loop {
            if let SwarmEvent::NewListenAddr { .. } = swarm.select_next_some().await {
                break;
            }
        }
        // A few more turns, for the confirmation to go through.
        let settle = tokio::time::sleep(std::time::Duration::from_millis(100));
        tokio::pin!(settle);
        loop {
            tokio::select! {
                _ = swarm.select_next_some() => {}
                _ = &mut settle => break,
            }
        }
        swarm.external_addresses().cloned().collect()
    }

    #[tokio::test]
    async fn a_relay_without_configured_addresses_serves_where_it_listens_a_member_nowhere() {
        let relay =
            |peer| RelayServer::new(Some(relay::Behaviour::new(peer, Default::default())), true);
        assert_eq!(confirmed(relay).await.len(), 1);
        let told =
            |peer| RelayServer::new(Some(relay::Behaviour::new(peer, Default::default())), false);
        assert!(confirmed(told).await.is_empty());
        assert!(confirmed(|_| RelayServer::new(None, true)).await.is_empty());
    }
}
