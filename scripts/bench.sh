#!/usr/bin/env bash
# Runs cfgsnap's benchmarks (the cfgsnap-bench package) on a release build and prints
# their figures.
#
# Usage: scripts/bench.sh [all|normalize|diff|semantic|ingest|collect|makespan|trigger|history|search|ui-diff|notify|unchanged] [extra args for that one]
# Needs: PostgreSQL on 127.0.0.1:5432 with trust auth (ingest, trigger, history), NATS with
# JetStream on 127.0.0.1:4222 and Redis on 127.0.0.1:6379 (trigger's served stack), OpenSSH's
# ssh and ssh-keygen (collect, trigger), sshd (openssh-server), nats-server, redis-server
# and /usr/bin/time (unchanged), and an open-file limit of ~12,000 for makespan at
# 10,000 devices.
# Builds into $CARGO_TARGET_DIR (default /var/tmp/cfgsnap-target-bench). Record the output
# in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cfgsnap-target-bench}"
# Each device is a listening socket in the simulator process, and each backup in flight a
# connection on both sides: raise the soft limit as far as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "open-file limit: $(ulimit -n)"

# The unchanged case runs the product binary, built beside the benchmarks.
cargo build --release -p cfgsnap-bench -p cfgsnap --bins
bench="$CARGO_TARGET_DIR/release/cfgsnap-bench"
which="${1:-all}"
shift || true

run() { echo "== cfgsnap-bench $*"; "$bench" "$@"; }

case "$which" in
  normalize) run normalize "$@" ;;
  diff) run diff "$@" ;;
  semantic) run semantic "$@" ;;
  ingest) run ingest "$@" ;;
  collect) run collect --baseline-ssh "$@" ;;
  makespan) run makespan "$@" ;;
  trigger) run trigger "$@" ;;
  history) run history "$@" ;;
  search) run search "$@" ;;
  notify) run notify "$@" ;;
  ui-diff) run ui-diff "$@" ;;
  unchanged) run unchanged "$@" ;;
  all)
    run normalize
    run diff
    run semantic
    run ingest --store sqlite --events 20000
    run ingest --store postgres --events 20000
    run ingest --store postgres --events 20000 --lanes 8
    run ingest --store postgres --events 20000 --lanes 8 --webhook
    run notify --store postgres --rows 10000
    run collect --devices 2000 --concurrency 64,256 --baseline-ssh
    run makespan --devices 10000 --latency 2s --concurrency 1000
    run trigger --devices 200 --rounds 3 --sequential 100 --stack embedded,served
    run history --snapshots 1000000 --devices 10000 --reads 1000 --http-reads 300
    run search --devices 10000 --lines 1000 --versions 100
    run ui-diff --lines 100000 --changed 0.01
    run unchanged --devices 200,800 --concurrency 32 --stack embedded,served
    ;;
  *) echo "unknown benchmark: $which" >&2; exit 2 ;;
esac
