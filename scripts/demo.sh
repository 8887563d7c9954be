#!/usr/bin/env bash
# The demo: three simulated RouterOS devices (127.0.0.1:2201-2203) and
# cfgsnap serving on the shipped config.toml (embedded defaults: SQLite,
# in-process bus and locks), API on http://127.0.0.1:8080. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cfgsnap-target}"
cargo build --release -p cfgsnap -p routeros-sim
bin="$CARGO_TARGET_DIR/release"
"$bin/routeros-sim" --listen 127.0.0.1:2201 --devices 3 --lines 300 --change-every 3 &
sim=$!
trap 'kill "$sim" 2>/dev/null || true' EXIT INT TERM
exec_status=0
"$bin/cfgsnap" serve --config config.toml || exec_status=$?
exit "$exec_status"
