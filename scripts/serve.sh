#!/usr/bin/env bash
# Sets up what is missing, builds, and serves the page on 127.0.0.1 (PORT, default 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec node scripts/serve.mjs --port "${PORT:-8080}"
