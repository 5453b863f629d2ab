// The page's side of bench/engine-worker.js: a worker with one of our builds loaded, and `call`
// for its commands (a rejection carries the worker's error). Used by bench.js and the tests.

/**
 * A worker over `binary` ('threads' | 'threads-plain' | 'relaxed' | 'plain'; a threaded one with
 * `threads` threads), its files read from `dir` where given: {worker, call, engine, loadMs}.
 */
export async function startEngineWorker(binary, threads = 2, dir = null) {
  const worker = new Worker('/bench/engine-worker.js', { type: 'module' });
  const call = (msg) => new Promise((resolve, reject) => {
    worker.onmessage = ({ data: reply }) => (reply.error ? reject(new Error(`${binary}: ${reply.error}`)) : resolve(reply));
    worker.postMessage(msg);
  });
  const { engine, loadMs } = await call({ cmd: 'load', binary, threads, dir });
  return { worker, call, engine, loadMs };
}
