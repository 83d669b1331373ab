//! Instruction-count driver for the connection machine (not a criterion
//! benchmark): `callgrind_machine [rounds]` runs `rounds` rounds of 16
//! pipelined GETs through `redpoll_core::Client` inside
//! [`redpoll_machine_measured`], the only function callgrind collects
//! (`--toggle-collect=redpoll_machine_measured`), and prints the number of
//! requests, which `scripts/callgrind.sh` divides the count by.
//!
//! Each request is the whole path: encode the command into the output
//! buffer, take the Send effect, copy the reply bytes in, decode the reply,
//! match it to its request, hand out its Response event, drop it.

use std::process::ExitCode;

#[path = "support/machine_loop.rs"]
mod machine_loop;

/// The measured region.
#[unsafe(no_mangle)]
#[inline(never)]
fn redpoll_machine_measured(bench: &mut machine_loop::Bench, rounds: usize) -> usize {
    let mut requests = 0;
    for _ in 0..rounds {
        std::hint::black_box(bench.round());
        requests += machine_loop::DEPTH;
    }
    requests
}

fn main() -> ExitCode {
    // Listed by a test runner (`cargo nextest`): this binary holds no tests.
    if std::env::args().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(10), |a| a.parse())
        .unwrap_or(10);
    let mut bench = machine_loop::Bench::new();
    let requests = redpoll_machine_measured(&mut bench, rounds);
    println!("rounds={rounds} requests={requests}");
    ExitCode::SUCCESS
}
