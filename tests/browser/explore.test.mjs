// The explorer panels (www/explore.js) and the URL fragment (www/fragment.js), in headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, readyPage, canvasStats, checkManifoldCorners, readDigit, classify } from './harness.mjs';

let env;
before(async () => { env = await launch(); });
after(async () => { await env?.close(); });

const TIMEOUT = 90_000; // encoding 10,000 digits on a busy 2-core machine

/** Selects a model and waits for the page to draw it. */
async function pick(page, key, statusStart) {
  await page.selectOption('#model-select', key);
  await page.waitForFunction((s) => document.querySelector('#status').textContent.startsWith(s), statusStart);
}

/** Scrolls the map into view and waits for its points. */
async function showMap(page, points = '10000') {
  await page.locator('#latent-map').scrollIntoViewIfNeeded();
  await page.waitForSelector(`#latent-map[data-points="${points}"]`, { timeout: TIMEOUT });
  await page.waitForTimeout(100); // the map draws in an animation frame
}

test('the test set is fetched only when the map is shown; the map has 10,000 points, and clicks decode', async () => {
  const requests = [];
  const { page, problems } = await openPage(env, '', (p) => p.on('request', (r) => requests.push(new URL(r.url()).pathname)));
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  await page.waitForTimeout(300);
  assert.ok(!requests.some((r) => r.endsWith('mnist-test.safetensors.gz')), 'the test set was fetched at page start');
  await pick(page, 'vae-z2', 'VAE, latent 2:');
  await showMap(page);
  assert.equal(requests.filter((r) => r.endsWith('mnist-test.safetensors.gz')).length, 1);
  assert.equal(await page.getAttribute('#latent-map', 'data-points'), '10000');
  assert.equal(await page.textContent('#map-x-label'), 'z1 →');
  // Ten legend entries, named (not only coloured).
  assert.deepEqual(await page.locator('#map-legend li').allTextContents(), Array.from({ length: 10 }, (_, d) => `digit ${d}`));
  const map = await canvasStats(page, '#latent-map');
  assert.ok(map.lit > 500, `the map shows few points: ${map.lit} lit pixels`);

  const box = await page.locator('#latent-map').boundingBox();
  await page.mouse.click(box.x + box.width * 0.2, box.y + box.height * 0.2);
  await page.waitForTimeout(150);
  const first = await canvasStats(page, '#map-digit');
  const firstText = await page.textContent('#map-live');
  await page.mouse.click(box.x + box.width * 0.8, box.y + box.height * 0.8);
  await page.waitForTimeout(150);
  const second = await canvasStats(page, '#map-digit');
  for (const s of [first, second]) assert.ok(s.lit / s.total > 0.03, `the decoded digit is nearly blank: ${s.lit}/${s.total}`);
  assert.notEqual(second.hash, first.hash, 'two far-apart clicks decoded the same digit');
  assert.match(firstText, /^Position \(-?[\d.]+, -?[\d.]+\); the nearest test digit is a \d\.$/);
  assert.notEqual(await page.textContent('#map-live'), firstText);

  // The decoded digit is sample() at the cursor: z = the clicked map position for latent 2.
  const at = (await page.textContent('#map-live')).match(/\((-?[\d.]+), (-?[\d.]+)\)/).slice(1).map(Number);
  assert.ok(at[0] > 0 && at[1] < 0, `a click at the bottom right gave ${at}: z2 must grow upward`);
  assert.deepEqual(problems, []);
  await page.close();
});

test('a latent-20 map is a PCA projection and says so; a GAN has no map', async () => {
  const { page, problems } = await readyPage(env);
  await showMap(page);
  assert.match(await page.textContent('#map-x-label'), /^PC1 \(\d+% of variance\) →$/);
  assert.match(await page.textContent('#map-y-label'), /^PC2 \(\d+% of variance\) →$/);
  const share = (await page.textContent('#map-x-label')).match(/(\d+)%/)[1];
  assert.ok(Number(share) > 5 && Number(share) < 100, `PC1 explains ${share}%`);
  await page.locator('#latent-map').focus();
  const before = await canvasStats(page, '#map-digit');
  for (let i = 0; i < 8; i++) await page.keyboard.press('Shift+ArrowRight');
  await page.waitForTimeout(150);
  assert.notEqual((await canvasStats(page, '#map-digit')).hash, before.hash, 'moving along PC1 did not change the digit');
  await pick(page, 'gan-z64', 'GAN, z 64:');
  await page.waitForFunction(() => /has no encoder/.test(document.querySelector('#map-note').textContent));
  assert.equal(await page.isVisible('#latent-map'), false);
  assert.equal(await page.getAttribute('#latent-map', 'data-points'), '0');
  assert.deepEqual(problems, []);
  await page.close();
});

test('the manifold grid has N×N cells whose corners equal sample() at (±R, ±R)', async () => {
  const { page, problems } = await readyPage(env);
  await pick(page, 'vae-z2', 'VAE, latent 2:');
  await page.locator('#manifold').scrollIntoViewIfNeeded();
  await page.fill('#manifold-n', '7');
  await page.locator('#manifold-n').dispatchEvent('change');
  await page.waitForSelector('#manifold[data-cells="49"]');
  assert.equal(await page.inputValue('#manifold-range'), '2.5');
  const r = await checkManifoldCorners(page, '#manifold', { R: 2.5 });
  assert.equal(r.n, 7);
  assert.match(await page.textContent('#manifold-caption'), /^7 × 7 digits: z1 runs from -2.5 to 2.5 left to right, z2 from -2.5 to 2.5 bottom to top\.$/);
  assert.deepEqual(problems, []);
  await page.close();
});

test('a drawn vertical stroke encodes to a posterior whose reconstruction reads as 1, marked on the map', async () => {
  const { page, problems } = await readyPage(env);
  await page.locator('#draw-pad').scrollIntoViewIfNeeded();
  const box = await page.locator('#draw-pad').boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.15);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.85, { steps: 12 });
  await page.mouse.up();
  await page.waitForFunction(() => /reads your drawing as/.test(document.querySelector('#draw-result').textContent), null, { timeout: TIMEOUT });
  const recon = await readDigit(page, '#draw-recon');
  assert.ok(recon.filter((v) => v > 0.5).length > 15, 'the reconstruction is nearly blank');
  assert.deepEqual(await classify(page, recon), [1], 'the reconstruction does not read as 1');
  assert.match(await page.textContent('#draw-result'), /as a 1\..*Reconstruction loss \d+\.\d/);
  // The posterior is marked on the map (the map was needed, so it was built).
  await page.waitForSelector('#latent-map[data-points="10000"]', { timeout: TIMEOUT });
  const marked = await canvasStats(page, '#latent-map');
  await page.click('#draw-clear');
  await page.waitForTimeout(150);
  assert.notEqual((await canvasStats(page, '#latent-map')).hash, marked.hash, 'Clear did not remove the posterior marker');
  assert.equal((await canvasStats(page, '#draw-pad')).lit, 0, 'Clear left ink on the pad');
  assert.deepEqual(problems, []);
  await page.close();
});

test('a conditional VAE redraws the drawing in every digit, and reconstructions show losses', async () => {
  const { page, problems } = await readyPage(env);
  await pick(page, 'cvae-z2', 'Conditional VAE, latent 2:');
  await page.locator('#draw-test-digit').scrollIntoViewIfNeeded();
  await page.locator('#draw-test-digit').focus();
  await page.keyboard.press('Enter'); // reachable without a pointer
  await page.waitForFunction(() => /reads your drawing as/.test(document.querySelector('#draw-result').textContent), null, { timeout: TIMEOUT });
  assert.equal(await page.isVisible('#draw-styles'), true);
  const styles = await page.evaluate(() => {
    const c = document.querySelector('#draw-styles');
    const d = c.getContext('2d');
    const cell = 36;
    const gap = 2;
    return Array.from({ length: 10 }, (_, k) => {
      const px = d.getImageData(k * (cell + gap), 0, cell, cell).data;
      const out = [];
      for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) out.push(px[4 * (Math.floor((y + 0.5) * cell / 28) * cell + Math.floor((x + 0.5) * cell / 28))] / 255);
      return out;
    });
  });
  const read = await classify(page, styles.flat());
  const right = read.filter((d, i) => d === i).length;
  assert.ok(right >= 8, `the style redrawn as 0–9 reads as ${read}`);

  await page.locator('#recon').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelectorAll('#recon-losses li').length === 8, null, { timeout: TIMEOUT });
  const losses = (await page.locator('#recon-losses li').allTextContents()).map(Number);
  assert.ok(losses.every((l) => l > 10 && l < 400), `losses ${losses}`);
  const recon = await canvasStats(page, '#recon');
  assert.equal(recon.width, 8 * 48 + 7 * 2);
  assert.ok(recon.lit / recon.total > 0.05, 'the reconstructions are blank');
  assert.deepEqual(problems, []);
  await page.close();
});

test('the URL fragment round-trips the model, sliders, digit and view; bad values are ignored', async () => {
  const { page, problems } = await readyPage(env);
  await pick(page, 'vae-z2', 'VAE, latent 2:');
  await page.locator('#slider-0').fill('1.37');
  await page.locator('#slider-1').fill('-0.84');
  await page.locator('#manifold-n').focus(); // the view in use: the manifold
  await page.waitForFunction(() => /view=manifold/.test(location.hash));
  await page.waitForTimeout(400);
  const hash = await page.evaluate(() => location.hash);
  assert.match(hash, /^#model=vae-z2&z=1\.37,-0\.84&view=manifold/);
  const original = await canvasStats(page, '#slider-view');
  await page.close();

  const opened = await openPage(env, hash);
  await opened.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await opened.page.$eval('#model-select', (s) => s.value), 'vae-z2');
  assert.equal(await opened.page.inputValue('#slider-0'), '1.37');
  assert.equal(await opened.page.inputValue('#slider-1'), '-0.84');
  assert.equal((await canvasStats(opened.page, '#slider-view')).hash, original.hash);
  // The manifold panel was scrolled into view, so it drew.
  await opened.page.waitForSelector('#manifold[data-cells="400"]', { timeout: TIMEOUT });
  assert.deepEqual(opened.problems, []);
  await opened.page.close();

  // A conditional model's digit.
  const cond = await openPage(env, '#model=cvae-z2&digit=7');
  await cond.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await cond.page.getAttribute('#digit-7', 'aria-pressed'), 'true');
  assert.deepEqual(await classify(cond.page, await readDigit(cond.page, '#slider-view')), [7]);
  await cond.page.close();

  // The map cursor, and the map panel scrolled into view.
  const at = await openPage(env, '#model=vae-z2&view=map&at=1.000,-0.500');
  await at.page.waitForSelector('#latent-map[data-points="10000"]', { timeout: TIMEOUT });
  await at.page.waitForFunction(() => document.querySelector('#map-live').textContent.startsWith('Position (1.00, -0.50);'));
  assert.deepEqual(at.problems, []);
  await at.page.close();

  // Nonsense falls back to the defaults without an error.
  const bad = await openPage(env, '#model=nope&z=1,zz&digit=42&view=%E0%A4&at=1');
  await bad.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  assert.equal(await bad.page.$eval('#model-select', (s) => s.value), 'vae-z20');
  assert.equal(await bad.page.inputValue('#slider-0'), '0');
  assert.equal(await bad.page.isVisible('#errors'), false);
  assert.deepEqual(bad.problems, []);
  await bad.page.close();
  assert.deepEqual(problems, []);
});

test('keyboard only: Tab reaches a slider that ArrowRight moves, and arrow keys move the map cursor', async () => {
  const { page, problems } = await readyPage(env);
  await pick(page, 'vae-z2', 'VAE, latent 2:');
  await page.locator('#model-select').focus();
  let focused;
  for (let i = 0; i < 15; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => ({ id: document.activeElement.id, type: document.activeElement.type }));
    if (focused.type === 'range') break;
  }
  assert.equal(focused.id, 'slider-0', `Tab never reached a slider: ${JSON.stringify(focused)}`);
  const before = await canvasStats(page, '#slider-view');
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('ArrowRight');
  await page.waitForTimeout(150);
  assert.equal(await page.inputValue('#slider-0'), '0.02');
  assert.notEqual((await canvasStats(page, '#slider-view')).hash, before.hash, 'the slider moved but the digit did not');

  await showMap(page);
  // Every explorer control has an accessible name and can take focus.
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll('#map-panel, #manifold-panel, #draw-panel, #recon-panel')]
    .flatMap((s) => [...s.querySelectorAll('input, button, [tabindex]')])
    .filter((c) => c.tabIndex < 0 || !((c.getAttribute('aria-label') ?? '').trim() || c.closest('label') || c.textContent.trim()))
    .map((c) => c.outerHTML));
  assert.deepEqual(unlabelled, []);
  await page.locator('#latent-map').focus();
  const text0 = await page.textContent('#map-live');
  const digit0 = await canvasStats(page, '#map-digit');
  for (let i = 0; i < 6; i++) await page.keyboard.press('Shift+ArrowUp');
  await page.waitForTimeout(150);
  const text1 = await page.textContent('#map-live');
  assert.notEqual(text1, text0, 'the live text did not follow the cursor');
  const [y0, y1] = [text0, text1].map((t) => Number(t.match(/, (-?[\d.]+)\)/)[1]));
  assert.ok(y1 > y0, `ArrowUp moved the cursor from y ${y0} to ${y1}`);
  assert.notEqual((await canvasStats(page, '#map-digit')).hash, digit0.hash, 'the decoded digit did not change');
  assert.deepEqual(problems, []);
  await page.close();
});

test('while the model trains in the worker, the manifold and the reconstructions redraw', async () => {
  const { page, problems } = await readyPage(env);
  await pick(page, 'vae-z2', 'VAE, latent 2:');
  await page.locator('#manifold').scrollIntoViewIfNeeded();
  await page.locator('#recon').scrollIntoViewIfNeeded();
  await page.waitForFunction(() => document.querySelectorAll('#recon-losses li').length === 8, null, { timeout: TIMEOUT });
  await page.waitForSelector('#manifold[data-cells="400"]');
  const manifold = await canvasStats(page, '#manifold');
  const losses = await page.locator('#recon-losses li').allTextContents();
  await page.selectOption('#train-from', 'fresh');
  await page.fill('#train-epochs', '0.2');
  await page.click('#train-start');
  // The worker decodes the same 400 points and 8 digits every 25 steps, from fresh weights.
  await page.waitForSelector('#manifold[data-step]', { timeout: 120_000 });
  await page.waitForSelector('#recon[data-step]', { timeout: 30_000 });
  await page.click('#train-stop');
  await page.waitForSelector('#train-start:not([disabled])', { timeout: 30_000 });
  const trained = await canvasStats(page, '#manifold');
  assert.equal(trained.width, manifold.width, 'the worker\'s manifold has another size');
  assert.notEqual(trained.hash, manifold.hash, 'the manifold did not change as the model trained');
  assert.notDeepEqual(await page.locator('#recon-losses li').allTextContents(), losses, 'the losses did not change');
  assert.deepEqual(problems, []);
  await page.close();
});

test('autoencoder beside VAE: the same random codes decoded by both, the AE\'s covering fewer digits, both maps drawn with the codes marked', async () => {
  const { page, problems } = await readyPage(env);
  await page.locator('#ae-panel').scrollIntoViewIfNeeded();
  await page.waitForSelector('body[data-ae-compare-ready="true"]', { timeout: TIMEOUT });
  const entropies = {};
  for (const side of ['ae', 'vae']) {
    const grid = await canvasStats(page, `#ae-compare-${side}`);
    assert.ok(grid.lit / grid.total > 0.03, `${side}: sample grid nearly blank`);
    const map = await canvasStats(page, `#ae-map-${side}`);
    assert.ok(map.lit / map.total > 0.05, `${side}: the map is blank`);
    entropies[side] = Number(await page.getAttribute(`#ae-coverage-${side}`, 'data-entropy'));
    const caption = await page.textContent(`#ae-caption-${side}`);
    assert.match(caption, side === 'ae' ? /^AE, code 3/ : /^VAE, code 3/);
  }
  // The tutorials' claim, measured by the classifier on 500 random codes: the VAE makes nearly
  // every digit (ln 10 = 2.30), the autoencoder far fewer.
  assert.ok(entropies.vae > 2.0, `VAE entropy ${entropies.vae}`);
  assert.ok(entropies.ae < entropies.vae - 0.5, `AE entropy ${entropies.ae}, VAE ${entropies.vae}`);
  // New codes redraw both grids.
  const before = await canvasStats(page, '#ae-compare-ae');
  await page.click('#ae-resample');
  assert.notEqual((await canvasStats(page, '#ae-compare-ae')).hash, before.hash);
  // The panel in use goes into the URL fragment, and a page opened on it shows the panel.
  await page.waitForFunction(() => /view=ae(&|$)/.test(location.hash));
  const hash = await page.evaluate(() => location.hash);
  assert.deepEqual(problems, []);
  await page.close();
  const again = await openPage(env, hash);
  await again.page.waitForSelector('body[data-ae-compare-ready="true"]', { timeout: TIMEOUT });
  assert.deepEqual(again.problems, []);
  await again.page.close();
});

test('reconstruction loss: the same test digits rebuilt by the BCE, L2 and L1 VAEs, each with its Fréchet distance', async () => {
  const { page, problems } = await readyPage(env);
  await page.locator('#loss-panel').scrollIntoViewIfNeeded();
  await page.waitForSelector('body[data-loss-compare-ready="true"]', { timeout: TIMEOUT });
  const grid = await canvasStats(page, '#loss-grid');
  assert.equal(grid.height, 4 * 36 + 3 * 2, 'originals and three rows of reconstructions');
  assert.ok(grid.lit / grid.total > 0.05, 'the grid is nearly blank');
  const fd = [];
  for (const i of [0, 1, 2]) {
    const text = await page.textContent(`#loss-caption-${i}`);
    assert.match(text, [/^Row 2: binary cross-entropy/, /^Row 3: squared error, L2/, /^Row 4: absolute error, L1/][i]);
    fd.push(Number(await page.getAttribute(`#loss-caption-${i}`, 'data-frechet-distance')));
  }
  assert.ok(fd.every((d) => Number.isFinite(d) && d > 0), `distances ${fd}`);
  // The blur argument, measured on the shipped files: L2's averaged reconstructions are the furthest.
  assert.ok(fd[1] > 2 * fd[0] && fd[1] > fd[2], `BCE ${fd[0]}, L2 ${fd[1]}, L1 ${fd[2]}`);
  const before = grid.hash;
  await page.click('#loss-resample');
  assert.notEqual((await canvasStats(page, '#loss-grid')).hash, before, 'New digits drew the same digits');
  assert.deepEqual(problems, []);
  await page.close();
});
