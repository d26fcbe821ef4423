#!/usr/bin/env bash
# Persistence off vs on: fan-in QoS 1 (8 publishers → 1 subscriber, window 100,
# 100-byte payloads) into a clean subscriber and into a persistent one, with
# the store off, on with durability "sync", and on with "interval". Each run
# starts a fresh broker on a free loopback port with a fresh data dir and stops
# only that broker (by PID). Runs alternate between configurations; medians of
# ROUNDS runs. Prints one line per run and a median table.
#
#   TERN=target/release/tern BENCH=target/release/tern-bench benches/persistence.sh [ROUNDS] [SECONDS]
#   SCENARIO="fanin --pubs 8 --subs 100 --qos 1"   another tern-bench scenario
#   ONLY="on-sync-persistent mosquitto-persistent"  only these configurations
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-5}
TERN=${TERN:-target/release/tern}
BENCH=${BENCH:-target/release/tern-bench}
SCENARIO=${SCENARIO:-fanin --pubs 8 --subs 1 --qos 1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-persist-bench.XXXXXX")
BROKER=
cleanup() {
  if [ -n "$BROKER" ]; then kill "$BROKER" 2>/dev/null || true; wait "$BROKER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# name | broker flags | bench flags. A name starting with "mosquitto" runs
# Mosquitto (Debian's, when installed) with `persistence true` instead: it
# writes its in-memory state to mosquitto.db every autosave_interval (here
# the default 1800 s) and at shutdown, so a crash loses what came since.
CONFIGS=(
  "off-clean|--persistence off|"
  "on-sync-clean|--persistence on --durability sync|"
  "off-persistent|--persistence off|--persistent-subs"
  "on-sync-persistent|--persistence on --durability sync|--persistent-subs"
  "on-interval-persistent|--persistence on --durability interval|--persistent-subs"
)
MOSQUITTO=${MOSQUITTO:-$(command -v mosquitto || true)}
if [ -n "$MOSQUITTO" ]; then
  CONFIGS+=("mosquitto-persistent|persistence true|--persistent-subs")
else
  echo "mosquitto not installed: its row is skipped" >&2
fi
RESULTS="$WORK/results"
: > "$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name bflags cflags <<< "$c"
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
    port=$(free_port)
    rm -rf "$WORK/data"
    if [[ $name == mosquitto* ]]; then
      mkdir -p "$WORK/data"
      printf 'listener %s 127.0.0.1\nallow_anonymous true\n%s\npersistence_location %s/\nmax_inflight_messages 0\nmax_queued_messages 0\nset_tcp_nodelay true\nlog_dest stderr\nlog_type error\n' \
        "$port" "$bflags" "$WORK/data" > "$WORK/mosquitto.conf"
      "$MOSQUITTO" -c "$WORK/mosquitto.conf" > "$WORK/broker.log" 2>&1 &
      BROKER=$!
      for _ in $(seq 50); do
        python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null && break
        sleep 0.1
      done
    else
      # shellcheck disable=SC2086
      "$TERN" --bind "127.0.0.1:$port" --no-metrics --log-level warn --data-dir "$WORK/data" $bflags > "$WORK/broker.log" 2>&1 &
      BROKER=$!
      for _ in $(seq 50); do
        grep -q "listening on" "$WORK/broker.log" && break
        sleep 0.1
      done
    fi
    # shellcheck disable=SC2086
    out=$("$BENCH" $SCENARIO $cflags --port "$port" --duration "$SECONDS_PER_RUN" --broker-pid "$BROKER" --json --quiet 2>/dev/null || true)
    written=$(du -sb "$WORK/data" 2>/dev/null | cut -f1 || echo 0)
    kill "$BROKER" 2>/dev/null || true
    wait "$BROKER" 2>/dev/null || true
    BROKER=
    echo "$name $round $written $out" >> "$RESULTS"
    python3 -c 'import json,sys; r=json.loads(sys.argv[3]); print(sys.argv[1], "round", sys.argv[2], "delivered/s", round(r["delivery_rate"]), "per-cpu-s", round(r["deliveries_per_broker_cpu_s"] or 0), "p99-ms", round(r["lat_p99_us"]/1000, 1), "lost", r["lost"])' "$name" "$round" "$out" 2>/dev/null || echo "$name round $round: no result"
  done
done
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rnd, written, js = line.split(" ", 3)
    try:
        r = json.loads(js)
    except ValueError:
        continue
    rows.setdefault(name, []).append((r, int(written or 0)))
print()
print("| configuration | delivered msgs/s | deliveries per broker CPU-s | p99 latency (ms) | lost | peak RSS (MiB) | data dir at end (MiB) | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name, runs in rows.items():
    med = lambda f: statistics.median(f(r, w) for r, w in runs)
    print(f"| {name} | {med(lambda r, w: r['delivery_rate']):,.0f} | {med(lambda r, w: r['deliveries_per_broker_cpu_s'] or 0):,.0f} | "
          f"{med(lambda r, w: r['lat_p99_us']) / 1000:.1f} | {sum(r['lost'] for r, _ in runs)} | "
          f"{med(lambda r, w: r['broker_peak_rss_kb']) / 1024:.1f} | {med(lambda r, w: w) / 1048576:.1f} | {len(runs)} |")
PY
