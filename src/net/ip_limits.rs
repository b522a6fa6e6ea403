//! Per remote IP address: how many handshakes and connections one address may have.
//!
//! # Overview
//! A dial storm from one address must not take the handshake queue or the connection table
//! from everyone else. [`IpLimits`] is the sans-IO counter (pending = inbound connections still
//! in their handshake; established = inbound connections); [`PerIp`] is the policy behaviour
//! that enforces it, placed before libp2p's global connection limits so one address fills only
//! its share. A refusal is a typed [`IpLimitExceeded`] the node counts (`ip_limited`). Circuit
//! connections carry the relay's address and are not counted. It emits nothing.
//!
//! # Usage
//! ```
//! use keep_light::net::ip_limits::IpLimits;
//! use libp2p::swarm::ConnectionId;
//! let mut limits = IpLimits::new(1, 4);
//! let ip = "10.0.0.1".parse().unwrap();
//! assert!(limits.pending(ConnectionId::new_unchecked(1), ip).is_ok());
//! assert!(limits.pending(ConnectionId::new_unchecked(2), ip).is_err());
//! ```

use std::{
    collections::HashMap,
    convert::Infallible,
    net::IpAddr,
    task::{Context, Poll},
};

use libp2p::{
    core::{transport::PortUse, ConnectedPoint, Endpoint},
    multiaddr::Protocol,
    swarm::{
        behaviour::{ConnectionEstablished, ListenFailure},
        dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
        THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId,
};

/// Connections per remote IP address (sans-IO), so a dial storm from one address cannot take
/// the handshake queue or the connection table from everyone else. Pending = inbound
/// connections still in their handshake; established = inbound connections. Circuit
/// connections carry the relay's address and are not counted (see [`PerIp`]).
#[derive(Debug, Clone)]
pub struct IpLimits {
    max_pending: usize,
    max_established: usize,
    pending: HashMap<IpAddr, usize>,
    established: HashMap<IpAddr, usize>,
    /// Each counted connection: its address and whether it is established.
    connections: HashMap<ConnectionId, (IpAddr, bool)>,
}

/// Which per-IP bound refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} has {count} {stage} connections, the most one address may have")]
pub struct IpLimitExceeded {
    pub ip: IpAddr,
    pub stage: &'static str,
    pub count: usize,
}

impl IpLimits {
    pub fn new(max_pending: usize, max_established: usize) -> Self {
        Self {
            max_pending,
            max_established,
            pending: HashMap::new(),
            established: HashMap::new(),
            connections: HashMap::new(),
        }
    }

    /// An inbound connection starts its handshake.
    pub fn pending(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), IpLimitExceeded> {
        let count = self.pending.get(&ip).copied().unwrap_or(0);
        if count >= self.max_pending {
            return Err(IpLimitExceeded {
                ip,
                stage: "pending",
                count,
            });
        }
        self.pending.insert(ip, count + 1);
        self.connections.insert(id, (ip, false));
        Ok(())
    }

    /// The handshake finished: whether one more established connection from `ip` is allowed.
    /// (It is counted by [`IpLimits::established`] once the swarm has it.)
    pub fn handshake_done(&mut self, id: ConnectionId, ip: IpAddr) -> Result<(), IpLimitExceeded> {
        self.ended(id);
        let count = self.established.get(&ip).copied().unwrap_or(0);
        if count >= self.max_established {
            return Err(IpLimitExceeded {
                ip,
                stage: "established",
                count,
            });
        }
        Ok(())
    }

    /// An inbound connection is established.
    pub fn established(&mut self, id: ConnectionId, ip: IpAddr) {
        self.ended(id);
        *self.established.entry(ip).or_default() += 1;
        self.connections.insert(id, (ip, true));
    }

    /// A connection failed, was denied or closed.
    pub fn ended(&mut self, id: ConnectionId) {
        let Some((ip, established)) = self.connections.remove(&id) else {
            return;
        };
        let counts = if established {
            &mut self.established
        } else {
            &mut self.pending
        };
        if let Some(count) = counts.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&ip);
            }
        }
    }

    /// Addresses with connections counted.
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.pending.len().max(self.established.len())
    }
}

/// Enforces [`IpLimits`] on inbound connections (the libp2p side of the sans-IO counter).
pub struct PerIp(pub IpLimits);

/// The remote IP of a direct connection; none for circuits, whose address is the relay's.
fn remote_ip(address: &Multiaddr) -> Option<IpAddr> {
    if address.iter().any(|p| p == Protocol::P2pCircuit) {
        return None;
    }
    address.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

impl NetworkBehaviour for PerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        match remote_ip(remote) {
            Some(ip) => self.0.pending(id, ip).map_err(ConnectionDenied::new),
            None => Ok(()),
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = remote_ip(remote) {
            self.0
                .handshake_done(id, ip)
                .map_err(ConnectionDenied::new)?;
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _address: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                connection_id,
                endpoint: ConnectedPoint::Listener { send_back_addr, .. },
                ..
            }) => {
                if let Some(ip) = remote_ip(send_back_addr) {
                    self.0.established(connection_id, ip);
                }
            }
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.0.ended(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_gets_its_share_of_handshakes_and_connections_and_no_more() {
        let mut limits = IpLimits::new(2, 3);
        let (storm, other): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let ids: Vec<ConnectionId> = (0..8)
            .map(|_| ConnectionId::new_unchecked(rand_id()))
            .collect();
        assert!(limits.pending(ids[0], storm).is_ok());
        assert!(limits.pending(ids[1], storm).is_ok());
        let refused = limits.pending(ids[2], storm).unwrap_err();
        assert_eq!((refused.stage, refused.count), ("pending", 2));
        // Another address is untouched by the storm.
        assert!(limits.pending(ids[3], other).is_ok());
        // A failed handshake frees its slot.
        limits.ended(ids[0]);
        assert!(limits.pending(ids[2], storm).is_ok());
        // Established: at most 3 from one address; closing one makes room.
        for id in [ids[1], ids[2]] {
            limits.handshake_done(id, storm).unwrap();
            limits.established(id, storm);
        }
        assert!(limits.pending(ids[4], storm).is_ok());
        limits.handshake_done(ids[4], storm).unwrap();
        limits.established(ids[4], storm);
        assert!(limits.pending(ids[5], storm).is_ok());
        assert_eq!(
            limits.handshake_done(ids[5], storm).unwrap_err().stage,
            "established"
        );
        limits.ended(ids[5]);
        limits.ended(ids[1]);
        assert!(limits.pending(ids[6], storm).is_ok());
        assert!(limits.handshake_done(ids[6], storm).is_ok());
        // Everything ended: nothing stays on record.
        for id in &ids {
            limits.ended(*id);
        }
        assert_eq!(limits.addresses(), 0);
    }

    fn rand_id() -> usize {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(1 << 30);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }
}

// The shell against real TCP connections over loopback (memory addresses carry no IP).
#[cfg(all(test, not(target_arch = "wasm32")))]
mod shell_tests {
    use std::time::Duration;

    use futures::StreamExt as _;
    use libp2p::swarm::{dummy, ListenError, SwarmEvent};

    use super::*;

    fn tcp_swarm<B: NetworkBehaviour + Send>(behaviour: B) -> libp2p::Swarm<B> {
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| behaviour)
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    }

    #[tokio::test]
    async fn a_second_connection_from_one_address_is_denied_with_a_typed_cause() {
        let mut server = tcp_swarm(PerIp(IpLimits::new(4, 1)));
        server
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = server.select_next_some().await {
                break address;
            }
        };
        let mut dialers = [tcp_swarm(dummy::Behaviour), tcp_swarm(dummy::Behaviour)];
        let [a, b] = &mut dialers;
        a.dial(address.clone()).unwrap();
        let (mut established, mut denied) = (0, None);
        let deadline = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(deadline);
        let mut b_dialled = false;
        while denied.is_none() {
            tokio::select! {
                event = server.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { .. } => {
                        established += 1;
                        if !b_dialled {
                            // The first is in: a second from the same address is one too many.
                            b.dial(address.clone()).unwrap();
                            b_dialled = true;
                        }
                    }
                    SwarmEvent::IncomingConnectionError {
                        error: ListenError::Denied { cause },
                        ..
                    } => denied = cause.downcast::<IpLimitExceeded>().ok(),
                    _ => {}
                },
                _ = a.select_next_some() => {}
                _ = b.select_next_some() => {}
                _ = &mut deadline => panic!("no connection was denied"),
            }
        }
        assert_eq!(established, 1);
        let denied = denied.unwrap();
        assert_eq!((denied.stage, denied.count), ("established", 1));
        assert_eq!(denied.ip.to_string(), "127.0.0.1");
    }
}
