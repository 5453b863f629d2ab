// Everything the page, the <latent-lab> element and the training worker download, each once per
// page (or worker): the wasm modules (the whole one and the light sampler), the one list of shipped models, their weights, the digit
// classifier, the MNIST files, and each model's latent map. Every cache holds a promise, so
// callers that ask at the same time share one download, and it forgets a failure, so a later call
// may try again. No DOM here: the worker imports it too.
import { buildMap } from './latent-map.js';

const here = (path) => new URL(path, import.meta.url);

/**
 * A module of one function that returns f32x4.relaxed_madd of three zero vectors: it validates
 * where the browser has relaxed SIMD (Chromium since 114, Firefox since 145), not elsewhere (Safari
 * rejects any module containing it).
 */
function relaxedSimdProbe() {
  const zeros = [0xfd, 0x0c, ...new Array(16).fill(0)]; // v128.const 0
  const body = [0x00, ...zeros, ...zeros, ...zeros, 0xfd, 0x85, 0x02, 0x0b]; // relaxed_madd, end
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
    0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, // types: () -> v128
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x0a, body.length + 2, 0x01, body.length, ...body, // its code
  ]);
}

/**
 * Which build of the whole wasm module runs here: 'relaxed' (pkg/latent_lab_relaxed_bg.wasm, the
 * engine's products in fused multiply-adds) where relaxed SIMD validates, else 'plain'
 * (pkg/latent_lab_bg.wasm, simd128 alone). `?simd=plain` in the page's address forces the plain
 * build, in the page and in its training worker (whose address carries it on).
 */
const query = new URLSearchParams(self.location.search);
const simdForced = query.get('simd') === 'plain';
export const SIMD = !simdForced && WebAssembly.validate(relaxedSimdProbe()) ? 'relaxed' : 'plain';

/**
 * Threads for training: the training worker runs the threaded build (pkg/threads/, over a shared
 * memory, the engine's products split across a pool of Web Workers; relaxed SIMD or plain, as
 * SIMD says) where the page is cross-origin isolated (COOP/COEP: SharedArrayBuffer exists), there
 * is more than one core and `?threads=1` does not ask for one thread. THREADS says how many the pool
 * gets (up to 4: these layers gain nothing from more), or why one thread (`single`); the address
 * carries `?threads=1` on to the worker, as it does `?simd=plain`. A page's main thread never
 * runs the threaded build: a step waits for its threads with Atomics.wait, which it may not.
 */
export const THREADS = (() => {
  if (query.get('threads') === '1') return { count: 1, single: 'one thread asked for' };
  if (!self.crossOriginIsolated) return { count: 1, single: 'page not cross-origin isolated' };
  const cores = navigator.hardwareConcurrency || 1;
  if (cores < 2) return { count: 1, single: 'one core' };
  return { count: Math.min(cores, 4), single: null };
})();
const inWorker = typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope;

/** The shipped models, in the order the page's Model list shows them. */
export const MODELS = [
  { key: 'vae-z20', name: 'VAE, latent 20' },
  { key: 'vae-z2', name: 'VAE, latent 2' },
  { key: 'cvae-z2', name: 'Conditional VAE, latent 2' },
  { key: 'gan-z64', name: 'GAN, z 64' },
  { key: 'cgan-z64', name: 'Conditional GAN, z 64' },
  { key: 'ae-z3', name: 'Autoencoder, code 3' },
  { key: 'vae-z3', name: 'VAE, latent 3' },
  { key: 'vae-z20-l2', name: 'VAE, latent 20, L2 loss' },
  { key: 'vae-z20-l1', name: 'VAE, latent 20, L1 loss' },
  // `whole`: no decoder file; the light sampler has no convolutions, so these load whole.
  { key: 'conv-vae-z20', name: 'Conv VAE, latent 20', whole: true },
  { key: 'conv-ae-z32', name: 'Conv autoencoder, code 32', whole: true },
];
export const MODEL_KEYS = MODELS.map((m) => m.key);

export const URLS = {
  model: (key) => here(`./weights/${key}.safetensors`),
  decoder: (key) => here(`./weights/${key}.decoder.safetensors`),
  classifier: here('./weights/classifier.safetensors'),
  // Stored gzipped (55 MB and 7.8 MB raw), so that a host that compresses nothing still sends
  // about 11.6 and 1.7 MB; fetchBytes inflates them.
  mnist: here('./data/mnist.safetensors.gz'),
  mnistTest: here('./data/mnist-test.safetensors.gz'),
  // The worker's address carries the page's choices of binary on.
  worker: (() => {
    const url = here('./worker.js');
    if (simdForced) url.searchParams.set('simd', 'plain');
    if (query.get('threads') === '1') url.searchParams.set('threads', '1');
    return url;
  })(),
};

/**
 * The bytes at `url` (`what` they are, for errors). A gzip stream is inflated: the MNIST files are
 * stored so, and a host that sends them with `Content-Encoding: gzip` has the browser inflate them
 * first, so the magic number, not the name, says which.
 */
export async function fetchBytes(url, what) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not download ${what} (HTTP ${res.status} ${res.statusText} for ${url})`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    const inflated = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(inflated).arrayBuffer());
  } catch (e) {
    throw new Error(`could not inflate ${what} from ${url}: ${e.message}`);
  }
}

/** `make()`'s promise, made on the first call and kept unless it fails. */
function once(make) {
  let promise = null;
  return () => {
    if (!promise) {
      const p = make();
      promise = p;
      p.catch(() => { if (promise === p) promise = null; });
    }
    return promise;
  };
}

/** `make(key)`'s promise per key (in `store`: a Map, or a WeakMap for object keys), kept unless it fails. */
function perKey(make, store = new Map()) {
  return (key) => {
    let p = store.get(key);
    if (!p) {
      p = make(key);
      store.set(key, p);
      p.catch(() => { if (store.get(key) === p) store.delete(key); });
    }
    return p;
  };
}

/**
 * A wasm module's exports (`../pkg/${name}.js`, over the binary `../pkg/${binaryName}_bg.wasm`),
 * initialised once. The import is dynamic so that a
 * missing or blocked pkg/ becomes an error its caller shows (inside an element, on the page)
 * instead of a module that fails to load.
 */
const wasmModule = (name, binaryName = name) => once(async () => {
  // The binary's download starts beside its JS glue's, not after the glue has run.
  const binary = fetch(here(`../pkg/${binaryName}_bg.wasm`));
  binary.catch(() => {}); // a failed download is reported by init below
  const module = await import(`../pkg/${name}.js`);
  await module.default({ module_or_path: binary });
  return module;
});

const singleThreaded = wasmModule('latent_lab', SIMD === 'relaxed' ? 'latent_lab_relaxed' : 'latent_lab');

/** Why the engine runs on one thread here (null where its pool started). */
let oneThreadBecause = THREADS.single;

/**
 * The threaded build with its pool started, in a worker where THREADS allows it; the
 * single-threaded build where it does not, or where the pool fails to start (saying why).
 */
const threaded = once(async () => {
  try {
    // The pool's workers start from blob: URLs (wasm-bindgen-rayon fetches its worker script
    // and runs it so); a Content-Security-Policy may refuse them, and then the pool would wait
    // for them for ever: asked first, and the start given a deadline besides.
    const refused = await blobWorkerRefused();
    if (refused) throw new Error(refused);
    const module = await import('../pkg/threads/latent_lab.js');
    const binary = SIMD === 'relaxed' ? 'latent_lab_relaxed' : 'latent_lab';
    await module.default({ module_or_path: fetch(here(`../pkg/threads/${binary}_bg.wasm`)) });
    await withDeadline(module.start_threads(THREADS.count), POOL_START_MS, `the pool was not up after ${POOL_START_MS / 1000} s`);
    return module;
  } catch (e) {
    oneThreadBecause = `threads did not start: ${e.message}`;
    return singleThreaded();
  }
});

/** How long the pool may take to start (it took about 0.6 s here) before training goes on without it. */
const POOL_START_MS = 20_000;

/** `promise`, or a rejection with `why` after `ms`. */
function withDeadline(promise, ms, why) {
  let timer;
  const deadline = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(why)), ms); });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Null where a worker started from a blob: URL runs here (one that posts a message back), else why
 * not: refused (a CSP's worker-src), or no answer within 10 s.
 */
function blobWorkerRefused() {
  const refused = "this page refuses workers from blob: URLs (its CSP's worker-src)";
  return new Promise((resolve) => {
    let worker;
    let url;
    const done = (why) => {
      worker?.terminate();
      if (url) URL.revokeObjectURL(url);
      resolve(why);
    };
    try {
      url = URL.createObjectURL(new Blob(['postMessage(0)'], { type: 'text/javascript' }));
      worker = new Worker(url);
      worker.onmessage = () => done(null);
      worker.onerror = () => done(refused);
    } catch {
      done(refused);
      return;
    }
    setTimeout(() => done('a worker from a blob: URL did not answer within 10 s'), 10_000);
  });
}

/**
 * The whole wasm module: models that encode, train and save, the classifier, the MNIST reader.
 * In the training worker, the threaded build where THREADS allows it.
 */
export const wasm = inWorker && THREADS.count > 1 ? threaded : singleThreaded;

/**
 * What the CPU engine trains on, as the Train panel says it: the binary's own words
 * (`cpu_engine()`: "2 threads, relaxed SIMD") and, on one thread, why ("page not cross-origin
 * isolated").
 */
export function engineLine(module) {
  const line = module.cpu_engine();
  return oneThreadBecause && line.startsWith('1 thread') ? `${line} (${oneThreadBecause})` : line;
}

/**
 * The light wasm module (src/wasm_sampler.rs): a `Sampler` alone, about a quarter of the whole
 * module's bytes, so the first digits wait for it and a decoder, not for the trainer.
 */
export const samplerWasm = wasmModule('sampler');

/** One shared Model per shipped model key, loaded from the file `url(key)` (`what` it is, for errors) by `load`. */
const shippedFrom = (url, what, load) => perKey(async (key) => {
  if (!MODEL_KEYS.includes(key)) throw new Error(`unknown model "${key}"; the models are ${MODEL_KEYS.join(', ')}`);
  const [module, bytes] = await Promise.all([load.module(), fetchBytes(url(key), `the ${key} ${what}`)]);
  return load.from(module, bytes);
});

/**
 * The shared Model of the shipped model `key`, whole (it encodes and trains too); sampling is
 * synchronous, so sharing it is safe.
 */
export const shippedModel = shippedFrom(URLS.model, 'weights', { module: wasm, from: (m, bytes) => m.Model.load(bytes) });

/**
 * The shared Sampler of the shipped model `key`, from its decoder file (about half the bytes, a
 * GAN's generator, a VAE's fc3 and fc4) through the light module: it has Model's getters,
 * `sample` and `interpolate`, and draws the same digits as the whole model; `capabilities.whole`
 * is false. What a view that only samples fetches first. A convolutional model (`whole` in
 * MODELS) has no decoder file: its whole Model comes instead.
 */
const shippedDecoderFile = shippedFrom(URLS.decoder, 'decoder', { module: samplerWasm, from: (m, bytes) => m.Sampler.load(bytes) });
export const shippedDecoder = (key) => (MODELS.find((m) => m.key === key)?.whole ? shippedModel(key) : shippedDecoderFile(key));

export const classifier = once(async () => {
  const [{ Classifier }, bytes] = await Promise.all([wasm(), fetchBytes(URLS.classifier, 'the digit classifier')]);
  return Classifier.load(bytes);
});

/** The 10,000 MNIST test digits, {images, labels} (7.8 MB, so only when a view needs them). */
export const testDigits = once(async () => {
  const [{ load_digits: loadDigits }, bytes] = await Promise.all([wasm(), fetchBytes(URLS.mnistTest, 'the MNIST test digits')]);
  const digits = loadDigits(bytes, 'test');
  const set = { images: digits.images, labels: digits.labels }; // the getters copy: read each once
  digits.free();
  return set;
});

/** A model's latent map (www/latent-map.js's buildMap), once per Model object (a retrained model is a new one). */
export const latentMap = perKey(async (model) => {
  const [{ Pca }, set] = await Promise.all([wasm(), testDigits()]);
  return buildMap(model, set, Pca);
}, new WeakMap());
