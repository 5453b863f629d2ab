// The manifold: an n × n grid of digits decoded in one batch over [-R, R]² of a latent plane,
// the first axis to the right and the second upward. The page's Manifold panel (on its latent
// map's plane) and <latent-lab view="grid"> (on the first two latent dimensions) draw it.
import { drawGrid } from '../draw.js';
import { axisNames, manifoldLatents } from '../latent-map.js';

export const MANIFOLD_CELL = 28; // canvas pixels per digit: one per MNIST pixel; CSS scales the canvas
export const MANIFOLD_GAP = 2;

/**
 * Draws the grid onto `canvas`. `map` (a latent map of a latent > 2 model, or null) puts it on the
 * map's PCA plane; without one it spans the first two latent dimensions, the others 0. Returns
 * {z, labels, n, plane}: what was decoded (for a training run to decode again) and a sentence
 * saying which plane it shows.
 */
export function drawManifold(canvas, model, { n, R, digit, map = null }) {
  const caps = model.capabilities;
  const onMap = map?.pca ? map : null;
  const z = manifoldLatents(n, R, caps.latent, onMap);
  const labels = caps.conditional ? new Uint8Array(n * n).fill(digit) : null;
  drawGrid(canvas, model.sample(z, labels ?? undefined), n, MANIFOLD_CELL, MANIFOLD_GAP); // one batched decode
  Object.assign(canvas.dataset, { cells: String(n * n), cellSize: String(MANIFOLD_CELL), gap: String(MANIFOLD_GAP) });
  let plane;
  if (onMap) {
    const [xName, yName] = axisNames(onMap);
    plane = `${xName} runs from ${-R} to ${R} left to right and ${yName} bottom to top, on the latent map's plane through the test digits' mean`;
  } else {
    const others = caps.latent - 2;
    const why = caps.encoder ? '' : ' (a GAN has no encoder to find a better plane)';
    plane = `z1 runs from ${-R} to ${R} left to right, z2 from ${-R} to ${R} bottom to top${others > 0 ? `; the other ${others} dimensions are 0${why}` : ''}`;
  }
  canvas.setAttribute('aria-label', `${n} by ${n} grid of decoded digits; ${plane}`);
  return { z, labels, n, plane };
}

/** A training run's decode of the grid `request` (from drawManifold), drawn in its place. */
export function drawManifoldUpdate(canvas, images, request) {
  drawGrid(canvas, images, request.n, MANIFOLD_CELL, MANIFOLD_GAP);
}
