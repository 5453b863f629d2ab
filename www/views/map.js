// The latent map: the MNIST test digits encoded by a VAE (one dot per posterior mean, coloured by
// digit, with a legend), and a cursor that decodes wherever it points: pointing, clicking,
// dragging or the arrow keys (Shift for bigger steps). A drawn digit's posterior can be marked on
// it. The page's Latent map panel and <latent-lab view="map"> mount it; the numbers are in
// www/latent-map.js.
import { DIGIT_COLORS, drawGrid, drawMap, pixelToMap, renderMapLayer } from '../draw.js';
import { arrowMove, canvasPoint, clamp, frameScheduler, h } from '../dom.js';
import { nearest, posteriorOnMap, toLatent } from '../latent-map.js';

const CURSOR_STEP = 0.04; // one arrow-key press, as a share of the map's half-width (Shift: × 5)

/**
 * Binds the map `canvas`, the decoded digit (`digitCanvas`, `digitCell` pixels), the live
 * `readout` and the `legend` list. `digit()` gives a conditional model's label; `onMove(cursor)`
 * follows every cursor move. Returns the view: show(model, map, cursor?), clear(), moveTo(x, y),
 * setPosterior({model, mu, logvar} | null), redraw(), and the getters model and cursor.
 */
export function mountMap({ canvas, digitCanvas, digitCell, readout, legend, digit, guard, onMove = () => {} }) {
  const state = { model: null, data: null, layer: null, cursor: null, posterior: null };

  legend.replaceChildren(...DIGIT_COLORS.map((color, d) => {
    const swatch = h('span', { className: 'swatch' });
    swatch.style.background = color; // CSSOM, CSP-safe
    return h('li', {}, {}, [swatch, `digit ${d}`]);
  }));

  function draw() {
    const { model, data, cursor } = state;
    if (!data) return;
    const p = state.posterior;
    const posterior = p?.model === model ? posteriorOnMap(data, p.mu, p.logvar) : null;
    drawMap(canvas, state.layer, data.box, { cursor, posterior });
    const labels = model.capabilities.conditional ? new Uint8Array([digit()]) : undefined;
    drawGrid(digitCanvas, model.sample(toLatent(data, new Float32Array(cursor)), labels), 1, digitCell);
    readout.textContent = `Position (${cursor[0].toFixed(2)}, ${cursor[1].toFixed(2)}); the nearest test digit is a ${data.labels[nearest(data, ...cursor)]}.`;
  }
  const redraw = frameScheduler(guard(draw));

  function moveTo(x, y) {
    if (!state.data) return;
    const { cx, cy, half } = state.data.box;
    state.cursor = [clamp(x, cx - half, cx + half), clamp(y, cy - half, cy + half)];
    redraw();
    onMove(state.cursor);
  }

  const fromPointer = (event) => {
    if (!state.data) return;
    moveTo(...pixelToMap(state.data.box, canvas.width, canvas.height, ...canvasPoint(canvas, event)));
  };
  canvas.addEventListener('pointerdown', guard((event) => {
    canvas.setPointerCapture(event.pointerId);
    fromPointer(event);
  }));
  canvas.addEventListener('pointermove', guard(fromPointer)); // hovering decodes too; a finger or pen drags
  canvas.addEventListener('keydown', guard((event) => {
    if (!state.data) return;
    const d = arrowMove(event, state.data.box.half * CURSOR_STEP * (event.shiftKey ? 5 : 1));
    if (!d) return;
    event.preventDefault();
    moveTo(state.cursor[0] + d[0], state.cursor[1] + d[1]);
  }));

  return {
    /** Shows `map` (www/latent-map.js's buildMap of `model`), the cursor at `cursor` or the centre. */
    show(model, map, cursor = null) {
      Object.assign(state, { model, data: map, layer: renderMapLayer(map.xy, map.labels, map.box, canvas.width) });
      canvas.dataset.points = String(map.labels.length);
      state.cursor = cursor ?? [map.box.cx, map.box.cy];
      draw();
    },
    /** No map (a model without an encoder). */
    clear() {
      Object.assign(state, { model: null, data: null, layer: null, cursor: null });
      canvas.dataset.points = '0';
    },
    moveTo,
    setPosterior(posterior) {
      state.posterior = posterior;
      redraw();
    },
    redraw,
    get model() { return state.model; },
    get cursor() { return state.cursor; },
  };
}
