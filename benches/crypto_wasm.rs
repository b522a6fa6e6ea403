//! Crypto timings in the browser (run by `scripts/bench-crypto.sh`, not by the test suite): the
//! cases of `support/bls_cases.rs`, `support/identity_cases.rs` and `support/dkg_cases.rs` (one
//! member's work per DKG phase, 64/33) in headless Chromium, release build. Each case runs for ≥ 1 s (or ≥ 5 times); each test prints one JSON line
//! `KEEP_LIGHT_BENCH {"case":{"median_ms","mean_ms","runs"},…}`.
#![cfg(target_arch = "wasm32")]

use keep_light::platform;
use wasm_bindgen_test::*;

#[path = "support/bls_cases.rs"]
mod bls_cases;
#[path = "support/dkg_cases.rs"]
mod dkg_cases;
#[path = "support/identity_cases.rs"]
mod identity_cases;

wasm_bindgen_test_configure!(run_in_browser);

fn time_cases(cases: Vec<bls_cases::Case>) {
    let mut report = serde_json::Map::new();
    for (name, mut operation) in cases {
        operation(); // warm-up
        let mut times = Vec::new();
        let started = platform::now();
        while times.len() < 5 || (started.elapsed().as_secs_f64() < 1.0 && times.len() < 2000) {
            let at = platform::now();
            operation();
            times.push(at.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        report.insert(
            name.into(),
            serde_json::json!({
                "median_ms": (times[times.len() / 2] * 1e3).round() / 1e3,
                "mean_ms": (mean * 1e3).round() / 1e3,
                "runs": times.len(),
            }),
        );
    }
    wasm_bindgen_test::console_log!("KEEP_LIGHT_BENCH {}", serde_json::Value::Object(report));
}

#[wasm_bindgen_test]
fn bls_in_the_browser() {
    time_cases(bls_cases::cases());
}

#[wasm_bindgen_test]
fn identity_in_the_browser() {
    time_cases(identity_cases::cases());
}

#[wasm_bindgen_test]
fn dkg_in_the_browser() {
    time_cases(dkg_cases::cases());
}
