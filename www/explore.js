// The page's explorer panels: the latent map (the 10,000 MNIST test digits encoded by the current
// VAE, with a cursor that decodes wherever it points), the manifold grid, the drawing pad (your
// digit encoded, reconstructed and placed on the map) and a row of reconstructions.
//
// The test digits (www/data/mnist-test.safetensors, 7.8 MB) are fetched the first time a panel
// that needs them comes into view (or is used), never at page start, and encoded once per model
// object (a model trained here is a new object, so its map is rebuilt).
import { DIGIT_COLORS, drawGrid, drawMap, pixelToMap, renderMapLayer } from './draw.js';
import { axisNames, buildMap, hasEncoder, manifoldLatents, nearest, posteriorOnMap, toLatent } from './latent-map.js';

const TEST_URL = new URL('./data/mnist-test.safetensors', import.meta.url);
const MANIFOLD_CELL = 28; // canvas pixels per manifold digit (one per MNIST pixel); CSS scales it
const MANIFOLD_GAP = 2;
const RECON_COUNT = 8;
const RECON_CELL = 48;
const PAD_INK = 20; // stroke width on the 280-pixel pad: about 2 MNIST pixels once scaled to 20 × 20
const CURSOR_STEP = 0.04; // one arrow-key press, as a share of the map's half-width (Shift: × 5)

const $ = (id) => document.getElementById(id);

/**
 * Wires the panels. `page` gives: wasm {load_digits, center_digit, Pca}; model() the current
 * Model; digit() the digit conditional models draw; classifier() a Promise<Classifier>;
 * guard(fn) (errors shown on the page); onChange() (the map cursor moved: update the URL).
 */
export function setupExplorer(page) {
  const { wasm, guard } = page;
  const model = () => page.model();
  const labelsFor = (m, n) => (m.conditional ? new Uint8Array(n).fill(page.digit()) : undefined);

  let testSetPromise = null;
  const maps = new WeakMap(); // Model → Promise<map> (www/latent-map.js's buildMap)
  const active = new Set(); // the panels that have been shown: 'map', 'manifold', 'draw', 'recon'
  let shownModel = null; // the model the panels were last drawn for

  /** The MNIST test set, downloaded and parsed once. */
  function testSet() {
    if (!testSetPromise) {
      testSetPromise = (async () => {
        const res = await fetch(TEST_URL);
        if (!res.ok) throw new Error(`the MNIST test digits: ${res.status} ${res.statusText}`);
        const digits = wasm.load_digits(new Uint8Array(await res.arrayBuffer()), 'test');
        // The getters copy out of wasm memory; read each once.
        const set = { images: digits.images, labels: digits.labels };
        digits.free();
        return set;
      })();
      testSetPromise.catch(() => { testSetPromise = null; });
    }
    return testSetPromise;
  }

  function mapFor(m) {
    let p = maps.get(m);
    if (!p) {
      p = testSet().then((set) => buildMap(m, set, wasm.Pca));
      maps.set(m, p);
      p.catch(() => maps.delete(m));
    }
    return p;
  }

  // ---- the latent map ----------------------------------------------------------------------

  const mapCanvas = $('latent-map');
  const map = { data: null, model: null, layer: null, cursor: null, pendingCursor: null, posterior: null, frame: 0 };

  function buildLegend() {
    const legend = $('map-legend');
    DIGIT_COLORS.forEach((color, d) => {
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = color;
      const item = document.createElement('li');
      item.append(swatch, `digit ${d}`);
      legend.append(item);
    });
  }

  async function renderMap() {
    const m = model();
    const note = $('map-note');
    if (!hasEncoder(m)) {
      map.data = null;
      map.model = null;
      mapCanvas.dataset.points = '0';
      $('map-body').hidden = true;
      note.textContent = `A ${m.kind.toUpperCase()} has no encoder, so it cannot place digits on a map: pick a VAE to see its latent space.`;
      return;
    }
    $('map-body').hidden = false;
    if (!maps.has(m)) note.textContent = 'Encoding the 10,000 MNIST test digits…';
    const data = await mapFor(m);
    if (model() !== m) return;
    map.data = data;
    map.model = m;
    map.layer = renderMapLayer(data.xy, data.labels, data.box, mapCanvas.width);
    mapCanvas.dataset.points = String(data.labels.length);
    const [xName, yName] = axisNames(data);
    $('map-x-label').textContent = `${xName} →`;
    $('map-y-label').textContent = `${yName} →`;
    note.textContent = data.pca
      ? `The ${data.labels.length.toLocaleString('en')} test digits' posterior means (latent ${data.latent}), projected onto their two principal axes. Point, click, drag or use the arrow keys to decode any position on this plane.`
      : `The ${data.labels.length.toLocaleString('en')} test digits' posterior means, one dot each, coloured by digit. Point, click, drag or use the arrow keys to decode any position.`;
    map.cursor = map.pendingCursor ?? map.cursor ?? [data.box.cx, data.box.cy];
    map.pendingCursor = null;
    drawMapNow();
  }

  function drawMapNow() {
    const m = model();
    if (!map.data || !hasEncoder(m)) return;
    const posterior = map.posterior?.model === m ? posteriorOnMap(map.data, map.posterior.mu, map.posterior.logvar) : null;
    drawMap(mapCanvas, map.layer, map.data.box, { cursor: map.cursor, posterior });
    const [x, y] = map.cursor;
    const z = toLatent(map.data, new Float32Array([x, y]));
    drawGrid($('map-digit'), m.sample(z, labelsFor(m, 1)), 1, 112);
    const near = map.data.labels[nearest(map.data, x, y)];
    $('map-live').textContent = `Position (${x.toFixed(2)}, ${y.toFixed(2)}); the nearest test digit is a ${near}.`;
  }

  function scheduleMapDraw() {
    if (map.frame) return;
    map.frame = requestAnimationFrame(guard(() => {
      map.frame = 0;
      drawMapNow();
    }));
  }

  function moveCursor(x, y) {
    if (!map.data) return;
    const { cx, cy, half } = map.data.box;
    map.cursor = [Math.min(cx + half, Math.max(cx - half, x)), Math.min(cy + half, Math.max(cy - half, y))];
    scheduleMapDraw();
    page.onChange();
  }

  function mapPointer(event) {
    if (!map.data) return;
    const rect = mapCanvas.getBoundingClientRect();
    const px = ((event.clientX - rect.left) / rect.width) * mapCanvas.width;
    const py = ((event.clientY - rect.top) / rect.height) * mapCanvas.height;
    moveCursor(...pixelToMap(map.data.box, mapCanvas.width, mapCanvas.height, px, py));
  }

  function mapKey(event) {
    if (!map.data) return;
    const s = map.data.box.half * CURSOR_STEP * (event.shiftKey ? 5 : 1);
    const d = { ArrowLeft: [-s, 0], ArrowRight: [s, 0], ArrowUp: [0, s], ArrowDown: [0, -s] }[event.key];
    if (!d) return;
    event.preventDefault();
    moveCursor(map.cursor[0] + d[0], map.cursor[1] + d[1]);
  }

  mapCanvas.addEventListener('pointerdown', guard((e) => {
    mapCanvas.setPointerCapture(e.pointerId);
    mapPointer(e);
  }));
  // Hovering decodes too (a mouse need not press); a finger or pen drags.
  mapCanvas.addEventListener('pointermove', guard(mapPointer));
  mapCanvas.addEventListener('keydown', guard(mapKey));
  buildLegend();

  // ---- the manifold grid -------------------------------------------------------------------

  const manifoldCanvas = $('manifold');
  let manifoldRequest = null; // {model, z, labels, n}: the grid drawn last, which a training run decodes
  let trainingRequest = null; // the manifoldRequest a running training decodes

  function manifoldSettings() {
    const n = Math.round(Number($('manifold-n').value));
    const R = Number($('manifold-range').value);
    return { n: Number.isFinite(n) ? Math.min(40, Math.max(2, n)) : 20, R: R > 0 && R <= 20 ? R : 2.5 };
  }

  async function renderManifold() {
    const m = model();
    const { n, R } = manifoldSettings();
    const usesPca = hasEncoder(m) && m.latent > 2;
    const data = usesPca ? await mapFor(m) : null;
    if (model() !== m) return;
    const z = manifoldLatents(n, R, m.latent, data);
    const labels = labelsFor(m, n * n);
    drawGrid(manifoldCanvas, m.sample(z, labels), n, MANIFOLD_CELL, MANIFOLD_GAP); // one batched decode
    manifoldRequest = { model: m, z, labels: labels ?? null, n };
    manifoldCanvas.dataset.cells = String(n * n);
    let plane;
    if (usesPca) {
      const [xName, yName] = axisNames(data);
      plane = `${xName} runs from ${-R} to ${R} left to right and ${yName} bottom to top, on the latent map's plane through the test digits' mean`;
    } else {
      plane = `z1 runs from ${-R} to ${R} left to right, z2 from ${-R} to ${R} bottom to top${m.latent > 2 ? `; the other ${m.latent - 2} dimensions are 0 (a GAN has no encoder to find a better plane)` : ''}`;
    }
    $('manifold-caption').textContent = `${n} × ${n} digits: ${plane}.`;
    manifoldCanvas.setAttribute('aria-label', `${n} by ${n} grid of decoded digits; ${plane}`);
  }

  // ---- reconstructions ---------------------------------------------------------------------

  let reconSet = null; // {images, labels}: the first test digit of each of 0–7

  async function reconDigits() {
    if (!reconSet) {
      const set = await testSet();
      const images = new Float32Array(RECON_COUNT * 784);
      const labels = new Uint8Array(RECON_COUNT);
      for (let d = 0; d < RECON_COUNT; d++) {
        const i = set.labels.indexOf(d);
        images.set(set.images.subarray(i * 784, (i + 1) * 784), d * 784);
        labels[d] = d;
      }
      reconSet = { images, labels };
    }
    return reconSet;
  }

  function drawRecon(recon, losses) {
    const both = new Float32Array(2 * RECON_COUNT * 784);
    both.set(reconSet.images);
    both.set(recon, RECON_COUNT * 784);
    drawGrid($('recon'), both, RECON_COUNT, RECON_CELL);
    $('recon-losses').replaceChildren(...Array.from(losses, (loss, k) => {
      const li = document.createElement('li');
      li.textContent = loss.toFixed(1);
      li.setAttribute('aria-label', `digit ${reconSet.labels[k]}: loss ${loss.toFixed(1)}`);
      return li;
    }));
  }

  async function renderRecon() {
    const m = model();
    if (!hasEncoder(m)) {
      $('recon-body').hidden = true;
      $('recon-note').textContent = `A ${m.kind.toUpperCase()} has no encoder, so it cannot reconstruct a digit.`;
      return;
    }
    const { images, labels } = await reconDigits();
    if (model() !== m) return;
    $('recon-body').hidden = false;
    $('recon-note').textContent = 'Top: eight MNIST test digits. Bottom: the model\'s reconstruction of each, decoded from its posterior mean. Under each, its loss (binary cross-entropy plus KL, in nats).';
    const r = m.reconstruct(images, m.conditional ? labels : undefined);
    drawRecon(r.images, r.losses);
    r.free();
  }

  // ---- the drawing pad ---------------------------------------------------------------------

  const pad = $('draw-pad');
  const padCtx = pad.getContext('2d');
  let drawn = null; // the last drawing, centred as MNIST (784 floats)
  let stroke = null; // the previous point of the stroke being drawn
  let testIndex = 0;

  function clearPad() {
    padCtx.fillStyle = '#000';
    padCtx.fillRect(0, 0, pad.width, pad.height);
  }

  function padPoint(event) {
    const rect = pad.getBoundingClientRect();
    return [((event.clientX - rect.left) / rect.width) * pad.width, ((event.clientY - rect.top) / rect.height) * pad.height];
  }

  function ink(from, to) {
    padCtx.strokeStyle = '#fff';
    padCtx.lineWidth = PAD_INK;
    padCtx.lineCap = padCtx.lineJoin = 'round';
    padCtx.beginPath();
    padCtx.moveTo(...from);
    padCtx.lineTo(...to);
    padCtx.stroke();
  }

  pad.addEventListener('pointerdown', guard((e) => {
    pad.setPointerCapture(e.pointerId);
    stroke = padPoint(e);
    ink(stroke, stroke);
  }));
  pad.addEventListener('pointermove', guard((e) => {
    if (!stroke) return;
    const p = padPoint(e);
    ink(stroke, p);
    stroke = p;
  }));
  const endStroke = guard(async () => {
    if (!stroke) return;
    stroke = null;
    await readPad();
  });
  pad.addEventListener('pointerup', endStroke);
  pad.addEventListener('pointercancel', endStroke);

  $('draw-clear').addEventListener('click', guard(() => {
    clearPad();
    drawn = null;
    map.posterior = null;
    $('draw-result').textContent = 'Cleared.';
    $('draw-styles').hidden = true;
    scheduleMapDraw();
  }));
  $('draw-test-digit').addEventListener('click', guard(async () => {
    const set = await testSet();
    const k = testIndex++ % set.labels.length;
    // A test digit is already in MNIST's format: it goes to the model as it is (centring it again
    // would move it by a fraction of a pixel), and the pad shows it scaled up.
    drawn = set.images.slice(k * 784, (k + 1) * 784);
    drawGrid(pad, drawn, 1, pad.width);
    await renderDrawn();
  }));

  /** The pad's ink (red channel, white on black) → a centred MNIST-style digit → the model. */
  async function readPad() {
    const rgba = padCtx.getImageData(0, 0, pad.width, pad.height).data;
    const pixels = new Float32Array(pad.width * pad.height);
    for (let i = 0; i < pixels.length; i++) pixels[i] = rgba[4 * i] / 255;
    try {
      drawn = wasm.center_digit(pixels, pad.width, pad.height);
    } catch (e) {
      $('draw-result').textContent = `Draw a digit first (${e.message}).`;
      return;
    }
    await renderDrawn();
  }

  async function renderDrawn() {
    const m = model();
    drawGrid($('draw-input'), drawn, 1, 56);
    if (!hasEncoder(m)) {
      $('draw-result').textContent = `A ${m.kind.toUpperCase()} has no encoder, so it cannot encode your drawing: pick a VAE.`;
      $('draw-styles').hidden = true;
      return;
    }
    const digit = (await page.classifier()).classify(drawn)[0];
    if (model() !== m || !drawn) return;
    const labels = m.conditional ? new Uint8Array([digit]) : undefined;
    const enc = m.encode(drawn, labels);
    const posterior = { model: m, mu: enc.mu, logvar: enc.logvar };
    enc.free();
    const r = m.reconstruct(drawn, labels);
    drawGrid($('draw-recon'), r.images, 1, 112);
    const loss = r.losses[0];
    r.free();
    const sd = Array.from(posterior.logvar, (lv) => Math.exp(lv / 2));
    const meanSd = sd.reduce((a, b) => a + b, 0) / sd.length;
    $('draw-result').textContent = `The classifier reads your drawing as a ${digit}${m.conditional ? ', and the conditional VAE encodes it with that label' : ''}. `
      + `Reconstruction loss ${loss.toFixed(1)} (BCE + KL); posterior spread σ ≈ ${meanSd.toFixed(2)} per dimension. Its mean and ±1σ ellipse are marked on the latent map.`;
    const styles = $('draw-styles');
    styles.hidden = !m.conditional;
    if (m.conditional) {
      // The drawing's style (its posterior mean) decoded as every digit.
      const z = new Float32Array(10 * m.latent);
      for (let d = 0; d < 10; d++) z.set(posterior.mu, d * m.latent);
      drawGrid(styles, m.sample(z, Uint8Array.from({ length: 10 }, (_, d) => d)), 10, 36);
    }
    map.posterior = posterior;
    active.add('map'); // the marker lives on the map, so the map is needed now
    if (map.model === m) scheduleMapDraw();
    else await renderMap();
  }

  // ---- when things change ------------------------------------------------------------------

  const renderers = { map: renderMap, manifold: renderManifold, recon: renderRecon };

  async function renderActive() {
    const m = model();
    if (m !== shownModel) {
      shownModel = m;
      map.cursor = null; // a new model has a new map: start at its centre
    }
    await Promise.all([...active].map((name) => renderers[name]?.()));
    if (drawn && active.has('draw') && map.posterior?.model !== m) await renderDrawn();
  }

  function activate(name) {
    if (active.has(name)) return;
    active.add(name);
    guard(() => (renderers[name] ? renderers[name]() : undefined))();
  }

  // Each panel starts its work when it first comes near the viewport.
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      activate(entry.target.dataset.view);
      observer.unobserve(entry.target);
    }
  }, { rootMargin: '100px' });
  for (const name of ['map', 'manifold', 'draw', 'recon']) observer.observe($(`${name}-panel`));

  $('manifold-n').addEventListener('change', guard(renderManifold));
  $('manifold-range').addEventListener('change', guard(renderManifold));
  clearPad();

  return {
    /** The model or the digit changed: redraw every panel that has been shown. */
    refresh: () => renderActive(),
    /** The map cursor [x, y] (map coordinates), or null before the map is drawn. */
    get cursor() { return map.cursor ?? map.pendingCursor; },
    /** Puts the cursor at [x, y] once the map is drawn (a restored URL). */
    setCursor(xy) {
      if (map.data) moveCursor(...xy);
      else map.pendingCursor = xy;
    },
    /** What a training run should also decode as it goes (see www/worker.js). */
    trainingExtras(m) {
      const extras = {};
      if (manifoldRequest?.model === m) {
        trainingRequest = manifoldRequest;
        extras.manifoldZ = manifoldRequest.z;
        extras.manifoldLabels = manifoldRequest.labels;
      }
      if (active.has('recon') && reconSet && hasEncoder(m)) {
        extras.reconImages = reconSet.images;
        extras.reconLabels = m.conditional ? reconSet.labels : null;
      }
      return extras;
    },
    /** Draws the worker's manifold and reconstruction updates; true if `msg` was one. */
    workerMessage(msg) {
      // data-step: the training step the panel shows (for tests and the curious).
      if (msg.manifold) {
        // Unless the reader has since changed the grid (N, R, digit): theirs wins.
        if (trainingRequest && trainingRequest === manifoldRequest) {
          drawGrid(manifoldCanvas, msg.manifold, trainingRequest.n, MANIFOLD_CELL, MANIFOLD_GAP);
          manifoldCanvas.dataset.step = String(msg.step);
        }
        return true;
      }
      if (msg.recon) {
        if (reconSet) drawRecon(msg.recon, msg.losses);
        $('recon').dataset.step = String(msg.step);
        return true;
      }
      return false;
    },
  };
}
