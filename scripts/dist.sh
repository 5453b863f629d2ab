#!/usr/bin/env bash
# Writes a self-contained static folder (default dist/) that any static host serves as it is: the
# page, its modules, the wasm module, the weights and the MNIST data, in the same layout as the
# repository (index.html, www/, pkg/), so every relative URL keeps working.
#
#   scripts/dist.sh [OUT]        then e.g.: cd dist && python3 -m http.server 8000
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh   # builds pkg/ and www/data/ if they are missing or stale
out="${1:-dist}"
# Into a fresh folder first, so an interrupted run never leaves a half-written dist behind.
rm -rf "$out.tmp"
mkdir -p "$out.tmp/pkg"
cp index.html "$out.tmp/"
cp -r www "$out.tmp/www"
cp pkg/latent_lab.js pkg/latent_lab_bg.wasm "$out.tmp/pkg/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "dist: wrote $out/ ($(du -sh "$out" | cut -f1)): serve it from any static host, e.g. cd $out && python3 -m http.server"
