//! Real `keep-light` processes for the integration tests (`tests/cli.rs`,
//! `tests/beacon_processes.rs`): start the binary, read its JSON lines, stop it.
#![allow(dead_code)] // each test crate uses a part

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdout, Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_keep-light");

/// Reads JSON lines from a child's stdout on a thread; `next` waits up to 20 s for a match.
pub struct Lines(pub mpsc::Receiver<Value>);

impl Lines {
    pub fn new(stdout: ChildStdout) -> Self {
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

    /// Every line that arrives within `time`.
    pub fn during(&self, time: Duration) -> Vec<Value> {
        let until = std::time::Instant::now() + time;
        let mut lines = Vec::new();
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match self.0.recv_timeout(left) {
                Ok(v) => lines.push(v),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    thread::sleep(left);
                    break;
                }
            }
        }
        lines
    }

    pub fn next(&self, what: &str, pick: impl Fn(&Value) -> bool) -> Value {
        self.next_within(what, Duration::from_secs(20), pick)
    }

    /// [`Lines::next`] waiting up to `time` for each line.
    pub fn next_within(&self, what: &str, time: Duration, pick: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.0.recv_timeout(time) {
                Ok(v) if pick(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with piped stdin and stdout.
pub fn start(args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary runs")
}

pub fn spawn(args: &[&str]) -> (Proc, Lines) {
    let mut child = start(args);
    let lines = Lines::new(child.stdout.take().unwrap());
    (Proc(child), lines)
}

pub fn relay(extra: &[&str]) -> (Proc, Lines, String) {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops a child with SIGTERM and waits for it.
pub fn terminate(proc: &mut Proc) {
    Command::new("kill")
        .args(["-TERM", &proc.0.id().to_string()])
        .status()
        .unwrap();
    proc.0.wait().unwrap();
}
