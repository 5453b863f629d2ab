// Threads in the tab: a cross-origin isolated page's training worker runs the threaded build
// (pkg/threads/: the engine's products split across a pool of Web Workers) and says so; a page
// that is not isolated, or that asks for one thread, trains on one and says why; and the threaded
// build trains every engine kind to the same losses as the one-thread build, bit for bit (each
// thread computes whole rows of a product, as one thread would).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { isolatedEngineLine, launch, openPage, trainBrieflyOnCpu } from './harness.mjs';

const envs = [];
after(async () => { await Promise.all(envs.map((e) => e.close())); });
async function env(options) {
  const e = await launch(options);
  envs.push(e);
  return e;
}

/** The page at `path` trained briefly on the CPU (harness.mjs): its engine line and status, and whether it is isolated. */
async function engineLine(e, path = '') {
  const { page, problems } = await openPage(e, path);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const isolated = await page.evaluate(() => self.crossOriginIsolated);
  const expected = await isolatedEngineLine(page, 'relaxed SIMD');
  const { line, status } = await trainBrieflyOnCpu(page);
  assert.deepEqual(problems, []);
  await page.close();
  return { line, isolated, status, expected };
}

test('an isolated page trains on its threads (2 here) and says so; ?threads=1 trains on one and says why', async () => {
  const e = await env();
  const threaded = await engineLine(e);
  assert.equal(threaded.isolated, true);
  assert.equal(threaded.line, threaded.expected); // 'On the CPU: 2 threads, relaxed SIMD.' on 2 cores
  assert.match(threaded.status, /· done; the page now uses these weights/, threaded.status);
  const one = await engineLine(e, '?threads=1');
  assert.equal(one.line, 'On the CPU: 1 thread, relaxed SIMD (one thread asked for).');
});

test('a page that is not cross-origin isolated trains on one thread and says why', async () => {
  const e = await env({ isolated: false });
  const { line, isolated } = await engineLine(e);
  assert.equal(isolated, false);
  assert.equal(line, 'On the CPU: 1 thread, relaxed SIMD (page not cross-origin isolated).');
});

test('the threaded builds train every engine kind to the one-thread builds\' losses, bit for bit, the conv kinds too', async () => {
  const e = await env();
  const { page, problems } = await openPage(e);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const runs = await page.evaluate(async () => {
    const { fetchBytes, URLS } = await import('/www/assets.js');
    const data = await fetchBytes(URLS.mnist, 'MNIST');
    const { startEngineWorker } = await import('/bench/engine-client.js');
    const start = async (binary) => {
      const { worker: w, call, engine } = await startEngineWorker(binary, 2);
      return { w, call, engine };
    };
    const [threads, one] = await Promise.all([start('threads'), start('relaxed')]);
    const kinds = [];
    // Default sizes at batch 128: every layer's products are large enough to split (the conv
    // kinds at batch 32, fewer steps: most of their im2col products have thousands of rows and
    // split; the conv autoencoder's first and last convolutions are too small to).
    for (const [kind, batch, count] of [['vae', 128, 12], ['cvae', 128, 12], ['gan', 128, 12], ['cgan', 128, 12], ['ae', 128, 12],
      ['conv-vae', 32, 4], ['conv-ae', 32, 4]]) {
      const losses = {};
      for (const [name, w] of [['threads', threads], ['one', one]]) {
        await w.call({ cmd: 'model', kind, seed: 3, batch, safetensors: data });
        const { steps } = await w.call({ cmd: 'steps', count });
        losses[name] = steps.map((s) => s.losses.loss ?? s.losses.d_loss);
      }
      kinds.push({ kind, count, ...losses });
    }
    threads.w.terminate();
    one.w.terminate();
    // The plain simd128 pair (what a browser without relaxed SIMD runs), on the VAE.
    const [threadsPlain, plain] = await Promise.all([start('threads-plain'), start('plain')]);
    const plainVae = {};
    for (const [name, w] of [['threads', threadsPlain], ['one', plain]]) {
      await w.call({ cmd: 'model', kind: 'vae', seed: 3, batch: 128, safetensors: data });
      const { steps } = await w.call({ cmd: 'steps', count: 12 });
      plainVae[name] = steps.map((s) => s.losses.loss);
      w.w.terminate();
    }
    kinds.push({ kind: 'vae (simd128)', ...plainVae });
    return { engines: [threads.engine, one.engine, threadsPlain.engine, plain.engine], kinds };
  });
  assert.deepEqual(runs.engines, ['2 threads, relaxed SIMD', '1 thread, relaxed SIMD', '2 threads, SIMD', '1 thread, SIMD']);
  for (const { kind, count, threads, one } of runs.kinds) {
    const steps = count ?? 12;
    assert.equal(threads.length, steps, kind);
    assert.ok(threads.every(Number.isFinite), `${kind}: ${threads}`);
    assert.deepEqual(threads, one, `${kind}: the threaded build's losses differ from one thread's`);
    assert.ok(new Set(threads).size > steps / 2, `${kind}: the losses barely move (${threads})`);
  }
  assert.deepEqual(problems, []);
  await page.close();
});
