// The interpolation strip: digits decoded along the straight line between two latent vectors.
// The page's Interpolation panel and <latent-lab view="interpolate"> draw it.
import { drawGrid } from '../draw.js';

/**
 * Draws `steps` frames from zA to zB (a conditional model's of `digit`) as one row of `cell`-pixel
 * digits onto `canvas`, and returns the frames (steps × 784; the ends equal sample(zA), sample(zB)).
 */
export function drawInterpolation(canvas, model, { zA, zB, steps, digit, cell }) {
  const frames = model.interpolate(zA, zB, steps, model.capabilities.conditional ? digit : undefined);
  drawGrid(canvas, frames, steps, cell);
  canvas.dataset.frames = String(steps);
  return frames;
}
