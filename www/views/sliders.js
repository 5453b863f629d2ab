// The latent sliders: one labelled range input per latent dimension, the digit they decode, and
// for a latent-2 model a 2-D pad (drag with a mouse, pen or finger, or the arrow keys) bound to
// the same two values. The page's Latent sliders panel and <latent-lab view="sliders"> mount it.
import { drawGrid, drawPad } from '../draw.js';
import { arrowMove, clamp, frameScheduler, h } from '../dom.js';

export const SLIDER_RANGE = 3; // ±3 standard deviations of the prior
const PAD_STEP = 0.1; // one arrow-key press on the pad (Shift: 0.5)

/**
 * Builds the sliders into `box` (replacing what it held) and decodes them onto `canvas` (one digit
 * of `cell` pixels) by `model()` (the current Model: it may be replaced by one of the same latent
 * size, e.g. after training). `pad` (a canvas, or null) is bound for a latent-2 model. `step` is one
 * slider step; `idPrefix`, if given, names each input `${idPrefix}${i}`; `labels()` gives a conditional
 * model's digit label; `onChange(z)` follows every change; listeners end with `signal`.
 * Returns {z, set(values), draw()}.
 */
export function mountSliders({ box, canvas, cell, pad = null, model, step, idPrefix = null, labels, guard, signal, onChange = () => {} }) {
  const { latent } = model().capabilities;
  const z = new Float32Array(latent);
  const decimals = Math.max(0, Math.round(-Math.log10(step)));
  const inputs = [];
  const outputs = [];

  const draw = () => {
    drawGrid(canvas, model().sample(z, labels()), 1, cell);
    if (pad && latent === 2) drawPad(pad, z, SLIDER_RANGE);
    if (latent <= 4) canvas.setAttribute('aria-label', `The digit decoded at z = (${Array.from(z, (v) => v.toFixed(decimals)).join(', ')})`);
  };
  const schedule = frameScheduler(guard(draw));
  const changed = () => {
    schedule();
    onChange(z);
  };

  box.replaceChildren();
  for (let i = 0; i < latent; i++) {
    const input = h('input', { type: 'range', min: -SLIDER_RANGE, max: SLIDER_RANGE, step, value: 0 }, {
      'aria-label': `Latent dimension ${i + 1} of ${latent}`,
    });
    if (idPrefix) input.id = `${idPrefix}${i}`;
    const out = h('output', { className: 'slider-value', textContent: (0).toFixed(decimals) }, { 'aria-hidden': 'true' });
    input.addEventListener('input', guard(() => {
      z[i] = Number(input.value);
      out.textContent = z[i].toFixed(decimals);
      changed();
    }), { signal });
    inputs.push(input);
    outputs.push(out);
    box.append(h('label', { className: 'slider' }, {}, [h('span', { className: 'slider-name', textContent: `z${i + 1}` }), input, out]));
  }

  /** Sets the first values.length dimensions, clamped to the range and rounded to the step. */
  const set = (values) => {
    Array.from(values).forEach((v, i) => {
      z[i] = Math.round(clamp(v, -SLIDER_RANGE, SLIDER_RANGE) / step) * step;
      inputs[i].value = String(z[i]);
      outputs[i].textContent = z[i].toFixed(decimals);
    });
    changed();
  };

  if (pad && latent === 2) {
    const fromPointer = (event) => {
      const rect = pad.getBoundingClientRect();
      const fx = clamp((event.clientX - rect.left) / rect.width, 0, 1);
      const fy = clamp((event.clientY - rect.top) / rect.height, 0, 1);
      set([(fx * 2 - 1) * SLIDER_RANGE, (1 - fy * 2) * SLIDER_RANGE]); // up is +z2, as in the manifold
    };
    pad.addEventListener('pointerdown', guard((event) => {
      pad.setPointerCapture(event.pointerId);
      fromPointer(event);
    }), { signal });
    pad.addEventListener('pointermove', guard((event) => {
      if (pad.hasPointerCapture(event.pointerId)) fromPointer(event);
    }), { signal });
    pad.addEventListener('keydown', guard((event) => {
      const d = arrowMove(event, event.shiftKey ? 0.5 : PAD_STEP);
      if (!d) return;
      event.preventDefault();
      set([z[0] + d[0], z[1] + d[1]]);
    }), { signal });
  }
  return { z, set, draw };
}
