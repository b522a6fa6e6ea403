#!/usr/bin/env bash
# Browser benchmarks, release builds on both sides, each printing one JSON line:
# - round trip: wasm node in headless Chromium → loopback WebSocket relay → native echo node and
#   back (connect time, p50/p99 of 256-byte messages);
# - group burst: the tab as a group member receiving a burst from three native members
#   (messages per second validated and handled in the tab);
# - connect: keep-light (the shipped wasm) and js-libp2p (built here by Vite) take turns in one
#   Chromium connecting to the same relay (www/tools/connect-bench.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo tools here; a non-login shell may not have it on PATH.
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh
cargo build --locked --release --bin keep-light
bin=target/release/keep-light
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

kl_start_browser_peers "$bin" "keep-light/bench/$$" "0x$(printf '%064x' 9)"
kl_start_group "$bin" "$KL_RELAY_TCP"
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300}
cargo test --locked --release --target wasm32-unknown-unknown --test browser_rtt \
  --test browser_channel -- --nocapture | tee "$KL_WORK/bench.log"
grep -o 'KEEP_LIGHT_BENCH .*}' "$KL_WORK/bench.log" | sed 's/^KEEP_LIGHT_BENCH //'

scripts/build-wasm.sh
(cd www && npx vite build --config tools/connect-bench/vite.config.js)
kl_serve_www 0 "keep-light/bench/$$"
(cd www && KEEP_LIGHT_PAGE_URL=$KL_PAGE_URL KEEP_LIGHT_TEST_RELAY=$KL_RELAY_WS node tools/connect-bench.mjs)
