// Training in a module Web Worker (www/worker.js and its protocol) with its loss curves, step line
// and a grid of fixed latent vectors that sharpens as it learns. The page's Train panel and
// <latent-lab view="train"> mount it; each host adds what it does with the result.
import { URLS } from '../assets.js';
import { coverageVerdict } from '../coverage.js';
import { drawCurve, drawGrid } from '../draw.js';
import { frameScheduler } from '../dom.js';
import { normals } from '../random.js';

const GRID = 16; // fixed samples in the training grid, 4 × 4
// How each loss part a model reports (its capabilities.losses) is plotted; parts not here are not.
const CURVES = {
  loss: ['#f0a04b', 'loss'],
  bce: ['#5fb0e8', 'reconstruction'],
  kl: ['#8fd17a', 'KL'],
  d_loss: ['#f0a04b', 'discriminator'],
  g_loss: ['#5fb0e8', 'generator'],
};

/** The training grid's latent vectors (seed 7), and a conditional model's labels: every digit in turn. */
export function trainingGrid(caps) {
  return {
    gridZ: normals(GRID * caps.latent, 7),
    gridLabels: caps.conditional ? Uint8Array.from({ length: GRID }, (_, i) => i % 10) : null,
  };
}

export function drawTrainingGrid(canvas, images, cell) {
  drawGrid(canvas, images, 4, cell);
}

// A VAE's reconstruction losses (the API's reconstruction_loss), as the step line names them.
const RECON_NAMES = { bce: 'BCE', l2: 'L2', l1: 'L1' };

/** A VAE's objective ({reconstructionLoss, klWeight}) as a sum: "BCE + KL", "L1 + 4 × KL". */
export function objectiveLine({ reconstructionLoss, klWeight }) {
  return `${RECON_NAMES[reconstructionLoss] ?? reconstructionLoss} + ${klWeight === 1 ? '' : `${klWeight} × `}KL`;
}

/**
 * The status line of one step's message ({step, totalSteps, epoch, seconds}, the loss parts, and
 * a VAE's objective {reconstructionLoss, klWeight}): the loss is the reconstruction term plus β times the KL term.
 */
export function stepLine(msg) {
  const head = `step ${msg.step}/${msg.totalSteps} · ${Math.round(msg.seconds)} s · epoch ${msg.epoch.toFixed(2)}`;
  // an autoencoder's step: its reconstruction error alone
  if (msg.loss !== undefined && msg.kl === undefined) {
    return `${head} · loss ${msg.loss.toFixed(2)} (${msg.reconstructionLoss === 'l1' ? 'absolute' : 'squared'} error, no KL term)`;
  }
  if (msg.loss !== undefined) {
    const recon = RECON_NAMES[msg.reconstructionLoss ?? 'bce'];
    const beta = (msg.klWeight ?? 1) === 1 ? '' : `${msg.klWeight} × `;
    return `${head} · loss ${msg.loss.toFixed(2)} (${recon} ${msg.bce.toFixed(2)} + ${beta}KL ${msg.kl.toFixed(2)})`;
  }
  return `${head} · D loss ${msg.d_loss.toFixed(3)}, G loss ${msg.g_loss.toFixed(3)} · D(real) ${msg.d_real.toFixed(2)}, D(generated) ${msg.d_fake.toFixed(2)}`;
}

/** What a rollback after a diverged step did ({recovered} from the worker), in a sentence. */
export function recoveryLine({ divergedAt, resumedAt, learningRate, retriesLeft, why }) {
  const left = retriesLeft === 0 ? 'no more rollbacks left' : `${retriesLeft} more rollback${retriesLeft === 1 ? '' : 's'} allowed`;
  return `Step ${divergedAt} diverged (${why}): rolled back to step ${resumedAt}, the last good weights, ` +
    `and training goes on at half the learning rate (${learningRate.toPrecision(3)}); ${left}.`;
}

/** What restarting a dead worker from the autosave did ({restarted} from mountTraining), in a sentence. */
export function restartLine({ why, from, lost }) {
  return `The training worker stopped (${why}); training restarted from the autosave at step ${from}, ` +
    `and the ${lost} step${lost === 1 ? '' : 's'} after it were lost and are trained again.`;
}

// Restarts from the autosave a run may make after its worker dies, before the failure is final.
const MAX_RESTARTS = 3;

/**
 * How long a training worker may go without a word, once it trains, before it is taken for hung:
 * a step of the slowest kind at its default size takes under a second here, an autosave or a
 * coverage check a few (a larger model's steps stretch it: 20 times the slowest step seen).
 * A worker can hang where it cannot throw: a panic on one of the threaded build's pool threads
 * leaves the step waiting for that thread for ever, and Stop cannot reach it. The run then
 * restarts from its autosave in a new worker on one thread.
 */
export const SILENT_MS = 60_000;

/**
 * Binds a run's views: the loss curves on `curve`, the fixed grid on `samples` (`cell` pixels a
 * digit), each step's line and the worker's status in `status`, and in `note` (when given) what a
 * rollback after a divergence, or a restart after the worker died, did, and in `verdict` (when
 * given) the classifier's one-line verdict on an unconditional GAN's coverage of the digits. Every
 * message goes on to `onMessage(msg)` after that, and so does {restarted: {why, from, lost}} when
 * a worker that died was restarted from the run's autosave; `onFailure(message)` is told when the
 * worker itself fails and cannot be restarted (the next start makes a new one).
 * A worker that trains and then says nothing for `silentMs` is taken for hung (SILENT_MS):
 * terminated, and restarted from the autosave as a dead one is, on one thread from then on.
 * Returns {start(model, settings, extras), resume(caps, extras, autosave), stop(), loseDevice(),
 * crash(), hang(), end()}.
 */
export function mountTraining({ curve, samples, cell, status, note = null, verdict = null, guard, onMessage, onFailure, silentMs = SILENT_MS }) {
  let worker = null;
  // The watchdog's: when the worker last said anything (performance.now()); whether it trains
  // (armed by its {backend} message, sent just before its first step, the dataset in place); the
  // worker's clock at its last step (its `seconds`) and the longest wait between two of its steps
  // (a large model's steps can be long); when it last looked.
  let heard = 0;
  let watched = false;
  let stepAt = null;
  let slowest = 0;
  let looked = performance.now();
  let oneThread = false; // after a hang: every new worker runs the one-thread build
  let series = [];
  let judged = false; // whether this run's model is a GAN, whose coverage gets a verdict
  // The run going on: what a restart sends the new worker, the last autosaved and reported steps.
  let run = null;
  const drawLosses = frameScheduler(guard(() => drawCurve(curve, series)));
  const discard = () => {
    worker?.terminate();
    worker = null;
    watched = false;
  };
  const showNote = (text) => {
    if (!note) return;
    note.textContent = text;
    note.hidden = false;
  };

  /** After the worker died: a new one goes on from the run's autosave, if it has one; false if not. */
  const restart = (why) => {
    if (!run?.autosave || run.stopping || run.autosaved === null || run.restarts >= MAX_RESTARTS) return false;
    run.restarts++;
    const restarted = { why, from: run.autosaved, lost: Math.max(0, run.lastStep - run.autosaved) };
    spawn().postMessage({ cmd: 'resume', autosave: run.autosave, runId: run.runId, ...run.views });
    showNote(restartLine(restarted));
    onMessage({ restarted });
    return true;
  };

  const dispatch = guard((msg) => {
    heard = performance.now();
    if (msg.backend) {
      watched = true;
      stepAt = null; // the first step (compiling, warming up) is not counted: SILENT_MS covers it
    } else if (msg.step !== undefined && msg.totalSteps !== undefined && !msg.done) {
      // Timed by the worker's clock, not by when the page heard: a page busy for a second (its
      // latent map, on a slow machine) delays the message, and would stretch the wait twentyfold.
      if (stepAt !== null && Number.isFinite(msg.seconds)) slowest = Math.max(slowest, 1000 * (msg.seconds - stepAt));
      stepAt = Number.isFinite(msg.seconds) ? msg.seconds : null;
    }
    if (msg.done) watched = false;
    if (msg.fatal) {
      discard(); // the worker's wasm trapped: this worker is unusable
      if (restart(`its WebAssembly module failed: ${msg.fatal}`)) return;
    }
    if (msg.done) run = null;
    // What a restart goes back to: the last autosave of this run, or the save it resumed from.
    if (msg.autosaved && run) Object.assign(run, { autosaved: msg.autosaved.step, runId: msg.autosaved.runId });
    if (msg.resumed && run) Object.assign(run, { autosaved: msg.resumed.step, lastStep: msg.resumed.step, runId: msg.resumed.runId });
    if (msg.status) status.textContent = msg.status;
    else if (msg.samples) drawTrainingGrid(samples, msg.samples, cell);
    else if (msg.coverage && verdict && judged) {
      verdict.textContent = `The classifier reads the samples: ${coverageVerdict(msg.coverage)} (step ${msg.step}).`;
      verdict.hidden = false;
    }
    else if (msg.recovered) showNote(recoveryLine(msg.recovered));
    else if (msg.objective && msg.from) showNote(`From step ${msg.from} the loss is ${objectiveLine(msg.objective)}.`);
    else if (msg.objectiveRefused) showNote(`The loss stays ${objectiveLine(msg.objective)}: ${msg.objectiveRefused}.`);
    else if (msg.resumed) {
      // A resumed run's curves so far, as its autosave kept them.
      for (const s of series) s.values = (msg.resumed.curves[s.field] ?? []).slice(0, msg.resumed.step);
      drawLosses();
    } else if (msg.step !== undefined && msg.totalSteps !== undefined && !msg.done) {
      // By step: after a rollback (or a fallback to the CPU) the steps come again, and so do their points.
      for (const s of series) {
        s.values.length = Math.min(s.values.length, msg.step - 1);
        s.values.push(msg[s.field]);
      }
      if (run) run.lastStep = msg.step;
      status.textContent = stepLine(msg);
      drawLosses();
    }
    return onMessage(msg);
  });

  // The watchdog: a training worker silent for silentMs (or 20 times its slowest step so far,
  // if longer) is hung (SILENT_MS). A tick long after the last one means the page itself was
  // not running (a sleeping laptop, a frozen tab): the silence is counted from then.
  const period = Math.min(1000, silentMs / 4);
  const watchdog = setInterval(() => {
    const now = performance.now();
    if (now - looked > 3 * period) heard = Math.max(heard, now);
    looked = now;
    const limit = Math.max(silentMs, 20 * slowest);
    if (!watched || !worker || now - heard < limit) return;
    const why = `it did not answer for ${Math.round(limit / 1000)} s`;
    discard();
    oneThread = true;
    if (!restart(why)) onFailure(run?.stopping ? `${why} after Stop` : why);
  }, period);

  /** A new worker (a module worker from this file's origin: allowed by worker-src, or by script-src 'self'). */
  const spawn = () => {
    const url = new URL(URLS.worker);
    if (oneThread) url.searchParams.set('threads', '1');
    const w = new Worker(url, { type: 'module' });
    worker = w;
    heard = performance.now();
    slowest = 0;
    // (what a worker already ended still had on its way is not this one's)
    w.onmessage = (e) => w === worker && dispatch(e.data);
    w.onerror = (e) => {
      e.preventDefault();
      if (w !== worker) return;
      discard();
      if (!restart(e.message || 'an uncaught error')) onFailure(e.message ?? '');
    };
    return w;
  };

  /** Starts `msg` ('start' or 'resume') for a model of `caps`; `views`: the grid and extras it decodes. */
  const launch = (msg, caps, views) => {
    if (!worker) spawn();
    for (const line of [note, verdict]) {
      if (!line) continue;
      line.textContent = '';
      line.hidden = true;
    }
    judged = caps.family === 'gan' && !caps.conditional; // a cGAN's samples are asked for each digit in turn
    series = caps.losses.filter((field) => CURVES[field]).map((field) => {
      const [color, label] = CURVES[field];
      return { field, values: [], color, label };
    });
    run = { autosave: msg.autosave ?? null, views, autosaved: null, runId: null, lastStep: 0, restarts: 0 };
    worker.postMessage(msg, msg.weights ? [msg.weights.buffer] : []);
    return msg;
  };

  return {
    /**
     * Trains a copy of `model` (or, with settings.fresh, new weights of its kind): settings are the
     * worker's {epochs, batchSize, learningRate, lrDecay?, reconstructionLoss?, klWeight?, backend?, autosave?}; `extras` more views
     * to decode as it runs.
     */
    start(model, { fresh = false, ...settings }, extras = {}) {
      const caps = model.capabilities;
      const weights = fresh ? null : model.save();
      const views = { ...trainingGrid(caps), ...extras };
      const msg = { cmd: 'start', weights, kind: caps.kind, latent: caps.latent, hidden: caps.hidden, seed: 1, ...settings, ...views };
      return launch(msg, caps, views);
    },
    /** Goes on with the autosaved run (of a model of `caps`), autosaving again as `autosave` says. */
    resume(caps, extras = {}, autosave = null) {
      const views = { ...trainingGrid(caps), ...extras };
      return launch({ cmd: 'resume', autosave, ...views }, caps, views);
    },
    stop() {
      if (run) run.stopping = true;
      worker?.postMessage({ cmd: 'stop' });
    },
    /** A VAE run's reconstruction loss and KL weight β, changed while it trains: {reconstructionLoss, klWeight}. */
    setObjective: ({ reconstructionLoss, klWeight }) => worker?.postMessage({ cmd: 'objective', reconstructionLoss, klWeight }),
    /** Destroys the worker's WebGPU device (?debug), to watch the CPU take over. */
    loseDevice: () => worker?.postMessage({ cmd: 'lose-device' }),
    /** Kills the worker mid-run (?debug), as a crash would, to watch it restart from the autosave. */
    crash() {
      if (!worker) return;
      discard();
      if (!restart('it was killed by “Simulate a crashed worker”')) onFailure('it was killed by “Simulate a crashed worker”, with no autosave to restart from');
    },
    /** Hangs the worker mid-run (?debug), as a step that never returns would, to watch the watchdog restart it. */
    hang: () => worker?.postMessage({ cmd: 'hang' }),
    /** Ends the worker (the host is going away). */
    end() {
      clearInterval(watchdog);
      discard();
    },
  };
}
