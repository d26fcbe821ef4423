#!/usr/bin/env bash
# TLS handshake rate of Tern and of Mosquitto, on loopback, same certificate
# (ECDSA P-256, made here with openssl), one after the other:
#
#   benches/tls-handshakes.sh [SECONDS]     (default 10 per broker)
#
# `openssl s_time -new` opens connections with a full handshake each (no
# resumption) for SECONDS against each broker's TLS listener. Printed per
# broker: handshakes per wall-clock second (client and broker share the
# machine) and handshakes per second of the broker's own CPU time (utime +
# stime from /proc, i.e. handshakes/s per core the broker would sustain).
# TERN_BIN names the binary (default target/release/tern). Builds nothing;
# stops only the brokers it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${1:-10}"
TERN_BIN="${TERN_BIN:-target/release/tern}"
MOSQUITTO="${MOSQUITTO:-$(command -v mosquitto || echo /usr/sbin/mosquitto)}"
for b in "$TERN_BIN" "$MOSQUITTO"; do
  [ -x "$b" ] || { echo "tls-handshakes: $b not found" >&2; exit 1; }
done
DIR="$(mktemp -d -t tern-tls-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT

q() { openssl "$@" >/dev/null 2>&1; }
q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/ca.key" \
  -out "$DIR/ca.pem" -days 2 -subj "/CN=bench CA"
q req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$DIR/server.key" \
  -out "$DIR/server.csr" -subj "/CN=localhost"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$DIR/ext.cnf"
q x509 -req -in "$DIR/server.csr" -CA "$DIR/ca.pem" -CAkey "$DIR/ca.key" -CAcreateserial \
  -days 2 -extfile "$DIR/ext.cnf" -out "$DIR/server.pem"
# Mosquitto started as root reads its files as the `mosquitto` user.
chmod 755 "$DIR"; chmod 644 "$DIR"/*

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_port() {
  for _ in $(seq 1 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "tls-handshakes: nothing listens on $1" >&2; exit 1
}

measure() { # name pid port
  local name=$1 pid=$2 port=$3 before after out count secs
  wait_port "$port"
  before=$(cpu_ticks "$pid")
  out=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$SECONDS_EACH" -CAfile "$DIR/ca.pem" 2>&1 || true)
  after=$(cpu_ticks "$pid")
  # "N connections in T real seconds, B bytes read per connection"
  count=$(echo "$out" | awk '/connections in .* real seconds/ {print $1; exit}')
  secs=$(echo "$out" | awk '/connections in .* real seconds/ {print $4; exit}')
  python3 - "$name" "$count" "$secs" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import sys
name, count, secs, before, after, tck = sys.argv[1:]
count, secs = int(count), float(secs)
cpu = (int(after) - int(before)) / int(tck)
per_cpu = count / cpu if cpu > 0 else float("nan")
print(f"{name:10} {count:7d} handshakes in {secs:5.2f} s: {count / secs:8.0f}/s wall, "
      f"broker CPU {cpu:5.2f} s: {per_cpu:8.0f} handshakes per CPU-second")
PY
}

TERN_PORT=$(free_port)
cat >"$DIR/tern.toml" <<TOML
bind = []
metrics_bind = ""
log_level = "warn"
[[listener]]
bind = "127.0.0.1:$TERN_PORT"
kind = "tls"
tls.certfile = "$DIR/server.pem"
tls.keyfile = "$DIR/server.key"
TOML
"$TERN_BIN" --config "$DIR/tern.toml" --workers 1 >/dev/null 2>&1 &
PIDS+=($!)
measure tern "$!" "$TERN_PORT"

MOSQ_PORT=$(free_port)
cat >"$DIR/mosquitto.conf" <<CONF
listener $MOSQ_PORT 127.0.0.1
certfile $DIR/server.pem
keyfile $DIR/server.key
allow_anonymous true
log_dest none
CONF
"$MOSQUITTO" -c "$DIR/mosquitto.conf" >/dev/null 2>&1 &
PIDS+=($!)
measure mosquitto "$!" "$MOSQ_PORT"
