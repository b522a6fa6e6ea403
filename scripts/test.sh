#!/usr/bin/env bash
# Runs every test: native unit, integration and doc tests, then the browser end-to-end test in
# headless Chromium against a real relay and native node started here. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo tools here; a non-login shell may not have it on PATH.
export PATH="$HOME/.cargo/bin:$PATH"

# CI builds once from clean: incremental caches would only cost disk (several GB) and time.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi

scripts/install-tools.sh

echo "== module imports (no cycle)"
python3 scripts/check-imports.py

echo "== native tests"
cargo test --locked
# Benchmarks are not built by `cargo test`; keep them compiling.
cargo check --locked --benches

echo "== BLS cross-check against py_ecc (live: our CLI ↔ the reference)"
cargo build --locked --bin keep-light
.venv/bin/python tests/crosscheck/bls_cli.py target/debug/keep-light
echo "== DKG cross-check against py_ecc (a simulated group's key, shares and signature)"
cargo build --locked --example dkg
.venv/bin/python tests/crosscheck/dkg_cli.py target/debug/examples/dkg

echo "== browser test (headless Chromium, wasm node ↔ relay ↔ native node)"
cargo build --locked --bin keep-light
bin=target/debug/keep-light
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

topic="keep-light/e2e/$$"
kl_start_browser_peers "$bin" "$topic" "0x$(printf '%064x' 7)" 0.3
kl_start_group "$bin" "$KL_RELAY_TCP"
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
cargo test --locked --target wasm32-unknown-unknown --test browser
cargo test --locked --target wasm32-unknown-unknown --test beacon_wasm

# The browser's message must appear in the native node's own output, not only in its echo.
if ! grep -q '"event":"message".*"data":"browser-hello-' "$KL_WORK/native.out"; then
  echo "the native node never reported the browser's message:" >&2
  cat "$KL_WORK/native.out" >&2
  exit 1
fi
echo "browser e2e: the native node received the browser's message"

# Each native group member got the tab's group text exactly once (and echoed it).
for i in 41 42 43; do
  n=$(grep '"event":"channel_message"' "$KL_WORK/group-$i.out" |
    grep "\"sender\":\"$KL_GROUP_BROWSER_ADDRESS\"" | grep -c '"text":"browser-group-hello"' || true)
  if [ "$n" != 1 ]; then
    echo "group member $i received the browser's text $n times (want 1):" >&2
    cat "$KL_WORK/group-$i.out" >&2
    exit 1
  fi
done
echo "browser group e2e: every native member received the tab's message exactly once"

echo "== page tests (the shipped wasm: release, wasm-opt, within its size budget)"
scripts/build-wasm.sh --check-budget

echo "== the npm package: its types (tsc --strict on a typed example) and its tarball"
(cd www && npm run --silent typecheck)
packed=$(cd www && npm pack --dry-run --json 2>/dev/null)
for file in src/keep-light.js src/keep-light.d.ts src/node-worker.js src/verifier-worker.js pkg/keep_light.js pkg/keep_light_bg.wasm; do
  if ! grep -q "\"path\": \"$file\"" <<<"$packed"; then
    echo "npm pack leaves out $file" >&2
    exit 1
  fi
done
if grep -q '"path": "e2e/' <<<"$packed"; then
  echo "npm pack takes the tests in" >&2
  exit 1
fi
# Installed from the tarball into an empty project, it resolves by name with every export.
consumer=$(mktemp -d)
tarball=$(cd www && npm pack --silent --pack-destination "$consumer")
(cd "$consumer" && echo '{"name":"consumer","private":true,"type":"module"}' >package.json &&
  npm install --silent --no-audit --no-fund "./$tarball" &&
  node -e "import('keep-light').then((m) => { for (const name of ['KeepLight', 'KeepLightError',
    'WalletRejectedError', 'NoRelayError', 'ChainError', 'QueueFullError', 'CrashError', 'loadWasm',
    'warmUp'])
    if (typeof m[name] !== 'function') throw new Error('keep-light does not export ' + name); })")
rm -rf "$consumer"
echo "npm package: types check, the tarball holds the shell and the wasm and installs"
kl_serve_www 0 "$topic"
export KEEP_LIGHT_PAGE_URL=$KL_PAGE_URL KEEP_LIGHT_NATIVE_ADDRESS=$KL_NATIVE_ADDRESS
# The fail-over test starts (and kills) relays of its own with this binary.
export KEEP_LIGHT_BIN=$PWD/$bin
# The flood test's junk sender (a bare libp2p peer, examples/flood.rs).
cargo build --locked --example flood
export KEEP_LIGHT_FLOOD_BIN=$PWD/target/debug/examples/flood
# The crash test's module: a debug build with the `test-hooks` feature (`panicForTests`).
cargo build --locked --lib --target wasm32-unknown-unknown --features test-hooks
wasm-bindgen --target web --out-dir target/e2e/pkg-test-hooks \
  target/wasm32-unknown-unknown/debug/keep_light.wasm
export KEEP_LIGHT_TEST_HOOKS_PKG=$PWD/target/e2e/pkg-test-hooks
(cd www && node --test e2e/) | tee "$KL_WORK/e2e.log"

# The relay's own record must show the tab's session key acting for the viem wallet.
attested=$(sed -n 's/.*KEEP_LIGHT_ATTESTED \([^ ]*\) \(0x[0-9a-fA-F]*\).*/"peer":"\1","operator":"\2"/p' "$KL_WORK/e2e.log")
if [ -z "$attested" ] || ! grep -q "\"event\":\"peer_attested\",$attested" "$KL_WORK/relay.out"; then
  echo "the relay never reported the wallet-delegated session key (${attested:-no peer}):" >&2
  cat "$KL_WORK/relay.out" >&2
  exit 1
fi
echo "identity e2e: the relay accepted the tab's wallet attestation ($attested)"
