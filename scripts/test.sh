#!/usr/bin/env bash
# Runs every test: native unit, integration and doc tests, then the browser end-to-end test in
# headless Chromium against a real relay and native node started here. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo tools here; a non-login shell may not have it on PATH.
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh

echo "== native tests"
cargo test --locked

echo "== browser test (headless Chromium, wasm node ↔ relay ↔ native node)"
cargo build --locked --bin keep-light
bin=target/debug/keep-light
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

topic="keep-light/e2e/$$"
native_key=0x$(printf '%064x' 7)
native_peer=$(kl_json_field "$("$bin" id --key-hex "$native_key")" peer_id)
kl_start_relay "$bin" relay
kl_start_echo_node "$bin" native "$native_key" "$KL_RELAY_TCP" "$topic" 0.3

export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
KEEP_LIGHT_TEST_RELAY=$KL_RELAY_WS \
KEEP_LIGHT_TEST_NATIVE_PEER=$native_peer \
KEEP_LIGHT_TEST_TOPIC=$topic \
  cargo test --locked --target wasm32-unknown-unknown --test browser

# The browser's message must appear in the native node's own output, not only in its echo.
if ! grep -q '"event":"message".*"data":"browser-hello-' "$KL_WORK/native.out"; then
  echo "the native node never reported the browser's message:" >&2
  cat "$KL_WORK/native.out" >&2
  exit 1
fi
echo "browser e2e: the native node received the browser's message"

echo "== page test (demo page in headless Chromium via playwright-core)"
scripts/build-wasm.sh --dev
python3 -u -m http.server --bind 127.0.0.1 --directory www 0 >"$KL_WORK/http.log" 2>&1 &
KL_PIDS+=($!)
port=$(kl_wait_line "$KL_WORK/http.log" 'Serving HTTP' 10 | sed -n 's/.* port \([0-9]*\).*/\1/p')
enc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
export KEEP_LIGHT_PAGE_URL="http://127.0.0.1:$port/?relay=$(enc "$KL_RELAY_WS")&topic=$(enc "$topic")"
export KEEP_LIGHT_NATIVE_ADDRESS
KEEP_LIGHT_NATIVE_ADDRESS=$(kl_json_field "$("$bin" id --key-hex "$native_key")" address)
(cd www && node --test e2e/)
