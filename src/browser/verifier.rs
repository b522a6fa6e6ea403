//! The bindings of the page's signature verifiers: a pool of Web Workers
//! (`www/src/verifier-pool.js`) checks envelope signatures for the node, so the public-key
//! recovery, most of what a received message costs, stays off the page's main thread.
//!
//! The page registers its pool with [`use_verifier_workers`] before it starts a node; each
//! worker loads this same module and calls only [`serve_verifications`]. What crosses is bytes:
//! a batch of prepared signatures (hash ‖ r ‖ s ‖ v, 97 bytes each) one way, the signers
//! (status ‖ address, 21 bytes each) back, in order ([`crate::net::validation::Unverified`]).
//! The main thread still hashes each envelope, and compares the signer with its sender.

use wasm_bindgen::prelude::*;

use crate::{net::validation::Unverified, platform};

/// Nodes started from now on hand signature checks to `run(requests: Uint8Array) ->
/// Promise<Uint8Array>`, a pool of `size` workers (`null`: check them on the main thread); a
/// batch that fails is checked on the main thread instead.
#[wasm_bindgen(js_name = useVerifierWorkers)]
pub fn use_verifier_workers(run: Option<js_sys::Function>, size: usize) {
    platform::use_workers(run, size);
}

/// A worker's side: the signer of every prepared signature in `requests`, in order.
#[wasm_bindgen(js_name = serveVerifications)]
pub fn serve_verifications(requests: &[u8]) -> Vec<u8> {
    platform::serve_batch::<Unverified>(requests)
}
