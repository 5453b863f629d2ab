#!/usr/bin/env bash
# Sets up what is missing, then runs every test: the native Rust tests (real MNIST, the shipped
# weights' quality) and the browser tests (the served page in headless Chromium via Playwright).
#
# The two suites run side by side once both are built: neither keeps the 2 cores busy alone (the
# native binary is mostly one thread of engine training and evaluation; the browser suite waits on
# pages, workers and the emulated GPU), and they share nothing but the machine. The native suite's
# output is kept in target/native-tests.log and printed when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --native-tests
# glibc's malloc returns candle's large buffers to the kernel each step unless told not to.
export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432
cargo test --release --no-run -q   # built already by setup; this only checks it is current

log=target/native-tests.log
start=$SECONDS
# Its own process group (job control on), so that stopping this script stops cargo and the test
# binary too, not only the subshell.
set -m
(
  t0=$SECONDS
  status=0
  cargo test --release >"$log" 2>&1 || status=$?
  echo "native tests: $((SECONDS - t0)) s, exit status $status" >>"$log"
  exit "$status"
) &
native=$!
set +m
trap 'kill -- -"$native" 2>/dev/null || true' EXIT

t0=$SECONDS
browser_status=0
node --test --test-concurrency=1 tests/browser/ || browser_status=$?
browser_s=$((SECONDS - t0))

native_status=0
wait "$native" || native_status=$?
trap - EXIT
echo
echo "---- native tests (cargo test --release) ----"
cat "$log"
echo "browser tests: ${browser_s} s, exit status $browser_status"
echo "tests in all: $((SECONDS - start)) s"
[ "$native_status" = 0 ] && [ "$browser_status" = 0 ]
