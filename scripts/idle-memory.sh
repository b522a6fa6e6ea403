#!/usr/bin/env bash
# An idle tab's memory over time (www/tools/idle-memory.mjs): the shipped wasm in headless
# Chromium, connected to a release relay on loopback and left alone. Prints one JSON line.
# Usage: KEEP_LIGHT_IDLE_MINUTES=10 scripts/idle-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh
cargo build --locked --release --bin keep-light
scripts/build-wasm.sh
bin=target/release/keep-light
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

kl_start_relay "$bin" relay
kl_serve_www 0 "keep-light/idle/$$"
(cd www && KEEP_LIGHT_PAGE_URL=$KL_PAGE_URL KEEP_LIGHT_TEST_RELAY=$KL_RELAY_WS node tools/idle-memory.mjs)
