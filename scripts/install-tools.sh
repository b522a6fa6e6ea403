#!/usr/bin/env bash
# Installs, when missing, everything the build, the tests and the demo need on a fresh Debian
# machine: the wasm32 target, wasm-bindgen-cli at the version in Cargo.lock, Debian's Chromium
# and chromedriver (browser tests), and the npm packages of www/ when it has any.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustup installs cargo tools here; a non-login shell may not have it on PATH.
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '[install] %s\n' "$*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# The CLI must match the wasm-bindgen crate in Cargo.lock exactly.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (found '${have:-none}')"
  cargo install wasm-bindgen-cli --version "$want" --locked
fi

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm writes node_modules/.package-lock.json on install; an older one means the lock changed.
if [ -f www/package.json ] && { [ ! -f www/node_modules/.package-lock.json ] ||
  [ www/package-lock.json -nt www/node_modules/.package-lock.json ]; }; then
  say "installing npm packages of www/"
  (cd www && npm ci --no-audit --no-fund --loglevel=error)
fi

# py_ecc (the Ethereum Foundation's BN254 reference) for the BLS cross-check, in a project venv.
if ! .venv/bin/python -c 'import py_ecc, Crypto' 2>/dev/null; then
  say "installing the Python cross-check packages into .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r tests/crosscheck/requirements.txt
fi
