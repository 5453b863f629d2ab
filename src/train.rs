//! Training: minibatches, their random numbers and optimisation steps, behind the seam a GPU backend
//! plugs into.
//!
//! The [`Trainer`] owns everything that is the same on every backend (the dataset, shuffling, every
//! random number of a step, batch size and learning rate, step counting, copies of a device's
//! weights and the fallback to the CPU); a [`TrainBackend`] owns the parameters' optimiser state and
//! does one step of forward, backward and Adam, submitted and finished apart so a GPU's steps queue
//! without waiting. The CPU backend (candle's autograd) finishes each step as it is submitted.

pub use crate::adam::OptimizerState;
pub use crate::mnist::batch_images;
use crate::adam::{Adam, AdamConfig};
use crate::gan::{
    conditional_discriminator_loss, discriminator_loss, generator_loss, Discriminator, DropoutKeep, Gan, GanDraws,
};
use crate::mnist::Dataset;
use crate::model::{one_hot, ModelConfig, Net};
use crate::vae::Vae;
use anyhow::{anyhow, bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A VAE step's loss per example, and its two parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossParts {
    pub loss: f32,
    pub bce: f32,
    pub kl: f32,
}

/// A GAN step's two losses (per example) and the discriminator's mean verdicts, D(x) = sigmoid(logit):
/// on the real batch and on the generator's batch, both measured before the step's update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GanLosses {
    pub d_loss: f32,
    pub g_loss: f32,
    pub d_real: f32,
    pub d_fake: f32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StepLosses {
    Vae(LossParts),
    Gan(GanLosses),
}

impl StepLosses {
    /// The number a loss curve plots first: the VAE's loss, the GAN's discriminator loss.
    pub fn headline(&self) -> f32 {
        match self {
            StepLosses::Vae(p) => p.loss,
            StepLosses::Gan(g) => g.d_loss,
        }
    }
}

/// One minibatch and every random number its step uses, drawn by the trainer, so every backend
/// consumes the same numbers by construction.
pub struct Batch<'a> {
    pub data: &'a Dataset,
    pub indices: &'a [usize],
    /// [len(indices), latent]: the VAE's reparameterisation ε, or the GAN generator's input z.
    pub noise: &'a [f32],
    /// GAN kinds: the discriminator's dropout and a cGAN's mismatched labels; `None` for VAEs.
    pub gan: Option<&'a GanDraws>,
}

/// What a backend reads back for one step; only the backend that submitted it can interpret it.
pub struct StepReadback(pub Box<dyn Any>);

/// A submitted step; `read` waits for its readback without blocking the queue (natively it waits
/// on the device; in the browser it yields to the event loop).
pub struct PendingStep(pub Pin<Box<dyn Future<Output = Result<StepReadback>>>>);

impl PendingStep {
    pub fn ready(r: StepReadback) -> Self {
        PendingStep(Box::pin(std::future::ready(Ok(r))))
    }

    pub async fn read(self) -> Result<StepReadback> {
        self.0.await
    }
}

/// A backend's weights (by PyTorch name, flat f32) and Adam's state, copied out at one step.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub params: HashMap<String, Vec<f32>>,
    pub optimizer: OptimizerState,
}

/// A snapshot being copied out.
pub struct PendingSnapshot(pub Pin<Box<dyn Future<Output = Result<Snapshot>>>>);

impl PendingSnapshot {
    pub async fn read(self) -> Result<Snapshot> {
        self.0.await
    }
}

impl Batch<'_> {
    pub fn labels(&self) -> Vec<u8> {
        self.indices.iter().map(|&i| self.data.labels[i]).collect()
    }
}

/// The training seam. A step that fails (or is refused) must leave the weights as they were.
pub trait TrainBackend {
    fn name(&self) -> &'static str;
    /// Sees the training set once, before any batch of it (the GPU backend uploads it).
    fn set_dataset(&mut self, _data: &Dataset) -> Result<()> {
        Ok(())
    }
    /// Starts one step on `batch`: the CPU runs it before returning, a GPU queues it and returns
    /// at once. Steps finish in the order they were submitted.
    fn submit(&mut self, batch: &Batch, learning_rate: f64) -> Result<PendingStep>;
    /// Takes the readback of the oldest submitted step: its losses, or why it was refused
    /// (a [`Diverged`] error; then the weights are as before it).
    fn finish(&mut self, readback: StepReadback) -> Result<StepLosses>;
    /// The oldest submitted step's readback failed (a lost device): it is no longer in flight.
    fn forget_oldest(&mut self) {}
    /// Every how many committed steps the backend copies its weights out (GPU; default 50).
    fn set_sync_interval(&mut self, _steps: u64) {}
    /// The copy of the weights made by the most recently finished step, if it made one
    /// (a GPU makes one every sync interval); taken, so the next call gives None until the next copy.
    fn take_snapshot(&mut self) -> Option<Snapshot> {
        None
    }
    /// Copies the weights out now; every submitted step must have been finished first.
    fn snapshot_now(&mut self) -> Result<PendingSnapshot>;
    /// Adam's state, to carry training over to another backend.
    fn optimizer_state(&self) -> Result<OptimizerState>;
    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()>;
    /// For callers that know the concrete backend (the GPU's adapter, traffic counters, sampling).
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// The one-hot labels of the batch for a conditional model, `None` for an unconditional one.
fn batch_one_hot(cfg: &ModelConfig, labels: &[u8], device: &Device) -> Result<Option<Tensor>> {
    cfg.kind.is_conditional().then(|| one_hot(labels, device)).transpose()
}

/// A step refused because its loss or gradient was not finite; the weights are as before it.
/// Recognised by type (`anyhow::Error::downcast_ref`), so callers can act on it without parsing text.
#[derive(Debug, Clone, PartialEq)]
pub struct Diverged {
    /// What was not finite: "the loss", "the generator's gradient", …
    pub what: String,
    pub value: String,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training diverged: {} is {} (try a lower learning rate); the weights were not changed",
            self.what, self.value
        )
    }
}

impl std::error::Error for Diverged {}

pub(crate) fn diverged(what: &str, value: impl std::fmt::Display) -> anyhow::Error {
    Diverged { what: what.to_string(), value: value.to_string() }.into()
}

/// candle on the CPU (wasm SIMD in the browser): autograd for the backward pass, then Adam. Its
/// parameters are the model's own (the `VarMap` every other part of the crate reads), so a step here
/// changes what the model samples, and a snapshot from another backend is written into them.
pub struct CpuBackend {
    cfg: ModelConfig,
    params: VarMap,
    model: CpuModel,
    device: Device,
    /// With `record_gradients`, the last step's gradients by parameter name (the parity tests').
    #[cfg(feature = "test-hooks")]
    pub record_gradients: bool,
    #[cfg(feature = "test-hooks")]
    pub last_gradients: HashMap<String, Vec<f32>>,
}

enum CpuModel {
    Vae { vae: Vae, opt: Adam },
    Gan { gan: Gan, opt_g: Adam, opt_d: Adam },
}

impl CpuBackend {
    /// Trains the model over `params` in place, with Adam's settings for the kind.
    pub fn new(cfg: ModelConfig, params: &VarMap, device: Device) -> Result<Self> {
        let adam = AdamConfig::for_kind(cfg.kind);
        let model = match Net::new(cfg, params, &device)? {
            Net::Vae(vae) => CpuModel::Vae { vae, opt: Adam::new(Adam::vars_under(params, "")?, &adam)? },
            Net::Gan(gan) => CpuModel::Gan {
                gan,
                opt_g: Adam::new(Adam::vars_under(params, "generator.")?, &adam)?,
                opt_d: Adam::new(Adam::vars_under(params, "discriminator.")?, &adam)?,
            },
        };
        Ok(Self {
            cfg,
            params: params.clone(),
            model,
            device,
            #[cfg(feature = "test-hooks")]
            record_gradients: false,
            #[cfg(feature = "test-hooks")]
            last_gradients: HashMap::new(),
        })
    }

    fn optimizers(&self) -> Vec<&Adam> {
        match &self.model {
            CpuModel::Vae { opt, .. } => vec![opt],
            CpuModel::Gan { opt_g, opt_d, .. } => vec![opt_d, opt_g],
        }
    }

    /// Takes over another backend's weights and Adam's state.
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        {
            let vars = self.params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
            for (name, var) in vars.iter() {
                let values = snapshot.params.get(name).ok_or_else(|| anyhow!("the snapshot has no {name}"))?;
                ensure!(values.len() == var.elem_count(), "the snapshot's {name} has {} values", values.len());
                var.set(&Tensor::from_slice(values, var.shape(), &self.device)?)?;
            }
        }
        self.set_optimizer_state(&snapshot.optimizer)
    }

    /// The weights and Adam's state now.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let vars = self.params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        let params = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().flatten_all()?.to_vec1::<f32>()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        drop(vars);
        Ok(Snapshot { params, optimizer: self.optimizer_state()? })
    }

    #[cfg(feature = "test-hooks")]
    fn record(&mut self, grads: HashMap<String, Vec<f32>>, first: bool) {
        if self.record_gradients {
            if first {
                self.last_gradients.clear();
            }
            self.last_gradients.extend(grads);
        }
    }

    /// Adam alone on given gradients (by name): the parity tests' check of the optimiser.
    #[cfg(feature = "test-hooks")]
    pub fn apply_gradients(&mut self, grads: &HashMap<String, Vec<f32>>, learning_rate: f64) -> Result<()> {
        let device = self.device.clone();
        let mut opts: Vec<&mut Adam> = match &mut self.model {
            CpuModel::Vae { opt, .. } => vec![opt],
            CpuModel::Gan { opt_g, opt_d, .. } => vec![opt_d, opt_g],
        };
        let updates = opts.iter().map(|o| o.propose_named(grads, learning_rate, &device)).collect::<Result<Vec<_>>>()?;
        for (opt, update) in opts.iter_mut().zip(updates) {
            opt.commit(update)?;
        }
        Ok(())
    }

    /// One step, now: forward, backward and Adam, all or nothing.
    pub fn run_step(&mut self, batch: &Batch, learning_rate: f64) -> Result<StepLosses> {
        let n = batch.indices.len();
        let x = batch_images(batch.data, batch.indices, &self.device)?;
        let labels = batch.labels();
        let y = batch_one_hot(&self.cfg, &labels, &self.device)?;
        let noise = Tensor::from_slice(batch.noise, (n, self.cfg.latent), &self.device)?;
        #[cfg(feature = "test-hooks")]
        let mut recorded = Vec::new();
        let losses = match &mut self.model {
            CpuModel::Vae { vae, opt } => {
                let loss = vae.loss(&x, y.as_ref(), &noise)?;
                let parts = LossParts {
                    loss: loss.total.to_scalar::<f32>()?,
                    bce: loss.bce.to_scalar::<f32>()?,
                    kl: loss.kl.to_scalar::<f32>()?,
                };
                if !parts.loss.is_finite() {
                    return Err(diverged("the loss", parts.loss));
                }
                let grads = loss.total.backward()?;
                #[cfg(feature = "test-hooks")]
                recorded.push(opt.named_grads(&grads)?);
                // A finite loss can still have an overflowing gradient; stepping on it would poison
                // every weight.
                if !opt.grad_sq_norm(&grads)?.is_finite() {
                    return Err(diverged("the gradient", "not finite"));
                }
                opt.step(&grads, learning_rate)?;
                StepLosses::Vae(parts)
            }
            CpuModel::Gan { gan, opt_g, opt_d } => {
                let draws = batch.gan.ok_or_else(|| anyhow!("a GAN step needs its dropout draws in the batch"))?;
                let y = y.as_ref();
                let h = self.cfg.hidden;
                let masks = |keep: &DropoutKeep| keep.masks(n, h, &self.device);
                let fake = gan.generator.forward(&noise, y)?;
                // Discriminator half: real against a detached fake, so only D's weights get gradients.
                let real_logits = gan.discriminator.forward(&x, y, Some(&masks(&draws.real)?))?;
                let fake_logits = gan.discriminator.forward(&fake.detach(), y, Some(&masks(&draws.fake)?))?;
                let d_loss = match &draws.mismatched {
                    // Each real digit shown once more with a label it is not.
                    Some(m) if self.cfg.kind.is_conditional() => {
                        let wrong = one_hot(&m.labels, &self.device)?;
                        let mismatched_logits = gan.discriminator.forward(&x, Some(&wrong), Some(&masks(&m.keep)?))?;
                        conditional_discriminator_loss(&real_logits, &fake_logits, &mismatched_logits)?
                    }
                    None if !self.cfg.kind.is_conditional() => discriminator_loss(&real_logits, &fake_logits)?,
                    _ => bail!("a cGAN step needs mismatched labels in its draws, and only a cGAN step takes them"),
                };
                let d_loss_value = d_loss.to_scalar::<f32>()?;
                if !d_loss_value.is_finite() {
                    return Err(diverged("the discriminator's loss", d_loss_value));
                }
                let d_grads = d_loss.backward()?;
                #[cfg(feature = "test-hooks")]
                recorded.push(opt_d.named_grads(&d_grads)?);
                if !opt_d.grad_sq_norm(&d_grads)?.is_finite() {
                    return Err(diverged("the discriminator's gradient", "not finite"));
                }
                let d_update = opt_d.propose(&d_grads, learning_rate)?;
                // Generator half, judged by the discriminator as its update leaves it. Built from
                // plain tensors, that discriminator takes no gradient of its own.
                let vb = VarBuilder::from_tensors(opt_d.proposed_params(&d_update), DType::F32, &self.device);
                let next_d = Discriminator::new(self.cfg, vb.pp("discriminator"))?;
                let g_loss = generator_loss(&next_d.forward(&fake, y, Some(&masks(&draws.generator)?))?)?;
                let g_loss_value = g_loss.to_scalar::<f32>()?;
                if !g_loss_value.is_finite() {
                    return Err(diverged("the generator's loss", g_loss_value));
                }
                let g_grads = g_loss.backward()?;
                #[cfg(feature = "test-hooks")]
                recorded.push(opt_g.named_grads(&g_grads)?);
                if !opt_g.grad_sq_norm(&g_grads)?.is_finite() {
                    return Err(diverged("the generator's gradient", "not finite"));
                }
                let g_update = opt_g.propose(&g_grads, learning_rate)?;
                opt_d.commit(d_update)?;
                opt_g.commit(g_update)?;
                let mean_verdict = |l: &Tensor| -> Result<f32> {
                    Ok(candle_nn::ops::sigmoid(l)?.mean_all()?.to_scalar::<f32>()?)
                };
                StepLosses::Gan(GanLosses {
                    d_loss: d_loss_value,
                    g_loss: g_loss_value,
                    d_real: mean_verdict(&real_logits)?,
                    d_fake: mean_verdict(&fake_logits)?,
                })
            }
        };
        #[cfg(feature = "test-hooks")]
        for (i, grads) in recorded.into_iter().enumerate() {
            self.record(grads, i == 0);
        }
        Ok(losses)
    }
}

impl TrainBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    /// Runs the step before returning: its readback is ready at once. A step that fails here
    /// fails `submit`, so it is never counted.
    fn submit(&mut self, batch: &Batch, learning_rate: f64) -> Result<PendingStep> {
        let losses = self.run_step(batch, learning_rate)?;
        Ok(PendingStep::ready(StepReadback(Box::new(losses))))
    }

    fn finish(&mut self, readback: StepReadback) -> Result<StepLosses> {
        match readback.0.downcast::<StepLosses>() {
            Ok(losses) => Ok(*losses),
            Err(_) => bail!("the CPU backend was handed another backend's step"),
        }
    }

    fn snapshot_now(&mut self) -> Result<PendingSnapshot> {
        let snapshot = self.snapshot()?;
        Ok(PendingSnapshot(Box::pin(std::future::ready(Ok(snapshot)))))
    }

    fn optimizer_state(&self) -> Result<OptimizerState> {
        let mut state = OptimizerState::default();
        for opt in self.optimizers() {
            let (t, moments) = opt.state()?;
            state.t = t;
            state.moments.extend(moments);
        }
        Ok(state)
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        match &mut self.model {
            CpuModel::Vae { opt, .. } => opt.set_state(state),
            CpuModel::Gan { opt_g, opt_d, .. } => {
                opt_d.set_state(state)?;
                opt_g.set_state(state)
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
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

/// Steps between copies of a device's weights back to the CPU, unless set otherwise: what a lost
/// device can cost, against the 7.8 MB a copy of the VAE's weights and moments reads back.
pub const DEFAULT_SYNC_INTERVAL: u64 = 50;

/// The dropout stream is seeded apart from the shuffling and noise stream ("drop").
const DROPOUT_STREAM: u64 = 0x6472_6f70;

/// The training loop, the same on every backend: the dataset, shuffling, every random number of a
/// step (drawn here into the [`Batch`], so every backend consumes the same numbers), batch size and
/// learning rate, step counting. It trains on the CPU backend, or on a device (a GPU) when one is
/// handed over; then the CPU backend holds the weights as last copied out of the device, ready to
/// take over if the device is lost.
pub struct Trainer {
    cfg: ModelConfig,
    cpu: CpuBackend,
    device: Option<DeviceTraining>,
    sync_interval: u64,
    data: Option<Dataset>,
    /// Shuffles and noise.
    rng: StdRng,
    /// A GAN's dropout masks and a cGAN's mismatched labels.
    dropout_rng: StdRng,
    /// The current epoch's shuffle; shared with `TrainerMark`s until the next shuffle.
    order: Arc<Vec<usize>>,
    cursor: usize,
    batch_size: usize,
    learning_rate: f64,
    steps: u64,
    /// Examples drawn from the current dataset, and epochs finished on datasets handed over before it.
    examples_seen: u64,
    earlier_epochs: f64,
    /// The trainer's place after each submitted step not yet finished, oldest first.
    in_flight: VecDeque<TrainerMark>,
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
    /// Trains with `cpu`, Adam's learning rate for the kind and batch 128; `seed` seeds the
    /// shuffles, the noise and (apart) the dropout draws.
    pub fn new(cpu: CpuBackend, seed: u64) -> Self {
        let cfg = cpu.cfg;
        Self {
            cfg,
            cpu,
            device: None,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            data: None,
            rng: StdRng::seed_from_u64(seed),
            dropout_rng: StdRng::seed_from_u64(seed ^ DROPOUT_STREAM),
            order: Arc::new(Vec::new()),
            cursor: 0,
            batch_size: 128,
            learning_rate: AdamConfig::for_kind(cfg.kind).lr,
            steps: 0,
            examples_seen: 0,
            earlier_epochs: 0.0,
            in_flight: VecDeque::new(),
        }
    }

    /// `"cpu"`, or the device's backend name (`"webgpu"`).
    pub fn backend_name(&self) -> &'static str {
        self.device.as_ref().map_or(self.cpu.name(), |d| d.backend.name())
    }

    /// Moves training to `backend` (a GPU), which must hold the weights and Adam's state as the
    /// CPU backend has them now; the dataset goes up too if one is set.
    pub fn use_device(&mut self, mut backend: Box<dyn TrainBackend>) -> Result<()> {
        ensure!(self.device.is_none(), "this model already trains on {}", self.backend_name());
        ensure!(self.in_flight.is_empty(), "{} steps are still in flight", self.in_flight.len());
        if let Some(data) = &self.data {
            backend.set_dataset(data)?;
        }
        backend.set_sync_interval(self.sync_interval);
        self.device = Some(DeviceTraining { backend, synced_at: self.mark(), unsynced: 0 });
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
    pub fn cpu(&self) -> &CpuBackend {
        &self.cpu
    }

    pub fn cpu_mut(&mut self) -> &mut CpuBackend {
        &mut self.cpu
    }

    pub fn set_dataset(&mut self, data: Dataset) -> Result<()> {
        if let Some(d) = &mut self.device {
            d.backend.set_dataset(&data)?;
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
        let device = self.device.as_mut().map(|d| d.backend.as_mut());
        let backend: &mut dyn TrainBackend = match device {
            Some(b) => b,
            None => &mut self.cpu,
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
        let gan = self.cfg.kind.is_gan().then(|| {
            let labels: Vec<u8> = indices.iter().map(|&i| data.labels[i]).collect();
            GanDraws::draw(&mut self.dropout_rng, &self.cfg, &labels)
        });
        let batch = Batch { data, indices, noise: &noise, gan: gan.as_ref() };
        let pending = backend.submit(&batch, self.learning_rate)?;
        self.examples_seen += indices.len() as u64;
        self.cursor = end;
        self.steps += 1;
        self.in_flight.push_back(self.mark());
        Ok(pending)
    }

    /// The oldest submitted step's readback → its stats. When the step also copied a device's
    /// weights out, the CPU backend takes them over here (what sampling, saving and a fallback use).
    pub fn finish(&mut self, readback: StepReadback) -> Result<StepStats> {
        let mark = self.in_flight.pop_front().ok_or_else(|| anyhow!("no training step is in flight"))?;
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

    /// The oldest submitted step's readback failed (the device was lost): it leaves the queue.
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
        let readback = resolve(pending);
        match readback {
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
        Ok(Some(d.backend.snapshot_now()?))
    }

    pub fn finish_sync(&mut self, snapshot: Snapshot) -> Result<()> {
        let mark = self.mark();
        let d = self.device.as_mut().ok_or_else(|| anyhow!("this model does not train on a device"))?;
        self.cpu.restore(&snapshot)?;
        d.synced_at = mark;
        d.unsynced = 0;
        Ok(())
    }

    /// After the device is lost (or to leave it): training continues on the CPU from the last
    /// weights copied out, and goes back to that step too, so the steps after it are trained again
    /// on the same minibatches with the same random numbers.
    pub fn fall_back_to_cpu(&mut self) -> Result<Fallback> {
        let d = self.device.take().ok_or_else(|| anyhow!("this model does not train on a device"))?;
        self.in_flight.clear();
        let steps_now = self.steps;
        self.rewind(&d.synced_at);
        Ok(Fallback { resumed_at: d.synced_at.steps, lost_steps: steps_now - d.synced_at.steps })
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
    rng: StdRng,
    dropout_rng: StdRng,
}

impl TrainerMark {
    pub fn examples_seen(&self) -> u64 {
        self.examples_seen
    }
}

/// A VAE's per-example loss over a whole dataset, with noise from `seed` (PyTorch's example also
/// samples z when it tests), in batches of 1,000.
pub fn evaluate(vae: &Vae, data: &Dataset, seed: u64, device: &Device) -> Result<LossParts> {
    ensure!(!data.is_empty(), "cannot evaluate on an empty dataset");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut bce, mut kl) = (0f64, 0f64);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(1000) {
        let x = batch_images(data, chunk, device)?;
        let noise: Vec<f32> = (0..chunk.len() * vae.cfg.latent).map(|_| rng.sample(StandardNormal)).collect();
        let eps = Tensor::from_vec(noise, (chunk.len(), vae.cfg.latent), device)?;
        let labels: Vec<u8> = chunk.iter().map(|&i| data.labels[i]).collect();
        let y = batch_one_hot(&vae.cfg, &labels, device)?;
        let loss = vae.loss(&x, y.as_ref(), &eps)?;
        bce += loss.bce.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        kl += loss.kl.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    let n = data.len() as f64;
    Ok(LossParts { loss: ((bce + kl) / n) as f32, bce: (bce / n) as f32, kl: (kl / n) as f32 })
}
