// The page's explorer panels: the latent map (the 10,000 MNIST test digits encoded by the current
// VAE, with a cursor that decodes wherever it points), the manifold grid, the drawing pad (your
// digit encoded, reconstructed and placed on the map) and a row of reconstructions. The map,
// manifold and pad are the view modules the <latent-lab> element mounts too (www/views/).
//
// The test digits (www/data/mnist-test.safetensors.gz, 1.7 MB) are fetched the first time a panel
// that needs them comes into view (or is used), never at page start, and encoded once per model
// object (a model trained here is a new object, so its map is rebuilt).
import { latentMap, testDigits } from './assets.js';
import { whenNear } from './dom.js';
import { drawGrid } from './draw.js';
import { axisNames } from './latent-map.js';
import { mountDrawPad } from './views/draw-pad.js';
import { drawManifold, drawManifoldUpdate } from './views/manifold.js';
import { mountMap } from './views/map.js';

const RECON_COUNT = 8;
const RECON_CELL = 48;

const $ = (id) => document.getElementById(id);

/**
 * Wires the panels. `page` gives: model() the current Model; wholeModel() a promise of it whole
 * (the encoding panels need it; the page may draw from a decoder alone until then); digit() the digit conditional models
 * draw; guard(fn) (errors shown on the page); onChange() (the map cursor moved: update the URL).
 */
export function setupExplorer(page) {
  const { guard } = page;
  const model = () => page.model();
  const active = new Set(); // the panels that have been shown: 'map', 'manifold', 'draw', 'recon'
  let shownModel = null; // the model the panels were last drawn for
  let pendingCursor = null; // a restored cursor, placed once the map is drawn
  // The current model, whole if it has an encoder (the page may draw from its decoder alone until then).
  const encoding = async () => {
    const m = model();
    return m.capabilities.encoder ? page.wholeModel() : m;
  };
  const noEncoder = (m, what) => `A ${m.capabilities.kind.toUpperCase()} has no encoder, so it cannot ${what}`;

  // ---- the latent map ----------------------------------------------------------------------

  const map = mountMap({
    canvas: $('latent-map'),
    digitCanvas: $('map-digit'),
    digitCell: 112,
    readout: $('map-live'),
    legend: $('map-legend'),
    digit: page.digit,
    guard,
    onMove: () => page.onChange(),
  });

  async function renderMap() {
    const m = await encoding();
    const note = $('map-note');
    if (!m.capabilities.encoder) {
      map.clear();
      $('map-body').hidden = true;
      note.textContent = `${noEncoder(m, 'place digits on a map')}: pick a VAE to see its latent space.`;
      return;
    }
    $('map-body').hidden = false;
    if (map.model !== m) note.textContent = 'Encoding the 10,000 MNIST test digits…';
    const data = await latentMap(m);
    if (model() !== m) return;
    const [xName, yName] = axisNames(data);
    $('map-x-label').textContent = `${xName} →`;
    $('map-y-label').textContent = `${yName} →`;
    note.textContent = data.pca
      ? `The ${data.labels.length.toLocaleString('en')} test digits' posterior means (latent ${data.latent}), projected onto their two principal axes. Point, click, drag or use the arrow keys to decode any position on this plane.`
      : `The ${data.labels.length.toLocaleString('en')} test digits' posterior means, one dot each, coloured by digit. Point, click, drag or use the arrow keys to decode any position.`;
    map.show(m, data, pendingCursor ?? (map.model === m ? map.cursor : null));
    pendingCursor = null;
  }

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
    let m = model();
    const { n, R } = manifoldSettings();
    if (m.capabilities.encoder && m.capabilities.latent > 2) m = await page.wholeModel(); // its PCA plane needs the encoder
    const caps = m.capabilities;
    const data = caps.encoder && caps.latent > 2 ? await latentMap(m) : null; // its PCA plane
    if (model() !== m) return;
    const drawn = drawManifold(manifoldCanvas, m, { n, R, digit: page.digit(), map: data });
    manifoldRequest = { model: m, ...drawn };
    $('manifold-caption').textContent = `${n} × ${n} digits: ${drawn.plane}.`;
  }

  // ---- reconstructions ---------------------------------------------------------------------

  let reconSet = null; // {images, labels}: the first test digit of each of 0–7

  async function reconDigits() {
    if (!reconSet) {
      const set = await testDigits();
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
    const m = await encoding();
    if (!m.capabilities.encoder) {
      $('recon-body').hidden = true;
      $('recon-note').textContent = `${noEncoder(m, 'reconstruct a digit')}.`;
      return;
    }
    const { images, labels } = await reconDigits();
    if (model() !== m) return;
    $('recon-body').hidden = false;
    $('recon-note').textContent = m.capabilities.family === 'ae'
      ? 'Top: eight MNIST test digits. Bottom: the autoencoder\'s reconstruction of each, decoded from its code. Under each, its squared error (summed over the pixels on [−1, 1]).'
      : 'Top: eight MNIST test digits. Bottom: the model\'s reconstruction of each, decoded from its posterior mean. Under each, its loss (binary cross-entropy plus KL, in nats).';
    const r = m.reconstruct(images, m.capabilities.conditional ? labels : undefined);
    drawRecon(r.images, r.losses);
    r.free();
  }

  // ---- the drawing pad ---------------------------------------------------------------------

  let drawnFor = null; // the model the drawing was last encoded by
  const drawPad = mountDrawPad({
    pad: $('draw-pad'),
    clear: $('draw-clear'),
    useTest: $('draw-test-digit'),
    input: $('draw-input'),
    recon: $('draw-recon'),
    styles: $('draw-styles'),
    result: $('draw-result'),
    cells: { input: 56, recon: 112, styles: 36 },
    model,
    whole: () => page.wholeModel(),
    guard,
    note: ' Its mean and ±1σ ellipse are marked on the latent map.',
    onEncoded: (posterior) => {
      drawnFor = posterior.model;
      map.setPosterior(posterior);
      active.add('map'); // the marker lives on the map, so the map is needed now
      if (map.model !== posterior.model) guard(renderMap)();
    },
    onClear: () => map.setPosterior(null),
  });

  // ---- when things change ------------------------------------------------------------------

  const renderers = { map: renderMap, manifold: renderManifold, recon: renderRecon };

  async function renderActive() {
    const m = model();
    if (m !== shownModel) {
      shownModel = m;
      map.clear(); // a new model has a new map: start at its centre
    }
    await Promise.all([...active].map((name) => renderers[name]?.()));
    if (drawPad.drawn && active.has('draw') && drawnFor !== m) await drawPad.redraw();
  }

  function activate(name) {
    if (active.has(name)) return;
    active.add(name);
    guard(() => (renderers[name] ? renderers[name]() : undefined))();
  }

  // Each panel starts its work when it first comes near the viewport.
  for (const name of ['map', 'manifold', 'draw', 'recon']) whenNear($(`${name}-panel`), () => activate(name), '100px');

  $('manifold-n').addEventListener('change', guard(renderManifold));
  $('manifold-range').addEventListener('change', guard(renderManifold));

  return {
    /** The model or the digit changed: redraw every panel that has been shown. */
    refresh: () => renderActive(),
    /** `from` (a decoder alone) was replaced by `to`, the same weights whole: what was drawn for one stands for the other. */
    upgraded(from, to) {
      if (shownModel === from) shownModel = to;
      if (manifoldRequest?.model === from) manifoldRequest.model = to;
    },
    /** The map cursor [x, y] (map coordinates), or null before the map is drawn. */
    get cursor() { return map.cursor ?? pendingCursor; },
    /** Puts the cursor at [x, y] once the map is drawn (a restored URL). */
    setCursor(xy) {
      if (map.model) map.moveTo(...xy);
      else pendingCursor = xy;
    },
    /** What a training run should also decode as it goes (see www/worker.js). */
    trainingExtras(m) {
      const extras = {};
      if (manifoldRequest?.model === m) {
        trainingRequest = manifoldRequest;
        extras.manifoldZ = manifoldRequest.z;
        extras.manifoldLabels = manifoldRequest.labels;
      }
      if (active.has('recon') && reconSet && m.capabilities.encoder) {
        extras.reconImages = reconSet.images;
        extras.reconLabels = m.capabilities.conditional ? reconSet.labels : null;
      }
      return extras;
    },
    /** Draws the worker's manifold and reconstruction updates; true if `msg` was one. */
    workerMessage(msg) {
      // data-step: the training step the panel shows (for tests and the curious).
      if (msg.manifold) {
        // Unless the reader has since changed the grid (N, R, digit): theirs wins.
        if (trainingRequest && trainingRequest === manifoldRequest) {
          drawManifoldUpdate(manifoldCanvas, msg.manifold, trainingRequest);
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
