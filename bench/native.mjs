// The benchmark's native column: the same training steps timed natively, our engine
// (`cargo run --release --bin step-bench`) and PyTorch (`bench/pytorch-step.py`, where the given
// Python has torch; skipped with the reason where not), beside the tab's figures from the same
// run. Issue 12's goal reads off the last columns: a step in the tab no slower than PyTorch's
// on as many threads (ratio ≤ 1).
import { spawnSync } from 'node:child_process';
import { ROOT, fail } from './common.mjs';

// Without it glibc's malloc returns the step's large buffers to the system and maps them
// again on every step (PyTorch allocates its activations anew each step), which dominates.
const ENV = { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=33554432' };

export const NATIVE_KINDS = ['vae', 'gan'];
export const NATIVE_BATCHES = [128, 32];

function runJson(what, command, args, timeoutMs) {
  const r = spawnSync(command, args, { cwd: ROOT, env: ENV, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 24 });
  if (r.error) return { error: `${what}: ${r.error.message}` };
  if (r.status !== 0) return { error: `${what} exited with ${r.status}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' / ')}` };
  try {
    return { out: JSON.parse(r.stdout) };
  } catch {
    return { error: `${what} printed no JSON: ${r.stdout.slice(0, 200)}` };
  }
}

/**
 * Times the native steps before `deadline` (Date.now()): {ours: rows, oursError?, torch:
 * {version, rows} | {skipped}}, each row {kind, batch, threads, median_ms, fastest_ms}. Our
 * engine's failure is reported (`failNative` then fails the benchmark, after the report);
 * PyTorch's absence is a note.
 */
export function measureNative({ python, threads, steps, warmup, deadline }) {
  const left = () => Math.max(1000, deadline - Date.now());
  const common = ['--batches', NATIVE_BATCHES.join(','), '--steps', String(steps), '--warmup', String(warmup)];
  const ours = runJson('step-bench', 'cargo', ['run', '-q', '--release', '--bin', 'step-bench', '--', '--json',
    '--kinds', NATIVE_KINDS.join(','), ...common], left());
  const rows = ours.out?.rows ?? [];
  const probe = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { env: ENV, encoding: 'utf8', timeout: left() });
  if (probe.error || probe.status !== 0) {
    const why = probe.error?.message ?? (probe.stderr || '').trim().split('\n').at(-1);
    return { ours: rows, oursError: ours.error, torch: { skipped: `no PyTorch for ${python} (${why}); --python PATH names one that has it` } };
  }
  const torch = runJson('bench/pytorch-step.py', python, ['bench/pytorch-step.py', '--threads', [...new Set([1, threads])].join(','), ...common], left());
  if (torch.error) return { ours: rows, oursError: ours.error, torch: { skipped: torch.error } };
  return { ours: rows, oursError: ours.error, torch: { version: torch.out.torch, rows: torch.out.rows } };
}

/** Fails the benchmark if our native engine did not run (after the report is printed). */
export function failNative(native) {
  if (native?.oursError) fail(native.oursError);
}

/**
 * The table: per kind and batch, PyTorch on 1 and `threads` threads, our engine natively, our
 * engine in the tab on 1 thread (relaxed SIMD) and on its pool of `threads` (`tab(kind, batch,
 * threaded)` gives the kinds page's median ms), and the tab's ratios to PyTorch on as many threads.
 */
export function nativeReport(native, threads, tab, table) {
  const find = (rows, kind, batch, threads) => rows?.find((r) => r.kind === kind && r.batch === batch && r.threads === threads)?.median_ms;
  const ms = (v) => (v === undefined ? '—' : v.toFixed(2));
  const ratio = (a, b) => (a === undefined || b === undefined ? '—' : `${(a / b).toFixed(2)}`);
  const rows = [['kind', 'batch', 'PyTorch 1 thread', `PyTorch ${threads} threads`, 'ours native 1 thread', 'ours in the tab 1 thread',
    `ours in the tab ${threads} threads`, 'tab / PyTorch, 1 thread', `tab / PyTorch, ${threads} threads`]];
  for (const kind of NATIVE_KINDS) {
    for (const batch of NATIVE_BATCHES) {
      const [t1, t2] = [1, threads].map((n) => find(native.torch.rows, kind, batch, n));
      const [one, pool] = [tab(kind, batch, false), tab(kind, batch, true)];
      rows.push([kind, batch, ms(t1), ms(t2), ms(find(native.ours, kind, batch, 1)), ms(one), ms(pool), ratio(one, t1), ratio(pool, t2)]);
    }
  }
  const torchLine = native.torch.skipped ? `PyTorch: skipped: ${native.torch.skipped}` : `PyTorch ${native.torch.version}, the same models, losses and Adam`;
  const oursLine = native.oursError ? `ours natively: FAILED: ${native.oursError}` : 'ours natively and in the tab: the fast recipe\'s step (a GAN\'s averaged generator updated each step, which PyTorch\'s is not)';
  return `native, median ms per training step (one D and one G step for a GAN), and the tab's against PyTorch's ` +
    `(issue 12's goal: at most 1; the tab's figures from the kinds page above)\n${torchLine}\n${oursLine}\n${table(rows)}`;
}
