// A small static server for the page, on 127.0.0.1 only, with no dependencies.
// Serves the repository root (index.html, www/, pkg/); compresses large files with gzip once
// and keeps the result (the MNIST files are stored gzipped already and go as they are).
//
//   node scripts/serve.mjs [--port 8080] [--not-isolated]     (port 0 picks a free one)
//
// Every response says COOP: same-origin and COEP: require-corp, so the page is cross-origin
// isolated and its training worker may run the threaded wasm build (www/assets.js THREADS);
// --not-isolated leaves them out (what a blog post's host usually sends: one thread).
// Tests import { startServer } and get back { url, close }.
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.safetensors': 'application/octet-stream',
  '.gz': 'application/gzip',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ts': 'text/plain; charset=utf-8',
};
// Only these top-level paths are served; nothing else of the checkout is exposed.
const SERVED = ['/index.html', '/www/', '/pkg/', '/bench/', '/node_modules/@tensorflow/'];

/** The headers that make a page cross-origin isolated (SharedArrayBuffer, and so wasm threads). */
export const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

export async function startServer({ root = ROOT, port = 0, headers = {}, isolated = true } = {}) {
  headers = { ...(isolated ? ISOLATION_HEADERS : {}), ...headers };
  const gzipCache = new Map(); // path -> { mtimeMs, body }
  const server = http.createServer(async (req, res) => {
    // On every response, a 404 too (a page of the origin that is not ours is still isolated).
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
    try {
      let urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      if (urlPath === '/') urlPath = '/index.html';
      const file = path.join(root, path.normalize(urlPath));
      if (!file.startsWith(root + path.sep) || !SERVED.some((p) => urlPath.startsWith(p))) {
        res.writeHead(404).end('not found');
        return;
      }
      const stat = await fs.stat(file).catch(() => null);
      if (!stat || !stat.isFile()) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${urlPath}`);
        return;
      }
      const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
      const base = { 'content-type': type, 'cache-control': 'no-cache' };
      const wantsGzip = /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
      if (wantsGzip && stat.size > 1024 && path.extname(file) !== '.gz') {
        let hit = gzipCache.get(file);
        if (!hit || hit.mtimeMs !== stat.mtimeMs) {
          hit = { mtimeMs: stat.mtimeMs, body: zlib.gzipSync(await fs.readFile(file), { level: 6 }) };
          gzipCache.set(file, hit);
        }
        res.writeHead(200, { ...base, 'content-encoding': 'gzip', 'content-length': hit.body.length });
        res.end(req.method === 'HEAD' ? undefined : hit.body);
        return;
      }
      res.writeHead(200, { ...base, 'content-length': stat.size });
      res.end(req.method === 'HEAD' ? undefined : await fs.readFile(file));
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${server.address().port}/`;
  return { url, close: () => new Promise((r) => server.close(r)) };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 8080;
  const isolated = !process.argv.includes('--not-isolated');
  const { url } = await startServer({ port, isolated });
  console.log(`latent-lab: serving ${url}${isolated ? ' (cross-origin isolated: training may use threads)' : ' (not cross-origin isolated: one thread)'}  (Ctrl-C stops)`);
}
