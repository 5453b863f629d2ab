// A bounded soak: training in the tab leaks no memory. The 20,000-step soak at the page's sizes is
// `node bench/soak.mjs`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, readyPage } from './harness.mjs';
import { soakInPage } from '../../bench/soak.mjs';

let env;
before(async () => { env = await launch(); });
after(async () => { await env?.close(); });

test('the wasm memory stops growing after the first epoch: a VAE at 4,000 steps as at 2,000', async (t) => {
  const { page, problems } = await readyPage(env);
  // A small network (hidden width 8) at batch 32 (1,875 steps an epoch), so that two epochs and
  // more take seconds; `node bench/soak.mjs --kind gan` soaks the GAN (the trainer is the same).
  for (const [kind, batch, steps] of [['vae', 32, 4000]]) {
    const t0 = Date.now();
    const { memory, stepsPerEpoch } = await page.evaluate(soakInPage, { kind, hidden: 8, batch, steps, every: 500 });
    t.diagnostic(`${kind}: ${((Date.now() - t0) / 1000).toFixed(1)} s; memory (MiB) ${memory.map(([s, b]) => `${s}: ${(b / 2 ** 20).toFixed(1)}`).join(', ')}`);
    assert.equal(stepsPerEpoch, Math.ceil(60000 / batch));
    const at = (step) => memory.find(([s]) => s === step)[1];
    assert.ok(steps / 2 > stepsPerEpoch, 'the halfway point is past the first epoch');
    assert.equal(at(steps), at(steps / 2), `${kind}: the memory grew from ${at(steps / 2)} bytes at step ${steps / 2} to ${at(steps)} at step ${steps}`);
  }
  assert.deepEqual(problems, []);
  await page.close();
});
