// What the two benchmarks (run.mjs, webgpu.mjs) share: their failure type and command-line parsing.
import { parseArgs } from 'node:util';

/** A failure the benchmark explains in its message (no stack trace needed). */
export class BenchError extends Error {}
export const fail = (msg) => { throw new BenchError(msg); };

/**
 * The command line: string options with `defaults` ({name: 'default'}), boolean `flags`, and
 * --help (prints `usage`, exits). Each option in `wholeNumbers` must be a whole number, at least
 * 1, or 0 for those in `zeroAllowed`; they come back as numbers in `o`, beside the raw `values`.
 */
export function parseOptions({ usage, defaults, flags = [], wholeNumbers, zeroAllowed = [] }) {
  const options = { help: { type: 'boolean', short: 'h', default: false } };
  for (const [name, value] of Object.entries(defaults)) options[name] = { type: 'string', default: value };
  for (const name of flags) options[name] = { type: 'boolean', default: false };
  let parsed;
  try {
    parsed = parseArgs({ options });
  } catch (e) {
    fail(`${e.message}\n${usage}`);
  }
  const { values } = parsed;
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const o = {};
  for (const k of wholeNumbers) {
    const v = Number(values[k]);
    const min = zeroAllowed.includes(k) ? 0 : 1;
    if (!Number.isInteger(v) || v < min) fail(`--${k} ${values[k]}: expected a whole number, at least ${min}`);
    o[k] = v;
  }
  return { values, o };
}
