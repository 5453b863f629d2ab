// Time to digits in the tab: trains a fresh model in headless Chromium on the page's engine (the
// wasm module in a worker, as the page's training worker runs it: on a cross-origin isolated page
// the threaded build, 2 threads here) and measures its samples as it goes.
//
//   node bench/time-to-digits.mjs [--kind gan] [--seconds 60] [--every 5] [--seed 1] [--batch N]
//                                 [--lr X] [--decay none|inverse-epoch] [--beta2 X] [--recipe NAME] [--samples 5000]
//                                 [--simd auto|plain] [--threads auto|1]
//
// The page trains through the wasm API with the kind's defaults (or the options given); every
// --every seconds of training (the clock stops meanwhile) it saves the weights. The native
// `time-to-digits score` command then measures each saved file with the shipped classifier, as
// `eval` does, and prints the curve: seconds, steps, epochs, class entropy / ln 10, Fréchet
// distance and (conditional kinds) the share read as the digit asked for.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CHROMIUM, CHROMIUM_ARGS } from '../scripts/chromium.mjs';
import { NATIVE_ENV, ROOT, fail, parseOptions } from './common.mjs';

const USAGE = 'usage: node bench/time-to-digits.mjs [--kind K] [--seconds S] [--every S] [--seed N] [--batch N] [--lr X] [--decay none|inverse-epoch] [--beta2 X] [--recipe NAME] [--samples N] [--simd auto|plain] [--threads auto|1]';

/**
 * Runs in a worker of the page's origin: trains a fresh model for `seconds` of training time and returns its weights
 * (base64) every `every` seconds, with the seconds and steps at each.
 */
export async function trainInWorker({ kind, seconds, every, seed, batch, lr, decay, beta2, recipe }) {
  // The training worker's loaders: the binary it would run (the threaded build on an isolated
  // page, relaxed SIMD where the browser has it, unless the address says ?threads=1 or
  // ?simd=plain), and the MNIST file inflated.
  const { engineLine, fetchBytes, URLS, wasm } = await import('/www/assets.js');
  const lab = await wasm();
  const data = await fetchBytes(URLS.mnist, 'MNIST');
  const model = lab.Model.create(kind, seed);
  if (recipe) model.recipe = recipe;
  if (batch) model.batch_size = batch;
  if (lr) model.learning_rate = lr;
  if (decay) model.lr_decay = decay;
  if (beta2) model.adam_beta2 = beta2;
  model.set_dataset_safetensors(data);
  const base64 = (bytes) => {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  };
  const saved = [];
  let trained = 0;
  let steps = 0;
  let next = every;
  while (true) {
    if (trained >= next || trained >= seconds) {
      saved.push({ seconds: trained, steps, weights: base64(model.save()) });
      next += every;
      if (trained >= seconds) break;
    }
    const t0 = performance.now();
    model.train_step().free();
    trained += (performance.now() - t0) / 1000;
    steps++;
  }
  const setting = { batch: model.batch_size, lr: model.learning_rate, decay: model.lr_decay, beta2: model.adam_beta2, recipe: model.recipe, engine: engineLine(lab) };
  model.free();
  return { saved, setting };
}

async function main() {
  const { values, o } = parseOptions({
    usage: USAGE,
    defaults: { kind: 'gan', seconds: '60', every: '5', seed: '1', batch: '0', lr: '0', decay: '', beta2: '0', recipe: '', samples: '5000', simd: 'auto', threads: 'auto' },
    wholeNumbers: ['seed', 'batch', 'samples'],
    zeroAllowed: ['batch'],
  });
  o.kind = values.kind;
  o.recipe = values.recipe;
  o.decay = values.decay;
  for (const k of ['seconds', 'every', 'lr', 'beta2']) {
    o[k] = Number(values[k]);
    if (!(o[k] >= 0) || (k !== 'lr' && k !== 'beta2' && o[k] === 0)) fail(`--${k} ${values[k]}: expected a positive number`);
  }
  const { chromium } = await import('playwright-core');
  const { startServer } = await import('../scripts/serve.mjs');
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'time-to-digits-'));
  try {
    const page = await browser.newPage();
    // Any document of the server's origin will do (cross-origin isolated, as `serve` sends it); a
    // plain one keeps the page's own work out of the timing. The training runs in a module worker
    // that does nothing of its own, as the page's does, with the worker's address saying what
    // the page's would: ?simd=plain, the binary a browser without relaxed SIMD runs; ?threads=1,
    // one thread (www/assets.js).
    if (!['auto', 'plain'].includes(values.simd)) fail(`--simd ${values.simd}: expected auto or plain`);
    if (!['auto', '1'].includes(values.threads)) fail(`--threads ${values.threads}: expected auto or 1`);
    const query = new URLSearchParams();
    if (values.simd === 'plain') query.set('simd', 'plain');
    if (values.threads === '1') query.set('threads', '1');
    await page.goto(`${server.url}README.md`);
    const [worker] = await Promise.all([
      page.waitForEvent('worker'),
      page.evaluate((url) => { self.trainer = new Worker(url, { type: 'module' }); }, `/bench/blank-worker.js?${query}`),
    ]);
    const { saved, setting } = await worker.evaluate(trainInWorker, o);
    console.log(`${o.kind} in headless Chromium, the CPU engine on ${setting.engine}: recipe ${setting.recipe}, batch ${setting.batch}, ` +
      `lr ${setting.lr}, decay ${setting.decay}, Adam β2 ${setting.beta2}, seed ${o.seed}`);
    const points = [];
    for (const [i, s] of saved.entries()) {
      const file = path.join(dir, `${i}.safetensors`);
      await fs.writeFile(file, Buffer.from(s.weights, 'base64'));
      points.push(`${s.seconds.toFixed(2)}:${s.steps}:${file}`);
    }
    const scored = spawnSync('cargo', ['run', '--quiet', '--release', '--bin', 'time-to-digits', '--', 'score', ...points, '--samples', String(o.samples)],
      { cwd: ROOT, stdio: 'inherit', env: NATIVE_ENV });
    if (scored.status !== 0) fail('time-to-digits score failed');
  } finally {
    await browser.close();
    await server.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(`time-to-digits: ${e.message}`);
    process.exit(1);
  });
}
