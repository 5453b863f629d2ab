//! The training seam: what a step is given (a [`Batch`], every random number in it), what it
//! reports, and the [`TrainBackend`] trait that the CPU backend (`cpu.rs`), candle's reference
//! (`reference.rs`) and the WebGPU backend (`gpu/`) implement, so the trainer (`train.rs`) does not care which runs a step. A step is
//! submitted and finished apart, so a GPU's steps queue without waiting for their readback.

pub use crate::adam::{AdamConfig, OptimizerState};
pub use crate::config::VaeObjective;
pub use crate::gan::GanDraws;
use crate::mnist::Dataset;
use anyhow::Result;
use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

/// A VAE step's loss per example, and its two parts: loss = bce + β·kl.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossParts {
    pub loss: f32,
    /// The reconstruction term: binary cross-entropy, or L2 or L1 when the objective says so
    /// (named `bce` in the API since the models began with it alone).
    pub bce: f32,
    /// The KL term, unweighted.
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
/// consumes the same numbers by construction; and what the step minimises and how (for a VAE its
/// objective, which may change between steps: the page's KL weight moves while training runs;
/// Adam's constants).
pub struct Batch<'a> {
    pub data: &'a Dataset,
    pub indices: &'a [usize],
    /// [len(indices), latent]: the VAE's reparameterisation ε, or the GAN generator's input z.
    pub noise: &'a [f32],
    /// GAN kinds: the discriminator's dropout and a cGAN's mismatched labels; `None` for VAEs.
    pub gan: Option<&'a GanDraws>,
    /// VAE kinds: the reconstruction loss and the KL weight (GANs ignore it).
    pub vae: VaeObjective,
    /// cGAN: what the label's one-hot is multiplied by in the discriminator's input
    /// (`TrainSettings::label_gain`; 1 is the plain one-hot). Other kinds ignore it.
    pub label_gain: f32,
    /// Adam's β1, β2 and ε for this step (`AdamConfig::for_settings`: β2 is the recipe's).
    pub adam: AdamConfig,
}

/// What a backend reads back for one step; only the backend that submitted it can interpret it.
pub struct StepReadback(pub Box<dyn Any>);

impl StepReadback {
    /// The losses in a readback from [`PendingStep::done`]; `backend` names the one taking it.
    pub fn into_losses(self, backend: &str) -> Result<StepLosses> {
        match self.0.downcast::<StepLosses>() {
            Ok(losses) => Ok(*losses),
            Err(_) => anyhow::bail!("the {backend} backend was handed another backend's step"),
        }
    }
}

/// A submitted step; `read` waits for its readback without blocking the queue (natively it waits
/// on the device; in the browser it yields to the event loop).
pub struct PendingStep(pub Pin<Box<dyn Future<Output = Result<StepReadback>>>>);

impl PendingStep {
    pub fn ready(r: StepReadback) -> Self {
        PendingStep(Box::pin(std::future::ready(Ok(r))))
    }

    /// A step a synchronous backend (the CPU's, candle's) has already run: its losses are the readback.
    pub fn done(losses: StepLosses) -> Self {
        Self::ready(StepReadback(Box::new(losses)))
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
    /// A copy already made (a synchronous backend's).
    pub fn ready(snapshot: Snapshot) -> Self {
        PendingSnapshot(Box::pin(std::future::ready(Ok(snapshot))))
    }

    pub async fn read(self) -> Result<Snapshot> {
        self.0.await
    }
}

impl Batch<'_> {
    pub fn labels(&self) -> Vec<u8> {
        self.indices.iter().map(|&i| self.data.labels[i]).collect()
    }
}

/// Steps between copies of a device's weights back to the CPU, unless set otherwise: what a lost
/// device can cost, against the 7.8 MB a copy of the VAE's weights and moments reads back.
pub const DEFAULT_SYNC_INTERVAL: u64 = 50;

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

/// The backend on the CPU that the trainer keeps the weights on (`train.rs`): it trains when no
/// device does, holds the weights as last copied out of one, and is the model's own, so sampling,
/// encoding and saving read what it trained: the engine (`cpu.rs`), for every kind (candle's
/// autograd, `reference.rs`, is the tests' reference).
pub trait HostBackend: TrainBackend {
    fn config(&self) -> crate::config::ModelConfig;
    /// Brings the model's parameters (the `VarMap` it was built over) up to date with training:
    /// call before reading the model (sampling, encoding, saving, moving to a GPU).
    fn publish(&self) -> Result<()>;
    /// Takes over another backend's weights and Adam's state; a bad snapshot changes nothing.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<()>;
    /// The weights and Adam's state now.
    fn snapshot(&self) -> Result<Snapshot>;
    /// GAN kinds: keep the generator's weights averaged over the steps and have `publish` write
    /// the average (what sampling and saving read), or stop. False where the backend cannot
    /// (it keeps no average: candle's, which trains GANs only as the tests' reference).
    fn set_generator_average(&mut self, on: bool) -> bool {
        !on
    }
    /// The averaged generator by parameter name, when kept (what a saved run stores beside the
    /// trained weights, so a resumed run shows what it showed).
    fn generator_average(&self) -> Option<HashMap<String, Vec<f32>>> {
        None
    }
    /// Takes a saved average over (after `set_generator_average(true)`); every generator tensor, checked.
    fn restore_generator_average(&mut self, _average: &HashMap<String, Vec<f32>>) -> Result<()> {
        anyhow::bail!("this backend keeps no average of the generator")
    }
    /// As `publish`, but the generator's own trained weights rather than its average: what a
    /// device that takes over training must start from.
    fn publish_trained(&self) -> Result<()> {
        self.publish()
    }
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
