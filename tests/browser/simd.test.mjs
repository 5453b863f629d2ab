// The whole wasm module in two builds: relaxed SIMD (the engine's products in f32x4.relaxed_madd)
// where the browser validates it, plain simd128 elsewhere; the page loads the one it can run, the
// training worker too, and the Train panel says which the binary is. Both train alike.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { isolatedEngineLine, launch, openPage, trainBrieflyOnCpu } from './harness.mjs';

let env;
before(async () => { env = await launch(); });
after(async () => { await env?.close(); });

/** The page at `path`, ready, with the wasm binaries it fetched recorded. */
async function pageFetchingWasm(path) {
  const fetched = [];
  const opened = await openPage(env, path, async (page) => {
    page.on('request', (r) => { if (r.url().endsWith('.wasm')) fetched.push(new URL(r.url()).pathname); });
  });
  await opened.page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  return { ...opened, fetched };
}

/** The Train panel's engine line after a short run on the CPU. */
const engineLine = async (page) => (await trainBrieflyOnCpu(page)).line;

test('Chromium loads the relaxed-SIMD binary, in the page and in the training worker, and says so; ?simd=plain loads the plain one', async () => {
  const relaxed = await pageFetchingWasm('');
  const { page } = relaxed;
  assert.equal(await page.evaluate(async () => (await import('/www/assets.js')).SIMD), 'relaxed');
  // (the worker's is the threaded build: this page is cross-origin isolated, tests/browser/threads.test.mjs)
  assert.equal(await engineLine(page), await isolatedEngineLine(page, 'relaxed SIMD'));
  // The binary says what it is: the page's own module, and the worker's (the line above).
  assert.equal(await page.evaluate(async () => (await import('/pkg/latent_lab.js')).cpu_engine()), '1 thread, relaxed SIMD');
  assert.ok(relaxed.fetched.includes('/pkg/latent_lab_relaxed_bg.wasm'), relaxed.fetched.join(' '));
  assert.ok(!relaxed.fetched.includes('/pkg/latent_lab_bg.wasm'), `the plain binary was fetched too: ${relaxed.fetched.join(' ')}`);
  // The worker's threaded build, of the same SIMD.
  assert.ok(relaxed.fetched.includes('/pkg/threads/latent_lab_relaxed_bg.wasm'), relaxed.fetched.join(' '));
  assert.ok(!relaxed.fetched.includes('/pkg/threads/latent_lab_bg.wasm'), relaxed.fetched.join(' '));
  assert.deepEqual(relaxed.problems, []);
  await page.close();

  // What a browser without relaxed SIMD (Safari) runs: forced by the address, page and worker alike.
  const plain = await pageFetchingWasm('?simd=plain');
  assert.equal(await plain.page.evaluate(async () => (await import('/www/assets.js')).SIMD), 'plain');
  assert.equal(await engineLine(plain.page), await isolatedEngineLine(plain.page, 'SIMD'));
  assert.equal(await plain.page.evaluate(async () => (await import('/pkg/latent_lab.js')).cpu_engine()), '1 thread, SIMD');
  assert.ok(!plain.fetched.includes('/pkg/latent_lab_relaxed_bg.wasm'), plain.fetched.join(' '));
  assert.ok(plain.fetched.includes('/pkg/latent_lab_bg.wasm'), plain.fetched.join(' '));
  assert.ok(plain.fetched.includes('/pkg/threads/latent_lab_bg.wasm'), plain.fetched.join(' '));
  assert.ok(!plain.fetched.includes('/pkg/threads/latent_lab_relaxed_bg.wasm'), plain.fetched.join(' '));
  assert.deepEqual(plain.problems, []);
  await plain.page.close();
});

test('the relaxed-SIMD and plain binaries train every engine kind alike: step 1 to 1e-4, steps 21-30 to 2%', async () => {
  const { page, problems } = await openPage(env, '?simd=plain');
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const runs = await page.evaluate(async () => {
    // The same glue twice, under two addresses: two module instances, one over each binary.
    const plain = await import('/pkg/latent_lab.js?binary=plain');
    const relaxed = await import('/pkg/latent_lab.js?binary=relaxed');
    await plain.default({ module_or_path: '/pkg/latent_lab_bg.wasm' });
    await relaxed.default({ module_or_path: '/pkg/latent_lab_relaxed_bg.wasm' });
    const { fetchBytes, URLS } = await import('/www/assets.js');
    const data = new Uint8Array(await fetchBytes(URLS.mnist, 'MNIST'));
    const train = (lab, kind) => {
      const m = lab.Model.create(kind, 7, undefined, 64); // hidden 64: the curves' width in tests/engine.rs
      m.set_dataset_safetensors(data);
      const losses = [];
      for (let i = 0; i < 30; i++) {
        const s = m.train_step();
        losses.push(s.loss ?? s.d_loss);
        s.free();
      }
      m.free();
      return losses;
    };
    const kinds = ['vae', 'cvae', 'gan', 'cgan', 'ae', 'conv-vae', 'conv-ae'];
    return {
      engines: [plain.cpu_engine(), relaxed.cpu_engine()],
      kinds: kinds.map((kind) => ({ kind, plain: train(plain, kind), relaxed: train(relaxed, kind) })),
    };
  });
  assert.deepEqual(runs.engines, ['1 thread, SIMD', '1 thread, relaxed SIMD']);
  const rel = (a, b) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b));
  const mean = (v) => v.reduce((s, x) => s + x, 0) / v.length;
  let differ = 0;
  for (const { kind, plain, relaxed } of runs.kinds) {
    assert.ok(plain.every(Number.isFinite) && relaxed.every(Number.isFinite), `${kind}: a loss was not finite`);
    assert.ok(rel(plain[0], relaxed[0]) < 1e-4, `${kind} step 1: plain ${plain[0]}, relaxed ${relaxed[0]}`);
    const [p, r] = [mean(plain.slice(20)), mean(relaxed.slice(20))];
    assert.ok(rel(p, r) < 0.02, `${kind} steps 21-30: plain ${p}, relaxed ${r}`);
    if (plain.some((x, i) => x !== relaxed[i])) differ++;
  }
  // Fused multiply-adds round once: the two builds are two computations, not one loaded twice.
  assert.ok(differ > 0, 'the two binaries gave bit-identical losses for every kind');
  assert.deepEqual(problems, []);
  await page.close();
});
