// Training runs here, off the page's thread, on its own instance of the wasm module.
//
// in:  {cmd: 'start', weights: Uint8Array | null, latent, hidden, seed, epochs, batchSize,
//       learningRate, gridZ: Float32Array}      weights null = fresh model from (latent, hidden, seed)
//      {cmd: 'stop'}                            stop after the current step, keeping its weights
// out: {status: string}                         what is happening now
//      {loss, bce, kl, step, epoch, totalSteps} after every step
//      {samples: Float32Array, step}            the fixed grid decoded, every SAMPLE_EVERY steps
//      {done: true, weights: Uint8Array, steps, reason: 'finished' | 'stopped' | 'error'}
//      {error: string}                          a step failed; the weights before it are kept
//      {fatal: string}                          the wasm module trapped; this worker is unusable
import init, { Model } from '../pkg/latent_lab.js';

const DATA_URL = new URL('./data/mnist.safetensors', import.meta.url);
const SAMPLE_EVERY = 25;

let ready = null; // the wasm module and MNIST, fetched once per worker
let stopRequested = false;

async function prepare() {
  if (!ready) {
    ready = (async () => {
      await init();
      postMessage({ status: 'downloading MNIST (60,000 training digits)…' });
      const res = await fetch(DATA_URL);
      if (!res.ok) throw new Error(`MNIST data: ${res.status} ${res.statusText} for ${DATA_URL}`);
      return new Uint8Array(await res.arrayBuffer());
    })();
    ready.catch(() => (ready = null)); // a failed download may be retried
  }
  return ready;
}

// Yields to the worker's event loop so a 'stop' message gets through between steps.
// (A MessageChannel round trip, unlike setTimeout, is not clamped to 4 ms.)
const channel = new MessageChannel();
const yieldToEvents = () =>
  new Promise((resolve) => {
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });

async function train(msg) {
  stopRequested = false;
  const data = await prepare();
  const model = msg.weights ? Model.load(msg.weights) : new Model(msg.latent, msg.hidden, msg.seed);
  try {
    model.set_dataset_safetensors(data);
    model.batch_size = msg.batchSize;
    model.learning_rate = msg.learningRate;
    const totalSteps = Math.max(1, Math.round(msg.epochs * model.steps_per_epoch));
    postMessage({ status: `training on ${model.backend.toUpperCase()}: ${totalSteps} steps` });
    let reason = 'finished';
    let steps = 0;
    for (let i = 0; i < totalSteps; i++) {
      if (stopRequested) {
        reason = 'stopped';
        break;
      }
      let stats;
      try {
        const s = model.train_step();
        stats = { loss: s.loss, bce: s.bce, kl: s.kl, step: s.step, epoch: s.epoch, totalSteps };
        s.free();
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) throw e; // the module itself died: fatal below
        postMessage({ error: e.message });
        reason = 'error';
        break;
      }
      steps = stats.step;
      postMessage(stats);
      if (steps % SAMPLE_EVERY === 0 || i === totalSteps - 1) {
        const samples = model.sample(msg.gridZ);
        postMessage({ samples, step: steps }, [samples.buffer]);
      }
      await yieldToEvents();
    }
    const weights = model.save();
    postMessage({ done: true, weights, steps, reason }, [weights.buffer]);
  } finally {
    model.free();
  }
}

onmessage = (e) => {
  const msg = e.data;
  if (msg.cmd === 'stop') {
    stopRequested = true;
  } else if (msg.cmd === 'start') {
    train(msg).catch((err) => {
      const message = err?.message ?? String(err);
      if (err instanceof WebAssembly.RuntimeError) postMessage({ fatal: message });
      else postMessage({ error: message });
      postMessage({ done: true, weights: null, steps: 0, reason: 'error' });
    });
  }
};
