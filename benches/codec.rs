//! RESP decode and encode benchmarks: redpoll side by side with its peers
//! (`redis-protocol`, `resp-rs`, `redis`) in one criterion run.
//!
//! Run with `cargo bench --bench codec`; see BENCHMARKS.md for the inputs,
//! the methodology and the latest figures.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

#[path = "inputs/mod.rs"]
mod inputs;

use inputs::impls::{self, Impl};

fn decode(c: &mut Criterion) {
    for input in inputs::all() {
        let mut group = c.benchmark_group(format!("decode/{}", input.name));
        group.throughput(Throughput::Elements(input.elements));
        // Inputs over 1 MiB, (c), are cloned one per timed iteration, so that
        // a batch does not hold hundreds of megabytes.
        let batch = if input.bytes.len() > 1 << 20 {
            BatchSize::PerIteration
        } else {
            BatchSize::SmallInput
        };
        for imp in Impl::ALL {
            if !imp.supports(&input) {
                continue;
            }
            impls::validate(imp, &input);
            group.bench_function(imp.id(), |b| {
                // The copy into a fresh BytesMut is setup, outside the timing.
                b.iter_batched(|| input.bytes.clone(), |buf| imp.decode(&input, buf), batch);
            });
        }
        group.finish();
    }
}

fn encode(c: &mut Criterion) {
    let cmds = inputs::set_commands();

    // The output buffer is reused (cleared) across iterations, as a client
    // reuses its write buffer, so its allocation is not measured for anyone.
    let mut group = c.benchmark_group("encode/set_10k");
    group.throughput(Throughput::Elements(cmds.len() as u64));
    group.bench_function(Impl::Redpoll.id(), |b| {
        let mut dst = BytesMut::new();
        b.iter(|| {
            dst.clear();
            impls::encode_set_redpoll(&mut dst, black_box(&cmds));
            black_box(dst.len())
        });
    });
    group.bench_function(Impl::RedisProtocol.id(), |b| {
        let mut dst = BytesMut::new();
        b.iter(|| {
            dst.clear();
            impls::encode_set_redis_protocol(&mut dst, black_box(&cmds));
            black_box(dst.len())
        });
    });
    group.bench_function(Impl::Redis.id(), |b| {
        let mut dst = Vec::new();
        b.iter(|| {
            dst.clear();
            impls::encode_set_redis(&mut dst, black_box(&cmds));
            black_box(dst.len())
        });
    });
    group.finish();

    // Re-encoding the frames of input (d), decoded once by each implementation
    // into its own frame type. The redis crate's `Value` has no RESP encoder.
    let input = inputs::d_resp3_mix();
    let mut group = c.benchmark_group("encode/d_resp3_mix");
    group.throughput(Throughput::Elements(input.elements));

    let frames = decode_all_redpoll(&input);
    group.bench_function(Impl::Redpoll.id(), |b| {
        let mut dst = BytesMut::new();
        b.iter(|| {
            dst.clear();
            for frame in black_box(&frames) {
                frame.encode(&mut dst);
            }
            black_box(dst.len())
        });
    });

    let frames = decode_all_redis_protocol(&input);
    group.bench_function(Impl::RedisProtocol.id(), |b| {
        let mut dst = BytesMut::new();
        b.iter(|| {
            dst.clear();
            for frame in black_box(&frames) {
                redis_protocol::resp3::encode::complete::extend_encode(&mut dst, frame, false)
                    .expect("redis-protocol: encode error");
            }
            black_box(dst.len())
        });
    });

    // resp-rs only serializes a frame into a new `Bytes` of its own.
    let frames = decode_all_resp_rs(&input);
    group.bench_function(Impl::RespRs.id(), |b| {
        b.iter(|| {
            for frame in black_box(&frames) {
                black_box(resp_rs::resp3::frame_to_bytes(frame));
            }
        });
    });
    group.finish();
}

fn decode_all_redpoll(input: &inputs::Input) -> Vec<redpoll_core::resp::Frame> {
    let mut buf = input.bytes.clone();
    let mut decoder = redpoll_core::resp::Decoder::new();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf).expect("redpoll: decode error") {
        frames.push(frame);
    }
    assert_eq!(frames.len(), input.frames);
    frames
}

fn decode_all_redis_protocol(
    input: &inputs::Input,
) -> Vec<redis_protocol::resp3::types::BytesFrame> {
    let mut buf = input.bytes.clone();
    let mut frames = Vec::new();
    while let Some((frame, _, _)) =
        redis_protocol::resp3::decode::complete::decode_bytes_mut(&mut buf).expect("decode error")
    {
        frames.push(frame);
    }
    assert_eq!(frames.len(), input.frames);
    frames
}

fn decode_all_resp_rs(input: &inputs::Input) -> Vec<resp_rs::resp3::Frame> {
    let mut rest = input.bytes.clone().freeze();
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let (frame, tail) = resp_rs::resp3::parse_frame(rest).expect("parse error");
        frames.push(frame);
        rest = tail;
    }
    assert_eq!(frames.len(), input.frames);
    frames
}

/// Modest times: the whole run takes a few minutes on a 2-core machine.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, encode
}
criterion_main!(benches);
