//! One member's per-phase DKG work, 64 members, T = 33: `cargo bench --bench dkg`. The cases are
//! in `support/dkg_cases.rs`. The whole DKG of a group is `examples/dkg.rs`.

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/dkg_cases.rs"]
mod dkg_cases;

fn dkg(c: &mut Criterion) {
    let mut group = c.benchmark_group("dkg");
    group.sample_size(10);
    for (name, mut operation) in dkg_cases::cases() {
        group.bench_function(name, |b| b.iter(&mut operation));
    }
    group.finish();
}

criterion_group!(benches, dkg);
criterion_main!(benches);
