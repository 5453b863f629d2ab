# Sourced by the other scripts: facts about this machine's toolchain that more than one needs.

# rustup's wasm32 target is installed. (grep reads all of rustup's output: with pipefail, a grep -q
# that stops early can make rustup fail on a closed pipe.)
have_rustup_wasm() {
  rustup target list --installed 2>/dev/null | grep -x wasm32-unknown-unknown >/dev/null
}

# The version of the wasm-bindgen crate in Cargo.lock; wasm-bindgen-cli must match it exactly.
wasm_bindgen_version() {
  awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock
}

# rustup's standard library source (rust-src) is installed: the threaded wasm build rebuilds std
# with atomics from it (-Zbuild-std).
have_rustup_src() {
  rustup component list --installed 2>/dev/null | grep -x 'rust-src' >/dev/null
}
