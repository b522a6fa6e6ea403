//! Native identity benchmarks: `cargo bench --bench identity`. Cases in
//! `support/identity_cases.rs`, shared with the browser harness `crypto_wasm.rs`.

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/identity_cases.rs"]
mod identity_cases;

fn identity(c: &mut Criterion) {
    let mut group = c.benchmark_group("identity");
    // Keystore decryption takes about a second per run: few samples are enough.
    group.sample_size(10);
    for (name, mut operation) in identity_cases::cases() {
        group.bench_function(name, |b| b.iter(&mut operation));
    }
    group.finish();
}

criterion_group!(benches, identity);
criterion_main!(benches);
