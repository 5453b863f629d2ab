// A soak: thousands of training steps in the tab, watching the wasm module's memory, which must
// stop growing once the first epoch's allocations are in place (a leak grows it step by step).
//
//   node bench/soak.mjs [--steps 20000] [--every 1000] [--kind vae] [--hidden 400] [--batch 128]
//
// It serves the checkout, opens the page in headless Chromium and trains a fresh model of the
// page's size through the wasm API the worker uses (two steps queued, a grid decoded every 50
// steps), printing the memory every --every steps. Exits non-zero if the memory at the end is
// above what it was after the first epoch. tests/browser/soak.test.mjs runs a bounded version.
import { fileURLToPath } from 'node:url';

/**
 * Runs in the page: trains a fresh `kind` (hidden width `hidden`, batch `batch`) for `steps`
 * steps on the page's MNIST file and returns the wasm memory's size every `every` steps, as
 * [[step, bytes], …], with the steps in an epoch.
 */
export async function soakInPage({ kind, hidden, batch, steps, every }) {
  const lab = await import('/pkg/latent_lab.js');
  const exports = await lab.default(); // the page's instance: init returns it once made
  const { fetchBytes, URLS } = await import('/www/assets.js'); // the page's loader: it inflates the file
  const data = await fetchBytes(URLS.mnist, 'MNIST');
  const model = lab.Model.create(kind, 1, undefined, hidden);
  model.set_dataset_safetensors(data);
  model.batch_size = batch;
  const z = new Float32Array(16 * model.latent);
  const labels = model.conditional ? Uint8Array.from({ length: 16 }, (_, i) => i % 10) : undefined;
  const memory = [];
  let submitted = 0;
  let done = 0;
  while (done < steps) {
    while (submitted < steps && model.steps_queued < 2) {
      model.submit_step();
      submitted++;
    }
    const s = await model.next_stats();
    done = s.step;
    s.free();
    if (done % 50 === 0) model.sample(z, labels); // the worker's grid
    if (done % every === 0) memory.push([done, exports.memory.buffer.byteLength]);
  }
  const stepsPerEpoch = model.steps_per_epoch;
  model.free();
  return { memory, stepsPerEpoch };
}

async function main() {
  const { chromium } = await import('playwright-core');
  const { startServer } = await import('../scripts/serve.mjs');
  const { CHROMIUM, CHROMIUM_ARGS } = await import('../scripts/chromium.mjs');
  const o = { steps: 20000, every: 1000, kind: 'vae', hidden: 400, batch: 128 };
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i += 2) {
    const key = args[i].replace(/^--/, '');
    if (!(key in o) || args[i + 1] === undefined) throw new Error(`usage: node bench/soak.mjs [--steps N] [--every N] [--kind K] [--hidden N] [--batch N]; got ${args[i]}`);
    o[key] = key === 'kind' ? args[i + 1] : Number(args[i + 1]);
  }
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    const t0 = Date.now();
    const { memory, stepsPerEpoch } = await page.evaluate(soakInPage, o);
    const ms = (Date.now() - t0) / o.steps;
    for (const [step, bytes] of memory) console.log(`step ${String(step).padStart(6)}  wasm memory ${(bytes / 2 ** 20).toFixed(1)} MiB`);
    const afterEpoch = memory.find(([step]) => step >= stepsPerEpoch)?.[1];
    const last = memory.at(-1)[1];
    console.log(`${o.kind} hidden ${o.hidden}, batch ${o.batch}: ${o.steps} steps, ${ms.toFixed(1)} ms a step; ` +
      `${stepsPerEpoch} steps an epoch; memory after the first epoch ${(afterEpoch / 2 ** 20).toFixed(1)} MiB, at the end ${(last / 2 ** 20).toFixed(1)} MiB`);
    if (afterEpoch === undefined) throw new Error('the run was shorter than an epoch');
    if (last > afterEpoch) throw new Error(`the memory grew after the first epoch: ${afterEpoch} → ${last} bytes`);
  } finally {
    await browser.close();
    await server.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`soak: ${e.message}`);
    process.exit(1);
  });
}
