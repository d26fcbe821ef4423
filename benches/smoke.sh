#!/usr/bin/env bash
# Load smoke test: a real Tern and tern-bench on loopback, two short runs.
#
#   benches/smoke.sh
#
# Builds nothing. TERN_BIN and TERN_BENCH name the binaries; by default each is
# the newer of target/release/<name> and target/debug/<name>. Tern listens on a
# free loopback port and is always stopped on exit. Runs
#   tern-bench fanin  --qos 1 --duration 5           (8 publishers → 1 subscriber)
#   tern-bench fanout --qos 1 --subs 20 --duration 2 (1 publisher → 20 subscribers)
# and exits 1 when a run printed no JSON summary, received nothing, lost or
# duplicated a message, or ended with a status other than `ok`.
set -euo pipefail
cd "$(dirname "$0")/.."

newest() {
  local r="target/release/$1" d="target/debug/$1"
  if [ -x "$r" ] && { [ ! -x "$d" ] || [ "$r" -nt "$d" ]; }; then echo "$r"; else echo "$d"; fi
}
TERN_BIN="${TERN_BIN:-$(newest tern)}"
TERN_BENCH="${TERN_BENCH:-$(newest tern-bench)}"
for b in "$TERN_BIN" "$TERN_BENCH"; do
  [ -x "$b" ] || { echo "smoke: $b not found (build it, or set TERN_BIN / TERN_BENCH)" >&2; exit 1; }
done

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LOG="$(mktemp -t tern-smoke.XXXXXX)"
"$TERN_BIN" --bind "127.0.0.1:$PORT" --no-metrics --log-level warn >"$LOG" 2>&1 &
PID=$!
cleanup() {
  kill "$PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  rm -f "$LOG"
}
trap cleanup EXIT

ready=""
for _ in $(seq 1 100); do
  kill -0 "$PID" 2>/dev/null || break
  if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' "$PORT" 2>/dev/null; then
    ready=1; break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "smoke: $TERN_BIN did not listen on 127.0.0.1:$PORT; its output:" >&2
  cat "$LOG" >&2
  exit 1
fi

# Run tern-bench with ARGS and check its JSON summary.
check() {
  local out
  out="$(timeout 120 "$TERN_BENCH" "$@" --port "$PORT" --json --quiet)" || true
  python3 - "$out" "$*" <<'PY'
import json, sys
out, what = sys.argv[1], sys.argv[2]
try:
    d = json.loads(out.strip().splitlines()[-1])
except (IndexError, ValueError):
    sys.exit(f"smoke FAIL {what}: no JSON summary (output: {out!r})")
problems = []
if not d.get("received"):
    problems.append("received nothing")
if d.get("lost") != 0:
    problems.append(f"lost {d.get('lost')}")
if d.get("duplicates") != 0:
    problems.append(f"{d.get('duplicates')} duplicates")
if d.get("status") != "ok":
    problems.append(f"status {d.get('status')} ({d.get('error')})")
line = f"{what}: sent {d.get('sent')} received {d.get('received')} lost {d.get('lost')} p99 {d.get('lat_p99_us')} us"
if problems:
    sys.exit(f"smoke FAIL {line}: " + ", ".join(problems))
print(f"smoke ok   {line}")
PY
}

status=0
check fanin --qos 1 --duration 5 || status=1
check fanout --subs 20 --qos 1 --duration 2 || status=1
if ! kill -0 "$PID" 2>/dev/null; then
  echo "smoke FAIL: tern exited during the runs; its output:" >&2
  cat "$LOG" >&2
  status=1
fi
exit $status
