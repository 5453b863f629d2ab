// WebGPU training benchmark: ms per training step on the CPU (wasm) and on WebGPU for each model
// kind, with the WebGPU queue's traffic per step, in one headless Chromium. It prints figures and
// asserts nothing about speed.
//
//   node bench/webgpu.mjs [--steps 20] [--warmup 3] [--batch 128] [--images 2048] [--seed 1]
//                         [--kinds vae,cvae,gan,cgan] [--timeout 2400]
//
// It serves the checkout with scripts/serve.mjs and launches Chromium with CHROMIUM_WEBGPU_ARGS
// (on this GPU-less machine WebGPU runs on SwiftShader, a CPU Vulkan, so its figures say nothing
// about a real GPU). In one page, for each kind, two models made with the same seed and the first
// --images test digits (www/data/mnist-test.safetensors.gz) train --warmup untimed and --steps timed
// steps: the CPU one with train_step, the WebGPU one as www/worker.js does (two steps queued: the
// next is submitted before the last one's stats are awaited). ms/step is the timed steps' wall time
// over --steps. The model's gpu_traffic counters, read before and after the timed steps, give queue
// submissions and bytes uploaded and read back per step. Kernel times are not measured: the
// trainer writes no timestamp queries.
// --timeout bounds the whole run (SwiftShader is slow, the more so on a busy machine); if it runs
// out, or anything else fails, the kinds measured so far are printed and it exits non-zero with a
// message.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CHROMIUM, CHROMIUM_WEBGPU_ARGS } from '../scripts/chromium.mjs';
import { BenchError, ROOT, fail, parseOptions } from './common.mjs';

const KINDS = ['vae', 'cvae', 'gan', 'cgan'];
// The page the benchmark runs in: an empty document on the server's origin (answered by the
// browser's request router, so the repository needs no extra file).
const BLANK = 'bench/webgpu-blank.html';

const USAGE = 'usage: node bench/webgpu.mjs [--steps N] [--warmup N] [--batch N] [--images N] [--seed N] ' +
  '[--kinds vae,cvae,gan,cgan] [--timeout SECONDS]';

function options() {
  const { values, o } = parseOptions({
    usage: USAGE,
    defaults: { steps: '20', warmup: '3', batch: '128', images: '2048', seed: '1', kinds: KINDS.join(','), timeout: '2400' },
    wholeNumbers: ['steps', 'warmup', 'batch', 'images', 'seed', 'timeout'],
    zeroAllowed: ['warmup', 'seed'],
  });
  if (o.images > 10_000) fail(`--images ${o.images}: the test split has 10,000 digits`);
  if (o.images < o.batch) fail(`--images ${o.images} is fewer than one batch of ${o.batch}`);
  o.kinds = values.kinds.split(',').map((k) => k.trim()).filter(Boolean);
  const unknown = o.kinds.filter((k) => !KINDS.includes(k));
  if (unknown.length || !o.kinds.length) fail(`--kinds ${values.kinds}: expected some of ${KINDS.join(', ')}`);
  return o;
}

// ---- in the page -----------------------------------------------------------------------------

/** Loads the module and the digits once; finds the WebGPU adapter and what it supports. */
async function pageSetup({ images: n }) {
  const mod = await import('/pkg/latent_lab.js');
  await mod.default();
  if (!mod.WebGpu) throw new Error('pkg/latent_lab.js exports no WebGpu: rebuild it with scripts/build-wasm.sh');
  const { fetchBytes, URLS } = await import('/www/assets.js');
  const digits = mod.load_digits(await fetchBytes(URLS.mnistTest, 'the MNIST test digits'), 'test');
  const all = digits.images;
  const images = Uint8Array.from(all.subarray(0, n * 784), (x) => Math.round(x * 255));
  const labels = digits.labels.slice(0, n);
  digits.free();
  const env = { hardwareConcurrency: navigator.hardwareConcurrency, webgpu: !!navigator.gpu };
  if (navigator.gpu) {
    const adapter = await navigator.gpu.requestAdapter();
    if (adapter) {
      const info = adapter.info ?? {};
      env.adapterInfo = { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description };
      env.timestampQuery = adapter.features.has('timestamp-query');
    }
  }
  const gpu = await mod.WebGpu.request(); // throws, saying why, where there is no WebGPU
  env.adapter = gpu.adapter;
  window.__lab = { mod, images, labels, gpu };
  return env;
}

/** Warm-up and timed steps of one kind on one backend. */
async function pageRun({ kind, backend, seed, batch, warmup, steps }) {
  const { mod, images, labels, gpu } = window.__lab;
  const read = (s) => {
    const out = { step: s.step, ...s.losses };
    s.free();
    return out;
  };
  const m = mod.Model.create(kind, seed);
  try {
    m.set_dataset(images, labels);
    m.batch_size = batch;
    if (backend === 'webgpu') m.use_webgpu(gpu);
    if (m.backend !== backend) throw new Error(`${kind}: the model trains on ${m.backend}, not ${backend}`);
    // Two steps in flight, as www/worker.js keeps them.
    const gpuSteps = async (count) => {
      const out = [];
      let submitted = 0;
      while (out.length < count) {
        while (submitted < count && m.steps_queued < 2) {
          m.submit_step();
          submitted++;
        }
        out.push(read(await m.next_stats()));
      }
      return out;
    };
    const cpuSteps = (count) => Array.from({ length: count }, () => read(m.train_step()));
    const train = backend === 'webgpu' ? gpuSteps : async (count) => cpuSteps(count);
    const warm = await train(warmup);
    const ioBefore = m.gpu_traffic ?? null;
    const t0 = performance.now();
    const timed = await train(steps);
    const ms = performance.now() - t0;
    const ioAfter = m.gpu_traffic ?? null;
    const bad = [...warm, ...timed].find((s) => !Object.values(s).every(Number.isFinite));
    if (bad) throw new Error(`${kind} on ${backend}: step ${bad.step} reported ${JSON.stringify(bad)}`);
    if (backend === 'webgpu') await m.sync(); // every step's weights read back: the run is whole
    return { ms, first: warm[0] ?? timed[0], last: timed.at(-1), ioBefore, ioAfter, lastStep: timed.at(-1).step };
  } finally {
    m.free();
  }
}

// ---- report ----------------------------------------------------------------------------------

function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => String(r[c]).length)));
  const line = (r) => `| ${r.map((cell, c) => (c === 0 ? String(cell).padEnd(widths[c]) : String(cell).padStart(widths[c]))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (c === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(rows[0]), rule, ...rows.slice(1).map(line)].join('\n');
}

const lossText = (s) => (s.loss !== undefined ? `loss ${s.loss.toFixed(1)}` : `D ${s.d_loss.toFixed(3)} / G ${s.g_loss.toFixed(3)}`);

async function main() {
  const started = Date.now();
  const o = options();
  const deadline = started + o.timeout * 1000;
  const remaining = () => deadline - Date.now();
  for (const f of ['pkg/latent_lab.js', 'pkg/latent_lab_bg.wasm', 'www/data/mnist-test.safetensors.gz']) {
    await fs.access(path.join(ROOT, f)).catch(() => fail(`missing ${f} (${f.startsWith('pkg') ? 'run scripts/build-wasm.sh' : 'run scripts/setup.sh'})`));
  }
  if (!/\bWebGpu\b/.test(await fs.readFile(path.join(ROOT, 'pkg/latent_lab.js'), 'utf8'))) {
    fail('pkg/latent_lab.js has no WebGpu: it was built without the WebGPU backend (run scripts/build-wasm.sh)');
  }
  const loadBefore = os.loadavg()[0];

  const { chromium } = await import('playwright-core');
  const { startServer } = await import('../scripts/serve.mjs');
  const server = await startServer({ port: 0 });
  let browser;
  const results = {};
  let env;
  let version;
  let failure = null;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_WEBGPU_ARGS })
      .catch((e) => fail(`cannot launch ${CHROMIUM}: ${e.message.split('\n')[0]}`));
    version = browser.version();
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    await page.route(server.url + BLANK, (route) =>
      route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', body: '<!doctype html><title>latent-lab WebGPU bench</title>' }));
    await page.goto(server.url + BLANK);
    // Each call gets what is left of --timeout; page.evaluate itself never times out.
    const evaluate = async (what, fn, arg) => {
      let timer;
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new BenchError(`${what}: not done within the --timeout of ${o.timeout} s`)), Math.max(1000, remaining()));
      });
      try {
        return await Promise.race([page.evaluate(fn, arg), timeout]);
      } catch (e) {
        if (e instanceof BenchError) throw e;
        fail(`${what}: ${e.message.split('\n')[0].replace(/^page\.evaluate: (Error: )?/, '')}${problems.length ? `\n  ${problems.join('\n  ')}` : ''}`);
      } finally {
        clearTimeout(timer);
      }
    };
    env = await evaluate('setting up the page', pageSetup, { images: o.images });
    try {
      for (const kind of o.kinds) {
        const both = {};
        for (const backend of ['cpu', 'webgpu']) {
          process.stderr.write(`bench: ${kind} on ${backend}: ${o.warmup} warm-up + ${o.steps} timed steps…`);
          const t = Date.now();
          both[backend] = await evaluate(`${kind} on ${backend}`, pageRun,
            { kind, backend, seed: o.seed, batch: o.batch, warmup: o.warmup, steps: o.steps });
          process.stderr.write(` ${((Date.now() - t) / 1000).toFixed(1)} s\n`);
        }
        results[kind] = both;
      }
      if (problems.length) fail(problems.join('\n  '));
    } catch (e) {
      failure = e; // the kinds measured so far are still reported
    }
  } finally {
    await browser?.close().catch(() => {});
    await server.close();
  }
  const loadAfter = os.loadavg()[0];

  const rows = [['kind', 'cpu ms/step', 'webgpu ms/step', 'ratio (webgpu/cpu)', 'submissions/step', 'KB read back/step', 'KB uploaded/step']];
  const sanity = [];
  const measured = o.kinds.filter((k) => results[k]);
  if (!measured.length) throw failure;
  for (const kind of measured) {
    const { cpu, webgpu } = results[kind];
    const cpuMs = cpu.ms / o.steps;
    const gpuMs = webgpu.ms / o.steps;
    const d = (k) => (webgpu.ioAfter[k] - webgpu.ioBefore[k]) / o.steps;
    rows.push([kind, cpuMs.toFixed(1), gpuMs.toFixed(1), `${(gpuMs / cpuMs).toFixed(2)}×`,
      d('submissions').toFixed(2), (d('read_back') / 1024).toFixed(2), (d('uploaded') / 1024).toFixed(2)]);
    sanity.push(`${kind}: cpu ${lossText(cpu.first)} → ${lossText(cpu.last)}; webgpu ${lossText(webgpu.first)} → ${lossText(webgpu.last)}`);
  }

  const first = o.warmup + 1;
  const last = o.warmup + o.steps;
  const syncs = Math.floor(last / 50) - Math.floor(o.warmup / 50);
  const lines = [];
  lines.push(`latent-lab WebGPU benchmark: batch ${o.batch}, first ${o.images.toLocaleString('en-US')} MNIST test digits, ` +
    `seed ${o.seed}; per kind and backend ${o.warmup} warm-up + ${o.steps} timed steps (steps ${first}–${last})`);
  const info = env.adapterInfo ?? {};
  lines.push(`adapter: ${env.adapter} (navigator.gpu: vendor "${info.vendor ?? ''}", architecture "${info.architecture ?? ''}"` +
    `${info.description ? `, "${info.description}"` : ''})`);
  lines.push(`browser: Chromium ${version} (${CHROMIUM}), ${env.hardwareConcurrency} logical CPUs; 1-min load average ` +
    `${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after`);
  lines.push(env.timestampQuery
    ? "kernel time: not measured (the adapter has 'timestamp-query', but the trainer writes no timestamp queries)"
    : "kernel time: n/a (adapter lacks timestamp-query)");
  lines.push('');
  lines.push(table(rows));
  lines.push('');
  lines.push('ms/step: wall time of the timed steps over their count; webgpu keeps 2 steps queued, as www/worker.js does.');
  lines.push('ratio below 1: WebGPU is faster. KB = 1024 bytes; traffic from the model\'s gpu_traffic counters over the timed steps ' +
    `(the weights are read back every 50 steps: ${syncs ? `${syncs} such read-back(s) fall in the timed steps` : 'none falls in the timed steps'}).`);
  if (/swiftshader/i.test(`${env.adapter} ${info.architecture}`)) {
    lines.push('note: SwiftShader runs WebGPU on the CPU; these WebGPU figures say nothing about a real GPU.');
  }
  lines.push(`sanity, first and last step's losses: ${sanity.join('; ')}`);
  lines.push(`total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(lines.join('\n'));
  if (failure) {
    const missing = o.kinds.filter((k) => !results[k]);
    fail(`${failure instanceof BenchError ? failure.message : failure?.stack ?? failure} (not measured: ${missing.join(', ')})`);
  }
}

main().catch((e) => {
  console.error(`\nbench: FAILED: ${e instanceof BenchError ? e.message : e?.stack ?? e}`);
  process.exit(1);
});
