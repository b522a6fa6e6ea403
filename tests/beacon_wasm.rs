//! The beacon cryptography compiled to wasm32 and run in headless Chromium gives the same answers
//! as py_ecc: the known-answer vectors of tests/vectors/bls.json (see tests/bls_vectors.rs for
//! the native run of the same checks).
#![cfg(target_arch = "wasm32")]

use keep_light::{
    beacon::{
        bls::{g1_to_bytes, hash_to_g1, PublicKey, SecretKey, Signature},
        entry,
        threshold::{combine_verified, deal, CandidateShare},
    },
    identity::parse_hex,
    platform,
};
use serde_json::Value;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const VECTORS: &str = include_str!("vectors/bls.json");

fn bytes(value: &Value) -> Vec<u8> {
    parse_hex(value.as_str().expect("hex string")).expect("hex")
}

fn hex0x(data: &[u8]) -> String {
    format!("0x{}", hex::encode(data))
}

#[wasm_bindgen_test]
fn bls_in_wasm_matches_py_ecc_vectors() {
    let vectors: Value = serde_json::from_str(VECTORS).unwrap();
    for v in vectors["keys"].as_array().unwrap() {
        let secret = SecretKey::from_bytes(&bytes(&v["secret"])).unwrap();
        let message = bytes(&v["message"]);
        assert_eq!(hex0x(&secret.public_key().to_bytes()), v["public_key"]);
        assert_eq!(hex0x(&secret.sign(&message).to_bytes()), v["signature"]);
        let public_key = PublicKey::from_compressed(&bytes(&v["public_key_compressed"])).unwrap();
        let signature = Signature::from_bytes(&bytes(&v["signature"])).unwrap();
        assert!(public_key.verify(&message, &signature));
        assert!(!public_key.verify(b"other", &signature));
    }
    for v in vectors["hash_to_g1"].as_array().unwrap() {
        assert_eq!(
            hex0x(&g1_to_bytes(hash_to_g1(&bytes(&v["message"])))),
            v["point"]
        );
    }
    assert_eq!(
        hex0x(&entry::genesis().to_bytes()),
        vectors["entry"]["genesis"]
    );
    assert_eq!(
        hex0x(&entry::random_number(&entry::genesis())),
        vectors["entry"]["genesis_random"]
    );
    for v in vectors["invalid"].as_array().unwrap() {
        let data = bytes(&v["bytes"]);
        let reason = match v["kind"].as_str().unwrap() {
            "g1" => Signature::from_bytes(&data).unwrap_err().reason(),
            _ => PublicKey::from_bytes(&data).unwrap_err().reason(),
        };
        assert_eq!(reason, v["reason"].as_str().unwrap());
    }
}

#[wasm_bindgen_test]
fn threshold_signing_in_wasm_with_browser_randomness() {
    // platform::rng() is the browser's crypto.getRandomValues here.
    let mut rng = platform::rng();
    let dealing = deal(7, 4, &mut rng).unwrap();
    let message = entry::entry_message(&entry::genesis());
    let mut shares: Vec<CandidateShare> = dealing.shares.iter().map(|s| s.sign(&message)).collect();
    shares[0].signature = dealing.shares[1].secret.sign(&message);
    let combined = combine_verified(&message, 4, &shares, &mut rng).unwrap();
    assert_eq!(combined.rejected.len(), 1);
    assert!(entry::verify_entry(
        &dealing.group_public_key,
        &entry::genesis(),
        &combined.signature
    ));
}
