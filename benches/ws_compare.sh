#!/usr/bin/env bash
# Tern over WebSocket vs plain TCP, in one run: fanin-q1 (8 publishers → 1
# subscriber, QoS 1) and fanout-q1 (1 publisher → 200 subscribers, QoS 1),
# 100-byte payloads, tern-bench with and without --ws against a fresh
# release `tern` per run that has a tcp and a ws listener (its default
# limits, 2 workers). Transports alternate run by run; medians are printed.
#
#   benches/ws_compare.sh [RUNS=3] [SECONDS=5]
#
# TERN_BIN / TERN_BENCH name the binaries (default target/release/…, built
# if missing). Loopback ports 18881 (tcp) and 18882 (ws) must be free.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
SECS="${2:-5}"
TERN_BIN="${TERN_BIN:-target/release/tern}"
BENCH="${TERN_BENCH:-target/release/tern-bench}"
if [ ! -x "$TERN_BIN" ] || [ ! -x "$BENCH" ]; then
  cargo build --release --locked -p tern-broker -p tern-benches >&2
fi
OUT="$(mktemp -d)"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$OUT"' EXIT
cat >"$OUT/tern.toml" <<CONF
bind = ["127.0.0.1:18881"]
metrics_bind = ""
sys_interval = 0
workers = 2
log_level = "warn"
[[listener]]
bind = "127.0.0.1:18882"
kind = "ws"
CONF

scenario_args() {
  case $1 in
    fanin-q1) echo "fanin --pubs 8 --subs 1 --qos 1" ;;
    fanout-q1) echo "fanout --pubs 1 --subs 200 --qos 1" ;;
  esac
}

for run in $(seq 1 "$RUNS"); do
  for scenario in fanin-q1 fanout-q1; do
    for transport in tcp ws; do
      "$TERN_BIN" --config "$OUT/tern.toml" >"$OUT/tern.log" 2>&1 &
      pid=$!
      # Both listeners accept before the run starts.
      for _ in $(seq 200); do
        if (exec 3<>/dev/tcp/127.0.0.1/18881) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/18882) 2>/dev/null; then break; fi
        kill -0 "$pid" 2>/dev/null || { cat "$OUT/tern.log" >&2; exit 1; }
        sleep 0.05
      done
      if [ "$transport" = ws ]; then port=18882; extra=--ws; else port=18881; extra=; fi
      # shellcheck disable=SC2046
      line=$("$BENCH" $(scenario_args "$scenario") --duration "$SECS" --port "$port" $extra \
        --broker-pid "$pid" --quiet | grep '^scenario=')
      kill -TERM "$pid"; wait "$pid" || true
      pid=""
      echo "$scenario $transport $line" >>"$OUT/results"
      echo "run $run $scenario $transport: $(echo "$line" | tr ' ' '\n' | grep -E '^(deliveries_per_broker_cpu_s|delivery_rate|lost)=' | tr '\n' ' ')" >&2
    done
  done
done

python3 - "$OUT/results" "$RUNS" "$SECS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    scenario, transport, rest = line.split(" ", 2)
    kv = dict(f.split("=", 1) for f in rest.split() if "=" in f)
    rows.setdefault((scenario, transport), []).append(kv)
def med(key, scenario, transport):
    return statistics.median(float(r[key]) for r in rows[(scenario, transport)])
print(f"benches/ws_compare.sh {sys.argv[2]} {sys.argv[3]}: medians of {sys.argv[2]} runs x {sys.argv[3]} s")
print()
print("| scenario | tcp deliveries/CPU-s | ws deliveries/CPU-s | ws / tcp | tcp deliveries/s | ws deliveries/s | lost (tcp, ws) |")
print("|---|---:|---:|---:|---:|---:|---|")
for scenario in ("fanin-q1", "fanout-q1"):
    t, w = med("deliveries_per_broker_cpu_s", scenario, "tcp"), med("deliveries_per_broker_cpu_s", scenario, "ws")
    rt, rw = med("delivery_rate", scenario, "tcp"), med("delivery_rate", scenario, "ws")
    lost = [sum(int(r["lost"]) for r in rows[(scenario, x)]) for x in ("tcp", "ws")]
    print(f"| {scenario} | {t/1e3:.0f}k | {w/1e3:.0f}k | {w/t:.2f} | {rt/1e3:.0f}k | {rw/1e3:.0f}k | {lost[0]}, {lost[1]} |")
PY
