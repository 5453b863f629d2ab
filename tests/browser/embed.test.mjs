// The <latent-lab> embed (www/embed.js) as a blog post uses it: www/embed-example.html served
// under a strict Content-Security-Policy, in headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { canvasStats, checkManifoldCorners, launch, openPage, sliderCollisions } from './harness.mjs';

// What a careful blog would send: no inline script or style, no eval; only the wasm is allowed
// to compile ('wasm-unsafe-eval').
const CSP = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; "
  + "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'";
const EXAMPLE = 'www/embed-example.html';
const TIMEOUT = 90_000; // the wasm, and the weights, on a busy 2-core machine

let env;
before(async () => { env = await launch({ headers: { 'content-security-policy': CSP } }); });
after(async () => { await env?.close(); });

/** harness.openPage, with CSP violations reported as console errors too. */
function openWith(path, setup = async () => {}) {
  return openPage(env, path, async (page) => {
    await page.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) => {
        console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
      });
    });
    await setup(page);
  });
}

/** Waits until the <latent-lab> at `sel` has drawn its canvas or shown an error. */
async function settled(page, sel) {
  // An element loads its model once it is near the viewport (loading="lazy", the default).
  await page.locator(sel).first().scrollIntoViewIfNeeded();
  return page.waitForFunction((s) => {
    const el = document.querySelector(s);
    const root = el?.shadowRoot;
    if (!root || el.hasAttribute('aria-busy')) return false;
    const alert = root.querySelector('[role=alert]');
    if (alert && !alert.hidden) return true;
    const c = root.querySelector('canvas');
    return !!c && c.width > 0;
  }, sel, { timeout: TIMEOUT });
}

// The example's three elements (by model too, so the broken elements of the last test don't match).
const VIEWS = [
  'latent-lab[view=sliders][model=vae-z2]',
  'latent-lab[view=grid][model=vae-z2]',
  'latent-lab[view=interpolate][model=vae-z20]',
];

/** canvasStats for a canvas inside a <latent-lab>'s shadow root. */
const stats = (page, hostSel, canvasSel = 'canvas') => canvasStats(page, canvasSel, hostSel);

const errorText = (page, sel) => page.evaluate((s) => {
  const a = document.querySelector(s).shadowRoot.querySelector('[role=alert]');
  return a && !a.hidden ? a.textContent : null;
}, sel);

async function assertInked(page, sel) {
  assert.equal(await errorText(page, sel), null, `${sel} shows an error`);
  const s = await stats(page, sel);
  assert.ok(s.lit / s.total > 0.03, `${sel} is nearly blank: ${s.lit}/${s.total} lit`);
  assert.ok(s.lit / s.total < 0.6, `${sel} is mostly lit: ${s.lit}/${s.total}`);
}

test('the CSP header is enforced, and a violation is caught as a console error', async () => {
  // Guards the next test: if the header were missing or violations went unreported, "no
  // console errors under CSP" would prove nothing.
  const { page, problems } = await openWith(EXAMPLE);
  const header = (await page.request.get(env.server.url + EXAMPLE)).headers()['content-security-policy'];
  assert.equal(header, CSP);
  await page.evaluate(() => {
    const d = document.createElement('div');
    d.setAttribute('style', 'color: red'); // blocked by style-src 'self'
    document.body.append(d);
  });
  await page.waitForTimeout(200);
  assert.ok(problems.some((p) => /style|CSP|Content Security Policy/i.test(p)), `no violation reported: ${problems}`);
  await page.close();
});

test('under a strict CSP, all three views render, sharing one wasm instance and one download per model', async () => {
  const requests = [];
  const { page, problems } = await openWith(EXAMPLE, async (p) => {
    p.on('request', (r) => requests.push(new URL(r.url()).pathname));
    // Init scripts run through the DevTools protocol, not the page, so the CSP does not apply.
    await p.addInitScript(() => {
      const counts = { instantiate: 0, instantiateStreaming: 0 };
      for (const name of Object.keys(counts)) {
        const original = WebAssembly[name];
        WebAssembly[name] = function (...args) {
          counts[name]++;
          return original.apply(this, args);
        };
      }
      // The globals the page starts with; anything the embed adds shows up against this list.
      const names = new Set(Object.getOwnPropertyNames(globalThis));
      Object.defineProperty(globalThis, '__embedTest', { value: { counts, names }, enumerable: false });
    });
  });
  for (const sel of VIEWS) await settled(page, sel);
  for (const sel of VIEWS) await assertInked(page, sel);

  const wasm = await page.evaluate(() => globalThis.__embedTest.counts);
  assert.equal(wasm.instantiate + wasm.instantiateStreaming, 1, `wasm instantiated ${JSON.stringify(wasm)}`);
  const count = (suffix) => requests.filter((p) => p.endsWith(suffix)).length;
  // Three views that only sample: the light module, once, and never the whole one.
  assert.equal(count('/sampler_bg.wasm'), 1, 'light module downloads');
  assert.equal(count('/latent_lab_bg.wasm') + count('/latent_lab_relaxed_bg.wasm'), 0, 'whole module downloads (either build)');
  // Views that only decode fetch the decoder alone, once per model however many elements use it.
  assert.equal(count('/weights/vae-z2.decoder.safetensors'), 1, 'vae-z2 downloads (two elements use it)');
  assert.equal(count('/weights/vae-z20.decoder.safetensors'), 1, 'vae-z20 downloads');
  assert.equal(requests.filter((p) => p.endsWith('.safetensors')).length, 2, `weights requested: ${requests}`);

  // No globals: the page's own properties are the ones it started with (plus the test's).
  const added = await page.evaluate(() => Object.getOwnPropertyNames(globalThis)
    .filter((n) => !globalThis.__embedTest.names.has(n) && n !== '__embedTest'));
  assert.deepEqual(added, [], `globals added: ${added}`);
  assert.equal(await page.evaluate(() => typeof customElements.get('latent-lab')), 'function');
  assert.deepEqual(problems, []);
  await page.close();
});

test('the grid view has n×n cells, and its corners are sample() at (-R, +R) and (+R, -R)', async () => {
  const { page, problems } = await openWith(EXAMPLE);
  const sel = VIEWS[1];
  await settled(page, sel);
  const R = Number(await page.getAttribute(sel, 'range') ?? 2.5);
  const r = await checkManifoldCorners(page, 'canvas[data-cells]', { host: sel, R });
  assert.equal(r.n, 12, 'n="12" gives 12 × 12 cells');

  // Without n the grid is 20 × 20.
  await page.evaluate(() => {
    const el = document.createElement('latent-lab');
    el.setAttribute('view', 'grid');
    el.setAttribute('model', 'vae-z2');
    el.id = 'default-grid';
    document.body.append(el);
  });
  await settled(page, '#default-grid');
  assert.equal(await page.evaluate(() => document.querySelector('#default-grid').shadowRoot
    .querySelector('canvas').dataset.cells), '400');
  await assertInked(page, '#default-grid');
  assert.deepEqual(problems, []);
  await page.close();
});

test('keyboard only: Tab reaches a labelled slider, and ArrowRight moves it and redraws the digit', async () => {
  const { page, problems } = await openPage(env, EXAMPLE);
  const sel = VIEWS[0];
  for (const s of VIEWS) await settled(page, s);

  // Every control in every element is keyboard-reachable and has an accessible name.
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('latent-lab')]
    .flatMap((el) => [...el.shadowRoot.querySelectorAll('input, button, [tabindex]')])
    .filter((c) => !(c.getAttribute('aria-label') ?? '').trim() || c.tabIndex < 0)
    .map((c) => c.outerHTML));
  assert.deepEqual(unlabelled, []);

  const focused = () => page.evaluate(() => {
    let a = document.activeElement;
    let host = null;
    while (a?.shadowRoot?.activeElement) { host = a; a = a.shadowRoot.activeElement; }
    return { host: host?.getAttribute('view') ?? null, tag: a?.tagName, type: a?.type ?? null,
      label: a?.getAttribute('aria-label') ?? null, value: a?.value ?? null };
  });
  let f;
  for (let i = 0; i < 10; i++) {
    await page.keyboard.press('Tab');
    f = await focused();
    if (f.type === 'range') break;
  }
  assert.equal(f.type, 'range', `Tab never reached a slider: ${JSON.stringify(f)}`);
  assert.equal(f.host, 'sliders');
  assert.match(f.label, /^Latent dimension 1 of 2$/);

  const before = await stats(page, sel, 'canvas.digit');
  assert.ok(before.lit > 0, 'the digit is blank');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  await page.waitForTimeout(150); // the redraw waits for an animation frame
  const moved = await focused();
  assert.ok(Math.abs(Number(moved.value) - Number(f.value) - 0.2) < 1e-9, `value ${f.value} → ${moved.value}`);
  const after = await stats(page, sel, 'canvas.digit');
  assert.notEqual(after.hash, before.hash, 'the digit did not change when the slider moved');
  assert.ok(after.lit > 0, 'the digit went blank');
  assert.deepEqual(problems, []);
  await page.close();
});

test('a bad model or view name shows a readable error in that element; the others still render', async () => {
  const { page, problems } = await openWith(EXAMPLE, (p) => p.route(`**/${EXAMPLE}`, async (route) => {
    // The example post, with two broken elements ahead of the good ones.
    const body = (await (await route.fetch()).text()).replace('<article>',
      '<article><latent-lab id="bad-model" view="grid" model="no-such-model"></latent-lab>'
      + '<latent-lab id="bad-view" view="nonsense" model="vae-z2"></latent-lab>');
    await route.fulfill({ body, contentType: 'text/html; charset=utf-8', headers: { 'content-security-policy': CSP } });
  }));
  for (const s of ['#bad-model', '#bad-view', ...VIEWS]) await settled(page, s);
  assert.match(await errorText(page, '#bad-model'), /unknown model "no-such-model".*vae-z20, vae-z2/);
  assert.match(await errorText(page, '#bad-view'), /unknown view "nonsense".*sliders, grid, interpolate/);
  assert.equal(await page.evaluate(() => document.querySelector('#bad-model').shadowRoot.querySelector('canvas')), null);
  for (const s of VIEWS) await assertInked(page, s);
  assert.deepEqual(problems, []);
  await page.close();
});

test('on a phone-sized screen it fits its container, honours width, and the pad follows a drag', async () => {
  const { page, problems } = await openWith(EXAMPLE, (p) => p.setViewportSize({ width: 375, height: 700 }));
  for (const s of VIEWS) await settled(page, s);
  // Nothing wider than the screen, and each element as wide as the article column.
  const layout = await page.evaluate(() => ({
    scrollWidth: document.scrollingElement.scrollWidth,
    column: document.querySelector('article').clientWidth,
    widths: [...document.querySelectorAll('latent-lab')].map((el) => el.getBoundingClientRect().width),
    canvases: [...document.querySelectorAll('latent-lab')].flatMap((el) =>
      [...el.shadowRoot.querySelectorAll('canvas')].map((c) => c.getBoundingClientRect().right)),
  }));
  assert.ok(layout.scrollWidth <= 375, `the page scrolls sideways: ${layout.scrollWidth}px`);
  for (const w of layout.widths) assert.equal(Math.round(w), layout.column);
  for (const r of layout.canvases) assert.ok(r <= 375, `a canvas overflows the screen: right edge ${r}`);
  // Each slider's name and value stay readable beside its track.
  const sliders = await sliderCollisions(page, '.sliders', VIEWS[0]);
  assert.equal(sliders.count, 2);
  assert.deepEqual(sliders.problems, []);

  // width="240": the element's frame is 240 px wide (set through the CSSOM, so no CSP report).
  const framed = await page.evaluate(() => {
    const el = document.querySelector('latent-lab[view=interpolate]');
    el.setAttribute('width', '240');
    return el.shadowRoot.querySelector('.frame').getBoundingClientRect().width;
  });
  assert.equal(Math.round(framed), 240);

  // The latent-2 pad: no browser panning on touch, and a drag to its top-right corner sets
  // z1 and z2 near +3.
  const sel = VIEWS[0];
  const pad = page.locator(`${sel} >> canvas.pad`);
  assert.equal(await pad.evaluate((c) => getComputedStyle(c).touchAction), 'none');
  await pad.scrollIntoViewIfNeeded();
  const box = await pad.boundingBox();
  const before = await stats(page, sel, 'canvas.digit');
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.95, box.y + box.height * 0.05, { steps: 5 });
  await page.mouse.up();
  await page.waitForTimeout(150);
  const z = await page.locator(`${sel} >> input[type=range]`).evaluateAll((xs) => xs.map((x) => Number(x.value)));
  assert.ok(z[0] > 2 && z[1] > 2, `a drag to the top-right gave z = (${z})`);
  assert.notEqual((await stats(page, sel, 'canvas.digit')).hash, before.hash, 'the digit did not follow the pad');
  assert.deepEqual(problems, []);
  await page.close();
});

test('under the strict CSP, the map, draw and train views work and the test digits download once', async () => {
  const requests = [];
  const { page, problems } = await openWith(EXAMPLE, async (p) => {
    p.on('request', (r) => requests.push(new URL(r.url()).pathname));
    await p.setViewportSize({ width: 900, height: 900 });
  });
  for (const s of VIEWS) await settled(page, s);
  assert.equal(requests.filter((r) => r.endsWith('mnist-test.safetensors.gz')).length, 0, 'the example post fetched the test digits');
  await page.evaluate(() => {
    const add = (id, attrs) => {
      const el = document.createElement('latent-lab');
      el.id = id;
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      document.querySelector('article').prepend(el);
    };
    add('train', { view: 'train', model: 'vae-z2', epochs: '0.2' });
    add('draw', { view: 'draw', model: 'vae-z20' });
    add('gan-map', { view: 'map', model: 'gan-z64' });
    add('map', { view: 'map', model: 'vae-z2' });
  });
  const root = (id) => `#${id}`;

  // The map: 10,000 points, and two far-apart clicks decode two different digits.
  await page.locator('#map').scrollIntoViewIfNeeded(); // it loads once near the viewport
  await page.waitForFunction(() => document.querySelector('#map')?.shadowRoot?.querySelector('canvas.map[data-points="10000"]'), null, { timeout: TIMEOUT });
  await page.waitForTimeout(100);
  const mapBox = await page.locator('#map >> canvas.map').boundingBox();
  const digits = [];
  for (const [fx, fy] of [[0.2, 0.2], [0.8, 0.8]]) {
    await page.mouse.click(mapBox.x + mapBox.width * fx, mapBox.y + mapBox.height * fy);
    await page.waitForTimeout(150);
    digits.push(await stats(page, root('map'), 'canvas.digit'));
  }
  for (const d of digits) assert.ok(d.lit / d.total > 0.03, `the decoded digit is nearly blank: ${JSON.stringify(d)}`);
  assert.notEqual(digits[0].hash, digits[1].hash, 'two far-apart clicks decoded the same digit');
  assert.match(await page.evaluate(() => document.querySelector('#gan-map').shadowRoot.textContent), /GAN has no encoder/);

  // Draw: a vertical stroke is reconstructed as a 1; "Use a test digit" shares the map's download.
  const pad = page.locator('#draw >> canvas.drawpad');
  await pad.scrollIntoViewIfNeeded();
  const box = await pad.boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.15);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.85, { steps: 12 });
  await page.mouse.up();
  await page.waitForFunction(() => /Reconstruction loss/.test(document.querySelector('#draw').shadowRoot.textContent), null, { timeout: TIMEOUT });
  const read = await page.evaluate(async () => {
    const c = document.querySelector('#draw').shadowRoot.querySelector('canvas.recon');
    const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
    const px = Float32Array.from({ length: 784 }, (_, i) => d[4 * i] / 255);
    const { Classifier } = await import('/pkg/latent_lab.js');
    const cl = Classifier.load(new Uint8Array(await (await fetch('/www/weights/classifier.safetensors')).arrayBuffer()));
    const out = Array.from(cl.classify(px));
    cl.free();
    return out;
  });
  assert.deepEqual(read, [1]);
  await page.locator('#draw >> button', { hasText: 'Use a test digit' }).click();
  await page.waitForTimeout(300);
  assert.equal(requests.filter((r) => r.endsWith('mnist-test.safetensors.gz')).length, 1, 'test digits downloaded more than once');

  // Train: a module worker under the CSP; the loss curve draws, Stop keeps the weights.
  await page.locator('#train >> button', { hasText: 'Train' }).click();
  await page.waitForFunction(() => Number(document.querySelector('#train').getAttribute('data-step')) >= 30, null, { timeout: 120_000 });
  // This page is cross-origin isolated, but its CSP refuses the thread pool's blob: workers: one
  // thread, and the element says why.
  const cores = await page.evaluate(() => navigator.hardwareConcurrency || 1);
  const why = cores < 2 ? 'one core' : "threads did not start: this page refuses workers from blob: URLs (its CSP's worker-src)";
  assert.equal(await page.evaluate(() => document.querySelector('#train').shadowRoot.querySelector('.engine').textContent),
    `On the CPU: 1 thread, relaxed SIMD (${why}).`);
  const curve = await stats(page, root('train'), 'canvas.curve');
  assert.ok(curve.lit > 20, 'the loss curve is not drawn');
  await page.locator('#train >> button', { hasText: 'Stop' }).click();
  await page.waitForFunction(() => !document.querySelector('#train').hasAttribute('data-training'), null, { timeout: 30_000 });
  assert.match(await page.evaluate(() => document.querySelector('#train').shadowRoot.textContent), /stopped after \d+ steps/);
  assert.equal(await errorText(page, root('train')), null);
  assert.deepEqual(problems, []);
  await page.close();
});

test('under the strict CSP, the ae-vs-vae view draws both models from the same codes, and the autoencoder and the conv VAE sample with sliders', async () => {
  const { page, problems } = await openWith(EXAMPLE, async (p) => {
    await p.setViewportSize({ width: 900, height: 900 });
  });
  await page.evaluate(() => {
    for (const [id, attrs] of [['pair', { view: 'ae-vs-vae' }], ['ae', { view: 'sliders', model: 'ae-z3' }], ['conv', { view: 'sliders', model: 'conv-vae-z20' }]]) {
      const el = document.createElement('latent-lab');
      el.id = id;
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      document.querySelector('article').prepend(el);
    }
  });
  await settled(page, '#ae');
  assert.equal(await errorText(page, '#ae'), null);
  await assertInked(page, '#ae');
  const sliders = await page.evaluate(() => document.querySelector('#ae').shadowRoot.querySelectorAll('input[type=range]').length);
  assert.equal(sliders, 3, 'one slider per number of the code');
  assert.match(await page.evaluate(() => document.querySelector('#ae').shadowRoot.textContent), /Autoencoder, latent 3 \(ae-z3\)/);
  // A convolutional model has no decoder file: the element fetches it whole.
  await settled(page, '#conv');
  await assertInked(page, '#conv');
  assert.equal(await page.evaluate(() => document.querySelector('#conv').shadowRoot.querySelectorAll('input[type=range]').length), 20);
  assert.match(await page.evaluate(() => document.querySelector('#conv').shadowRoot.textContent), /Convolutional VAE, latent 20 \(conv-vae-z20\)/);

  await page.locator('#pair').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => {
    const el = document.querySelector('#pair');
    return !el.hasAttribute('aria-busy') && el.shadowRoot.querySelectorAll('canvas[data-entropy]').length === 2;
  }, null, { timeout: TIMEOUT });
  assert.equal(await errorText(page, '#pair'), null);
  const entropies = await page.evaluate(() => Array.from(
    document.querySelector('#pair').shadowRoot.querySelectorAll('canvas[data-entropy]'), (c) => Number(c.dataset.entropy)));
  assert.ok(entropies[1] > 2.0 && entropies[0] < entropies[1] - 0.5, `entropies AE ${entropies[0]}, VAE ${entropies[1]}`);
  for (const i of [0, 1]) {
    const grid = await stats(page, '#pair', `figure:nth-of-type(${i + 1}) canvas:first-of-type`);
    assert.ok(grid.lit / grid.total > 0.03, `side ${i}: sample grid nearly blank`);
    const map = await stats(page, '#pair', `figure:nth-of-type(${i + 1}) canvas.map`);
    assert.ok(map.lit / map.total > 0.05, `side ${i}: the map is blank`);
  }
  assert.deepEqual(problems, []);
  await page.close();
});
