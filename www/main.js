// The page: loads the wasm module, the classifier and the pretrained weights (each model when it is
// first needed), draws samples, sliders and the interpolation strip, compares a VAE with a GAN
// (www/compare.js), explores the latent space (www/explore.js), drives training in a Web Worker
// (www/worker.js), and keeps the reader's place in the URL fragment (www/fragment.js).
import init, { Classifier, Model, Pca, center_digit, load_digits } from '../pkg/latent_lab.js';
import { setupCompare } from './compare.js';
import { GRID_GAP, drawCurve, drawGrid, drawHistogram, drawPad } from './draw.js';
import { setupExplorer } from './explore.js';
import { formatFragment, parseFragment } from './fragment.js';
import { normals } from './random.js';

const weightsUrl = (file) => new URL(`./weights/${file}`, import.meta.url);
// The shipped models, in the order the Model list shows them.
const WEIGHTS = [
  { key: 'vae-z20', name: 'VAE, latent 20', url: weightsUrl('vae-z20.safetensors') },
  { key: 'vae-z2', name: 'VAE, latent 2', url: weightsUrl('vae-z2.safetensors') },
  { key: 'cvae-z2', name: 'Conditional VAE, latent 2', url: weightsUrl('cvae-z2.safetensors') },
  { key: 'gan-z64', name: 'GAN, z 64', url: weightsUrl('gan-z64.safetensors') },
  { key: 'cgan-z64', name: 'Conditional GAN, z 64', url: weightsUrl('cgan-z64.safetensors') },
];
const CLASSIFIER_URL = weightsUrl('classifier.safetensors');
const SAMPLE_COLS = 8;
const SAMPLE_COUNT = 64;
const SAMPLE_CELL = 48; // pixels per digit in the sample grid
const TRAIN_GRID = 16;
const SLIDER_RANGE = 3; // ±3 standard deviations of the prior

const $ = (id) => document.getElementById(id);

const state = {
  models: new Map(), // key → { name, model: Model | null, loading: Promise<Model> | null, url }
  current: null,
  digit: 0, // the digit conditional models draw
  sampleSeed: 1,
  sampleZ: null, // SAMPLE_COUNT × latent
  sliderZ: null, // latent
  zA: null,
  zB: null,
  worker: null,
  training: false,
  trainingKey: null, // the model a running training will replace
  trainingKind: null,
  classifierLoading: null, // Promise<Classifier>
  view: null, // the panel last used, for the URL fragment
  explorer: null, // www/explore.js's panels, once the first model is drawn
};

const model = () => state.models.get(state.current).model;
const latent = () => model().latent;

/** Digit labels for `n` images when the current model is conditional, else undefined. */
const labelsFor = (m, n, digit = state.digit) => (m.conditional ? new Uint8Array(n).fill(digit) : undefined);

// ---- errors and status ---------------------------------------------------------------------

function showError(message) {
  const box = $('errors');
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $('errors').hidden = true;
  $('errors').textContent = '';
}

function setStatus(text) {
  $('status').textContent = text;
}

/** Wraps an event handler so any exception is shown on the page instead of lost in the console. */
const guard = (fn) => async (...args) => {
  try {
    await fn(...args);
  } catch (e) {
    showError(e?.message ?? String(e));
  }
};

// ---- models --------------------------------------------------------------------------------

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url.pathname ?? url}: ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Registers a model (or a shipped file to fetch when first used) under `key`. */
function addModel(key, name, m = null, url = null) {
  const old = state.models.get(key);
  old?.model?.free();
  state.models.set(key, { name, model: m, loading: null, url });
  let opt = [...$('model-select').options].find((o) => o.value === key);
  if (!opt) {
    opt = new Option('', key);
    $('model-select').add(opt);
  }
  opt.textContent = name;
}

/** The model under `key`, fetching its weights the first time. */
async function ensureModel(key) {
  const entry = state.models.get(key);
  if (entry.model) return entry.model;
  entry.loading ??= fetchBytes(entry.url).then((bytes) => {
    entry.model = Model.load(bytes);
    return entry.model;
  });
  entry.loading.catch(() => (entry.loading = null)); // a failed download may be retried
  return entry.loading;
}

async function selectModel(key) {
  setStatus(`Loading ${state.models.get(key).name}…`);
  await ensureModel(key);
  state.current = key;
  $('model-select').value = key;
  const m = model();
  const l = m.latent;
  state.sampleZ = normals(SAMPLE_COUNT * l, state.sampleSeed);
  state.sliderZ = new Float32Array(l);
  state.zA = state.sampleZ.slice(0, l);
  state.zB = state.sampleZ.slice(l, 2 * l);
  $('digit-picker').hidden = !m.conditional;
  // Each family trains at its tutorial's rate (VAE 1e-3, GAN 2e-4).
  $('train-lr').value = m.learning_rate;
  buildSliders();
  redrawAll();
  const meta = JSON.parse(m.metadata);
  const quality = meta.test_loss ? `test loss ${meta.test_loss} per digit, ` : '';
  setStatus(`${state.models.get(key).name}: ${m.kind.toUpperCase()}, ${quality}${meta.epochs ?? '?'} epochs of training.`);
}

function redrawAll() {
  drawSamples();
  drawSliderView();
  drawInterpolation();
  if (state.explorer) guard(() => state.explorer.refresh())();
  scheduleFragment();
}

/** The digit classifier, downloaded once. */
function classifier() {
  state.classifierLoading ??= fetchBytes(CLASSIFIER_URL).then((bytes) => Classifier.load(bytes));
  state.classifierLoading.catch(() => (state.classifierLoading = null));
  return state.classifierLoading;
}

// ---- the URL fragment (www/fragment.js) -----------------------------------------------------

let fragmentTimer = 0;
/** Writes the reader's place into location.hash, at most every 250 ms (replaceState: no history entries). */
function scheduleFragment() {
  if (fragmentTimer || !document.body.dataset.ready) return;
  fragmentTimer = setTimeout(() => {
    fragmentTimer = 0;
    const shipped = WEIGHTS.some((w) => w.key === state.current);
    const m = model();
    history.replaceState(null, '', formatFragment({
      model: shipped ? state.current : null,
      z: state.sliderZ,
      digit: m.conditional ? state.digit : null,
      view: state.view,
      at: state.explorer?.cursor ?? null,
    }));
  }, 250);
}

/** Remembers which panel the reader is using (focus or pointer inside it). */
function noteView(event) {
  const section = event.target.closest?.('section[id$="-panel"]');
  const view = section?.id.replace(/-panel$/, '');
  if (view && view !== state.view) {
    state.view = view;
    scheduleFragment();
  }
}

// ---- samples -------------------------------------------------------------------------------

function drawSamples() {
  const m = model();
  drawGrid($('samples'), m.sample(state.sampleZ, labelsFor(m, SAMPLE_COUNT)), SAMPLE_COLS, SAMPLE_CELL);
}

let pickNext = 'A';
function pickSample(event) {
  const canvas = $('samples');
  const rect = canvas.getBoundingClientRect();
  const pitch = SAMPLE_CELL + GRID_GAP;
  const col = Math.floor((((event.clientX - rect.left) / rect.width) * canvas.width) / pitch);
  const row = Math.floor((((event.clientY - rect.top) / rect.height) * canvas.height) / pitch);
  const k = row * SAMPLE_COLS + col;
  if (col < 0 || col >= SAMPLE_COLS || k < 0 || k >= SAMPLE_COUNT) return;
  const l = latent();
  const z = state.sampleZ.slice(k * l, (k + 1) * l);
  if (pickNext === 'A') state.zA = z;
  else state.zB = z;
  pickNext = pickNext === 'A' ? 'B' : 'A';
  drawInterpolation();
}

// ---- the digit a conditional model draws ---------------------------------------------------

function buildDigitPicker() {
  const box = $('digit-buttons');
  for (let d = 0; d < 10; d++) {
    const b = document.createElement('button');
    Object.assign(b, { type: 'button', textContent: String(d), id: `digit-${d}` });
    b.setAttribute('aria-pressed', String(d === state.digit));
    b.addEventListener('click', guard(() => setDigit(d)));
    box.append(b);
  }
}

function setDigit(d) {
  state.digit = d;
  $('digit-buttons').querySelectorAll('button').forEach((b, i) => b.setAttribute('aria-pressed', String(i === d)));
  redrawAll();
  scheduleFragment();
}

// ---- sliders and the 2-D pad ---------------------------------------------------------------

function buildSliders() {
  const box = $('sliders');
  box.replaceChildren();
  for (let i = 0; i < latent(); i++) {
    const label = document.createElement('label');
    const input = document.createElement('input');
    Object.assign(input, { type: 'range', min: -SLIDER_RANGE, max: SLIDER_RANGE, step: 0.01, value: 0, id: `slider-${i}` });
    input.setAttribute('aria-label', `latent dimension ${i + 1}`);
    const out = document.createElement('output');
    out.textContent = '0.00';
    input.addEventListener('input', () => {
      state.sliderZ[i] = Number(input.value);
      out.textContent = Number(input.value).toFixed(2);
      scheduleSliderDraw();
      scheduleFragment();
    });
    label.append(`z${i + 1}`, input, out);
    box.append(label);
  }
  $('pad').hidden = latent() !== 2;
}

/** Sets every latent dimension, clamped to the sliders' range, and redraws. */
function setSliders(z) {
  state.sliderZ.set(Array.from(z, (v) => Math.min(SLIDER_RANGE, Math.max(-SLIDER_RANGE, v))));
  $('sliders').querySelectorAll('input').forEach((input, i) => {
    input.value = state.sliderZ[i];
    input.nextElementSibling.textContent = state.sliderZ[i].toFixed(2);
  });
  scheduleSliderDraw();
  scheduleFragment();
}

let sliderFrame = 0;
function scheduleSliderDraw() {
  if (!sliderFrame) {
    sliderFrame = requestAnimationFrame(() => {
      sliderFrame = 0;
      drawSliderView();
    });
  }
}

function drawSliderView() {
  const m = model();
  drawGrid($('slider-view'), m.sample(state.sliderZ, labelsFor(m, 1)), 1, 168);
  if (latent() === 2) drawPad($('pad'), state.sliderZ, SLIDER_RANGE);
}

function padPointer(event) {
  if (event.type === 'pointermove' && !(event.buttons & 1)) return;
  const rect = $('pad').getBoundingClientRect();
  const fx = Math.min(1, Math.max(0, (event.clientX - rect.left) / rect.width));
  const fy = Math.min(1, Math.max(0, (event.clientY - rect.top) / rect.height));
  setSliders([(fx * 2 - 1) * SLIDER_RANGE, (1 - fy * 2) * SLIDER_RANGE]);
}

function padKey(event) {
  const step = event.shiftKey ? 0.5 : 0.1;
  const d = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] }[event.key];
  if (!d) return;
  event.preventDefault();
  setSliders([state.sliderZ[0] + d[0], state.sliderZ[1] + d[1]]);
}

// ---- interpolation -------------------------------------------------------------------------

function drawInterpolation() {
  const steps = Math.min(20, Math.max(2, Number($('interp-steps').value) || 10));
  const m = model();
  const frames = m.interpolate(state.zA, state.zB, steps, m.conditional ? state.digit : undefined);
  drawGrid($('interp'), frames, steps, 48);
  drawGrid($('interp-a'), frames.subarray(0, 784), 1, 48);
  drawGrid($('interp-b'), frames.subarray((steps - 1) * 784), 1, 48);
}

// ---- training ------------------------------------------------------------------------------

// What the loss curve plots for each family: [message field, colour, label].
const CURVES = {
  vae: [['loss', '#f0a04b', 'loss'], ['bce', '#5fb0e8', 'reconstruction'], ['kl', '#8fd17a', 'KL']],
  gan: [['d_loss', '#f0a04b', 'discriminator'], ['g_loss', '#5fb0e8', 'generator']],
};
const family = (kind) => (kind.endsWith('gan') ? 'gan' : 'vae');
let curve = {};
let curveFrame = 0;

function startTraining() {
  clearError();
  const m = model();
  const fresh = $('train-from').value === 'fresh';
  const msg = {
    cmd: 'start',
    weights: fresh ? null : m.save(),
    kind: m.kind,
    latent: m.latent,
    hidden: m.hidden,
    seed: 1,
    epochs: Number($('train-epochs').value),
    batchSize: Math.round(Number($('train-batch').value)),
    learningRate: Number($('train-lr').value),
    backend: $('train-backend').value,
    gridZ: normals(TRAIN_GRID * m.latent, 7),
    // Conditional models: the fixed grid asks for every digit in turn.
    gridLabels: m.conditional ? Uint8Array.from({ length: TRAIN_GRID }, (_, i) => i % 10) : null,
    // The explorer's manifold grid and reconstructions, if shown, redraw as the model trains.
    ...state.explorer?.trainingExtras(m),
  };
  if (!(msg.epochs > 0)) throw new Error('Epochs must be a positive number.');
  if (!state.worker) {
    state.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    state.worker.onmessage = (e) => onWorkerMessage(e.data);
    state.worker.onerror = (e) => {
      showError(`The training worker failed: ${e.message}`);
      discardWorker();
    };
  }
  state.trainingKey = state.current;
  state.trainingKind = m.kind;
  curve = Object.fromEntries(CURVES[family(m.kind)].map(([field]) => [field, []]));
  $('train-progress').value = 0;
  setTraining(true);
  state.worker.postMessage(msg, msg.weights ? [msg.weights.buffer] : []);
}

function trainingLine(msg) {
  const head = `step ${msg.step}/${msg.totalSteps} · epoch ${msg.epoch.toFixed(2)}`;
  if (msg.loss !== undefined) {
    return `${head} · loss ${msg.loss.toFixed(2)} (BCE ${msg.bce.toFixed(2)} + KL ${msg.kl.toFixed(2)})`;
  }
  return `${head} · D loss ${msg.d_loss.toFixed(3)}, G loss ${msg.g_loss.toFixed(3)} · D(real) ${msg.d_real.toFixed(2)}, D(generated) ${msg.d_fake.toFixed(2)}`;
}

function onWorkerMessage(msg) {
  if (state.explorer?.workerMessage(msg)) return;
  if (msg.backend) {
    // Where training runs, and why: the reader chose it, WebGPU is missing, or the GPU was lost.
    const device = $('train-device');
    device.dataset.backend = msg.backend;
    device.textContent = msg.backend === 'webgpu' ? `Training on WebGPU (${msg.reason}).` : `Training on the CPU: ${msg.reason}.`;
  } else if (msg.status) {
    $('train-status').textContent = msg.status;
  } else if (msg.samples) {
    drawGrid($('train-samples'), msg.samples, 4, 48);
  } else if (msg.coverage) {
    drawHistogram($('train-coverage'), msg.coverage);
  } else if (msg.error) {
    showError(`Training stopped: ${msg.error}`);
  } else if (msg.fatal) {
    discardWorker();
    showError(`The training worker crashed (${msg.fatal}); the page's models are unchanged. Train again to start a new worker.`);
  } else if (msg.done) {
    finishRun(msg);
  } else if (msg.step !== undefined) {
    for (const field of Object.keys(curve)) curve[field].push(msg[field]);
    $('train-progress').value = msg.step / msg.totalSteps;
    $('train-status').textContent = trainingLine(msg);
    if (!curveFrame) {
      curveFrame = requestAnimationFrame(() => {
        curveFrame = 0;
        const series = CURVES[family(state.trainingKind)].map(([field, color, label]) => ({ values: curve[field], color, label }));
        drawCurve($('loss-curve'), series);
      });
    }
  }
}

/** A run ended: keep what it trained without discarding what the reader had. */
function finishRun({ weights, steps, reason }) {
  const status = $('train-status');
  if (!weights || steps === 0) {
    status.textContent = reason === 'stopped' ? 'Stopped before the first step; nothing changed.' : 'Training did not start; nothing changed.';
  } else if (reason === 'error') {
    // The failed step was refused, so these are the last good weights; the reader may still want
    // them, but they replace nothing.
    const key = `${state.trainingKey}:before-error`;
    addModel(key, `${state.models.get(state.trainingKey).name} · trained until the error`, Model.load(weights));
    status.textContent += ` · stopped by an error; the weights up to step ${steps} are in the Model list, the current model is unchanged`;
  } else {
    const entry = state.models.get(state.trainingKey);
    addModel(state.trainingKey, entry.name.replace(/( · trained.*)?$/, ' · trained here'), Model.load(weights));
    if (state.current === state.trainingKey) redrawAll();
    status.textContent += ` · ${reason === 'stopped' ? 'stopped' : 'done'}; the page now uses these weights (Save weights keeps them)`;
  }
  setTraining(false);
}

/** Ends a worker that failed; the next Train starts a fresh one. */
function discardWorker() {
  state.worker?.terminate();
  state.worker = null;
  setTraining(false);
}

function setTraining(on) {
  state.training = on;
  $('train-start').disabled = on;
  $('train-stop').disabled = !on;
  $('model-select').disabled = on;
  $('weights-file').disabled = on;
}

// ---- files ---------------------------------------------------------------------------------

async function loadWeightsFile(event) {
  const file = event.target.files[0];
  if (!file) return;
  event.target.value = '';
  clearError();
  let m;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (state.training) throw new Error('training started while the file was read; load it again when training ends');
    m = Model.load(bytes);
  } catch (e) {
    showError(`Could not load ${file.name}: ${e.message}. The current model is unchanged.`);
    return;
  }
  const key = `file:${file.name}`;
  addModel(key, `${file.name} (${m.kind}, latent ${m.latent})`, m);
  await selectModel(key);
}

function saveWeights() {
  const m = model();
  const blob = new Blob([m.save()], { type: 'application/octet-stream' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `latent-lab-${m.kind}-z${m.latent}.safetensors`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// ---- start ---------------------------------------------------------------------------------

async function main() {
  await init();
  for (const w of WEIGHTS) addModel(w.key, w.name, null, w.url);
  // A shared link (#model=…&z=…&digit=…&view=…): whatever is valid is restored, the rest is default.
  const restore = parseFragment(location.hash, WEIGHTS.map((w) => w.key));
  if (restore.digit !== undefined) state.digit = restore.digit;
  buildDigitPicker();

  $('model-select').addEventListener('change', guard((e) => selectModel(e.target.value)));
  $('resample').addEventListener('click', guard(() => {
    state.sampleSeed += 1;
    state.sampleZ = normals(SAMPLE_COUNT * latent(), state.sampleSeed);
    drawSamples();
  }));
  $('samples').addEventListener('click', guard(pickSample));
  $('slider-zero').addEventListener('click', guard(() => setSliders(new Float32Array(latent()))));
  $('slider-random').addEventListener('click', guard(() => setSliders(normals(latent(), Date.now() & 0xffff))));
  $('pad').addEventListener('pointerdown', guard((e) => { $('pad').setPointerCapture(e.pointerId); padPointer(e); }));
  $('pad').addEventListener('pointermove', guard(padPointer));
  $('pad').addEventListener('keydown', guard(padKey));
  $('interp-steps').addEventListener('change', guard(drawInterpolation));
  $('weights-file').addEventListener('change', guard(loadWeightsFile));
  $('save').addEventListener('click', guard(saveWeights));
  $('train-start').addEventListener('click', guard(startTraining));
  $('train-stop').addEventListener('click', () => state.worker?.postMessage({ cmd: 'stop' }));
  // ?debug shows a button that destroys the training GPU device, to watch the CPU take over.
  $('train-lose-device').hidden = !new URLSearchParams(location.search).has('debug');
  $('train-lose-device').addEventListener('click', () => state.worker?.postMessage({ cmd: 'lose-device' }));

  // The first model draws as soon as it arrives; the classifier and the comparison follow.
  await selectModel(restore.model ?? WEIGHTS[0].key);
  if (restore.z?.length === latent()) {
    setSliders(restore.z);
    drawSliderView();
  }
  state.explorer = setupExplorer({
    wasm: { Pca, center_digit, load_digits },
    model,
    digit: () => state.digit,
    classifier,
    guard,
    onChange: scheduleFragment,
  });
  if (restore.at) state.explorer.setCursor(restore.at);
  document.querySelector('main').addEventListener('focusin', noteView);
  document.querySelector('main').addEventListener('pointerdown', noteView);
  document.body.dataset.ready = 'true';
  if (restore.view) {
    state.view = restore.view;
    $(`${restore.view}-panel`).scrollIntoView({ block: 'start' });
  }
  await setupCompare({ ensureModel, classifier: await classifier(), guard });
  document.body.dataset.compareReady = 'true';
}

main().catch((e) => {
  setStatus('The page could not start.');
  showError(e?.message ?? String(e));
});
