// A/B of two builds of the engine: one model kind's training step timed in headless Chromium on
// build A and build B, each in its own worker (as an isolated page's training worker runs it),
// alternating blocks of steps so the machine's load weighs on both alike; prints each one's
// mean, median and 10th-percentile ms per step, its phases by the engine's clock (their sum
// falls short of the step by what the trainer does around the engine: the minibatch and its
// random draws), and the ratios.
//
//   node bench/ab.mjs --a bench/.builds/before [--b pkg/threads] [--binary threads] [--kind vae]
//                     [--batch 128] [--rounds 16] [--block 40] [--warmup 30] [--threads-a 2] [--threads-b 2]
//
// --a and --b are folders of the checkout (under bench/ or pkg/, which the server serves) holding
// a build's files as scripts/build-wasm.sh writes them for --binary (threads: pkg/threads/, the
// default B; relaxed or plain: pkg/). To try a change: `mkdir -p bench/.builds && cp -r
// pkg/threads bench/.builds/before` (build-wasm.sh replaces the whole of pkg/), change the code,
// run scripts/build-wasm.sh, then this. --threads-a 1 --threads-b 1 times one thread of each.
// Exits non-zero with a message on failure.
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../scripts/chromium.mjs';
import { startServer } from '../scripts/serve.mjs';
import { BenchError, ROOT, fail, openIsolatedPage, parseOptions, quantile, writeData } from './common.mjs';

const IMAGES = 2048;
const BINARIES = ['threads', 'threads-plain', 'relaxed', 'plain'];

const USAGE = 'usage: node bench/ab.mjs --a DIR [--b DIR] [--binary threads|threads-plain|relaxed|plain] [--kind KIND] ' +
  '[--batch N] [--rounds N] [--block N] [--warmup N] [--threads-a N] [--threads-b N]';

function options() {
  const { values, o } = parseOptions({
    usage: USAGE,
    defaults: { a: '', b: '', binary: 'threads', kind: 'vae', batch: '128', rounds: '16', block: '40', warmup: '30', 'threads-a': '2', 'threads-b': '2' },
    wholeNumbers: ['batch', 'rounds', 'block', 'warmup', 'threads-a', 'threads-b'],
    zeroAllowed: ['warmup'],
  });
  if (!values.a) fail(`--a is required\n${USAGE}`);
  if (!BINARIES.includes(values.binary)) fail(`--binary ${values.binary}: expected one of ${BINARIES.join(', ')}`);
  if (o.batch > IMAGES) fail(`--batch ${o.batch}: the benchmark's data is ${IMAGES} digits`);
  o.kind = values.kind;
  o.binary = values.binary;
  o.dirs = [values.a, values.b || (o.binary.startsWith('threads') ? 'pkg/threads' : 'pkg')].map((dir) => dir.replace(/^\/|\/$/g, ''));
  for (const dir of o.dirs) {
    if (!/^(bench|pkg)(\/|$)/.test(dir)) fail(`${dir}: the server serves builds from bench/ or pkg/ only`);
  }
  return o;
}

async function main() {
  const o = options();
  for (const dir of o.dirs) {
    await fs.access(path.join(ROOT, dir, 'latent_lab.js')).catch(() => fail(`${dir}/latent_lab.js is missing: not a build's folder`));
  }
  await writeData(IMAGES);
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await openIsolatedPage(browser, server.url, 'latent-lab A/B');
    const builds = o.dirs.map((dir, i) => ({ dir: `/${dir}`, threads: i ? o['threads-b'] : o['threads-a'] }));
    const res = await page.evaluate(async ({ builds, o }) => {
      const { startEngineWorker } = await import('/bench/engine-client.js');
      const [images, labels] = await Promise.all(['images', 'labels'].map(async (f) => new Uint8Array(await (await fetch(`/bench/.data/${f}.u8`)).arrayBuffer())));
      const runs = [];
      for (const { dir, threads } of builds) {
        const { call, engine } = await startEngineWorker(o.binary, threads, dir);
        await call({ cmd: 'model', kind: o.kind, seed: 1, batch: o.batch, images, labels });
        if (o.warmup) await call({ cmd: 'steps', count: o.warmup });
        runs.push({ dir, engine, call, ms: [], phasesBefore: (await call({ cmd: 'phases' })).phases });
      }
      for (let r = 0; r < o.rounds; r++) {
        for (const run of r % 2 ? [...runs].reverse() : runs) {
          const { steps } = await run.call({ cmd: 'steps', count: o.block });
          run.ms.push(...steps.map((s) => s.ms));
        }
      }
      for (const run of runs) {
        const { phases } = await run.call({ cmd: 'phases' });
        run.phases = Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, (v - run.phasesBefore[k]) / run.ms.length]));
        delete run.call;
      }
      return runs;
    }, { builds, o });
    const line = (name, r) => `${name} ${r.dir} (${r.engine}): mean ${(r.ms.reduce((a, b) => a + b, 0) / r.ms.length).toFixed(2)} ms, median ${quantile(r.ms, 0.5).toFixed(2)} ms, p10 ${quantile(r.ms, 0.1).toFixed(2)} ms; ` +
      Object.entries(r.phases).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ') + ' ms a step';
    console.log(`${o.kind} at batch ${o.batch}, ${o.binary} builds, ${o.rounds} rounds of ${o.block} steps each:`);
    console.log(line('A', res[0]));
    console.log(line('B', res[1]));
    const ratio = (p) => (quantile(res[0].ms, p) / quantile(res[1].ms, p)).toFixed(3);
    console.log(`A / B: ${ratio(0.5)} by the median, ${ratio(0.1)} by p10 (above 1: B is faster)`);
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((e) => {
  console.error(e instanceof BenchError ? `ab: ${e.message}` : e);
  process.exit(1);
});
