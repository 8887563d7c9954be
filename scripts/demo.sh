#!/usr/bin/env bash
# The demo: three simulated RouterOS devices (127.0.0.1:2201-2203) and
# cfgsnap serving on the shipped config.toml (embedded defaults: SQLite,
# in-process bus and locks), API on http://127.0.0.1:8080, and a demo admin
# (demo-admin / demo-password-change-me) in tenant demo. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cfgsnap-target}"
cargo build --release -p cfgsnap -p routeros-sim
bin="$CARGO_TARGET_DIR/release"
# A demo admin to sign in with, created once (the store keeps it). The
# listing stays off the terminal; only its verdict is used.
users=$("$bin/cfgsnap" user list --config config.toml)
if ! awk '$1 == "demo-admin" { found = 1 } END { exit !found }' <<<"$users"; then
  printf '%s\n' 'demo-password-change-me' |
    "$bin/cfgsnap" user add demo-admin --role admin --tenant demo --config config.toml
fi
echo 'sign in as demo-admin / demo-password-change-me:' \
  'POST http://127.0.0.1:8080/api/auth/login {"username":"demo-admin","password":"demo-password-change-me"}'
"$bin/routeros-sim" --listen 127.0.0.1:2201 --devices 3 --lines 300 --change-every 3 &
sim=$!
trap 'kill "$sim" 2>/dev/null || true' EXIT INT TERM
exec_status=0
"$bin/cfgsnap" serve --config config.toml || exec_status=$?
exit "$exec_status"
