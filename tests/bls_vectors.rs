//! keep-light's BN254 code against known answers computed by py_ecc (tests/vectors/bls.json, made
//! by tests/crosscheck/bls_vectors.py). scripts/test.sh also runs the live cross-check
//! (tests/crosscheck/bls_cli.py), where py_ecc verifies what the CLI produces.
#![cfg(not(target_arch = "wasm32"))]

use keep_light::{
    beacon::{
        bls::{g1_to_bytes, hash_to_g1, PublicKey, SecretKey, Signature},
        entry,
        selection::{select_group, Operator},
        threshold::{combine_verified, CandidateShare},
    },
    identity::{parse_hex, Address},
};
use rand::{rngs::StdRng, SeedableRng};
use serde_json::Value;

fn vectors() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/bls.json"
    ))
    .expect("tests/vectors/bls.json");
    serde_json::from_str(&text).expect("valid JSON")
}

fn bytes(value: &Value) -> Vec<u8> {
    parse_hex(value.as_str().expect("hex string")).expect("hex")
}

fn hex0x(data: &[u8]) -> String {
    format!("0x{}", hex::encode(data))
}

#[test]
fn keys_signatures_and_compressed_forms_match_py_ecc() {
    let vectors = vectors();
    for v in vectors["keys"].as_array().unwrap() {
        let secret = SecretKey::from_bytes(&bytes(&v["secret"])).unwrap();
        let message = bytes(&v["message"]);
        let public_key = secret.public_key();
        let signature = secret.sign(&message);
        assert_eq!(hex0x(&public_key.to_bytes()), v["public_key"]);
        assert_eq!(
            hex0x(&public_key.to_compressed()),
            v["public_key_compressed"]
        );
        assert_eq!(hex0x(&signature.to_bytes()), v["signature"]);
        assert_eq!(hex0x(&signature.to_compressed()), v["signature_compressed"]);
        // And py_ecc's bytes decode to the same points and verify.
        let theirs = PublicKey::from_bytes(&bytes(&v["public_key"])).unwrap();
        assert_eq!(
            theirs,
            PublicKey::from_compressed(&bytes(&v["public_key_compressed"])).unwrap()
        );
        let sig = Signature::from_bytes(&bytes(&v["signature"])).unwrap();
        assert_eq!(
            sig,
            Signature::from_compressed(&bytes(&v["signature_compressed"])).unwrap()
        );
        assert!(theirs.verify(&message, &sig));
    }
}

#[test]
fn hash_to_g1_matches_the_reference_computation() {
    let vectors = vectors();
    let cases = vectors["hash_to_g1"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for v in cases {
        let point = hash_to_g1(&bytes(&v["message"]));
        assert_eq!(
            hex0x(&g1_to_bytes(point)),
            v["point"],
            "message {}",
            v["message"]
        );
    }
}

#[test]
fn threshold_shares_combine_to_py_ecc_group_signature() {
    let vectors = vectors();
    let v = &vectors["threshold"];
    let message = bytes(&v["message"]);
    let t = v["t"].as_u64().unwrap() as usize;
    let group_key = PublicKey::from_bytes(&bytes(&v["group_public_key"])).unwrap();
    let mut candidates = Vec::new();
    for share in v["shares"].as_array().unwrap() {
        let secret = SecretKey::from_bytes(&bytes(&share["secret"])).unwrap();
        assert_eq!(hex0x(&secret.public_key().to_bytes()), share["public_key"]);
        assert_eq!(hex0x(&secret.sign(&message).to_bytes()), share["signature"]);
        candidates.push(CandidateShare {
            index: share["index"].as_u64().unwrap() as u32,
            signature: Signature::from_bytes(&bytes(&share["signature"])).unwrap(),
            public_key: PublicKey::from_bytes(&bytes(&share["public_key"])).unwrap(),
        });
    }
    let mut rng = StdRng::seed_from_u64(1);
    // Every window of T consecutive shares (wrapping) gives the same group signature.
    for start in 0..candidates.len() {
        let subset: Vec<_> = (0..t)
            .map(|k| candidates[(start + k) % candidates.len()])
            .collect();
        let combined = combine_verified(&message, t, &subset, &mut rng).unwrap();
        assert_eq!(hex0x(&combined.signature.to_bytes()), v["group_signature"]);
        assert!(group_key.verify(&message, &combined.signature));
    }
}

#[test]
fn relay_entries_and_selection_match_the_reference() {
    let vectors = vectors();
    let v = &vectors["entry"];
    let genesis = entry::genesis();
    assert_eq!(hex0x(&genesis.to_bytes()), v["genesis"]);
    assert_eq!(hex0x(&entry::random_number(&genesis)), v["genesis_random"]);
    let group = SecretKey::from_bytes(&bytes(&v["group_secret"])).unwrap();
    let next = group.sign(&entry::entry_message(&genesis));
    assert_eq!(hex0x(&next.to_bytes()), v["next"]);
    assert_eq!(hex0x(&entry::random_number(&next)), v["next_random"]);
    assert!(entry::verify_entry(&group.public_key(), &genesis, &next));

    let selection = &v["selection"];
    let operators: Vec<Operator> = selection["operators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| Operator {
            address: Address::from_slice(&bytes(&o["address"])).unwrap(),
            stake: o["stake"].as_u64().unwrap() as u128,
        })
        .collect();
    let seats = select_group(
        &genesis,
        &operators,
        selection["min_stake"].as_u64().unwrap() as u128,
        selection["group_size"].as_u64().unwrap() as usize,
    )
    .unwrap();
    let expected = selection["seats"].as_array().unwrap();
    assert_eq!(seats.len(), expected.len());
    for (seat, want) in seats.iter().zip(expected) {
        assert_eq!(seat.ticket.to_string(), want["ticket"].as_str().unwrap());
        assert_eq!(hex0x(seat.operator.as_bytes()), want["operator"]);
        assert_eq!(
            seat.virtual_staker,
            want["virtual_staker"].as_u64().unwrap()
        );
    }
}

#[test]
fn invalid_encodings_are_refused_with_their_reason() {
    let vectors = vectors();
    for v in vectors["invalid"].as_array().unwrap() {
        let data = bytes(&v["bytes"]);
        let reason = match v["kind"].as_str().unwrap() {
            "g1" => Signature::from_bytes(&data).unwrap_err().reason(),
            "g2" => PublicKey::from_bytes(&data).unwrap_err().reason(),
            other => panic!("unknown kind {other}"),
        };
        assert_eq!(reason, v["reason"].as_str().unwrap(), "{}", v["bytes"]);
    }
}
