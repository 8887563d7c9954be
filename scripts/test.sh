#!/usr/bin/env bash
# The test command: makes sure everything the suite talks to is there, then
# runs every test. Works on a fresh Debian machine (installs what is missing).
#
#   scripts/test.sh                 # the whole suite
#   scripts/test.sh -- normalize    # extra arguments go to `cargo test`
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth), Redis on 127.0.0.1:6379,
# NATS with JetStream on 127.0.0.1:4222, and OpenSSH's sshd/ssh/ssh-keygen
# binaries (the tests start their own sshd on loopback ports), GNU patch, curl,
# Chromium and its WebDriver (chromium, chromium-driver: the web UI's tests),
# Exim (exim4-daemon-light: the email tests start their own on loopback
# ports, with TLS certificates made by openssl, and read its mailbox),
# the nats-server and redis-server binaries (the fault tests restart servers
# of their own), and root for the full-filesystem test's tmpfs mount.
# The README quickstart test needs ports 8080 and 2201-2203 free.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; return 1; fi
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  log "installing $*"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do port_open "$port" && return 0; sleep 0.5; done
  log "$name did not come up on 127.0.0.1:$port"; return 1
}

ensure_postgres() {
  port_open 5432 && return 0
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  local version; version=$(ls /etc/postgresql | sort -V | tail -n1)
  log "starting PostgreSQL $version"
  # Trust auth on loopback, as the tests connect without a password.
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 5432 PostgreSQL
}

# The fault tests start servers of their own (tests/it/fault), so the
# binaries must be there even when the shared services already run.
ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  port_open 6379 && return 0
  log "starting Redis"
  as_root mkdir -p /var/lib/redis /var/log/redis
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 Redis
}

ensure_nats() {
  command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || apt_install nats-server
  port_open 4222 && return 0
  log "starting NATS with JetStream"
  as_root mkdir -p /var/lib/nats-server
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_port 4222 NATS
}

# The store tests check stored diffs by applying them with GNU patch; the
# README quickstart test runs its shell block with bash and curl.
ensure_tools() {
  command -v patch >/dev/null || apt_install patch
  command -v curl >/dev/null || apt_install curl
  # The service unit in dist/ is checked with systemd-analyze; the backup
  # tests restore a store with pg_dump and pg_restore.
  command -v systemd-analyze >/dev/null || apt_install systemd
  command -v pg_restore >/dev/null || apt_install postgresql-client
  # The web UI's browser tests drive Debian's Chromium over WebDriver.
  local browser=()
  [ -x /usr/bin/chromium ] || browser+=(chromium)
  [ -x /usr/bin/chromedriver ] || browser+=(chromium-driver)
  [ ${#browser[@]} -eq 0 ] || apt_install "${browser[@]}"
  # The email tests run Exim instances of their own (tests/it/exim.rs), as
  # the SSH tests run sshd: the package only has to be there. Its own
  # daemon on port 25 is not needed and not started here.
  [ -x /usr/sbin/exim4 ] || apt_install exim4-daemon-light
  command -v openssl >/dev/null || apt_install openssl
}

ensure_openssh() {
  local missing=()
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  # sshd refuses to start without its privilege separation directory.
  [ -d /run/sshd ] || as_root mkdir -p /run/sshd
}

ensure_openssh
ensure_tools
ensure_postgres
ensure_redis
ensure_nats

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/cfgsnap-target}"
extra=()
if [ "${1:-}" = "--" ]; then shift; extra=("$@"); fi
log "running the suite (target dir $CARGO_TARGET_DIR)"
cargo test --workspace --all-targets --locked -- "${extra[@]}"
