// Issue 12's goal measure: the tab's training step against PyTorch's on as many threads, in
// alternating blocks of steps. This machine's load comes in phases that last from a fraction of a
// second to minutes (a one-thread VAE step in the tab runs a whole block of steps at about 11 ms,
// the next at 18), so figures taken minutes apart compare two phases, not two implementations;
// here each block of the tab's steps sits between two of PyTorch's, as bench/ab.mjs does for two
// builds.
//
// The tab's side: the engine in two workers of one cross-origin isolated page, as the page's
// training worker runs it: the relaxed-SIMD binary on one thread (what a page that is not
// isolated trains on) and the threaded build on its pool. PyTorch's side: one
// `bench/pytorch-step.py --serve` process, its models kept between blocks. Both train the same
// layers, losses, step order and Adam (bench/pytorch-step.py says where they differ).
import { spawn, spawnSync } from 'node:child_process';
import readline from 'node:readline';
import { NATIVE_ENV, ROOT, fail, openIsolatedPage } from './common.mjs';

// A pause before each block: long enough for the side that ran last to go idle (PyTorch's OpenMP
// threads spin for a few ms after their last parallel region before they sleep; our pool's too),
// so neither side's block starts beside the other's spinning threads.
const SETTLE_MS = 50;

export const GOAL_KINDS = ['vae', 'gan'];
export const GOAL_BATCHES = [128, 32];

/** PyTorch's version where `python` has torch, else {skipped: why}. */
export function probeTorch(python, timeoutMs) {
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { env: NATIVE_ENV, encoding: 'utf8', timeout: timeoutMs });
  if (probe.error || probe.status !== 0) {
    const why = probe.error?.message ?? (probe.stderr || '').trim().split('\n').at(-1);
    return { skipped: `no PyTorch for ${python} (${why}); --python PATH names one that has it` };
  }
  return { version: probe.stdout.trim() };
}

/** `bench/pytorch-step.py --serve` under `python`: ask(request) → its reply; close(). */
function startTorch(python) {
  const child = spawn(python, ['bench/pytorch-step.py', '--serve'], { cwd: ROOT, env: NATIVE_ENV, stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-2000); });
  // (a failed start ends its stdout: the next ask reports it with this)
  child.on('error', (e) => { stderr += e.message; });
  const replies = readline.createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const ask = async (request, timeoutMs) => {
    child.stdin.write(`${JSON.stringify(request)}\n`);
    let timer;
    const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no reply within ${Math.round(timeoutMs / 1000)} s`)), timeoutMs); });
    try {
      const { value, done } = await Promise.race([replies.next(), late]);
      if (done) throw new Error('it exited');
      return JSON.parse(value);
    } catch (e) {
      fail(`bench/pytorch-step.py --serve: ${e.message}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`);
    } finally {
      clearTimeout(timer);
    }
  };
  return { ask, close: () => { child.stdin.end(); child.kill(); } };
}

/**
 * For each kind and batch, `rounds` rounds of four blocks of `block` steps (the tab on one
 * thread, PyTorch on one, the tab on its pool of `threads`, PyTorch on as many; every other round
 * in the opposite order), after `warmup` steps of each: rows of {kind, batch, tab1, torch1, tabN,
 * torchN}, each an array of ms per step.
 */
export async function measureGoal({ browser, serverUrl, python, threads, rounds, block, warmup, deadline }) {
  const left = () => Math.max(1000, deadline - Date.now());
  const torch = startTorch(python);
  const page = await openIsolatedPage(browser, serverUrl, 'latent-lab goal');
  try {
    const want = [1, threads].map((n) => `${n} thread${n === 1 ? '' : 's'}, relaxed SIMD`);
    const engines = await page.evaluate(async (threads) => {
      const { startEngineWorker } = await import('/bench/engine-client.js');
      const [images, labels] = await Promise.all(['images', 'labels'].map(async (f) => new Uint8Array(await (await fetch(`/bench/.data/${f}.u8`)).arrayBuffer())));
      const one = await startEngineWorker('relaxed', 1);
      const pool = await startEngineWorker('threads', threads);
      window.goal = { one, pool, images, labels };
      return [one.engine, pool.engine];
    }, threads);
    if (engines.join() !== want.join()) fail(`the goal's workers say they are "${engines.join('" and "')}", not "${want.join('" and "')}"`);
    const tabBlock = (worker, count) => page.evaluate(async ({ worker, count }) =>
      (await window.goal[worker].call({ cmd: 'steps', count })).steps.map((s) => s.ms), { worker, count });
    const rows = [];
    for (const kind of GOAL_KINDS) {
      for (const batch of GOAL_BATCHES) {
        await page.evaluate(async ({ kind, batch }) => {
          for (const w of [window.goal.one, window.goal.pool]) {
            await w.call({ cmd: 'model', kind, seed: 1, batch, images: window.goal.images, labels: window.goal.labels });
          }
        }, { kind, batch });
        const sides = {
          tab1: () => tabBlock('one', block),
          torch1: async () => (await torch.ask({ kind, batch, threads: 1, steps: block }, left())).ms,
          tabN: () => tabBlock('pool', block),
          torchN: async () => (await torch.ask({ kind, batch, threads, steps: block }, left())).ms,
        };
        if (warmup) {
          await tabBlock('one', warmup);
          await tabBlock('pool', warmup);
          for (const n of new Set([1, threads])) await torch.ask({ kind, batch, threads: n, steps: warmup }, left());
        }
        const row = { kind, batch, tab1: [], torch1: [], tabN: [], torchN: [] };
        for (let r = 0; r < rounds; r++) {
          const order = Object.keys(sides);
          for (const side of r % 2 ? order.reverse() : order) {
            await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
            row[side].push(...(await sides[side]()));
          }
          if (Date.now() > deadline) fail('the goal measure ran past --timeout');
        }
        rows.push(row);
      }
    }
    return rows;
  } finally {
    torch.close();
    await page.close().catch(() => {});
  }
}
