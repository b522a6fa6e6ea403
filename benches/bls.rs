//! Native BLS benchmarks: `cargo bench --bench bls`. The cases are in `support/bls_cases.rs`,
//! shared with the browser harness `crypto_wasm.rs`.

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/bls_cases.rs"]
mod bls_cases;

fn bls(c: &mut Criterion) {
    let mut group = c.benchmark_group("bls");
    for (name, mut operation) in bls_cases::cases() {
        group.bench_function(name, |b| b.iter(&mut operation));
    }
    group.finish();
}

criterion_group!(benches, bls);
criterion_main!(benches);
