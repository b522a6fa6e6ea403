//! SIWE attestations built and signed by viem (tests/vectors/siwe.json, made by
//! www/tools/make-siwe.mjs): the good ones verify, each bad one is refused for its reason.
#![cfg(not(target_arch = "wasm32"))]

use std::str::FromStr;

use keep_light::identity::{
    attestation::{parse_time, timestamp, verify, Attestation, Expect},
    OperatorKey,
};
use libp2p::PeerId;
use serde_json::Value;

#[test]
fn viem_attestations_verify_or_fail_for_their_stated_reason() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/siwe.json"
    ))
    .unwrap();
    let vectors: Value = serde_json::from_str(&text).unwrap();
    // The recorded peer IDs are those of the recorded session secrets.
    for who in ["session", "other"] {
        let key = OperatorKey::from_hex(vectors[who]["secret"].as_str().unwrap()).unwrap();
        assert_eq!(
            key.peer_id().to_string(),
            vectors[who]["peer"].as_str().unwrap()
        );
    }
    let now = parse_time(vectors["now"].as_str().unwrap()).unwrap();
    let session = PeerId::from_str(vectors["session"]["peer"].as_str().unwrap()).unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(cases.len() >= 12);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let attestation = Attestation {
            message: case["message"].as_str().unwrap().into(),
            signature: case["signature"].as_str().unwrap().into(),
        };
        let expect = Expect::new().with_chain_id(1).with_peer(session);
        let result = verify(&attestation, now, &expect);
        let want = &case["expect"];
        if want["valid"] == true {
            let verified = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                verified.operator.to_string(),
                want["operator"].as_str().unwrap(),
                "{name}"
            );
            assert_eq!(verified.peer_id, session, "{name}");
            if let Some(expires) = want["expires_at"].as_str() {
                assert_eq!(timestamp(verified.expires_at), expires, "{name}");
            }
        } else {
            let error = result.err().unwrap_or_else(|| panic!("{name}: accepted"));
            assert_eq!(
                error.reason(),
                want["reason"].as_str().unwrap(),
                "{name}: {error}"
            );
        }
    }
}
