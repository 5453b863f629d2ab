#!/usr/bin/env bash
# Sets up what is missing, then runs every test: the native Rust tests (real MNIST, the shipped
# weights' quality) and the browser tests (the served page in headless Chromium via Playwright).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --native-tests
# glibc's malloc returns candle's large buffers to the kernel each step unless told not to.
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432
cargo test --release
node --test --test-concurrency=1 tests/browser/
