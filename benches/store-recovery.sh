#!/usr/bin/env bash
# Recovery: write SESSIONS offline persistent sessions with MESSAGES queued
# QoS 1 messages each (store-fill, through the broker's own store), then
# start `tern --persistence on` on that data dir ROUNDS times and report the
# seconds until it listens (the store is read back and every session
# restored before the listener accepts), its peak RSS then, and the data
# dir's size. Stops only the brokers it started (by PID).
#
#   TERN=target/release/tern FILL=target/release/store-fill benches/store-recovery.sh [SESSIONS] [MESSAGES] [ROUNDS]
set -euo pipefail
SESSIONS=${1:-100000}
MESSAGES=${2:-10}
ROUNDS=${3:-3}
TERN=${TERN:-target/release/tern}
FILL=${FILL:-target/release/store-fill}
WORKERS=${WORKERS:-2}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tern-recovery.XXXXXX")
BROKER=
cleanup() {
  if [ -n "$BROKER" ]; then kill "$BROKER" 2>/dev/null || true; wait "$BROKER" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
"$FILL" --data-dir "$WORK/data" --workers "$WORKERS" --sessions "$SESSIONS" --messages "$MESSAGES"
echo "data dir: $(du -sh --apparent-size "$WORK/data" | cut -f1) apparent, $(du -sh "$WORK/data" | cut -f1) on disk"
for round in $(seq 1 "$ROUNDS"); do
  start=$(date +%s.%N)
  NO_COLOR=1 "$TERN" --bind 127.0.0.1:0 --no-metrics --log-level info --workers "$WORKERS" --persistence on --data-dir "$WORK/data" > "$WORK/log" 2>&1 &
  BROKER=$!
  until grep -q "listening on" "$WORK/log"; do
    kill -0 "$BROKER" 2>/dev/null || { cat "$WORK/log"; exit 1; }
    sleep 0.02
  done
  end=$(date +%s.%N)
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$BROKER/status")
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$BROKER/status")
  restored=$(grep -o "sessions=[0-9]*" "$WORK/log" | head -1 || true)
  read_s=$(grep -o "seconds=[0-9.]*" "$WORK/log" | head -1 || true)
  printf 'round %d: listening after %.2f s (store read %s), %s, peak RSS %d MiB, RSS %d MiB\n' \
    "$round" "$(echo "$end - $start" | bc)" "${read_s#seconds=}" "$restored" $((hwm / 1024)) $((rss / 1024))
  kill "$BROKER"; wait "$BROKER" 2>/dev/null || true
  BROKER=
done
