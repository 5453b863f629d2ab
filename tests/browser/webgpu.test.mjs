// Training on WebGPU in headless Chromium, whose WebGPU runs on SwiftShader (a CPU Vulkan): the
// page's Train on WebGPU, the same numbers as the CPU trainer, the fall-back to the CPU when the
// device is lost mid-run, and the CPU when there is no WebGPU at all. SwiftShader is slow, so the
// timeouts are generous; each test reports how long its training took.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, recordWorkerMessages } from './harness.mjs';

/** The main page (at `path`), ready, with its worker's messages recorded. */
async function trainingPage(env, path = '') {
  const opened = await openPage(env, path, (page) => page.addInitScript(recordWorkerMessages));
  await opened.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return opened;
}

/** Fills the Train form: a fresh model of the page's current kind, on `backend`. */
async function setUpTraining(page, { backend, epochs, batch = 128 }) {
  await page.selectOption('#train-from', 'fresh');
  await page.selectOption('#train-backend', backend);
  // The inputs step by 0.1; the page reads their value as a number, so set it as typed.
  await page.fill('#train-epochs', String(epochs));
  await page.fill('#train-batch', String(batch));
}

const messages = (page) => page.evaluate(() => window.__training);
const stepsOf = (msgs) => msgs.filter((m) => m.step !== undefined && !m.done);
const mean = (xs) => xs.reduce((s, v) => s + v, 0) / xs.length;
const relDiff = (a, b) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-12);
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;

/** Waits for the run's {done} message and returns it (Train is enabled again right after). */
async function waitForDone(page, timeout) {
  await page.waitForFunction(() => window.__training.some((m) => m.done), null, { timeout, polling: 250 });
  await page.waitForSelector('#train-start:not([disabled])', { timeout: 10_000 });
  return (await messages(page)).find((m) => m.done);
}

describe('with WebGPU (SwiftShader)', () => {
  let env;
  before(async () => { env = await launch({ webgpu: true }); });
  after(async () => { await env?.close(); });

  test('the page trains a fresh VAE on WebGPU: 10 steps, the loss falls, the model is kept', { timeout: 1_200_000 }, async (t) => {
    const { page, problems } = await trainingPage(env);
    // Batch 32 and 10 steps, so that SwiftShader's emulated GPU (about 1.5 s a step here) takes
    // seconds, not a minute; the page's own model (784-400-20), not a small one. The curves' and
    // the lost device's tests below train longer.
    await setUpTraining(page, { backend: 'webgpu', epochs: 0.0053, batch: 32 });
    const t0 = Date.now();
    await page.click('#train-start');
    const done = await waitForDone(page, 1_080_000);
    const elapsed = Date.now() - t0;
    const msgs = await messages(page);
    const steps = stepsOf(msgs);
    const firstStepAt = steps[0]?.at;
    t.diagnostic(`10 WebGPU steps (batch 32) on SwiftShader: ${seconds(elapsed)} from Train to done, ` +
      `${((steps.at(-1).at - firstStepAt) / Math.max(1, steps.length - 1)).toFixed(0)} ms/step after the first`);

    assert.deepEqual(msgs.filter((m) => m.error || m.fatal), [], 'the worker reported an error');
    const where = msgs.filter((m) => m.backend);
    assert.equal(where.length, 1, `backend messages: ${JSON.stringify(where)}`);
    assert.equal(where[0].backend, 'webgpu');
    assert.equal(await page.getAttribute('#train-device', 'data-backend'), 'webgpu');
    assert.match(await page.textContent('#train-device'), /^Training on WebGPU \(adapter: .+\)\.$/);

    assert.equal(done.reason, 'finished');
    assert.equal(done.steps, 10, 'round(0.0053 × 1875 batches of 32)');
    assert.ok(done.weights > 1_000_000, `saved weights: ${done.weights} bytes`);
    assert.deepEqual(steps.map((s) => s.step), Array.from({ length: 10 }, (_, i) => i + 1));
    assert.ok(steps.every((s) => s.totalSteps === 10 && [s.loss, s.bce, s.kl].every(Number.isFinite)),
      `a step's losses were not finite: ${JSON.stringify(steps.find((s) => ![s.loss, s.bce, s.kl].every(Number.isFinite)))}`);
    for (const s of steps) assert.ok(Math.abs(s.loss - (s.bce + s.kl)) < 1e-3 * s.loss, `step ${s.step}: loss ≠ BCE + KL`);
    const first = mean(steps.slice(0, 3).map((s) => s.loss));
    const last = mean(steps.slice(-3).map((s) => s.loss));
    t.diagnostic(`loss per digit: first 3 steps ${first.toFixed(1)}, last 3 steps ${last.toFixed(1)}; ` +
      `each step ${steps.map((s) => s.loss.toFixed(0)).join(' ')}`);
    assert.ok(last < 0.6 * first, `loss fell only from ${first.toFixed(1)} to ${last.toFixed(1)}`);

    assert.match(await page.textContent('#train-status'), /^step 10\/10 · .* · done; the page now uses these weights/);
    assert.equal(await page.$eval('#train-progress', (p) => p.value), 1);
    assert.match(await page.textContent('#model-select'), /trained here/);
    assert.equal(await page.isVisible('#errors'), false, `error shown: ${await page.textContent('#errors')}`);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('in the page, WebGPU and CPU trainers agree: the first step to 1e-4, steps 11-20 to 2%', { timeout: 600_000 }, async (t) => {
    const { page, problems } = await trainingPage(env);
    const t0 = Date.now();
    const r = await page.evaluate(async () => {
      const { default: init, Model, WebGpu, load_digits } = await import('/pkg/latent_lab.js');
      const { fetchBytes, URLS } = await import('/www/assets.js');
      await init();
      const digits = load_digits(await fetchBytes(URLS.mnistTest, 'the MNIST test digits'), 'test');
      const n = 2048;
      const images = Uint8Array.from(digits.images.subarray(0, n * 784), (x) => Math.round(x * 255));
      const labels = digits.labels.slice(0, n);
      digits.free();
      const gpu = await WebGpu.request();
      const adapter = gpu.adapter;
      const read = (s) => {
        const out = { step: s.step, ...s.losses };
        s.free();
        return out;
      };
      const make = (kind, onGpu) => {
        // Small networks: SwiftShader emulates the GPU slowly; tests/gpu.rs checks the shipped
        // sizes' one-step parity natively.
        const m = Model.create(kind, 3, undefined, 64);
        m.set_dataset(images, labels);
        m.batch_size = 64;
        if (onGpu) m.use_webgpu(gpu);
        return m;
      };
      const cpuSteps = (m, kind, count) => Array.from({ length: count }, () => read(m.train_step()));
      // As the worker does: two steps queued, the next one runs while the last one's stats come back.
      const gpuSteps = async (m, kind, count) => {
        const out = [];
        let submitted = 0;
        while (out.length < count) {
          while (submitted < count && m.steps_queued < 2) {
            m.submit_step();
            submitted++;
          }
          out.push(read(await m.next_stats()));
        }
        return out;
      };
      const run = async (kind, count) => {
        const cpu = make(kind, false);
        const wg = make(kind, true);
        const t = performance.now();
        const res = {
          backends: [cpu.backend, wg.backend],
          adapters: [cpu.adapter, wg.adapter],
          io: [cpu.gpu_traffic, null],
          cpu: cpuSteps(cpu, kind, count),
          gpu: await gpuSteps(wg, kind, count),
        };
        await wg.sync();
        res.io[1] = wg.gpu_traffic;
        res.ioCompat = JSON.parse(wg.gpu_io); // the JSON string kept for compatibility says the same
        // After sync the CPU copy of the GPU-trained weights decodes as the GPU does.
        const z = Float32Array.from({ length: 4 * wg.latent }, (_, i) => Math.sin(i + 1));
        const zl = wg.conditional ? Uint8Array.from([1, 4, 7, 9]) : undefined;
        const onGpu = await wg.sample_async(z, zl);
        const onCpu = wg.sample(z, zl);
        res.sampleDiff = onGpu.reduce((d, v, i) => Math.max(d, Math.abs(v - onCpu[i])), 0);
        res.saved = wg.save().length;
        res.ms = performance.now() - t;
        cpu.free();
        wg.free();
        return res;
      };
      const out = { adapter, vae: await run('vae', 20), gan: await run('gan', 5), cvae: await run('cvae', 1), cgan: await run('cgan', 1) };
      gpu.free();
      return out;
    });
    t.diagnostic(`adapter ${r.adapter}; vae 20+20 steps ${seconds(r.vae.ms)}, gan 5+5 ${seconds(r.gan.ms)}, ` +
      `cvae 1+1 ${seconds(r.cvae.ms)}, cgan 1+1 ${seconds(r.cgan.ms)}; whole test ${seconds(Date.now() - t0)}`);

    for (const kind of ['vae', 'gan', 'cvae', 'cgan']) {
      const k = r[kind];
      assert.deepEqual(k.backends, ['cpu', 'webgpu'], kind);
      assert.equal(k.adapters[0], undefined, `${kind}: a CPU model names an adapter`);
      assert.equal(k.adapters[1], r.adapter, kind);
      assert.equal(k.io[0], undefined, `${kind}: a CPU model reports GPU traffic`);
      assert.ok(k.io[1].submissions >= k.gpu.length && k.io[1].uploaded > 0 && k.io[1].read_back > 0, `${kind}: gpu_traffic ${JSON.stringify(k.io[1])}`);
      assert.deepEqual(k.ioCompat, k.io[1], `${kind}: gpu_io and gpu_traffic differ`);
      assert.deepEqual(k.gpu.map((s) => s.step), k.cpu.map((s) => s.step), kind);
      // Step 1: the same weights, minibatch, noise (and dropout masks) on both.
      const [c, g] = [k.cpu[0], k.gpu[0]];
      for (const f of Object.keys(c).filter((f) => f !== 'step')) {
        assert.ok(Number.isFinite(g[f]), `${kind} step 1 ${f} on WebGPU: ${g[f]}`);
        assert.ok(relDiff(c[f], g[f]) < 1e-4, `${kind} step 1 ${f}: CPU ${c[f]} vs WebGPU ${g[f]} (relative ${relDiff(c[f], g[f]).toExponential(2)})`);
      }
      assert.ok(k.sampleDiff < 1e-4, `${kind}: GPU decode vs CPU decode after sync differ by ${k.sampleDiff}`);
      assert.ok(k.saved > 100_000, `${kind}: saved ${k.saved} bytes`);
    }
    t.diagnostic(`step 1 vae: CPU loss ${r.vae.cpu[0].loss.toFixed(4)}, WebGPU ${r.vae.gpu[0].loss.toFixed(4)}; ` +
      `gan: CPU D loss ${r.gan.cpu[0].d_loss.toFixed(5)}, WebGPU ${r.gan.gpu[0].d_loss.toFixed(5)}`);

    // The VAE's curves stay together: means over steps 11-20.
    for (const f of ['loss', 'bce', 'kl']) {
      const c = mean(r.vae.cpu.slice(10, 20).map((s) => s[f]));
      const g = mean(r.vae.gpu.slice(10, 20).map((s) => s[f]));
      t.diagnostic(`vae ${f}, mean of steps 11-20: CPU ${c.toFixed(3)}, WebGPU ${g.toFixed(3)}`);
      assert.ok(relDiff(c, g) < 0.02, `vae ${f} over steps 11-20: CPU ${c} vs WebGPU ${g}`);
    }
    // At hidden width 64 the loss of steps 16-20 was 0.80 of that of steps 1-5 (550 → 410 over the
    // 20 steps); a trainer that does not train stays at 1, and the CPU agreement above pins the rest.
    const lossFell = (s) => mean(s.slice(15).map((x) => x.loss)) < 0.9 * mean(s.slice(0, 5).map((x) => x.loss));
    assert.ok(lossFell(r.vae.gpu), `the WebGPU VAE's loss did not fall: ${r.vae.gpu.map((s) => s.loss.toFixed(1))}`);
    // The GAN's first five steps stay close too (the discriminator's verdicts within 1%).
    r.gan.gpu.forEach((g, i) => {
      const c = r.gan.cpu[i];
      for (const f of ['d_loss', 'g_loss']) assert.ok(relDiff(c[f], g[f]) < 0.01, `gan step ${g.step} ${f}: CPU ${c[f]} vs WebGPU ${g[f]}`);
    });
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('a lost GPU device mid-run: the page carries on on the CPU from the last read-back and finishes', { timeout: 1_200_000 }, async (t) => {
    const { page, problems } = await trainingPage(env, '?debug&sync=5');
    assert.equal(await page.isVisible('#train-lose-device'), true, 'the debug button is not shown with ?debug');
    // 0.02 epochs of 1875 batches of 32: 38 steps (enough that a loaded machine's page presses the
    // button before the run ends); with ?sync=5 the GPU's weights come back every 5.
    await setUpTraining(page, { backend: 'webgpu', epochs: 0.02, batch: 32 });
    const STEPS = 38;
    const t0 = Date.now();
    await page.click('#train-start');
    await page.waitForFunction(() => window.__training.some((m) => m.step >= 7), null, { timeout: 600_000, polling: 100 });
    // The last step reported before the press: its read-back (and every one before it) had been
    // taken. Read after the press, the CPU's repeated steps could already be in (a loaded machine
    // is slow to press).
    const lostAfter = Math.max(...stepsOf(await messages(page)).map((s) => s.step));
    await page.click('#train-lose-device');
    assert.ok(lostAfter < STEPS, `the run had ended (step ${lostAfter}) before the device could be lost`);
    const done = await waitForDone(page, 240_000);
    t.diagnostic(`${STEPS} steps with the device lost after step ${lostAfter}: ${seconds(Date.now() - t0)} from Train to done`);
    const msgs = await messages(page);

    // The loss is no error: the worker says where training went instead.
    assert.deepEqual(msgs.filter((m) => m.error || m.fatal), [], `the worker reported errors; done: ${JSON.stringify(done)}`);
    const where = msgs.filter((m) => m.backend);
    assert.deepEqual(where.map((m) => m.backend), ['webgpu', 'cpu'], JSON.stringify(where));
    const fallback = /^the WebGPU device was lost \((.*device was lost.*)\); training continues on the CPU from step (\d+), the last weights read back, and repeats the (\d+) steps after it$/
      .exec(where[1].reason);
    assert.ok(fallback, `fallback reason: ${where[1].reason}`);
    const resumedAt = Number(fallback[2]);
    const lostSteps = Number(fallback[3]);
    t.diagnostic(`resumed at step ${resumedAt}, repeating ${lostSteps} steps; device loss: ${fallback[1]}`);
    // Every read-back at or before the last step reported when the button was pressed was taken;
    // steps still queued then may have brought one more.
    assert.equal(resumedAt % 5, 0, `resumed at step ${resumedAt}, not a read-back (every 5 steps)`);
    assert.ok(resumedAt >= lostAfter - (lostAfter % 5), `resumed at ${resumedAt}, before the read-back at or before step ${lostAfter}`);
    // Lost: the steps reported after the read-back when the button was pressed, and those queued
    // or run before the worker took the message.
    assert.ok(resumedAt + lostSteps >= lostAfter && resumedAt + lostSteps <= STEPS,
      `lost ${lostSteps} steps after ${resumedAt}; the button was pressed after step ${lostAfter}`);

    // Steps: 1… on WebGPU, then again from resumedAt + 1 on the CPU up to the end.
    const steps = stepsOf(msgs);
    const fallIndex = msgs.indexOf(where[1]);
    const onGpu = steps.filter((s) => msgs.indexOf(s) < fallIndex);
    const onCpu = steps.filter((s) => msgs.indexOf(s) > fallIndex);
    assert.deepEqual(onGpu.map((s) => s.step), Array.from({ length: onGpu.length }, (_, i) => i + 1));
    assert.deepEqual(onCpu.map((s) => s.step), Array.from({ length: STEPS - resumedAt }, (_, i) => resumedAt + 1 + i));
    assert.ok(steps.every((s) => Number.isFinite(s.loss)), 'a loss was not finite');
    // The first repeated step starts from the weights read back, on the same minibatch and noise:
    // its loss on the CPU is the one the GPU reported.
    const gpuFirst = onGpu.find((s) => s.step === resumedAt + 1);
    const cpuFirst = onCpu[0];
    assert.ok(gpuFirst, `the GPU never reported step ${resumedAt + 1}`);
    assert.ok(relDiff(gpuFirst.loss, cpuFirst.loss) < 1e-3,
      `step ${resumedAt + 1}: WebGPU loss ${gpuFirst.loss}, repeated on the CPU ${cpuFirst.loss}`);
    assert.ok(mean(onCpu.slice(-5).map((s) => s.loss)) < 0.6 * mean(onGpu.slice(0, 5).map((s) => s.loss)), 'the loss did not fall');

    assert.equal(done.reason, 'finished');
    assert.equal(done.steps, STEPS);
    assert.ok(done.weights > 1_000_000, `saved weights: ${done.weights} bytes`);
    assert.equal(await page.getAttribute('#train-device', 'data-backend'), 'cpu');
    const deviceLine = await page.textContent('#train-device');
    assert.match(deviceLine, /^Training on the CPU: the WebGPU device was lost \(.*\); training continues on the CPU from step \d+,/);
    assert.ok(deviceLine.includes(`from step ${resumedAt},`), `the page says: ${deviceLine}`);
    assert.match(await page.textContent('#train-status'), new RegExp(`^step ${STEPS}/${STEPS} · .* · done; the page now uses these weights`));
    assert.match(await page.textContent('#model-select'), /trained here/);
    assert.equal(await page.isVisible('#errors'), false, `error shown: ${await page.textContent('#errors')}`);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('without WebGPU (--disable-gpu)', () => {
  let env;
  before(async () => { env = await launch(); });
  after(async () => { await env?.close(); });

  test("'auto' trains on the CPU and says WebGPU is not available; 'WebGPU' refuses with the reason", { timeout: 300_000 }, async (t) => {
    const { page, problems } = await trainingPage(env);
    await setUpTraining(page, { backend: 'auto', epochs: 0.01, batch: 128 });
    const t0 = Date.now();
    await page.click('#train-start');
    const done = await waitForDone(page, 240_000);
    t.diagnostic(`5 CPU steps: ${seconds(Date.now() - t0)} from Train to done`);
    const msgs = await messages(page);
    assert.deepEqual(msgs.filter((m) => m.backend).map((m) => m.backend), ['cpu']);
    assert.equal(await page.getAttribute('#train-device', 'data-backend'), 'cpu');
    const device = await page.textContent('#train-device');
    assert.match(device, /^Training on the CPU: WebGPU is not available here \(.+\)\.$/);
    assert.equal(done.reason, 'finished');
    assert.equal(done.steps, 5, 'round(0.01 × 469)');
    assert.deepEqual(stepsOf(msgs).map((s) => s.step), [1, 2, 3, 4, 5]);
    assert.match(await page.textContent('#train-status'), /^step 5\/5 · .* · done; the page now uses these weights/);
    assert.deepEqual(problems, []);

    // Asked for WebGPU by name, the run stops and says why; nothing is replaced.
    await page.evaluate(() => { window.__training.length = 0; });
    await page.selectOption('#train-backend', 'webgpu');
    await page.click('#train-start');
    const refused = await waitForDone(page, 60_000);
    assert.equal(refused.reason, 'error');
    assert.equal(refused.steps, 0);
    await page.waitForSelector('#errors:not([hidden])');
    assert.match(await page.textContent('#errors'), /Training stopped: WebGPU was chosen but is not available here \(.+\)/);
    assert.equal(await page.textContent('#train-status'), 'Training did not start; nothing changed.');
    await page.close();
  });
});
