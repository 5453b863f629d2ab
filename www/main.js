// The page: the shipped models (www/assets.js, each fetched when first needed), samples, the
// latent sliders, the interpolation strip, a VAE beside a GAN (www/compare.js), the explorer
// panels (www/explore.js) and training in a Web Worker, from the same view modules (www/views/)
// as the <latent-lab> element, the reader's place in the URL fragment (www/fragment.js), and
// their work kept in this browser (www/autosave.js): the training run, autosaved as it trains and
// resumed after a reload or a crash, and the models trained here.
import { MODELS, MODEL_KEYS, shippedDecoder, shippedModel, wasm } from './assets.js';
import { ago, deleteModel, deleteRun, getRun, listModels, putModel, storageProblem } from './autosave.js';
import { setupCompare } from './compare.js';
import { setupAeCompare } from './ae-compare.js';
import { setupLossCompare } from './loss-compare.js';
import { whenNear } from './dom.js';
import { GRID_GAP, drawGrid, drawHistogram } from './draw.js';
import { setupExplorer } from './explore.js';
import { formatFragment, parseFragment } from './fragment.js';
import { normals } from './random.js';
import { mountDigitPicker } from './views/digit-picker.js';
import { drawInterpolation } from './views/interpolation.js';
import { mountSliders } from './views/sliders.js';
import { mountTraining } from './views/training.js';

const SAMPLE_COLS = 8;
const SAMPLE_COUNT = 64;
const SAMPLE_CELL = 48; // pixels per digit in the sample grid
const SLIDER_STEP = 0.01;

const $ = (id) => document.getElementById(id);

const state = {
  // key → { name, model: Model | null, shipped: bool, bytes?, storedId? }: shipped ones load through
  // www/assets.js, ones kept in this browser from `bytes`; `storedId`: its id there, if it is kept
  models: new Map(),
  current: null,
  digit: 0, // the digit conditional models draw
  sampleSeed: 1,
  sampleZ: null, // SAMPLE_COUNT × latent
  sliders: null, // www/views/sliders.js's view of the current model
  slidersAbort: null, // ends the previous model's slider listeners
  zA: null,
  zB: null,
  training: false,
  trainingKey: null, // the model a running training will replace
  trainingName: null, // and its name, should that model not be in this page's list (a resumed run's)
  autosaveProblem: null, // why the run cannot be autosaved, once said
  view: null, // the panel last used, for the URL fragment
  explorer: null, // www/explore.js's panels, once the first model is drawn
};

const model = () => state.models.get(state.current).model;
const latent = () => model().capabilities.latent;

/** Digit labels for `n` images when the current model is conditional, else undefined. */
const labelsFor = (m, n, digit = state.digit) => (m.capabilities.conditional ? new Uint8Array(n).fill(digit) : undefined);

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

/**
 * Registers a model under `key`: `m`, or with `shipped` the shipped model of that key, fetched
 * when first used; `kept`: {bytes?, storedId} for a model kept in this browser (from `bytes` when
 * first used, if `m` is null).
 */
function addModel(key, name, m = null, shipped = false, kept = {}) {
  const old = state.models.get(key);
  if (old && !old.shipped) old.model?.free(); // a shipped Model is shared (www/assets.js): never freed
  state.models.set(key, { name, model: m, shipped, ...kept });
  let opt = [...$('model-select').options].find((o) => o.value === key);
  if (!opt) {
    opt = new Option('', key);
    $('model-select').add(opt);
  }
  opt.textContent = name;
}

/**
 * The model under `key`, fetching its weights the first time: of a shipped model, the decoder
 * alone (what sampling needs: the first digits cost half the bytes); `wholeModel` the rest.
 */
async function ensureModel(key) {
  const entry = state.models.get(key);
  if (entry.model) return entry.model;
  const m = entry.bytes ? (await wasm()).Model.load(entry.bytes) : await shippedDecoder(key);
  if (state.models.get(key) === entry) entry.model = m;
  return m;
}

/**
 * The current model, whole (it encodes, trains and saves): a shipped model drawn from its
 * decoder is fetched whole the first time a view needs it, and takes the decoder's place (the
 * same weights, so the same digits).
 */
async function wholeModel() {
  const key = state.current;
  const entry = state.models.get(key);
  if (entry.model.capabilities.whole) return entry.model;
  if (!entry.shipped) throw new Error('This model was loaded from its decoder alone: it samples, but encoding, training and saving need the whole weights file.');
  const m = await shippedModel(key);
  if (state.models.get(key) === entry && !entry.model.capabilities.whole) {
    state.explorer?.upgraded(entry.model, m);
    entry.model = m;
  }
  return m;
}

async function selectModel(key) {
  setStatus(`Loading ${state.models.get(key).name}…`);
  await ensureModel(key);
  state.current = key;
  $('model-select').value = key;
  const m = model();
  const caps = m.capabilities;
  const l = caps.latent;
  state.sampleZ = normals(SAMPLE_COUNT * l, state.sampleSeed);
  state.zA = state.sampleZ.slice(0, l);
  state.zB = state.sampleZ.slice(l, 2 * l);
  $('digit-picker').hidden = !caps.conditional;
  $('model-delete').hidden = !state.models.get(key).storedId;
  buildSliders(m);
  redrawAll();
  guard(showRecipe)(m); // after the first digits: it waits for the whole module
  // A GAN has no reconstruction loss or KL term to weigh; an autoencoder trains on its own loss.
  for (const setting of document.querySelectorAll('.vae-setting')) setting.hidden = caps.family !== 'vae';
  showBackendChoice(caps);
  const meta = m.meta;
  const lossName = caps.family === 'ae' ? 'test squared error' : 'test loss';
  const quality = meta.test_loss ? `${lossName} ${meta.test_loss} per digit, ` : '';
  setStatus(`${state.models.get(key).name}: ${caps.kind.toUpperCase()}, ${quality}${meta.epochs ?? '?'} epochs of training.`);
}

/**
 * The Train panel's "On" choice for this kind: a convolutional model trains on the CPU whatever
 * is chosen (WebGPU has linear layers only), so the WebGPU options are greyed and the note says why.
 */
function showBackendChoice(caps) {
  const select = $('train-backend');
  // The reader's own choice comes back when a model that can train on WebGPU is shown again.
  if (caps.cpu_only && select.dataset.chosen === undefined) select.dataset.chosen = select.value;
  if (!caps.cpu_only && select.dataset.chosen !== undefined) {
    select.value = select.dataset.chosen;
    delete select.dataset.chosen;
  }
  for (const opt of select.options) opt.disabled = Boolean(caps.cpu_only) && opt.value !== 'cpu';
  if (caps.cpu_only) select.value = 'cpu';
  $('train-backend-note').hidden = !caps.cpu_only;
  $('train-backend-note').textContent = caps.cpu_only ? `${caps.cpu_only}.` : '';
}

function redrawAll() {
  drawSamples();
  state.sliders.draw();
  drawStrip();
  if (state.explorer) guard(() => state.explorer.refresh())();
  scheduleFragment();
}

// ---- the URL fragment (www/fragment.js) -----------------------------------------------------

let fragmentTimer = 0;
/** Writes the reader's place into location.hash, at most every 250 ms (replaceState: no history entries). */
function scheduleFragment() {
  if (fragmentTimer || !document.body.dataset.ready) return;
  fragmentTimer = setTimeout(() => {
    fragmentTimer = 0;
    const shipped = MODEL_KEYS.includes(state.current);
    history.replaceState(null, '', formatFragment({
      model: shipped ? state.current : null,
      z: state.sliders.z,
      digit: model().capabilities.conditional ? state.digit : null,
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
  drawStrip();
}

// ---- the digit a conditional model draws, and the sliders (www/views/) ----------------------

function setDigit(d) {
  state.digit = d;
  redrawAll();
  scheduleFragment();
}

/** The current model's sliders (and its 2-D pad, for latent 2), replacing the last model's. */
function buildSliders(m) {
  state.slidersAbort?.abort();
  state.slidersAbort = new AbortController();
  const latent2 = m.capabilities.latent === 2;
  $('pad').hidden = !latent2;
  state.sliders = mountSliders({
    box: $('sliders'),
    canvas: $('slider-view'),
    cell: 168,
    pad: latent2 ? $('pad') : null,
    model,
    step: SLIDER_STEP,
    idPrefix: 'slider-',
    labels: () => labelsFor(model(), 1),
    guard,
    signal: state.slidersAbort.signal,
    onChange: scheduleFragment,
  });
}

// ---- interpolation -------------------------------------------------------------------------

function drawStrip() {
  const steps = Math.min(20, Math.max(2, Number($('interp-steps').value) || 10));
  const frames = drawInterpolation($('interp'), model(), { zA: state.zA, zB: state.zB, steps, digit: state.digit, cell: 48 });
  drawGrid($('interp-a'), frames.subarray(0, 784), 1, 48);
  drawGrid($('interp-b'), frames.subarray((steps - 1) * 784), 1, 48);
}

// ---- training (www/views/training.js) --------------------------------------------------------

/**
 * The Train panel's batch, rate and decay: the chosen recipe's for `m`'s kind (the crate's,
 * src/config.rs, from the whole module), or, for "your own", as typed. What the panel does not
 * show (Adam's β2, a GAN's averaging, a cGAN's label gain) the worker sets from the recipe's name.
 */
async function showRecipe(m) {
  const recipe = $('train-recipe').value;
  if (recipe === 'custom') return;
  const settings = (await wasm()).recipe_settings(m.capabilities.kind, recipe);
  if ($('train-recipe').value !== recipe) return; // the reader chose another meanwhile
  $('train-batch').value = settings.batch_size;
  $('train-lr').value = settings.learning_rate;
  $('train-decay').value = settings.lr_decay;
}

let training = null; // the Train panel's view, made in main()

async function startTraining() {
  clearError();
  const epochs = Number($('train-epochs').value);
  if (!(epochs > 0)) throw new Error('Epochs must be a positive number.');
  const objective = model().capabilities.family === 'vae' ? objectiveChosen() : {};
  // Train and the Model list are off from here, so neither a second click nor another model can
  // come in while the whole weights download.
  setTraining(true);
  let m;
  try {
    m = $('train-from').value === 'fresh' ? model() : await wholeModel();
  } catch (e) {
    setTraining(false);
    throw e;
  }
  state.trainingKey = state.current;
  state.trainingName = state.models.get(state.current).name;
  $('train-progress').value = 0;
  training.start(m, {
    fresh: $('train-from').value === 'fresh',
    epochs,
    recipe: $('train-recipe').value,
    batchSize: Math.round(Number($('train-batch').value)),
    learningRate: Number($('train-lr').value),
    lrDecay: $('train-decay').value,
    ...objective,
    backend: $('train-backend').value,
    // ?sync=N copies the WebGPU weights back every N steps instead of 50 (what a lost device costs);
    // ?rollbacks=N allows N rollbacks after a divergence instead of 4 (0 stops at the first).
    syncInterval: Number(new URLSearchParams(location.search).get('sync')) || undefined,
    maxRecoveries: urlCount('rollbacks'),
    autosave: autosaveSettings(state.trainingKey, state.trainingName),
  }, state.explorer?.trainingExtras(m)); // the explorer's manifold and reconstructions, if shown, redraw as it trains
}

/** The Train panel's reconstruction loss and KL weight β, {reconstructionLoss, klWeight}; throws on a β out of range. */
function objectiveChosen() {
  const klWeight = Number($('train-beta').value);
  if (!($('train-beta').value !== '' && klWeight >= 0 && klWeight <= 100)) {
    throw new Error(`The KL weight β must be a number from 0 to 100 (it is “${$('train-beta').value}”).`);
  }
  return { reconstructionLoss: $('train-recon').value, klWeight };
}

/** A change of loss or β while a VAE trains reaches its next step. */
function changeObjective() {
  clearError();
  if (state.training) training.setObjective(objectiveChosen());
}

/**
 * The worker's autosave for a run of the model under `key`: every epoch and every 30 seconds
 * (?autosave=S: every S seconds; ?autosave=0: off).
 */
function autosaveSettings(key, name) {
  const every = urlCount('autosave') ?? 30;
  return every > 0 ? { every, key, name } : null;
}

/** The Train panel offers to resume the run autosaved in this browser, if there is one. */
async function offerResume() {
  let run = null;
  try {
    run = await getRun();
  } catch {
    // No storage here (a private window): nothing was saved, so there is nothing to offer.
  }
  $('train-resume').hidden = !run || state.training;
  if (!run) return null;
  $('train-resume-button').textContent = `Resume training (step ${run.step}, saved ${ago(run.savedAt)})`;
  $('train-resume-what').textContent = `${run.name}: step ${run.step} of ${run.totalSteps}, epoch ${run.epoch.toFixed(2)}.`;
  return run;
}

async function resumeTraining() {
  clearError();
  setTraining(true);
  const run = await getRun().catch(() => null);
  if (!run) {
    setTraining(false);
    await offerResume();
    throw new Error('The saved run is gone (deleted in another tab?); nothing to resume.');
  }
  state.trainingKey = run.key;
  state.trainingName = run.name;
  $('train-progress').value = run.step / run.totalSteps;
  training.resume(run.caps, {}, autosaveSettings(run.key, run.name));
}

async function discardRun() {
  await deleteRun();
  await offerResume();
}

/** The models trained here in earlier visits (in the Model list until deleted); none where there is no storage. */
async function keptModels() {
  try {
    return await listModels();
  } catch {
    return []; // no storage here: nothing was kept
  }
}

/**
 * Keeps the weights a run trained in this browser, under the id of the model trained (so training
 * it again replaces them): {storedId}, or {problem} saying why the browser would not.
 */
async function keepModel(key, name, weights) {
  const storedId = key.replace(/^kept:/, '');
  try {
    await putModel({ id: storedId, name, weights, savedAt: Date.now() });
    return { storedId };
  } catch (e) {
    return { problem: storageProblem(e) };
  }
}

async function deleteCurrentModel() {
  const key = state.current;
  const entry = state.models.get(key);
  await deleteModel(entry.storedId);
  const shipped = MODELS.find((m) => m.key === key);
  if (shipped) {
    addModel(key, shipped.name, null, true); // the shipped weights again, under their own key
  } else {
    if (!entry.shipped) entry.model?.free();
    state.models.delete(key);
    [...$('model-select').options].find((o) => o.value === key)?.remove();
  }
  await selectModel(shipped ? key : MODEL_KEYS[0]);
}

/** A whole number from the URL's query (`?name=N`), or undefined. */
function urlCount(name) {
  const v = new URLSearchParams(location.search).get(name);
  return v !== null && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** What the page adds to the training view: where it runs, progress, coverage, errors, the result. */
function onWorkerMessage(msg) {
  if (state.explorer?.workerMessage(msg)) return;
  if (msg.autosaved) {
    const line = $('train-autosave');
    line.textContent = `Autosaved at step ${msg.autosaved.step}: a reload, or a crash, resumes from there.`;
    line.hidden = false;
  } else if (msg.autosaveFailed) {
    const line = $('train-autosave');
    line.textContent = `Autosave is off: ${msg.autosaveFailed}. Training goes on; Save weights keeps the result.`;
    line.hidden = false;
  } else if (msg.objective) {
    // The run's loss as it is (a resumed run's as it was saved, or as it stays after a refusal).
    $('train-recon').value = msg.objective.reconstructionLoss;
    $('train-beta').value = msg.objective.klWeight;
  } else if (msg.backend) {
    // Where training runs, and why: the reader chose it, WebGPU is missing, or the GPU was lost.
    const device = $('train-device');
    device.dataset.backend = msg.backend;
    device.textContent = msg.backend === 'webgpu' ? `Training on WebGPU (${msg.reason}).` : `Training on the CPU: ${msg.reason}.`;
    // What the CPU engine runs on, as the loaded binary says (relaxed SIMD where the browser has it).
    const engine = $('train-engine');
    engine.hidden = msg.backend !== 'cpu';
    engine.textContent = msg.backend === 'cpu' ? `On the CPU: ${msg.engine}.` : '';
  } else if (msg.coverage) {
    drawHistogram($('train-coverage'), msg.coverage);
  } else if (msg.error) {
    showError(`Training stopped: ${msg.error}`);
  } else if (msg.fatal) {
    setTraining(false);
    showError(`The training worker crashed (${msg.fatal}); the page's models are unchanged. Train again to start a new worker.`);
  } else if (msg.done) {
    return finishRun(msg);
  } else if (msg.totalSteps !== undefined) {
    $('train-progress').value = msg.step / msg.totalSteps;
  }
}

/** A run ended: keep what it trained without discarding what the reader had. */
async function finishRun({ weights, steps, reason }) {
  const status = $('train-status');
  if (!weights || steps === 0) {
    status.textContent = reason === 'stopped' ? 'Stopped before the first step; nothing changed.' : 'Training did not start; nothing changed.';
  } else if (reason === 'error') {
    // The failed step was refused, so these are the last good weights; the reader may still want
    // them, but they replace nothing.
    const key = `${state.trainingKey}:before-error`;
    const name = state.models.get(state.trainingKey)?.name ?? state.trainingName;
    addModel(key, `${name} · trained until the error`, (await wasm()).Model.load(weights));
    status.textContent += ` · stopped by an error; the weights up to step ${steps} are in the Model list, the current model is unchanged`;
  } else {
    const key = state.trainingKey;
    const name = (state.models.get(key)?.name ?? state.trainingName).replace(/( · trained.*)?$/, ' · trained here');
    const kept = new Uint8Array(weights); // a copy for storage: the page's model takes these
    addModel(key, name, (await wasm()).Model.load(weights));
    if (state.current === key) redrawAll();
    const { storedId, problem } = await keepModel(key, name, kept);
    const where = storedId ? ', and this browser keeps them' : ` (this browser could not keep them: ${problem}; Save weights does)`;
    status.textContent += ` · ${reason === 'stopped' ? 'stopped' : 'done'}; the page now uses these weights${where}`;
    const entry = state.models.get(key);
    if (storedId && entry) entry.storedId = storedId;
    if (state.current === key) $('model-delete').hidden = !storedId;
  }
  setTraining(false);
  await offerResume();
}

function setTraining(on) {
  state.training = on;
  $('train-start').disabled = on;
  $('train-stop').disabled = !on;
  $('model-select').disabled = on;
  $('weights-file').disabled = on;
  $('model-delete').disabled = on;
  if (on) {
    $('train-resume').hidden = true;
    $('train-autosave').hidden = true;
  }
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
    m = (await wasm()).Model.load(bytes);
  } catch (e) {
    showError(`Could not load ${file.name}: ${e.message}. The current model is unchanged.`);
    return;
  }
  const key = `file:${file.name}`;
  const caps = m.capabilities;
  addModel(key, `${file.name} (${caps.kind}, latent ${caps.latent})`, m);
  await selectModel(key);
}

async function saveWeights() {
  const m = await wholeModel();
  const blob = new Blob([m.save()], { type: 'application/octet-stream' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  const caps = m.capabilities;
  a.download = `latent-lab-${caps.kind}-z${caps.latent}.safetensors`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

// ---- start ---------------------------------------------------------------------------------

async function main() {
  // A shared link (#model=…&z=…&digit=…&view=…): whatever is valid is restored, the rest is default.
  const restore = parseFragment(location.hash, MODEL_KEYS);
  // The first model's decoder downloads beside the light module (pkg/sampler.js), and the models
  // kept in this browser are read meanwhile (opening IndexedDB can take longer than both) and
  // listed once the first digits are drawn. The whole module follows the first digits.
  shippedDecoder(restore.model ?? MODEL_KEYS[0]).catch(() => {}); // its error is shown when it is drawn
  const kept = keptModels();
  for (const { key, name } of MODELS) addModel(key, name, null, true);
  if (restore.digit !== undefined) state.digit = restore.digit;
  mountDigitPicker({ box: $('digit-buttons'), digit: state.digit, idPrefix: 'digit-', guard, onPick: setDigit });
  training = mountTraining({
    // ?debug&silence=S: the watchdog's wait, in seconds (its tests')
    ...(new URLSearchParams(location.search).has('debug') && urlCount('silence') ? { silentMs: 1000 * urlCount('silence') } : {}),
    curve: $('loss-curve'),
    samples: $('train-samples'),
    cell: 48,
    status: $('train-status'),
    note: $('train-note'),
    verdict: $('train-verdict'),
    guard,
    onMessage: onWorkerMessage,
    onFailure: (message) => {
      showError(`The training worker failed: ${message}`);
      setTraining(false);
    },
  });

  $('model-select').addEventListener('change', guard((e) => selectModel(e.target.value)));
  $('resample').addEventListener('click', guard(() => {
    state.sampleSeed += 1;
    state.sampleZ = normals(SAMPLE_COUNT * latent(), state.sampleSeed);
    drawSamples();
  }));
  $('samples').addEventListener('click', guard(pickSample));
  $('slider-zero').addEventListener('click', guard(() => state.sliders.set(new Float32Array(latent()))));
  $('slider-random').addEventListener('click', guard(() => state.sliders.set(normals(latent(), Date.now() & 0xffff))));
  $('interp-steps').addEventListener('change', guard(drawStrip));
  $('weights-file').addEventListener('change', guard(loadWeightsFile));
  $('save').addEventListener('click', guard(saveWeights));
  $('train-start').addEventListener('click', guard(startTraining));
  $('train-recipe').addEventListener('change', guard(() => showRecipe(model())));
  // A batch, rate or decay of the reader's own is no recipe of the crate's.
  for (const id of ['train-batch', 'train-lr', 'train-decay']) $(id).addEventListener('input', () => ($('train-recipe').value = 'custom'));
  for (const id of ['train-recon', 'train-beta']) $(id).addEventListener('change', guard(changeObjective));
  $('train-stop').addEventListener('click', () => training.stop());
  // ?debug shows a button that destroys the training GPU device, to watch the CPU take over.
  $('train-lose-device').hidden = !new URLSearchParams(location.search).has('debug');
  $('train-lose-device').addEventListener('click', () => training.loseDevice());
  // ?debug also shows a button that kills the training worker, to watch it restart from the autosave,
  // and one that hangs it, to watch the watchdog do the same.
  $('train-crash').hidden = $('train-lose-device').hidden;
  $('train-crash').addEventListener('click', () => training.crash());
  $('train-hang').hidden = $('train-lose-device').hidden;
  $('train-hang').addEventListener('click', () => training.hang());
  $('train-resume-button').addEventListener('click', guard(resumeTraining));
  $('train-discard').addEventListener('click', guard(discardRun));
  $('model-delete').addEventListener('click', guard(deleteCurrentModel));

  // The first model draws as soon as it arrives.
  await selectModel(restore.model ?? MODEL_KEYS[0]);
  for (const { id, name, weights } of await kept) addModel(`kept:${id}`, name, null, false, { bytes: weights, storedId: id });
  if (restore.z?.length === latent()) {
    state.sliders.set(restore.z);
    state.sliders.draw();
  }
  state.explorer = setupExplorer({
    model,
    wholeModel,
    digit: () => state.digit,
    guard,
    onChange: scheduleFragment,
  });
  if (restore.at) state.explorer.setCursor(restore.at);
  document.querySelector('main').addEventListener('focusin', noteView);
  document.querySelector('main').addEventListener('pointerdown', noteView);
  await offerResume();
  document.body.dataset.ready = 'true';
  if (restore.view) {
    state.view = restore.view;
    $(`${restore.view}-panel`).scrollIntoView({ block: 'start' });
  }
  // The comparison downloads a second model and the classifier and classifies 1,000 samples:
  // only once the reader can see it (at once on a tall screen; on a laptop's, just below the
  // fold, when they scroll), so that nothing competes with the first digits and sliders.
  whenNear($('compare-panel'), guard(async () => {
    await setupCompare({ ensureModel, guard });
    document.body.dataset.compareReady = 'true';
  }), '0px');
  // The autoencoder beside the VAE: two whole models and their maps (10,000 digits encoded by each).
  whenNear($('ae-panel'), guard(async () => {
    await setupAeCompare({ guard });
    document.body.dataset.aeCompareReady = 'true';
  }), '0px');
  // The three reconstruction losses: three whole VAEs, each rebuilding 1,000 test digits once.
  whenNear($('loss-panel'), guard(async () => {
    await setupLossCompare({ guard });
    document.body.dataset.lossCompareReady = 'true';
  }), '0px');
}

main().catch((e) => {
  setStatus('The page could not start.');
  showError(e?.message ?? String(e));
});
