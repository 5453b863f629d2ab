// Reconstruction loss, compared: the same MNIST test digits rebuilt by VAEs that differ only in
// the loss they trained on (binary cross-entropy, squared error L2, absolute error L1), one row
// each under the originals, and beside each model how sharp its reconstructions are: the Fréchet
// distance, in the digit classifier's features, from 1,000 of its reconstructions to the 1,000
// digits they rebuild (lower is closer to the real strokes; a blurred average scores higher).
// The page's "Reconstruction loss" panel mounts it.
import { drawGrid } from '../draw.js';

export const PIXELS = 784;
const SHOWN = 10;
const MEASURED = 1000;

/**
 * Draws onto `grid` the `SHOWN` digits from index `start` of `digits` ({images, labels}) and each
 * model's reconstructions of them, and writes each model's caption (`captions[i]`, from
 * `names[i]`, with its Fréchet distance over the first `MEASURED` digits, measured once per model
 * and kept in `measured`). Returns the distances, in the models' order.
 */
export function drawLossComparison({ grid, captions }, models, names, digits, start, classifier, measured) {
  const shown = digits.images.subarray(start * PIXELS, (start + SHOWN) * PIXELS);
  const rows = [shown];
  const distances = models.map((m, i) => {
    const r = m.reconstruct(shown);
    rows.push(r.images);
    r.free();
    if (!measured.has(m)) {
      const originals = digits.images.subarray(0, MEASURED * PIXELS);
      const rebuilt = m.reconstruct(originals);
      measured.set(m, classifier.frechet_distance(rebuilt.images, originals));
      rebuilt.free();
    }
    const fd = measured.get(m);
    captions[i].textContent = `Row ${i + 2}: ${names[i]} · Fréchet distance of ${MEASURED.toLocaleString('en')} reconstructions to their originals ${fd.toFixed(1)}`;
    captions[i].dataset.frechetDistance = fd.toFixed(3);
    return fd;
  });
  const all = new Float32Array(rows.length * SHOWN * PIXELS);
  rows.forEach((r, i) => all.set(r, i * SHOWN * PIXELS));
  drawGrid(grid, all, SHOWN, 36);
  return distances;
}
