//! The trainer: the training loop, the same on every backend (the dataset and its shuffles, every
//! random number of a step, batch size and learning rate, step counting, copies of a device's
//! weights and the fallback to the CPU). The seam it drives is `backend.rs`'s; its types are
//! re-exported here, with the CPU backend (`cpu.rs`).

pub use crate::backend::{
    Batch, Diverged, DEFAULT_SYNC_INTERVAL, GanLosses, HostBackend, LossParts, OptimizerState, PendingSnapshot, PendingStep, Snapshot, StepLosses,
    StepReadback, TrainBackend,
};
pub use crate::cpu::CpuBackend;
pub use crate::reference::CandleBackend;
pub use crate::mnist::batch_images;
use crate::adam::AdamConfig;
use crate::config::{Decay, Family, Recipe, SettingsChoice, TrainSettings, VaeObjective};
use crate::gan::GanDraws;
use crate::keystream::Stream;
use crate::mnist::Dataset;
use crate::model::ModelConfig;
use anyhow::{anyhow, bail, ensure, Result};
use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::collections::VecDeque;
use std::sync::Arc;

/// The CPU backend for a model over `params`: the engine, for every kind.
pub fn host_backend(cfg: ModelConfig, params: &candle_nn::VarMap, device: candle_core::Device) -> Result<Box<dyn HostBackend>> {
    Ok(Box::new(CpuBackend::new(cfg, params, device)?))
}

/// What a training step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub losses: StepLosses,
    /// Steps taken so far, this one included.
    pub step: u64,
    /// Passes over the dataset so far (fractional).
    pub epoch: f64,
}

/// What falling back from a lost device did.
#[derive(Clone, Debug, PartialEq)]
pub struct Fallback {
    /// The step training continues from (the last one whose weights were copied out).
    pub resumed_at: u64,
    /// Steps trained on the device after that point, whose results were lost with it.
    pub lost_steps: u64,
}

/// What rolling back after a diverged step did (`Trainer::recover`).
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    /// The step training continues from: the last copy of the weights kept (every sync interval).
    pub resumed_at: u64,
    /// The rate the steps from here train at: half the one that diverged (as the decay leaves it).
    pub learning_rate: f64,
    /// Rollbacks left before a divergence stops training.
    pub retries_left: u32,
}

/// Rollbacks a run may make before a divergence stops it (the learning rate ends at 1/16).
pub const DEFAULT_MAX_RECOVERIES: u32 = 4;

/// The dropout stream is seeded apart from the shuffling and noise stream ("drop").
const DROPOUT_STREAM: u64 = 0x6472_6f70;

/// The training loop, the same on every backend: the dataset, shuffling, every random number of a
/// step (drawn here into the [`Batch`], so every backend consumes the same numbers), batch size and
/// learning rate, step counting. It trains on the CPU backend, or on a device (a GPU) when one is
/// handed over; then the CPU backend holds the weights as last copied out of the device, ready to
/// take over if the device is lost.
pub struct Trainer {
    cfg: ModelConfig,
    cpu: Box<dyn HostBackend>,
    device: Option<DeviceTraining>,
    sync_interval: u64,
    data: Option<Dataset>,
    /// Shuffles and noise.
    rng: Stream,
    /// A GAN's dropout masks and a cGAN's mismatched labels.
    dropout_rng: Stream,
    /// The current epoch's shuffle; shared with `TrainerMark`s until the next shuffle.
    order: Arc<Vec<usize>>,
    cursor: usize,
    batch_size: usize,
    learning_rate: f64,
    decay: Decay,
    /// A GAN's averaged generator (the CPU backend keeps the average) and a cGAN's label gain.
    average: bool,
    label_gain: f64,
    /// Adam's β2 (`TrainSettings::adam_beta2`).
    adam_beta2: f64,
    /// What a VAE's steps minimise (each step takes it as it is then).
    objective: VaeObjective,
    /// Epochs the weights had trained before this trainer took them, which the decay counts from.
    prior_epochs: f64,
    steps: u64,
    /// Examples drawn from the current dataset, and epochs finished on datasets handed over before it.
    examples_seen: u64,
    earlier_epochs: f64,
    /// The trainer's place after each submitted step not yet finished, oldest first.
    in_flight: VecDeque<TrainerMark>,
    /// Counts the moves between backends; a step is finished only by the backend it went to.
    generation: u64,
    /// The trainer's place when the copy of the weights that `begin_sync` asked for was made.
    sync_mark: Option<TrainerMark>,
    /// On the CPU: the weights, Adam's state and the trainer's place every sync interval, to roll
    /// back to after a divergence (on a device, its copies out serve).
    last_good: Option<(TrainerMark, Snapshot)>,
    max_recoveries: u32,
    recoveries: u32,
    /// Resumed from a saved state: the dataset handed over next is the one it was saved with
    /// (when of the same size), so the epoch's shuffle and place in it are kept.
    keep_place: bool,
}

/// Where a random stream stands: its seed, stream number and position in 32-bit words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPosition {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

impl StreamPosition {
    fn of(rng: &Stream) -> Self {
        Self { seed: rng.get_seed(), stream: rng.get_stream(), word_pos: rng.get_word_pos() }
    }

    fn stream(&self) -> Stream {
        let mut rng = Stream::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos);
        rng
    }
}

/// Everything the trainer needs, beside the weights and Adam's state, to go on exactly where it
/// stood: the next step draws the same minibatch and the same random numbers it would have drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerState {
    pub steps: u64,
    pub examples_seen: u64,
    pub earlier_epochs: f64,
    pub prior_epochs: f64,
    /// The current epoch's shuffle of the dataset's indices, and how far into it training is.
    pub order: Vec<u32>,
    pub cursor: usize,
    pub rng: StreamPosition,
    pub dropout_rng: StreamPosition,
    pub settings: TrainSettings,
    /// VAE kinds: the reconstruction loss and the KL weight.
    pub objective: VaeObjective,
    pub sync_interval: u64,
    pub max_recoveries: u32,
    pub recoveries: u32,
}

/// What the trainer's pending step resolves to: the backend's readback, or the error that lost it,
/// with the generation of the backend it was submitted to.
struct Submitted {
    generation: u64,
    readback: Result<StepReadback>,
}

/// Training on a device: the backend, and what a fallback needs.
struct DeviceTraining {
    backend: Box<dyn TrainBackend>,
    /// The trainer's place at the last copy of the weights out of the device.
    synced_at: TrainerMark,
    /// Steps committed on the device since that copy.
    unsynced: u64,
}

impl Trainer {
    /// Trains with `cpu` (`host_backend`'s choice, or one a test picks) at the default recipe's
    /// batch size and learning rate; `seed` seeds the shuffles, the noise and (apart) the dropout draws.
    pub fn new(cpu: Box<dyn HostBackend>, seed: u64) -> Self {
        let cfg = cpu.config();
        let fresh = Recipe::DEFAULT.settings(cfg.kind);
        let mut t = Self {
            cfg,
            cpu,
            device: None,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            data: None,
            rng: Stream::seed_from_u64(seed),
            dropout_rng: Stream::seed_from_u64(seed ^ DROPOUT_STREAM),
            order: Arc::new(Vec::new()),
            cursor: 0,
            batch_size: fresh.batch_size,
            learning_rate: fresh.learning_rate,
            decay: fresh.decay,
            average: false,
            label_gain: fresh.label_gain,
            adam_beta2: fresh.adam_beta2,
            objective: VaeObjective::for_kind(cfg.kind),
            prior_epochs: 0.0,
            steps: 0,
            examples_seen: 0,
            earlier_epochs: 0.0,
            in_flight: VecDeque::new(),
            generation: 0,
            sync_mark: None,
            last_good: None,
            max_recoveries: DEFAULT_MAX_RECOVERIES,
            recoveries: 0,
            keep_place: false,
        };
        t.average = fresh.average && t.cpu.set_generator_average(true);
        t
    }

    /// Where training stands, to save and resume (`resume`). The weights are the CPU backend's,
    /// so a device's must have been copied out first (no steps in flight or unsynced).
    pub fn state(&self) -> Result<TrainerState> {
        let pending = self.unsynced_steps();
        ensure!(pending == 0, "{pending} steps trained on {} are not read back yet; sync first", self.backend_name());
        let order = self.order.iter().map(|&i| u32::try_from(i)).collect::<Result<Vec<u32>, _>>()?;
        Ok(TrainerState {
            steps: self.steps,
            examples_seen: self.examples_seen,
            earlier_epochs: self.earlier_epochs,
            prior_epochs: self.prior_epochs,
            order,
            cursor: self.cursor,
            rng: StreamPosition::of(&self.rng),
            dropout_rng: StreamPosition::of(&self.dropout_rng),
            settings: self.settings(),
            objective: self.objective,
            sync_interval: self.sync_interval,
            max_recoveries: self.max_recoveries,
            recoveries: self.recoveries,
        })
    }

    /// A trainer that goes on from a saved `state`, with Adam's state into `cpu` (which holds the
    /// saved weights): the dataset handed over next keeps the saved place in its epoch.
    pub fn resume(cpu: Box<dyn HostBackend>, state: &TrainerState, optimizer: &OptimizerState) -> Result<Self> {
        let n = state.order.len();
        ensure!(state.cursor <= n, "the place in the epoch ({}) is past its {n} examples", state.cursor);
        ensure!(
            state.examples_seen >= state.cursor as u64,
            "{} examples seen is fewer than the place in the epoch ({})",
            state.examples_seen,
            state.cursor
        );
        let mut seen = vec![false; n];
        for &i in &state.order {
            let slot = seen.get_mut(i as usize).filter(|s| !**s);
            *slot.ok_or_else(|| anyhow!("the epoch's shuffle is not an order of 0..{n} (index {i})"))? = true;
        }
        ensure!(
            state.recoveries <= state.max_recoveries,
            "{} rollbacks used of the {} allowed",
            state.recoveries,
            state.max_recoveries
        );
        let mut t = Self::new(cpu, 0);
        t.cpu.set_optimizer_state(optimizer)?;
        let s = &state.settings;
        t.set_batch_size(s.batch_size)?;
        t.set_learning_rate(s.learning_rate)?;
        t.set_decay(s.decay);
        t.set_average(s.average)?;
        t.set_label_gain(s.label_gain)?;
        t.set_adam_beta2(s.adam_beta2)?;
        if !t.cfg.kind.is_gan() {
            t.set_objective(state.objective)?;
        }
        t.set_sync_interval(state.sync_interval)?;
        t.set_max_recoveries(state.max_recoveries)?;
        t.set_prior_epochs(state.prior_epochs)?;
        ensure!(
            state.earlier_epochs.is_finite() && state.earlier_epochs >= 0.0,
            "earlier epochs {} is not a count of epochs",
            state.earlier_epochs
        );
        t.recoveries = state.recoveries;
        t.steps = state.steps;
        t.examples_seen = state.examples_seen;
        t.earlier_epochs = state.earlier_epochs;
        t.order = Arc::new(state.order.iter().map(|&i| i as usize).collect());
        t.cursor = state.cursor;
        t.rng = state.rng.stream();
        t.dropout_rng = state.dropout_rng.stream();
        t.keep_place = true;
        Ok(t)
    }

    /// The CPU backend's name (`"cpu"`, the engine; `"candle"` for the tests' reference), or the
    /// device's (`"webgpu"`).
    pub fn backend_name(&self) -> &'static str {
        self.device.as_ref().map_or(self.cpu.name(), |d| d.backend.name())
    }

    /// Moves training to `backend` (a GPU), which must hold the weights and Adam's state as the
    /// CPU backend has them now (built from `cpu().snapshot()`, or from the model's parameters
    /// after `cpu().publish_trained()`, as `Lab::use_gpu` does: `publish` would hand it a GAN
    /// generator's average); the dataset goes up too if one is set.
    pub fn use_device(&mut self, mut backend: Box<dyn TrainBackend>) -> Result<()> {
        ensure!(self.device.is_none(), "this model already trains on {}", self.backend_name());
        ensure!(self.in_flight.is_empty(), "{} steps are still in flight", self.in_flight.len());
        if let Some(data) = &self.data {
            backend.set_dataset(data)?;
        }
        backend.set_sync_interval(self.sync_interval);
        self.device = Some(DeviceTraining { backend, synced_at: self.mark(), unsynced: 0 });
        self.generation += 1;
        self.last_good = None; // the device's copies out serve from here
        Ok(())
    }

    /// The device training runs on, if not the CPU.
    pub fn device(&self) -> Option<&dyn TrainBackend> {
        self.device.as_ref().map(|d| d.backend.as_ref())
    }

    pub fn device_mut(&mut self) -> Option<&mut dyn TrainBackend> {
        match &mut self.device {
            Some(d) => Some(d.backend.as_mut()),
            None => None,
        }
    }

    /// The CPU backend: training's fallback, and the weights as last copied out of a device.
    pub fn cpu(&self) -> &dyn HostBackend {
        self.cpu.as_ref()
    }

    /// Where the engine's steps' time has gone, when the engine is the CPU backend.
    pub fn engine_phases(&self) -> Option<crate::engine::clock::PhaseTimes> {
        self.cpu.as_any().downcast_ref::<CpuBackend>().map(CpuBackend::phases)
    }

    pub fn set_dataset(&mut self, data: Dataset) -> Result<()> {
        if let Some(d) = &mut self.device {
            d.backend.set_dataset(&data)?;
        }
        if std::mem::take(&mut self.keep_place) {
            if self.order.len() == data.len() {
                self.data = Some(data); // a resumed run's own dataset: its epoch goes on
                return Ok(());
            }
            // Another dataset than the one the state was saved with: its epochs so far are kept.
            self.earlier_epochs += if self.order.is_empty() { 0.0 } else { self.examples_seen as f64 / self.order.len() as f64 };
            self.examples_seen = 0;
        }
        self.earlier_epochs = self.epochs();
        self.examples_seen = 0;
        self.order = Arc::new((0..data.len()).collect());
        self.cursor = self.order.len(); // reshuffle before the first batch
        self.data = Some(data);
        Ok(())
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    pub fn sync_interval(&self) -> u64 {
        self.sync_interval
    }

    /// The recipe the batch size, learning rate and decay are, if they are one.
    pub fn recipe(&self) -> Option<Recipe> {
        Recipe::of(self.cfg.kind, self.settings())
    }

    /// The batch size, the learning rate (of the first epoch), its decay, a GAN's averaging, a
    /// cGAN's label gain and Adam's β2.
    pub fn settings(&self) -> TrainSettings {
        TrainSettings {
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            decay: self.decay,
            average: self.average,
            label_gain: self.label_gain,
            adam_beta2: self.adam_beta2,
        }
    }

    /// The rate the next step trains at: the learning rate as the decay leaves it by now,
    /// counting the epochs the weights had before this trainer.
    pub fn current_learning_rate(&self) -> f64 {
        self.learning_rate * self.decay.factor(self.prior_epochs + self.epochs())
    }

    /// Epochs the weights had trained before (a loaded file's): the decay goes on from there, so
    /// training a 20-epoch file further starts at the rate of its 21st epoch, not at the first's.
    pub fn set_prior_epochs(&mut self, epochs: f64) -> Result<()> {
        ensure!(epochs.is_finite() && epochs >= 0.0, "prior epochs {epochs} is not a count of epochs");
        self.prior_epochs = epochs;
        Ok(())
    }

    pub fn set_decay(&mut self, decay: Decay) {
        self.decay = decay;
    }

    /// Whether a GAN's samples come from its generator averaged over the steps (the fast
    /// recipe's) or from the last step's weights (the tutorials'). Only a GAN has the choice.
    pub fn set_average(&mut self, on: bool) -> Result<()> {
        if on == self.average {
            return Ok(());
        }
        ensure!(!on || self.cfg.kind.is_gan(), "only a GAN's generator is averaged; a `{}` model has none", self.cfg.kind.name());
        ensure!(
            self.cpu.set_generator_average(on),
            "the `{}` backend keeps no average of the generator",
            self.cpu.name()
        );
        self.average = on;
        Ok(())
    }

    /// A saved run's averaged generator, taken over by the CPU backend (a run saved with it on).
    pub fn restore_generator_average(&mut self, average: &std::collections::HashMap<String, Vec<f32>>) -> Result<()> {
        ensure!(self.average, "this run does not average its generator, yet its file holds an average");
        self.cpu.restore_generator_average(average)
    }

    /// The cGAN discriminator's label gain (1: the plain one-hot). Only a cGAN has a label there.
    pub fn set_label_gain(&mut self, gain: f64) -> Result<()> {
        ensure!(gain.is_finite() && (0.0..=100.0).contains(&gain), "label gain {gain} is outside 0..=100");
        ensure!(
            gain == 1.0 || self.cfg.kind == crate::config::Kind::Cgan,
            "only a cGAN's discriminator takes a label; a `{}` model's gain stays 1",
            self.cfg.kind.name()
        );
        self.label_gain = gain;
        Ok(())
    }

    /// Adam's β2 from the next step submitted: in [0.5, 1) (0.5 forgets the gradients' scale
    /// within a few steps; 1 would never let it change).
    pub fn set_adam_beta2(&mut self, beta2: f64) -> Result<()> {
        ensure!(beta2.is_finite() && (0.5..1.0).contains(&beta2), "Adam's β2 {beta2} is outside [0.5, 1)");
        self.adam_beta2 = beta2;
        Ok(())
    }

    /// A command line's choice: its recipe's settings, then each setting it gave on its own.
    pub fn choose(&mut self, choice: &SettingsChoice) -> Result<()> {
        if let Some(recipe) = choice.recipe {
            self.set_recipe(recipe);
        }
        if let Some(n) = choice.batch_size {
            self.set_batch_size(n)?;
        }
        if let Some(lr) = choice.learning_rate {
            self.set_learning_rate(lr)?;
        }
        if let Some(on) = choice.average {
            self.set_average(on)?;
        }
        if let Some(gain) = choice.label_gain {
            self.set_label_gain(gain)?;
        }
        if let Some(beta2) = choice.adam_beta2 {
            self.set_adam_beta2(beta2)?;
        }
        if let Some(decay) = choice.decay {
            self.set_decay(decay);
        }
        if choice.recon.is_some() || choice.kl_weight.is_some() {
            ensure!(!self.cfg.kind.is_gan(), "--recon and --beta set a VAE's loss; a GAN has neither");
            ensure!(
                choice.kl_weight.is_none() || self.cfg.kind.family() != Family::Ae,
                "--beta weighs a VAE's KL term; an autoencoder has none"
            );
            let o = self.objective;
            self.set_objective(VaeObjective { recon: choice.recon.unwrap_or(o.recon), kl_weight: choice.kl_weight.unwrap_or(o.kl_weight) })?;
        }
        Ok(())
    }

    /// What a VAE's steps minimise: the reconstruction loss and the KL weight β.
    pub fn objective(&self) -> VaeObjective {
        self.objective
    }

    /// Takes effect from the next step submitted (steps already queued keep theirs). Checked for
    /// the kind (`VaeObjective::check_for`): a GAN refuses any, an autoencoder a KL weight or BCE.
    pub fn set_objective(&mut self, objective: VaeObjective) -> Result<()> {
        objective.check_for(self.cfg.kind)?;
        self.objective = objective;
        Ok(())
    }

    /// Sets the batch size, learning rate, decay, a GAN's averaging, a cGAN's label gain and
    /// Adam's β2 to `recipe`'s for this kind.
    pub fn set_recipe(&mut self, recipe: Recipe) {
        let s = recipe.settings(self.cfg.kind);
        (self.batch_size, self.learning_rate, self.decay, self.label_gain, self.adam_beta2) =
            (s.batch_size, s.learning_rate, s.decay, s.label_gain, s.adam_beta2);
        // Only a backend that keeps no average (candle's, the tests' reference) refuses, and it trains no GAN but there.
        let _ = self.set_average(s.average);
    }

    pub fn set_batch_size(&mut self, n: usize) -> Result<()> {
        ensure!((1..=4096).contains(&n), "batch size {n} is outside 1..=4096");
        self.batch_size = n;
        Ok(())
    }

    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        ensure!(lr.is_finite() && lr > 0.0 && lr <= 1.0, "learning rate {lr} is outside (0, 1]");
        self.learning_rate = lr;
        Ok(())
    }

    /// Every how many steps a device's weights are copied back (what a lost device can cost).
    pub fn set_sync_interval(&mut self, steps: u64) -> Result<()> {
        ensure!((1..=100_000).contains(&steps), "sync interval {steps} is outside 1..=100000 steps");
        self.sync_interval = steps;
        if let Some(d) = &mut self.device {
            d.backend.set_sync_interval(steps);
        }
        Ok(())
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// How many times a diverged run may roll back (0: a divergence stops training at once).
    pub fn max_recoveries(&self) -> u32 {
        self.max_recoveries
    }

    pub fn set_max_recoveries(&mut self, n: u32) -> Result<()> {
        ensure!(n <= 20, "{n} rollbacks is more than 20 (the learning rate would end below a millionth of itself)");
        self.max_recoveries = n;
        Ok(())
    }

    /// After a diverged step (a [`Diverged`] error, which committed nothing): goes back to the
    /// last good copy of the weights and Adam's state and to the trainer's place then (the
    /// minibatches after it come again), halves the learning rate and carries on, at most
    /// `max_recoveries` times a run. On a device, training moves to the CPU from the device's last
    /// copy out; the caller hands the device back (`Lab::recover` does).
    pub fn recover(&mut self) -> Result<Recovery> {
        ensure!(self.max_recoveries > 0, "rolling back after a divergence is off for this model");
        ensure!(
            self.recoveries < self.max_recoveries,
            "it diverged again after {} rollbacks, each at half the learning rate before; training stops here",
            self.recoveries
        );
        let resumed_at = if self.device.is_some() {
            self.fall_back_to_cpu()?.resumed_at
        } else {
            let (mark, snapshot) = self.last_good.clone().ok_or_else(|| anyhow!("no copy of the weights to roll back to"))?;
            self.cpu.restore(&snapshot)?;
            self.in_flight.clear();
            self.rewind(&mark);
            mark.steps
        };
        self.learning_rate /= 2.0;
        self.recoveries += 1;
        let learning_rate = self.current_learning_rate(); // the rate the steps from here train at
        Ok(Recovery { resumed_at, learning_rate, retries_left: self.max_recoveries - self.recoveries })
    }

    /// Epochs trained so far by this trainer (fractional).
    pub fn epochs(&self) -> f64 {
        self.epochs_at(self.examples_seen)
    }

    /// Epochs trained once `examples` of the current dataset had been drawn.
    pub fn epochs_at(&self, examples: u64) -> f64 {
        self.earlier_epochs + self.data.as_ref().map_or(0.0, |d| examples as f64 / d.len() as f64)
    }

    /// Steps in one pass over the dataset (the last batch may be short).
    pub fn steps_per_epoch(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len().div_ceil(self.batch_size))
    }

    /// Submitted steps not yet finished.
    pub fn steps_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Steps trained on a device whose weights are not yet copied back (saving must wait for them).
    pub fn unsynced_steps(&self) -> u64 {
        self.device.as_ref().map_or(0, |d| d.unsynced + self.in_flight.len() as u64)
    }

    /// Draws the next minibatch (a new shuffle each epoch) and its random numbers, and submits it
    /// to the device, or runs it on the CPU. It counts once submitted; `finish` takes its readback.
    pub fn submit(&mut self) -> Result<PendingStep> {
        // On the CPU, a copy to roll back to at the start and every sync interval (a device's own
        // copies out serve there). Refused steps commit nothing, so every copy is of finite weights.
        let rate = self.current_learning_rate();
        let adam = AdamConfig::for_settings(self.cfg.kind, &self.settings());
        let due = self.last_good.as_ref().is_none_or(|(m, _)| m.steps != self.steps && self.steps.is_multiple_of(self.sync_interval));
        if self.device.is_none() && self.max_recoveries > 0 && self.data.is_some() && due {
            self.last_good = Some((self.mark(), self.cpu.snapshot()?));
        }
        let device = self.device.as_mut().map(|d| d.backend.as_mut());
        let backend: &mut dyn TrainBackend = match device {
            Some(b) => b,
            None => self.cpu.as_mut(),
        };
        let Some(data) = self.data.as_ref() else {
            bail!("no dataset: hand one over with set_dataset before train_step");
        };
        ensure!(!data.is_empty(), "the dataset is empty");
        if self.cursor >= self.order.len() {
            Arc::make_mut(&mut self.order).shuffle(&mut self.rng);
            self.cursor = 0;
        }
        let end = (self.cursor + self.batch_size).min(self.order.len());
        let indices = &self.order[self.cursor..end];
        let noise: Vec<f32> =
            (0..indices.len() * self.cfg.latent).map(|_| self.rng.sample(StandardNormal)).collect();
        let label_gain = self.label_gain as f32;
        let mut batch = Batch { data, indices, noise: &noise, gan: None, vae: self.objective, label_gain, adam };
        let gan = self.cfg.kind.is_gan().then(|| GanDraws::draw(&mut self.dropout_rng, &self.cfg, &batch.labels())).transpose()?;
        batch.gan = gan.as_ref();
        let submitted = backend.submit(&batch, rate)?;
        self.examples_seen += indices.len() as u64;
        self.cursor = end;
        self.steps += 1;
        self.in_flight.push_back(self.mark());
        // Tagged with the backend it went to, and resolving to its readback or the error that lost
        // it, so `finish` alone keeps the queue of marks in step.
        let generation = self.generation;
        Ok(PendingStep(Box::pin(async move {
            let readback = submitted.read().await;
            Ok(StepReadback(Box::new(Submitted { generation, readback })))
        })))
    }

    /// The oldest submitted step's readback → its stats. When the step also copied a device's
    /// weights out, the CPU backend takes them over here (what sampling, saving and a fallback use).
    /// A readback that failed (a lost device) takes the step out of the queue and gives its error;
    /// one from a backend training has left since is refused and changes nothing.
    pub fn finish(&mut self, readback: StepReadback) -> Result<StepStats> {
        let Ok(submitted) = readback.0.downcast::<Submitted>() else {
            bail!("a readback that this trainer's submit did not hand out");
        };
        ensure!(
            submitted.generation == self.generation,
            "a step submitted before training moved to {}; it was dropped",
            self.backend_name()
        );
        let mark = self.in_flight.pop_front().ok_or_else(|| anyhow!("no training step is in flight"))?;
        let readback = match submitted.readback {
            Ok(r) => r,
            Err(e) => {
                if let Some(d) = &mut self.device {
                    d.backend.forget_oldest();
                }
                return Err(e);
            }
        };
        let result = match &mut self.device {
            None => self.cpu.finish(readback),
            Some(d) => {
                let result = d.backend.finish(readback);
                if let Some(snapshot) = d.backend.take_snapshot() {
                    self.cpu.restore(&snapshot)?;
                    d.synced_at = mark.clone();
                    d.unsynced = 0;
                } else if result.is_ok() {
                    d.unsynced += 1;
                }
                result
            }
        };
        let losses = result?;
        Ok(StepStats { losses, step: mark.steps, epoch: self.epochs_at(mark.examples_seen) })
    }

    /// The oldest submitted step will not be finished (its readback was lost): it leaves the queue.
    pub fn forget_oldest(&mut self) {
        if self.in_flight.pop_front().is_some() {
            if let Some(d) = &mut self.device {
                d.backend.forget_oldest();
            }
        }
    }

    /// One step, start to finish. Natively a device's step is waited for; in the browser a
    /// device's steps are asynchronous (`submit`, then `finish` on the readback).
    pub fn step(&mut self) -> Result<StepStats> {
        #[cfg(target_arch = "wasm32")]
        ensure!(
            self.device.is_none(),
            "this model trains on {}, where steps are asynchronous: use submit_step and next_stats",
            self.backend_name()
        );
        let pending = self.submit()?;
        match resolve(pending) {
            Ok(r) => self.finish(r),
            Err(e) => {
                self.forget_oldest();
                Err(e)
            }
        }
    }

    /// Copies the device's weights out now (`None` on the CPU); `finish_sync` takes them. Every
    /// submitted step must have been finished first.
    pub fn begin_sync(&mut self) -> Result<Option<PendingSnapshot>> {
        let Some(d) = &mut self.device else { return Ok(None) };
        ensure!(self.in_flight.is_empty(), "{} steps are still queued; finish them first", self.in_flight.len());
        let pending = d.backend.snapshot_now()?;
        // The copy holds the weights as they are now: steps submitted while it comes back are not in it.
        self.sync_mark = Some(self.mark());
        Ok(Some(pending))
    }

    pub fn finish_sync(&mut self, snapshot: Snapshot) -> Result<()> {
        let mark = self.sync_mark.take().ok_or_else(|| anyhow!("no copy of the weights was asked for (begin_sync)"))?;
        let d = self.device.as_mut().ok_or_else(|| anyhow!("this model does not train on a device"))?;
        if mark.steps < d.synced_at.steps {
            return Ok(()); // a step's own copy, made later, has come back already
        }
        self.cpu.restore(&snapshot)?;
        // Steps finished since the copy was asked for are not in it; those still queued count apart.
        d.unsynced = (self.steps - mark.steps).saturating_sub(self.in_flight.len() as u64);
        d.synced_at = mark;
        Ok(())
    }

    /// After the device is lost (or to leave it): training continues on the CPU from the last
    /// weights copied out, and goes back to that step too, so the steps after it are trained again
    /// on the same minibatches with the same random numbers.
    pub fn fall_back_to_cpu(&mut self) -> Result<Fallback> {
        let d = self.device.take().ok_or_else(|| anyhow!("this model does not train on a device"))?;
        self.in_flight.clear();
        self.sync_mark = None;
        self.last_good = None; // the CPU takes its own copy before its first step
        self.generation += 1;
        let steps_now = self.steps;
        self.rewind(&d.synced_at);
        Ok(Fallback { resumed_at: d.synced_at.steps, lost_steps: steps_now.saturating_sub(d.synced_at.steps) })
    }

    pub fn data(&self) -> Option<&Dataset> {
        self.data.as_ref()
    }

    /// Where training stands: the counts, the place in the epoch's shuffle and the random streams.
    pub fn mark(&self) -> TrainerMark {
        TrainerMark {
            steps: self.steps,
            examples_seen: self.examples_seen,
            cursor: self.cursor,
            order: self.order.clone(),
            rng: self.rng.clone(),
            dropout_rng: self.dropout_rng.clone(),
        }
    }

    /// Goes back to an earlier `mark`: the steps after it are trained again on the same
    /// minibatches with the same random numbers (after a lost GPU device took their results).
    pub fn rewind(&mut self, mark: &TrainerMark) {
        self.steps = mark.steps;
        if mark.order.len() != self.order.len() {
            // Another dataset since the mark: its shuffle would not fit; only the count goes back.
            return;
        }
        self.examples_seen = mark.examples_seen;
        self.cursor = mark.cursor;
        self.order = mark.order.clone();
        self.rng = mark.rng.clone();
        self.dropout_rng = mark.dropout_rng.clone();
    }
}

/// Waits for a submitted step: natively by blocking on the device; in the browser only a step
/// that is already done (the CPU's) can be taken this way.
fn resolve(pending: PendingStep) -> Result<StepReadback> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(pending.read())
    }
    #[cfg(target_arch = "wasm32")]
    {
        use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
        fn noop_raw() -> RawWaker {
            fn clone(_: *const ()) -> RawWaker {
                noop_raw()
            }
            fn noop(_: *const ()) {}
            static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
            RawWaker::new(std::ptr::null(), &VTABLE)
        }
        // SAFETY: the vtable's functions do nothing and never touch the (null) data pointer.
        let waker = unsafe { Waker::from_raw(noop_raw()) };
        let mut future = pending.0;
        match future.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => r,
            Poll::Pending => bail!("the step is still running on the device; wait for its readback"),
        }
    }
}

/// A trainer's place, to come back to (`Trainer::mark`, `Trainer::rewind`), on the same dataset.
#[derive(Clone)]
pub struct TrainerMark {
    pub steps: u64,
    examples_seen: u64,
    cursor: usize,
    order: Arc<Vec<usize>>,
    rng: Stream,
    dropout_rng: Stream,
}

