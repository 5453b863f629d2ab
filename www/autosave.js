// The reader's work, kept in this browser (IndexedDB, this origin) across reloads: the training
// run the worker autosaves as it trains (one at a time: the page trains one model at a time), and
// the models trained here, which stay in the Model list until deleted. The worker writes runs;
// the page lists, resumes and deletes them. No DOM here: the worker imports it too.
//
// A run:   {id: 'run', runId, key, name, caps, step, epoch, totalSteps, seconds, savedAt, state:
//           Uint8Array (Model.save_run's bytes), curves: {field: number[]}, backend}; `runId` names
//           the run across its autosaves, restarts and resumes (one slot: the latest run to save wins)
// A model: {id, name, weights: Uint8Array (Model.save's bytes), savedAt}
const DB_NAME = 'latent-lab';
const DB_VERSION = 1;
const RUNS = 'runs';
const MODELS = 'models';
export const RUN_ID = 'run';

let db = null;

/** The database, opened once; a browser without IndexedDB (or refusing it) rejects with why. */
function open() {
  if (!db) {
    db = new Promise((resolve, reject) => {
      if (typeof indexedDB === 'undefined') throw new Error('this browser offers no IndexedDB here');
      const req = indexedDB.open(DB_NAME, DB_VERSION);
      req.onupgradeneeded = () => {
        for (const store of [RUNS, MODELS]) req.result.createObjectStore(store, { keyPath: 'id' });
      };
      req.onsuccess = () => {
        const opened = req.result;
        // Another tab upgrading the database, or the browser closing it: open afresh next time.
        opened.onversionchange = () => {
          opened.close();
          db = null;
        };
        opened.onclose = () => (db = null);
        resolve(opened);
      };
      req.onerror = () => reject(req.error);
    });
    db.catch(() => (db = null)); // unavailable now (a private window); a later call may try again
  }
  return db;
}

/** One request in its own transaction, resolved when the transaction has committed. */
async function request(store, mode, make) {
  const tx = (await open()).transaction(store, mode);
  const req = make(tx.objectStore(store));
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error ?? req.error);
    tx.onabort = () => reject(tx.error ?? new Error('the storage transaction was aborted'));
  });
}

export const putRun = (run) => request(RUNS, 'readwrite', (s) => s.put({ ...run, id: RUN_ID }));
export const getRun = () => request(RUNS, 'readonly', (s) => s.get(RUN_ID));
/** Deletes the saved run: only if it is run `runId`'s (another run may have saved over it), or whichever it is. */
export const deleteRun = (runId) => request(RUNS, 'readwrite', (s) => {
  const saved = s.get(RUN_ID);
  saved.onsuccess = () => {
    if (runId === undefined || saved.result?.runId === runId) s.delete(RUN_ID);
  };
  return saved;
});

export const putModel = (model) => request(MODELS, 'readwrite', (s) => s.put(model));
export const listModels = () => request(MODELS, 'readonly', (s) => s.getAll());
export const deleteModel = (id) => request(MODELS, 'readwrite', (s) => s.delete(id));

/** A storage error in words a reader can act on (full, unavailable, or what the browser said). */
export function storageProblem(e) {
  if (e?.name === 'QuotaExceededError') return 'the browser\'s storage for this page is full';
  return `the browser refused to store it (${e?.name ? `${e.name}: ` : ''}${e?.message ?? e})`;
}

/** "just now", "1 minute ago", "5 minutes ago", "2 hours ago", from a `Date.now()` time. */
export function ago(savedAt, now = Date.now()) {
  const minutes = Math.floor((now - savedAt) / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 120) return `${minutes} minute${minutes === 1 ? '' : 's'} ago`;
  return `${Math.floor(minutes / 60)} hours ago`;
}
