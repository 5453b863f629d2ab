//! Training: minibatches, noise and optimisation steps, behind the seam a GPU backend plugs into.
//!
//! The [`Trainer`] owns everything that is the same on every backend (the dataset, shuffling, the
//! noise stream, batch size and learning rate, step counting); a [`TrainBackend`] owns the
//! parameters' optimiser state and does one step of forward, backward and Adam.

use crate::mnist::{Dataset, IMAGE_PIXELS};
use crate::vae::Vae;
use anyhow::{bail, ensure, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
use rand_distr::StandardNormal;

/// One step's loss, per example, and its two parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossParts {
    pub loss: f32,
    pub bce: f32,
    pub kl: f32,
}

/// One minibatch: which examples, and the reparameterisation noise ε [len(indices), latent].
pub struct Batch<'a> {
    pub data: &'a Dataset,
    pub indices: &'a [usize],
    pub noise: &'a [f32],
}

/// The training seam. A backend that returns an error must leave the weights as they were.
pub trait TrainBackend {
    fn name(&self) -> &'static str;
    fn step(&mut self, batch: &Batch, learning_rate: f64) -> Result<LossParts>;
}

/// Gathers the batch's images as one [n, 784] tensor in [0, 1].
pub fn batch_images(data: &Dataset, indices: &[usize], device: &Device) -> Result<Tensor> {
    let mut px = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &i in indices {
        data.image_f32(i, &mut px);
    }
    Ok(Tensor::from_vec(px, (indices.len(), IMAGE_PIXELS), device)?)
}

/// candle on the CPU (wasm SIMD in the browser): autograd for the backward pass, candle-nn's Adam.
pub struct CpuBackend {
    vae: Vae,
    vars: Vec<Var>,
    opt: AdamW,
    device: Device,
}

impl CpuBackend {
    /// `vars` must be the variables behind `vae`, so stepping them trains it.
    pub fn new(vae: Vae, vars: Vec<Var>, device: Device) -> Result<Self> {
        let params = ParamsAdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let opt = AdamW::new(vars.clone(), params)?;
        Ok(Self { vae, vars, opt, device })
    }
}

impl TrainBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn step(&mut self, batch: &Batch, learning_rate: f64) -> Result<LossParts> {
        let n = batch.indices.len();
        let x = batch_images(batch.data, batch.indices, &self.device)?;
        let eps = Tensor::from_slice(batch.noise, (n, self.vae.cfg.latent), &self.device)?;
        let loss = self.vae.loss(&x, &eps)?;
        let parts = LossParts {
            loss: loss.total.to_scalar::<f32>()?,
            bce: loss.bce.to_scalar::<f32>()?,
            kl: loss.kl.to_scalar::<f32>()?,
        };
        ensure!(
            parts.loss.is_finite(),
            "training diverged: the loss is {} (try a lower learning rate); the weights were not changed",
            parts.loss
        );
        let grads = loss.total.backward()?;
        // A finite loss can still have an overflowing gradient; stepping on it would poison every
        // weight, so check the squared norm over all parameters first (one small reduction each).
        let mut sq_norm = 0f64; // f64: a sum of large finite f32 squares must not overflow
        for var in &self.vars {
            if let Some(g) = grads.get(var) {
                sq_norm += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        if !sq_norm.is_finite() {
            bail!("training diverged: the gradient is not finite (try a lower learning rate); the weights were not changed");
        }
        self.opt.set_learning_rate(learning_rate);
        self.opt.step(&grads)?;
        Ok(parts)
    }
}

/// What a training step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    pub parts: LossParts,
    /// Steps taken so far, this one included.
    pub step: u64,
    /// Passes over the dataset so far (fractional).
    pub epoch: f64,
}

pub struct Trainer {
    backend: Box<dyn TrainBackend>,
    latent: usize,
    data: Option<Dataset>,
    rng: StdRng,
    order: Vec<usize>,
    cursor: usize,
    batch_size: usize,
    learning_rate: f64,
    steps: u64,
    /// Examples drawn from the current dataset, and epochs finished on datasets handed over before it.
    examples_seen: u64,
    earlier_epochs: f64,
}

impl Trainer {
    pub fn new(backend: Box<dyn TrainBackend>, latent: usize, seed: u64) -> Self {
        Self {
            backend,
            latent,
            data: None,
            rng: StdRng::seed_from_u64(seed),
            order: Vec::new(),
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

    pub fn set_dataset(&mut self, data: Dataset) {
        self.earlier_epochs = self.epochs();
        self.examples_seen = 0;
        self.order = (0..data.len()).collect();
        self.cursor = self.order.len(); // reshuffle before the first batch
        self.data = Some(data);
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

    /// Steps in one pass over the dataset (the last batch may be short).
    pub fn steps_per_epoch(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len().div_ceil(self.batch_size))
    }

    /// One step on the next shuffled minibatch; a new shuffle starts each epoch.
    pub fn step(&mut self) -> Result<StepStats> {
        let Some(data) = self.data.as_ref() else {
            bail!("no dataset: hand one over with set_dataset before train_step");
        };
        ensure!(!data.is_empty(), "the dataset is empty");
        if self.cursor >= self.order.len() {
            self.order.shuffle(&mut self.rng);
            self.cursor = 0;
        }
        let end = (self.cursor + self.batch_size).min(self.order.len());
        let indices = &self.order[self.cursor..end];
        let noise: Vec<f32> =
            (0..indices.len() * self.latent).map(|_| self.rng.sample(StandardNormal)).collect();
        let parts = self.backend.step(&Batch { data, indices, noise: &noise }, self.learning_rate)?;
        self.cursor = end;
        self.steps += 1;
        self.examples_seen += indices.len() as u64;
        Ok(StepStats { parts, step: self.steps, epoch: self.epochs() })
    }
}

/// The per-example loss over a whole dataset, with noise from `seed` (PyTorch's example also
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
        let loss = vae.loss(&x, &eps)?;
        bce += loss.bce.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        kl += loss.kl.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    let n = data.len() as f64;
    Ok(LossParts { loss: ((bce + kl) / n) as f32, bce: (bce / n) as f32, kl: (kl / n) as f32 })
}
