// The page's "Reconstruction loss" panel: the shipped latent-20 VAE (BCE) and its two siblings
// trained the same way on L2 and L1 (www/weights/vae-z20-l2, vae-z20-l1), whole (reconstructing
// needs the encoder), drawn by www/views/loss-compare.js; "New digits" shows ten others.
import { classifier as loadClassifier, shippedModel, testDigits } from './assets.js';
import { drawLossComparison } from './views/loss-compare.js';

const MODELS = [
  ['vae-z20', 'binary cross-entropy (vae-z20)'],
  ['vae-z20-l2', 'squared error, L2 (vae-z20-l2)'],
  ['vae-z20-l1', 'absolute error, L1 (vae-z20-l1)'],
];

const $ = (id) => document.getElementById(id);

export async function setupLossCompare({ guard }) {
  const [classifier, digits, ...models] = await Promise.all([loadClassifier(), testDigits(), ...MODELS.map(([key]) => shippedModel(key))]);
  const view = { grid: $('loss-grid'), captions: MODELS.map((_, i) => $(`loss-caption-${i}`)) };
  const measured = new Map();
  let start = 0;
  const draw = () => drawLossComparison(view, models, MODELS.map(([, name]) => name), digits, start, classifier, measured);
  $('loss-resample').addEventListener('click', guard(() => {
    start = (start + 10) % 1000;
    draw();
  }));
  draw();
}
