// The latent map's numbers, for the map and manifold views (www/views/) and www/assets.js's cache:
// the MNIST test digits encoded by a VAE (posterior means), the plane they are shown on (the
// latent itself for latent 2, else the two principal axes of the means), the map's window, and
// the conversions between map positions and latent vectors. Drawing is in www/draw.js.

export const PIXELS = 784;
const ENCODE_CHUNK = 1000; // digits per encode call; the page yields between calls so it stays responsive

/** Resolves on the next turn of the event loop. */
const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * The test digits (`{images, labels}`, read once from load_digits' result) encoded by `model`,
 * and the plane to show them on. `Pca` is the wasm module's Pca class. Returns
 * {latent, mu, xy, labels, pca, explained, axes, box}:
 *   mu   n × latent posterior means;   xy   n × 2 map coordinates (x right, y up);
 *   pca  null for latent 2, else the fitted Pca (map position → latent via unproject);
 *   explained  [share of variance of PC1, PC2] or null;
 *   axes  for PCA, the latent unit vectors of the two map axes (to measure a posterior's spread);
 *   box  the square window {cx, cy, half} that holds all but the outermost 0.5% on each side.
 */
export async function buildMap(model, digits, Pca) {
  const { latent, conditional } = model.capabilities;
  const n = digits.labels.length;
  const mu = new Float32Array(n * latent);
  for (let start = 0; start < n; start += ENCODE_CHUNK) {
    const end = Math.min(n, start + ENCODE_CHUNK);
    const images = digits.images.subarray(start * PIXELS, end * PIXELS);
    const enc = model.encode(images, conditional ? digits.labels.subarray(start, end) : undefined);
    mu.set(enc.mu, start * latent);
    enc.free();
    await nextTurn();
  }
  let pca = null;
  let xy = mu;
  let explained = null;
  let axes = null;
  if (latent > 2) {
    pca = Pca.fit(mu, latent);
    xy = pca.project(mu);
    explained = Array.from(pca.explained);
    const ends = pca.unproject(new Float32Array([0, 0, 1, 0, 0, 1]));
    axes = [1, 2].map((k) => Float32Array.from({ length: latent }, (_, i) => ends[k * latent + i] - ends[i]));
  }
  return { latent, mu, xy, labels: digits.labels, pca, explained, axes, box: windowOf(xy) };
}

/** A square window around the points, ignoring the outermost 0.5% along each axis, with a margin. */
function windowOf(xy) {
  const n = xy.length / 2;
  const range = (axis) => {
    const v = Float32Array.from({ length: n }, (_, i) => xy[2 * i + axis]).sort();
    return [v[Math.floor(0.005 * (n - 1))], v[Math.ceil(0.995 * (n - 1))]];
  };
  const [x0, x1] = range(0);
  const [y0, y1] = range(1);
  const half = 0.55 * Math.max(x1 - x0, y1 - y0) || 1;
  return { cx: (x0 + x1) / 2, cy: (y0 + y1) / 2, half };
}

/** Map positions (flattened [n, 2]) → latent vectors (flattened [n, latent]). */
export function toLatent(map, xy) {
  return map.pca ? map.pca.unproject(xy) : Float32Array.from(xy);
}

/**
 * A posterior (mean and log-variance over the latent) as map coordinates: the mean's position,
 * and the standard deviation along each map axis (for PCA, of the diagonal Gaussian projected
 * onto the axis: sqrt(Σ a_i² σ_i²)).
 */
export function posteriorOnMap(map, mu, logvar) {
  const variance = Array.from(logvar, (lv) => Math.exp(lv));
  if (!map.pca) return { x: mu[0], y: mu[1], sx: Math.sqrt(variance[0]), sy: Math.sqrt(variance[1]) };
  const [x, y] = map.pca.project(mu);
  const spread = (a) => Math.sqrt(a.reduce((s, ai, i) => s + ai * ai * variance[i], 0));
  return { x, y, sx: spread(map.axes[0]), sy: spread(map.axes[1]) };
}

/** The index of the test digit whose map position is nearest (x, y). */
export function nearest(map, x, y) {
  let best = 0;
  let bestD = Infinity;
  const { xy } = map;
  for (let i = 0; i < xy.length / 2; i++) {
    const dx = xy[2 * i] - x;
    const dy = xy[2 * i + 1] - y;
    const d = dx * dx + dy * dy;
    if (d < bestD) { bestD = d; best = i; }
  }
  return best;
}

/** The axis captions: "z1" / "z2" for latent 2, else "PC1 (41% of variance)". */
export function axisNames(map) {
  if (!map.pca) return ['z1', 'z2'];
  return map.explained.map((share, k) => `PC${k + 1} (${Math.round(100 * share)}% of variance)`);
}

/**
 * The manifold grid's latent vectors: n × n points over [-R, R]² of the map plane, row by row,
 * with cell (row r, column c) at x = -R + 2R·c/(n-1) (right), y = +R - 2R·r/(n-1) (up), as in the
 * embed's grid view. With a map of a latent > 2 the plane is its PCA plane; without a map (a GAN)
 * it is the first two latent dimensions with the others 0.
 */
export function manifoldLatents(n, R, latent, map = null) {
  const xy = new Float32Array(n * n * 2);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      xy[2 * (r * n + c)] = -R + (2 * R * c) / (n - 1);
      xy[2 * (r * n + c) + 1] = R - (2 * R * r) / (n - 1);
    }
  }
  if (map) return toLatent(map, xy);
  const z = new Float32Array(n * n * latent);
  for (let k = 0; k < n * n; k++) {
    z[k * latent] = xy[2 * k];
    if (latent > 1) z[k * latent + 1] = xy[2 * k + 1];
  }
  return z;
}
