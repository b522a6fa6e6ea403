//! keep-light: a browser light client for a Keep-style threshold random beacon network.
//!
//! One crate, compiled natively (relays, native members, the CLI) and to wasm32 (the node in a
//! web page). Module map:
//! - [`platform`]: the only wasm/native seam (spawn, sleep, clock, randomness);
//! - [`identity`]: operator keys ↔ libp2p peer IDs ↔ Ethereum addresses;
//! - [`wire`]: protobuf envelope, size-checked decoding;
//! - [`beacon`]: BN254 threshold BLS, relay entries, group selection (pure, no I/O);
//! - [`chain`]: the chain seam, the beacon contract's rules, the embedded dev chain, JSON-RPC;
//! - [`net`]: libp2p node: a thin event loop over one behaviour per concern (bans, limits,
//!   firewall, pubsub and its validation pipeline, liveness, bootstrap, attestation, relay);
//! - [`member`]: the beacon member service (DKG and signing driven by chain events);
//! - `browser` (wasm32 only): the wasm-bindgen API used by the JS shell in `www/`.

pub mod beacon;
pub mod chain;
pub mod identity;
pub mod member;
pub mod net;
pub mod platform;
pub mod wire;

#[cfg(target_arch = "wasm32")]
pub mod browser;
