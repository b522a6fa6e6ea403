//! Connection hooks written once: forwarded unchanged by a behaviour that wraps one libp2p
//! behaviour, or answered with libp2p's dummy handler by one that only watches.
//!
//! # Overview
//! [`Attest`](super::attest::Attest) wraps request-response, [`Watchdog`](super::liveness::Watchdog)
//! wraps ping and [`Pubsub`](super::pubsub::Pubsub) wraps gossipsub: each looks at swarm events
//! and the inner behaviour's events on the way, and hands every connection hook on as it is. A
//! hook left out would fail silently (the trait has defaults), so the four are written once here.
//!
//!
//! [`Bootstrap`](super::bootstrap::Bootstrap) and [`Firewall`](super::firewall::Firewall) open
//! no streams: every connection gets the dummy handler, which reports nothing.
//!
//! # Usage
//! Inside `impl NetworkBehaviour for Wrapper`, whose `ConnectionHandler` is the inner one's:
//! `forward_connection_hooks!(inner);` where `inner` is the field holding the wrapped behaviour.
//! Inside one whose `ConnectionHandler` is `dummy::ConnectionHandler`: `dummy_connection_hooks!();`.

/// Forwards `handle_{pending,established}_{inbound,outbound}_connection` to `self.$inner`.
macro_rules! forward_connection_hooks {
    ($inner:ident) => {
        fn handle_pending_inbound_connection(
            &mut self,
            id: ::libp2p::swarm::ConnectionId,
            local: &::libp2p::Multiaddr,
            remote: &::libp2p::Multiaddr,
        ) -> Result<(), ::libp2p::swarm::ConnectionDenied> {
            self.$inner
                .handle_pending_inbound_connection(id, local, remote)
        }

        fn handle_established_inbound_connection(
            &mut self,
            id: ::libp2p::swarm::ConnectionId,
            peer: ::libp2p::PeerId,
            local: &::libp2p::Multiaddr,
            remote: &::libp2p::Multiaddr,
        ) -> Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied> {
            self.$inner
                .handle_established_inbound_connection(id, peer, local, remote)
        }

        fn handle_pending_outbound_connection(
            &mut self,
            id: ::libp2p::swarm::ConnectionId,
            peer: Option<::libp2p::PeerId>,
            addresses: &[::libp2p::Multiaddr],
            endpoint: ::libp2p::core::Endpoint,
        ) -> Result<Vec<::libp2p::Multiaddr>, ::libp2p::swarm::ConnectionDenied> {
            self.$inner
                .handle_pending_outbound_connection(id, peer, addresses, endpoint)
        }

        fn handle_established_outbound_connection(
            &mut self,
            id: ::libp2p::swarm::ConnectionId,
            peer: ::libp2p::PeerId,
            address: &::libp2p::Multiaddr,
            endpoint: ::libp2p::core::Endpoint,
            port_use: ::libp2p::core::transport::PortUse,
        ) -> Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied> {
            self.$inner
                .handle_established_outbound_connection(id, peer, address, endpoint, port_use)
        }
    };
}

/// Gives every established connection the dummy handler, whose events cannot happen.
macro_rules! dummy_connection_hooks {
    () => {
        fn handle_established_inbound_connection(
            &mut self,
            _: ::libp2p::swarm::ConnectionId,
            _: ::libp2p::PeerId,
            _: &::libp2p::Multiaddr,
            _: &::libp2p::Multiaddr,
        ) -> Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied> {
            Ok(::libp2p::swarm::dummy::ConnectionHandler)
        }

        fn handle_established_outbound_connection(
            &mut self,
            _: ::libp2p::swarm::ConnectionId,
            _: ::libp2p::PeerId,
            _: &::libp2p::Multiaddr,
            _: ::libp2p::core::Endpoint,
            _: ::libp2p::core::transport::PortUse,
        ) -> Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied> {
            Ok(::libp2p::swarm::dummy::ConnectionHandler)
        }

        fn on_connection_handler_event(
            &mut self,
            _: ::libp2p::PeerId,
            _: ::libp2p::swarm::ConnectionId,
            event: ::libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            match event {}
        }
    };
}

pub(crate) use {dummy_connection_hooks, forward_connection_hooks};
