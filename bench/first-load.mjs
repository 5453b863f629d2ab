// What the first digit costs: the bytes over the network before the first canvas is drawn, by the
// browser's own count (each resource's transferSize: gzip as served, headers included), and when
// that canvas is drawn after navigation, for the page and the mock blog post with its embeds.
//
//   node bench/first-load.mjs [--runs 3]
//
// It serves the checkout (scripts/serve.mjs, gzip as in `serve`) on 127.0.0.1 and opens each page
// in headless Chromium with an empty cache, --runs times; it prints each resource fetched before
// the first drawn canvas and the medians. The goal (issue "Nothing a reader trains is lost, and
// the first digit costs under 1 MB"): at most 1 MB before the first digit, drawn within 500 ms.
import { fileURLToPath } from 'node:url';

/**
 * For page.addInitScript: records in window.__firstDraw the time (ms since navigation) of the
 * first drawImage onto a canvas in the document (drawGrid paints its digits that way; its scratch
 * tile is not in the document).
 */
export function recordFirstDraw() {
  window.__firstDraw = null;
  const draw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {
    if (window.__firstDraw === null && this.canvas.isConnected) window.__firstDraw = performance.now();
    return draw.apply(this, args);
  };
}

/**
 * Opens `url` in a new context of `browser` (an empty cache) and returns {ms, bytes, resources}:
 * when the first canvas was drawn, the bytes fetched before it (the document's and every
 * resource's that had finished by then, workers' included) and those resources ([name, bytes]).
 */
export async function firstLoad(browser, url) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(recordFirstDraw);
  await page.goto(url);
  await page.waitForFunction(() => window.__firstDraw !== null, null, { timeout: 60_000 });
  const r = await page.evaluate(() => {
    const at = window.__firstDraw;
    const nav = performance.getEntriesByType('navigation')[0];
    const before = performance.getEntriesByType('resource').filter((e) => e.responseEnd <= at);
    const resources = [[new URL(nav.name).pathname, nav.transferSize], ...before.map((e) => [new URL(e.name).pathname, e.transferSize])];
    return { ms: at, resources, bytes: resources.reduce((s, [, b]) => s + b, 0) };
  });
  await context.close();
  return r;
}

async function main() {
  const args = process.argv.slice(2);
  const runs = Number(args[args.indexOf('--runs') + 1]) || 3;
  const { chromium } = await import('playwright-core');
  const { startServer } = await import('../scripts/serve.mjs');
  const { CHROMIUM, CHROMIUM_ARGS } = await import('../scripts/chromium.mjs');
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  try {
    for (const path of ['', 'www/embed-example.html']) {
      const all = [];
      for (let i = 0; i < runs; i++) all.push(await firstLoad(browser, server.url + path));
      console.log(`\n/${path}: before the first drawn canvas`);
      for (const [name, bytes] of all[0].resources) console.log(`  ${String(bytes).padStart(9)} B  ${name}`);
      const bytes = median(all.map((r) => r.bytes));
      const ms = median(all.map((r) => r.ms));
      console.log(`  median of ${runs}: ${(bytes / 1e6).toFixed(3)} MB (goal ≤ 1 MB) in ${ms.toFixed(0)} ms after navigation (goal ≤ 500 ms)`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
