// The page's shareable state in the URL fragment:
//
//   #model=vae-z2&z=0.50,-1.20&digit=3&view=map&at=0.12,-0.80
//
//   model  a shipped model's key (one of assets.js's MODELS: vae-z20, vae-z2, cvae-z2, gan-z64, …)
//   z      the latent sliders, one number per dimension (two decimals, the sliders' step)
//   digit  the digit a conditional model draws (0–9)
//   view   the panel last used: samples, sliders, interp, compare, ae, loss, train, map, manifold, draw, recon
//   at     the latent map's cursor, in map coordinates (z1, z2, or PC1, PC2)
//
// Parsing never throws: an unknown key, a malformed or out-of-range value is left out of the
// result, and the page falls back to its defaults for whatever is missing.

export const VIEWS = ['samples', 'sliders', 'interp', 'compare', 'ae', 'loss', 'train', 'map', 'manifold', 'draw', 'recon'];

const numbers = (text) => {
  const parts = text.split(',');
  const values = parts.map((p) => (p.trim() === '' ? NaN : Number(p)));
  return values.every(Number.isFinite) ? values : null;
};

/** `location.hash` → {model?, z?, digit?, view?, at?}, each present only when valid. */
export function parseFragment(hash, models) {
  const out = {};
  for (const part of String(hash).replace(/^#/, '').split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    let key;
    let value;
    try {
      key = decodeURIComponent(part.slice(0, eq));
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      continue; // a malformed %-escape
    }
    if (key === 'model' && models.includes(value)) out.model = value;
    else if (key === 'z') {
      const z = numbers(value);
      if (z && z.length > 0 && z.length <= 1024) out.z = z;
    } else if (key === 'digit' && /^\d$/.test(value)) out.digit = Number(value);
    else if (key === 'view' && VIEWS.includes(value)) out.view = value;
    else if (key === 'at') {
      const at = numbers(value);
      if (at && at.length === 2) out.at = at;
    }
  }
  return out;
}

/** {model, z, digit, view, at} → "#model=…&z=…" (absent or null fields are left out). */
export function formatFragment({ model, z, digit, view, at }) {
  const parts = [];
  if (model) parts.push(`model=${encodeURIComponent(model)}`);
  if (z) parts.push(`z=${Array.from(z, (v) => v.toFixed(2)).join(',')}`);
  if (digit !== undefined && digit !== null) parts.push(`digit=${digit}`);
  if (view) parts.push(`view=${view}`);
  if (at) parts.push(`at=${at.map((v) => v.toFixed(3)).join(',')}`);
  return `#${parts.join('&')}`;
}
