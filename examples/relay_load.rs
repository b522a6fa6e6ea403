//! Relay load harness (issue: connection management, "Speed").
//!
//! `cargo build --release --bin keep-light && cargo run --release --example relay_load -- --clients 1000`
//!
//! Runs the real relay binary (`target/release/keep-light relay`, or `--relay-bin`) as its own
//! process and connects `clients` native member nodes from this process to its WebSocket
//! address (noise, yamux, gossipsub: what a tab speaks), all in one topic. Then one client
//! publishes `messages` messages and every other client counts what it receives. Prints one JSON
//! line: `{"clients","connected","relay_rss_before_kib","relay_rss_after_kib",
//! "relay_kib_per_connection","connect_ms","messages","delivered","expected","fanout_ms",
//! "fanout_deliveries_per_s"}`. Memory per connection is the relay's resident set growth over
//! the connected clients; the fan-out rate is deliveries to all clients per second, with the
//! clients and the relay sharing this machine's cores.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::{
        cell::Cell,
        io::{BufRead, BufReader},
        path::PathBuf,
        process::{Command, Stdio},
        rc::Rc,
        time::Duration,
    };

    use clap::Parser;
    use futures::StreamExt;
    use keep_light::{
        identity::OperatorKey,
        net::{Node, NodeConfig, NodeEvent, NodeHandle},
    };
    use tokio::time::Instant;

    #[derive(Parser)]
    struct Args {
        /// Client nodes to connect.
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        /// Messages published by one client for the fan-out measure.
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// Clients started at once.
        #[arg(long, default_value_t = 50)]
        batch: usize,
        /// The relay binary (default: `keep-light` next to this example's directory).
        #[arg(long)]
        relay_bin: Option<PathBuf>,
    }

    const TOPIC: &str = "keep-light/load/1";

    pub fn main() {
        let args = Args::parse();
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let local = tokio::task::LocalSet::new();
        let line = local.block_on(&runtime, run(args));
        println!("{line}");
    }

    /// Resident set size of process `pid` in KiB (Linux `/proc/PID/status`).
    fn rss_kib(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    async fn run(args: Args) -> serde_json::Value {
        let bin = args.relay_bin.clone().unwrap_or_else(|| {
            let exe = std::env::current_exe().expect("own path");
            exe.parent()
                .and_then(|examples| examples.parent())
                .expect("target/<profile>/examples")
                .join("keep-light")
        });
        let mut relay = Command::new(&bin)
            // Every client comes from 127.0.0.1: lift the per-address shares above the load.
            .args(["relay", "--listen", "/ip4/127.0.0.1/tcp/0/ws"])
            .args(["--max-pending-per-ip", "4096", "--max-per-ip", "4096"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (build it: cargo build --release --bin keep-light)",
                    bin.display()
                )
            });
        let pid = relay.id();
        let mut stdout = BufReader::new(relay.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("relay prints its address");
        let address = serde_json::from_str::<serde_json::Value>(&line).expect("JSON")["listening"]
            .as_str()
            .expect("a listening line")
            .to_owned();
        // Keep reading the relay's stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in stdout.lines() {});
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = rss_kib(pid);

        let connected = Rc::new(Cell::new(0usize));
        let delivered = Rc::new(Cell::new(0usize));
        let last_delivery = Rc::new(Cell::new(None::<Instant>));
        let mut clients: Vec<NodeHandle> = Vec::new();
        let started = Instant::now();
        for batch in (0..args.clients).collect::<Vec<_>>().chunks(args.batch) {
            let target = clients.len() + batch.len();
            for _ in batch {
                let config = NodeConfig::new(OperatorKey::generate())
                    .with_bootstrap(vec![address.clone()])
                    .with_topics(vec![TOPIC.into()]);
                let (node, mut events) = Node::start(config).await.expect("client starts");
                let (connected, delivered, last) =
                    (connected.clone(), delivered.clone(), last_delivery.clone());
                tokio::task::spawn_local(async move {
                    while let Some(event) = events.next().await {
                        match event {
                            NodeEvent::Connected { .. } => connected.set(connected.get() + 1),
                            NodeEvent::Disconnected { .. } => connected.set(connected.get() - 1),
                            NodeEvent::Message { .. } => {
                                delivered.set(delivered.get() + 1);
                                last.set(Some(Instant::now()));
                            }
                            _ => {}
                        }
                    }
                });
                clients.push(node);
            }
            // Let the batch finish its handshakes before the next (the relay bounds pending ones).
            let deadline = Instant::now() + Duration::from_secs(60);
            while connected.get() < target && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let connect_ms = started.elapsed().as_millis();
        // Subscriptions and meshes settle over a few heartbeats.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_after = rss_kib(pid);
        let connected_now = connected.get();

        let publisher = &clients[0];
        let payload = vec![b'x'; 256];
        let first = Instant::now();
        for _ in 0..args.messages {
            let mut sent = false;
            for _ in 0..100 {
                if publisher.publish(TOPIC, payload.clone()).await.is_ok() {
                    sent = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(sent, "the publisher never found a peer in the topic");
        }
        let expected = args.messages * (args.clients - 1);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut quiet_since = Instant::now();
        let mut seen = 0;
        while delivered.get() < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if delivered.get() != seen {
                seen = delivered.get();
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
        let fanout = last_delivery
            .get()
            .map_or(Duration::ZERO, |last| last.saturating_duration_since(first));
        let _ = relay.kill();
        let _ = relay.wait();
        let per_connection =
            (rss_after.saturating_sub(rss_before)) as f64 / connected_now.max(1) as f64;
        serde_json::json!({
            "clients": args.clients,
            "connected": connected_now,
            "relay_rss_before_kib": rss_before,
            "relay_rss_after_kib": rss_after,
            "relay_kib_per_connection": (per_connection * 10.0).round() / 10.0,
            "connect_ms": connect_ms,
            "messages": args.messages,
            "delivered": delivered.get(),
            "expected": expected,
            "fanout_ms": fanout.as_millis(),
            "fanout_deliveries_per_s": (delivered.get() as f64 / fanout.as_secs_f64().max(1e-9)).round(),
        })
    }
}
