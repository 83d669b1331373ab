//! The connection machine alone, no network: pipelined `GET`s with 16 in
//! flight, bytes in → replies out. Each iteration sends 16 GETs through
//! `Client::send`, takes the one `Send` effect, feeds the 16 replies as one
//! read and drains the 16 `Response` events.
//!
//! Run: `cargo bench --bench machine`. The instruction count per request is
//! measured by `scripts/callgrind.sh` through `benches/support/machine_loop.rs`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

#[path = "support/machine_loop.rs"]
mod machine_loop;

fn pipelined_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("machine");
    group.throughput(Throughput::Elements(machine_loop::DEPTH as u64));
    let mut bench = machine_loop::Bench::new();
    group.bench_function("pipelined_get_16", |b| {
        b.iter(|| black_box(bench.round()));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(3));
    targets = pipelined_get
}
criterion_main!(benches);
