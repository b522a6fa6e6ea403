//! Browser round-trip harness (run by `scripts/bench-browser.sh`, not by the test suite).
//!
//! In headless Chromium against a loopback relay with a native echo node behind it, measures:
//! - `connect_ms`: from `Node::start` to the first relay connection;
//! - `page_to_connect_ms`: from navigation start (page load + wasm instantiation included) to it;
//! - the round trip of a 256-byte message browser → relay → native echo → relay → browser,
//!   sequential, after a warm-up: median, p99, mean and max over `ROUNDS` messages, then the
//!   same over `ROUNDS` more from the thousandth on (`steady_*`, the optimised wasm code).
//!
//! Each phase's five slowest rounds are listed as `[round, ms, memory grew, ms after the
//! first round's start]`.
//!
//! Prints one JSON line (`KEEP_LIGHT_BENCH {...}`) to the console. Settings come at build time
//! like the browser test: `KEEP_LIGHT_TEST_RELAY`, `KEEP_LIGHT_TEST_NATIVE_PEER`,
//! `KEEP_LIGHT_TEST_TOPIC`.
#![cfg(target_arch = "wasm32")]

use std::time::Duration;

use futures::StreamExt;
use keep_light::{
    identity::OperatorKey,
    net::{Node, NodeConfig, NodeEvent},
    platform,
};
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

#[path = "../tests/support/browser.rs"]
mod support;
use support::{echo_of, Peers};

wasm_bindgen_test_configure!(run_in_browser);

const WARM_UP: usize = 20;
const ROUNDS: usize = 300;
/// The first round of the steady phase (about 1.5 s after the first).
const STEADY: usize = 1_000;
const SIZE: usize = 256;

fn performance_now() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| js_sys::Reflect::get(&p, &"now".into()).ok().map(|f| (p, f)))
        .and_then(|(p, f)| js_sys::Function::from(f).call0(&p).ok())
        .and_then(|v| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// The wasm module's memory in bytes: a round during which it grew paid for `memory.grow`
/// (and the JS views wasm-bindgen then makes again).
fn memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

fn payload(round: usize) -> Vec<u8> {
    let mut text = format!("rtt-{round:06}-").into_bytes();
    text.resize(SIZE, b'x');
    text
}

#[wasm_bindgen_test]
async fn round_trip_through_relay_and_native_echo() {
    let Peers {
        relay,
        native,
        topic,
        ..
    } = Peers::from_build_env();

    let started = platform::now();
    let config = NodeConfig::new(OperatorKey::generate())
        .with_bootstrap(vec![relay.into()])
        .with_topics(vec![topic.into()]);
    let (node, mut events) = Node::start(config).await.expect("node starts");
    let built_ms = started.elapsed().as_secs_f64() * 1e3;
    loop {
        if let NodeEvent::Connected { .. } = events.next().await.expect("node running") {
            break;
        }
    }
    let connect_ms = started.elapsed().as_secs_f64() * 1e3;
    let page_to_connect_ms = performance_now();

    // Until the mesh carries our messages both ways, publish and wait briefly.
    let mut ready = false;
    for attempt in 0..100 {
        let probe = payload(1_000_000 + attempt);
        let _ = node.publish(topic, probe.clone()).await;
        if echo_of(&mut events, native, &probe, Duration::from_millis(200)).await {
            ready = true;
            break;
        }
    }
    assert!(ready, "the echo node never answered");
    let mesh_ready_ms = started.elapsed().as_secs_f64() * 1e3;

    // Rounds WARM_UP.. are the first after start ("rtt_*"); those from STEADY on come after
    // more than a second of traffic ("steady_rtt_*"), once Chromium has compiled the hot wasm
    // functions with its optimising tier (before that they run in its baseline compiler's code,
    // and tier-up competes for the cores: most of the first rounds' tail).
    let (mut cold, mut steady) = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    // (round, ms, whether the wasm memory grew during it, when it started: ms after the first)
    let (mut slowest, mut cold_slowest) = (Vec::new(), Vec::new());
    let started_at = performance_now();
    for round in 0..STEADY + ROUNDS {
        let body = payload(round);
        let memory = memory_bytes();
        let sent = performance_now();
        node.publish(topic, body.clone()).await.expect("publish");
        assert!(
            echo_of(&mut events, native, &body, Duration::from_secs(5)).await,
            "round {round} lost"
        );
        let ms = performance_now() - sent;
        let grew = memory_bytes() > memory;
        if (WARM_UP..WARM_UP + ROUNDS).contains(&round) {
            cold.push(ms);
            cold_slowest.push((round, ms, grew, sent - started_at));
        } else if round >= STEADY {
            steady.push(ms);
            slowest.push((round, ms, grew, sent - started_at));
        }
    }
    // The steady phase's slowest rounds: the same rounds in every run point at something
    // the traffic itself triggers, not at the machine.
    let top = |rounds: &mut Vec<(usize, f64, bool, f64)>| {
        rounds.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top: Vec<String> = rounds
            .iter()
            .take(5)
            .map(|(round, ms, grew, at)| format!("[{round},{ms:.2},{grew},{at:.0}]"))
            .collect();
        top.join(",")
    };
    let slowest = top(&mut slowest);
    let cold_slowest = top(&mut cold_slowest);
    let stats = |samples: &mut Vec<f64>| {
        samples.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        (pct(0.5), pct(0.99), mean, samples[samples.len() - 1])
    };
    let (p50, p99, mean, max) = stats(&mut cold);
    let (steady_p50, steady_p99, _, steady_max) = stats(&mut steady);
    let line = format!(
        r#"KEEP_LIGHT_BENCH {{"built_ms":{built_ms:.1},"connect_ms":{connect_ms:.1},"page_to_connect_ms":{page_to_connect_ms:.1},"mesh_ready_ms":{mesh_ready_ms:.1},"rounds":{ROUNDS},"size":{SIZE},"rtt_p50_ms":{p50:.2},"rtt_p99_ms":{p99:.2},"rtt_mean_ms":{mean:.2},"rtt_max_ms":{max:.2},"steady_rtt_p50_ms":{steady_p50:.2},"steady_rtt_p99_ms":{steady_p99:.2},"steady_rtt_max_ms":{steady_max:.2},"steady_slowest_rounds_ms":[{slowest}],"slowest_rounds_ms":[{cold_slowest}]}}"#
    );
    web_sys::console::log_1(&line.into());
    node.shutdown().await;
}
