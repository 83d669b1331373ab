#!/usr/bin/env bash
# Runs the `decode` fuzz target (fuzz/fuzz_targets/decode.rs) for SECONDS
# (default 60) with cargo-fuzz, on the nightly toolchain when there is one,
# and fails if libFuzzer finds a crash, a checked mismatch, a timeout or an
# out-of-memory.
#
#     scripts/fuzz.sh            # 60 s, as scripts/test.sh runs it
#     scripts/fuzz.sh 3600       # an hour; or leave it overnight:
#     scripts/fuzz.sh 28800
#
# Extra libFuzzer flags can follow the seconds, e.g. `scripts/fuzz.sh 600 -jobs=2`.
#
# cargo-fuzz wants nightly for AddressSanitizer. Without a nightly toolchain
# the script falls back, with a WARNING, to the default toolchain and
# `--sanitizer none`: coverage-guided fuzzing and every assertion of the
# target still run (redpoll-core forbids unsafe code, so ASan mostly guards
# `bytes`), about six times faster.
#
# The working corpus grows in fuzz/corpus/decode (git-ignored) and is reused
# by the next run. Extra seeds, read when present (libFuzzer never writes to
# these directories): fuzz/regressions/decode/*.bin, inputs that once failed,
# committed so that every run replays them first; and RESP captured from real
# servers by tests/corpus/capture.py in tests/data/corpus/resp2 and resp3.
# A crashing input is saved under fuzz/artifacts/decode/ (git-ignored; shrink
# it with `cargo +nightly fuzz tmin decode <file>` and, once understood, copy
# it into fuzz/regressions/decode/ under a name that says what broke); replay
# it with
#
#     cargo +nightly fuzz run decode fuzz/artifacts/decode/crash-<hash>
#
# (`cargo fuzz run --sanitizer none decode ...` on stable.)
set -euo pipefail

cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS] [libFuzzer flags...]" >&2
    exit 2
fi

corpus=(fuzz/corpus/decode)
mkdir -p fuzz/corpus/decode
for dir in fuzz/regressions/decode tests/data/corpus/resp2 tests/data/corpus/resp3; do
    if compgen -G "$dir/*.bin" >/dev/null; then
        corpus+=("$dir")
    fi
done
echo "fuzz: target decode for ${seconds}s; corpus dirs: ${corpus[*]}"

marker="$(mktemp)"
trap 'rm -f "$marker"' EXIT

if RUSTUP_AUTO_INSTALL=0 cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz run decode)
else
    echo "******************************************************************************" >&2
    echo "*** WARNING: no nightly toolchain: fuzzing on $(rustc --version) without" >&2
    echo "*** AddressSanitizer (cargo fuzz run --sanitizer none)" >&2
    echo "******************************************************************************" >&2
    fuzz=(cargo fuzz run --sanitizer none decode)
fi

status=0
"${fuzz[@]}" "${corpus[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@" \
    || status=$?

if [ "$status" -ne 0 ]; then
    echo >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! FUZZ FAILURE (exit $status): the decode target crashed or a check failed." >&2
    echo "!!! Inputs are in fuzz/artifacts/decode/ (hex below); replay one with" >&2
    echo "!!!   cargo +nightly fuzz run decode fuzz/artifacts/decode/<file>" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    find fuzz/artifacts/decode -type f -newer "$marker" 2>/dev/null | while read -r artifact; do
        echo "$artifact: $(od -An -v -tx1 "$artifact" | tr -d ' \n' | head -c 2000)" >&2
    done
    exit "$status"
fi
echo "fuzz: decode ran ${seconds}s without a failure"
