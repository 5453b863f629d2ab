// The benchmark's native column: our engine's training steps timed natively
// (`cargo run --release --bin step-bench`), and the table issue 12's goal reads: those beside the
// tab's steps and PyTorch's on as many threads, timed alternately by bench/goal.mjs (where
// --python has torch; the kinds page's figures for the tab, and a note, where not).
import { spawnSync } from 'node:child_process';
import { GOAL_BATCHES, GOAL_KINDS } from './goal.mjs';
import { NATIVE_ENV, ROOT, fail, quantile } from './common.mjs';

/**
 * Times our native steps (every goal kind and batch) before `deadline` (Date.now()): {rows, peak}
 * (rows of {kind, batch, threads, median_ms, fastest_ms}; peak: one thread's GFLOP/s of 4-lane
 * fused multiply-adds, the tab's products' ceiling, or null without FMA), or {error}.
 */
export function measureNative({ steps, warmup, deadline }) {
  const args = ['run', '-q', '--release', '--bin', 'step-bench', '--', '--json', '--kinds', GOAL_KINDS.join(','),
    '--batches', GOAL_BATCHES.join(','), '--steps', String(steps), '--warmup', String(warmup)];
  const r = spawnSync('cargo', args, { cwd: ROOT, env: NATIVE_ENV, encoding: 'utf8', timeout: Math.max(1000, deadline - Date.now()), maxBuffer: 1 << 24 });
  if (r.error) return { error: `step-bench: ${r.error.message}` };
  if (r.status !== 0) return { error: `step-bench exited with ${r.status}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' / ')}` };
  try {
    const out = JSON.parse(r.stdout);
    return { rows: out.rows, peak: out.fma128_gflops };
  } catch {
    return { error: `step-bench printed no JSON: ${r.stdout.slice(0, 200)}` };
  }
}

/** Fails the benchmark if our native engine did not run (after the report is printed). */
export function failNative(native) {
  if (native?.error) fail(native.error);
}

/**
 * The table: per kind and batch, our engine natively on one thread, then on one thread and on
 * `threads`, the tab's step, PyTorch's and their ratio, the goal's figure. `goal` is
 * {torch: {version} | {skipped}, rows} from bench/goal.mjs (rows absent where PyTorch was
 * skipped: then `tab(kind, batch, threaded)`, the kinds page's median ms, stands in).
 */
export function nativeReport(native, goal, threads, tab, table) {
  const ms = (v) => (v === undefined ? '—' : v.toFixed(2));
  // median (fastest tenth)
  const spread = (xs) => (xs?.length ? `${ms(quantile(xs, 0.5))} (${ms(quantile(xs, 0.1))})` : '—');
  const ratio = (a, b) => (a?.length && b?.length
    ? `${(quantile(a, 0.5) / quantile(b, 0.5)).toFixed(2)} (${(quantile(a, 0.1) / quantile(b, 0.1)).toFixed(2)})` : '—');
  const rows = [['kind', 'batch', 'ours native, 1 thread', 'PyTorch, 1 thread', 'tab, 1 thread', 'tab / PyTorch, 1 thread',
    `PyTorch, ${threads} threads`, `tab, ${threads} threads`, `tab / PyTorch, ${threads} threads`]];
  for (const kind of GOAL_KINDS) {
    for (const batch of GOAL_BATCHES) {
      const mine = native.rows?.find((r) => r.kind === kind && r.batch === batch)?.median_ms;
      const g = goal.rows?.find((r) => r.kind === kind && r.batch === batch);
      // without PyTorch: the kinds page's medians, alone
      const [tab1, tabN] = g ? [spread(g.tab1), spread(g.tabN)] : [ms(tab(kind, batch, false)), ms(tab(kind, batch, true))];
      rows.push([kind, batch, ms(mine), spread(g?.torch1), tab1, ratio(g?.tab1, g?.torch1), spread(g?.torchN), tabN, ratio(g?.tabN, g?.torchN)]);
    }
  }
  const torchLine = goal.torch.skipped
    ? `PyTorch: skipped: ${goal.torch.skipped}; the tab's figures are the kinds page's medians`
    : `PyTorch ${goal.torch.version}, the same models, losses and Adam, timed alternately with the tab (bench/goal.mjs): ` +
      `${goal.rounds} rounds of a block of ${goal.block} steps of each`;
  const oursLine = native.error ? `ours natively: FAILED: ${native.error}`
    : 'ours: the fast recipe\'s step (a GAN\'s averaged generator updated each step, which PyTorch\'s is not)' +
      (goal.rows ? '; the tab\'s one thread the relaxed-SIMD binary, its threads the threaded build, each in a worker' : '') + '\n' +
      (native.peak ? `the tab's ceiling: 4-lane fused multiply-adds (what f32x4.relaxed_madd compiles to) run at ${native.peak.toFixed(1)} GFLOP/s ` +
        'on one thread of this CPU, natively (step-bench)' : 'this CPU has no FMA: the tab\'s products are separate multiplies and adds');
  return 'the goal: ms per training step (one D and one G step for a GAN), median (fastest tenth), and the tab\'s against PyTorch\'s ' +
    `on as many threads (issue 12's goal: at most 1 by the median)\n${torchLine}\n${oursLine}\n${table(rows)}`;
}
