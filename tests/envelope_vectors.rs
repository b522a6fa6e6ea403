//! Envelope signatures (wire v1) both ways against a second implementation on viem:
//! - theirs by us: tests/vectors/envelope.json (made by `www/tools/envelope-vectors.mjs make`)
//!   verifies, or is refused as `bad_signature`, case by case; our signing hash and our
//!   signature for the same key and fields are byte for byte theirs (RFC 6979 on both sides);
//! - ours by them: envelopes signed here are checked by `envelope-vectors.mjs check` under node.
#![cfg(not(target_arch = "wasm32"))]

use std::process::Command;

use keep_light::{
    identity::OperatorKey,
    wire::{signature, Envelope},
};
use serde_json::{json, Value};

fn bytes(value: &Value) -> Vec<u8> {
    let text = value.as_str().expect("a hex string");
    hex::decode(text.trim_start_matches("0x")).expect("hex")
}

fn envelope(value: &Value) -> Envelope {
    Envelope {
        r#type: value["type"].as_str().unwrap().to_owned(),
        payload: bytes(&value["payload"]),
        sender: bytes(&value["sender"]),
        sequence: value["sequence"].as_str().unwrap().parse().unwrap(),
        group: bytes(&value["group"]),
        signature: bytes(&value["signature"]),
    }
}

fn hex0x(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn to_json(envelope: &Envelope) -> Value {
    json!({
        "type": envelope.r#type,
        "payload": hex0x(&envelope.payload),
        "group": hex0x(&envelope.group),
        "sequence": envelope.sequence.to_string(),
        "sender": hex0x(&envelope.sender),
        "signature": hex0x(&envelope.signature),
    })
}

#[test]
fn viem_signed_envelopes_verify_or_are_refused_as_their_vectors_say() {
    let file: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/envelope.json"
    )))
    .unwrap();
    let cases = file["cases"].as_array().unwrap();
    assert!(cases.len() >= 14);
    for case in cases {
        let (name, topic) = (
            case["name"].as_str().unwrap(),
            case["topic"].as_str().unwrap(),
        );
        let envelope = envelope(&case["envelope"]);
        let outcome = signature::verify(topic, &envelope);
        if case["expect"]["valid"] == true {
            let sender = outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(sender.as_bytes(), envelope.sender.as_slice(), "{name}");
        } else {
            let error = outcome.expect_err(name);
            assert_eq!(error.reason(), case["expect"]["reason"], "{name}: {error}");
        }
        if let Some(hash) = case["expect"]["hash"].as_str() {
            assert_eq!(
                hex0x(&signature::signing_hash(topic, &envelope)),
                hash,
                "{name}"
            );
        }
    }
    // The same key and fields: our signature is theirs, byte for byte.
    let alice =
        OperatorKey::from_hex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
            .unwrap();
    let theirs = envelope(&cases[0]["envelope"]);
    let mut ours = Envelope {
        signature: Vec::new(),
        sender: Vec::new(),
        ..theirs.clone()
    };
    signature::sign(
        &alice.signing_key(),
        cases[0]["topic"].as_str().unwrap(),
        &mut ours,
    );
    assert_eq!(ours, theirs);
}

#[test]
fn envelopes_signed_here_pass_the_javascript_check_and_altered_ones_fail_it() {
    let www = concat!(env!("CARGO_MANIFEST_DIR"), "/www");
    if !std::path::Path::new(www).join("node_modules/viem").exists() {
        // CI installs www's packages before the tests (scripts/install-tools.sh): there this
        // check must run. Elsewhere, say how to run it.
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "www/node_modules is missing"
        );
        eprintln!("skipped: run scripts/install-tools.sh for www's npm packages");
        return;
    }
    let topic = "keep-light/dkg/ab/1";
    let mut cases = Vec::new();
    for (i, (payload, group)) in [
        (&b""[..], &b""[..]),
        (b"share", b"\x01\x02"),
        (&[0xff; 300][..], &[7; 32][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let key = OperatorKey::generate();
        let mut envelope = Envelope {
            r#type: format!("beacon.dkg.Phase{i}"),
            payload: payload.to_vec(),
            group: group.to_vec(),
            sequence: u64::MAX - i as u64,
            ..Default::default()
        };
        signature::sign(&key.signing_key(), topic, &mut envelope);
        let hash = hex0x(&signature::signing_hash(topic, &envelope));
        cases.push(
            json!({"name": format!("rust_{i}"), "topic": topic, "envelope": to_json(&envelope),
            "expect": {"valid": true, "hash": hash}}),
        );
        envelope.payload.push(0);
        cases.push(json!({"name": format!("rust_{i}_altered"), "topic": topic,
            "envelope": to_json(&envelope), "expect": {"valid": false}}));
    }
    let path =
        std::env::temp_dir().join(format!("keep-light-envelopes-{}.json", std::process::id()));
    std::fs::write(&path, json!({ "cases": cases }).to_string()).unwrap();
    let out = Command::new("node")
        .current_dir(www)
        .args(["tools/envelope-vectors.mjs", "check"])
        .arg(&path)
        .output()
        .expect("node runs");
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the JavaScript check disagrees: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(r#""checked":6,"wrong":0"#), "{stdout}");
}
