// VAE beside GAN: both models drawn from the same seed (for the conditional pair, the same digit
// in each column), each with its mode-coverage bar: the classifier's histogram of the digits in
// 500 of its samples. A GAN that collapsed onto a few digits shows tall bars beside empty ones.
import { classifier as loadClassifier } from './assets.js';
import { entropy, histogram } from './coverage.js';
import { drawGrid, drawHistogram } from './draw.js';
import { normals } from './random.js';

const PAIRS = {
  plain: ['vae-z20', 'gan-z64'],
  conditional: ['cvae-z2', 'cgan-z64'],
};
const COLS = 10;
const ROWS = 4;
const COVERAGE_SAMPLES = 500;

const $ = (id) => document.getElementById(id);

/** Labels for n samples of a conditional model: digit i % 10 for sample i; none otherwise. */
const cycleLabels = (caps, n) => (caps.conditional ? Uint8Array.from({ length: n }, (_, i) => i % 10) : undefined);

export async function setupCompare({ ensureModel, guard }) {
  const classifier = await loadClassifier();
  let seed = 11;

  async function draw() {
    const pair = $('compare-pair').value;
    const models = await Promise.all(PAIRS[pair].map(ensureModel));
    models.forEach((m, i) => {
      const caps = m.capabilities;
      const side = i === 0 ? 'left' : 'right';
      const n = COLS * ROWS;
      drawGrid($(`compare-${side}`), m.sample(normals(n * caps.latent, seed), cycleLabels(caps, n)), COLS, 36);
      const asked = cycleLabels(caps, COVERAGE_SAMPLES);
      const read = classifier.classify(m.sample(normals(COVERAGE_SAMPLES * caps.latent, seed + 1), asked));
      const counts = histogram(read);
      drawHistogram($(`coverage-${side}`), counts);
      let text = `${caps.kind.toUpperCase()} · class entropy ${entropy(counts).toFixed(2)} of ${Math.log(10).toFixed(2)}`;
      if (asked) {
        const right = read.reduce((k, d, j) => k + (d === asked[j] ? 1 : 0), 0);
        text += ` · ${((100 * right) / COVERAGE_SAMPLES).toFixed(1)}% read as the digit asked for`;
      }
      $(`coverage-${side}-text`).textContent = text;
    });
  }

  $('compare-pair').addEventListener('change', guard(draw));
  $('compare-resample').addEventListener('click', guard(() => {
    seed += 2;
    return draw();
  }));
  await draw();
}
