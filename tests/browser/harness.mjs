// Shared setup for the browser tests: the real page served on 127.0.0.1, in Debian's headless
// Chromium driven by playwright-core.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { startServer } from '../../scripts/serve.mjs';
import { CHROMIUM, CHROMIUM_ARGS, CHROMIUM_WEBGPU_ARGS } from '../../scripts/chromium.mjs';

/**
 * The server (with extra response `headers`, e.g. a CSP; cross-origin isolated as `serve` is,
 * unless `isolated` is false) and a browser; with `webgpu`, one whose WebGPU runs on SwiftShader
 * (without it, Chromium has no WebGPU adapter).
 */
export async function launch({ headers, webgpu = false, isolated = true } = {}) {
  const server = await startServer({ port: 0, headers, isolated });
  const args = webgpu ? CHROMIUM_WEBGPU_ARGS : CHROMIUM_ARGS;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args });
  return {
    server,
    browser,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

/**
 * Opens a page that records console errors and uncaught exceptions; `setup(page)` runs before
 * navigation (init scripts, request listeners, routes).
 */
export async function openPage(env, path = '', setup = async () => {}) {
  const page = await env.browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await setup(page);
  await page.goto(env.server.url + path);
  return { page, problems };
}

/**
 * Trains a fresh model of the page's first kind for 0.01 epochs on the CPU, through the Train
 * panel: its engine line ("On the CPU: 2 threads, relaxed SIMD.") and its status once the run ended.
 */
export async function trainBrieflyOnCpu(page) {
  await page.selectOption('#train-from', 'fresh');
  await page.selectOption('#train-backend', 'cpu');
  await page.fill('#train-epochs', '0.01');
  await page.click('#train-start');
  await page.waitForSelector('#train-engine:not([hidden])', { timeout: 120_000 });
  const line = await page.textContent('#train-engine');
  await page.waitForSelector('#train-start:not([disabled])', { timeout: 120_000 });
  return { line, status: await page.textContent('#train-status') };
}

/**
 * The engine line a cross-origin isolated page's training worker shows on this machine, with
 * `simd` ('relaxed SIMD' or 'SIMD'): a pool of min(cores, 4) threads (www/assets.js THREADS).
 */
export async function isolatedEngineLine(page, simd) {
  const cores = await page.evaluate(() => navigator.hardwareConcurrency || 1);
  return cores < 2 ? `On the CPU: 1 thread, ${simd} (one core).` : `On the CPU: ${Math.min(cores, 4)} threads, ${simd}.`;
}

/** The main page, once it has drawn its first model. */
export async function readyPage(env) {
  const opened = await openPage(env);
  await opened.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  // The first digits come from the light module; the whole one, which the tests' own calls use,
  // is initialised just after them. Until it is, its exports throw.
  await opened.page.waitForFunction(async () => {
    const { recipe_settings } = await import('/pkg/latent_lab.js');
    try {
      return Boolean(recipe_settings('vae', 'fast'));
    } catch {
      return false;
    }
  }, null, { timeout: 60_000 });
  return opened;
}

/**
 * The canvas's pixels as a summary: how many are lit, and a hash to compare two drawings. With
 * `host`, the canvas is looked up inside that element's shadow root (a <latent-lab>).
 */
export function canvasStats(page, selector, host = null) {
  return page.evaluate(([sel, h]) => {
    const c = (h ? document.querySelector(h).shadowRoot : document).querySelector(sel);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    let hash = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] > 128) lit++;
      hash = (Math.imul(hash, 31) + d[i]) | 0;
    }
    return { lit, total: d.length / 4, hash, width: c.width, height: c.height };
  }, [selector, host]);
}

/** The digit drawn on a canvas that shows one 28×28 image scaled up, read back as 784 floats. */
export function readDigit(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const scale = c.width / 28;
    const px = [];
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const i = 4 * (Math.floor((y + 0.5) * scale) * c.width + Math.floor((x + 0.5) * scale));
        px.push(d[i] / 255);
      }
    }
    return px;
  }, selector);
}

/** The shipped classifier's reading of images (784 floats each), in the page. */
export async function classify(page, images) {
  return page.evaluate(async (px) => {
    const { Classifier } = await import('/pkg/latent_lab.js');
    const bytes = new Uint8Array(await (await fetch('/www/weights/classifier.safetensors')).arrayBuffer());
    const c = Classifier.load(bytes);
    const out = Array.from(c.classify(Float32Array.from(px)));
    c.free();
    return out;
  }, images);
}

/**
 * Where the latent sliders' labels collide: for each slider (a label holding the name, the range
 * input and the value), its three parts must sit side by side inside the label, the value's text
 * unclipped, and no two labels may overlap. With `host`, the sliders inside that element's shadow
 * root. Returns a list of problems (empty when every name and value is readable) and the count.
 */
export function sliderCollisions(page, selector, host = null) {
  return page.evaluate(([sel, hostSel]) => {
    const root = hostSel ? document.querySelector(hostSel).shadowRoot : document;
    const labels = [...root.querySelectorAll(`${sel} label`)];
    const box = (el) => el.getBoundingClientRect();
    const problems = [];
    const EPS = 0.5;
    labels.forEach((label, i) => {
      const [name, input, value] = [label.firstElementChild, label.querySelector('input'), label.querySelector('output')];
      const [l, n, r, v] = [box(label), box(name), box(input), box(value)];
      if (n.right > r.left + EPS) problems.push(`slider ${i + 1}: name overlaps its track`);
      if (r.right > v.left + EPS) problems.push(`slider ${i + 1}: track overlaps its value`);
      if (n.left < l.left - EPS || v.right > l.right + EPS) problems.push(`slider ${i + 1}: name or value outside its label`);
      if (value.scrollWidth > Math.ceil(v.width) + 1 || v.width < 1) problems.push(`slider ${i + 1}: value "${value.textContent}" clipped`);
      labels.slice(i + 1).forEach((other, k) => {
        const o = box(other);
        if (l.left < o.right - EPS && o.left < l.right - EPS && l.top < o.bottom - EPS && o.top < l.bottom - EPS) {
          problems.push(`sliders ${i + 1} and ${i + k + 2} overlap`);
        }
      });
    });
    const container = root.querySelector(sel);
    if (container.scrollWidth > container.clientWidth + 1) problems.push(`the sliders scroll sideways: ${container.scrollWidth} > ${container.clientWidth}`);
    return { count: labels.length, problems };
  }, [selector, host]);
}

/**
 * Checks a drawn manifold (www/views/manifold.js: n × n cells of data-cell-size pixels, data-gap
 * apart, over [-R, R]² of vae-z2's latent plane) against sample(): each corner cell equals the
 * digit decoded at its corner (x right, y up), up to one grey level, and the y-down and swapped
 * conventions look different, so the check could fail. With `host`, the canvas is inside that
 * element's shadow root. Returns {n, cell, gap, width}.
 */
export async function checkManifoldCorners(page, selector, { host = null, R }) {
  const r = await page.evaluate(async ([sel, hostSel, range]) => {
    const canvas = (hostSel ? document.querySelector(hostSel).shadowRoot : document).querySelector(sel);
    const n = Math.round(Math.sqrt(Number(canvas.dataset.cells)));
    const cell = Number(canvas.dataset.cellSize);
    const gap = Number(canvas.dataset.gap);
    // The same module URL as the page's import, so this is the page's one wasm instance.
    const { default: init, Model } = await import('/pkg/latent_lab.js');
    await init();
    const { drawGrid } = await import('/www/draw.js');
    const m = Model.load(new Uint8Array(await (await fetch('/www/weights/vae-z2.safetensors')).arrayBuffer()));
    const ctx = canvas.getContext('2d');
    const cellPixels = (row, col) => ctx.getImageData(col * (cell + gap), row * (cell + gap), cell, cell).data;
    const rendered = (x, y) => {
      const scratch = document.createElement('canvas');
      drawGrid(scratch, m.sample(new Float32Array([x, y])), 1, cell, gap);
      return scratch.getContext('2d').getImageData(0, 0, cell, cell).data;
    };
    const maxDiff = (a, b) => a.reduce((acc, v, i) => Math.max(acc, Math.abs(v - b[i])), 0);
    const lit = (a) => a.filter((v, i) => i % 4 === 0 && v > 128).length;
    const out = {
      n, cell, gap, width: canvas.width,
      topLeft: maxDiff(cellPixels(0, 0), rendered(-range, range)),
      topRight: maxDiff(cellPixels(0, n - 1), rendered(range, range)),
      bottomLeft: maxDiff(cellPixels(n - 1, 0), rendered(-range, -range)),
      bottomRight: maxDiff(cellPixels(n - 1, n - 1), rendered(range, -range)),
      topLeftIfYDown: maxDiff(cellPixels(0, 0), rendered(-range, -range)),
      topRightIfSwapped: maxDiff(cellPixels(0, n - 1), rendered(range, -range)),
      litCorners: [lit(cellPixels(0, 0)), lit(cellPixels(n - 1, n - 1))],
    };
    m.free();
    return out;
  }, [selector, host, R]);
  assert.equal(r.width, r.n * r.cell + (r.n - 1) * r.gap);
  assert.ok(r.litCorners.every((v) => v > 10), `blank corner cells: ${r.litCorners}`);
  // Equal up to one grey level: the batch and the single decode may round differently.
  for (const k of ['topLeft', 'topRight', 'bottomLeft', 'bottomRight']) {
    assert.ok(r[k] <= 1, `${k} cell differs from sample() at its corner by ${r[k]} grey levels`);
  }
  assert.ok(r.topLeftIfYDown > 64, `the y-down corner looks the same (${r.topLeftIfYDown}): the check could not fail`);
  assert.ok(r.topRightIfSwapped > 64, `the swapped corner looks the same (${r.topRightIfSwapped}): the check could not fail`);
  return r;
}

// Records every training-worker message the page gets (bulky views left out, weights as their
// length), in window.__training, before main.js makes its worker; with `acrossReloads`, each VAE
// step's loss also goes into sessionStorage's `losses` ({step: [loss, …]}), which outlives a
// reload of the tab. For page.addInitScript(recordWorkerMessages[, true]).
export function recordWorkerMessages(acrossReloads = false) {
  const Native = window.Worker;
  window.__training = [];
  window.Worker = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (e) => {
        const d = e.data;
        if (!d || d.samples || d.manifold || d.recon || d.coverage) return;
        window.__training.push({ ...d, weights: d.weights ? d.weights.length : d.weights, at: performance.now() });
        if (acrossReloads && d.step !== undefined && !d.done && d.loss !== undefined) {
          const losses = JSON.parse(sessionStorage.getItem('losses') ?? '{}');
          (losses[d.step] ??= []).push(d.loss);
          sessionStorage.setItem('losses', JSON.stringify(losses));
        }
      });
    }
  };
}
