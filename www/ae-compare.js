// The page's "Autoencoder beside VAE" panel: www/views/ae-vs-vae.js over the panel's canvases.
import { startAeVsVae } from './views/ae-vs-vae.js';

const $ = (id) => document.getElementById(id);

export function setupAeCompare({ guard }) {
  const sides = ['ae', 'vae'].map((side) => ({
    grid: $(`ae-compare-${side}`),
    bars: $(`ae-coverage-${side}`),
    map: $(`ae-map-${side}`),
    caption: $(`ae-caption-${side}`),
  }));
  return startAeVsVae({ sides, resample: $('ae-resample'), guard });
}
