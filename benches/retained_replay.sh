#!/usr/bin/env bash
# Retained replay at scale, Tern, Mosquitto and FlashMQ side by side.
#
#   benches/retained_replay.sh [N]                    checks (default N = 100000)
#   benches/retained_replay.sh --rate [RUNS] [N ...]  replay rate (default 3 runs of
#                                                     N = 100000 and 1000000)
#
# Checks: for each broker (tern mosquitto flashmq, on their defaults) store N
# retained messages (QoS 1, 100-byte payloads, topics ret/<i/1000>/<i>), count
# what `mosquitto_sub -t 'ret/#' -W 10` receives at QoS 0, 1 and v5 QoS 1, 2,
# then read the broker's RSS with three subscribers to '#' that never read.
#
# --rate: for each N, RUNS rounds; in each round every broker in BROKERS gets a
# fresh start on a free loopback port, N retained messages, then one raw
# subscriber to 'ret/#' at QoS 0 and then one at QoS 1 (retained_replay.py
# replay: acks every QoS 1 delivery, reads until it has N distinct topics or
# nothing came for 5 s). Before each subscriber the broker's peak RSS is reset
# (`echo 5 > /proc/PID/clear_refs`, so VmHWM restarts at the current RSS).
# Brokers alternate within a round and the first one rotates from round to
# round. Per replay it records delivered (distinct topics), msgs/s (delivered ÷
# first-to-last message at the subscriber), broker peak RSS (VmHWM) during the
# replay and broker CPU (utime + stime). Raw rows: $OUT/raw.tsv; the median
# table: $OUT/report.md (also on stdout).
#
# Environment (all optional):
#   TERN=path/to/tern       default: cargo build --release, target/release/tern
#   FLASHMQ=path/to/flashmq default: /work/flashmq/build/flashmq, then flashmq on PATH
#   BROKERS="..."           --rate only; default: tern tern-65535 mosquitto
#                           mosquitto-unlimited flashmq flashmq-65535. A broker that is
#                           not installed is skipped with a message.
#   OUT=target/retained     --rate results directory (emptied at start)
#
# Broker settings (every listener on 127.0.0.1, anonymous, no persistence):
#   tern                 --no-metrics --log-level warn --max-retained-messages max(N, 100000)
#                        (its default cap is 100,000; $SYS topics do not count), otherwise
#                        defaults: max_inflight 32, max_queued_messages 1000.
#   tern-65535           + --max-inflight 65535.
#   mosquitto            listener + allow_anonymous true; defaults otherwise
#                        (max_inflight_messages 20, max_queued_messages 1000).
#   mosquitto-unlimited  + max_inflight_messages 0, max_queued_messages 0 (unlimited;
#                        the settings benches/compare.sh uses).
#   flashmq              thread_count $(nproc), listen block (ip4 127.0.0.1, tcp_nodelay
#                        true), allow_anonymous true, log_level warning, rlimit_nofile = the
#                        open-file hard limit, no storage_dir (= no persistence); defaults
#                        otherwise (max_qos_msg_pending_per_client 512,
#                        client_max_write_buffer_size 1 MiB).
#   flashmq-65535        + max_qos_msg_pending_per_client 65535 (its maximum) and
#                        max_qos_bytes_pending_per_client 1 GiB.
# Needs mosquitto_sub (checks), python3; stops only the brokers it started.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=check
if [ "${1:-}" = --rate ]; then MODE=rate; shift; fi
if [ -z "${TERN:-}" ]; then
  cargo build --release --locked -p tern-broker >&2
  TERN="${CARGO_TARGET_DIR:-target}/release/tern"
fi
if [ -z "${FLASHMQ:-}" ]; then
  if [ -x /work/flashmq/build/flashmq ]; then FLASHMQ=/work/flashmq/build/flashmq
  else FLASHMQ="$(command -v flashmq || true)"; fi
fi
MOSQ="$(command -v mosquitto || true)"
HELPER=benches/retained_replay.py
TMP=$(mktemp -d)
PID=""
stop() {
  [ -n "$PID" ] || return 0
  kill "$PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$PID" 2>/dev/null; then
    echo "retained_replay.sh: broker pid $PID still running 10 s after SIGTERM; killing it" >&2
    kill -9 "$PID" 2>/dev/null || true
  fi
  wait "$PID" 2>/dev/null || true
  PID=""
}
trap 'stop; rm -rf "$TMP"' EXIT
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Is BROKER installed? Says so on stderr when it is not.
available() {
  case $1 in
    tern | tern-65535) [ -x "$TERN" ] || { echo "tern not found at $TERN: $1 skipped" >&2; return 1; } ;;
    mosquitto*) [ -n "$MOSQ" ] || { echo "mosquitto not installed (apt-get install mosquitto): $1 skipped" >&2; return 1; } ;;
    flashmq*) [ -n "$FLASHMQ" ] && [ -x "$FLASHMQ" ] || {
        echo "flashmq not found (FLASHMQ, /work/flashmq/build/flashmq, PATH; benches/README.md says how to build it): $1 skipped" >&2
        return 1; } ;;
    *) echo "unknown broker '$1' (known: tern tern-65535 mosquitto mosquitto-unlimited flashmq flashmq-65535)" >&2; return 1 ;;
  esac
}

# Start BROKER with room for N retained on PORT; sets PID. Fails when it does
# not listen within 10 s.
start() {
  local broker=$1 port=$2 n=$3 conf="$TMP/$1.conf"
  case $broker in
    tern*)
      set -- "$TERN" --bind "127.0.0.1:$port" --no-metrics --log-level warn \
        --max-retained-messages "$(( n > 100000 ? n : 100000 ))"
      [ "$broker" = tern-65535 ] && set -- "$@" --max-inflight 65535 ;;
    mosquitto*)
      printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" >"$conf"
      [ "$broker" = mosquitto-unlimited ] && printf 'max_inflight_messages 0\nmax_queued_messages 0\n' >>"$conf"
      set -- "$MOSQ" -c "$conf" ;;
    flashmq*)
      {
        printf 'thread_count %s\nallow_anonymous true\nlog_level warning\nrlimit_nofile %s\n' "$(nproc)" "$(ulimit -Hn)"
        [ "$broker" = flashmq-65535 ] &&
          printf 'max_qos_msg_pending_per_client 65535\nmax_qos_bytes_pending_per_client 1073741824\n'
        printf 'listen {\n  protocol mqtt\n  port %s\n  inet_protocol ip4\n  inet4_bind_address 127.0.0.1\n  tcp_nodelay true\n}\n' "$port"
      } >"$conf"
      set -- "$FLASHMQ" --config-file "$conf" ;;
  esac
  echo "$broker: $*" >>"$TMP/commands"
  "$@" >>"$TMP/$broker.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do
    kill -0 "$PID" 2>/dev/null || { wait "$PID" || true; PID=""; return 1; }
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && return 0
    sleep 0.1
  done
  stop
  return 1
}

check() {
  local broker=$1 n=$2 port base
  port=$(free_port)
  start "$broker" "$port" "$n" || { echo "| $broker | did not start | see its log |"; return 0; }
  python3 "$HELPER" publish "$port" "$n"
  base=$(status_kb "$PID" VmRSS)
  echo "| $broker | RSS holding $n retained | $base KiB |"
  for args in "-q 0" "-q 1" "-V mqttv5 -q 1" "-V mqttv5 -q 2"; do
    # shellcheck disable=SC2086
    got=$(timeout 120 mosquitto_sub -p "$port" -t 'ret/#' $args -W 10 2>/dev/null | wc -l || true)
    echo "| $broker | mosquitto_sub $args | $got of $n |"
  done
  for q in 0 1; do
    python3 "$HELPER" idle "$port" 3 "$q" 6 &
    local idle=$!
    sleep 5
    echo "| $broker | 3 subscribers to # at QoS $q that never read | +$(( $(status_kb "$PID" VmRSS) - base )) KiB |"
    wait "$idle"
    sleep 1
  done
  stop
}

# One (broker, N, run): fresh broker, N retained, replay at QoS 0 then QoS 1.
rate_run() {
  local broker=$1 n=$2 run=$3 port stored t0 t1 c0 c1 hwm kv q
  port=$(free_port)
  if ! start "$broker" "$port" "$n"; then
    echo "   $broker did not start (log kept in $OUT/$broker.log)" >&2
    return 0
  fi
  t0=$(date +%s.%N)
  python3 "$HELPER" publish "$port" "$n"
  t1=$(date +%s.%N)
  stored=$(status_kb "$PID" VmRSS)
  for q in 0 1; do
    echo 5 >"/proc/$PID/clear_refs"
    c0=$(cpu_ticks "$PID")
    kv=$(timeout 1800 python3 "$HELPER" replay "$port" "$q" "$n" 5 || echo "delivered=0 error=replay")
    c1=$(cpu_ticks "$PID")
    hwm=$(status_kb "$PID" VmHWM)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$broker" "$run" "$q" "$kv" "$stored" "$hwm" \
      "$(echo "$c0 $c1" | awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($2 - $1) / hz}')" \
      "$(echo "$t0 $t1" | awk '{printf "%.1f", $2 - $1}')" >>"$OUT/raw.tsv"
    echo "   $broker N=$n run $run QoS $q: $kv peak_rss_kb=$hwm" >&2
  done
  stop
}

if [ "$MODE" = check ]; then
  N=${1:-100000}
  echo "| broker | what | result |"
  echo "|---|---|---:|"
  for b in tern mosquitto flashmq; do
    available "$b" && check "$b" "$N"
  done
  exit 0
fi

RUNS=${1:-3}
shift || true
SIZES="${*:-100000 1000000}"
OUT="${OUT:-${CARGO_TARGET_DIR:-target}/retained}"
rm -rf "$OUT"; mkdir -p "$OUT"
read -r -a wanted <<<"${BROKERS:-tern tern-65535 mosquitto mosquitto-unlimited flashmq flashmq-65535}"
brokers=()
for b in "${wanted[@]}"; do available "$b" && brokers+=("$b"); done
[ ${#brokers[@]} -gt 0 ] || { echo "no broker to run" >&2; exit 1; }
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(uname -sr)"
  echo "invocation: BROKERS=\"${brokers[*]}\" benches/retained_replay.sh --rate $RUNS $SIZES"
  echo "Tern: $("$TERN" --version 2>/dev/null || echo '?') ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
  [ -n "$MOSQ" ] && echo "Mosquitto: $("$MOSQ" -h 2>&1 | head -1)"
  [ -n "$FLASHMQ" ] && [ -x "$FLASHMQ" ] && echo "FlashMQ: $("$FLASHMQ" --version 2>/dev/null | head -1)"
} >"$OUT/header.txt"
n_b=${#brokers[@]}
for n in $SIZES; do
  for run in $(seq 1 "$RUNS"); do
    for i in $(seq 0 $((n_b - 1))); do
      broker="${brokers[$(((i + run - 1) % n_b))]}"
      echo "== N=$n run $run/$RUNS $broker" >&2
      rate_run "$broker" "$n" "$run"
    done
  done
done
cp "$TMP"/*.log "$OUT/" 2>/dev/null || true
cp "$TMP"/*.conf "$OUT/" 2>/dev/null || true
sed -E 's/127\.0\.0\.1:[0-9]+/127.0.0.1:PORT/; s/--max-retained-messages [0-9]+/--max-retained-messages max(N,100000)/; s|'"$TMP"'|$OUT|' \
  "$TMP/commands" | sort -u >"$OUT/commands.txt"
{
  cat "$OUT/header.txt"
  echo
  python3 "$HELPER" summary "$OUT/raw.tsv"
  echo
  echo "Broker command lines (the last configs are in $OUT/*.conf):"
  sed 's/^/    /' "$OUT/commands.txt"
} | tee "$OUT/report.md"
