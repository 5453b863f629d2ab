// <latent-lab>: latent-lab's models as one tag for a blog post.
//
//   <script type="module" src="https://example.org/latent-lab/www/embed.js"></script>
//   <latent-lab view="sliders" model="vae-z2"></latent-lab>
//   <latent-lab view="grid" model="vae-z2" n="12"></latent-lab>
//   <latent-lab view="interpolate" model="vae-z20"></latent-lab>
//   <latent-lab view="map" model="vae-z2"></latent-lab>
//   <latent-lab view="draw" model="vae-z20"></latent-lab>
//   <latent-lab view="train" model="vae-z2" epochs="1"></latent-lab>
//   <latent-lab view="ae-vs-vae"></latent-lab>
//
// Attributes (all optional except that an unknown value is reported inside the element):
//   view    "sliders" (default): the decoded digit and one range slider per latent dimension
//           (plus a 2-D pad for a latent-2 model, and a digit picker for conditional models);
//           "grid": the decoded manifold, n × n digits over an even grid of the first two latent
//           dimensions (all others 0), on one canvas;
//           "interpolate": a strip of frames from one seeded random latent vector to another,
//           with a "New ends" button;
//           "map": the 10,000 MNIST test digits encoded by the model (posterior means), one dot
//           each, coloured by digit (legend with names); pointing, clicking, dragging or the arrow
//           keys decode that position. Latent > 2 is shown on the two principal axes. VAE kinds
//           only (a GAN has no encoder, and the element says so). The test digits
//           (./data/mnist-test.safetensors.gz, 1.7 MB) are fetched when the element first comes near
//           the viewport, once per page however many map or draw elements it holds;
//           "draw": a drawing pad (mouse, touch or pen; a "Use a test digit" button for keyboard
//           users): the drawing is centred as MNIST's digits were, encoded and reconstructed
//           (a cVAE also redraws its style as every digit 0–9). VAE kinds only;
//           "train": Train / Stop buttons that train a copy of the model in a module Web Worker
//           (./worker.js and its protocol), with a loss curve and 16 fixed samples redrawn as it
//           learns. The worker downloads MNIST (./data/mnist.safetensors.gz, 11.6 MB)
//           when Train is first pressed. Needs the CSP to allow a same-origin worker
//           (worker-src, or script-src 'self' which it falls back to); on a cross-origin
//           isolated page it trains on a pool of threads, whose workers start from blob: URLs
//           (worker-src 'self' blob:; refused, it trains on one thread);
//           "ae-vs-vae": the plain autoencoder beside the VAE, both with a code of 3 (ae-z3 and
//           vae-z3, whatever `model` says): the same random codes from N(0, I) decoded by each,
//           the classifier's histogram of the digits they make, and each one's latent map with
//           the random codes marked (www/views/ae-vs-vae.js, as the page's panel draws it). It
//           fetches both whole models, the classifier and the test digits.
//   model   which shipped weights: vae-z20 (default), vae-z2, cvae-z2, gan-z64, cgan-z64, ae-z3
//           (the autoencoder), vae-z3, vae-z20-l2, vae-z20-l1, conv-vae-z20 and conv-ae-z32 (the
//           convolutional VAE and autoencoder: fetched whole, as they have no decoder file; they
//           train on the CPU), read from ./weights/<model>.safetensors next to this file.
//   width   the element's width: a number (pixels) or any CSS length ("420px", "60%", "30em").
//           Without it the element takes the full width of its container; every canvas scales
//           with CSS, so it fits a phone as well.
//   n       grid: digits per side (default 20, 2–40).
//   range   grid: the half-width R of the latent window [-R, R]² (default 2.5).
//   steps   interpolate: frames in the strip (default 10, 2–20).
//   seed    interpolate: the seed of the two end points (default 1); "New ends" counts up from it.
//   digit   conditional models: the digit drawn at first (default 0); the picker changes it.
//   epochs  train: passes over the 60,000 training digits per Train press (default 1, 0.05–20).
//   loading "lazy" (default): the element downloads its model only when it comes within 200 px
//           of the viewport, so a post's first digits cost only what its visible views need;
//           "eager": at once, wherever it is.
//
// Sharing: the views are the page's own (www/views/), and so are the downloads (www/assets.js):
// however many elements a page holds, the wasm module is downloaded and instantiated once, and
// each model's weights, the test digits, each model's map and the classifier are downloaded and
// made once. Elements that ask at the same time wait on the same download, and they share one
// Model object (sampling is synchronous, so sharing is safe).
//
// Strict Content-Security-Policy: nothing here uses eval, new Function, inline scripts, inline
// event handlers or style attributes. The look lives in a constructed stylesheet adopted by each
// shadow root (CSSOM, which `style-src 'self'` allows); sizes set from script go through the
// CSSOM (`el.style.width = ...`), never through a style attribute string. The wasm needs
// `script-src 'self' 'wasm-unsafe-eval'`, and fetching it and the weights needs `connect-src`
// to allow the origin this file is served from.
//
// Nothing is put on window / globalThis: everything lives in this module's scope, and the only
// visible effect is `customElements.define('latent-lab', ...)` (skipped if a <latent-lab> is
// already defined, e.g. when the script is included twice under different URLs).
//
// Errors (an unknown model or view, a failed download, a wasm that will not instantiate, an
// exception while drawing) are shown as text inside the element that hit them, in a
// role="alert" paragraph; other elements on the page carry on.
import { latentMap, shippedDecoder, shippedModel, wasm } from './assets.js';
import { clamp, h, whenNear } from './dom.js';
import { styleSheet } from './embed-style.js';
import { axisNames } from './latent-map.js';
import { normals } from './random.js';
import { AE_PAIR, startAeVsVae } from './views/ae-vs-vae.js';
import { mountDigitPicker } from './views/digit-picker.js';
import { mountDrawPad } from './views/draw-pad.js';
import { drawInterpolation } from './views/interpolation.js';
import { drawManifold } from './views/manifold.js';
import { mountMap } from './views/map.js';
import { mountSliders } from './views/sliders.js';
import { drawTrainingGrid, mountTraining, trainingGrid } from './views/training.js';

const KIND_NAMES = {
  vae: 'VAE', cvae: 'Conditional VAE', gan: 'GAN', cgan: 'Conditional GAN', ae: 'Autoencoder',
  'conv-vae': 'Convolutional VAE', 'conv-ae': 'Convolutional autoencoder',
};
const VIEWS = ['sliders', 'grid', 'interpolate', 'map', 'draw', 'train', 'ae-vs-vae'];
// The views that only decode, for which the decoder file alone is fetched.
const SAMPLES_ONLY = ['sliders', 'grid', 'interpolate'];
const SLIDER_STEP = 0.1; // one arrow-key press
const CELL = 28; // canvas pixels per digit: one per MNIST pixel; CSS scales the canvas up

/** An integer attribute within [lo, hi], or `fallback` when absent or not a number. */
function intAttr(el, name, fallback, lo, hi) {
  const raw = el.getAttribute(name);
  const v = raw === null || raw.trim() === '' ? NaN : Number(raw);
  return Number.isFinite(v) ? clamp(Math.round(v), lo, hi) : fallback;
}

/** A CSS width from the width attribute: "420" → "420px"; a valid CSS length as given. */
function cssWidth(raw) {
  if (raw === null) return '';
  const v = raw.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return `${v}px`;
  return typeof CSS !== 'undefined' && CSS.supports('width', v) ? v : '';
}

const message = (e) => (e && e.message) || String(e);

// ---- the element ------------------------------------------------------------------------------

class LatentLabElement extends HTMLElement {
  static get observedAttributes() {
    return ['view', 'model', 'width', 'n', 'range', 'steps', 'seed', 'digit', 'epochs'];
  }

  #root;
  #frame;
  #status;
  #error;
  #token = 0; // bumped by each render, so a stale model load does not draw into a newer view
  #renderedKey = null;
  #queued = false;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    try {
      this.#root.adoptedStyleSheets = [styleSheet()];
    } catch {
      // No constructable stylesheets (old browsers): the element still works, unstyled.
    }
  }

  connectedCallback() {
    this.#queueRender();
  }

  attributeChangedCallback(name) {
    if (!this.isConnected) return;
    if (name === 'width') this.#applyWidth();
    else this.#queueRender();
  }

  /** Renders once per batch of attribute changes (a parser or script may set several). */
  #queueRender() {
    if (this.#queued) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      if (!this.isConnected) return;
      const key = LatentLabElement.observedAttributes.map((a) => this.getAttribute(a)).join('\u0000');
      if (key === this.#renderedKey) return; // moved within the page: keep the current view
      this.#renderedKey = key;
      this.#render();
    });
  }

  #applyWidth() {
    if (this.#frame) this.#frame.style.width = cssWidth(this.getAttribute('width')); // CSSOM, CSP-safe
  }

  /** Shows an error inside this element. */
  #showError(e) {
    this.#error.textContent = `latent-lab: ${message(e)}`;
    this.#error.hidden = false;
    this.#status.hidden = true;
  }

  /** Wraps an event handler so an exception becomes a message in the element, not an uncaught one. */
  #guard(fn) {
    return (...args) => {
      try {
        const result = fn(...args);
        // An async handler: its rejection is shown too, not left unhandled.
        if (result && typeof result.then === 'function') result.catch((e) => this.#showError(e));
        this.#error.hidden = true;
      } catch (e) {
        this.#showError(e);
      }
    };
  }

  #cleanups = []; // run when the view is replaced or the element leaves the page (workers, observers)

  #cleanUp() {
    for (const fn of this.#cleanups.splice(0)) fn();
  }

  disconnectedCallback() {
    // Moving the element re-connects it with the same attributes; the queued render then keeps
    // the current view, so only clean up when it is really gone.
    queueMicrotask(() => {
      if (!this.isConnected) {
        this.#cleanUp();
        this.#renderedKey = null;
      }
    });
  }

  async #render() {
    const token = ++this.#token;
    this.#cleanUp();
    const view = (this.getAttribute('view') ?? 'sliders').trim() || 'sliders';
    const name = (this.getAttribute('model') ?? 'vae-z20').trim() || 'vae-z20';
    this.#status = h('p', { className: 'status', textContent: `Loading ${view === 'ae-vs-vae' ? AE_PAIR.join(' and ') : name}…` }, { role: 'status' });
    this.#error = h('p', { className: 'error', hidden: true }, { role: 'alert' });
    const body = h('div', { className: 'body' });
    this.#frame = h('div', { className: 'frame' }, { part: 'frame' }, [body, this.#status, this.#error]);
    this.#applyWidth();
    this.#root.replaceChildren(this.#frame);
    try {
      if (!VIEWS.includes(view)) throw new Error(`unknown view "${view}"; the views are ${VIEWS.join(', ')}`);
      this.setAttribute('aria-busy', 'true');
      if ((this.getAttribute('loading') ?? 'lazy').trim() !== 'eager') {
        await new Promise((resolve) => this.#whenVisible(resolve));
        if (token !== this.#token) return;
      }
      if (view === 'ae-vs-vae') {
        await this.#aeVsVae({ body, guard: (fn) => this.#guard(fn), live: () => token === this.#token });
        if (token !== this.#token) return;
        this.#status.removeAttribute('role');
        this.#status.className = 'caption';
        this.#status.textContent = `Autoencoder beside VAE, code 3 (${AE_PAIR.join(', ')})`;
        return;
      }
      // A view that only samples fetches the decoder alone; the others the whole model.
      const model = await (SAMPLES_ONLY.includes(view) ? shippedDecoder(name) : shippedModel(name));
      if (token !== this.#token) return;
      const ctx = { model, name, body, guard: (fn) => this.#guard(fn), live: () => token === this.#token };
      if (view === 'sliders') this.#sliders(ctx);
      else if (view === 'grid') this.#grid(ctx);
      else if (view === 'interpolate') this.#interpolate(ctx);
      else if (view === 'map') this.#map(ctx);
      else if (view === 'draw') this.#draw(ctx);
      else this.#train(ctx);
      this.#status.hidden = false;
      this.#status.removeAttribute('role');
      this.#status.className = 'caption';
      const caps = model.capabilities;
      this.#status.textContent = `${KIND_NAMES[caps.kind] ?? caps.kind}, latent ${caps.latent} (${name})`;
    } catch (e) {
      if (token === this.#token) this.#showError(e);
    } finally {
      if (token === this.#token) this.removeAttribute('aria-busy');
    }
  }

  /** The digit picker for conditional models, in a labelled group; calls onPick(d). */
  #digitPicker({ guard }, onPick) {
    const group = h('div', { className: 'buttons digits' }, { role: 'group', 'aria-label': 'Digit to draw' });
    mountDigitPicker({ box: group, digit: intAttr(this, 'digit', 0, 0, 9), guard, onPick });
    return group;
  }

  // ---- view: sliders -------------------------------------------------------------------------

  #sliders({ model, body, guard }) {
    const { latent, conditional } = model.capabilities;
    let digit = intAttr(this, 'digit', 0, 0, 9);
    const canvas = h('canvas', { className: 'digit', width: CELL, height: CELL }, { role: 'img', 'aria-label': 'The digit decoded from the latent vector set by the sliders' });
    const pictures = h('div', { className: 'pictures' }, {}, [canvas]);
    const controls = h('div', { className: 'controls' });
    body.append(pictures, controls);

    // A 2-D pad for a latent-2 model: drag (mouse, pen or finger) or use the arrow keys.
    let pad = null;
    if (latent === 2) {
      pad = h('canvas', { className: 'pad', width: 200, height: 200, tabIndex: 0 }, {
        role: 'application',
        'aria-roledescription': 'two-dimensional pad',
        'aria-label': 'Latent pad: drag, or use the arrow keys (Shift for bigger steps)',
      });
      pictures.append(pad);
      pictures.classList.add('with-pad'); // digit and pad side by side, the sliders below
    }
    if (conditional) controls.append(this.#digitPicker({ guard }, (d) => { digit = d; sliders.draw(); }));
    const box = h('div', { className: 'sliders' });
    controls.append(box);
    const sliders = mountSliders({
      box, canvas, cell: CELL, pad, model: () => model, step: SLIDER_STEP,
      labels: () => (conditional ? new Uint8Array([digit]) : undefined), guard,
    });

    let seed = intAttr(this, 'seed', 1, 0, 2 ** 31);
    const random = h('button', { type: 'button', textContent: 'Random z' }, { 'aria-label': 'Set the sliders to a random latent vector' });
    random.addEventListener('click', guard(() => sliders.set(normals(latent, seed++))));
    const reset = h('button', { type: 'button', textContent: 'Reset' }, { 'aria-label': 'Set every slider to 0' });
    reset.addEventListener('click', guard(() => sliders.set(new Float32Array(latent))));
    controls.append(h('div', { className: 'buttons' }, {}, [random, reset]));
    sliders.draw();
  }

  // ---- view: grid ----------------------------------------------------------------------------

  #grid({ model, body, guard }) {
    const n = intAttr(this, 'n', 20, 2, 40);
    const rawRange = Number(this.getAttribute('range') ?? 2.5);
    const R = Number.isFinite(rawRange) && rawRange > 0 ? rawRange : 2.5;
    let digit = intAttr(this, 'digit', 0, 0, 9);
    const canvas = h('canvas', {}, { role: 'img' });
    const caption = h('p', { className: 'caption' });
    const controls = h('div', { className: 'controls' }, {}, [canvas]);
    body.append(controls);
    // The first two latent dimensions, the others 0: the top-left cell is (-R, +R).
    const draw = () => { caption.textContent = `${drawManifold(canvas, model, { n, R, digit }).plane}.`; };
    if (model.capabilities.conditional) controls.append(this.#digitPicker({ guard }, (d) => { digit = d; draw(); }));
    controls.append(caption);
    draw();
  }

  // ---- view: interpolate ---------------------------------------------------------------------

  #interpolate({ model, body, guard }) {
    const steps = intAttr(this, 'steps', 10, 2, 20);
    let seed = intAttr(this, 'seed', 1, 0, 2 ** 31);
    let digit = intAttr(this, 'digit', 0, 0, 9);
    const { latent } = model.capabilities;
    const canvas = h('canvas', {}, { role: 'img' });
    const controls = h('div', { className: 'controls' }, {}, [canvas]);
    body.append(controls);
    const draw = () => {
      // Seeded: the same page shows the same strip every time it opens.
      const both = normals(2 * latent, seed);
      drawInterpolation(canvas, model, { zA: both.subarray(0, latent), zB: both.subarray(latent), steps, digit, cell: CELL });
      canvas.setAttribute('aria-label', `${steps} digits decoded along a straight line between two random latent vectors (seed ${seed})`);
    };
    if (model.capabilities.conditional) controls.append(this.#digitPicker({ guard }, (d) => { digit = d; draw(); }));
    const next = h('button', { type: 'button', textContent: 'New ends' }, { 'aria-label': 'New ends: pick two new random latent vectors' });
    next.addEventListener('click', guard(() => { seed++; draw(); }));
    controls.append(h('div', { className: 'buttons' }, {}, [next]));
    draw();
  }

  /** Runs `start` once, when the element first comes within 200 px of the viewport. */
  #whenVisible(start) {
    this.#cleanups.push(whenNear(this, start));
  }

  /** For the views that need an encoder: false, and a caption saying so, for a model without one. */
  #hasEncoder(model, body, what) {
    const caps = model.capabilities;
    if (caps.encoder) return true;
    body.append(h('p', {
      className: 'caption',
      textContent: `A ${KIND_NAMES[caps.kind] ?? caps.kind} has no encoder, so it cannot ${what}. Use a VAE (vae-z2, vae-z20, vae-z3, cvae-z2 or conv-vae-z20) or an autoencoder (ae-z3 or conv-ae-z32).`,
    }));
    return false;
  }

  // ---- view: ae-vs-vae -----------------------------------------------------------------------

  async #aeVsVae({ body, guard, live }) {
    const sides = ['autoencoder', 'VAE'].map((who) => ({
      grid: h('canvas', { width: 378, height: 114 }, { role: 'img', 'aria-label': `Random codes decoded by the ${who}` }),
      bars: h('canvas', { width: 378, height: 70 }, { role: 'img', 'aria-label': `Digit histogram of the ${who}'s decoded random codes` }),
      map: h('canvas', { className: 'map', width: 378, height: 378 }, { role: 'img', 'aria-label': `The ${who}'s latent map with random codes marked` }),
      caption: h('p', { className: 'caption' }),
    }));
    const resample = h('button', { type: 'button', textContent: 'New codes' });
    body.append(
      h('div', { className: 'buttons' }, {}, [resample]),
      h('div', { className: 'pair' }, {}, sides.map((s) => h('figure', {}, {}, [s.grid, s.bars, s.map, s.caption]))),
    );
    await startAeVsVae({ sides, resample, guard, live });
  }

  // ---- view: map -----------------------------------------------------------------------------

  #map({ model, body, guard, live }) {
    if (!this.#hasEncoder(model, body, 'place digits on a map')) return;
    let digit = intAttr(this, 'digit', 0, 0, 9);
    const canvas = h('canvas', { className: 'map', width: 400, height: 400, tabIndex: 0 }, {
      role: 'application',
      'aria-roledescription': 'latent map',
      'aria-label': 'Latent map of the MNIST test digits: point, drag, or use the arrow keys (Shift for bigger steps) to decode a position',
      'data-points': 0,
    });
    const xLabel = h('p', { className: 'axis' });
    const digitCanvas = h('canvas', { className: 'digit', width: CELL, height: CELL }, { role: 'img', 'aria-label': 'The digit decoded at the map cursor' });
    const readout = h('p', { className: 'caption', textContent: 'Encoding the 10,000 MNIST test digits…' }, { 'aria-live': 'polite' });
    const legend = h('ul', { className: 'legend' }, { 'aria-label': 'Digit colours on the map' });
    const side = h('div', { className: 'side' }, {}, [digitCanvas, readout, legend]);
    body.append(h('div', { className: 'mapbox' }, {}, [canvas, xLabel]), side);
    const map = mountMap({ canvas, digitCanvas, digitCell: CELL, readout, legend, digit: () => digit, guard });
    if (model.capabilities.conditional) side.prepend(this.#digitPicker({ guard }, (d) => { digit = d; map.redraw(); }));

    // The test digits download only when the map is about to be seen.
    this.#whenVisible(guard(async () => {
      this.setAttribute('aria-busy', 'true');
      try {
        const data = await latentMap(model);
        if (!live()) return;
        const [xName, yName] = axisNames(data);
        xLabel.textContent = `Right: ${xName}; up: ${yName}.`;
        map.show(model, data);
      } finally {
        if (live()) this.removeAttribute('aria-busy');
      }
    }));
  }

  // ---- view: draw ----------------------------------------------------------------------------

  #draw({ model, body, guard }) {
    if (!this.#hasEncoder(model, body, 'encode a drawing')) return;
    const pad = h('canvas', { className: 'drawpad', width: 280, height: 280 }, {
      role: 'img',
      'aria-label': 'Drawing pad: draw a digit with a mouse, finger or pen, or press Use a test digit',
    });
    const input = h('canvas', { className: 'input', width: CELL, height: CELL }, { role: 'img', 'aria-label': 'The drawing as the model sees it: 28 by 28, centred' });
    const recon = h('canvas', { className: 'recon', width: CELL, height: CELL }, { role: 'img', 'aria-label': "The model's reconstruction of the drawing" });
    const result = h('p', { className: 'caption', textContent: 'Draw a digit on the pad.' }, { 'aria-live': 'polite' });
    const styles = h('canvas', { className: 'styles', hidden: true }, { role: 'img', 'aria-label': "The drawing's style decoded as every digit from 0 to 9" });
    const clear = h('button', { type: 'button', textContent: 'Clear' }, { 'aria-label': 'Clear the drawing pad' });
    const useTest = h('button', { type: 'button', textContent: 'Use a test digit' }, { 'aria-label': 'Use a test digit: encode the next MNIST test digit instead of a drawing' });
    body.append(
      h('div', { className: 'mapbox' }, {}, [pad]),
      h('div', { className: 'side' }, {}, [h('div', { className: 'buttons' }, {}, [clear, useTest]), h('div', { className: 'small' }, {}, [input, recon]), result, styles]),
    );
    mountDrawPad({ pad, clear, useTest, input, recon, styles, result, cells: { input: CELL, recon: CELL, styles: CELL }, model: () => model, guard });
  }

  // ---- view: train ---------------------------------------------------------------------------

  #train({ model: shipped, body, guard, live }) {
    const rawEpochs = Number(this.getAttribute('epochs') ?? 1);
    const epochs = Number.isFinite(rawEpochs) && rawEpochs > 0 ? clamp(rawEpochs, 0.05, 20) : 1;
    const { gridZ, gridLabels } = trainingGrid(shipped.capabilities);
    const samples = h('canvas', { className: 'samples' }, { role: 'img', 'aria-label': '16 fixed latent vectors decoded by the model as it trains' });
    const curve = h('canvas', { className: 'curve', width: 480, height: 180 }, { role: 'img', 'aria-label': 'Training losses against step' });
    const start = h('button', { type: 'button', textContent: 'Train' }, { 'aria-label': `Train: ${epochs} epoch${epochs === 1 ? '' : 's'} on MNIST, in this tab` });
    const stop = h('button', { type: 'button', textContent: 'Stop', disabled: true }, { 'aria-label': 'Stop training and keep the weights so far' });
    const status = h('p', { className: 'caption', textContent: 'Press Train to train this model here, in a background worker.' }, { 'aria-live': 'polite' });
    const note = h('p', { className: 'caption', hidden: true }, { 'aria-live': 'polite' });
    const verdict = h('p', { className: 'caption verdict', hidden: true }, { 'aria-live': 'polite' });
    // What the CPU engine runs on, as the page's Train panel says it ("2 threads, relaxed SIMD").
    const engine = h('p', { className: 'caption engine', hidden: true });
    body.append(
      h('div', { className: 'pictures' }, {}, [samples]),
      h('div', { className: 'controls' }, {}, [h('div', { className: 'buttons' }, {}, [start, stop]), curve, status, engine, note, verdict]),
    );

    let trained = null; // this element's own Model after a run (the shared one is never changed)
    const current = () => trained ?? shipped;
    const drawSamples = () => drawTrainingGrid(samples, current().sample(gridZ, gridLabels ?? undefined), CELL);
    drawSamples();
    const running = (on) => {
      start.disabled = on;
      stop.disabled = !on;
      this.toggleAttribute('data-training', on);
    };
    const training = mountTraining({
      curve, samples, cell: CELL, status, note, verdict, guard,
      onMessage: async (msg) => {
        if (!live()) return;
        if (msg.backend) {
          engine.hidden = msg.backend !== 'cpu';
          engine.textContent = msg.backend === 'cpu' ? `On the CPU: ${msg.engine}.` : '';
        }
        if (msg.error) status.textContent = `Training stopped: ${msg.error}`;
        else if (msg.fatal) {
          running(false);
          throw new Error(`the training worker crashed (${msg.fatal})`);
        } else if (msg.done) {
          running(false);
          if (msg.weights && msg.steps > 0) {
            const { Model } = await wasm();
            trained?.free();
            trained = Model.load(msg.weights);
            drawSamples();
            status.textContent += ` · ${msg.reason === 'stopped' ? 'stopped' : 'done'} after ${msg.steps} steps`;
          }
        } else if (msg.totalSteps !== undefined) {
          this.setAttribute('data-step', String(msg.step));
        }
      },
      onFailure: (why) => {
        running(false);
        this.#showError(new Error(`the training worker failed${why ? `: ${why}` : ''}`));
      },
    });
    start.addEventListener('click', guard(() => {
      const m = current();
      running(true);
      status.textContent = 'Starting…';
      training.start(m, { epochs, batchSize: m.batch_size, learningRate: m.learning_rate, lrDecay: m.lr_decay });
    }));
    stop.addEventListener('click', guard(() => training.stop()));
    this.#cleanups.push(() => {
      training.end();
      trained?.free();
      trained = null;
    });
  }
}

if (!customElements.get('latent-lab')) customElements.define('latent-lab', LatentLabElement);
