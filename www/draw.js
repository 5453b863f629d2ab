// Drawing onto canvases: MNIST images (Float32Array of 28×28 values in [0, 1]) and loss curves.

export const SIDE = 28;
export const PIXELS = SIDE * SIDE;
export const GRID_GAP = 2; // pixels between cells of a grid

/**
 * Draws `images` (n × 784 floats) as a grid of `cols` columns, each image scaled to `cell` pixels,
 * white ink on black as in MNIST. The canvas is resized to fit.
 */
export function drawGrid(canvas, images, cols, cell = 56, gap = GRID_GAP) {
  const n = Math.floor(images.length / PIXELS);
  const rows = Math.max(1, Math.ceil(n / cols));
  const w = cols * cell + (cols - 1) * gap;
  const h = rows * cell + (rows - 1) * gap;
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingEnabled = false;
  ctx.fillStyle = '#1a1d24';
  ctx.fillRect(0, 0, w, h);
  const tile = document.createElement('canvas');
  tile.width = tile.height = SIDE;
  const tctx = tile.getContext('2d');
  const img = tctx.createImageData(SIDE, SIDE);
  for (let k = 0; k < n; k++) {
    for (let p = 0; p < PIXELS; p++) {
      const v = Math.round(Math.min(1, Math.max(0, images[k * PIXELS + p])) * 255);
      img.data[4 * p] = img.data[4 * p + 1] = img.data[4 * p + 2] = v;
      img.data[4 * p + 3] = 255;
    }
    tctx.putImageData(img, 0, 0);
    const x = (k % cols) * (cell + gap);
    const y = Math.floor(k / cols) * (cell + gap);
    ctx.drawImage(tile, x, y, cell, cell);
  }
}

/** Draws one or more loss series ({values, color, label}) against step, with min/max labels. */
export function drawCurve(canvas, series) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = '#1a1d24';
  ctx.fillRect(0, 0, w, h);
  let lo = Infinity;
  let hi = -Infinity;
  let n = 0;
  for (const s of series) {
    n = Math.max(n, s.values.length);
    for (const v of s.values) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (n < 2 || !Number.isFinite(lo) || !Number.isFinite(hi)) return;
  const span = hi - lo || 1;
  const pad = 24;
  // At most about one point per pixel column, however long the run.
  const stride = Math.max(1, Math.ceil(n / (w - pad)));
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#9aa3b2';
  ctx.fillText(hi.toFixed(1), 2, pad - 6);
  ctx.fillText(lo.toFixed(1), 2, h - 4);
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let i = 0; i < s.values.length; i += stride) {
      const x = pad + ((w - pad - 4) * i) / (n - 1);
      const y = pad + ((h - 2 * pad) * (hi - s.values[i])) / span;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
    ctx.fillStyle = s.color;
    ctx.fillText(s.label, w - 120, 14 + 13 * k);
  });
}
