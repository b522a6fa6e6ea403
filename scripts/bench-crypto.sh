#!/usr/bin/env bash
# Crypto benchmarks: criterion natively (`cargo bench --bench bls --bench identity --bench dkg`), then the
# same cases in headless Chromium (benches/crypto_wasm.rs, release wasm). Prints the browser
# harness's JSON lines last (BLS, identity, then one member's DKG phases at 64/33). `--browser-only` skips the native run.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo tools here; a non-login shell may not have it on PATH.
export PATH="$HOME/.cargo/bin:$PATH"

scripts/install-tools.sh
if [ "${1:-}" != "--browser-only" ]; then
  cargo bench --locked --bench bls --bench identity --bench dkg
fi
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-300}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --locked --release --target wasm32-unknown-unknown --test crypto_wasm -- --nocapture | tee "$log"
grep -o 'KEEP_LIGHT_BENCH .*}' "$log" | sed 's/^KEEP_LIGHT_BENCH //'
