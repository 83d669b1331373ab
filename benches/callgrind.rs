//! Instruction-count driver for `scripts/callgrind.sh` (not a criterion
//! benchmark).
//!
//! `callgrind <impl> <input> [iterations]` builds `iterations` fresh copies of
//! the input (setup, not counted), then decodes them all inside
//! [`redpoll_bench_measured`], the only function whose instructions
//! callgrind collects (`--toggle-collect=redpoll_bench_measured`), together
//! with everything it calls. It prints the numbers of frames and elements
//! decoded, which the script divides the instruction count by.
//!
//! `<impl>` is `redpoll`, `redis-protocol`, `resp-rs` or `redis`; `<input>`
//! is `a`, `b`, `c` or `d` (or the full input name).

use std::process::ExitCode;

use bytes::BytesMut;

#[path = "inputs/mod.rs"]
mod inputs;

use inputs::Input;
use inputs::impls::Impl;

/// The measured region: decodes every buffer, dropping every frame.
#[unsafe(no_mangle)]
#[inline(never)]
fn redpoll_bench_measured(imp: Impl, input: &Input, bufs: &mut Vec<BytesMut>) -> usize {
    let mut frames = 0;
    for buf in bufs.drain(..) {
        frames += imp.decode(input, buf);
    }
    frames
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // Listed by a test runner (`cargo nextest`): this binary holds no tests.
    if raw.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    // `cargo bench` passes `--bench`; ignore flags.
    let args: Vec<&String> = raw.iter().filter(|a| !a.starts_with("--")).collect();
    // Run without arguments (as `cargo test --all-targets` does): check that
    // every implementation decodes every input, then stop.
    if args.is_empty() {
        for input in inputs::all() {
            for imp in Impl::ALL {
                if imp.supports(&input) {
                    inputs::impls::validate(imp, &input);
                }
            }
        }
        println!("callgrind driver: every implementation decodes every input");
        return ExitCode::SUCCESS;
    }
    let (Some(imp), Some(input)) = (
        args.first().and_then(|a| Impl::by_id(a)),
        args.get(1).and_then(|a| inputs::by_name(a)),
    ) else {
        eprintln!("usage: callgrind <redpoll|redis-protocol|resp-rs|redis> <a|b|c|d> [iterations]");
        return ExitCode::from(2);
    };
    let iterations: usize = match args.get(2) {
        Some(n) => n.parse().expect("iterations: a number"),
        None => 10,
    };
    if !imp.supports(&input) {
        println!("skipped: {} does not decode {}", imp.id(), input.name);
        return ExitCode::SUCCESS;
    }
    // Warm the allocator and code paths once, outside the measured region.
    inputs::impls::validate(imp, &input);

    let mut bufs: Vec<BytesMut> = (0..iterations).map(|_| input.bytes.clone()).collect();
    let frames = std::hint::black_box(redpoll_bench_measured(imp, &input, &mut bufs));
    assert_eq!(frames, input.frames * iterations);
    println!(
        "impl={} input={} iterations={iterations} frames={frames} elements={} bytes={}",
        imp.id(),
        input.name,
        input.elements * iterations as u64,
        input.bytes.len() * iterations
    );
    ExitCode::SUCCESS
}
