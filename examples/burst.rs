//! Burst benchmark for group channels (issue: group channels, "Speed").
//!
//! `cargo run --release --example burst -- --members 64 --messages 64`
//!
//! Starts a relay and `members` member nodes in this process, connected over real loopback TCP
//! (noise, yamux, gossipsub in anonymous mode), all in one group channel. After a warm-up round
//! that makes sure every mesh has formed, every member publishes `messages` signed envelopes at once;
//! each member's handler records when each message arrives. Prints one JSON line:
//! `{"members","messages","delivered","expected","dropped","duration_ms","msgs_per_s",
//!   "per_node_msgs_per_s","cpu_us_per_delivery","deliveries_per_cpu_s","p50_ms","p99_ms",
//!   "counters"}` where latency is publish → handler, `msgs_per_s` counts deliveries to all
//! handlers per second of the burst and `per_node_msgs_per_s` divides it by the members. All
//! nodes share this machine's cores, so `cpu_us_per_delivery` (process CPU time from the first
//! publish to the last delivery, over deliveries; publishing, relaying, signature checks,
//! validation and dispatch all included) is the figure that says what one node with one core
//! can validate and deliver: `deliveries_per_cpu_s`. Handlers run while the sends are in flight.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
#[path = "support/cpu.rs"]
mod cpu;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::{cell::RefCell, collections::HashMap, rc::Rc, time::Duration};

    use clap::Parser;
    use futures::StreamExt;
    use keep_light::{
        identity::{Address, OperatorKey},
        net::{
            channel::{group_topic, Channel, ChannelConfig, Received, Registry},
            retransmit::Strategy,
            Node, NodeConfig, NodeEvent, NodeHandle, Role,
        },
    };
    use prost::Message;
    use tokio::time::Instant;

    #[derive(Parser)]
    struct Args {
        /// Group size.
        #[arg(long, default_value_t = 64)]
        members: usize,
        /// Messages each member publishes in the burst.
        #[arg(long, default_value_t = 64)]
        messages: usize,
        /// Give up when no message arrives for this many seconds.
        #[arg(long, default_value_t = 10)]
        idle_timeout: u64,
    }

    const WARM_UP: &str = "bench.WarmUp";
    const BURST: &str = "bench.Burst";

    #[derive(Clone, PartialEq, prost::Message)]
    struct Stamp {
        /// Nanoseconds since the benchmark's epoch when it was published.
        #[prost(uint64, tag = "1")]
        sent_ns: u64,
        #[prost(uint64, tag = "2")]
        n: u64,
        #[prost(bytes = "vec", tag = "3")]
        padding: Vec<u8>,
    }

    #[derive(Default)]
    struct Log {
        warm: HashMap<Address, u32>,
        latencies_ns: Vec<u64>,
        last_ns: u64,
    }

    pub fn main() {
        let args = Args::parse();
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let local = tokio::task::LocalSet::new();
        let line = local.block_on(&runtime, run(args));
        println!("{line}");
    }

    async fn run(args: Args) -> serde_json::Value {
        let epoch = Instant::now();
        let since = move || epoch.elapsed().as_nanos() as u64;
        let relay = NodeConfig::new(OperatorKey::generate())
            .with_role(Role::Relay)
            .with_listen(vec!["/ip4/127.0.0.1/tcp/0".parse().expect("literal")]);
        let (relay, mut relay_events) = Node::start(relay).await.expect("relay starts");
        let address = loop {
            if let Some(NodeEvent::Listening { address }) = relay_events.next().await {
                break address;
            }
        };
        // Keep draining the relay's events so its queue never grows.
        tokio::task::spawn_local(async move { while relay_events.next().await.is_some() {} });

        let keys: Vec<OperatorKey> = (0..args.members).map(|_| OperatorKey::generate()).collect();
        let members: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let topic = group_topic(&members);
        let mut nodes: Vec<NodeHandle> = Vec::new();
        let mut channels = Vec::new();
        let mut logs = Vec::new();
        for key in keys {
            let (node, mut events) =
                Node::start(NodeConfig::new(key).with_bootstrap(vec![address.clone()]))
                    .await
                    .expect("member starts");
            tokio::task::spawn_local(async move { while events.next().await.is_some() {} });
            let log: Rc<RefCell<Log>> = Rc::default();
            let mut registry = Registry::new();
            let sink = log.clone();
            registry.register(WARM_UP, move |m: Received<Stamp>| {
                *sink.borrow_mut().warm.entry(m.sender).or_default() += 1;
            });
            let sink = log.clone();
            registry.register(BURST, move |m: Received<Stamp>| {
                let now = since();
                let mut log = sink.borrow_mut();
                log.latencies_ns.push(now.saturating_sub(m.message.sent_ns));
                log.last_ns = now;
            });
            let config = ChannelConfig::new(topic.clone())
                .with_members(members.clone())
                .with_capacity(args.members * args.messages);
            channels.push(
                Channel::open(&node, config, registry)
                    .await
                    .expect("channel"),
            );
            nodes.push(node);
            logs.push(log);
        }

        // Warm-up: everyone hears everyone (retransmitted until then), so the burst measures
        // delivery, not mesh formation.
        for channel in &mut channels {
            let stamp = Stamp {
                sent_ns: 0,
                n: 0,
                padding: Vec::new(),
            };
            let _ = channel
                .send_retransmitted("warm-up", WARM_UP, &stamp, Strategy::EveryTick)
                .await;
        }
        let warm = |logs: &[Rc<RefCell<Log>>]| {
            logs.iter()
                .all(|l| l.borrow().warm.len() == args.members - 1)
        };
        let warm_deadline = Instant::now() + Duration::from_secs(60);
        while !warm(&logs) {
            assert!(
                Instant::now() < warm_deadline,
                "the group did not form within 60 s"
            );
            for channel in &mut channels {
                channel.tick().await;
                channel.drain();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for channel in &mut channels {
            channel.end_context("warm-up");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for channel in &mut channels {
            channel.drain();
        }

        // The burst: every member publishes all its messages at once, and every member's
        // handlers run as messages arrive, while the sends are still going out (latency is
        // publish → handler, not publish → the end of the send phase). The sends go through the
        // node handles, as `Channel::send` does, so the channels are free for `next()`.
        let expected = args.members * args.messages * (args.members - 1);
        let delivered = |logs: &[Rc<RefCell<Log>>]| {
            logs.iter()
                .map(|l| l.borrow().latencies_ns.len())
                .sum::<usize>()
        };
        let cpu_before = super::cpu::cpu_seconds();
        let start = since();
        let sends = nodes.iter().map(|node| {
            let topic = topic.clone();
            async move {
                for n in 0..args.messages {
                    let stamp = Stamp {
                        sent_ns: since(),
                        n: n as u64,
                        padding: vec![0; 128],
                    };
                    let _ = node
                        .publish_envelope(&topic, BURST, stamp.encode_to_vec())
                        .await;
                }
            }
        });
        let receivers = channels
            .iter_mut()
            .map(|channel| async move { while channel.next().await.is_some() {} });
        // Ends the burst at the last delivery (or after `idle_timeout` without one); the CPU
        // time is read at the first look after the last delivery, so the wait for stragglers
        // is not in it.
        let watch = async {
            let mut seen = 0;
            let mut cpu_after = super::cpu::cpu_seconds();
            let mut last_progress = Instant::now();
            while seen < expected
                && last_progress.elapsed() < Duration::from_secs(args.idle_timeout)
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let now_seen = delivered(&logs);
                if now_seen > seen {
                    seen = now_seen;
                    cpu_after = super::cpu::cpu_seconds();
                    last_progress = Instant::now();
                }
            }
            (seen, cpu_after)
        };
        let burst = futures::future::join(futures::future::join_all(sends), watch);
        let ((_, (seen, cpu_after)), _) = match futures::future::select(
            Box::pin(burst),
            Box::pin(futures::future::join_all(receivers)),
        )
        .await
        {
            futures::future::Either::Left(done) => done,
            futures::future::Either::Right(_) => panic!("a channel closed during the burst"),
        };

        let cpu = cpu_after - cpu_before;
        let end = logs
            .iter()
            .map(|l| l.borrow().last_ns)
            .max()
            .unwrap_or(start);
        let seconds = (end.saturating_sub(start)) as f64 / 1e9;
        let mut latencies: Vec<u64> = logs
            .iter()
            .flat_map(|l| l.borrow().latencies_ns.clone())
            .collect();
        latencies.sort_unstable();
        let percentile = |p: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
                .map_or(0.0, |ns| *ns as f64 / 1e6)
        };
        let mut counters: HashMap<String, u64> = HashMap::new();
        for node in nodes.iter().chain(std::iter::once(&relay)) {
            for (reason, n) in node.counters().await {
                *counters.entry(reason).or_default() += n;
            }
        }
        let rate = seen as f64 / seconds.max(1e-9);
        serde_json::json!({
            "members": args.members,
            "messages": args.messages,
            "delivered": seen,
            "expected": expected,
            "dropped": expected - seen,
            "duration_ms": (seconds * 1e3 * 10.0).round() / 10.0,
            "msgs_per_s": rate.round(),
            "per_node_msgs_per_s": (rate / args.members as f64).round(),
            "cpu_us_per_delivery": (cpu / seen.max(1) as f64 * 1e6 * 10.0).round() / 10.0,
            "deliveries_per_cpu_s": (seen as f64 / cpu.max(1e-9)).round(),
            "p50_ms": (percentile(0.5) * 100.0).round() / 100.0,
            "p99_ms": (percentile(0.99) * 100.0).round() / 100.0,
            "counters": counters,
        })
    }
}
