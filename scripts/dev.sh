#!/usr/bin/env bash
# The main job: builds the wasm package and runs `keep-light dev` (DESIGN.md section 8): the dev
# chain, two relays, native beacon members, a relay request every 10 blocks, and the page with
# the chain's JSON-RPC at /rpc. Prints {"url": ...} once the relays and members are up, then one JSON
# line per relay entry. Ctrl-C stops everything.
# Arguments go to `keep-light dev` (e.g. --headless --entries 3, --members 7 --group-size 5
# --threshold 3, --silent-members 1, --block-time 1000, --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo tools here; a non-login shell may not have it on PATH.
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh >&2
scripts/build-wasm.sh >&2
cargo build --locked --release --bin keep-light >&2
exec target/release/keep-light dev "$@"
