#!/usr/bin/env bash
# Side-by-side benchmark: Tern and Mosquitto, same machine, same run.
#
#   benches/compare.sh [RUNS] [SECONDS]      (defaults: 3 runs of 5 s)
#
# Each broker runs on its own loopback port with settings that keep limits out
# of the way (documented in BENCHMARKS.md): Mosquitto with unlimited inflight
# and queue, TCP_NODELAY, no persistence; Tern with the same inflight/queue
# headroom. Every scenario runs RUNS times per broker, alternating brokers;
# the table reports medians. Results go to stdout as a Markdown table and, raw,
# to target/compare/*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
SECS="${2:-5}"
command -v mosquitto >/dev/null || { echo "mosquitto not installed (apt-get install mosquitto)" >&2; exit 1; }
cargo build --release --locked -p tern-broker -p tern-benches >&2
OUT=target/compare; rm -rf "$OUT"; mkdir -p "$OUT"
BENCH=target/release/tern-bench
TERN_PORT=18861; MOSQ_PORT=18862

cat > "$OUT/mosquitto.conf" <<CONF
listener $MOSQ_PORT 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 0
set_tcp_nodelay true
CONF

target/release/tern --bind 127.0.0.1:$TERN_PORT --no-metrics --log-level warn \
  --max-inflight 65535 --max-queued-messages 100000000 --max-queued-bytes 17179869184 \
  >/dev/null 2>"$OUT/tern.log" &
TERN_PID=$!
mosquitto -c "$OUT/mosquitto.conf" >/dev/null 2>"$OUT/mosquitto.log" &
MOSQ_PID=$!
stop() {
  kill $TERN_PID $MOSQ_PID 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 $TERN_PID 2>/dev/null || kill -0 $MOSQ_PID 2>/dev/null || return 0; sleep 0.2; done
  kill -9 $TERN_PID $MOSQ_PID 2>/dev/null || true
}
trap stop EXIT
sleep 1
for p in $TERN_PID $MOSQ_PID; do
  kill -0 "$p" 2>/dev/null || { echo "a broker did not start (port in use?); see $OUT/*.log" >&2; exit 1; }
done

SCENARIOS=(
  "fanin-q0|fanin --pubs 8 --subs 1 --qos 0"
  "fanin-q1|fanin --pubs 8 --subs 1 --qos 1"
  "fanin-q2|fanin --pubs 8 --subs 1 --qos 2"
  "fanout-q1|fanout --pubs 1 --subs 200 --qos 1"
  "pairs-q0|pairs --pubs 100 --qos 0"
)
for entry in "${SCENARIOS[@]}"; do
  name="${entry%%|*}"; args="${entry#*|}"
  for run in $(seq 1 "$RUNS"); do
    for broker in tern mosquitto; do
      if [ $broker = tern ]; then port=$TERN_PORT; pid=$TERN_PID; else port=$MOSQ_PORT; pid=$MOSQ_PID; fi
      echo "== $name $broker run $run" >&2
      # shellcheck disable=SC2086
      $BENCH $args --port $port --duration "$SECS" --broker-pid $pid --json --quiet \
        > "$OUT/$name.$broker.$run.json" 2>>"$OUT/bench.log" || true
    done
  done
done

python3 - "$OUT" "$RUNS" "$SECS" <<'PY'
import json, os, statistics, sys, datetime
out, runs, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
for f in sorted(os.listdir(out)):
    if not f.endswith(".json"): continue
    name, broker, _run, _ = f.split(".")
    try:
        d = json.loads(open(os.path.join(out, f)).read().strip().splitlines()[-1])
    except Exception:
        d = {"status": "no output"}
    rows.setdefault(name, {}).setdefault(broker, []).append(d)
def med(ds, k):
    v = [d[k] for d in ds if isinstance(d.get(k), (int, float))]
    return statistics.median(v) if v else None
def fmt(v, scale=1, nd=0):
    return "–" if v is None else f"{v/scale:,.{nd}f}"
print(f"Run {datetime.date.today()}, {runs} runs × {secs} s, medians. `benches/compare.sh {runs} {secs}`\n")
print("| scenario | broker | deliveries / broker CPU-s | deliveries/s | p50 ms | p99 ms | lost (sum) | peak RSS MiB | status |")
print("|---|---|---:|---:|---:|---:|---:|---:|---|")
for name in rows:
    base = None
    for broker in ("tern", "mosquitto"):
        ds = rows[name].get(broker, [])
        eff = med(ds, "deliveries_per_broker_cpu_s")
        lost = sum(d.get("lost") or 0 for d in ds)
        status = ",".join(sorted({str(d.get("status")) for d in ds}))
        print(f"| {name} | {broker} | {fmt(eff)} | {fmt(med(ds,'delivery_rate'))} | {fmt(med(ds,'lat_p50_us'),1000,1)} | {fmt(med(ds,'lat_p99_us'),1000,1)} | {lost} | {fmt(med(ds,'broker_peak_rss_kb'),1024,1)} | {status} |")
PY
