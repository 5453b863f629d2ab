#!/usr/bin/env bash
# Writes a self-contained static folder (default dist/) that any static host serves as it is: the
# page, its modules, the wasm module, the weights and the MNIST data, in the same layout as the
# repository (index.html, www/, pkg/), so every relative URL keeps working. The folder is also the
# npm package: its package.json exports the wasm module (`latent-lab`, typed), the light sampler
# module (`latent-lab/sampler`) and the <latent-lab> element (`latent-lab/element`), so
# `npm pack dist` makes a tarball to install.
#
#   scripts/dist.sh [OUT]        then e.g.: cd dist && python3 -m http.server 8000
#                                (a host that sends _headers' COOP/COEP lets training use threads)
#                                or:        npm pack ./dist
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh   # builds pkg/ and www/data/ if they are missing or stale
out="${1:-dist}"
# Into a fresh folder first, so an interrupted run never leaves a half-written dist behind.
rm -rf "$out.tmp"
mkdir -p "$out.tmp/pkg"
cp index.html "$out.tmp/"
cp -r www "$out.tmp/www"
cp pkg/latent_lab.js pkg/latent_lab_bg.wasm pkg/latent_lab_relaxed_bg.wasm pkg/latent_lab.d.ts pkg/sampler.js pkg/sampler_bg.wasm pkg/sampler.d.ts "$out.tmp/pkg/"
# The threaded builds, with wasm-bindgen-rayon's worker script under their snippets/.
mkdir -p "$out.tmp/pkg/threads"
cp -r pkg/threads/latent_lab.js pkg/threads/latent_lab_bg.wasm pkg/threads/latent_lab_relaxed_bg.wasm pkg/threads/snippets "$out.tmp/pkg/threads/"
# Training uses threads where the page is cross-origin isolated. Hosts that read a _headers file
# (Netlify, Cloudflare Pages) send these with every file; on others, set the two headers in the
# host's configuration (without them the page trains on one thread and says so).
cat > "$out.tmp/_headers" <<'HEADERS'
/*
  Cross-Origin-Opener-Policy: same-origin
  Cross-Origin-Embedder-Policy: require-corp
HEADERS
version=$(awk -F'"' '/^version = / { print $2; exit }' Cargo.toml)
cat > "$out.tmp/package.json" <<JSON
{
  "name": "latent-lab",
  "version": "$version",
  "description": "Generative models (VAE, GAN) that train and run inside a web page: the wasm module and the <latent-lab> element",
  "license": "MIT",
  "type": "module",
  "main": "./pkg/latent_lab.js",
  "types": "./pkg/latent_lab.d.ts",
  "exports": {
    ".": { "types": "./pkg/latent_lab.d.ts", "default": "./pkg/latent_lab.js" },
    "./sampler": { "types": "./pkg/sampler.d.ts", "default": "./pkg/sampler.js" },
    "./element": "./www/embed.js",
    "./pkg/*": "./pkg/*",
    "./www/*": "./www/*",
    "./package.json": "./package.json"
  },
  "sideEffects": ["./www/embed.js"],
  "files": ["index.html", "pkg/", "www/"]
}
JSON
rm -rf "$out"
mv "$out.tmp" "$out"
echo "dist: wrote $out/ ($(du -sh "$out" | cut -f1)): serve it from any static host, e.g. cd $out && python3 -m http.server"
