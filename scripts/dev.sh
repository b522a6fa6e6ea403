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
# A native member that echoes what the page sends and says hello every 10 s.
kl_start_browser_peers "$bin" "$topic" "0x$(printf '%064x' 7)" 10
kl_serve_www "$port" "$topic"
printf '{"url":"%s"}\n' "$KL_PAGE_URL"
echo "relay $KL_RELAY_WS; native member events: $KL_WORK/native.out; Ctrl-C stops" >&2
wait
