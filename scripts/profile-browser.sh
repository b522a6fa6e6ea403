#!/usr/bin/env bash
# Profiles one wasm node in a tab during a group burst (www/tools/profile-group.mjs): the
# shipped wasm artefact (scripts/build-wasm.sh) on the demo page, a release relay and three
# release group members on loopback. Prints the tab's msgs/s, its main-thread CPU per message
# and the functions with the most self time.
# Usage: scripts/profile-browser.sh [--dev]   (--dev: profile the debug wasm build)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh
cargo build --locked --release --bin keep-light
scripts/build-wasm.sh "$@"
bin=target/release/keep-light
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

kl_start_relay "$bin" relay
kl_start_group "$bin" "$KL_RELAY_TCP"
kl_serve_www 0 "keep-light/profile/$$"
# The page without ?relay= starts no node of its own: the tab's main thread then runs only the
# node the profiler starts, and all of it is counted.
export KEEP_LIGHT_TEST_RELAY=$KL_RELAY_WS KEEP_LIGHT_PAGE_URL=${KL_PAGE_URL%%\?*}
(cd www && node tools/profile-group.mjs)
