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
import { isolatedEngineLine, trainBrieflyOnCpu } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
let dir;
let host;
let browser;
let url;
const hostLog = [];

/**
 * Python's http.server on `folder` (a host that knows nothing of this project): the process and
 * its URL; its request log goes into `log`, so a 404 can be named in a failure message.
 */
async function pythonHost(folder, log = []) {
  const host = spawn('python3', ['-m', 'http.server', '0', '--bind', '127.0.0.1'], { cwd: folder });
  const url = await new Promise((resolve, reject) => {
    host.once('error', reject);
    host.stderr.on('data', (chunk) => log.push(String(chunk)));
    host.stdout.on('data', (chunk) => {
      const m = /port (\d+)/.exec(String(chunk));
      if (m) resolve(`http://127.0.0.1:${m[1]}/`);
    });
  });
  return { host, url };
}

before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'latent-lab-dist-'));
  await promisify(execFile)(path.join(ROOT, 'scripts/dist.sh'), [path.join(dir, 'site')], { cwd: ROOT, maxBuffer: 1 << 24 });
  ({ host, url } = await pythonHost(path.join(dir, 'site'), hostLog));
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
    'pkg/latent_lab.js', 'pkg/latent_lab_bg.wasm', 'pkg/latent_lab_relaxed_bg.wasm', 'pkg/sampler.js', 'pkg/sampler_bg.wasm',
    'pkg/threads/latent_lab.js', 'pkg/threads/latent_lab_bg.wasm', 'pkg/threads/latent_lab_relaxed_bg.wasm', 'www/weights/vae-z20.safetensors',
    'www/weights/classifier.safetensors', 'www/data/mnist.safetensors.gz', 'www/data/mnist-test.safetensors.gz']) {
    const stat = await fs.stat(path.join(site, f)).catch(() => null);
    assert.ok(stat?.isFile() && stat.size > 0, `dist has no ${f}`);
  }
  const top = (await fs.readdir(site)).sort();
  assert.deepEqual(top, ['_headers', 'index.html', 'package.json', 'pkg', 'www']);
  // What a host that reads _headers sends with every file: cross-origin isolation, for threads.
  const headers = await fs.readFile(path.join(site, '_headers'), 'utf8');
  assert.match(headers, /^\/\*\n {2}Cross-Origin-Opener-Policy: same-origin\n {2}Cross-Origin-Embedder-Policy: require-corp\n$/);
  const wasm = await fs.readFile(path.join(site, 'pkg/latent_lab_bg.wasm'));
  assert.deepEqual([...wasm.subarray(0, 4)], [0, 0x61, 0x73, 0x6d], 'not a wasm module');
});

test('the dist folder, served with its _headers, trains on the threaded build', async () => {
  const { startServer } = await import('../../scripts/serve.mjs');
  // A host that applies _headers: COOP/COEP on every file of the folder, nothing else of ours.
  const isolatedHost = await startServer({ root: path.join(dir, 'site') });
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  try {
    await page.goto(isolatedHost.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    const expected = await isolatedEngineLine(page, 'relaxed SIMD');
    const { line, status } = await trainBrieflyOnCpu(page);
    assert.equal(line, expected);
    assert.match(status, /· done; the page now uses these weights/);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
    await isolatedHost.close();
  }
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
      // Every embedded view draws a canvas with ink (each loads once near the viewport).
      for (const el of await page.locator('latent-lab').all()) await el.scrollIntoViewIfNeeded();
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

test('npm pack makes a package that, installed into an empty folder, samples in Node and serves the element from a plain page', async () => {
  const run = promisify(execFile);
  const app = path.join(dir, 'app');
  await fs.mkdir(app);
  const { stdout: packed } = await run('npm', ['pack', path.join(dir, 'site'), '--pack-destination', dir, '--silent'], { cwd: dir, maxBuffer: 1 << 24 });
  const tarball = path.join(dir, packed.trim().split('\n').at(-1));
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: app, maxBuffer: 1 << 24 });
  const installed = path.join(app, 'node_modules/latent-lab');
  const manifest = JSON.parse(await fs.readFile(path.join(installed, 'package.json'), 'utf8'));
  assert.equal(manifest.types, './pkg/latent_lab.d.ts');
  assert.match(await fs.readFile(path.join(installed, manifest.types), 'utf8'), /export class Model/);

  // In Node: the package's modules (the whole one and the light sampler), their wasm handed over
  // as bytes (Node's fetch reads no files).
  const script = `
    import { readFile } from 'node:fs/promises';
    import init, { Model } from 'latent-lab';
    import initSampler, { Sampler } from 'latent-lab/sampler';
    const file = (name) => readFile(new URL(import.meta.resolve('latent-lab/' + name)));
    await init({ module_or_path: await file('pkg/latent_lab_bg.wasm') });
    await initSampler({ module_or_path: await file('pkg/sampler_bg.wasm') });
    const m = Model.load(await file('www/weights/vae-z20.safetensors'));
    const z = Float32Array.from({ length: m.latent }, (_, i) => Math.sin(i + 1));
    const s = Sampler.load(await file('www/weights/vae-z20.decoder.safetensors'));
    console.log(JSON.stringify({ kind: m.kind, px: Array.from(m.sample(z)), sampled: Array.from(s.sample(z)), whole: s.capabilities.whole }));
  `;
  await fs.writeFile(path.join(app, 'sample.mjs'), script);
  const { stdout } = await run(process.execPath, ['sample.mjs'], { cwd: app });
  const r = JSON.parse(stdout);
  assert.equal(r.kind, 'vae');
  assert.equal(r.px.length, 784);
  const sampledDiff = r.px.reduce((d, v, i) => Math.max(d, Math.abs(v - r.sampled[i])), 0);
  assert.ok(sampledDiff <= 1e-5, `the sampler's digit differs from the model's by ${sampledDiff}`);
  assert.equal(r.whole, false);
  // The same digit as the browser decodes from the dist folder.
  const page0 = await browser.newPage();
  await page0.goto(url + 'index.html');
  const inBrowser = await page0.evaluate(async () => {
    const { default: init, Model } = await import('/pkg/latent_lab.js');
    await init();
    const m = Model.load(new Uint8Array(await (await fetch('/www/weights/vae-z20.safetensors')).arrayBuffer()));
    return Array.from(m.sample(Float32Array.from({ length: m.latent }, (_, i) => Math.sin(i + 1))));
  });
  await page0.close();
  const diff = r.px.reduce((d, v, i) => Math.max(d, Math.abs(v - inBrowser[i])), 0);
  assert.ok(diff < 1e-6, `Node's digit differs from the browser's by ${diff}`);
  // Not a blank canvas: this z decodes to a faint digit (at most 0.7; with the file trained on
  // the CPU engine 18 pixels pass 0.5 and 49 pass 0.3; a blank decoding has none).
  assert.ok(r.px.filter((v) => v > 0.3).length > 20, 'the digit is blank');

  // A plain page in that folder: one script tag for the element, served by a static host.
  await fs.writeFile(path.join(app, 'index.html'), `<!doctype html><meta charset="utf-8"><title>post</title><link rel="icon" href="data:,">
    <script type="module" src="node_modules/latent-lab/www/embed.js"></script>
    <latent-lab view="sliders" model="vae-z2"></latent-lab>`);
  const { host: appHost, url: appUrl } = await pythonHost(app);
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(appUrl);
    await page.waitForFunction(() => {
      const c = document.querySelector('latent-lab')?.shadowRoot?.querySelector('canvas');
      if (!c || !c.width) return false;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 128) return true;
      return false;
    }, null, { timeout: 60_000 });
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    appHost.kill();
  }
});
