#!/usr/bin/env bash
# The mutation check of the simulation: does it have teeth? Each mutant is
# redpoll-core with one deliberate bug, compiled in only under
# `--cfg redpoll_mutant="<name>"`; the simulation must catch every one of
# them within the CI seed budget.
#
#     scripts/mutants.sh [SEEDS] [START_SEED]     (defaults: 2000 from 0)
#
# For the unmutated core (which must pass every seed) and then for each
# mutant, it runs the seeds in order (release build, every core) and stops
# at the lowest failing seed; it reports, per mutant, that seed, how many
# seeds it took, and the invariant that caught it. It fails when the
# unmutated core fails or when a mutant survives the budget.
#
# Mutants (each a `#[cfg(redpoll_mutant = "...")]` block in core/src):
#   skip_close_on_handshake_deadline  conn: the handshake deadline passes
#                                     without the socket's Close (I1)
#   give_up_after_denied              reconnect: a security error (DENIED,
#                                     WRONGPASS) gives up, whatever the phase (I5)
#   no_tombstone_on_timeout           conn: a request timed out in flight
#                                     leaves no tombstone, so its late reply
#                                     goes to the next request (own reply)
#   drop_held_on_reconnect            client: requests held during the
#                                     backoff are dropped on reconnect
#                                     (exactly once)
#   spend_retry_on_stale              conn: the requests gated behind a
#                                     probe that found the connection dead
#                                     count as written: each spends a
#                                     retry, or fails (I2 retries)
#   skip_probe                        pool: the probe rule is skipped, a
#                                     quiet connection is handed out as it
#                                     is (I2 liveness)
#   raw_host_node_key                 cluster/node: a host name's NodeKey is
#                                     the raw string, no canonical form or
#                                     alias (I4)
#   redirect_race_to_nothing          cluster/client: a MOVED/ASK while a
#                                     refresh is pending, or a refresh that
#                                     moved a request's node, drops the
#                                     request (I3, exactly once)
#
# The cluster mutants run the cluster simulation
# (sim::cluster_world::tests::cluster_sweep_from_env, the engine of
# tests/sim_cluster.rs); the others the standalone one. The unmutated core
# must pass both.
#
# Each mutant builds in its own target directory (RUSTFLAGS changes rebuild
# everything), under $MUTANTS_TARGET_DIR (default target/mutants), so a
# second run is incremental.
#
# Environment: SIM_PROFILE (full, the default, or shared), SIM_THREADS,
# MUTANTS (space-separated names, to run only some).
set -Eeuo pipefail

cd "$(dirname "$0")/.."

SEEDS="${1:-2000}"
START="${2:-0}"
case "$SEEDS$START" in
    *[!0-9]*) echo "usage: $0 [SEEDS] [START_SEED]" >&2; exit 2 ;;
esac
ALL_MUTANTS="skip_close_on_handshake_deadline give_up_after_denied no_tombstone_on_timeout drop_held_on_reconnect spend_retry_on_stale skip_probe raw_host_node_key redirect_race_to_nothing"
CLUSTER_MUTANTS=" raw_host_node_key redirect_race_to_nothing "
read -r -a MUTANT_LIST <<<"${MUTANTS:-$ALL_MUTANTS}"
TARGETS="${MUTANTS_TARGET_DIR:-target/mutants}"
CHECK_CFG="--check-cfg=cfg(redpoll_mutant,values(\"${ALL_MUTANTS// /\",\"}\"))"
LOGS="$TARGETS/logs"
mkdir -p "$LOGS"

# Runs the sweep for mutant $1 ("none" for the unmutated core) with the
# engine $2 (default: the standalone simulation's); prints the SIM_RESULT
# line.
sweep() {
    local name="$1" engine="${2:-sim::tests::sweep_from_env}" flags="$CHECK_CFG"
    local log="$LOGS/$name${2:+-cluster}.log"
    if [ "$name" != none ]; then
        flags="$flags --cfg redpoll_mutant=\"$name\""
    fi
    RUSTFLAGS="$flags" CARGO_TARGET_DIR="$TARGETS/$name" \
        SIM_SEEDS="$SEEDS" SIM_START="$START" SIM_STOP_AT_FIRST=1 \
        cargo test --release -p redpoll-testkit --lib "$engine" -- \
        --ignored --exact --nocapture >"$log" 2>&1 || true
    grep -m1 '^SIM_RESULT' "$log" || {
        echo "no SIM_RESULT for $name: the build or the run broke; see $log" >&2
        tail -n 30 "$log" >&2
        exit 1
    }
}

CLUSTER_ENGINE=sim::cluster_world::tests::cluster_sweep_from_env

# The engine of mutant $1.
engine_of() {
    case "$CLUSTER_MUTANTS" in
        *" $1 "*) echo "$CLUSTER_ENGINE" ;;
        *) echo "" ;;
    esac
}

field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$2"; }

echo "mutation check: seeds $START..$((START + SEEDS)), ${SIM_PROFILE:-full} profile"
echo
echo "--- the unmutated core"
# Each simulation the selected mutants need.
standalone=0 cluster=0
for m in "${MUTANT_LIST[@]}"; do
    if [ -n "$(engine_of "$m")" ]; then cluster=1; else standalone=1; fi
done
result="SIM_RESULT failures=0 (standalone not needed)"
cluster_result="SIM_RESULT failures=0 (cluster not needed)"
if [ "$standalone" = 1 ]; then
    result="$(sweep none)"
    echo "$result"
fi
if [ "$cluster" = 1 ]; then
    cluster_result="$(sweep none "$CLUSTER_ENGINE")"
    echo "$cluster_result"
fi
if [ "$(field failures "$result")" != 0 ] || [ "$(field failures "$cluster_result")" != 0 ]; then
    echo >&2
    echo "The unmutated core already fails (see $LOGS/none*.log): fix that first, or" >&2
    echo "check the mutants against a profile that passes (SIM_PROFILE=shared)." >&2
    exit 1
fi

survivors=0
table=""
for m in "${MUTANT_LIST[@]}"; do
    echo
    echo "--- mutant $m"
    result="$(sweep "$m" "$(engine_of "$m")")"
    echo "$result"
    first="$(field first_failing_seed "$result")"
    if [ "$first" = none ]; then
        survivors=$((survivors + 1))
        table+="$(printf '%-34s SURVIVED %s seeds' "$m" "$SEEDS")"$'\n'
    else
        invariant="$(sed -n 's/.*invariant=Some("\(.*\)") seconds=.*/\1/p' <<<"$result")"
        table+="$(printf '%-34s caught by seed %-6s (%s seeds): %s' "$m" "$first" "$((first - START + 1))" "$invariant")"$'\n'
    fi
done

echo
echo "=============================================================================="
printf '%s' "$table"
echo "=============================================================================="
echo "logs: $LOGS/"
if [ "$survivors" -gt 0 ]; then
    echo "$survivors mutant(s) survived $SEEDS seeds: the simulation misses a bug class" >&2
    exit 1
fi
