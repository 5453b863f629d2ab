// Training runs here, off the page's thread, on its own instance of the wasm module.
//
// in:  {cmd: 'start', weights: Uint8Array | null, kind, latent, hidden, seed, epochs,
//       recipe?: 'fast' | 'tutorial' | 'custom' (a recipe also sets what the panel does not show:
//       a GAN's averaged generator, the cGAN's label gain, Adam's β2; custom keeps a fresh or loaded
//       model's, the fast recipe's), batchSize,
//       learningRate, lrDecay: 'inverse-epoch' | 'none', backend: 'auto' | 'webgpu' | 'cpu',
//       syncInterval?, maxRecoveries? (rollbacks allowed after a divergence; the model's 4 if absent),
//       reconstructionLoss?: 'bce' | 'l2' | 'l1', klWeight? (a VAE's objective; bce and 1 if absent),
//       gridZ: Float32Array, gridLabels: Uint8Array | null,
//       manifoldZ?: Float32Array, manifoldLabels?: Uint8Array | null,
//       reconImages?: Float32Array, reconLabels?: Uint8Array | null, autosave?: {every, key, name}}
//                                               weights null = fresh `kind` model from (latent, hidden, seed);
//                                               manifoldZ / reconImages are optional extra views to
//                                               keep fresh: the page's manifold grid (n × latent)
//                                               and its row of test digits (n × 784; VAE kinds)
//                                               with autosave, the whole run is written to IndexedDB
//                                               (www/autosave.js) every epoch and every `every`
//                                               seconds; `key` and `name` say which of the page's
//                                               models it trains, for the Resume offer
//      {cmd: 'resume', autosave, runId?, gridZ, …}   goes on with the autosaved run, to its total
//                                               steps, with these views (as 'start' has them); with
//                                               runId, only if the saved run is still that one
//      {cmd: 'stop'}                            stop after the current step, keeping its weights
//                                               (and, with autosave, the run, to resume later)
//      {cmd: 'objective', reconstructionLoss, klWeight}   a VAE run's loss from the next step on
//                                               (asked for before the run starts: from its first)
//      {cmd: 'lose-device'}                     destroy the WebGPU device (tests of the fallback)
//      {cmd: 'hang'}                            never answer again (tests of the page's watchdog)
// out: {status: string}                         what is happening now
//      {backend: 'webgpu' | 'cpu', reason, engine}   where training runs and why; again after a
//                                               fallback. engine: what the CPU engine runs on, as
//                                               the loaded binary says ("2 threads, relaxed SIMD";
//                                               on one thread, why: "1 thread, relaxed SIMD (page
//                                               not cross-origin isolated)"; assets.js THREADS)
//      {recovered: {divergedAt, resumedAt, learningRate, retriesLeft, why}}   a step diverged: training
//                                               went back to the last good weights (every sync
//                                               interval) at half the learning rate
//      {resumed: {step, totalSteps, curves, runId}}   a resumed run starts again after `step`;
//                                               `curves`: its loss curves so far, by field
//      {autosaved: {step, savedAt, runId}}      the run up to `step` is in IndexedDB
//      {autosaveFailed: string}                 it could not be stored (why); training goes on
//      {objective: {reconstructionLoss, klWeight}, from?}   a VAE run's objective as it starts
//                                               (resumed: as saved) and, with `from`, the step a
//                                               live change reaches first
//      {objectiveRefused: string, objective}    a change was refused (why); the loss stays `objective`
//      {step, epoch, totalSteps, seconds, loss, bce, kl, reconstructionLoss, klWeight} after every
//                                               VAE step (seconds: since training began, the
//                                               dataset in place; bce: the reconstruction term,
//                                               whichever loss; loss = bce + klWeight × kl)
//      {step, epoch, totalSteps, seconds, d_loss, g_loss, d_real, d_fake}   after every GAN step
//      {samples: Float32Array, step}            the fixed grid decoded, every SAMPLE_EVERY steps
//      {manifold: Float32Array, step}          sample(manifoldZ, manifoldLabels), every SAMPLE_EVERY
//                                               steps, when the start message had manifoldZ
//      {recon: Float32Array, losses: Float32Array, step}
//                                               reconstruct(reconImages, reconLabels), every
//                                               SAMPLE_EVERY steps, when the start message had
//                                               reconImages and the model has an encoder
//      {coverage: number[10], step}             the classifier's digit histogram of COVERAGE_SAMPLES
//                                               fixed samples, every SAMPLE_EVERY steps
//      {done: true, weights: Uint8Array, steps, reason: 'finished' | 'stopped' | 'error'}
//      {error: string, name}                    a step failed; the weights before it are kept
//                                               (name: the wasm error's, e.g. 'DivergedError')
//      {fatal: string}                          the wasm module trapped; this worker is unusable
import { URLS, classifier, engineLine, fetchBytes, wasm } from './assets.js';
import { deleteRun, getRun, putRun, storageProblem } from './autosave.js';
import { histogram } from './coverage.js';
import { normals } from './random.js';

const SAMPLE_EVERY = 25;
const COVERAGE_SAMPLES = 200;
// Steps queued ahead on WebGPU: the next step runs while the last one's losses come back.
const QUEUE_DEPTH = 2;

let ready = null; // the wasm module, MNIST and the classifier, fetched once per worker
let stopRequested = false;
let training = null; // the model being trained, for 'lose-device' and 'objective'
let objective = null; // a VAE run's {reconstructionLoss, klWeight}, which each step's stats carry
let objectiveAsked = null; // one asked for while the run was getting ready, applied when it starts

/** Moves `model` to WebGPU unless told not to; says where it trains and why. */
async function chooseBackend(model, choice) {
  // Whatever was chosen: the WGSL steps are the linear VAEs' and GANs' alone.
  const cpuOnly = model.capabilities.cpu_only;
  if (cpuOnly) return { backend: 'cpu', reason: cpuOnly };
  if (choice === 'cpu') return { backend: 'cpu', reason: 'the CPU was chosen' };
  if (model.capabilities.family === 'ae') return { backend: 'cpu', reason: 'an autoencoder trains on the CPU: WebGPU has the VAE and GAN steps only' };
  try {
    const gpu = await (await wasm()).WebGpu.request();
    model.use_webgpu(gpu);
    let adapter = gpu.adapter;
    gpu.free();
    // Browsers may leave the adapter's description empty; vendor and architecture still say which.
    const info = (await navigator.gpu?.requestAdapter())?.info;
    const named = info && (info.description || [info.vendor, info.architecture].filter(Boolean).join(' '));
    if (named) adapter = `${named}, ${adapter}`;
    return { backend: 'webgpu', reason: `adapter: ${adapter}` };
  } catch (e) {
    if (choice === 'webgpu') throw new Error(`WebGPU was chosen but is not available here (${e.message})`);
    return { backend: 'cpu', reason: `WebGPU is not available here (${e.message})` };
  }
}

// The wasm module names the errors to act on (src/wasm.rs), so no message is parsed here.
const isDeviceLoss = (e) => e?.name === 'DeviceLostError';

async function prepare() {
  if (!ready) {
    ready = (async () => {
      const module = await wasm();
      postMessage({ status: 'downloading MNIST (60,000 training digits)…' });
      const [data, digitClassifier] = await Promise.all([fetchBytes(URLS.mnist, 'the MNIST training digits'), classifier()]);
      return { Model: module.Model, data, classifier: digitClassifier, engine: engineLine(module) };
    })();
    ready.catch(() => (ready = null)); // a failed download may be retried
  }
  return ready;
}

// Yields to the worker's event loop so a 'stop' message gets through between steps.
// (A MessageChannel round trip, unlike setTimeout, is not clamped to 4 ms.)
const channel = new MessageChannel();
const yieldToEvents = () =>
  new Promise((resolve) => {
    channel.port1.onmessage = () => resolve();
    channel.port2.postMessage(null);
  });

async function train(msg) {
  stopRequested = false;
  objectiveAsked = null;
  const { Model, data, classifier, engine } = await prepare();
  const run = msg.cmd === 'resume' ? await getRun() : null;
  if (msg.cmd === 'resume' && !run) throw new Error('there is no autosaved run in this browser to resume');
  if (run && msg.runId && run.runId !== msg.runId) {
    throw new Error('the autosave now holds another run (saved over it from another tab), so this one cannot be restarted');
  }
  // Names the run across its autosaves, restarts and resumes.
  const runId = run?.runId ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const model = run ? Model.resume(run.state)
    : msg.weights ? Model.load(msg.weights) : Model.create(msg.kind, msg.seed, msg.latent, msg.hidden);
  const caps = model.capabilities;
  // Fixed latent vectors for the coverage histogram (conditional models: every digit in turn).
  const coverageZ = normals(COVERAGE_SAMPLES * caps.latent, 8);
  const coverageLabels = caps.conditional ? Uint8Array.from({ length: COVERAGE_SAMPLES }, (_, i) => i % 10) : undefined;
  try {
    model.set_dataset_safetensors(data);
    if (!run) {
      // A resumed run keeps the settings it was saved with. A named recipe is the crate's for
      // this kind, whatever the panel showed (it may not have caught up with the model yet).
      if (msg.recipe && msg.recipe !== 'custom') {
        model.recipe = msg.recipe;
      } else {
        model.batch_size = msg.batchSize;
        model.learning_rate = msg.learningRate;
        if (msg.lrDecay) model.lr_decay = msg.lrDecay;
      }
      if (msg.syncInterval) model.sync_interval = msg.syncInterval;
      if (msg.maxRecoveries !== undefined) model.max_recoveries = msg.maxRecoveries;
      if (caps.family === 'vae') setObjective(model, msg);
    }
    const totalSteps = run ? run.totalSteps : Math.max(1, Math.round(msg.epochs * model.steps_per_epoch));
    const choice = run ? run.backend : msg.backend ?? 'auto';
    const where = await chooseBackend(model, choice);
    postMessage({ ...where, engine });
    let submitted = model.steps_trained; // steps handed to the backend (the trainer's count)
    let steps = submitted; // steps whose results came back
    // The loss curves so far, by field, kept here so that an autosave has them.
    const curves = run?.curves ?? Object.fromEntries(caps.losses.map((f) => [f, []]));
    if (run) postMessage({ resumed: { step: steps, totalSteps, curves, runId } });
    const secondsBefore = run?.seconds ?? 0;
    const autosave = msg.autosave &&
      autosaver(model, { ...msg.autosave, runId, caps, totalSteps, backend: choice, curves, epoch: run?.epoch ?? 0 });
    postMessage({ status: `training on ${where.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}: ${run ? `steps ${steps + 1} to ` : ''}${totalSteps} steps` });
    // Changes asked for while it got ready (from here on they reach `training` directly).
    if (caps.family === 'vae' && objectiveAsked) setObjective(model, objectiveAsked);
    // What a VAE's steps minimise, as the step lines label it (a resumed run's as it was saved);
    // an autoencoder's loss is named on its step lines alone (it has no controls to follow).
    objective = caps.family === 'vae' ? { reconstructionLoss: model.reconstruction_loss, klWeight: model.kl_weight } : null;
    if (objective) postMessage({ objective });
    if (caps.family === 'ae') objective = { reconstructionLoss: model.reconstruction_loss };
    training = model;
    const began = performance.now();
    const seconds = () => secondsBefore + (performance.now() - began) / 1000;
    let reason = 'finished';
    let last = null; // the last step's stats
    /** A finished step's stats: into the curves and out to the page. */
    const took = (s) => {
      // The objective is the one set now: a change reaches the steps submitted after it, so
      // the QUEUE_DEPTH steps already queued may carry the new label with the old loss.
      const stats = { step: s.step, epoch: s.epoch, totalSteps, seconds: seconds(), ...s.losses, ...objective };
      s.free();
      for (const [field, values] of Object.entries(curves)) {
        values.length = Math.min(values.length, stats.step - 1); // after a rollback the steps come again
        values.push(stats[field]);
      }
      postMessage(stats);
      last = stats;
      return stats;
    };
    while (steps < totalSteps) {
      if (stopRequested) {
        reason = 'stopped';
        break;
      }
      try {
        // An autosave waits for the queue to empty, so the weights it reads back are a step's.
        const saving = autosave && last && autosave.due(last.epoch);
        while (!saving && submitted < totalSteps && model.steps_queued < QUEUE_DEPTH) {
          model.submit_step();
          submitted++;
        }
        if (saving && model.steps_queued === 0) {
          await autosave.save(last, seconds());
          continue;
        }
        steps = took(await model.next_stats()).step;
        // The views decode on the GPU too, so a lost device can surface here as well.
        if (steps % SAMPLE_EVERY === 0 || steps >= totalSteps) await postViews(model, caps, msg, steps, classifier, coverageZ, coverageLabels);
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError) throw e; // the module itself died: fatal below
        if (model.backend === 'webgpu' && isDeviceLoss(e)) {
          // Carry on on the CPU from the last weights read back from the GPU.
          const f = model.fall_back_to_cpu();
          submitted = steps = f.resumed_at;
          postMessage({
            backend: 'cpu',
            engine,
            reason: `the WebGPU device was lost (${e.message}); training continues on the CPU from step ${f.resumed_at}, the last weights read back, and repeats the ${f.lost_steps} steps after it`,
          });
          f.free();
          continue;
        }
        if (e?.name === 'DivergedError' && model.max_recoveries > 0) {
          // Back to the last good weights at half the learning rate, a few times a run.
          try {
            const r = model.recover();
            const divergedAt = steps + 1;
            submitted = steps = r.resumed_at;
            postMessage({
              recovered: { divergedAt, resumedAt: r.resumed_at, learningRate: r.learning_rate, retriesLeft: r.retries_left, why: e.message },
            });
            continue;
          } catch (spent) {
            postMessage({ error: `${e.message}; ${spent.message}`, name: e.name });
            reason = 'error';
            break;
          }
        }
        postMessage({ error: e.message, name: e.name });
        reason = 'error';
        break;
      }
      await yieldToEvents();
    }
    await settle(model, took);
    // Stopped: the run is kept, to resume later. Finished or failed: there is nothing to resume
    // (the saved run is deleted if it is this one's).
    if (autosave && reason === 'stopped' && last) await autosave.save(last, seconds());
    await autosave?.written();
    if ((autosave || run) && reason !== 'stopped') await deleteRun(runId).catch(() => {});
    const weights = model.save();
    postMessage({ done: true, weights, steps, reason }, [weights.buffer]);
  } finally {
    training = null;
    objective = null;
    model.free();
  }
}

/**
 * Writes the whole run to IndexedDB (www/autosave.js) every epoch and every `every` seconds,
 * one write at a time, without waiting for it to land: training goes on meanwhile. Says when a
 * write landed ({autosaved}), and, once per cause, why one could not ({autosaveFailed}).
 */
function autosaver(model, { every, key, name, runId, caps, totalSteps, backend, curves, epoch }) {
  let savedAt = performance.now();
  let savedEpoch = Math.floor(epoch);
  let writing = Promise.resolve();
  let busy = false;
  let problem = null;
  return {
    due: (epochNow) => !busy && (Math.floor(epochNow) > savedEpoch || performance.now() - savedAt >= every * 1000),
    /** Saves the run as it stands (nothing queued: the caller waited); `last`: the last step's stats. */
    async save(last, seconds) {
      savedAt = performance.now();
      savedEpoch = Math.floor(last.epoch);
      const failed = (why) => {
        if (why !== problem) postMessage({ autosaveFailed: why });
        problem = why;
      };
      let state;
      try {
        await model.sync(); // on WebGPU the weights come back first
        state = model.save_run();
      } catch (e) {
        if (e instanceof WebAssembly.RuntimeError || isDeviceLoss(e)) throw e; // the training loop's to handle
        failed(`the run could not be written out (${e.message})`);
        return;
      }
      const record = {
        runId, key, name, caps, backend, totalSteps, state, seconds, step: model.steps_trained, epoch: last.epoch,
        curves: Object.fromEntries(Object.entries(curves).map(([f, v]) => [f, v.slice()])), savedAt: Date.now(),
      };
      busy = true;
      writing = putRun(record).then(
        () => {
          problem = null;
          postMessage({ autosaved: { step: record.step, savedAt: record.savedAt, runId } });
        },
        (e) => failed(storageProblem(e)),
      ).finally(() => (busy = false));
    },
    written: () => writing,
  };
}

/** The fixed grid, the manifold, reconstructions and the coverage bar, redrawn as training runs. */
async function postViews(model, caps, msg, step, classifier, coverageZ, coverageLabels) {
  const samples = await model.sample_async(msg.gridZ, msg.gridLabels ?? undefined);
  postMessage({ samples, step }, [samples.buffer]);
  if (msg.manifoldZ) {
    const manifold = await model.sample_async(msg.manifoldZ, msg.manifoldLabels ?? undefined);
    postMessage({ manifold, step }, [manifold.buffer]);
  }
  if (msg.reconImages && caps.encoder) {
    // The encoder runs on the CPU, with the weights last read back from the GPU there.
    const r = model.reconstruct(msg.reconImages, msg.reconLabels ?? undefined);
    const recon = r.images;
    const losses = r.losses;
    r.free();
    postMessage({ recon, losses, step }, [recon.buffer, losses.buffer]);
  }
  const coverage = histogram(classifier.classify(await model.sample_async(coverageZ, coverageLabels)));
  postMessage({ coverage, step });
}

/**
 * Before saving: takes the results of steps still queued (after a stop or an error; those behind
 * a refused step were refused too), each to `took`, and reads the GPU's weights back.
 */
async function settle(model, took) {
  while (model.steps_queued > 0) {
    try {
      took(await model.next_stats());
    } catch {
      // already reported, or refused behind the step that was
    }
  }
  try {
    await model.sync();
  } catch (e) {
    if (!(model.backend === 'webgpu' && isDeviceLoss(e))) throw e;
    model.fall_back_to_cpu().free(); // the weights last read back are the ones kept
  }
}

/** A VAE's reconstruction loss and KL weight β from a message's `reconstructionLoss` and `klWeight`, where given. */
function setObjective(model, { reconstructionLoss, klWeight }) {
  if (reconstructionLoss !== undefined) model.reconstruction_loss = reconstructionLoss;
  if (klWeight !== undefined) model.kl_weight = klWeight;
}

onmessage = (e) => {
  const msg = e.data;
  if (msg.cmd === 'stop') {
    stopRequested = true;
  } else if (msg.cmd === 'objective') {
    // Live, while the run goes on: the next step submitted minimises the new objective.
    if (!training) {
      objectiveAsked = { ...objectiveAsked, ...msg };
      return;
    }
    if (!objective) return; // a GAN's run
    try {
      setObjective(training, msg);
      objective = { reconstructionLoss: training.reconstruction_loss, klWeight: training.kl_weight };
      postMessage({ objective, from: training.steps_trained + 1 }); // steps_trained counts those submitted
    } catch (err) {
      postMessage({ objectiveRefused: err.message, objective });
    }
  } else if (msg.cmd === 'hang') {
    // As a step waiting on a pool thread that panicked would: busy, silent, deaf to Stop.
    for (;;);
  } else if (msg.cmd === 'lose-device') {
    try {
      training?.lose_device();
    } catch (e) {
      postMessage({ error: e.message, name: e.name });
    }
  } else if (msg.cmd === 'start' || msg.cmd === 'resume') {
    train(msg).catch((err) => {
      const message = err?.message ?? String(err);
      if (err instanceof WebAssembly.RuntimeError) postMessage({ fatal: message });
      else postMessage({ error: message, name: err?.name });
      postMessage({ done: true, weights: null, steps: 0, reason: 'error' });
    });
  }
};
