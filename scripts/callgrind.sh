#!/usr/bin/env bash
# Instruction counts of redpoll's RESP decoder and its peers, under callgrind.
#
#   scripts/callgrind.sh            # all implementations x inputs a b c d
#   IMPLS="redpoll" INPUTS="a d" scripts/callgrind.sh
#   ANNOTATE=1 scripts/callgrind.sh # also annotate redpoll's hot functions
#                                   # and source lines (target/callgrind/)
#
# Builds benches/callgrind.rs with the bench profile (the same code criterion
# measures), runs it under `valgrind --tool=callgrind` with collection
# switched on only inside `redpoll_bench_measured` (the decode loops: buffer
# copies and input building are outside it), and prints instructions per
# frame for (a), (c), (d) and per array element for (b), with redpoll's
# targets. Needs valgrind. Raw outputs go to target/callgrind/.
#
# Exits non-zero when redpoll misses a target; CHECK=0 only reports.
set -euo pipefail
cd "$(dirname "$0")/.."

IMPLS=${IMPLS:-"redpoll redis-protocol resp-rs redis"}
INPUTS=${INPUTS:-"a b c d"}
CHECK=${CHECK:-1}
ANNOTATE=${ANNOTATE:-0}
out=target/callgrind
mkdir -p "$out"

# Iterations per input: enough units (~100k frames or elements) that the
# per-run constant (one decoder, one buffer drop) is noise.
iterations() {
    case $1 in a) echo 10 ;; b) echo 100 ;; c) echo 10 ;; d) echo 10 ;; esac
}
# redpoll's targets: instructions per frame (a, d) / per element (b).
target() {
    case $1 in a) echo 120 ;; b) echo 150 ;; d) echo 650 ;; *) echo "" ;; esac
}
unit() {
    case $1 in b) echo element ;; *) echo frame ;; esac
}

bin=$(cargo bench --bench callgrind --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "callgrind") | .executable' |
    tail -n 1)
[ -x "$bin" ] || { echo "could not build benches/callgrind.rs" >&2; exit 1; }

declare -A per_unit
for input in $INPUTS; do
    for impl in $IMPLS; do
        file="$out/callgrind.out.$impl.$input"
        line=$(valgrind --tool=callgrind --toggle-collect=redpoll_bench_measured \
            --callgrind-out-file="$file" "$bin" "$impl" "$input" "$(iterations "$input")" 2>/dev/null)
        case $line in
            skipped*) per_unit[$impl.$input]="skipped"; continue ;;
        esac
        frames=$(sed -n 's/.* frames=\([0-9]*\).*/\1/p' <<<"$line")
        elements=$(sed -n 's/.* elements=\([0-9]*\).*/\1/p' <<<"$line")
        ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file")
        [ -n "$ir" ] || ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")
        if [ "$(unit "$input")" = element ]; then n=$elements; else n=$frames; fi
        per_unit[$impl.$input]=$(awk -v ir="$ir" -v n="$n" 'BEGIN { printf "%.1f", ir / n }')
    done
done

# Markdown table: one row per input, one column per implementation.
header="| input | unit |"
rule="|---|---|"
for impl in $IMPLS; do header+=" $impl |"; rule+="---:|"; done
header+=" redpoll target |"
rule+="---|"
echo "Instructions (Ir) per unit, callgrind, $(rustc --version)"
echo
echo "$header"
echo "$rule"
missed=0
for input in $INPUTS; do
    row="| $input | $(unit "$input") |"
    for impl in $IMPLS; do row+=" ${per_unit[$impl.$input]} |"; done
    t=$(target "$input")
    if [ -n "$t" ] && [ -n "${per_unit[redpoll.$input]:-}" ]; then
        if awk -v v="${per_unit[redpoll.$input]}" -v t="$t" 'BEGIN { exit !(v <= t) }'; then
            row+=" <= $t: met |"
        else
            row+=" <= $t: **missed** |"
            missed=1
        fi
    else
        row+=" - |"
    fi
    echo "$row"
done

# The connection machine: a pipelined GET through redpoll_core::Client
# (encode, Send effect, reply bytes in, decode, match, Response event),
# 16 in flight. Target: at most 600 instructions per request.
if [ "${MACHINE:-1}" = 1 ]; then
    machine_bin=$(cargo bench --bench callgrind_machine --no-run --message-format=json 2>/dev/null |
        jq -r 'select(.reason == "compiler-artifact" and .target.name == "callgrind_machine") | .executable' |
        tail -n 1)
    [ -x "$machine_bin" ] || { echo "could not build benches/callgrind_machine.rs" >&2; exit 1; }
    file="$out/callgrind.out.machine"
    line=$(valgrind --tool=callgrind --toggle-collect=redpoll_machine_measured \
        --callgrind-out-file="$file" "$machine_bin" 1000 2>/dev/null)
    requests=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$line")
    ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$file")
    [ -n "$ir" ] || ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$file")
    per=$(awk -v ir="$ir" -v n="$requests" 'BEGIN { printf "%.1f", ir / n }')
    echo
    echo "| machine | unit | redpoll | redpoll target |"
    echo "|---|---|---:|---|"
    if awk -v v="$per" 'BEGIN { exit !(v <= 600) }'; then
        echo "| pipelined GET, 16 in flight | request | $per | <= 600: met |"
    else
        echo "| pipelined GET, 16 in flight | request | $per | <= 600: **missed** |"
        missed=1
    fi
fi

# Annotation needs line tables: a second build of the same code with
# `debug = "line-tables-only"` (same instructions, plus a line table) in its
# own target directory, so the counted build above is not disturbed.
if [ "$ANNOTATE" = 1 ] && [[ " $IMPLS " == *" redpoll "* ]]; then
    lines_bin=$(CARGO_PROFILE_BENCH_DEBUG=line-tables-only CARGO_TARGET_DIR=target/callgrind-lines \
        cargo bench --bench callgrind --no-run --message-format=json 2>/dev/null |
        jq -r 'select(.reason == "compiler-artifact" and .target.name == "callgrind") | .executable' |
        tail -n 1)
    echo
    for input in $INPUTS; do
        file="$out/callgrind.out.redpoll.$input.lines"
        valgrind --tool=callgrind --toggle-collect=redpoll_bench_measured --dump-instr=yes \
            --callgrind-out-file="$file" "$lines_bin" redpoll "$input" "$(iterations "$input")" >/dev/null 2>&1
        callgrind_annotate --inclusive=yes "$file" >"$out/annotate.redpoll.$input.inclusive.txt"
        callgrind_annotate --auto=yes "$file" >"$out/annotate.redpoll.$input.lines.txt"
        echo "annotated: $out/annotate.redpoll.$input.{inclusive,lines}.txt"
    done
fi

if [ "$CHECK" = 1 ] && [ "$missed" = 1 ]; then
    echo
    echo "redpoll missed an instruction-count target" >&2
    exit 1
fi
