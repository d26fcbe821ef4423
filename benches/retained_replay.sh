#!/usr/bin/env bash
# Retained replay at scale, Tern and Mosquitto side by side:
#
#   benches/retained_replay.sh [N]        (default N = 100000)
#
# Stores N retained messages (QoS 1, 100-byte payloads), then counts what
# `mosquitto_sub -t 'ret/#' -W 10` receives at QoS 0, 1 and v5 QoS 1, 2, then
# reads the broker's RSS with three subscribers to '#' that never read.
# Needs mosquitto, mosquitto_sub and paho-mqtt (scripts/install-test-deps.sh).
# TERN=path/to/tern (default: cargo build --release). Stops only the brokers
# it started.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
if [ -z "${TERN:-}" ]; then
  cargo build --release --locked -p tern-broker >&2
  TERN=target/release/tern
fi
HELPER=benches/retained_replay.py
TMP=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"' EXIT
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
run() {
  local name=$1 port=$2; shift 2
  "$@" > "$TMP/$name.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
    sleep 0.1
  done
  python3 "$HELPER" publish "$port" "$N"
  local base; base=$(rss "$PID")
  echo "| $name | RSS holding $N retained | $base KiB |"
  for args in "-q 0" "-q 1" "-V mqttv5 -q 1" "-V mqttv5 -q 2"; do
    # shellcheck disable=SC2086
    n=$(timeout 120 mosquitto_sub -p "$port" -t 'ret/#' $args -W 10 2>/dev/null | wc -l || true)
    echo "| $name | mosquitto_sub $args | $n of $N |"
  done
  for q in 0 1; do
    python3 "$HELPER" idle "$port" 3 "$q" 6 &
    local idle=$!
    sleep 5
    echo "| $name | 3 subscribers to # at QoS $q that never read | +$(( $(rss "$PID") - base )) KiB |"
    wait "$idle"
    sleep 1
  done
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}
echo "| broker | what | result |"
echo "|---|---|---:|"
port=$(free_port)
# Room for N under max_retained_messages (the broker's own $SYS topics do
# not count against it).
run tern "$port" "$TERN" --bind "127.0.0.1:$port" --no-metrics --log-level warn \
  --max-retained-messages "$(( N > 100000 ? N : 100000 ))"
if command -v mosquitto > /dev/null; then
  port=$(free_port)
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > "$TMP/mosquitto.conf"
  run mosquitto "$port" mosquitto -c "$TMP/mosquitto.conf"
fi
