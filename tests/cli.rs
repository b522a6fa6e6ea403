//! The CLI contract of DESIGN.md section 6, exercised through the real binary.
#![cfg(not(target_arch = "wasm32"))]

use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_keep-light");

/// Reads JSON lines from a child's stdout on a thread; `next` waits up to 20 s for a match.
struct Lines(mpsc::Receiver<Value>);

impl Lines {
    fn new(stdout: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Self(rx)
    }

    fn next(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.0.recv_timeout(Duration::from_secs(20)) {
                Ok(v) if pick(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Proc, Lines) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs");
    let lines = Lines::new(child.stdout.take().unwrap());
    (Proc(child), lines)
}

fn relay(extra: &[&str]) -> (Proc, Lines, String) {
    let mut args = vec![
        "relay",
        "--listen",
        "/ip4/127.0.0.1/tcp/0/ws",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ];
    args.extend_from_slice(extra);
    let (proc, lines) = spawn(&args);
    let ws = lines.next("a /ws listening line", |v| {
        v["listening"]
            .as_str()
            .is_some_and(|a| a.contains("/ws/p2p/16Uiu2"))
    });
    let ws = ws["listening"].as_str().unwrap().to_owned();
    (proc, lines, ws)
}

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

    let (_second, _lines, ws2) = relay(&["--data-dir", dir_arg]);
    assert_eq!(peer(&ws), peer(&ws2), "same identity after restart");
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
    // Key 11's address.
    let id = Command::new(BIN)
        .args(["id", "--key-hex", &format!("0x{:064x}", 11)])
        .output()
        .unwrap();
    let id: Value = serde_json::from_slice(&id.stdout).unwrap();
    assert_eq!(v["sender"], id["address"]);
    assert_eq!(v["from"], id["peer_id"]);
}
