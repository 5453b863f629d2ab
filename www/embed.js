// <latent-lab>: latent-lab's models as one tag for a blog post.
//
//   <script type="module" src="https://example.org/latent-lab/www/embed.js"></script>
//   <latent-lab view="sliders" model="vae-z2"></latent-lab>
//   <latent-lab view="grid" model="vae-z2" n="12"></latent-lab>
//   <latent-lab view="interpolate" model="vae-z20"></latent-lab>
//   <latent-lab view="map" model="vae-z2"></latent-lab>
//   <latent-lab view="draw" model="vae-z20"></latent-lab>
//   <latent-lab view="train" model="vae-z2" epochs="1"></latent-lab>
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
//           (./data/mnist-test.safetensors, 7.8 MB) are fetched when the element first comes near
//           the viewport, once per page however many map or draw elements it holds;
//           "draw": a drawing pad (mouse, touch or pen; a "Use a test digit" button for keyboard
//           users): the drawing is centred as MNIST's digits were, encoded and reconstructed
//           (a cVAE also redraws its style as every digit 0–9). VAE kinds only;
//           "train": Train / Stop buttons that train a copy of the model in a module Web Worker
//           (./worker.js and its protocol), with a loss curve and 16 fixed samples redrawn as it
//           learns. The worker downloads MNIST (./data/mnist.safetensors, about 10 MB gzipped)
//           when Train is first pressed. Needs the CSP to allow a same-origin worker
//           (worker-src, or script-src 'self' which it falls back to).
//   model   which shipped weights: vae-z20 (default), vae-z2, cvae-z2, gan-z64, cgan-z64, read
//           from ./weights/<model>.safetensors next to this file.
//   width   the element's width: a number (pixels) or any CSS length ("420px", "60%", "30em").
//           Without it the element takes the full width of its container; every canvas scales
//           with CSS, so it fits a phone as well.
//   n       grid: digits per side (default 20, 2–40).
//   range   grid: the half-width R of the latent window [-R, R]² (default 2.5).
//   steps   interpolate: frames in the strip (default 10, 2–20).
//   seed    interpolate: the seed of the two end points (default 1); "New ends" counts up from it.
//   digit   conditional models: the digit drawn at first (default 0); the picker changes it.
//   epochs  train: passes over the 60,000 training digits per Train press (default 1, 0.05–20).
//
// Sharing: however many elements a page holds, the wasm module is downloaded and instantiated
// once, and each model's weights are downloaded and parsed once. Both are module-level caches of
// promises (the wasm init promise, and a Map from model name to a Promise<Model>), so elements
// that ask at the same time wait on the same download instead of starting their own, and they
// share one Model object (sampling is synchronous, so sharing is safe).
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
import { DIGIT_COLORS, drawCurve, drawGrid, drawMap, drawPad, pixelToMap, renderMapLayer } from './draw.js';
import { axisNames, buildMap, hasEncoder, nearest, toLatent } from './latent-map.js';
import { normals } from './random.js';

// ---- shared, module-level state --------------------------------------------------------------

const MODELS = ['vae-z20', 'vae-z2', 'cvae-z2', 'gan-z64', 'cgan-z64'];
const KIND_NAMES = { vae: 'VAE', cvae: 'Conditional VAE', gan: 'GAN', cgan: 'Conditional GAN' };
const VIEWS = ['sliders', 'grid', 'interpolate', 'map', 'draw', 'train'];
const SLIDER_RANGE = 3; // sliders span ±3 standard deviations of the prior
const SLIDER_STEP = 0.1; // one arrow-key press
const CELL = 28; // canvas pixels per digit: one per MNIST pixel; CSS scales the canvas up
const GAP = 2; // canvas pixels between the digits of a grid or strip

let wasmPromise = null; // Promise<the wasm module's exports>, the one wasm instance of the page
const modelPromises = new Map(); // model name → Promise<Model>, one download per model
let testDigitsPromise = null; // Promise<{images, labels}>: the MNIST test set, for map and draw
const mapPromises = new Map(); // model name → Promise<map> (www/latent-map.js), one encoding per model
let classifierPromise = null; // Promise<Classifier>, for a cVAE's draw view

/**
 * The wasm module, initialised once. The import is dynamic so that a missing or blocked
 * pkg/ turns into an error message inside each element instead of a module that fails to load.
 */
function wasmModule() {
  if (!wasmPromise) {
    wasmPromise = (async () => {
      const wasm = await import('../pkg/latent_lab.js');
      await wasm.default();
      return wasm;
    })();
    // A failure is not cached: a later element (or attribute change) may try again.
    wasmPromise.catch(() => { wasmPromise = null; });
  }
  return wasmPromise;
}

const wasmModel = () => wasmModule().then((wasm) => wasm.Model);

/** Caches `make()`'s promise until it fails (so a failed download may be retried). */
function cached(get, set, make) {
  let p = get();
  if (!p) {
    p = make();
    set(p);
    p.catch(() => { if (get() === p) set(null); });
  }
  return p;
}

function testDigits() {
  return cached(() => testDigitsPromise, (p) => { testDigitsPromise = p; }, async () => {
    const url = new URL('./data/mnist-test.safetensors', import.meta.url);
    const [wasm, bytes] = await Promise.all([wasmModule(), fetchBytes(url, 'MNIST test digits', 'data')]);
    const digits = wasm.load_digits(bytes, 'test');
    const set = { images: digits.images, labels: digits.labels }; // the getters copy: read once
    digits.free();
    return set;
  });
}

/** The latent map of the shared model `name`: its encoding of the test digits, made once. */
function loadMap(name) {
  return cached(() => mapPromises.get(name), (p) => (p ? mapPromises.set(name, p) : mapPromises.delete(name)), async () => {
    const [model, set, wasm] = await Promise.all([loadModel(name), testDigits(), wasmModule()]);
    return buildMap(model, set, wasm.Pca);
  });
}

function loadClassifier() {
  return cached(() => classifierPromise, (p) => { classifierPromise = p; }, async () => {
    const url = new URL('./weights/classifier.safetensors', import.meta.url);
    const [wasm, bytes] = await Promise.all([wasmModule(), fetchBytes(url, 'classifier')]);
    return wasm.Classifier.load(bytes);
  });
}

/** The shared Model for `name`, downloading and parsing its weights on first use. */
function loadModel(name) {
  if (!MODELS.includes(name)) {
    return Promise.reject(new Error(`unknown model "${name}"; the models are ${MODELS.join(', ')}`));
  }
  let p = modelPromises.get(name);
  if (!p) {
    p = (async () => {
      const url = new URL(`./weights/${name}.safetensors`, import.meta.url);
      const [Model, bytes] = await Promise.all([wasmModel(), fetchBytes(url, name)]);
      return Model.load(bytes);
    })();
    modelPromises.set(name, p);
    p.catch(() => { if (modelPromises.get(name) === p) modelPromises.delete(name); });
  }
  return p;
}

async function fetchBytes(url, name, what = 'weights') {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not download the ${name} ${what} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
}

// One stylesheet object shared by every shadow root (adoptedStyleSheets takes the same sheet
// many times). Custom properties inherit through the shadow boundary, so a page can restyle the
// element from outside: latent-lab { --ll-bg: #fff; --ll-fg: #222; }.
const CSS_TEXT = `
:host {
  display: block;
  max-width: 100%;
  margin: 1.5em 0;
  font-family: inherit;
  font-size: 0.9rem;
  line-height: 1.4;
  --ll-bg: #14171d;
  --ll-fg: #e6e9ef;
  --ll-muted: #9aa3b2;
  --ll-accent: #5fb0e8;
  --ll-border: #2b3140;
  --ll-error-bg: #5a1d1d;
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
.frame {
  max-width: 100%;
  margin: 0 auto;
  padding: 12px;
  border-radius: 8px;
  background: var(--ll-bg);
  color: var(--ll-fg);
}
.body { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.pictures { flex: 1 1 160px; max-width: 280px; display: flex; flex-wrap: wrap; gap: 8px; }
.pictures > canvas { flex: 1 1 140px; min-width: 0; }
.pictures.with-pad { flex-basis: 100%; max-width: 540px; }
.controls { flex: 3 1 220px; min-width: 0; display: flex; flex-direction: column; gap: 8px; }
canvas { display: block; width: 100%; height: auto; image-rendering: pixelated; background: #1a1d24; }
canvas.pad { image-rendering: auto; aspect-ratio: 1; cursor: crosshair; touch-action: none; }
canvas:focus-visible, button:focus-visible, input:focus-visible { outline: 2px solid var(--ll-accent); outline-offset: 2px; }
.sliders { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 4px 12px; }
.sliders label { display: flex; align-items: center; gap: 6px; font-variant-numeric: tabular-nums; }
.sliders input { flex: 1; min-width: 0; accent-color: var(--ll-accent); }
.sliders output { width: 3.2em; text-align: right; color: var(--ll-muted); }
.buttons { display: flex; flex-wrap: wrap; gap: 6px; }
button {
  font: inherit;
  color: var(--ll-fg);
  background: var(--ll-border);
  border: 1px solid #444b5c;
  border-radius: 5px;
  padding: 4px 10px;
  min-height: 32px;
  cursor: pointer;
}
button:disabled { opacity: 0.5; cursor: default; }
button[aria-pressed="true"] { background: var(--ll-accent); color: #0b0d12; }
.digits button { min-width: 32px; padding: 4px 0; }
.caption, .status { margin: 8px 0 0; color: var(--ll-muted); }
.error { margin: 8px 0 0; padding: 8px 10px; border-radius: 6px; background: var(--ll-error-bg); color: #fff; white-space: pre-wrap; }
.error[hidden], .status[hidden] { display: none; }
canvas.map, canvas.drawpad { image-rendering: auto; aspect-ratio: 1; cursor: crosshair; touch-action: none; }
.mapbox { flex: 1 1 260px; max-width: 420px; min-width: 0; }
.side { flex: 1 1 140px; min-width: 0; display: flex; flex-direction: column; gap: 8px; }
.side canvas.digit { max-width: 140px; }
.axis { margin: 2px 0 0; color: var(--ll-muted); font-size: 0.8rem; }
.legend { list-style: none; margin: 0; padding: 0; display: grid; grid-template-columns: repeat(2, auto); gap: 2px 10px; font-size: 0.8rem; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 50%; margin-right: 5px; border: 1px solid #000; }
.small { display: flex; gap: 8px; align-items: flex-end; }
.small canvas { width: 84px; }
canvas.curve { image-rendering: auto; }
`;

let sheet = null;
function styleSheet() {
  if (!sheet) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS_TEXT);
  }
  return sheet;
}

// ---- small helpers ----------------------------------------------------------------------------

/** document.createElement with properties and ARIA / data attributes; never a style attribute. */
function h(tag, props = {}, attrs = {}, children = []) {
  const el = document.createElement(tag);
  Object.assign(el, props);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

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
    this.#status = h('p', { className: 'status', textContent: `Loading ${name}…` }, { role: 'status' });
    this.#error = h('p', { className: 'error', hidden: true }, { role: 'alert' });
    const body = h('div', { className: 'body' });
    this.#frame = h('div', { className: 'frame' }, { part: 'frame' }, [body, this.#status, this.#error]);
    this.#applyWidth();
    this.#root.replaceChildren(this.#frame);
    try {
      if (!VIEWS.includes(view)) throw new Error(`unknown view "${view}"; the views are ${VIEWS.join(', ')}`);
      this.setAttribute('aria-busy', 'true');
      const model = await loadModel(name);
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
      this.#status.textContent = `${KIND_NAMES[model.kind] ?? model.kind}, latent ${model.latent} (${name})`;
    } catch (e) {
      if (token === this.#token) this.#showError(e);
    } finally {
      if (token === this.#token) this.removeAttribute('aria-busy');
    }
  }

  /** The digit picker for conditional models: 10 toggle buttons; calls onPick(d). */
  #digitPicker(ctx, digit, onPick) {
    const group = h('div', { className: 'buttons digits' }, { role: 'group', 'aria-label': 'Digit to draw' });
    const buttons = [];
    for (let d = 0; d < 10; d++) {
      const b = h('button', { type: 'button', textContent: String(d) }, { 'aria-label': `Digit ${d}`, 'aria-pressed': d === digit });
      b.addEventListener('click', ctx.guard(() => {
        buttons.forEach((x, i) => x.setAttribute('aria-pressed', String(i === d)));
        onPick(d);
      }));
      buttons.push(b);
    }
    group.append(...buttons);
    return group;
  }

  // ---- view: sliders -------------------------------------------------------------------------

  #sliders({ model, body, guard }) {
    const latent = model.latent;
    const z = new Float32Array(latent);
    let digit = intAttr(this, 'digit', 0, 0, 9);
    const labels = () => (model.conditional ? new Uint8Array([digit]) : undefined);

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

    if (model.conditional) controls.append(this.#digitPicker({ guard }, digit, (d) => { digit = d; schedule(); }));

    const inputs = [];
    const outputs = [];
    const sliders = h('div', { className: 'sliders' });
    for (let i = 0; i < latent; i++) {
      const input = h('input', { type: 'range', min: -SLIDER_RANGE, max: SLIDER_RANGE, step: SLIDER_STEP, value: 0 }, {
        'aria-label': `Latent dimension ${i + 1} of ${latent}`,
      });
      const out = h('output', { textContent: '0.0' }, { 'aria-hidden': 'true' });
      input.addEventListener('input', guard(() => {
        z[i] = Number(input.value);
        out.textContent = z[i].toFixed(1);
        schedule();
      }));
      inputs.push(input);
      outputs.push(out);
      sliders.append(h('label', {}, {}, [`z${i + 1}`, input, out]));
    }
    controls.append(sliders);

    const setAll = (values) => {
      values.forEach((v, i) => {
        z[i] = Math.round(clamp(v, -SLIDER_RANGE, SLIDER_RANGE) / SLIDER_STEP) * SLIDER_STEP;
        inputs[i].value = String(z[i]);
        outputs[i].textContent = z[i].toFixed(1);
      });
      schedule();
    };
    let seed = intAttr(this, 'seed', 1, 0, 2 ** 31);
    const random = h('button', { type: 'button', textContent: 'Random z' }, { 'aria-label': 'Set the sliders to a random latent vector' });
    random.addEventListener('click', guard(() => setAll(normals(latent, seed++))));
    const reset = h('button', { type: 'button', textContent: 'Reset' }, { 'aria-label': 'Set every slider to 0' });
    reset.addEventListener('click', guard(() => setAll(new Float32Array(latent))));
    controls.append(h('div', { className: 'buttons' }, {}, [random, reset]));

    const draw = () => {
      drawGrid(canvas, model.sample(z, labels()), 1, CELL, GAP);
      if (pad) drawPad(pad, z, SLIDER_RANGE);
      if (latent <= 4) canvas.setAttribute('aria-label', `The digit decoded at z = (${Array.from(z, (v) => v.toFixed(1)).join(', ')})`);
    };
    let frame = 0;
    const schedule = () => {
      if (frame) return;
      frame = requestAnimationFrame(guard(() => { frame = 0; draw(); }));
    };

    if (pad) {
      const fromPointer = (event) => {
        const rect = pad.getBoundingClientRect();
        const fx = clamp((event.clientX - rect.left) / rect.width, 0, 1);
        const fy = clamp((event.clientY - rect.top) / rect.height, 0, 1);
        // Up is +z2, as in the grid view.
        setAll([(fx * 2 - 1) * SLIDER_RANGE, (1 - fy * 2) * SLIDER_RANGE]);
      };
      pad.addEventListener('pointerdown', guard((event) => {
        pad.setPointerCapture(event.pointerId);
        fromPointer(event);
      }));
      pad.addEventListener('pointermove', guard((event) => {
        if (pad.hasPointerCapture(event.pointerId)) fromPointer(event);
      }));
      pad.addEventListener('keydown', guard((event) => {
        const s = event.shiftKey ? 0.5 : SLIDER_STEP;
        const d = { ArrowLeft: [-s, 0], ArrowRight: [s, 0], ArrowUp: [0, s], ArrowDown: [0, -s] }[event.key];
        if (!d) return;
        event.preventDefault();
        setAll([z[0] + d[0], z[1] + d[1]]);
      }));
    }
    draw();
  }

  // ---- view: grid ----------------------------------------------------------------------------

  #grid({ model, body, guard }) {
    const n = intAttr(this, 'n', 20, 2, 40);
    const rawRange = Number(this.getAttribute('range') ?? 2.5);
    const R = Number.isFinite(rawRange) && rawRange > 0 ? rawRange : 2.5;
    let digit = intAttr(this, 'digit', 0, 0, 9);
    const latent = model.latent;

    // Layout of the manifold: cell (row r, column c), r and c from 0 to n-1, shows the decoded
    //   z = (x, y, 0, 0, ...)  with  x = -R + 2R·c/(n-1),  y = +R - 2R·r/(n-1),
    // so the first latent dimension grows to the right and the second grows upward, like a
    // plot: the top-left cell is (-R, +R), the top-right (+R, +R), the bottom-left (-R, -R)
    // and the bottom-right (+R, -R). Cells are stored row by row, which is drawGrid's order.
    const zs = new Float32Array(n * n * latent);
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) {
        const k = (r * n + c) * latent;
        zs[k] = -R + (2 * R * c) / (n - 1);
        if (latent > 1) zs[k + 1] = R - (2 * R * r) / (n - 1);
      }
    }

    const canvas = h('canvas', {}, {
      role: 'img',
      'data-cells': n * n,
      'data-cell-size': CELL,
      'data-gap': GAP,
      'aria-label': `${n} by ${n} grid of digits decoded over the latent plane: z1 from ${-R} to ${R} left to right, z2 from ${-R} to ${R} bottom to top`,
    });
    const controls = h('div', { className: 'controls' }, {}, [canvas]);
    body.append(controls);
    const draw = () => {
      // One batched decode for all n × n points.
      const images = model.sample(zs, model.conditional ? new Uint8Array(n * n).fill(digit) : undefined);
      drawGrid(canvas, images, n, CELL, GAP);
    };
    if (model.conditional) controls.append(this.#digitPicker({ guard }, digit, (d) => { digit = d; draw(); }));
    controls.append(h('p', { className: 'caption', textContent: `z1 runs from ${-R} to ${R} left to right, z2 from ${-R} to ${R} bottom to top${latent > 2 ? '; the other dimensions are 0' : ''}.` }));
    draw();
  }

  // ---- view: interpolate ---------------------------------------------------------------------

  #interpolate({ model, body, guard }) {
    const steps = intAttr(this, 'steps', 10, 2, 20);
    let seed = intAttr(this, 'seed', 1, 0, 2 ** 31);
    let digit = intAttr(this, 'digit', 0, 0, 9);
    const latent = model.latent;

    const canvas = h('canvas', {}, { role: 'img', 'data-frames': steps });
    const controls = h('div', { className: 'controls' }, {}, [canvas]);
    body.append(controls);
    const draw = () => {
      // Seeded: the same page shows the same strip every time it opens.
      const both = normals(2 * latent, seed);
      const zA = both.subarray(0, latent);
      const zB = both.subarray(latent);
      const frames = model.interpolate(zA, zB, steps, model.conditional ? digit : undefined);
      drawGrid(canvas, frames, steps, CELL, GAP);
      canvas.setAttribute('aria-label', `${steps} digits decoded along a straight line between two random latent vectors (seed ${seed})`);
    };
    if (model.conditional) controls.append(this.#digitPicker({ guard }, digit, (d) => { digit = d; draw(); }));
    const next = h('button', { type: 'button', textContent: 'New ends' }, { 'aria-label': 'New ends: pick two new random latent vectors' });
    next.addEventListener('click', guard(() => { seed++; draw(); }));
    controls.append(h('div', { className: 'buttons' }, {}, [next]));
    draw();
  }

  /** Runs `start` once, when the element first comes within 200 px of the viewport. */
  #whenVisible(start) {
    const observer = new IntersectionObserver((entries) => {
      if (!entries.some((e) => e.isIntersecting)) return;
      observer.disconnect();
      start();
    }, { rootMargin: '200px' });
    observer.observe(this);
    this.#cleanups.push(() => observer.disconnect());
  }

  /** A caption saying a GAN has no encoder, for the views that need one. */
  #noEncoder(model, body, what) {
    body.append(h('p', {
      className: 'caption',
      textContent: `A ${KIND_NAMES[model.kind] ?? model.kind} has no encoder, so it cannot ${what}. Use a VAE: vae-z2, vae-z20 or cvae-z2.`,
    }));
  }

  // ---- view: map -----------------------------------------------------------------------------

  #map({ model, name, body, guard, live }) {
    if (!hasEncoder(model)) {
      this.#noEncoder(model, body, 'place digits on a map');
      return;
    }
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
    const legend = h('ul', { className: 'legend' }, { 'aria-label': 'Digit colours on the map' }, DIGIT_COLORS.map((color, d) => {
      const swatch = h('span', { className: 'swatch' });
      swatch.style.background = color; // CSSOM, CSP-safe
      return h('li', {}, {}, [swatch, `digit ${d}`]);
    }));
    const side = h('div', { className: 'side' }, {}, [digitCanvas, readout, legend]);
    body.append(h('div', { className: 'mapbox' }, {}, [canvas, xLabel]), side);
    if (model.conditional) side.prepend(this.#digitPicker({ guard }, digit, (d) => { digit = d; schedule(); }));

    let data = null;
    let layer = null;
    let cursor = null;
    const draw = () => {
      if (!data) return;
      drawMap(canvas, layer, data.box, { cursor });
      const z = toLatent(data, new Float32Array(cursor));
      drawGrid(digitCanvas, model.sample(z, model.conditional ? new Uint8Array([digit]) : undefined), 1, CELL, GAP);
      readout.textContent = `Position (${cursor[0].toFixed(2)}, ${cursor[1].toFixed(2)}); the nearest test digit is a ${data.labels[nearest(data, ...cursor)]}.`;
    };
    let frame = 0;
    const schedule = () => {
      if (frame) return;
      frame = requestAnimationFrame(guard(() => { frame = 0; draw(); }));
    };
    const move = (x, y) => {
      if (!data) return;
      const { cx, cy, half } = data.box;
      cursor = [clamp(x, cx - half, cx + half), clamp(y, cy - half, cy + half)];
      schedule();
    };
    const fromPointer = (event) => {
      if (!data) return;
      const rect = canvas.getBoundingClientRect();
      const px = ((event.clientX - rect.left) / rect.width) * canvas.width;
      const py = ((event.clientY - rect.top) / rect.height) * canvas.height;
      move(...pixelToMap(data.box, canvas.width, canvas.height, px, py));
    };
    canvas.addEventListener('pointerdown', guard((event) => {
      canvas.setPointerCapture(event.pointerId);
      fromPointer(event);
    }));
    canvas.addEventListener('pointermove', guard(fromPointer)); // hovering decodes too
    canvas.addEventListener('keydown', guard((event) => {
      if (!data) return;
      const s = data.box.half * 0.04 * (event.shiftKey ? 5 : 1);
      const d = { ArrowLeft: [-s, 0], ArrowRight: [s, 0], ArrowUp: [0, s], ArrowDown: [0, -s] }[event.key];
      if (!d) return;
      event.preventDefault();
      move(cursor[0] + d[0], cursor[1] + d[1]);
    }));

    // The test digits download only when the map is about to be seen.
    this.#whenVisible(guard(async () => {
      this.setAttribute('aria-busy', 'true');
      try {
        const map = await loadMap(name);
        if (!live()) return;
        data = map;
        layer = renderMapLayer(data.xy, data.labels, data.box, canvas.width);
        cursor = [data.box.cx, data.box.cy];
        const [xName, yName] = axisNames(data);
        xLabel.textContent = `Right: ${xName}; up: ${yName}.`;
        canvas.setAttribute('data-points', String(data.labels.length));
        draw();
      } finally {
        if (live()) this.removeAttribute('aria-busy');
      }
    }));
  }

  // ---- view: draw ----------------------------------------------------------------------------

  #draw({ model, body, guard, live }) {
    if (!hasEncoder(model)) {
      this.#noEncoder(model, body, 'encode a drawing');
      return;
    }
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
    const ctx = pad.getContext('2d');
    const blank = () => { ctx.fillStyle = '#000'; ctx.fillRect(0, 0, pad.width, pad.height); };
    blank();
    let last = null;
    let testIndex = 0;
    const point = (event) => {
      const rect = pad.getBoundingClientRect();
      return [((event.clientX - rect.left) / rect.width) * pad.width, ((event.clientY - rect.top) / rect.height) * pad.height];
    };
    const ink = (a, b) => {
      Object.assign(ctx, { strokeStyle: '#fff', lineWidth: 20, lineCap: 'round', lineJoin: 'round' });
      ctx.beginPath();
      ctx.moveTo(...a);
      ctx.lineTo(...b);
      ctx.stroke();
    };
    const show = async (digitImage) => {
      drawGrid(input, digitImage, 1, CELL, GAP);
      let labels;
      let read = '';
      if (model.conditional) {
        const d = (await loadClassifier()).classify(digitImage)[0];
        if (!live()) return;
        labels = new Uint8Array([d]);
        read = `The classifier reads it as a ${d}, and the conditional VAE encodes it with that label. `;
      }
      const r = model.reconstruct(digitImage, labels);
      drawGrid(recon, r.images, 1, CELL, GAP);
      const loss = r.losses[0];
      r.free();
      const enc = model.encode(digitImage, labels);
      const mu = enc.mu;
      enc.free();
      result.textContent = `${read}Reconstruction loss ${loss.toFixed(1)} (BCE + KL); posterior mean (${Array.from(mu.subarray(0, 2), (v) => v.toFixed(2)).join(', ')}${mu.length > 2 ? ', …' : ''}).`;
      styles.hidden = !model.conditional;
      if (model.conditional) {
        const z = new Float32Array(10 * model.latent);
        for (let d = 0; d < 10; d++) z.set(mu, d * model.latent);
        drawGrid(styles, model.sample(z, Uint8Array.from({ length: 10 }, (_, d) => d)), 10, CELL, GAP);
      }
    };
    const readPad = async () => {
      const rgba = ctx.getImageData(0, 0, pad.width, pad.height).data;
      const pixels = new Float32Array(pad.width * pad.height);
      for (let i = 0; i < pixels.length; i++) pixels[i] = rgba[4 * i] / 255;
      const { center_digit: center } = await wasmModule();
      let centred;
      try {
        centred = center(pixels, pad.width, pad.height);
      } catch {
        result.textContent = 'The pad is empty: draw a digit first.';
        return;
      }
      await show(centred);
    };
    pad.addEventListener('pointerdown', guard((event) => {
      pad.setPointerCapture(event.pointerId);
      last = point(event);
      ink(last, last);
    }));
    pad.addEventListener('pointermove', guard((event) => {
      if (!last) return;
      const p = point(event);
      ink(last, p);
      last = p;
    }));
    const end = guard(() => {
      if (!last) return undefined;
      last = null;
      return readPad();
    });
    pad.addEventListener('pointerup', end);
    pad.addEventListener('pointercancel', end);
    clear.addEventListener('click', guard(() => { blank(); result.textContent = 'Cleared: draw a digit on the pad.'; }));
    useTest.addEventListener('click', guard(async () => {
      const set = await testDigits();
      const k = testIndex++ % set.labels.length;
      const image = set.images.slice(k * 784, (k + 1) * 784); // already MNIST-shaped: used as it is
      drawGrid(pad, image, 1, pad.width, GAP);
      await show(image);
    }));
  }

  // ---- view: train ---------------------------------------------------------------------------

  #train({ model: shipped, body, guard, live }) {
    const rawEpochs = Number(this.getAttribute('epochs') ?? 1);
    const epochs = Number.isFinite(rawEpochs) && rawEpochs > 0 ? clamp(rawEpochs, 0.05, 20) : 1;
    const GRID = 16;
    const gridZ = normals(GRID * shipped.latent, 7);
    const gridLabels = shipped.conditional ? Uint8Array.from({ length: GRID }, (_, i) => i % 10) : null;
    const family = shipped.kind.endsWith('gan') ? 'gan' : 'vae';
    const SERIES = family === 'vae'
      ? [['loss', '#f0a04b', 'loss'], ['bce', '#5fb0e8', 'reconstruction'], ['kl', '#8fd17a', 'KL']]
      : [['d_loss', '#f0a04b', 'discriminator'], ['g_loss', '#5fb0e8', 'generator']];

    const samples = h('canvas', { className: 'samples' }, { role: 'img', 'aria-label': '16 fixed latent vectors decoded by the model as it trains' });
    const curve = h('canvas', { className: 'curve', width: 480, height: 180 }, { role: 'img', 'aria-label': 'Training losses against step' });
    const start = h('button', { type: 'button', textContent: 'Train' }, { 'aria-label': `Train: ${epochs} epoch${epochs === 1 ? '' : 's'} on MNIST, in this tab` });
    const stop = h('button', { type: 'button', textContent: 'Stop', disabled: true }, { 'aria-label': 'Stop training and keep the weights so far' });
    const status = h('p', { className: 'caption', textContent: 'Press Train to train this model here, in a background worker.' }, { 'aria-live': 'polite' });
    body.append(
      h('div', { className: 'pictures' }, {}, [samples]),
      h('div', { className: 'controls' }, {}, [h('div', { className: 'buttons' }, {}, [start, stop]), curve, status]),
    );

    let trained = null; // this element's own Model after a run (the shared one is never changed)
    const current = () => trained ?? shipped;
    drawGrid(samples, current().sample(gridZ, gridLabels ?? undefined), 4, CELL, GAP);

    let worker = null;
    let losses = {};
    let frame = 0;
    const drawLosses = () => {
      if (frame) return;
      frame = requestAnimationFrame(guard(() => {
        frame = 0;
        drawCurve(curve, SERIES.map(([field, color, label]) => ({ values: losses[field], color, label })));
      }));
    };
    const running = (on) => {
      start.disabled = on;
      stop.disabled = !on;
      this.toggleAttribute('data-training', on);
    };
    const onMessage = guard(async (msg) => {
      if (!live()) return;
      if (msg.status) status.textContent = msg.status;
      else if (msg.samples) drawGrid(samples, msg.samples, 4, CELL, GAP);
      else if (msg.error) status.textContent = `Training stopped: ${msg.error}`;
      else if (msg.fatal) {
        worker?.terminate();
        worker = null;
        throw new Error(`the training worker crashed (${msg.fatal})`);
      } else if (msg.done) {
        running(false);
        if (msg.weights && msg.steps > 0) {
          const Model = await wasmModel();
          trained?.free();
          trained = Model.load(msg.weights);
          drawGrid(samples, trained.sample(gridZ, gridLabels ?? undefined), 4, CELL, GAP);
          status.textContent += ` · ${msg.reason === 'stopped' ? 'stopped' : 'done'} after ${msg.steps} steps`;
        }
      } else if (msg.step !== undefined) {
        for (const [field] of SERIES) losses[field].push(msg[field]);
        const head = `step ${msg.step} of ${msg.totalSteps}, epoch ${msg.epoch.toFixed(2)}`;
        status.textContent = family === 'vae'
          ? `${head}: loss ${msg.loss.toFixed(1)}`
          : `${head}: D loss ${msg.d_loss.toFixed(3)}, G loss ${msg.g_loss.toFixed(3)}`;
        this.setAttribute('data-step', String(msg.step));
        drawLosses();
      }
    });
    start.addEventListener('click', guard(() => {
      if (!worker) {
        // A module worker from this file's origin: allowed by worker-src, or by script-src 'self'.
        worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
        worker.onmessage = (e) => onMessage(e.data);
        worker.onerror = (e) => {
          e.preventDefault();
          worker?.terminate();
          worker = null;
          running(false);
          this.#showError(new Error(`the training worker failed to start${e.message ? `: ${e.message}` : ''}`));
        };
        this.#cleanups.push(() => worker?.terminate());
      }
      const m = current();
      losses = Object.fromEntries(SERIES.map(([field]) => [field, []]));
      const weights = m.save();
      running(true);
      status.textContent = 'Starting…';
      worker.postMessage({
        cmd: 'start', weights, kind: m.kind, latent: m.latent, hidden: m.hidden, seed: 1, epochs,
        batchSize: m.batch_size, learningRate: m.learning_rate, gridZ, gridLabels,
      }, [weights.buffer]);
    }));
    stop.addEventListener('click', guard(() => worker?.postMessage({ cmd: 'stop' })));
    this.#cleanups.push(() => { trained?.free(); trained = null; });
  }
}

if (!customElements.get('latent-lab')) customElements.define('latent-lab', LatentLabElement);
