// Nothing a reader trains is lost: the run autosaves to IndexedDB as it trains, a reload offers to
// resume it and it goes on with the very minibatch it would have taken next, a worker killed
// mid-epoch restarts from the autosave, the models trained here stay in the Model list until
// deleted, and storage that is full says so while training goes on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, canvasStats, recordWorkerMessages } from './harness.mjs';

let env;
before(async () => { env = await launch(); });
after(async () => { await env?.close(); });

const ready = (page) => page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
const messages = (page) => page.evaluate(() => window.__training);
const losses = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('losses') ?? '{}'));

/** Waits for an autosave that lands after step `after`, then `more` steps; returns its step. */
async function autosavedAfter(page, after, more) {
  const h = await page.waitForFunction((a) => window.__training.find((m) => m.autosaved && m.autosaved.step > a)?.autosaved.step, after, { timeout: 120_000 });
  const step = await h.jsonValue();
  await page.waitForFunction((s) => window.__training.some((m) => m.step >= s && m.loss !== undefined), step + more, { timeout: 60_000 });
  return step;
}

/** Trains the latent-2 VAE for `epochs` at batch 32 (1,875 steps an epoch; the tests stop it long before). */
async function startTraining(page, epochs = 1) {
  await page.selectOption('#model-select', 'vae-z2');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('VAE, latent 2:'));
  await page.fill('#train-epochs', String(epochs));
  await page.click('#train-start');
}

test('a reload offers to resume the autosaved run, which goes on with the same step and the same minibatch; the model it trained stays in the list until deleted', async () => {
  const { page, problems } = await openPage(env, '?autosave=4', (p) => p.addInitScript(recordWorkerMessages, true));
  await ready(page);
  assert.equal(await page.isHidden('#train-resume'), true, 'a fresh browser offers a run to resume');
  await startTraining(page);
  const saved = await autosavedAfter(page, 20, 5);
  assert.match(await page.textContent('#train-autosave'), new RegExp(`^Autosaved at step \\d+: a reload, or a crash, resumes from there\\.$`));
  // The next autosave is 4 s after this one: reload well before it.
  await page.reload();
  await ready(page);
  await page.waitForSelector('#train-resume:not([hidden])');
  const offer = await page.textContent('#train-resume-button');
  const [, step] = /^Resume training \(step (\d+), saved just now\)$/.exec(offer) ?? assert.fail(`offer: ${offer}`);
  assert.equal(Number(step), saved, 'the offer is not the last autosave');
  assert.match(await page.textContent('#train-resume-what'), new RegExp(`^VAE, latent 2: step ${saved} of 1875, epoch 0\\.\\d\\d\\.$`));
  const before = await losses(page);
  assert.ok(before[saved + 1], `step ${saved + 1} was not trained before the reload`);

  await page.click('#train-resume-button');
  await page.waitForFunction((s) => window.__training.filter((m) => m.loss !== undefined && m.step > s).length >= 5, saved, { timeout: 60_000 });
  const msgs = await messages(page);
  const resumed = msgs.find((m) => m.resumed).resumed;
  assert.equal(resumed.step, saved);
  assert.equal(resumed.totalSteps, 1875);
  assert.equal(resumed.curves.loss.length, saved, 'the loss curve so far did not come back');
  const after = msgs.filter((m) => m.loss !== undefined);
  assert.equal(after[0].step, saved + 1, 'the resumed run did not go on from the autosaved step');
  // The same minibatch and noise as before the reload: the very same losses, step by step.
  for (const m of after.slice(0, 5)) {
    const was = before[m.step];
    if (was) assert.equal(m.loss, was[0], `step ${m.step}: ${m.loss} after resuming, ${was[0]} before the reload`);
  }
  assert.ok((await canvasStats(page, '#loss-curve')).lit > 20, 'the loss curve is not drawn');
  await page.click('#train-stop');
  await page.waitForSelector('#train-start:not([disabled])', { timeout: 30_000 });
  assert.match(await page.textContent('#train-status'), /stopped; the page now uses these weights, and this browser keeps them/);
  // The run kept at Stop is at the last step the page was told of, with a point for every step.
  const stoppedAt = Math.max(...(await messages(page)).filter((m) => m.loss !== undefined).map((m) => m.step));

  // After another reload: the model trained here is in the list, draws, and can be deleted.
  await page.reload();
  await ready(page);
  const kept = await page.$eval('#model-select', (s) => [...s.options].filter((o) => o.value.startsWith('kept:')).map((o) => [o.value, o.textContent]));
  assert.deepEqual(kept, [['kept:vae-z2', 'VAE, latent 2 · trained here']]);
  await page.selectOption('#model-select', 'kept:vae-z2');
  await page.waitForFunction(() => document.querySelector('#status').textContent.startsWith('VAE, latent 2 · trained here:'));
  assert.ok((await canvasStats(page, '#samples')).lit > 500, 'the kept model draws nothing');
  // Stopped, the run is kept too, to go on with later.
  assert.equal(await page.textContent('#train-resume-button'), `Resume training (step ${stoppedAt}, saved just now)`);
  const points = await page.evaluate(async () => (await (await import('/www/autosave.js')).getRun()).curves.loss.length);
  assert.equal(points, stoppedAt, 'the kept curve has a point for every step');
  await page.click('#model-delete');
  await page.waitForFunction(() => ![...document.querySelector('#model-select').options].some((o) => o.value.startsWith('kept:')));
  await page.click('#train-discard');
  await page.waitForSelector('#train-resume', { state: 'hidden' });
  await page.reload();
  await ready(page);
  assert.equal(await page.$eval('#model-select', (s) => [...s.options].some((o) => o.value.startsWith('kept:'))), false, 'the deleted model came back');
  assert.equal(await page.isHidden('#train-resume'), true, 'the discarded run is still offered');
  assert.deepEqual(problems, []);
  await page.close();
});

/**
 * Trains with autosave, has `button` end the worker mid-epoch, and checks that the page restarted
 * from the autosave saying `why` (a pattern) and how many steps were lost, and trained them again
 * alike. `slowdown`: the page's main thread made that many times slower (Chromium's CPU throttling).
 */
async function restartsFromTheAutosave(query, button, why, slowdown = 1) {
  const { page, problems } = await openPage(env, query, (p) => p.addInitScript(recordWorkerMessages, true));
  await ready(page);
  if (slowdown > 1) await (await page.context().newCDPSession(page)).send('Emulation.setCPUThrottlingRate', { rate: slowdown });
  // Two epochs: a slowed page takes longer to get to Stop than the one-thread worker to an epoch's end.
  await startTraining(page, slowdown > 1 ? 2 : 1);
  const saved = await autosavedAfter(page, 10, 30);
  await page.click(button);
  const note = await page.waitForFunction(() => {
    const t = document.querySelector('#train-note');
    return !t.hidden && t.textContent;
  }, null, { timeout: 20_000 });
  // What the new worker says comes after this: the old one's last steps are not the new one's.
  const mark = await page.evaluate(() => window.__training.length);
  const reached = await page.evaluate((mark) => Math.max(...window.__training.slice(0, mark).filter((m) => m.loss !== undefined).map((m) => m.step)), mark);
  const pattern = new RegExp(`^The training worker stopped \\(${why}\\); training restarted from the autosave at step (\\d+), and the (\\d+) steps after it were lost and are trained again\\.$`);
  const [, from, lost] = pattern.exec(await note.jsonValue()) ?? assert.fail(await note.jsonValue());
  assert.ok(Number(from) >= saved, `restarted from ${from}, before the autosave at ${saved}`);
  assert.ok(Number(from) < reached, `restarted from ${from}, at or after the last step reported before (${reached}): no step to train again`);
  assert.ok(Number(lost) >= 1 && Number(from) + Number(lost) >= reached, `${lost} steps lost from ${from}, but ${reached} had been reported`);
  await page.waitForFunction(([s, mark]) => window.__training.slice(mark).filter((m) => m.loss !== undefined).at(-1)?.step > s + 5, [reached, mark], { timeout: 60_000 });
  const again = await losses(page);
  // The lost steps, trained again, took the same minibatches: the same losses (on one thread
  // as on the pool: a threaded step's numbers are the one-thread build's, bit for bit).
  for (let s = Number(from) + 1; s <= reached; s++) {
    assert.ok(again[s]?.length >= 2, `step ${s} was not trained again: ${again[s]}`);
    assert.equal(new Set(again[s]).size, 1, `step ${s}: ${again[s]}`);
  }
  assert.equal(await page.isDisabled('#train-stop'), false, 'training is not going on after the restart');
  const engine = await page.textContent('#train-engine');
  await page.click('#train-stop');
  await page.waitForSelector('#train-start:not([disabled])', { timeout: 30_000 });
  assert.deepEqual(problems, []);
  await page.close();
  return engine;
}

test('a worker killed mid-epoch restarts from the autosave, says how many steps were lost, and trains them again alike', async () => {
  await restartsFromTheAutosave('?autosave=3&debug', '#train-crash', 'it was killed by “Simulate a crashed worker”');
});

test('a hung worker is taken for dead after its silence, restarted from the autosave on one thread, and trains the lost steps again alike', async () => {
  // ?silence=3: the watchdog waits 3 s, not the page's minute (or 20 times the slowest step
  // seen, if longer: an autosave's step can take a few hundred ms). The page's thread three
  // times slower, as on a slow machine: its lateness in hearing of steps is not the worker's
  // (timed by when the page heard, steps seemed to take 0.9-2 s, and the wait grew to 17-40 s).
  const engine = await restartsFromTheAutosave('?autosave=3&debug&silence=3', '#train-hang', 'it did not answer for \\d+ s', 3);
  assert.match(engine, /^On the CPU: 1 thread, (relaxed )?SIMD \(one thread asked for\)\.$/);
});

test('storage that is full says so, and training goes on to the end', async () => {
  const { page, problems } = await openPage(env, '?autosave=1', async (p) => {
    // The browser's own quota for this origin, made too small for a run (a few MB).
    const cdp = await p.context().newCDPSession(p);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: env.server.url.replace(/\/$/, ''), quotaSize: 200_000 });
  });
  await ready(page);
  await page.selectOption('#model-select', 'vae-z2');
  // 938 steps: several seconds, so the autosaves every second (?autosave=1) come while it runs
  // (94 steps took under a second on a fast machine of this kind).
  await page.fill('#train-epochs', '0.5');
  await page.click('#train-start');
  await page.waitForSelector('#train-autosave:not([hidden])', { timeout: 60_000 });
  assert.equal(await page.textContent('#train-autosave'),
    "Autosave is off: the browser's storage for this page is full. Training goes on; Save weights keeps the result.");
  await page.waitForSelector('#train-start:not([disabled])', { timeout: 60_000 });
  const status = await page.textContent('#train-status');
  assert.match(status, /^step 938\/938 · .* · done; the page now uses these weights \(this browser could not keep them: the browser's storage for this page is full; Save weights does\)$/);
  assert.deepEqual(problems, []);
  await page.close();
});
