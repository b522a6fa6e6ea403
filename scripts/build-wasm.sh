#!/usr/bin/env bash
# Builds the wasm node for the page into www/pkg/ (ES module + .wasm), optimised for size.
# Usage: scripts/build-wasm.sh [--dev]   (--dev: debug build, faster, larger)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=wasm-release
[ "${1:-}" = "--dev" ] && profile=dev
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")

cargo build --locked --lib --target wasm32-unknown-unknown --profile "$profile"
wasm-bindgen --target web --out-dir www/pkg \
  "target/wasm32-unknown-unknown/$dir/keep_light.wasm"
# No wasm-opt: Debian's binaryen (108) breaks wasm-bindgen's externref table
# ("WebAssembly.Table.grow(): failed to grow table"), and a newer one cannot be downloaded here.
size=$(stat -c %s www/pkg/keep_light_bg.wasm)
gz=$(gzip -9 -c www/pkg/keep_light_bg.wasm | wc -c)
echo "www/pkg/keep_light_bg.wasm: $size bytes, $gz gzipped" >&2
