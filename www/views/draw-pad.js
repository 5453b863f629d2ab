// Draw a digit: a pad for a mouse, finger or pen (or "Use a test digit", for the keyboard). The
// drawing is scaled to fit 20 × 20 and centred by its centre of mass in 28 × 28, as MNIST's digits
// were, read by the classifier, encoded (a cVAE with the digit read as its label) and
// reconstructed; a cVAE also redraws its style as every digit 0–9. The page's Draw panel and
// <latent-lab view="draw"> mount it.
import { classifier, testDigits, wasm } from '../assets.js';
import { drawGrid } from '../draw.js';
import { canvasPoint } from '../dom.js';

const PAD_INK = 20; // stroke width on the 280-pixel pad: about 2 MNIST pixels once scaled to 20 × 20

/**
 * Binds the `pad` canvas and its buttons (`clear`, `useTest`) and shows each drawing on `input`,
 * its reconstruction on `recon`, a cVAE's ten styles on `styles` (cells: {input, recon, styles} in
 * pixels) and a sentence in `result`. `model()` is the model to encode with (`whole()`, when
 * given, a promise of it whole, for a host that draws from a decoder alone); `note` ends the
 * sentence; onEncoded({model, mu, logvar}) and onClear() tell the host (the page marks the map).
 * Returns {redraw()}: encode the last drawing again (the model changed).
 */
export function mountDrawPad({ pad, clear, useTest, input, recon, styles, result, cells, model, whole = null, guard, note = '', onEncoded = () => {}, onClear = () => {} }) {
  const ctx = pad.getContext('2d');
  let drawn = null; // the last drawing, centred as MNIST's digits (784 floats)
  let stroke = null; // the previous point of the stroke being drawn
  let testIndex = 0;

  const blank = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, pad.width, pad.height);
  };
  const ink = (from, to) => {
    Object.assign(ctx, { strokeStyle: '#fff', lineWidth: PAD_INK, lineCap: 'round', lineJoin: 'round' });
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
  };

  async function show() {
    let m = model();
    const image = drawn;
    if (whole && m.capabilities.encoder) m = await whole();
    drawGrid(input, image, 1, cells.input);
    const caps = m.capabilities;
    if (!caps.encoder) {
      result.textContent = `A ${caps.kind.toUpperCase()} has no encoder, so it cannot encode a drawing: pick a VAE or the autoencoder.`;
      styles.hidden = true;
      return;
    }
    const digit = (await classifier()).classify(image)[0];
    if (model() !== m || drawn !== image) return; // something newer is shown
    const labels = caps.conditional ? new Uint8Array([digit]) : undefined;
    const enc = m.encode(image, labels);
    const { mu, logvar } = enc;
    enc.free();
    const r = m.reconstruct(image, labels);
    drawGrid(recon, r.images, 1, cells.recon);
    const loss = r.losses[0];
    r.free();
    const sd = Array.from(logvar, (lv) => Math.exp(lv / 2));
    const meanSd = sd.reduce((a, b) => a + b, 0) / sd.length;
    const mean = `${Array.from(mu.subarray(0, 2), (v) => v.toFixed(2)).join(', ')}${mu.length > 2 ? ', …' : ''}`;
    const read = `The classifier reads your drawing as a ${digit}${caps.conditional ? ', and the conditional VAE encodes it with that label' : ''}. `;
    // An autoencoder's code is a point (log σ² = −∞): it has no spread to report, and its loss is its squared error.
    result.textContent = caps.family === 'ae'
      ? `${read}Reconstruction error ${loss.toFixed(1)} (squared, summed over the pixels on [−1, 1]); code (${mean}).${note}`
      : `${read}Reconstruction loss ${loss.toFixed(1)} (BCE + KL); posterior mean (${mean}), spread σ ≈ ${meanSd.toFixed(2)} per dimension.${note}`;
    styles.hidden = !caps.conditional;
    if (caps.conditional) {
      // The drawing's style (its posterior mean) decoded as every digit.
      const z = new Float32Array(10 * caps.latent);
      for (let d = 0; d < 10; d++) z.set(mu, d * caps.latent);
      drawGrid(styles, m.sample(z, Uint8Array.from({ length: 10 }, (_, d) => d)), 10, cells.styles);
    }
    onEncoded({ model: m, mu, logvar });
  }

  /** The pad's ink (red channel, white on black) → a centred MNIST-style digit → the model. */
  async function readPad() {
    const rgba = ctx.getImageData(0, 0, pad.width, pad.height).data;
    const pixels = new Float32Array(pad.width * pad.height);
    for (let i = 0; i < pixels.length; i++) pixels[i] = rgba[4 * i] / 255;
    const { center_digit: center } = await wasm();
    try {
      drawn = center(pixels, pad.width, pad.height);
    } catch (e) {
      result.textContent = `Draw a digit first (${e.message}).`;
      return;
    }
    await show();
  }

  pad.addEventListener('pointerdown', guard((event) => {
    pad.setPointerCapture(event.pointerId);
    stroke = canvasPoint(pad, event);
    ink(stroke, stroke);
  }));
  pad.addEventListener('pointermove', guard((event) => {
    if (!stroke) return;
    const p = canvasPoint(pad, event);
    ink(stroke, p);
    stroke = p;
  }));
  const endStroke = guard(() => {
    if (!stroke) return undefined;
    stroke = null;
    return readPad();
  });
  pad.addEventListener('pointerup', endStroke);
  pad.addEventListener('pointercancel', endStroke);
  clear.addEventListener('click', guard(() => {
    blank();
    drawn = null;
    styles.hidden = true;
    result.textContent = 'Cleared: draw a digit on the pad.';
    onClear();
  }));
  useTest.addEventListener('click', guard(async () => {
    const set = await testDigits();
    const k = testIndex++ % set.labels.length;
    // A test digit is already in MNIST's format: it goes to the model as it is (centring it again
    // would move it by a fraction of a pixel), and the pad shows it scaled up.
    drawn = set.images.slice(k * 784, (k + 1) * 784);
    drawGrid(pad, drawn, 1, pad.width);
    await show();
  }));
  blank();

  return {
    redraw: () => (drawn ? show() : undefined),
    get drawn() { return drawn; },
  };
}
