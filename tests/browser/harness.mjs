// Shared setup for the browser tests: the real page served on 127.0.0.1, in Debian's headless
// Chromium driven by playwright-core.
import { chromium } from 'playwright-core';
import { startServer } from '../../scripts/serve.mjs';
import { CHROMIUM, CHROMIUM_ARGS } from '../../scripts/chromium.mjs';

export async function launch() {
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  return {
    server,
    browser,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

/** Opens a page that records console errors and uncaught exceptions. */
export async function openPage(env, path = '') {
  const page = await env.browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.goto(env.server.url + path);
  return { page, problems };
}

/** The canvas's pixels as a summary: how many are lit, and a hash to compare two drawings. */
export function canvasStats(page, selector) {
  return page.evaluate((sel) => {
    const c = document.querySelector(sel);
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0;
    let hash = 0;
    for (let i = 0; i < d.length; i += 4) {
      if (d[i] > 128) lit++;
      hash = (Math.imul(hash, 31) + d[i]) | 0;
    }
    return { lit, total: d.length / 4, hash, width: c.width, height: c.height };
  }, selector);
}
