//! The identity operations both benchmarks time: `benches/identity.rs` (criterion, native) and
//! `benches/crypto_wasm.rs` (headless Chromium): attestation verification and keystore
//! decryption with geth's default scrypt and with PBKDF2 (the vectors made by ethers and
//! @ethereumjs/wallet in tests/vectors/keystores/).

use std::time::Duration;

use keep_light::identity::{
    attestation::{self, Expect},
    keystore::Keystore,
    OperatorKey,
};

/// A named operation to time; each call does the operation once.
pub type Case = (&'static str, Box<dyn FnMut()>);

const GETH_SCRYPT: &str =
    include_str!("../../tests/vectors/keystores/ethers-scrypt-geth-default.json");
const PBKDF2: &str = include_str!("../../tests/vectors/keystores/ethereumjs-pbkdf2.json");
const INDEX: &str = include_str!("../../tests/vectors/keystores/index.json");

fn password(file: &str) -> String {
    let index: serde_json::Value = serde_json::from_str(INDEX).expect("index.json");
    index
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["file"] == file)
        .and_then(|k| k["password"].as_str())
        .expect("listed")
        .to_owned()
}

pub fn cases() -> Vec<Case> {
    let wallet = OperatorKey::from_bytes(&[7; 32]).expect("valid key");
    let session = OperatorKey::from_bytes(&[8; 32]).expect("valid key");
    let now = attestation::parse_time("2026-11-26T10:00:00Z").expect("time");
    let signed = attestation::create(
        &wallet,
        &session.peer_id(),
        1,
        "keep-light.example",
        now,
        Duration::from_secs(3600),
        "benchmark1",
    )
    .expect("valid attestation");
    let expect = Expect::new().with_chain_id(1).with_peer(session.peer_id());
    let scrypt = Keystore::parse(GETH_SCRYPT.as_bytes()).expect("keystore");
    let scrypt_password = password("ethers-scrypt-geth-default.json");
    let pbkdf2 = Keystore::parse(PBKDF2.as_bytes()).expect("keystore");
    let pbkdf2_password = password("ethereumjs-pbkdf2.json");
    // What gossipsub's StrictSign cost per received copy before wire v1: one secp256k1
    // verification (an envelope's signature is one key recovery: `examples/verify.rs`).
    let keypair = wallet.libp2p_keypair();
    let signed_bytes = vec![7u8; 300];
    let signature = keypair.sign(&signed_bytes).expect("secp256k1 signs");
    let public = keypair.public();
    vec![
        (
            "pubsub_signature_verify",
            Box::new(move || {
                assert!(public.verify(&signed_bytes, &signature));
            }),
        ),
        (
            "attestation_verify",
            Box::new(move || {
                attestation::verify(&signed, now, &expect).expect("valid");
            }),
        ),
        (
            "keystore_scrypt_geth_default",
            Box::new(move || {
                scrypt.decrypt(&scrypt_password).expect("decrypts");
            }),
        ),
        (
            "keystore_pbkdf2_262144",
            Box::new(move || {
                pbkdf2.decrypt(&pbkdf2_password).expect("decrypts");
            }),
        ),
    ]
}
