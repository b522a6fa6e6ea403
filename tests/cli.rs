//! The CLI contract of DESIGN.md section 6, exercised through the real binary.
#![cfg(not(target_arch = "wasm32"))]

use std::{
    io::Write,
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use serde_json::Value;

#[path = "support/processes.rs"]
mod processes;

use processes::{free_port, relay, spawn, start, terminate, Lines, Proc, BIN};

#[test]
fn id_prints_address_peer_id_and_public_key() {
    let out = Command::new(BIN)
        .args([
            "id",
            "--key-hex",
            "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["address"], "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23");
    assert!(v["peer_id"].as_str().unwrap().starts_with("16Uiu2"));
    assert_eq!(v["public_key"].as_str().unwrap().len(), 2 + 66);

    let bad = Command::new(BIN)
        .args(["id", "--key-hex", "0x1234"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let v: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert!(v["error"].as_str().unwrap().contains("32 bytes"));
}

#[test]
fn a_node_stops_on_sigterm_while_its_stdin_is_still_open() {
    let (_relay, _relay_lines, ws) = relay(&[]);
    let (mut node, lines) = spawn(&[
        "node",
        "--bootstrap",
        &ws,
        "--key-hex",
        "0x0000000000000000000000000000000000000000000000000000000000000021",
        "--join",
        "keep-light/cli/sigterm",
    ]);
    lines.next("the node joining its topic", |v| v["event"] == "subscribed");
    // Our end of its stdin stays open (held by `node`): its pending read never ends.
    let status = Command::new("kill")
        .args(["-TERM", &node.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    for _ in 0..100 {
        exit = node.0.try_wait().unwrap();
        if exit.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let exit = exit.expect("the node still runs 10 s after SIGTERM");
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn relay_keeps_its_identity_in_the_data_dir_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("keep-light-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().unwrap();
    let peer = |ws: &str| ws.rsplit('/').next().unwrap().to_owned();

    let (mut first, _lines, ws) = relay(&["--data-dir", dir_arg, "--firewall", "open"]);
    let status = Command::new("kill")
        .args(["-TERM", &first.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = first.0.wait().unwrap();
    assert!(exit.success(), "relay exits cleanly on SIGTERM: {exit:?}");

    // Default listen addresses this time: WebSocket, TCP and WebRTC-direct (in any order):
    // the WebSocket and the WebRTC-direct ones.
    let addresses = |lines: &Lines| {
        let (mut ws, mut webrtc) = (None, None);
        while ws.is_none() || webrtc.is_none() {
            let line = lines.next("listening addresses", |v| v["listening"].is_string());
            let address = line["listening"].as_str().unwrap().to_owned();
            if address.contains("/ws/p2p/") {
                ws = Some(address);
            } else if address.contains("/webrtc-direct/certhash/") {
                webrtc = Some(address);
            }
        }
        (ws.unwrap(), webrtc.unwrap())
    };
    // The WebRTC-direct certificate is kept too: the certhash survives a restart.
    let certhash = |address: &str| {
        address
            .split("/certhash/")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let (mut second, lines) = spawn(&["relay", "--data-dir", dir_arg]);
    let (ws2, webrtc) = addresses(&lines);
    assert_eq!(peer(&ws), peer(&ws2), "same identity after restart");
    let first_hash = certhash(&webrtc);
    let _ = second.0.kill();
    let _ = second.0.wait();
    let (_third, lines) = spawn(&["relay", "--data-dir", dir_arg]);
    assert_eq!(
        certhash(&addresses(&lines).1),
        first_hash,
        "same certhash after restart"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loopback TCP port that was free a moment ago (for a relay restarted on the same address).
/// Two nodes (keys `a`, `b`) on `relay` join a topic; `a` publishes until `b` prints the
/// message. Returns the nodes.
fn exchange_through(relay: &str, a: u64, b: u64) -> [(Proc, Lines); 2] {
    let topic = "keep-light/cli/exchange/1";
    let node = |n: u64| {
        spawn(&[
            "node",
            "--bootstrap",
            relay,
            "--key-hex",
            &format!("0x{n:064x}"),
            "--join",
            topic,
        ])
    };
    let (mut a, b) = (node(a), node(b));
    for (_, lines) in [&a, &b] {
        lines.next("connected", |v| v["event"] == "connected");
    }
    let stdin = a.0 .0.stdin.as_mut().unwrap();
    for i in 0..40 {
        writeln!(stdin, "publish {topic} hello {i}").unwrap();
        let got =
            b.1.during(Duration::from_millis(500))
                .into_iter()
                .any(|v| v["event"] == "message" && v["topic"] == topic);
        if got {
            return [a, b];
        }
    }
    panic!("no message crossed {relay}");
}

#[test]
fn a_relay_keeps_its_bans_in_the_data_dir_and_enforces_them_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("keep-light-bans-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap();

    // A session key whose delegation names another peer: the relay refuses it and bans the key.
    let session = format!("0x{}", "0b".repeat(32));
    let (_, id) = run_json(&["id", "--key-hex", &session], b"");
    let session_peer = id["peer_id"].as_str().unwrap().to_owned();
    let (ok, attestation) = run_json(
        &[
            "attest",
            "create",
            "--key-hex",
            &format!("0x{}", "09".repeat(32)),
            "--peer",
            "16Uiu2HAmCCQRbp36trRMKRjqhRv1GAD7i1Epty3q2LiutAYCJ1oN",
            "--chain-id",
            "31337",
        ],
        b"",
    );
    assert!(ok, "{attestation}");
    let file = dir.join("attestation.json");
    std::fs::write(&file, attestation.to_string()).unwrap();
    let banned_node = |relay: &str| {
        spawn(&[
            "node",
            "--bootstrap",
            relay,
            "--key-hex",
            &session,
            "--attestation",
            file.to_str().unwrap(),
        ])
    };

    // The restarted relay listens where the first did, so the banned key dials it again.
    let listen = format!("/ip4/127.0.0.1/tcp/{}/ws", free_port());
    let relay_args = [
        "relay",
        "--data-dir",
        dir_arg,
        "--chain-id",
        "31337",
        "--listen",
        &listen,
    ];
    let (mut first, lines) = spawn(&relay_args);
    let ws = lines.next("listening", |v| v["listening"].is_string())["listening"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut node, node_lines) = banned_node(&ws);
    let banned = lines.next("the session key's ban", |v| v["event"] == "banned");
    assert_eq!(banned["peer"], session_peer.as_str());
    assert_eq!(banned["reason"], "attestation_wrong_peer");
    assert_eq!(banned["offences"], 1);
    // The refusal reached the node before the ban cut it off.
    node_lines.next("the refusal", |v| {
        v["event"] == "attestation_acknowledged" && v["accepted"] == false
    });
    // Saved right after the event is printed.
    let saved = (0..100)
        .find_map(|_| {
            thread::sleep(Duration::from_millis(100));
            std::fs::read_to_string(dir.join("bans.json")).ok()
        })
        .expect("bans.json written");
    assert!(saved.contains(&session_peer), "{saved}");
    terminate(&mut node);
    terminate(&mut first);

    let (mut second, lines) = spawn(&relay_args);
    let restored = lines.next("restored bans", |v| v["event"] == "bans_restored");
    assert_eq!(
        (
            restored["running"].as_u64(),
            restored["remembered"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let ws2 = lines.next("listening", |v| v["listening"].is_string())["listening"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ws2, ws, "same address and identity");
    // The banned key dials the restarted relay afresh: refused before its attestation is even
    // read (unenforced, the relay would refuse the attestation and ban the key once more),
    // while others are served meanwhile.
    let (_again, again_lines) = banned_node(&ws);
    let _served = exchange_through(&ws, 0x0c, 0x0d);
    let relay_said = lines.during(Duration::from_secs(2));
    assert!(
        relay_said
            .iter()
            .all(|v| v["peer"] != session_peer.as_str()),
        "{relay_said:?}"
    );
    let node_said = again_lines.during(Duration::from_millis(100));
    assert!(
        node_said
            .iter()
            .all(|v| v["event"] != "attestation_acknowledged"),
        "{node_said:?}"
    );
    assert!(
        node_said
            .iter()
            .any(|v| v["event"] == "dial_failed" || v["event"] == "disconnected"),
        "the banned key tried and was refused: {node_said:?}"
    );
    eprintln!("banned node after the restart: {node_said:?}");

    // A damaged file is set aside and reported; the relay still starts.
    terminate(&mut second);
    std::fs::write(dir.join("bans.json"), "{ not json").unwrap();
    let (_third, lines) = spawn(&["relay", "--data-dir", dir_arg]);
    let unreadable = lines.next("the damaged file reported", |v| {
        v["event"] == "bans_unreadable"
    });
    assert!(
        unreadable["error"].as_str().unwrap().contains("line 1"),
        "{unreadable}"
    );
    lines.next("listening anyway", |v| v["listening"].is_string());
    assert!(dir.join("bans.json.unreadable").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_node_remembers_the_relays_that_worked_in_its_data_dir() {
    let dir = std::env::temp_dir().join(format!("keep-light-good-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (_relay, _lines, ws) = relay(&[]);
    let (_node, lines) = spawn(&[
        "node",
        "--bootstrap",
        "/ip4/127.0.0.1/tcp/1/ws",
        "--bootstrap",
        &ws,
        "--key-hex",
        &format!("0x{}", "0f".repeat(32)),
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    lines.next("a relay connected", |v| {
        v["event"] == "health" && v["relays"] == 1
    });
    let saved = (0..50)
        .find_map(|_| {
            thread::sleep(Duration::from_millis(100));
            std::fs::read_to_string(dir.join("good-relays.json")).ok()
        })
        .expect("good-relays.json written");
    let good: Vec<String> = serde_json::from_str(&saved).unwrap();
    assert_eq!(good, vec![ws.clone()]);
    drop(_node);

    // Restarted behind 40 relays that accept and never answer (each dial to them hangs
    // until libp2p's 10 s handshake limit): the remembered relay is among the first 3 dials
    // (the target), so it is connected before any dial has failed. Shuffled with the others
    // instead, it would be among them 3 times in 41.
    let hanging: Vec<std::net::TcpListener> = (0..40)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut args = vec![
        "node".to_owned(),
        "--key-hex".to_owned(),
        format!("0x{}", "0f".repeat(32)),
        "--data-dir".to_owned(),
        dir.to_str().unwrap().to_owned(),
    ];
    for (i, listener) in hanging.iter().enumerate() {
        let (_, peer) = identity_of(1000 + i as u64);
        let port = listener.local_addr().unwrap().port();
        args.push("--bootstrap".into());
        args.push(format!("/ip4/127.0.0.1/tcp/{port}/ws/p2p/{peer}"));
    }
    args.push("--bootstrap".into());
    args.push(ws);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_node, lines) = spawn(&args);
    let first = lines.next("a relay connected or a dial failed", |v| {
        (v["event"] == "health" && v["relays"] == 1) || v["event"] == "dial_failed"
    });
    assert_eq!(first["event"], "health", "{first}");
    drop(hanging);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nodes_publish_stdin_lines_and_print_messages() {
    let (_relay, _relay_lines, ws) = relay(&[]);
    let topic = "keep-light/cli/1";
    let (mut a, a_lines) = spawn(&[
        "node",
        "--bootstrap",
        &ws,
        "--key-hex",
        &format!("0x{:064x}", 11),
        "--join",
        topic,
    ]);
    let (_b, b_lines) = spawn(&[
        "node",
        "--bootstrap",
        &ws,
        "--key-hex",
        &format!("0x{:064x}", 12),
        "--join",
        topic,
    ]);
    for lines in [&a_lines, &b_lines] {
        lines.next("subscribed", |v| {
            v["event"] == "subscribed" && v["topic"] == topic
        });
        lines.next("connected", |v| v["event"] == "connected");
    }
    let stdin = a.0.stdin.as_mut().unwrap();
    writeln!(stdin, "no such command").unwrap();
    a_lines.next("command_error", |v| v["event"] == "command_error");

    // Until the relay's mesh includes both, publishing may find no peer yet: resend.
    let mut got = None;
    for i in 0..40 {
        writeln!(stdin, "publish {topic} hello {i}").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            if let Ok(v) = b_lines.0.recv_timeout(Duration::from_millis(50)) {
                if v["event"] == "message" {
                    got = Some(v);
                    break;
                }
            }
        }
        if got.is_some() {
            break;
        }
    }
    let v = got.expect("b receives a's message");
    assert_eq!(v["topic"], topic);
    assert!(v["data"].as_str().unwrap().starts_with("hello "));
    assert!(v["from"].as_str().unwrap().starts_with("16Uiu2"));
    // Signed by key 11 (its address is the sender); forwarded by the relay, not by a.
    let (address, peer_id) = identity_of(11);
    assert_eq!(v["sender"], address.as_str());
    assert_ne!(v["from"], peer_id.as_str());
}

/// `keep-light id` of the key with secret `n`: (address, peer ID).
fn identity_of(n: u64) -> (String, String) {
    let (_, id) = run_json(&["id", "--key-hex", &format!("0x{n:064x}")], b"");
    (
        id["address"].as_str().unwrap().to_owned(),
        id["peer_id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_staked_relay_asks_the_dev_chain_and_bans_operators_without_stake() {
    let ((staked, staked_peer), (_, unstaked_peer)) = (identity_of(21), identity_of(22));
    let (mut chain, chain_lines) = spawn(&[
        "chain",
        "--minimum-stake",
        "5",
        "--stake",
        &format!("{staked}=10"),
    ]);
    let url = chain_lines.next("the rpc URL", |v| v["rpc"].is_string())["rpc"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_relay, relay_lines, ws) = relay(&["--firewall", "staked", "--chain", &url]);
    let mut nodes = Vec::new();
    for n in [21, 22] {
        nodes.push(spawn(&[
            "node",
            "--bootstrap",
            &ws,
            "--key-hex",
            &format!("0x{n:064x}"),
        ]));
    }
    let checked = relay_lines.next("the staked operator checked", |v| {
        v["event"] == "operator_checked" && v["operator"] == staked.as_str()
    });
    assert_eq!(
        (checked["recognised"].clone(), checked["stake"].clone()),
        (true.into(), "10".into())
    );
    // The operator without stake fails the policy when its 10 s grace ends.
    let banned = relay_lines.next("a ban", |v| v["event"] == "banned");
    assert_eq!(banned["peer"], unstaked_peer.as_str());
    assert_eq!(banned["reason"], "policy_unstaked");
    // The staked operator's grace ended with the other's: it stays, connected and unbanned.
    let relay_later = relay_lines.during(Duration::from_secs(3));
    assert!(
        relay_later
            .iter()
            .all(|v| v["peer"] != staked_peer.as_str()),
        "{relay_later:?}"
    );
    let staked_lines = nodes[0].1.during(Duration::from_millis(100));
    assert!(
        staked_lines.iter().all(|v| v["event"] != "disconnected"),
        "the staked operator stays connected: {staked_lines:?}"
    );

    // Stakes change at run time; bad lines are answered, not fatal.
    let stdin = chain.0.stdin.as_mut().unwrap();
    writeln!(stdin, "stake {staked} 0").unwrap();
    writeln!(stdin, "stake nobody 5").unwrap();
    writeln!(stdin, "unstake").unwrap();
    let changed = chain_lines.next("the stake change", |v| v["event"] == "stake");
    assert_eq!(
        (changed["operator"].clone(), changed["stake"].clone()),
        (staked.as_str().into(), "0".into())
    );
    chain_lines.next("an error for the bad address", |v| {
        v["error"].as_str().is_some_and(|e| e.contains("nobody"))
    });
    chain_lines.next("an error for the unknown command", |v| {
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown command"))
    });

    // Without --chain, a staked relay refuses to start.
    let (ok, out) = run_json(&["relay", "--firewall", "staked"], b"");
    assert!(!ok);
    assert!(out["error"].as_str().unwrap().contains("chain"), "{out}");
}

/// Runs `keep-light ARGS` with `stdin`; returns (exit success, the one JSON line).
fn run_json(args: &[&str], stdin: &[u8]) -> (bool, Value) {
    let mut child = start(args);
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // Write on a thread: the child may exit before reading all of a large input.
    let writer = thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON line expected: {text}");
    (out.status.success(), serde_json::from_str(&text).unwrap())
}

/// Runs `keep-light bls ARGS` with `stdin`; returns (exit success, the one JSON line).
fn bls(args: &[&str], stdin: &[u8]) -> (bool, Value) {
    let mut all = vec!["bls"];
    all.extend_from_slice(args);
    run_json(&all, stdin)
}

#[test]
fn bls_sign_verify_and_deal_follow_the_contract() {
    let (ok, key) = bls(&["keygen"], b"");
    assert!(ok);
    let secret = key["secret"].as_str().unwrap();
    let public_key = key["public_key"].as_str().unwrap();
    assert_eq!((secret.len(), public_key.len()), (2 + 64, 2 + 256));
    let (ok, sig) = bls(&["sign", "--secret", secret, "--message", "0xabcd"], b"");
    assert!(ok);
    let signature = sig["signature"].as_str().unwrap();
    assert_eq!(signature.len(), 2 + 128);
    let verify = |message: &str, signature: &str| {
        bls(
            &[
                "verify",
                "--public-key",
                public_key,
                "--message",
                message,
                "--signature",
                signature,
            ],
            b"",
        )
    };
    assert_eq!(
        verify("0xabcd", signature),
        (true, serde_json::json!({"valid": true}))
    );

    // Each bad input: exit 1, valid false, and an error naming what was wrong.
    let mut off_curve = signature.to_string();
    off_curve.replace_range(129.., if signature.ends_with('0') { "1" } else { "0" });
    let cases = [
        ("0xabce", signature.to_string(), "does not verify"),
        ("0xabcd", off_curve, "not on the curve"),
        ("0xabcd", format!("0x{}", "0".repeat(128)), "identity"),
        ("0xabcd", signature[..100].to_string(), "expected 64 bytes"),
        ("0xabcd", format!("0x{}", "f".repeat(128)), "canonical"),
        ("0xabc", signature.to_string(), "message: not hex"),
    ];
    for (message, signature, error) in cases {
        let (ok, v) = verify(message, &signature);
        assert!(!ok, "{signature}");
        assert_eq!(v["valid"], false);
        assert!(
            v["error"].as_str().unwrap().contains(error),
            "{v} should say {error}"
        );
    }

    let (ok, v) = bls(
        &[
            "sign",
            "--secret",
            &format!("0x{}", "0".repeat(64)),
            "--message",
            "0x",
        ],
        b"",
    );
    assert!(
        !ok && v["error"].as_str().unwrap().contains("non-zero"),
        "{v}"
    );
    let (ok, v) = bls(&["deal", "--n", "4", "--t", "3"], b"");
    assert!(ok);
    assert_eq!(v["shares"].as_array().unwrap().len(), 4);
    let (ok, v) = bls(&["deal", "--n", "4", "--t", "0"], b"");
    assert!(
        !ok && v["error"].as_str().unwrap().contains("threshold"),
        "{v}"
    );
}

#[test]
fn bls_combine_rejects_bad_input_clearly() {
    let (ok, v) = bls(&["combine"], b"{not json");
    assert!(
        !ok && v["error"].as_str().unwrap().starts_with("malformed input"),
        "{v}"
    );
    let (ok, v) = bls(&["combine"], &[0xff, 0xfe, 0x00]);
    assert!(
        !ok && v["error"].as_str().unwrap().starts_with("malformed input"),
        "{v}"
    );
    let (ok, v) = bls(&["combine"], &vec![b' '; 10 << 20]);
    assert!(
        !ok && v["error"].as_str().unwrap().contains("exceeds"),
        "{v}"
    );
    let many = format!(
        r#"{{"message":"0x","threshold":1,"shares":[{}]}}"#,
        vec![r#"{"index":1,"signature":"0x","public_key":"0x"}"#; 1025].join(",")
    );
    let (ok, v) = bls(&["combine"], many.as_bytes());
    assert!(
        !ok && v["error"].as_str().unwrap().contains("group size limit"),
        "{v}"
    );

    // Shares that do not decode, index 0 and duplicates: each named with its reason.
    let (_, dealing) = bls(&["deal", "--n", "3", "--t", "2"], b"");
    let share = |i: usize| dealing["shares"][i].clone();
    let sign = |i: usize| {
        bls(
            &[
                "sign",
                "--secret",
                share(i)["secret"].as_str().unwrap(),
                "--message",
                "0x01",
            ],
            b"",
        )
        .1["signature"]
            .clone()
    };
    let entry = |index: u64, i: usize, signature: Value| serde_json::json!({"index": index, "signature": signature, "public_key": share(i)["public_key"]});
    let input = serde_json::json!({
        "message": "0x01",
        "threshold": 2,
        "shares": [
            entry(1, 0, "0x1234".into()),
            entry(0, 1, sign(1)),
            entry(2, 1, sign(1)),
            entry(2, 1, sign(1)),
        ],
    });
    let (ok, v) = bls(&["combine"], input.to_string().as_bytes());
    assert!(!ok);
    let reasons: Vec<(u64, &str)> = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(
        reasons,
        vec![(1, "malformed"), (0, "zero_index"), (2, "duplicate_index")]
    );
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("1 valid shares, 2 needed"),
        "{v}"
    );
}

#[test]
fn id_reads_keystores_with_a_password_from_env_or_file() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/keystores");
    let keystore = format!("{dir}/ethers-scrypt-light.json");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/index.json")).unwrap())
            .unwrap();
    let case = index
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == "ethers-scrypt-light.json")
        .unwrap();
    let run = |password_env: Option<&str>, extra: &[&str]| {
        let mut command = Command::new(BIN);
        command.args(["id", "--keystore", &keystore]).args(extra);
        command.env_remove("KEEP_LIGHT_PASSWORD");
        if let Some(p) = password_env {
            command.env("KEEP_LIGHT_PASSWORD", p);
        }
        let out = command.stderr(Stdio::null()).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.success(), v)
    };
    let password = case["password"].as_str().unwrap();
    let (ok, v) = run(Some(password), &[]);
    assert!(ok, "{v}");
    assert_eq!(v["address"], case["address"]);

    let file = std::env::temp_dir().join(format!("keep-light-pw-{}", std::process::id()));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let (ok, v) = run(None, &["--password-file", file.to_str().unwrap()]);
    std::fs::remove_file(&file).unwrap();
    assert!(ok, "{v}");
    assert_eq!(v["address"], case["address"]);

    let (ok, v) = run(Some("wrong"), &[]);
    assert!(
        !ok && v["error"].as_str().unwrap().contains("wrong password"),
        "{v}"
    );
    let (ok, v) = run(None, &[]);
    assert!(
        !ok && v["error"].as_str().unwrap().contains("KEEP_LIGHT_PASSWORD"),
        "{v}"
    );
}

#[test]
fn attest_create_then_verify_follows_the_contract() {
    let session = "16Uiu2HAm8kegYGp6XeybmZAuNcnLosyjsRwZ44yLgfEuqLqYL9zt";
    let (ok, attestation) = run_json(
        &[
            "attest",
            "create",
            "--key-hex",
            &format!("0x{}", "09".repeat(32)),
            "--peer",
            session,
            "--chain-id",
            "31337",
            "--domain",
            "localhost:8080",
            "--ttl",
            "30m",
        ],
        b"",
    );
    assert!(ok, "{attestation}");
    let input = attestation.to_string();
    let verify = |extra: &[&str]| {
        let mut args = vec!["attest", "verify", "-"];
        args.extend_from_slice(extra);
        run_json(&args, input.as_bytes())
    };
    let (ok, v) = verify(&["--chain-id", "31337", "--peer", session]);
    assert!(ok, "{v}");
    assert_eq!(v["valid"], true);
    assert_eq!(v["peer_id"], session);
    assert_eq!(v["chain_id"], 31337);
    assert!(v["operator"].as_str().unwrap().starts_with("0x"));

    for (extra, reason) in [
        (vec!["--chain-id", "1"], "wrong_chain"),
        (
            vec![
                "--peer",
                "16Uiu2HAmCCQRbp36trRMKRjqhRv1GAD7i1Epty3q2LiutAYCJ1oN",
            ],
            "wrong_peer",
        ),
        (vec!["--now", "2099-01-01T00:00:00Z"], "expired"),
    ] {
        let (ok, v) = verify(&extra);
        assert!(!ok);
        assert_eq!(v["valid"], false);
        assert!(v["error"].as_str().unwrap().starts_with(reason), "{v}");
    }
    let huge = vec![b' '; 10 << 20];
    for (input, error) in [
        (&b"{\"message\":"[..], "malformed attestation JSON"),
        (&[0xff, 0xfe, b'{'][..], "malformed attestation JSON"),
        (&huge[..], "exceeds"),
    ] {
        let (ok, v) = run_json(&["attest", "verify", "-"], input);
        assert!(!ok && v["error"].as_str().unwrap().contains(error), "{v}");
    }
    let (ok, v) = run_json(&["attest", "verify", "/nonexistent/attestation.json"], b"");
    assert!(!ok && v["valid"] == false, "{v}");
}
