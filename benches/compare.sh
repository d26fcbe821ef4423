#!/usr/bin/env bash
# Side-by-side benchmark: Tern, Mosquitto, rumqttd and FlashMQ, same machine, same run.
#
#   benches/compare.sh [RUNS] [SECONDS]      (defaults: 3 runs of 5 s)
#
# Environment (all optional):
#   BROKERS="tern mosquitto rumqttd flashmq"
#                                     brokers to compare (default: all four). A
#                                     broker that is missing or does not start is
#                                     reported as n/a; the script carries on.
#                                     tern-tls and mosquitto-tls are the same
#                                     brokers over TLS (port 18865 / 18866, one
#                                     ECDSA P-256 certificate made by openssl;
#                                     tern-bench --tls --cafile)
#   SCENARIOS="fanin-q1 conns ..."    scenarios to run (default: all, in the order
#                                     of SCENARIO_LIST below; `latency` selects
#                                     latency-fanin and latency-fanout)
#   CONNS=19000                       idle connections in `conns`
#   TERN_ARGS="--flag value ..."      extra flags for every Tern start
#   TERN_BIN, TERN_BENCH              use these binaries; when both are set,
#                                     nothing is built (default: cargo build
#                                     --release, target/release/{tern,tern-bench})
#   RUMQTTD=/path/to/rumqttd          use this rumqttd binary
#   FLASHMQ=/path/to/flashmq          use this FlashMQ binary (default:
#                                     /work/flashmq/build/flashmq, then flashmq on
#                                     PATH; benches/README.md says how to build it)
#   FLASHMQ_CONF_EXTRA='key value\n' lines appended to the global part of
#                                     flashmq.conf (printf %b)
#   PEERS_ROOT=target/peers           `cargo install rumqttd --root` here when no
#                                     rumqttd is found (RUMQTTD, PEERS_ROOT/bin,
#                                     /tmp/peers/rumqttd/bin, PATH, in that order)
#   OUT=target/compare                results directory, emptied at start
#
# Every (scenario, broker, run) starts a fresh broker, runs one tern-bench
# against it and stops it, so the peak RSS (VmHWM) is that scenario's alone and
# `conns` measures RSS per connection on an empty broker. Only one broker runs
# at a time. Brokers alternate within each run, and the first broker rotates
# from run to run. The open-file soft limit is raised to the hard limit
# (`ulimit -n $(ulimit -Hn)`) in each broker's shell; tern-bench raises its own.
#
# Output: one Markdown table per scenario on stdout (and target/compare/report.md)
# with medians over runs, the tern-bench and broker command lines, and a ratio
# column: Tern ÷ best peer on the scenario's target metric. Raw tern-bench JSON
# per run: target/compare/<scenario>.<broker>.<run>.json; broker output in
# target/compare/logs/. Re-print with `python3 benches/compare_report.py target/compare`.
#
# Scenarios (100-byte payloads, tern-bench defaults: closed loop, window 100,
# MQTT 3.1.1, no warm-up, 2 s drain):
#   fanin-q0 / -q1 / -q2  8 publishers → 1 subscriber, QoS 0 / 1 / 2
#   fanout-q1             1 publisher → 200 subscribers, QoS 1
#   fanout-q0-1k          1 publisher → 1,000 subscribers, QoS 0
#   pairs-q0              100 publisher/subscriber pairs, QoS 0
#   latency-fanin         8 publishers × 2,500 msg/s → 1 subscriber (20k deliveries/s), QoS 1, 1 s warm-up
#   latency-fanout        1 publisher × 100 msg/s → 200 subscribers (20k deliveries/s), QoS 1, 1 s warm-up
#   flood                 fanin-q0 with --window 0 (publishers write as fast as TCP allows);
#                         look at peak RSS and lost (QoS 0 messages the broker dropped)
#   conns                 CONNS idle connections held for SECONDS; connects/s and RSS per connection
#   scaling               fanout-q1 against Tern with --workers 1 and --workers 2 (Tern only)
# Target metric of the ratio column: deliveries per broker CPU-second (higher is
# better), except latency-*: p99; flood: peak RSS; conns: KiB per idle
# connection (lower is better); scaling: deliveries/s, workers 2 ÷ workers 1.
#
# Broker settings
#   Tern      target/release/tern --bind 127.0.0.1:18861 --no-metrics --log-level warn
#             on its DEFAULT limits (max_inflight 32, max_queued_messages 1000,
#             max_queued_bytes 16 MiB, writer_buffer_bytes 1 MiB, one worker per core).
#             conns adds --max-connections-per-ip 0 (unlimited; already the default,
#             given so a changed default cannot cap the test; max_connections 100000
#             is above CONNS). scaling adds --workers 1 / --workers 2. TERN_ARGS is
#             appended to every start.
#   Mosquitto mosquitto -c target/compare/mosquitto.conf: listener 18862 on 127.0.0.1,
#             allow_anonymous, persistence false, max_inflight_messages 0 and
#             max_queued_messages 0 (both unlimited), set_tcp_nodelay true,
#             max_connections -1, log_type error + warning, connection_messages false
#             (a log line per connection would cost CPU in conns).
#   rumqttd   rumqttd -q -c target/compare/rumqttd.toml (rumqttd 0.20 config format):
#             v4 (3.1.1) listener 127.0.0.1:18863 and v5 listener 127.0.0.1:18864
#             (tern-bench uses the v4 one), next_connection_delay_ms 0 (the demo's 1 ms
#             would cap connects at 1,000/s), connection_timeout_ms 60000,
#             max_payload_size 1 MiB, max_inflight_count 65535 (rumqttd uses it as the
#             most packets read from one connection per batch; its outgoing QoS 1/2
#             inflight is fixed at 100 in the router), dynamic_filters true; router
#             max_connections 20010, max_outgoing_packet_count 200 (QoS 0 messages
#             read per subscriber per turn), max_segment_size 100 MiB ×
#             max_segment_count 10 (the demo's in-memory commit log: up to ~1 GiB per
#             topic before old segments are dropped). No persistence exists; no
#             console, prometheus or metrics sections, so nothing else listens.
#             Logs at its default (warn).
#   FlashMQ   flashmq --config-file target/compare/flashmq.conf (FlashMQ 1.26):
#             thread_count $(nproc) (its default is one per CPU; given explicitly),
#             allow_anonymous true, no storage_dir (no persistence), log_level
#             warning (no line per connection), rlimit_nofile = the open-file hard
#             limit (its default of 1,000,000 fails here without CAP_SYS_RESOURCE),
#             one listen block: protocol mqtt, ip4 127.0.0.1:18867, tcp_nodelay true.
#             Its queue limits stay at their DEFAULTS, and two of them drop messages
#             under load: max_qos_msg_pending_per_client 512 (QoS 1/2 messages in
#             flight per client; the next one is dropped, "Dropping QoS message(s)"
#             in its log) and client_max_write_buffer_size 1 MiB (a QoS 0 PUBLISH
#             that does not fit in the client's write buffer is dropped).
#             max_qos_bytes_pending_per_client 64 KiB only bounds the queue of
#             persistent sessions (clean sessions queue nothing). FLASHMQ_CONF_EXTRA
#             is appended to the global settings.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
SECS="${2:-5}"
CONNS="${CONNS:-19000}"
OUT="${OUT:-target/compare}"
PEERS_ROOT="${PEERS_ROOT:-target/peers}"
BROKERS="${BROKERS:-tern mosquitto rumqttd flashmq}"
TERN_ARGS="${TERN_ARGS:-}"
TERN_PORT=18861; MOSQ_PORT=18862; RUMQTTD_PORT=18863; RUMQTTD_V5_PORT=18864
TERN_TLS_PORT=18865; MOSQ_TLS_PORT=18866; FLASHMQ_PORT=18867

SCENARIO_LIST="fanin-q0 fanin-q1 fanin-q2 fanout-q1 fanout-q0-1k pairs-q0 latency-fanin latency-fanout flood conns scaling"

# tern-bench arguments of a scenario (port, duration, pid and output flags are added).
bench_args() {
  case $1 in
    fanin-q0) echo "fanin --pubs 8 --subs 1 --qos 0" ;;
    fanin-q1) echo "fanin --pubs 8 --subs 1 --qos 1" ;;
    fanin-q2) echo "fanin --pubs 8 --subs 1 --qos 2" ;;
    fanout-q1) echo "fanout --pubs 1 --subs 200 --qos 1" ;;
    fanout-q0-1k) echo "fanout --pubs 1 --subs 1000 --qos 0" ;;
    pairs-q0) echo "pairs --pubs 100 --qos 0" ;;
    latency-fanin) echo "fanin --pubs 8 --subs 1 --qos 1 --rate 2500 --warmup 1" ;;
    latency-fanout) echo "fanout --pubs 1 --subs 200 --qos 1 --rate 100 --warmup 1" ;;
    flood) echo "fanin --pubs 8 --subs 1 --qos 0 --window 0" ;;
    conns) echo "conns --conns $CONNS" ;;
    scaling) echo "fanout --pubs 1 --subs 200 --qos 1" ;;
    *) return 1 ;;
  esac
}

# Expand and check $SCENARIOS.
SELECTED=()
for s in ${SCENARIOS:-$SCENARIO_LIST}; do
  if [ "$s" = latency ]; then SELECTED+=(latency-fanin latency-fanout); continue; fi
  bench_args "$s" >/dev/null || { echo "unknown scenario '$s' (known: $SCENARIO_LIST latency)" >&2; exit 1; }
  SELECTED+=("$s")
done
for b in $BROKERS; do
  case $b in tern|mosquitto|rumqttd|flashmq|tern-tls|mosquitto-tls) ;;
    *) echo "unknown broker '$b' (known: tern mosquitto rumqttd flashmq tern-tls mosquitto-tls)" >&2; exit 1 ;;
  esac
done
has_broker() { case " $BROKERS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# Binaries.
if [ -n "${TERN_BIN:-}" ] && [ -n "${TERN_BENCH:-}" ]; then
  echo "using TERN_BIN=$TERN_BIN TERN_BENCH=$TERN_BENCH (not building)" >&2
else
  cargo build --release --locked -p tern-broker -p tern-benches >&2
fi
TERN_BIN="${TERN_BIN:-target/release/tern}"
BENCH="${TERN_BENCH:-target/release/tern-bench}"
[ -x "$BENCH" ] || { echo "tern-bench not found at $BENCH" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed for the report" >&2; exit 1; }
rm -rf "$OUT"; mkdir -p "$OUT/logs"

MOSQ_BIN=""
if has_broker mosquitto || has_broker mosquitto-tls; then
  MOSQ_BIN="$(command -v mosquitto || true)"
  [ -n "$MOSQ_BIN" ] || echo "mosquitto not installed (apt-get install mosquitto): reported as n/a" >&2
fi
RUMQTTD_BIN=""
if has_broker rumqttd; then
  if [ -n "${RUMQTTD:-}" ]; then
    if [ -x "$RUMQTTD" ]; then RUMQTTD_BIN="$RUMQTTD"; else echo "RUMQTTD=$RUMQTTD is not executable: reported as n/a" >&2; fi
  else
    for c in "$PEERS_ROOT/bin/rumqttd" /tmp/peers/rumqttd/bin/rumqttd "$(command -v rumqttd || true)"; do
      if [ -n "$c" ] && [ -x "$c" ]; then RUMQTTD_BIN="$c"; break; fi
    done
    if [ -z "$RUMQTTD_BIN" ]; then
      echo "rumqttd not found: cargo install rumqttd --root $PEERS_ROOT (several minutes; log $OUT/rumqttd-install.log)" >&2
      if cargo install rumqttd --root "$PEERS_ROOT" >"$OUT/rumqttd-install.log" 2>&1; then
        RUMQTTD_BIN="$PEERS_ROOT/bin/rumqttd"
      else
        echo "rumqttd install failed (see $OUT/rumqttd-install.log): reported as n/a" >&2
      fi
    fi
  fi
fi

FLASHMQ_BIN=""
if has_broker flashmq; then
  if [ -n "${FLASHMQ:-}" ]; then
    if [ -x "$FLASHMQ" ]; then FLASHMQ_BIN="$FLASHMQ"; else echo "FLASHMQ=$FLASHMQ is not executable: reported as n/a" >&2; fi
  else
    for c in /work/flashmq/build/flashmq "$(command -v flashmq || true)"; do
      if [ -n "$c" ] && [ -x "$c" ]; then FLASHMQ_BIN="$c"; break; fi
    done
    [ -n "$FLASHMQ_BIN" ] ||
      echo "flashmq not found (FLASHMQ, /work/flashmq/build/flashmq, PATH; see benches/README.md to build it): reported as n/a" >&2
  fi
fi

cat >"$OUT/mosquitto.conf" <<CONF
listener $MOSQ_PORT 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 0
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
connection_messages false
CONF

{
  printf 'thread_count %s\nallow_anonymous true\nlog_level warning\nrlimit_nofile %s\n' "$(nproc)" "$(ulimit -Hn)"
  [ -n "${FLASHMQ_CONF_EXTRA:-}" ] && printf '%b\n' "$FLASHMQ_CONF_EXTRA"
  printf 'listen {\n  protocol mqtt\n  port %s\n  inet_protocol ip4\n  inet4_bind_address 127.0.0.1\n  tcp_nodelay true\n}\n' "$FLASHMQ_PORT"
} >"$OUT/flashmq.conf"

# tern-tls / mosquitto-tls: the same brokers with a TLS listener, one ECDSA
# P-256 certificate made here; tern-bench connects with --tls.
if has_broker tern-tls || has_broker mosquitto-tls; then
  mkdir -p "$OUT/certs"
  (
    cd "$OUT/certs"
    q() { openssl "$@" >/dev/null 2>&1; }
    q req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
      -days 2 -subj "/CN=compare CA"
    q req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr \
      -subj "/CN=localhost"
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >ext.cnf
    q x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf \
      -out server.pem
    # Mosquitto started as root reads its files as the `mosquitto` user.
    chmod 755 . && chmod 644 ./*
  )
fi
cat >"$OUT/tern-tls.toml" <<CONF
bind = []
[[listener]]
bind = "127.0.0.1:$TERN_TLS_PORT"
kind = "tls"
tls.certfile = "$OUT/certs/server.pem"
tls.keyfile = "$OUT/certs/server.key"
CONF
{
  echo "listener $MOSQ_TLS_PORT 127.0.0.1"
  echo "certfile $OUT/certs/server.pem"
  echo "keyfile $OUT/certs/server.key"
  grep -v '^listener ' "$OUT/mosquitto.conf"
} >"$OUT/mosquitto-tls.conf"

cat >"$OUT/rumqttd.toml" <<CONF
id = 0

[router]
max_connections = 20010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "127.0.0.1:$RUMQTTD_PORT"
next_connection_delay_ms = 0
    [v4.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 65535
    dynamic_filters = true

[v5.1]
name = "v5-1"
listen = "127.0.0.1:$RUMQTTD_V5_PORT"
next_connection_delay_ms = 0
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 65535
    dynamic_filters = true
CONF

# Brokers run in a scenario: scaling compares two Tern configurations.
scenario_brokers() {
  if [ "$1" = scaling ]; then
    if has_broker tern; then echo "tern-w1 tern-w2"; fi
  else
    echo "$BROKERS"
  fi
}

# The command line starting BROKER for SCENARIO; fails when the binary is missing.
broker_cmd() {
  local broker=$1 name=$2 flags=""
  case $broker in
    tern | tern-w1 | tern-w2)
      [ -x "$TERN_BIN" ] || return 1
      [ "$name" = conns ] && flags+=" --max-connections-per-ip 0"
      [ "$broker" = tern-w1 ] && flags+=" --workers 1"
      [ "$broker" = tern-w2 ] && flags+=" --workers 2"
      echo "$TERN_BIN --bind 127.0.0.1:$TERN_PORT --no-metrics --log-level warn$flags${TERN_ARGS:+ $TERN_ARGS}" ;;
    tern-tls)
      [ -x "$TERN_BIN" ] || return 1
      [ "$name" = conns ] && flags+=" --max-connections-per-ip 0"
      echo "$TERN_BIN --config $OUT/tern-tls.toml --no-metrics --log-level warn$flags${TERN_ARGS:+ $TERN_ARGS}" ;;
    mosquitto) [ -n "$MOSQ_BIN" ] || return 1; echo "$MOSQ_BIN -c $OUT/mosquitto.conf" ;;
    mosquitto-tls) [ -n "$MOSQ_BIN" ] || return 1; echo "$MOSQ_BIN -c $OUT/mosquitto-tls.conf" ;;
    rumqttd) [ -n "$RUMQTTD_BIN" ] || return 1; echo "$RUMQTTD_BIN -q -c $OUT/rumqttd.toml" ;;
    flashmq) [ -n "$FLASHMQ_BIN" ] || return 1; echo "$FLASHMQ_BIN --config-file $OUT/flashmq.conf" ;;
  esac
}
broker_port() {
  case $1 in
    mosquitto) echo $MOSQ_PORT ;; rumqttd) echo $RUMQTTD_PORT ;; flashmq) echo $FLASHMQ_PORT ;;
    tern-tls) echo $TERN_TLS_PORT ;; mosquitto-tls) echo $MOSQ_TLS_PORT ;;
    *) echo $TERN_PORT ;;
  esac
}
# tern-bench flags a broker needs besides the scenario's.
broker_bench_args() {
  case $1 in *-tls) echo "--tls --cafile $OUT/certs/ca.pem" ;; esac
}

# Is something listening on 127.0.0.1:PORT?
listening() {
  if command -v ss >/dev/null; then
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
  else
    ! python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
  fi
}

BPID=""
stop_broker() {
  [ -n "$BPID" ] || return 0
  kill "$BPID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$BPID" 2>/dev/null; then
    # A broker that ignores SIGTERM is a bug worth seeing, not just a slow run.
    echo "compare.sh: broker pid $BPID still running 10 s after SIGTERM; killing it" >&2
    kill -9 "$BPID" 2>/dev/null || true
  fi
  wait "$BPID" 2>/dev/null || true
  BPID=""
}
trap stop_broker EXIT INT TERM

# Start BROKER for SCENARIO with output to LOG; sets BPID and BPORT. Fails when
# the port is taken, or the broker exits or does not listen within 10 s.
start_broker() {
  local broker=$1 name=$2 log=$3 cmd
  cmd="$(broker_cmd "$broker" "$name")" || return 1
  BPORT="$(broker_port "$broker")"
  if listening "$BPORT"; then echo "port $BPORT is already in use" >>"$log"; return 1; fi
  # shellcheck disable=SC2086
  (ulimit -n "$(ulimit -Hn)"; exec $cmd) >>"$log" 2>&1 &
  BPID=$!
  for _ in $(seq 1 100); do
    if ! kill -0 "$BPID" 2>/dev/null; then wait "$BPID" 2>/dev/null || true; BPID=""; return 1; fi
    listening "$BPORT" && return 0
    sleep 0.1
  done
  stop_broker
  return 1
}

# Records for the report.
{
  printf 'runs\t%s\nsecs\t%s\ndate\t%s\n' "$RUNS" "$SECS" "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'invocation\t%s\n' "BROKERS=\"$BROKERS\" SCENARIOS=\"${SELECTED[*]}\" CONNS=$CONNS${TERN_ARGS:+ TERN_ARGS=\"$TERN_ARGS\"} benches/compare.sh $RUNS $SECS"
  printf 'version\tTern: %s (%s)\n' "$("$TERN_BIN" --version 2>/dev/null || echo n/a)" "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ', with local changes')"
  [ -n "$MOSQ_BIN" ] && printf 'version\t%s\n' "$("$MOSQ_BIN" -h 2>&1 | head -1)"
  [ -n "$RUMQTTD_BIN" ] && printf 'version\t%s\n' "$("$RUMQTTD_BIN" --version 2>/dev/null || echo rumqttd)"
  [ -n "$FLASHMQ_BIN" ] && printf 'version\t%s\n' "$("$FLASHMQ_BIN" --version 2>/dev/null | head -1)"
  printf 'version\t%s cores, %s; open-file hard limit %s\n' "$(nproc)" "$(uname -sr)" "$(ulimit -Hn)"
} >"$OUT/run.tsv"
: >"$OUT/scenarios.tsv"; : >"$OUT/brokers.tsv"

echo "running ${SELECTED[*]} × {$(echo $BROKERS)} × $RUNS run(s) of $SECS s" >&2
for name in "${SELECTED[@]}"; do
  args="$(bench_args "$name")"
  read -r -a brokers <<<"$(scenario_brokers "$name")"
  [ ${#brokers[@]} -gt 0 ] || { echo "skipping $name: it needs tern in BROKERS" >&2; continue; }
  printf '%s\t%s\t%s\n' "$name" "${brokers[*]}" \
    "$BENCH $args --port <port> --duration $SECS --broker-pid <pid> --json --quiet" >>"$OUT/scenarios.tsv"
  for b in "${brokers[@]}"; do
    printf '%s\t%s\t%s\n' "$name" "$b" "$(broker_cmd "$b" "$name" || echo "n/a (not installed)")" >>"$OUT/brokers.tsv"
  done
  n=${#brokers[@]}
  for run in $(seq 1 "$RUNS"); do
    for i in $(seq 0 $((n - 1))); do
      broker="${brokers[$(((i + run - 1) % n))]}"
      json="$OUT/$name.$broker.$run.json"; log="$OUT/logs/$name.$broker.$run.log"
      echo "== $name $broker run $run/$RUNS" >&2
      if ! broker_cmd "$broker" "$name" >/dev/null; then
        echo '{"status":"n/a"}' >"$json"; continue
      fi
      if ! start_broker "$broker" "$name" "$log"; then
        echo "   $broker did not start; see $log" >&2
        echo '{"status":"no start"}' >"$json"; continue
      fi
      extra="$(broker_bench_args "$broker")"
      echo "== $name $broker run $run: $BENCH $args $extra --port $BPORT --duration $SECS --broker-pid $BPID" >>"$OUT/bench.log"
      # shellcheck disable=SC2086
      timeout $((SECS + 300)) "$BENCH" $args $extra --port "$BPORT" --duration "$SECS" --broker-pid "$BPID" --json --quiet \
        >"$json" 2>>"$OUT/bench.log" || true
      if ! kill -0 "$BPID" 2>/dev/null; then
        echo "   $broker exited during the run; see $log" >&2
        [ -s "$json" ] || echo '{"status":"broker exited"}' >"$json"
      fi
      [ -s "$json" ] || echo '{"status":"no output"}' >"$json"
      stop_broker
    done
  done
done

python3 benches/compare_report.py "$OUT" | tee "$OUT/report.md"
