#!/usr/bin/env bash
# The one test command of redpoll, run by CI (.ci/run) and by developers:
#
#     scripts/test.sh
#
# Steps, each announced by a banner, stopping at the first failure:
#
#   1. redis-server / redis-tools from apt when redis-server is missing
#      (the integration tests start their own servers on loopback ports)
#   2. cargo fmt --check (main workspace, ci/nostd-check, fuzz)
#   3. cargo clippy -D warnings (main workspace, all targets; ci/nostd-check)
#   4. the no_std proof: ci/nostd-check must build with redpoll-core's default
#      features off, and must FAIL with them on (so the proof has teeth)
#   5. the tests: cargo nextest (or cargo test without it), then the doctests
#   6. a bounded fuzz run of the decoder (scripts/fuzz.sh, FUZZ_SECONDS,
#      default 60), on nightly with AddressSanitizer, or with a WARNING on the
#      default toolchain without it; skipped, with a WARNING, only if
#      cargo-fuzz is missing and cannot be installed
#
# Environment: FUZZ_SECONDS (default 60).
set -Eeuo pipefail

cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step_name=""
step_start=0
total_start=$SECONDS

banner() {
    step_name="$1"
    step_start=$SECONDS
    echo
    echo "=============================================================================="
    echo "=== $step_name"
    echo "=============================================================================="
}

step_done() {
    echo "--- ok: $step_name ($((SECONDS - step_start)) s)"
}

on_error() {
    local status=$?
    echo >&2
    echo "##############################################################################" >&2
    echo "### FAILED: ${step_name:-setup} (exit $status, after $((SECONDS - total_start)) s)" >&2
    echo "##############################################################################" >&2
    exit "$status"
}
trap on_error ERR

warn() {
    echo >&2
    echo "******************************************************************************" >&2
    echo "*** WARNING: $*" >&2
    echo "******************************************************************************" >&2
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo "$@"
    fi
}

# ---------------------------------------------------------------------------
banner "1/6 redis-server"
if command -v redis-server >/dev/null 2>&1; then
    echo "found: $(redis-server --version)"
else
    echo "redis-server is missing: installing redis-server and redis-tools with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        redis-server redis-tools
    echo "installed: $(redis-server --version)"
fi
step_done

# ---------------------------------------------------------------------------
banner "2/6 cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path ci/nostd-check/Cargo.toml --check
cargo fmt --manifest-path fuzz/Cargo.toml --check
step_done

# ---------------------------------------------------------------------------
banner "3/6 cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path ci/nostd-check/Cargo.toml --release -- -D warnings
step_done

# ---------------------------------------------------------------------------
banner "4/6 no_std proof (ci/nostd-check)"
cargo build --manifest-path ci/nostd-check/Cargo.toml --release
echo "ok: redpoll-core builds into a no_std staticlib"
# The same crate with std switched on must hit the duplicate `panic_impl` lang
# item; if it builds, the proof above would no longer notice std creeping in.
# A separate target dir keeps the two feature sets from rebuilding each other.
negative_log="$(mktemp)"
if cargo build --manifest-path ci/nostd-check/Cargo.toml --release \
    --features redpoll-core/std \
    --target-dir ci/nostd-check/target/with-std >"$negative_log" 2>&1; then
    cat "$negative_log" >&2
    rm -f "$negative_log"
    echo "the no_std proof built with redpoll-core's std feature ON: it can no longer detect std" >&2
    false
fi
if ! grep -q "duplicate lang item" "$negative_log"; then
    cat "$negative_log" >&2
    rm -f "$negative_log"
    echo "the std build of the no_std proof failed, but not with 'duplicate lang item'" >&2
    false
fi
echo "ok: with std on it fails as it must: $(grep -m1 'duplicate lang item' "$negative_log")"
rm -f "$negative_log"
step_done

# ---------------------------------------------------------------------------
banner "5/6 tests"
tests_log="$(mktemp)"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --all-targets 2>&1 | tee "$tests_log"
else
    warn "cargo-nextest not found: running cargo test instead"
    cargo test --workspace --all-targets 2>&1 | tee "$tests_log"
fi
# nextest does not run doctests.
cargo test --workspace --doc 2>&1 | tee -a "$tests_log"
# Every runner above failed the script if a test failed; count what passed for
# the closing line (nextest: "N tests run: N passed", cargo test: "N passed;").
tests_passed=$(
    grep -oE 'tests run: [0-9]+ passed|test result: ok\. [0-9]+ passed' "$tests_log" |
        grep -oE '[0-9]+ passed' | awk '{ sum += $1 } END { print sum + 0 }'
)
rm -f "$tests_log"
# The README's demo, so that its command is known to work (debug build:
# nextest built the example already).
echo "--- the demo (examples/demo.rs)"
cargo run -q --example demo
step_done

# ---------------------------------------------------------------------------
banner "6/6 fuzz: decode for ${FUZZ_SECONDS} s"
fuzz_ok=1
if ! RUSTUP_AUTO_INSTALL=0 cargo +nightly --version >/dev/null 2>&1; then
    warn "no nightly toolchain: the fuzz run uses $(rustc --version) without AddressSanitizer"
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
    if ! cargo install cargo-fuzz --locked; then
        warn "cargo-fuzz could not be installed: SKIPPING the fuzz run"
        fuzz_ok=0
    fi
fi
if [ "$fuzz_ok" -eq 1 ]; then
    scripts/fuzz.sh "$FUZZ_SECONDS"
    step_done
fi

echo
echo "=============================================================================="
echo "=== all steps passed in $((SECONDS - total_start)) s"
echo "=============================================================================="
echo "tests: ${tests_passed} passed, 0 failed"
