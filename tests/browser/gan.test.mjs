// The GAN and the conditional models in the page, in headless Chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, readyPage, canvasStats, readDigit, classify } from './harness.mjs';
import { coverageVerdict } from '../../www/coverage.js';

let env;
before(async () => { env = await launch(); });
after(async () => { await env?.close(); });


test('50 GAN train_steps run in the tab with finite losses, and a conditional GAN trains too', async () => {
  const { page } = await readyPage(env);
  const r = await page.evaluate(async () => {
    const { Model } = await import('/pkg/latent_lab.js');
    const { fetchBytes, URLS } = await import('/www/assets.js');
    const data = await fetchBytes(URLS.mnist, 'MNIST');
    const run = (kind, steps) => {
      const m = Model.create(kind, 3);
      const fresh = { recipe: m.recipe, batch: m.batch_size, lr: m.learning_rate, decay: m.lr_decay, beta2: m.adam_beta2 };
      m.recipe = 'tutorial';
      m.set_dataset_safetensors(data);
      const out = { kind: m.kind, fresh, recipe: m.recipe, lr: m.learning_rate, batch: m.batch_size, decay: m.lr_decay, steps: [] };
      m.learning_rate = 3e-4;
      out.custom = m.recipe;
      m.learning_rate = out.lr;
      try { m.recipe = 'slow'; } catch (e) { out.refused = e.message; }
      try { m.lr_decay = 'cosine'; } catch (e) { out.refusedDecay = e.message; }
      for (let i = 0; i < steps; i++) {
        const s = m.train_step();
        out.steps.push({ d_loss: s.d_loss, g_loss: s.g_loss, d_real: s.d_real, d_fake: s.d_fake, loss: s.loss, step: s.step });
        s.free();
      }
      m.free();
      return out;
    };
    return [run('gan', 50), run('cgan', 10)];
  });
  for (const run of r) {
    assert.deepEqual(run.fresh, { recipe: 'fast', batch: 32, lr: 2e-3, decay: 'inverse-epoch', beta2: 0.999 }, `${run.kind}: a fresh model's recipe`);
    assert.deepEqual([run.recipe, run.lr, run.batch, run.decay], ['tutorial', 2e-4, 128, 'none'], `${run.kind}: the tutorials' recipe`);
    assert.equal(run.refusedDecay, 'unknown learning-rate decay `cosine`; the decays are none and inverse-epoch');
    assert.equal(run.custom, 'custom');
    assert.equal(run.refused, 'unknown recipe `slow`; the recipes are fast and tutorial');
    run.steps.forEach((s, i) => {
      assert.equal(s.step, i + 1);
      assert.ok(Number.isFinite(s.d_loss) && Number.isFinite(s.g_loss), `${run.kind} step ${i}: ${JSON.stringify(s)}`);
      assert.ok(s.d_real >= 0 && s.d_real <= 1 && s.d_fake >= 0 && s.d_fake <= 1, JSON.stringify(s));
      assert.equal(s.loss, undefined, 'a GAN step has no VAE loss');
    });
  }
  const gan = r[0].steps;
  // Fifty steps teach the discriminator to tell MNIST from the untrained generator.
  assert.ok(gan[49].d_real > gan[49].d_fake, `D(real) ${gan[49].d_real} vs D(fake) ${gan[49].d_fake}`);
});

test('the digit picker makes conditional models draw the digit picked (the classifier agrees)', async () => {
  const { page, problems } = await readyPage(env);
  assert.equal(await page.isVisible('#digit-picker'), false, 'the picker shows for an unconditional model');
  for (const [key, name] of [['cgan-z64', 'Conditional GAN, z 64:'], ['cvae-z2', 'Conditional VAE, latent 2:']]) {
    await page.selectOption('#model-select', key);
    await page.waitForFunction((n) => document.querySelector('#status').textContent.startsWith(n), name);
    assert.equal(await page.isVisible('#digit-picker'), true, `${key}: no digit picker`);
    const read = [];
    for (const digit of [3, 8, 0]) {
      await page.click(`#digit-${digit}`);
      assert.equal(await page.getAttribute(`#digit-${digit}`, 'aria-pressed'), 'true');
      read.push(...(await classify(page, await readDigit(page, '#slider-view'))));
    }
    assert.deepEqual(read, [3, 8, 0], `${key}: the slider view's digits read as ${read}`);
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test('VAE beside GAN: drawn once scrolled to (nothing of it downloaded before), both grids and their mode-coverage bars', async () => {
  const requests = [];
  const { page, problems } = await openPage(env, '', (p) => p.on('request', (r) => requests.push(new URL(r.url()).pathname)));
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  // The first digits come alone: the comparison's GAN and classifier wait until it is scrolled to.
  await page.waitForTimeout(300);
  const early = requests.filter((r) => /(gan-z64(\.decoder)?|classifier)\.safetensors$/.test(r));
  assert.deepEqual(early, [], 'the comparison downloaded before it was scrolled to');
  assert.equal(await page.getAttribute('body', 'data-compare-ready'), null);
  await page.locator('#compare-panel').scrollIntoViewIfNeeded();
  await page.waitForSelector('body[data-compare-ready="true"]', { timeout: 60_000 });
  // The comparison only samples: the GAN's decoder (its generator) alone.
  assert.ok(requests.some((r) => r.endsWith('gan-z64.decoder.safetensors')) && requests.some((r) => r.endsWith('classifier.safetensors')));
  assert.ok(!requests.some((r) => r.endsWith('gan-z64.safetensors')), 'the whole GAN was fetched to sample');
  for (const pair of ['plain', 'conditional']) {
    await page.selectOption('#compare-pair', pair);
    await page.waitForFunction(
      (p) => document.querySelector('#coverage-right-text').textContent.startsWith(p === 'plain' ? 'GAN' : 'CGAN'), pair);
    for (const side of ['left', 'right']) {
      const grid = await canvasStats(page, `#compare-${side}`);
      assert.ok(grid.lit / grid.total > 0.03, `${pair} ${side}: sample grid nearly blank`);
      const bars = await canvasStats(page, `#coverage-${side}`);
      assert.ok(bars.lit > 50, `${pair} ${side}: no histogram bars`);
      const text = await page.textContent(`#coverage-${side}-text`);
      const entropy = Number(/class entropy ([\d.]+)/.exec(text)?.[1]);
      // The shipped models cover the digits (log 10 = 2.30 is perfect).
      assert.ok(entropy > 2.0, `${pair} ${side}: ${text}`);
      if (pair === 'conditional') {
        const right = Number(/([\d.]+)% read as the digit asked for/.exec(text)?.[1]);
        assert.ok(right >= 90, `${pair} ${side}: ${text}`);
      }
    }
  }
  assert.deepEqual(problems, []);
  await page.close();
});

test('training the GAN in the tab plots both losses, redraws the grid and the coverage bar', async () => {
  const { page, problems } = await readyPage(env);
  await page.selectOption('#model-select', 'gan-z64');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('GAN'));
  // The fast recipe is the default; the tutorials' is one choice away (at the GAN's rate), and a
  // typed rate is neither and stays as typed across a change of model.
  const settings = () => Promise.all(['#train-recipe', '#train-batch', '#train-lr', '#train-decay'].map((s) => page.inputValue(s)));
  assert.deepEqual(await settings(), ['fast', '32', '0.002', 'inverse-epoch']);
  await page.selectOption('#train-recipe', 'tutorial');
  assert.deepEqual(await settings(), ['tutorial', '128', '0.0002', 'none']);
  await page.fill('#train-lr', '0.0003');
  assert.equal(await page.inputValue('#train-recipe'), 'custom');
  await page.selectOption('#model-select', 'cgan-z64');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('Conditional GAN'));
  assert.deepEqual(await settings(), ['custom', '128', '0.0003', 'none']);
  await page.selectOption('#model-select', 'gan-z64');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('GAN'));
  await page.selectOption('#train-recipe', 'fast');
  assert.deepEqual(await settings(), ['fast', '32', '0.002', 'inverse-epoch']);
  // A GAN has no reconstruction loss or KL weight to set.
  assert.deepEqual([await page.isVisible('#train-recon'), await page.isVisible('#train-beta')], [false, false]);
  await page.selectOption('#train-from', 'fresh');
  await page.fill('#train-epochs', '1');
  await page.click('#train-start');
  await page.waitForFunction(() => /step (\d+)/.exec(document.querySelector('#train-status').textContent)?.[1] >= 60, null, { timeout: 120_000 });
  assert.match(await page.textContent('#train-status'), /D loss [\d.]+, G loss [\d.]+/);
  const curve = await canvasStats(page, '#loss-curve');
  assert.ok(curve.lit > 20, 'the loss curve is not drawn');
  const grid = await canvasStats(page, '#train-samples');
  assert.ok(grid.lit > 0, 'the training grid is blank');
  const bars = await canvasStats(page, '#train-coverage');
  assert.ok(bars.lit > 20, 'the coverage bar is not drawn');
  // Elapsed time on the step line, and the classifier's verdict on the GAN's coverage.
  assert.match(await page.textContent('#train-status'), /^step \d+\/1875 · \d+ s · epoch/);
  assert.match(await page.textContent('#train-verdict'), /^The classifier reads the samples: (covers \d+ of 10 digits|collapsing onto \ds \(\d+% of the samples\)) \(step \d+\)\.$/);
  await page.click('#train-stop');
  await page.waitForSelector('#train-start:not([disabled])', { timeout: 30_000 });
  assert.match(await page.textContent('#model-select'), /GAN, z 64 · trained here/);
  assert.deepEqual(problems, []);
  await page.close();
});

test('calls a kind cannot do throw clear errors', async () => {
  const { page } = await readyPage(env);
  const r = await page.evaluate(async () => {
    const { Model, Classifier } = await import('/pkg/latent_lab.js');
    const get = async (f) => new Uint8Array(await (await fetch(`/www/weights/${f}`)).arrayBuffer());
    const ganBytes = await get('gan-z64.safetensors');
    const gan = Model.load(ganBytes);
    const cgan = Model.load(await get('cgan-z64.safetensors'));
    const caught = (f) => { try { f(); return null; } catch (e) { return e.message; } };
    const out = {
      kinds: [gan.kind, cgan.kind, cgan.conditional, gan.conditional, gan.latent],
      encode: caught(() => gan.encode(new Float32Array(784))),
      noLabel: caught(() => cgan.sample(new Float32Array(64))),
      badLabel: caught(() => cgan.sample(new Float32Array(64), new Uint8Array([12]))),
      extraLabel: caught(() => gan.sample(new Float32Array(64), new Uint8Array([1]))),
      badKind: caught(() => Model.create('wgan', 1)),
      classifierFromGarbage: caught(() => Classifier.load(new Uint8Array(0))),
      classifierFromGan: null,
    };
    out.classifierFromGan = caught(() => Classifier.load(ganBytes));
    const classifierBytes = await get('classifier.safetensors');
    out.modelFromClassifier = caught(() => Model.load(classifierBytes));
    out.ok = Array.from(cgan.sample(new Float32Array(64), new Uint8Array([4]))).reduce((s, v) => s + v, 0);
    gan.free(); cgan.free();
    return out;
  });
  assert.deepEqual(r.kinds, ['gan', 'cgan', true, false, 64]);
  assert.match(r.encode, /`gan` model has no encoder/);
  assert.match(r.noLabel, /`cgan` model needs a digit label/);
  assert.match(r.badLabel, /label 0 is 12/);
  assert.match(r.extraLabel, /takes no digit labels/);
  assert.match(r.badKind, /unknown model kind `wgan`/);
  assert.match(r.classifierFromGarbage, /not valid safetensors/);
  assert.match(r.classifierFromGan, /holds a `gan` model, not the digit classifier/);
  assert.match(r.modelFromClassifier, /holds the digit classifier/);
  assert.ok(r.ok > 10, 'the cGAN stopped sampling after the errors');
});

test("the coverage verdict names a collapse, else counts the digits covered", () => {
  assert.equal(coverageVerdict(new Array(10).fill(20)), 'covers 10 of 10 digits');
  // 3 of 200 is under a fifth of an even share: that digit is not covered.
  assert.equal(coverageVerdict([3, 23, 22, 22, 22, 22, 22, 22, 22, 20]), 'covers 9 of 10 digits');
  assert.equal(coverageVerdict([10, 10, 10, 82, 10, 10, 10, 10, 10, 38]), 'collapsing onto 3s (41% of the samples)');
  assert.equal(coverageVerdict(new Array(10).fill(0)), 'no samples yet');
});
