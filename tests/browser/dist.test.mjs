// `scripts/dist.sh` writes a static folder that a plain static host serves: here Python's
// http.server, which knows nothing of this project, in headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../../scripts/chromium.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let dir;
let host;
let browser;
let url;
const hostLog = [];

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'latent-lab-dist-'));
  await promisify(execFile)(path.join(ROOT, 'scripts/dist.sh'), [path.join(dir, 'site')], { cwd: ROOT, maxBuffer: 1 << 24 });
  host = spawn('python3', ['-m', 'http.server', '0', '--bind', '127.0.0.1'], { cwd: path.join(dir, 'site') });
  url = await new Promise((resolve, reject) => {
    host.once('error', reject);
    // The host's request log: kept so a 404 can be named in a failure message.
    host.stderr.on('data', (chunk) => hostLog.push(String(chunk)));
    host.stdout.on('data', (chunk) => {
      const m = /port (\d+)/.exec(String(chunk));
      if (m) resolve(`http://127.0.0.1:${m[1]}/`);
    });
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  host?.kill();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

test('the dist folder holds the page, modules, wasm, weights and data, and nothing of the build', async () => {
  const site = path.join(dir, 'site');
  for (const f of ['index.html', 'www/main.js', 'www/worker.js', 'www/embed.js', 'www/embed-example.html',
    'pkg/latent_lab.js', 'pkg/latent_lab_bg.wasm', 'www/weights/vae-z20.safetensors',
    'www/weights/classifier.safetensors', 'www/data/mnist.safetensors', 'www/data/mnist-test.safetensors']) {
    const stat = await fs.stat(path.join(site, f)).catch(() => null);
    assert.ok(stat?.isFile() && stat.size > 0, `dist has no ${f}`);
  }
  const top = (await fs.readdir(site)).sort();
  assert.deepEqual(top, ['index.html', 'pkg', 'www']);
  const wasm = await fs.readFile(path.join(site, 'pkg/latent_lab_bg.wasm'));
  assert.deepEqual([...wasm.subarray(0, 4)], [0, 0x61, 0x73, 0x6d], 'not a wasm module');
});

test('a plain static host serves the page and the embed from the dist folder', async () => {
  for (const [page_, ready] of [['index.html', 'body[data-ready="true"]'], ['www/embed-example.html', 'latent-lab']]) {
    const page = await browser.newPage();
    const problems = [];
    const outside = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith(url) && !r.url().startsWith('data:')) outside.push(r.url()); });
    await page.goto(url + page_);
    await page.waitForSelector(ready, { timeout: 60_000 });
    if (page_ === 'index.html') {
      const lit = await page.evaluate(() => {
        const c = document.querySelector('#samples');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++;
        return n / (d.length / 4);
      });
      assert.ok(lit > 0.03, `the dist page drew no digits (${lit})`);
    } else {
      // Every embedded view draws a canvas with ink.
      await page.waitForFunction(() => [...document.querySelectorAll('latent-lab')].every((el) => {
        const c = el.shadowRoot?.querySelector('canvas');
        if (!c || !c.width) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) if (d[i] > 128) return true;
        return false;
      }), null, { timeout: 60_000 });
    }
    const missing = hostLog.join('').split('\n').filter((l) => / 404 /.test(l));
    assert.deepEqual(problems, [], `${page_}: console errors; the host's 404s: ${missing.join('; ')}`);
    assert.deepEqual(outside, [], `${page_}: requests outside the dist host`);
    await page.close();
  }
});
