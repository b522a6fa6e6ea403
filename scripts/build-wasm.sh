#!/usr/bin/env bash
# Builds the wasm node for the page into www/pkg/ (ES module + .wasm), optimised for size
# (wasm-release profile, then wasm-opt --merge-similar-functions -Oz).
# Usage: scripts/build-wasm.sh [--dev | --check-budget]
#   --dev: debug build, faster, larger, no wasm-opt
#   --check-budget: fail when the release module is larger than www/wasm-budget.json allows
set -euo pipefail
cd "$(dirname "$0")/.."

profile=wasm-release
[ "${1:-}" = "--dev" ] && profile=dev
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")

# Panic locations name crates by their registry path: shortened to `crates/NAME-VERSION/…`, so
# the shipped module carries no build machine's paths (and 16 KB less of them).
remaps=()
if [ "$profile" != dev ]; then
  for registry in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
    [ -d "$registry" ] && remaps+=("'--remap-path-prefix=$registry=crates/'")
  done
fi
flags=$(IFS=,; echo "${remaps[*]}")
cargo build --locked --lib --target wasm32-unknown-unknown --profile "$profile" \
  ${flags:+--config "target.wasm32-unknown-unknown.rustflags=[$flags]"}
wasm-bindgen --target web --out-dir www/pkg \
  "target/wasm32-unknown-unknown/$dir/keep_light.wasm"
if [ "$profile" != dev ]; then
  # npm's binaryen (a www/ dev dependency, installed by scripts/install-tools.sh): Debian's (108)
  # is too old for wasm-bindgen's output (it broke the externref table).
  wasm_opt=www/node_modules/.bin/wasm-opt
  if [ ! -x "$wasm_opt" ]; then
    echo "no $wasm_opt: run scripts/install-tools.sh" >&2
    exit 1
  fi
  # --merge-similar-functions first: functions alike but for a constant become one (−25 KB raw).
  "$wasm_opt" --merge-similar-functions -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
    www/pkg/keep_light_bg.wasm -o www/pkg/keep_light_bg.wasm
fi
size=$(stat -c %s www/pkg/keep_light_bg.wasm)
gz=$(gzip -9 -c www/pkg/keep_light_bg.wasm | wc -c)
echo "www/pkg/keep_light_bg.wasm: $size bytes, $gz gzipped" >&2
if [ "${1:-}" = "--check-budget" ]; then
  read -r max_gz max_raw < <(python3 -c 'import json; b = json.load(open("www/wasm-budget.json")); print(b["gzip_bytes"], b["raw_bytes"])')
  if [ "$gz" -gt "$max_gz" ] || [ "$size" -gt "$max_raw" ]; then
    echo "the wasm is over its budget (www/wasm-budget.json): $gz > $max_gz gzip bytes or $size > $max_raw raw" >&2
    exit 1
  fi
  echo "wasm size within budget: $gz of $max_gz gzip bytes, $size of $max_raw raw" >&2
fi
