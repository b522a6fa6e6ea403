//! Swarm construction per platform: the only place besides `platform.rs` that branches on the
//! target. Natively: TCP and WebSocket (with DNS). In the browser: `websocket-websys` (dial only).

use std::time::Duration;

use libp2p::{identity::Keypair, Swarm};

use super::behaviour::Behaviour;

/// Connections with no protocol activity are kept this long (gossipsub keeps topic peers alive).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the swarm could not be built.
pub type BuildError = String;

#[cfg(not(target_arch = "wasm32"))]
pub async fn build_swarm(
    keypair: Keypair,
    behaviour: Behaviour,
) -> Result<Swarm<Behaviour>, BuildError> {
    use libp2p::{noise, tcp, yamux};
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_dns()
        .map_err(|e| e.to_string())?
        .with_websocket(noise::Config::new, yamux::Config::default)
        .await
        .map_err(|e| e.to_string())?
        .with_behaviour(|_| behaviour)
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}

#[cfg(target_arch = "wasm32")]
pub async fn build_swarm(
    keypair: Keypair,
    behaviour: Behaviour,
) -> Result<Swarm<Behaviour>, BuildError> {
    use libp2p::{core::upgrade::Version, noise, websocket_websys, yamux, Transport as _};
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_wasm_bindgen()
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(websocket_websys::Transport::default()
                .upgrade(Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux::Config::default())
                .boxed())
        })
        .map_err(|e| e.to_string())?
        .with_behaviour(|_| behaviour)
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    Ok(swarm)
}
