// Training runs here, off the page's thread, on its own instance of the wasm module.
//
// in:  {cmd: 'start', weights: Uint8Array | null, kind, latent, hidden, seed, epochs, batchSize,
//       learningRate, gridZ: Float32Array, gridLabels: Uint8Array | null,
//       manifoldZ?: Float32Array, manifoldLabels?: Uint8Array | null,
//       reconImages?: Float32Array, reconLabels?: Uint8Array | null}
//                                               weights null = fresh `kind` model from (latent, hidden, seed);
//                                               manifoldZ / reconImages are optional extra views to
//                                               keep fresh: the page's manifold grid (n × latent)
//                                               and its row of test digits (n × 784; VAE kinds)
//      {cmd: 'stop'}                            stop after the current step, keeping its weights
// out: {status: string}                         what is happening now
//      {step, epoch, totalSteps, loss, bce, kl} after every VAE step
//      {step, epoch, totalSteps, d_loss, g_loss, d_real, d_fake}   after every GAN step
//      {samples: Float32Array, step}            the fixed grid decoded, every SAMPLE_EVERY steps
//      {manifold: Float32Array, step}          sample(manifoldZ, manifoldLabels), every SAMPLE_EVERY
//                                               steps, when the start message had manifoldZ
//      {recon: Float32Array, losses: Float32Array, step}
//                                               reconstruct(reconImages, reconLabels), every
//                                               SAMPLE_EVERY steps, when the start message had
//                                               reconImages and the model has an encoder
//      {coverage: number[10], step}             the classifier's digit histogram of COVERAGE_SAMPLES
//                                               fixed samples, every SAMPLE_EVERY steps
//      {done: true, weights: Uint8Array, steps, reason: 'finished' | 'stopped' | 'error'}
//      {error: string}                          a step failed; the weights before it are kept
//      {fatal: string}                          the wasm module trapped; this worker is unusable
import init, { Classifier, Model } from '../pkg/latent_lab.js';
import { histogram } from './coverage.js';
import { normals } from './random.js';

const DATA_URL = new URL('./data/mnist.safetensors', import.meta.url);
const CLASSIFIER_URL = new URL('./weights/classifier.safetensors', import.meta.url);
const SAMPLE_EVERY = 25;
const COVERAGE_SAMPLES = 200;
const STAT_FIELDS = ['loss', 'bce', 'kl', 'd_loss', 'g_loss', 'd_real', 'd_fake'];

let ready = null; // the wasm module, MNIST and the classifier, fetched once per worker
let stopRequested = false;

async function fetchBytes(url, what) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${what}: ${res.status} ${res.statusText} for ${url}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function prepare() {
  if (!ready) {
    ready = (async () => {
      await init();
      postMessage({ status: 'downloading MNIST (60,000 training digits)…' });
      const [data, classifierBytes] = await Promise.all([
        fetchBytes(DATA_URL, 'MNIST data'),
        fetchBytes(CLASSIFIER_URL, 'the digit classifier'),
      ]);
      return { data, classifier: Classifier.load(classifierBytes) };
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
  const { data, classifier } = await prepare();
  const model = msg.weights ? Model.load(msg.weights) : Model.create(msg.kind, msg.seed, msg.latent, msg.hidden);
  // Fixed latent vectors for the coverage histogram (conditional models: every digit in turn).
  const coverageZ = normals(COVERAGE_SAMPLES * model.latent, 8);
  const coverageLabels = model.conditional ? Uint8Array.from({ length: COVERAGE_SAMPLES }, (_, i) => i % 10) : undefined;
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
        stats = { step: s.step, epoch: s.epoch, totalSteps };
        for (const f of STAT_FIELDS) if (s[f] !== undefined) stats[f] = s[f];
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
        const samples = model.sample(msg.gridZ, msg.gridLabels ?? undefined);
        postMessage({ samples, step: steps }, [samples.buffer]);
        if (msg.manifoldZ) {
          const manifold = model.sample(msg.manifoldZ, msg.manifoldLabels ?? undefined);
          postMessage({ manifold, step: steps }, [manifold.buffer]);
        }
        if (msg.reconImages && (model.kind === 'vae' || model.kind === 'cvae')) {
          const r = model.reconstruct(msg.reconImages, msg.reconLabels ?? undefined);
          const recon = r.images;
          const losses = r.losses;
          r.free();
          postMessage({ recon, losses, step: steps }, [recon.buffer, losses.buffer]);
        }
        const coverage = histogram(classifier.classify(model.sample(coverageZ, coverageLabels)));
        postMessage({ coverage, step: steps });
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
