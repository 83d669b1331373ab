//! The deterministic simulation of the cluster client (testkit's
//! `sim::cluster_world`): seeded runs of `ClusterClient` against simulated
//! cluster nodes (migrations with `MOVED`/`ASK`, gossip lag, failover,
//! nodes joining and leaving, `TRYAGAIN`, `CLUSTERDOWN`, `LOADING`,
//! stalls, dropped connections), reached under several spellings of their
//! address, checking I1, I3, I4, exactly-once and per-key
//! linearizability after every step.
//!
//! - The seeds `SIM_START..SIM_START + SIM_SEEDS` (default `0..2000`) are
//!   split over [`SHARDS`] tests, so that nextest (or the test harness's
//!   threads) runs them in parallel.
//! - `SIM_SEED=n cargo test --test sim_cluster -- replay --nocapture`
//!   replays one seed with its parameters, schedule and a trace of its
//!   last steps (`SIM_TRACE_LINES`, default 400).
//! - `scripts/mutants.sh` checks that the simulation catches the cluster
//!   mutants (`raw_host_node_key`, `redirect_race_to_nothing`).

use redpoll_testkit::sim::cluster_world::{self, ClusterSim};

/// The number of tests the seeds are split over.
const SHARDS: u64 = 4;

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn shard(shard: u64) {
    let start = env("SIM_START").unwrap_or(0);
    let count = env("SIM_SEEDS").unwrap_or(2000);
    let clock = std::time::Instant::now();
    let mut stats = cluster_world::ClusterStats::default();
    let mut failures = Vec::new();
    let mut ran = 0;
    for seed in (start..start + count).filter(|s| s % SHARDS == shard) {
        ran += 1;
        match cluster_world::run(seed) {
            Ok(s) => stats += s,
            Err(failure) => {
                failures.push(failure);
                if failures.len() >= 3 {
                    break;
                }
            }
        }
    }
    eprintln!(
        "shard {shard}: {ran} seeds in {:.1?}: {stats:?}",
        clock.elapsed()
    );
    if let Some(first) = failures.first() {
        let others: Vec<u64> = failures.iter().skip(1).map(|f| f.seed).collect();
        panic!("{first}\n\nother failing seeds of this shard (it stops after 3): {others:?}");
    }
}

#[test]
fn seeds_shard_0() {
    shard(0);
}

#[test]
fn seeds_shard_1() {
    shard(1);
}

#[test]
fn seeds_shard_2() {
    shard(2);
}

#[test]
fn seeds_shard_3() {
    shard(3);
}

/// A run replays exactly: the same seed twice gives the same statistics.
#[test]
fn a_seed_replays_exactly() {
    for seed in 0..16 {
        let first = cluster_world::run(seed);
        let second = cluster_world::run(seed);
        match (first, second) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "seed {seed} did not replay exactly"),
            (Err(a), Err(b)) => {
                assert_eq!(
                    (a.invariant, &a.message, a.at),
                    (b.invariant, &b.message, b.at),
                    "seed {seed} did not replay exactly"
                );
            }
            (a, b) => panic!("seed {seed} did not replay exactly: {a:?} then {b:?}"),
        }
    }
}

/// `SIM_SEED=n cargo test --test sim_cluster -- replay --nocapture`: one
/// seed, with its parameters, schedule and a trace of its last steps. Without
/// `SIM_SEED` it does nothing.
#[test]
fn replay() {
    let Some(seed) = env("SIM_SEED") else {
        return;
    };
    let sim = ClusterSim::new(seed);
    println!("seed {seed}: {:#?}", sim.params());
    println!("schedule: {:?}", cluster_world::schedule(sim.params()));
    let lines = env("SIM_TRACE_LINES").unwrap_or(400) as usize;
    match sim.traced(lines).run() {
        Ok(stats) => println!("seed {seed} passed: {stats:?}"),
        Err(failure) => {
            println!("trace (last steps):");
            for line in &failure.trace {
                println!("  {line}");
            }
            println!("{failure}");
            panic!("seed {seed} failed");
        }
    }
}

/// Seeds that found core bugs, replayed on every run:
///
/// - 779: a request waiting for a new owner's connection (stalled) was
///   pulled back to the old owner by every refresh from a node whose view
///   lagged, whose `MOVED` sent it back: 16 redirects in 150 ms, then
///   `TooManyRedirects` (I3).
/// - 1991: a refresh sent to a node that then died waited out its whole
///   deadline, held by the node's reconnecting client, so the topology
///   stayed stale for seconds after two failovers and reads of the failed
///   primaries' slots failed with connection errors (I3, recovery).
/// - 20843, 25049, 34943, 46592, 49247: failovers left every primary of
///   the topology and every seed dead; only a promoted replica answered,
///   and the refresh never asked replicas, so the topology stayed stale
///   and the requests held by the old primary's reconnecting client never
///   completed (exactly once).
/// - 22798: every primary the client knew had failed over or left, and
///   refreshes asked only the topology's primaries and the seeds, never
///   the replicas (promoted by then): the client never learnt the new
///   topology, and the final reads failed with `Refused` (recovery).
/// - 24811: a request sent by `MOVED` to a new owner that refused (failing
///   over), its client in its reconnect backoff, was pulled back to the old
///   owner by every refresh from a node whose view lagged: 16 redirects,
///   then `TooManyRedirects` (I3; 779's case, with a backoff instead of a
///   stalled connect).
#[test]
fn regressions() {
    for seed in [779, 1991, 20843, 22798, 24811, 25049, 34943, 46592, 49247] {
        if let Err(failure) = cluster_world::run(seed) {
            panic!("{failure}");
        }
    }
}
