#!/usr/bin/env bash
# The demo: a short tour of redpoll (examples/demo.rs).
#
#     scripts/demo.sh                                     # throwaway servers on loopback
#     REDIS_URL=redis://127.0.0.1:6379 scripts/demo.sh    # your server (TLS part still local)
#
# Installs redis-server with apt-get when it is missing (the demo starts its
# own throwaway servers, and the TLS part always does).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is missing: installing redis-server and redis-tools with apt-get"
    sudo_() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get update
    sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools
fi
exec cargo run --release --example demo
