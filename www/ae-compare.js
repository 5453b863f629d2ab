// The page's "Autoencoder beside VAE" panel: the shipped autoencoder (code 3) and the VAE of the
// same latent size, whole (their maps need the encoders), drawn by www/views/ae-vs-vae.js from
// the same random codes; "New codes" draws others.
import { classifier as loadClassifier, latentMap, shippedModel } from './assets.js';
import { mountAeVsVae } from './views/ae-vs-vae.js';

const PAIR = ['ae-z3', 'vae-z3'];

const $ = (id) => document.getElementById(id);

export async function setupAeCompare({ guard }) {
  const [classifier, ...models] = await Promise.all([loadClassifier(), ...PAIR.map(shippedModel)]);
  const maps = await Promise.all(models.map(latentMap));
  const view = mountAeVsVae(['ae', 'vae'].map((side) => ({
    grid: $(`ae-compare-${side}`),
    bars: $(`ae-coverage-${side}`),
    map: $(`ae-map-${side}`),
    caption: $(`ae-caption-${side}`),
  })));
  let seed = 21;
  const draw = () => view.show(models[0], models[1], maps, seed, classifier);
  $('ae-resample').addEventListener('click', guard(() => {
    seed += 2;
    draw();
  }));
  draw();
}
