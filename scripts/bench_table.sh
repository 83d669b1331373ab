#!/usr/bin/env bash
# Prints the results of the last `cargo bench --bench codec` (criterion's
# JSON under target/criterion/) as Markdown tables: per group, time per
# iteration and throughput per implementation, and redpoll's time relative
# to the fastest peer. The time is criterion's headline estimate (the slope
# when it has one, else the mean), as printed by `cargo bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/criterion
order="redpoll redis-protocol resp-rs redis"

fmt_time() { # nanoseconds -> human
    awk -v t="$1" 'BEGIN {
        if (t >= 1e6) printf "%.3f ms", t / 1e6;
        else if (t >= 1e3) printf "%.2f µs", t / 1e3;
        else printf "%.1f ns", t }'
}
fmt_rate() { # elements, nanoseconds -> elements per second
    awk -v n="$1" -v t="$2" 'BEGIN {
        r = n / t * 1e9;
        if (r >= 1e6) printf "%.2f M/s", r / 1e6;
        else if (r >= 1e3) printf "%.1f K/s", r / 1e3;
        else printf "%.0f /s", r }'
}

for group_dir in "$root"/decode_* "$root"/encode_*; do
    [ -d "$group_dir" ] || continue
    group=$(jq -r .group_id "$(ls "$group_dir"/*/new/benchmark.json | head -n 1)")
    echo "### $group"
    echo
    echo "| implementation | time | throughput | time / redpoll's |"
    echo "|---|---:|---:|---:|"
    declare -A t=()
    best_peer=""
    for impl in $order; do
        dir="$group_dir/$impl/new"
        [ -f "$dir/estimates.json" ] || continue
        t[$impl]=$(jq -r '(.slope // .mean).point_estimate' "$dir/estimates.json")
        if [ "$impl" != redpoll ] &&
            { [ -z "$best_peer" ] || awk -v a="${t[$impl]}" -v b="${t[$best_peer]}" 'BEGIN { exit !(a < b) }'; }; then
            best_peer=$impl
        fi
    done
    for impl in $order; do
        [ -n "${t[$impl]:-}" ] || continue
        n=$(jq -r '.throughput.Elements // .throughput.Bytes' "$group_dir/$impl/new/benchmark.json")
        rel="-"
        [ -n "${t[redpoll]:-}" ] && rel=$(awk -v a="${t[$impl]}" -v r="${t[redpoll]}" 'BEGIN { printf "%.2fx", a / r }')
        echo "| $impl | $(fmt_time "${t[$impl]}") | $(fmt_rate "$n" "${t[$impl]}") | $rel |"
    done
    if [ -n "${t[redpoll]:-}" ] && [ -n "$best_peer" ]; then
        echo
        awk -v r="${t[redpoll]}" -v p="${t[$best_peer]}" -v name="$best_peer" 'BEGIN {
            if (r <= p) printf "redpoll is %.2fx as fast as the fastest peer (%s).\n", p / r, name;
            else printf "redpoll takes %.2fx the time of the fastest peer (%s).\n", r / p, name }'
    fi
    echo
    unset t
done
