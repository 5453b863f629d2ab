// The page: loads the wasm module and the pretrained weights, draws samples, sliders and the
// interpolation strip, and drives training in a Web Worker (www/worker.js).
import init, { Model } from '../pkg/latent_lab.js';
import { GRID_GAP, drawCurve, drawGrid } from './draw.js';
import { normals } from './random.js';

const WEIGHTS = [
  { name: 'VAE, latent 20', url: new URL('./weights/vae-z20.safetensors', import.meta.url) },
  { name: 'VAE, latent 2', url: new URL('./weights/vae-z2.safetensors', import.meta.url) },
];
const SAMPLE_COLS = 8;
const SAMPLE_COUNT = 64;
const SAMPLE_CELL = 48; // pixels per digit in the sample grid
const TRAIN_GRID = 16;
const SLIDER_RANGE = 3; // ±3 standard deviations of the prior

const $ = (id) => document.getElementById(id);

const state = {
  models: new Map(), // option value → { name, model }
  current: null,
  sampleSeed: 1,
  sampleZ: null, // SAMPLE_COUNT × latent
  sliderZ: null, // latent
  zA: null,
  zB: null,
  worker: null,
  training: false,
  trainingKey: null, // the model a running training will replace
};

const model = () => state.models.get(state.current).model;
const latent = () => model().latent;

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

function addModel(key, name, m) {
  const old = state.models.get(key);
  if (old) old.model.free();
  state.models.set(key, { name, model: m });
  let opt = [...$('model-select').options].find((o) => o.value === key);
  if (!opt) {
    opt = new Option('', key);
    $('model-select').add(opt);
  }
  opt.textContent = name;
}

function selectModel(key) {
  state.current = key;
  $('model-select').value = key;
  const l = latent();
  state.sampleZ = normals(SAMPLE_COUNT * l, state.sampleSeed);
  state.sliderZ = new Float32Array(l);
  state.zA = state.sampleZ.slice(0, l);
  state.zB = state.sampleZ.slice(l, 2 * l);
  buildSliders();
  redrawAll();
}

function redrawAll() {
  drawSamples();
  drawSliderView();
  drawInterpolation();
}

// ---- samples -------------------------------------------------------------------------------

function drawSamples() {
  drawGrid($('samples'), model().sample(state.sampleZ), SAMPLE_COLS, SAMPLE_CELL);
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
  drawGrid($('slider-view'), model().sample(state.sliderZ), 1, 168);
  if (latent() === 2) drawPad();
}

function drawPad() {
  const pad = $('pad');
  const ctx = pad.getContext('2d');
  const { width: w, height: h } = pad;
  ctx.fillStyle = '#0b0d12';
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = '#2b3140';
  for (let v = -SLIDER_RANGE; v <= SLIDER_RANGE; v++) {
    const x = ((v + SLIDER_RANGE) / (2 * SLIDER_RANGE)) * w;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, x); ctx.lineTo(w, x); ctx.stroke();
  }
  const [zx, zy] = state.sliderZ;
  ctx.fillStyle = '#f0a04b';
  ctx.beginPath();
  ctx.arc(((zx + SLIDER_RANGE) / (2 * SLIDER_RANGE)) * w, ((SLIDER_RANGE - zy) / (2 * SLIDER_RANGE)) * h, 5, 0, 2 * Math.PI);
  ctx.fill();
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
  const frames = model().interpolate(state.zA, state.zB, steps);
  drawGrid($('interp'), frames, steps, 48);
  drawGrid($('interp-a'), frames.subarray(0, 784), 1, 48);
  drawGrid($('interp-b'), frames.subarray((steps - 1) * 784), 1, 48);
}

// ---- training ------------------------------------------------------------------------------

const curve = { loss: [], bce: [], kl: [] };
let curveFrame = 0;

function startTraining() {
  clearError();
  const m = model();
  const fresh = $('train-from').value === 'fresh';
  const msg = {
    cmd: 'start',
    weights: fresh ? null : m.save(),
    latent: m.latent,
    hidden: m.hidden,
    seed: 1,
    epochs: Number($('train-epochs').value),
    batchSize: Math.round(Number($('train-batch').value)),
    learningRate: Number($('train-lr').value),
    gridZ: normals(TRAIN_GRID * m.latent, 7),
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
  curve.loss = []; curve.bce = []; curve.kl = [];
  $('train-progress').value = 0;
  setTraining(true);
  state.worker.postMessage(msg, msg.weights ? [msg.weights.buffer] : []);
}

function onWorkerMessage(msg) {
  if (msg.status) {
    $('train-status').textContent = msg.status;
  } else if (msg.loss !== undefined) {
    curve.loss.push(msg.loss);
    curve.bce.push(msg.bce);
    curve.kl.push(msg.kl);
    $('train-progress').value = msg.step / msg.totalSteps;
    $('train-status').textContent =
      `step ${msg.step}/${msg.totalSteps} · epoch ${msg.epoch.toFixed(2)} · loss ${msg.loss.toFixed(2)} (BCE ${msg.bce.toFixed(2)} + KL ${msg.kl.toFixed(2)})`;
    if (!curveFrame) {
      curveFrame = requestAnimationFrame(() => {
        curveFrame = 0;
        drawCurve($('loss-curve'), [
          { values: curve.loss, color: '#f0a04b', label: 'loss' },
          { values: curve.bce, color: '#5fb0e8', label: 'reconstruction' },
          { values: curve.kl, color: '#8fd17a', label: 'KL' },
        ]);
      });
    }
  } else if (msg.samples) {
    drawGrid($('train-samples'), msg.samples, 4, 48);
  } else if (msg.error) {
    showError(`Training stopped: ${msg.error}`);
  } else if (msg.fatal) {
    discardWorker();
    showError(`The training worker crashed (${msg.fatal}); the page's models are unchanged. Train again to start a new worker.`);
  } else if (msg.done) {
    finishRun(msg);
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
  addModel(key, `${file.name} (latent ${m.latent})`, m);
  selectModel(key);
}

function saveWeights() {
  const m = model();
  const blob = new Blob([m.save()], { type: 'application/octet-stream' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = `latent-lab-vae-z${m.latent}.safetensors`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// ---- start ---------------------------------------------------------------------------------

async function main() {
  await init();
  const loaded = await Promise.all(WEIGHTS.map(async (w) => ({ ...w, model: Model.load(await fetchBytes(w.url)) })));
  loaded.forEach((w, i) => addModel(`w${i}`, w.name, w.model));

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

  selectModel('w0');
  const meta = JSON.parse(model().metadata);
  setStatus(`Ready: ${WEIGHTS.length} pretrained VAEs (latent 20: test loss ${meta.test_loss ?? '?'} per digit, ${meta.epochs ?? '?'} epochs).`);
  document.body.dataset.ready = 'true';
}

main().catch((e) => {
  setStatus('The page could not start.');
  showError(e?.message ?? String(e));
});
