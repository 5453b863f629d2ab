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

/**
 * Draws a class histogram (10 counts) as bars labelled 0–9, with a dashed line where every digit
 * would stand if all ten were equally common.
 */
export function drawHistogram(canvas, counts) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  ctx.fillStyle = '#1a1d24';
  ctx.fillRect(0, 0, w, h);
  const n = counts.reduce((a, b) => a + b, 0);
  if (n === 0) return;
  const top = 6;
  const base = h - 16;
  const slot = w / counts.length;
  // Scale so the even share sits at half height, and no bar leaves the canvas.
  const scale = (base - top) / Math.max(2 / counts.length, ...counts.map((c) => c / n));
  ctx.font = '11px system-ui, sans-serif';
  ctx.textAlign = 'center';
  counts.forEach((c, d) => {
    const bh = (c / n) * scale;
    ctx.fillStyle = '#5fb0e8';
    ctx.fillRect(d * slot + 3, base - bh, slot - 6, bh);
    ctx.fillStyle = '#9aa3b2';
    ctx.fillText(String(d), d * slot + slot / 2, h - 3);
  });
  const even = base - scale / counts.length;
  ctx.strokeStyle = '#f0a04b';
  ctx.setLineDash([4, 3]);
  ctx.beginPath();
  ctx.moveTo(0, even);
  ctx.lineTo(w, even);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.textAlign = 'start';
}

/** The 2-D latent pad: a grid over [−range, range]² with a dot at (z1, z2); z2 grows upward. */
export function drawPad(canvas, z, range) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  ctx.fillStyle = '#0b0d12';
  ctx.fillRect(0, 0, w, h);
  ctx.strokeStyle = '#2b3140';
  for (let v = -Math.floor(range); v <= range; v++) {
    const x = ((v + range) / (2 * range)) * w;
    const y = ((range - v) / (2 * range)) * h;
    ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h); ctx.stroke();
    ctx.beginPath(); ctx.moveTo(0, y); ctx.lineTo(w, y); ctx.stroke();
  }
  ctx.fillStyle = '#f0a04b';
  ctx.beginPath();
  ctx.arc(((z[0] + range) / (2 * range)) * w, ((range - z[1]) / (2 * range)) * h, 5, 0, 2 * Math.PI);
  ctx.fill();
}

// ---- the latent map ------------------------------------------------------------------------

/**
 * One colour per digit class on the latent map. Okabe and Ito's colour-blind-safe palette
 * ("Color Universal Design", 2008) gives eight; its black is swapped for white because the map is
 * dark, and Paul Tol's grey (#999999) and purple (#AA3377, from his "bright" scheme) are the two
 * extras. No ten colours stay distinct under every colour-vision deficiency, so the map never
 * relies on colour alone: the legend names each colour's digit, each class's numeral is drawn at
 * its centre on the map, and the readout names the nearest test digit.
 */
export const DIGIT_COLORS = [
  '#E69F00', // 0 orange
  '#56B4E9', // 1 sky blue
  '#009E73', // 2 bluish green
  '#F0E442', // 3 yellow
  '#0072B2', // 4 blue
  '#D55E00', // 5 vermillion
  '#CC79A7', // 6 reddish purple
  '#FFFFFF', // 7 white (Okabe–Ito's black, on a dark map)
  '#999999', // 8 grey (Tol)
  '#AA3377', // 9 purple (Tol, bright)
];

/** Map coordinates (x right, y up) → canvas pixels, for a square window `box` {cx, cy, half}. */
export function mapToPixel(box, width, height, x, y) {
  return [
    width / 2 + ((x - box.cx) / box.half) * (width / 2),
    height / 2 - ((y - box.cy) / box.half) * (height / 2),
  ];
}

/** Canvas pixels → map coordinates; the inverse of mapToPixel. */
export function pixelToMap(box, width, height, px, py) {
  return [
    box.cx + ((px - width / 2) / (width / 2)) * box.half,
    box.cy - ((py - height / 2) / (height / 2)) * box.half,
  ];
}

/**
 * The points of a latent map (xy: n × 2 map coordinates, labels: n digits) drawn once onto an
 * offscreen canvas of `size` pixels, so that moving the cursor only has to copy it. Each class's
 * numeral sits at the class's mean position, outlined so it reads on any colour.
 */
export function renderMapLayer(xy, labels, box, size) {
  const layer = document.createElement('canvas');
  layer.width = layer.height = size;
  const ctx = layer.getContext('2d');
  ctx.fillStyle = '#1a1d24';
  ctx.fillRect(0, 0, size, size);
  ctx.strokeStyle = '#2b3140';
  ctx.beginPath();
  const [ox, oy] = mapToPixel(box, size, size, 0, 0);
  ctx.moveTo(ox, 0); ctx.lineTo(ox, size); ctx.moveTo(0, oy); ctx.lineTo(size, oy);
  ctx.stroke();
  const n = labels.length;
  const sum = Array.from({ length: 10 }, () => [0, 0, 0]);
  ctx.globalAlpha = 0.75;
  for (let i = 0; i < n; i++) {
    const d = labels[i];
    const [px, py] = mapToPixel(box, size, size, xy[2 * i], xy[2 * i + 1]);
    ctx.fillStyle = DIGIT_COLORS[d];
    ctx.fillRect(px - 1, py - 1, 2, 2);
    sum[d][0] += xy[2 * i];
    sum[d][1] += xy[2 * i + 1];
    sum[d][2] += 1;
  }
  ctx.globalAlpha = 1;
  ctx.font = 'bold 18px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  ctx.lineWidth = 4;
  sum.forEach(([sx, sy, k], d) => {
    if (!k) return;
    const [px, py] = mapToPixel(box, size, size, sx / k, sy / k);
    ctx.strokeStyle = '#000';
    ctx.strokeText(String(d), px, py);
    ctx.fillStyle = DIGIT_COLORS[d];
    ctx.fillText(String(d), px, py);
  });
  return layer;
}

/**
 * The map: its point layer, the cursor (a cross at `cursor` [x, y]) and, for a drawn digit, its
 * posterior: a marker at the mean and an ellipse of ±1 standard deviation (`posterior` {x, y, sx, sy}).
 */
export function drawMap(canvas, layer, box, { cursor = null, posterior = null } = {}) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  ctx.drawImage(layer, 0, 0, w, h);
  if (posterior) {
    const [px, py] = mapToPixel(box, w, h, posterior.x, posterior.y);
    const rx = Math.max(2, (posterior.sx / box.half) * (w / 2));
    const ry = Math.max(2, (posterior.sy / box.half) * (h / 2));
    ctx.fillStyle = 'rgba(240, 160, 75, 0.25)';
    ctx.strokeStyle = '#f0a04b';
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.ellipse(px, py, rx, ry, 0, 0, 2 * Math.PI);
    ctx.fill();
    ctx.stroke();
    ctx.fillStyle = '#f0a04b';
    ctx.beginPath();
    ctx.arc(px, py, 4, 0, 2 * Math.PI);
    ctx.fill();
  }
  if (cursor) {
    const [px, py] = mapToPixel(box, w, h, cursor[0], cursor[1]);
    ctx.lineWidth = 3;
    ctx.strokeStyle = '#000';
    const cross = () => {
      ctx.beginPath();
      ctx.moveTo(px - 8, py); ctx.lineTo(px + 8, py);
      ctx.moveTo(px, py - 8); ctx.lineTo(px, py + 8);
      ctx.stroke();
    };
    cross();
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = '#fff';
    cross();
  }
}
