#!/usr/bin/env bash
# The simulation soak: any number of seeds of the deterministic simulation
# (testkit's `sim`), in release mode, on every core.
#
#     scripts/soak.sh [N] [START_SEED]        (defaults: 100000 seeds from 0)
#
# The standalone simulation first, then the cluster simulation
# (`sim::cluster_world`, the engine of tests/sim_cluster.rs) over the same
# seeds; SOAK=standalone or SOAK=cluster runs only one of them.
#
# It prints one SIM_FAILURE line per failing seed, a summary (SIM_RESULT),
# the statistics and coverage of the runs, and, for the lowest failing seed,
# the failure with the command that replays it exactly and its smallest
# fault schedule. It fails when any seed fails.
#
# Environment:
#   SIM_PROFILE        full (default) or shared (no leases, no blocking
#                      commands: the shared connection only)
#   SIM_THREADS        worker threads (default: every core)
#   SIM_STOP_AT_FIRST  1: stop once the lowest failing seed is known
#   CARGO_TARGET_DIR   where to build (default: target/)
set -Eeuo pipefail

cd "$(dirname "$0")/.."

N="${1:-100000}"
START="${2:-0}"
case "$N$START" in
    *[!0-9]*) echo "usage: $0 [N] [START_SEED]" >&2; exit 2 ;;
esac

WHICH="${SOAK:-both}"
case "$WHICH" in
    both | standalone | cluster) ;;
    *) echo "SOAK must be both, standalone or cluster" >&2; exit 2 ;;
esac

if [ "$WHICH" != cluster ]; then
    echo "soak: standalone, seeds $START..$((START + N)) (${SIM_PROFILE:-full} profile), release build"
    SIM_SEEDS="$N" SIM_START="$START" \
        cargo test --release -p redpoll-testkit --lib sim::tests::sweep_from_env -- \
        --ignored --exact --nocapture
fi
if [ "$WHICH" != standalone ]; then
    echo "soak: cluster, seeds $START..$((START + N)), release build"
    SIM_SEEDS="$N" SIM_START="$START" \
        cargo test --release -p redpoll-testkit --lib sim::cluster_world::tests::cluster_sweep_from_env -- \
        --ignored --exact --nocapture
fi
