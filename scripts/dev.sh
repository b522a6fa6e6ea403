#!/usr/bin/env bash
# The main job: builds the wasm package, starts two relays and a native member on loopback,
# serves the demo page (connected to one relay over WebSocket and to the other over
# WebRTC-direct) and prints its URL. Stop a relay to see the page go on through the other.
# Ctrl-C stops everything.
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
first=("$KL_RELAY_WS" "$KL_RELAY_TCP")
kl_start_relay "$bin" relay2
# A native member on both relays that echoes what the page sends and says hello every 10 s.
kl_start_echo_node "$bin" native "0x$(printf '%064x' 7)" "${first[1]} $KL_RELAY_TCP" "$topic" 10
kl_serve_www "$port" "$topic" "${first[0]}" "$KL_RELAY_WEBRTC"
printf '{"url":"%s"}\n' "$KL_PAGE_URL"
echo "relays ${first[0]} and $KL_RELAY_WEBRTC; logs and member events in $KL_WORK; Ctrl-C stops" >&2
wait
