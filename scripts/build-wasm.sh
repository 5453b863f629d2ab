#!/usr/bin/env bash
# Builds the crate for wasm32-unknown-unknown and runs wasm-bindgen into pkg/.
# Uses rustup's wasm32 target where it is installed; otherwise Debian's rustc-web with -Zbuild-std
# (see scripts/setup.sh). The wasm build has its own target directory so the two compilers never
# rebuild each other's artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/common.sh

export CARGO_TARGET_DIR="$PWD/target-wasm"
# candle's SIMD kernels key on simd128; getrandom (through rand) needs its browser backend.
# LLVM's loop strength reduction is off: it rewrites the engine's products' pointers, moved on
# a step at a time, into one index with the operands' offsets added to it, which V8 then adds
# with an instruction a load (src/engine/matmul.rs, `tile`; README, "The CPU engine").
export RUSTFLAGS='-C target-feature=+simd128 -C llvm-args=-disable-lsr --cfg getrandom_backend="wasm_js"'
# Two modules from the one crate: the whole API (pkg/latent_lab.js) and, without the `full`
# feature, the light sampler a page draws its first digits with (pkg/sampler.js, src/wasm_sampler.rs).
# The whole module is built twice: plain simd128 (pkg/latent_lab_bg.wasm) and with relaxed SIMD
# (pkg/latent_lab_relaxed_bg.wasm: the engine's products use f32x4.relaxed_madd), which
# www/assets.js loads where the browser validates it (Safari rejects any module containing it).
# Both binaries share one JS glue, which the build checks.
build() {
  local args=(build --lib --target wasm32-unknown-unknown --profile wasm-release "$@")
  if have_rustup_wasm && [[ " $* " != *" -Zbuild-std="* ]]; then
    cargo "${args[@]}"
  elif have_rustup_wasm && have_rustup_src; then
    # -Zbuild-std is unstable: stable cargo takes it where told it may.
    RUSTC_BOOTSTRAP=1 cargo "${args[@]}"
  else
    # (this path builds std in any case: the flag once, below)
    local a kept=()
    for a in "${args[@]}"; do [[ $a == -Zbuild-std=* ]] || kept+=("$a"); done
    args=("${kept[@]}")
    # Debian's rustc ships no linker for wasm; rustup's toolchain carries rust-lld.
    lld="$("$(rustup which rustc)" --print sysroot)/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
    [ -x "$lld" ] || lld=$(command -v wasm-ld-22 || command -v wasm-ld || true)
    [ -n "$lld" ] || { echo "build-wasm: no wasm linker (rust-lld or wasm-ld) found" >&2; exit 1; }
    RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER="$lld" \
      /usr/bin/cargo "${args[@]}" -Zbuild-std=std,panic_abort
  fi
}

# Into a fresh folder first, so an interrupted run never leaves a half-written pkg/ behind.
rm -rf pkg.tmp
out="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm-release/latent_lab.wasm"
build
wasm-bindgen --target web --weak-refs --out-dir pkg.tmp "$out"
build --no-default-features
wasm-bindgen --target web --weak-refs --out-dir pkg.tmp --out-name sampler "$out"
# Relaxed SIMD: its own target directory, since other RUSTFLAGS would rebuild everything in turn.
CARGO_TARGET_DIR="$PWD/target-wasm-relaxed" RUSTFLAGS="${RUSTFLAGS/+simd128/+simd128,+relaxed-simd}" build
wasm-bindgen --target web --weak-refs --out-dir pkg.tmp/relaxed "$PWD/target-wasm-relaxed/wasm32-unknown-unknown/wasm-release/latent_lab.wasm"
# The glue names the functions the binary imports and exports: the two builds' must be the same.
same_glue() {
  if ! cmp -s "$1" "$2"; then
    echo "build-wasm: the relaxed-SIMD build's JS glue ($2) differs from the plain build's ($1):" >&2
    diff "$1" "$2" | head -20 >&2
    exit 1
  fi
}
same_glue pkg.tmp/latent_lab.js pkg.tmp/relaxed/latent_lab.js
mv pkg.tmp/relaxed/latent_lab_bg.wasm pkg.tmp/latent_lab_relaxed_bg.wasm
rm -rf pkg.tmp/relaxed
# Threads (feature `threads`, for cross-origin isolated pages' training workers): atomics and
# bulk memory over one shared, imported memory (up to 1 GiB), with the thread-local storage
# exports wasm-bindgen's thread support needs; std rebuilt with them (-Zbuild-std), since
# rustup's wasm32 std is built without. Two binaries again, simd128 and relaxed SIMD, each in its
# own target directory, sharing one glue of their own (it imports the memory and exports
# initThreadPool), with wasm-bindgen-rayon's worker script beside it in pkg/threads/snippets/.
threads_build() { # target directory, target features
  local flags="${RUSTFLAGS/+simd128/$2}"
  for arg in --shared-memory --max-memory=1073741824 --import-memory \
             --export=__wasm_init_tls --export=__tls_size --export=__tls_align --export=__tls_base; do
    flags+=" -C link-arg=$arg"
  done
  CARGO_TARGET_DIR="$PWD/$1" RUSTFLAGS="$flags" build --features threads -Zbuild-std=std,panic_abort
}
threads_build target-wasm-threads +simd128,+atomics,+bulk-memory
wasm-bindgen --target web --weak-refs --out-dir pkg.tmp/threads "$PWD/target-wasm-threads/wasm32-unknown-unknown/wasm-release/latent_lab.wasm"
threads_build target-wasm-threads-relaxed +simd128,+relaxed-simd,+atomics,+bulk-memory
wasm-bindgen --target web --weak-refs --out-dir pkg.tmp/threads/relaxed "$PWD/target-wasm-threads-relaxed/wasm32-unknown-unknown/wasm-release/latent_lab.wasm"
same_glue pkg.tmp/threads/latent_lab.js pkg.tmp/threads/relaxed/latent_lab.js
mv pkg.tmp/threads/relaxed/latent_lab_bg.wasm pkg.tmp/threads/latent_lab_relaxed_bg.wasm
rm -rf pkg.tmp/threads/relaxed
rm -rf pkg
mv pkg.tmp pkg
for m in latent_lab latent_lab_relaxed sampler threads/latent_lab threads/latent_lab_relaxed; do
  echo "build-wasm: pkg/${m}_bg.wasm $(stat -c %s pkg/${m}_bg.wasm) bytes, $(gzip -9c pkg/${m}_bg.wasm | wc -c) gzipped"
done
