// The autoencoder beside the VAE, the tutorials' point made visible: the same codes drawn from
// N(0, I) decoded by each (with the classifier's histogram of the digits they make), and each
// model's latent map (the test digits' codes; a code of 3 shown on its two principal axes) with
// those random codes marked on it. Nothing pulls an autoencoder's codes towards N(0, I), so most
// random codes land between or beyond its clusters and decode to no digit; the VAE's KL term packed
// its codes around the origin, so a random code decodes to something digit-like. The page's
// "Autoencoder beside VAE" panel and <latent-lab view="ae-vs-vae"> mount it (`startAeVsVae`).
import { classifier as loadClassifier, latentMap, shippedModel } from '../assets.js';
import { entropy, histogram } from '../coverage.js';
import { drawGrid, drawHistogram, drawMap, mapToPixel, renderMapLayer } from '../draw.js';
import { normals } from '../random.js';

/** The shipped pair: the same code size (3), so the same random codes. */
export const AE_PAIR = ['ae-z3', 'vae-z3'];
const FIRST_SEED = 21;
const COLS = 10;
const ROWS = 3;
const COVERAGE_SAMPLES = 500;
const MARKED = 200; // random codes marked on each map

/** Where codes (flattened [n, latent]) fall on `map`'s plane (flattened [n, 2]). */
const onPlane = (map, z) => (map.pca ? map.pca.project(z) : z);

/**
 * `sides`: [{grid, bars, map, caption}] for the autoencoder (first) and the VAE, each a canvas but
 * the caption. Returns {show(ae, vae, [aeMap, vaeMap], seed, classifier)} (the maps: www/latent-map.js's buildMap), drawing both sides from
 * codes of `seed`; the two models must share a latent size, so the codes are the same numbers.
 */
export function mountAeVsVae(sides) {
  return {
    show(ae, vae, maps, seed, classifier) {
      const latent = ae.capabilities.latent;
      if (vae.capabilities.latent !== latent) throw new Error(`the autoencoder's code has ${latent} numbers and the VAE's ${vae.capabilities.latent}: the same codes need the same size`);
      const shown = normals(COLS * ROWS * latent, seed);
      const judged = normals(COVERAGE_SAMPLES * latent, seed + 1);
      [ae, vae].forEach((m, i) => {
        const side = sides[i];
        const map = maps[i];
        drawGrid(side.grid, m.sample(shown), COLS, 36);
        const counts = histogram(classifier.classify(m.sample(judged)));
        drawHistogram(side.bars, counts);
        const xy = onPlane(map, normals(MARKED * latent, seed));
        drawMap(side.map, renderMapLayer(map.xy, map.labels, map.box, side.map.width), map.box);
        const ctx = side.map.getContext('2d');
        ctx.strokeStyle = '#000';
        ctx.lineWidth = 1.5;
        for (let k = 0; k < xy.length; k += 2) {
          const [px, py] = mapToPixel(map.box, side.map.width, side.map.height, xy[k], xy[k + 1]);
          ctx.beginPath();
          ctx.arc(px, py, 3, 0, 2 * Math.PI);
          ctx.stroke();
        }
        side.bars.dataset.entropy = entropy(counts).toFixed(4);
        side.caption.textContent = `${m.capabilities.kind.toUpperCase()}, code ${latent} · class entropy of ${COVERAGE_SAMPLES} random codes' digits `
          + `${entropy(counts).toFixed(2)} of ${Math.log(10).toFixed(2)} · circles: ${MARKED} of the codes on the map`;
      });
    },
  };
}

/**
 * Loads the shipped pair whole (their maps need the encoders), their maps and the classifier, and
 * draws them onto `sides` (see mountAeVsVae); `resample` (a button) draws other codes. Nothing is
 * drawn once `live()` turns false (the element was re-rendered meanwhile).
 */
export async function startAeVsVae({ sides, resample, guard, live = () => true }) {
  const [classifier, ...models] = await Promise.all([loadClassifier(), ...AE_PAIR.map(shippedModel)]);
  const maps = await Promise.all(models.map(latentMap));
  if (!live()) return;
  const view = mountAeVsVae(sides);
  let seed = FIRST_SEED;
  resample.addEventListener('click', guard(() => {
    seed += 2;
    view.show(models[0], models[1], maps, seed, classifier);
  }));
  view.show(models[0], models[1], maps, seed, classifier);
}
