//! What the behaviours' own tests share: a swarm around one behaviour on libp2p's in-process
//! memory transport (noise, yamux), so each shell is tested against real connections alone.

use std::time::Duration;

use libp2p::{
    core::{transport::MemoryTransport, upgrade::Version},
    identity::Keypair,
    noise,
    swarm::NetworkBehaviour,
    yamux, Multiaddr, Swarm, Transport as _,
};

/// A tokio swarm running only `behaviour`, as `key`. Idle connections stay open for a minute:
/// the shells' dummy handlers keep nothing alive themselves.
pub fn memory_swarm<B: NetworkBehaviour + Send>(key: Keypair, behaviour: B) -> Swarm<B> {
    libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            Ok(MemoryTransport::default()
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(key)?)
                .multiplex(yamux::Config::default()))
        })
        .unwrap()
        .with_behaviour(|_| behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A memory address no other test in this process picks (in all likelihood).
pub fn memory_address() -> Multiaddr {
    format!("/memory/{}", 1 + rand::random::<u64>() % (1 << 40))
        .parse()
        .unwrap()
}
