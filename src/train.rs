//! Training: minibatches, noise and optimisation steps, behind the seam a GPU backend plugs into.
//!
//! The [`Trainer`] owns everything that is the same on every backend (the dataset, shuffling, the
//! noise stream, batch size and learning rate, step counting); a [`TrainBackend`] owns the
//! parameters' optimiser state and does one step of forward, backward and Adam.

pub use crate::adam::OptimizerState;
use crate::adam::Adam;
use crate::gan::{conditional_discriminator_loss, discriminator_loss, generator_loss, Discriminator, Gan, GanDraws};
use crate::mnist::{Dataset, IMAGE_PIXELS};
use crate::model::{one_hot, ModelConfig, Net};
use crate::vae::Vae;
use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::any::Any;
use std::collections::HashMap;
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

impl Batch<'_> {
    pub fn labels(&self) -> Vec<u8> {
        self.indices.iter().map(|&i| self.data.labels[i]).collect()
    }
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
    /// (a `Diverged` error; then the weights are as before it).
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

/// Waits for a future: natively on the device; in the browser only a future that is already
/// resolved (a CPU step's) can be taken without returning to the event loop.
fn resolve<T>(future: Pin<Box<dyn Future<Output = Result<T>>>>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        pollster::block_on(future)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut future = future;
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => {
                bail!("in the browser this backend's steps are asynchronous: submit them and await their readback")
            }
        }
    }
}

/// Gathers the batch's images as one [n, 784] tensor in [0, 1].
pub fn batch_images(data: &Dataset, indices: &[usize], device: &Device) -> Result<Tensor> {
    let mut px = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &i in indices {
        data.image_f32(i, &mut px);
    }
    Ok(Tensor::from_vec(px, (indices.len(), IMAGE_PIXELS), device)?)
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

/// candle on the CPU (wasm SIMD in the browser): autograd for the backward pass, then Adam.
pub struct CpuBackend {
    cfg: ModelConfig,
    /// The parameters trained in place (shared with the caller's map), for snapshots.
    params: VarMap,
    model: CpuModel,
    device: Device,
    /// With `record_gradients`, the last step's gradients by parameter name (the parity tests').
    pub record_gradients: bool,
    pub last_gradients: HashMap<String, Vec<f32>>,
}

enum CpuModel {
    Vae { vae: Vae, opt: Adam },
    Gan { gan: Gan, opt_g: Adam, opt_d: Adam },
}

impl CpuBackend {
    /// Trains the model over `params` in place, with Adam's β1 for the kind.
    pub fn new(cfg: ModelConfig, params: &VarMap, device: Device) -> Result<Self> {
        let (_, beta1) = cfg.kind.default_adam();
        let model = match Net::new(cfg, params, &device)? {
            Net::Vae(vae) => CpuModel::Vae { vae, opt: Adam::new(Adam::vars_under(params, "")?, beta1, 0.999)? },
            Net::Gan(gan) => CpuModel::Gan {
                gan,
                opt_g: Adam::new(Adam::vars_under(params, "generator.")?, beta1, 0.999)?,
                opt_d: Adam::new(Adam::vars_under(params, "discriminator.")?, beta1, 0.999)?,
            },
        };
        Ok(Self { cfg, params: params.clone(), model, device, record_gradients: false, last_gradients: HashMap::new() })
    }

    fn optimizers(&self) -> Vec<&Adam> {
        match &self.model {
            CpuModel::Vae { opt, .. } => vec![opt],
            CpuModel::Gan { opt_g, opt_d, .. } => vec![opt_d, opt_g],
        }
    }

    /// Adam alone on given gradients (by name): the parity tests' check of the optimiser.
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
}

impl TrainBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    /// Runs the step now; its readback is the step's result, refusal included.
    fn submit(&mut self, batch: &Batch, learning_rate: f64) -> Result<PendingStep> {
        let result: Result<StepLosses> = self.run_step(batch, learning_rate);
        Ok(PendingStep::ready(StepReadback(Box::new(result))))
    }

    fn finish(&mut self, readback: StepReadback) -> Result<StepLosses> {
        match readback.0.downcast::<Result<StepLosses>>() {
            Ok(result) => *result,
            Err(_) => bail!("the CPU backend was handed another backend's readback"),
        }
    }

    fn snapshot_now(&mut self) -> Result<PendingSnapshot> {
        let data = self.params.data().lock().map_err(|_| anyhow::anyhow!("parameter map is poisoned"))?;
        let params = data
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().flatten_all()?.to_vec1::<f32>()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        drop(data);
        let snapshot = Snapshot { params, optimizer: self.optimizer_state()? };
        Ok(PendingSnapshot(Box::pin(std::future::ready(Ok(snapshot)))))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
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
}

impl CpuBackend {
    fn run_step(&mut self, batch: &Batch, learning_rate: f64) -> Result<StepLosses> {
        let n = batch.indices.len();
        let x = batch_images(batch.data, batch.indices, &self.device)?;
        let labels = batch.labels();
        let y = batch_one_hot(&self.cfg, &labels, &self.device)?;
        let noise = Tensor::from_slice(batch.noise, (n, self.cfg.latent), &self.device)?;
        match &mut self.model {
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
                if self.record_gradients {
                    self.last_gradients = opt.named_grads(&grads)?;
                }
                // A finite loss can still have an overflowing gradient; stepping on it would poison
                // every weight.
                if !opt.grad_sq_norm(&grads)?.is_finite() {
                    return Err(diverged("the gradient", "not finite"));
                }
                opt.step(&grads, learning_rate)?;
                Ok(StepLosses::Vae(parts))
            }
            CpuModel::Gan { gan, opt_g, opt_d } => {
                let y = y.as_ref();
                let h = self.cfg.hidden;
                let Some(draws) = batch.gan else { bail!("a GAN step needs its dropout draws (Batch::gan)") };
                let [real_drop, fake_drop, g_drop] =
                    [&draws.real, &draws.fake, &draws.generator].map(|keep| keep.masks(n, h, &self.device));
                let fake = gan.generator.forward(&noise, y)?;
                // Discriminator half: real against a detached fake, so only D's weights get gradients.
                let real_logits = gan.discriminator.forward(&x, y, Some(&real_drop?))?;
                let fake_logits = gan.discriminator.forward(&fake.detach(), y, Some(&fake_drop?))?;
                let d_loss = if self.cfg.kind.is_conditional() {
                    // Each real digit shown once more with a label it is not (shifted by 1 to 9).
                    let Some(mismatched) = &draws.mismatched else {
                        bail!("a conditional GAN step needs its mismatched labels (GanDraws::mismatched)")
                    };
                    ensure!(mismatched.labels.len() == n, "{} mismatched labels for {n} rows", mismatched.labels.len());
                    let wrong = one_hot(&mismatched.labels, &self.device)?;
                    let drop = mismatched.keep.masks(n, h, &self.device)?;
                    let mismatched_logits = gan.discriminator.forward(&x, Some(&wrong), Some(&drop))?;
                    conditional_discriminator_loss(&real_logits, &fake_logits, &mismatched_logits)?
                } else {
                    discriminator_loss(&real_logits, &fake_logits)?
                };
                let d_loss_value = d_loss.to_scalar::<f32>()?;
                if !d_loss_value.is_finite() {
                    return Err(diverged("the discriminator's loss", d_loss_value));
                }
                let d_grads = d_loss.backward()?;
                if self.record_gradients {
                    self.last_gradients = opt_d.named_grads(&d_grads)?;
                }
                if !opt_d.grad_sq_norm(&d_grads)?.is_finite() {
                    return Err(diverged("the discriminator's gradient", "not finite"));
                }
                let d_update = opt_d.propose(&d_grads, learning_rate)?;
                // Generator half, judged by the discriminator as its update leaves it. Built from
                // plain tensors, that discriminator takes no gradient of its own.
                let vb = VarBuilder::from_tensors(opt_d.proposed_params(&d_update), DType::F32, &self.device);
                let next_d = Discriminator::new(self.cfg, vb.pp("discriminator"))?;
                let g_loss = generator_loss(&next_d.forward(&fake, y, Some(&g_drop?))?)?;
                let g_loss_value = g_loss.to_scalar::<f32>()?;
                if !g_loss_value.is_finite() {
                    return Err(diverged("the generator's loss", g_loss_value));
                }
                let g_grads = g_loss.backward()?;
                if self.record_gradients {
                    self.last_gradients.extend(opt_g.named_grads(&g_grads)?);
                }
                if !opt_g.grad_sq_norm(&g_grads)?.is_finite() {
                    return Err(diverged("the generator's gradient", "not finite"));
                }
                let g_update = opt_g.propose(&g_grads, learning_rate)?;
                opt_d.commit(d_update)?;
                opt_g.commit(g_update)?;
                let mean_verdict = |l: &Tensor| -> Result<f32> {
                    Ok(candle_nn::ops::sigmoid(l)?.mean_all()?.to_scalar::<f32>()?)
                };
                Ok(StepLosses::Gan(GanLosses {
                    d_loss: d_loss_value,
                    g_loss: g_loss_value,
                    d_real: mean_verdict(&real_logits)?,
                    d_fake: mean_verdict(&fake_logits)?,
                }))
            }
        }
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

pub struct Trainer {
    backend: Box<dyn TrainBackend>,
    cfg: ModelConfig,
    data: Option<Dataset>,
    rng: StdRng,
    /// The GAN's dropout and mismatched labels, a stream apart from shuffling and noise.
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
}

impl Trainer {
    /// A trainer of a `cfg` model whose shuffles and noise come from `seed` (and the GAN's
    /// dropout from a stream derived from it).
    pub fn new(backend: Box<dyn TrainBackend>, cfg: ModelConfig, seed: u64) -> Self {
        Self {
            backend,
            cfg,
            data: None,
            rng: StdRng::seed_from_u64(seed),
            dropout_rng: StdRng::seed_from_u64(seed ^ 0x6472_6f70),
            order: Arc::new(Vec::new()),
            cursor: 0,
            batch_size: 128,
            learning_rate: 1e-3,
            steps: 0,
            examples_seen: 0,
            earlier_epochs: 0.0,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn set_dataset(&mut self, data: Dataset) -> Result<()> {
        self.backend.set_dataset(&data)?;
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

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Epochs trained so far by this trainer (fractional).
    pub fn epochs(&self) -> f64 {
        let current = self.data.as_ref().map_or(0.0, |d| self.examples_seen as f64 / d.len() as f64);
        self.earlier_epochs + current
    }

    /// Epochs trained once `examples` of the current dataset had been drawn.
    pub fn epochs_at(&self, examples: u64) -> f64 {
        self.earlier_epochs + self.data.as_ref().map_or(0.0, |d| examples as f64 / d.len() as f64)
    }

    /// Steps in one pass over the dataset (the last batch may be short).
    pub fn steps_per_epoch(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len().div_ceil(self.batch_size))
    }

    /// One step on the next shuffled minibatch; a new shuffle starts each epoch.
    pub fn step(&mut self) -> Result<StepStats> {
        let mut backend = std::mem::replace(&mut self.backend, Box::new(NoBackend));
        let result = self.with_next_batch(|batch, lr| {
            let pending = backend.submit(batch, lr)?;
            let readback = resolve(pending.0);
            match readback {
                Ok(r) => backend.finish(r),
                Err(e) => {
                    backend.forget_oldest();
                    Err(e)
                }
            }
        });
        self.backend = backend;
        let (losses, step, epoch) = result?;
        Ok(StepStats { losses, step, epoch })
    }

    /// Hands the next shuffled minibatch (a new shuffle each epoch) and its noise to `take` — a
    /// backend's step, or the GPU's submission of one — and counts it if `take` succeeds.
    /// Returns what `take` gave, and the step count and epochs after it.
    pub fn with_next_batch<T>(&mut self, take: impl FnOnce(&Batch, f64) -> Result<T>) -> Result<(T, u64, f64)> {
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
        // Drawn on a copy, kept only if the step is taken, so a refused submission draws again alike.
        let mut dropout_rng = self.dropout_rng.clone();
        let gan = self.cfg.kind.is_gan().then(|| {
            let labels: Vec<u8> = indices.iter().map(|&i| data.labels[i]).collect();
            GanDraws::draw(&mut dropout_rng, &self.cfg, &labels)
        });
        let batch = Batch { data, indices, noise: &noise, gan: gan.as_ref() };
        let out = take(&batch, self.learning_rate)?;
        self.dropout_rng = dropout_rng;
        self.cursor = end;
        self.steps += 1;
        self.examples_seen += indices.len() as u64;
        Ok((out, self.steps, self.epochs()))
    }

    pub fn data(&self) -> Option<&Dataset> {
        self.data.as_ref()
    }

    pub fn backend(&self) -> &dyn TrainBackend {
        self.backend.as_ref()
    }

    pub fn backend_mut(&mut self) -> &mut dyn TrainBackend {
        self.backend.as_mut()
    }

    /// Where training stands: the counts, the place in the epoch's shuffle and the noise stream.
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
    /// minibatches with the same noise (after a lost GPU device took their results).
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

/// Stands in for the trainer's backend while `step` lends it out.
struct NoBackend;

impl TrainBackend for NoBackend {
    fn name(&self) -> &'static str {
        "none"
    }
    fn submit(&mut self, _: &Batch, _: f64) -> Result<PendingStep> {
        bail!("no training backend")
    }
    fn finish(&mut self, _: StepReadback) -> Result<StepLosses> {
        bail!("no training backend")
    }
    fn snapshot_now(&mut self) -> Result<PendingSnapshot> {
        bail!("no training backend")
    }
    fn optimizer_state(&self) -> Result<OptimizerState> {
        bail!("no training backend")
    }
    fn set_optimizer_state(&mut self, _: &OptimizerState) -> Result<()> {
        bail!("no training backend")
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
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
