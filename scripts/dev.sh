#!/usr/bin/env bash
# The main job: builds the wasm package, starts a relay and a native member on loopback, serves
# the demo page and prints its URL. Ctrl-C stops everything.
# Settings (environment): KEEP_LIGHT_PORT (page, default 8080), KEEP_LIGHT_TOPIC.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo tools here; a non-login shell may not have it on PATH.
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh
scripts/build-wasm.sh
cargo build --locked --bin keep-light
bin=target/debug/keep-light
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

port=${KEEP_LIGHT_PORT:-8080}
topic=${KEEP_LIGHT_TOPIC:-keep-light/demo/1}
kl_start_relay "$bin" relay
# A native member that echoes what the page sends and says hello every 10 s.
kl_start_echo_node "$bin" native "0x$(printf '%064x' 7)" "$KL_RELAY_TCP" "$topic" 10

python3 -u -m http.server --bind 127.0.0.1 --directory www "$port" >"$KL_WORK/http.log" 2>&1 &
KL_PIDS+=($!)
kl_wait_line "$KL_WORK/http.log" 'Serving HTTP' 10 >/dev/null || true

enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$KL_RELAY_WS")
tenc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$topic")
printf '{"url":"http://127.0.0.1:%s/?relay=%s&topic=%s"}\n' "$port" "$enc" "$tenc"
echo "relay $KL_RELAY_WS; native member events: $KL_WORK/native.out; Ctrl-C stops" >&2
wait
