// Times VAE training steps in this page, for one configuration chosen by the query string:
//
//   run      ours | ours-relaxed | ours-threads | tfjs-simd | tfjs-threaded |
//            ours[-relaxed|-threads|-threads-plain]-<kind>-<batch>
//            (e.g. ours-relaxed-gan-32: any kind, fresh); ours is pkg/latent_lab_bg.wasm (simd128),
//            ours-relaxed pkg/latent_lab_relaxed_bg.wasm (the engine's products in f32x4.relaxed_madd),
//            ours-threads pkg/threads/latent_lab_relaxed_bg.wasm (relaxed SIMD, the products split across a
//            pool of min(cores, 4) threads), which runs in a worker (bench/engine-worker.js) as the
//            page's training worker runs it, each step timed there; ours-threads-plain the same
//            build's simd128 binary, pkg/threads/latent_lab_bg.wasm (a browser without relaxed SIMD)
//   data     folder with images.u8 ([n, pixels] bytes) and labels.u8 ([n] bytes)   (/bench/.data/)
//   n, pixels, batch, latent, hidden, lr, seed, warmup, steps, block, threads
//
//   run may list several, comma-separated (e.g. ours,tfjs-simd): they are set up, warmed up, then
//   timed in alternating blocks of `block` steps. threads: tfjs-threaded's pool (0 = tfjs's default).
// The result (or the error) lands in window.__bench for bench/run.mjs, and in the page's <pre>.
// Both implementations train the same model on the same real MNIST images: PyTorch's examples/vae
// (784→hidden→(latent, latent)→hidden→784), BCE-with-logits summed over pixels + KL, averaged
// over the batch, Adam (β 0.9/0.999, ε 1e-8), shuffled minibatches, fresh N(0, I) noise each step.
// Each timed step includes building the batch from bytes and reading the loss back.

import { uniform } from '../www/random.js';
import { startEngineWorker } from './engine-client.js';

const TFJS = '/node_modules/@tensorflow/tfjs/dist/tf.min.js';
const TFJS_WASM = '/node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js';
const TFJS_WASM_DIR = '/node_modules/@tensorflow/tfjs-backend-wasm/dist/';

window.__bench = { status: 'running' };

const q = new URLSearchParams(location.search);
function intParam(name, fallback) {
  if (!q.has(name)) return fallback;
  const v = Number(q.get(name));
  if (!Number.isInteger(v) || v < 0) throw new Error(`query parameter ${name}=${q.get(name)} is not a whole number`);
  return v;
}

async function main() {
  const cfg = {
    run: q.get('run') ?? 'ours',
    data: q.get('data') ?? '/bench/.data/',
    n: intParam('n', undefined),
    pixels: intParam('pixels', 784),
    batch: intParam('batch', 128),
    latent: intParam('latent', 20),
    hidden: intParam('hidden', 400),
    lr: Number(q.get('lr') ?? 1e-3),
    seed: intParam('seed', 1),
    warmup: intParam('warmup', 5),
    steps: intParam('steps', 30),
    block: intParam('block', 5),
    threads: intParam('threads', 0), // tfjs-threaded's pool; 0 = tfjs's default
  };
  if (!(cfg.steps > 0)) throw new Error('steps must be at least 1');
  if (!(cfg.block > 0)) throw new Error('block must be at least 1');
  const data = await loadData(cfg);
  const env = {
    userAgent: navigator.userAgent,
    hardwareConcurrency: navigator.hardwareConcurrency,
    crossOriginIsolated: self.crossOriginIsolated === true,
  };
  const runs = {};
  const active = [];
  for (const name of cfg.run.split(',')) {
    let bench;
    switch (name) {
      case 'ours': bench = await setupOurs(cfg, data, 'plain'); break;
      case 'ours-relaxed': bench = await setupOurs(cfg, data, 'relaxed'); break;
      case 'ours-threads': bench = await setupOursThreads(cfg, data, name, null, cfg.batch, 'threads'); break;
      case 'tfjs-simd': bench = await setupTfjs(cfg, data, false); break;
      case 'tfjs-threaded': bench = await setupTfjs(cfg, data, true); break;
      default: {
        const kindRun = /^ours-(relaxed-|threads-|threads-plain-)?(vae|cvae|gan|cgan)-(\d+)$/.exec(name);
        if (!kindRun) throw new Error(`unknown run ${name} (ours, ours-relaxed, ours-threads, tfjs-simd, tfjs-threaded or ours[-relaxed|-threads|-threads-plain]-<kind>-<batch>)`);
        if (kindRun[1]?.startsWith('threads-')) {
          bench = await setupOursThreads(cfg, data, name, kindRun[2], Number(kindRun[3]), kindRun[1].slice(0, -1));
          break;
        }
        const binary = kindRun[1] ? 'relaxed' : 'plain';
        bench = await setupOursKind(cfg, data, name, kindRun[2], Number(kindRun[3]), binary);
      }
    }
    if (bench.skipped) {
      runs[name] = { skipped: bench.skipped };
    } else {
      runs[name] = { info: bench.info, ms: [], losses: [] };
      active.push({ name, ...bench });
    }
  }
  // Warm up each, then time them in alternating blocks of steps, so that whatever else the
  // machine is doing weighs on all of them alike.
  for (const b of active) await runSteps(b, runs[b.name], cfg.warmup, false);
  for (let left = cfg.steps; left > 0; left -= cfg.block) {
    for (const b of active) await runSteps(b, runs[b.name], Math.min(cfg.block, left), true);
  }
  for (const b of active) Object.assign(runs[b.name], b.finish ? await b.finish() : {});
  return { cfg, env, runs };
}

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} (run node bench/run.mjs, which writes it)`);
  return new Uint8Array(await res.arrayBuffer());
}

async function loadData(cfg) {
  const [images, labels] = await Promise.all([fetchBytes(cfg.data + 'images.u8'), fetchBytes(cfg.data + 'labels.u8')]);
  const n = cfg.n ?? labels.length;
  if (images.length !== n * cfg.pixels || labels.length !== n) {
    throw new Error(`data: expected ${n} images of ${cfg.pixels} pixels and ${n} labels, ` +
      `got ${images.length} image bytes and ${labels.length} labels`);
  }
  if (n < cfg.batch) throw new Error(`data: ${n} images is fewer than one batch of ${cfg.batch}`);
  return { images, labels, n };
}

// Runs `count` steps, each timed on its own; the event loop turns between steps (outside the
// timing) so the page stays responsive.
async function runSteps(bench, into, count, timed) {
  for (let i = 0; i < count; i++) {
    let s, dt;
    if (bench.remote) {
      ({ losses: s, ms: dt } = await bench.step()); // timed in its worker
    } else {
      const t0 = performance.now();
      s = bench.step();
      dt = performance.now() - t0;
    }
    for (const [k, v] of Object.entries(s)) {
      if (!Number.isFinite(v)) throw new Error(`${bench.name} step ${into.losses.length + 1}: ${k} is ${v}`);
    }
    into.losses.push(s);
    if (timed) into.ms.push(dt);
    await new Promise((r) => setTimeout(r, 0));
  }
}

// ---- ours (pkg/, the CPU engine) -----------------------------------------------------------------

// One train_step's losses, its stats object freed.
function trainStep(model) {
  const s = model.train_step();
  const out = s.losses;
  s.free();
  return out;
}

/** Our wasm binaries: the glue is the same for both; one module instance over each, by address. */
const OUR_BINARIES = { plain: 'latent_lab_bg.wasm', relaxed: 'latent_lab_relaxed_bg.wasm' };
const ourModules = {};

async function loadOurs(binary) {
  const t0 = performance.now();
  ourModules[binary] ??= (async () => {
    const lab = await import(`/pkg/latent_lab.js?binary=${binary}`);
    await lab.default({ module_or_path: `/pkg/${OUR_BINARIES[binary]}` });
    const said = lab.cpu_engine();
    if (said !== (binary === 'relaxed' ? '1 thread, relaxed SIMD' : '1 thread, SIMD')) throw new Error(`${OUR_BINARIES[binary]} says it is "${said}"`);
    return lab;
  })();
  const lab = await ourModules[binary];
  return { Model: lab.Model, loadMs: performance.now() - t0 };
}

async function setupOurs(cfg, data, binary) {
  const { Model, loadMs } = await loadOurs(binary);
  const model = new Model(cfg.latent, cfg.hidden, cfg.seed);
  model.set_dataset(data.images, data.labels);
  model.batch_size = cfg.batch;
  model.learning_rate = cfg.lr;
  model.adam_beta2 = 0.999; // TF.js's and PyTorch's, so the losses compare (the fast VAE recipe's is 0.99)
  const info = {
    name: binary === 'relaxed' ? 'ours-relaxed' : 'ours',
    variant: OUR_BINARIES[binary],
    threads: 1,
    backend: model.backend,
    loadMs,
  };
  const step = () => trainStep(model);
  return { info, step };
}

// A fresh model of any kind at its default size and the fast recipe's rate, at `batch`.
async function setupOursKind(cfg, data, name, kind, batch, binary) {
  const { Model, loadMs } = await loadOurs(binary);
  const model = Model.create(kind, cfg.seed);
  model.set_dataset(data.images, data.labels);
  model.batch_size = batch;
  const info = { name, variant: OUR_BINARIES[binary], threads: 1, backend: model.backend, kind, batch,
    latent: model.latent, hidden: model.hidden, loadMs };
  const step = () => trainStep(model);
  // The engine's own clock of each phase, over every step (warm-up included): the shares.
  return { info, step, finish: () => ({ phases: model.step_phases }) };
}

/**
 * The threaded build in its own worker (bench/engine-worker.js; `binary` 'threads', relaxed SIMD,
 * or 'threads-plain', simd128): a fresh model of `kind` at its default size (or, without a kind,
 * the VAE of the other runs) at `batch`; each step a message.
 */
async function setupOursThreads(cfg, data, name, kind, batch, binary) {
  const threads = Math.min(navigator.hardwareConcurrency || 1, 4);
  const { worker, call, engine, loadMs } = await startEngineWorker(binary, threads);
  const variant = binary === 'threads' ? 'threads/latent_lab_relaxed_bg.wasm' : 'threads/latent_lab_bg.wasm';
  const want = `${threads} thread${threads === 1 ? '' : 's'}, ${binary === 'threads' ? 'relaxed SIMD' : 'SIMD'}`;
  if (engine !== want) throw new Error(`pkg/${variant} says it is "${engine}", not "${want}"`);
  const made = await call(kind
    ? { cmd: 'model', kind, seed: cfg.seed, batch, images: data.images, labels: data.labels }
    : { cmd: 'model', latent: cfg.latent, hidden: cfg.hidden, seed: cfg.seed, batch, lr: cfg.lr, beta2: 0.999, images: data.images, labels: data.labels });
  const info = { name, variant, threads, backend: made.backend, kind, batch,
    latent: made.latent, hidden: made.hidden, loadMs };
  const step = async () => (await call({ cmd: 'steps', count: 1 })).steps[0];
  const finish = async () => {
    const { phases } = await call({ cmd: 'phases' });
    worker.terminate();
    return { phases };
  };
  return { info, step, finish, remote: true };
}

// ---- TensorFlow.js, wasm backend -----------------------------------------------------------------

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = resolve;
    s.onerror = () => reject(new Error(`failed to load ${src}`));
    document.head.append(s);
  });
}

async function setupTfjs(cfg, data, threaded) {
  if (threaded && !self.crossOriginIsolated) {
    return { skipped: 'the page is not cross-origin isolated, so there is no SharedArrayBuffer for threads' };
  }
  const t0 = performance.now();
  await loadScript(TFJS);
  await loadScript(TFJS_WASM);
  const tf = window.tf;
  if (!tf?.wasm?.setWasmPaths) throw new Error('tfjs or its wasm backend did not load');
  tf.wasm.setWasmPaths(new URL(TFJS_WASM_DIR, location.href).href);
  // The single-thread run must not pick the threaded binary even where it could.
  if (!threaded) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  // tfjs 4.x sizes its pool at half the logical CPUs (1–8) and caps any setThreadsCount there.
  else if (cfg.threads > 0) tf.wasm.setThreadsCount(cfg.threads);
  const detected = {
    simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
    multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
  };
  if (threaded && !detected.multithread) {
    return { skipped: 'tfjs reports no multithread support (WASM_HAS_MULTITHREAD_SUPPORT is false)' };
  }
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed (see the console)');
  await tf.ready();
  if (tf.getBackend() !== 'wasm') throw new Error(`tfjs backend is ${tf.getBackend()}, not wasm`);
  const loadMs = performance.now() - t0;
  const wasmFiles = performance.getEntriesByType('resource')
    .map((e) => new URL(e.name).pathname)
    .filter((p) => p.startsWith(TFJS_WASM_DIR) && p.endsWith('.wasm'))
    .map((p) => p.slice(TFJS_WASM_DIR.length));
  if (wasmFiles.length !== 1) throw new Error(`expected one tfjs wasm binary to load, saw [${wasmFiles.join(', ')}]`);
  const info = {
    name: threaded ? 'tfjs-threaded' : 'tfjs-simd',
    variant: wasmFiles[0],
    threads: tf.wasm.getThreadsCount(),
    detected,
    tfjsVersion: tf.version.tfjs,
    loadMs,
  };

  const { n, images } = data;
  const { pixels, latent, hidden, batch } = cfg;
  // PyTorch's nn.Linear initialisation: weights and biases uniform in ±1/√fan_in.
  let seed = cfg.seed;
  const linear = (name, fanIn, fanOut) => {
    const bound = 1 / Math.sqrt(fanIn);
    return {
      w: tf.variable(tf.randomUniform([fanIn, fanOut], -bound, bound, 'float32', seed++), true, `${name}.w`),
      b: tf.variable(tf.randomUniform([fanOut], -bound, bound, 'float32', seed++), true, `${name}.b`),
    };
  };
  const fc1 = linear('fc1', pixels, hidden);
  const fc21 = linear('fc21', hidden, latent);
  const fc22 = linear('fc22', hidden, latent);
  const fc3 = linear('fc3', latent, hidden);
  const fc4 = linear('fc4', hidden, pixels);
  const vars = [fc1, fc21, fc22, fc3, fc4].flatMap((l) => [l.w, l.b]);
  const dense = (x, l, activation) => tf.fused.matMul({ a: x, b: l.w, bias: l.b, activation });
  const opt = tf.train.adam(cfg.lr, 0.9, 0.999, 1e-8);

  const next = uniform(cfg.seed);
  const order = Array.from({ length: n }, (_, i) => i);
  let cursor = n;
  const buf = new Float32Array(batch * pixels);

  const step = () => {
    if (cursor >= n) {
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      cursor = 0;
    }
    const m = Math.min(batch, n - cursor);
    for (let r = 0; r < m; r++) {
      const src = order[cursor + r] * pixels;
      for (let p = 0; p < pixels; p++) buf[r * pixels + p] = images[src + p] / 255;
    }
    cursor += m;
    const x = tf.tensor2d(m === batch ? buf : buf.slice(0, m * pixels), [m, pixels]);
    const eps = tf.randomNormal([m, latent]);
    let parts;
    const cost = opt.minimize(() => {
      const h = dense(x, fc1, 'relu');
      const mu = dense(h, fc21);
      const logvar = dense(h, fc22);
      const z = mu.add(logvar.mul(0.5).exp().mul(eps));
      const logits = dense(dense(z, fc3, 'relu'), fc4);
      // BCE with logits, stable form: max(l, 0) − x·l + log(1 + exp(−|l|))
      const bce = logits.relu().sub(x.mul(logits)).add(logits.abs().neg().exp().log1p()).sum().div(m);
      const kl = logvar.add(1).sub(mu.square()).sub(logvar.exp()).sum().mul(-0.5).div(m);
      parts = tf.keep(tf.stack([bce, kl]));
      return bce.add(kl);
    }, true, vars);
    const loss = cost.dataSync()[0];
    const [bce, kl] = parts.dataSync();
    tf.dispose([x, eps, cost, parts]);
    return { loss, bce, kl };
  };

  let tensorsAfterFirst;
  const firstStep = () => {
    const s = step();
    tensorsAfterFirst = tf.memory().numTensors; // Adam's moments exist from here on
    return s;
  };
  let calls = 0;
  const counted = () => (calls++ === 0 ? firstStep() : step());
  const finish = () => {
    const tensorsAtEnd = tf.memory().numTensors;
    if (tensorsAtEnd !== tensorsAfterFirst) {
      throw new Error(`tfjs step leaks tensors: ${tensorsAfterFirst} after the first step, ${tensorsAtEnd} at the end`);
    }
    return { tensors: tensorsAtEnd };
  };
  return { info, step: counted, finish };
}

// ---- report ----------------------------------------------------------------------------------

const out = document.getElementById('out');
main().then(
  (result) => {
    window.__bench = { status: 'done', result };
    out.textContent = Object.entries(result.runs).map(([name, r]) => {
      if (r.skipped) return `${name}: skipped — ${r.skipped}`;
      const sorted = [...r.ms].sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
      const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
      // the VAE's loss, or a GAN's discriminator loss
      const headline = (s) => (s.loss ?? s.d_loss).toFixed(2);
      const l = r.losses;
      return `${name} (${r.info.variant}, ${r.info.threads} thread(s)): ` +
        `median ${median.toFixed(2)} ms/step, mean ${mean.toFixed(2)} over ${sorted.length} steps; ` +
        `loss ${headline(l[0])} → ${headline(l[l.length - 1])}`;
    }).join('\n');
  },
  (e) => {
    const message = e?.stack ?? e?.message ?? String(e);
    window.__bench = { status: 'error', message };
    out.textContent = `error: ${message}`;
    out.className = 'error';
  },
);
