// A module worker that trains on one of our wasm builds, for the benchmark page (bench.js's
// threaded runs) and the browser tests (their side: bench/engine-client.js): the threaded build's pool runs only off a page's main
// thread (a step waits for its threads with Atomics.wait), as in the page's training worker.
//
// in:  {cmd: 'load', binary: 'threads' | 'threads-plain' | 'relaxed' | 'plain', threads?, dir?}   → {engine, loadMs}
//           dir: a folder of the server holding another copy of that build's files (bench/ab.mjs)
//      {cmd: 'model', kind?, latent?, hidden?, seed, batch?, lr?, beta2?, images?, labels?, safetensors?}
//           a fresh model: of `kind` at its default size (or latent, hidden), or without a kind
//           the benchmark's VAE, `new Model(latent, hidden, seed)`; trained on `images` and
//           `labels` (bytes) or on the page's MNIST file (`safetensors`)   → {backend, latent, hidden}
//      {cmd: 'steps', count}   → {steps: [{losses, ms}]}: each step timed here, on this thread
//      {cmd: 'phases'}         → {phases}: the engine's clock of every step so far
// out: {error} instead, for any failure.

const BINARIES = {
  threads: ['/pkg/threads/latent_lab.js', '/pkg/threads/latent_lab_relaxed_bg.wasm'],
  'threads-plain': ['/pkg/threads/latent_lab.js', '/pkg/threads/latent_lab_bg.wasm'],
  relaxed: ['/pkg/latent_lab.js', '/pkg/latent_lab_relaxed_bg.wasm'],
  plain: ['/pkg/latent_lab.js', '/pkg/latent_lab_bg.wasm'],
};

let lab = null;
let model = null;

const commands = {
  async load({ binary, threads = 2, dir = null }) {
    if (lab) throw new Error('a build is loaded already');
    let [glue, wasm] = BINARIES[binary] ?? [];
    if (!glue) throw new Error(`unknown build ${binary} (${Object.keys(BINARIES).join(', ')})`);
    if (dir) [glue, wasm] = [glue, wasm].map((file) => `${dir.replace(/\/$/, '')}/${file.split('/').at(-1)}`);
    const t0 = performance.now();
    const module = await import(glue);
    await module.default({ module_or_path: wasm });
    if (binary.startsWith('threads')) await module.start_threads(threads);
    lab = module;
    return { engine: lab.cpu_engine(), loadMs: performance.now() - t0 };
  },
  model({ kind, latent, hidden, seed = 1, batch, lr, beta2, images, labels, safetensors }) {
    if (!lab) throw new Error('load a build first');
    model?.free();
    model = kind ? lab.Model.create(kind, seed, latent, hidden) : new lab.Model(latent, hidden, seed);
    if (safetensors) model.set_dataset_safetensors(safetensors);
    else model.set_dataset(images, labels);
    if (batch) model.batch_size = batch;
    if (lr) model.learning_rate = lr;
    if (beta2) model.adam_beta2 = beta2;
    return { backend: model.backend, latent: model.latent, hidden: model.hidden };
  },
  steps({ count }) {
    if (!model) throw new Error('make a model first');
    const steps = [];
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      const s = model.train_step();
      const ms = performance.now() - t0;
      steps.push({ losses: s.losses, ms });
      s.free();
    }
    return { steps };
  },
  phases() {
    return { phases: model.step_phases };
  },
};

onmessage = async ({ data }) => {
  try {
    const command = commands[data.cmd];
    if (!command) throw new Error(`unknown command ${data.cmd}`);
    postMessage(await command(data));
  } catch (e) {
    postMessage({ error: e?.message ?? String(e) });
  }
};
