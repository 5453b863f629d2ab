// Shared setup for the browser tests: the real page served on 127.0.0.1, in Debian's headless
// Chromium driven by playwright-core.
import { chromium } from 'playwright-core';
import { startServer } from '../../scripts/serve.mjs';
import { CHROMIUM, CHROMIUM_ARGS, CHROMIUM_WEBGPU_ARGS } from '../../scripts/chromium.mjs';

/**
 * The server (with extra response `headers`, e.g. a CSP) and a browser; with `webgpu`, one whose
 * WebGPU runs on SwiftShader (without it, Chromium has no WebGPU adapter).
 */
export async function launch({ headers, webgpu = false } = {}) {
  const server = await startServer({ port: 0, headers });
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

/** The main page, once it has drawn its first model. */
export async function readyPage(env) {
  const opened = await openPage(env);
  await opened.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
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
