//! The CPU engine: every model kind's training step hand-derived (each layer's forward beside its
//! backward, as the GPU's graphs are), over flat buffers allocated once: parameters, gradients and
//! Adam's moments in `layout.rs`'s order, activations sized to the largest batch seen. Bias and
//! activation run in the matrix product's store, each loss with its gradient in one pass, Adam in
//! one pass per network.
//!
//! - `matmul.rs`: the products (register-blocked simd128 tiles in the browser, the `gemm` crate natively);
//! - `lanes.rs`: four-lane vectors (wasm simd128, or arrays natively), `exp` and `ln_1p` on them;
//! - `layers.rs`: a linear layer's forward and backward, activations, losses;
//! - `adam.rs`: the fused Adam pass, in place or as a proposal the step commits;
//! - `conv.rs`: the convolutional kinds' layers (a convolution of either direction as an im2col
//!   product, max pooling), position-major;
//! - `vae_step.rs`, `gan_step.rs`, `ae_step.rs`, `conv_vae_step.rs`, `conv_ae_step.rs`: one step per kind of network;
//! - `classify.rs`: the digit classifier's forward (the quality yardstick's, not trained here);
//! - `clock.rs`: where the steps' time goes, phase by phase (the benchmark's shares);
//! - `threads.rs`: the threads a step's products are split across (the threaded wasm build's pool).
//!
//! candle's autograd (`reference.rs`) is what the tests hold it to.

pub mod adam;
mod ae_step;
pub mod classify;
pub mod clock;
mod conv;
mod conv_ae_step;
mod conv_vae_step;
mod gan_step;
pub mod lanes;
pub mod layers;
pub mod matmul;
pub mod threads;
mod vae_step;

use crate::adam::AdamConfig;
use crate::backend::{diverged, Batch, StepLosses};
use crate::config::{Family, ModelConfig};
use crate::layout::ParamLayout;
use crate::mnist::{CLASSES, IMAGE_PIXELS};
use adam::Moments;
use clock::{PhaseTimes, Stopwatch};
use anyhow::{bail, ensure, Result};
use ae_step::AeStep;
use conv_ae_step::ConvAeStep;
use conv_vae_step::ConvVaeStep;
use gan_step::GanStep;
use std::ops::Range;
use vae_step::VaeStep;

pub struct Engine {
    pub cfg: ModelConfig,
    pub layout: ParamLayout,
    pub theta: Vec<f32>,
    /// The last step's gradient (each entry written by that step).
    pub grad: Vec<f32>,
    pub moments: Moments,
    /// Steps committed.
    pub t: u64,
    /// Where the steps' time went.
    pub phases: PhaseTimes,
    /// A GAN's discriminator takes real digits' rows as 2x, whose zeros its first layer's products
    /// skip, rather than 2x − 1 (`gan_step.rs`, `RealRows`): where the products skip zeros, the
    /// blocked product in the browser. Natively the `gemm` crate does every multiply-add anyway,
    /// so the rows stay 2x − 1 and the products sum as candle's do (the 200-step curves' bar: a
    /// GAN's training amplifies rounding, and the rearranged sums part from candle's by step 100).
    pub real_digits_as_2x: bool,
    /// Adam's constants: the kind's until a step brings its own (`Batch::adam`).
    adam: AdamConfig,
    step: Option<FamilyStep>,
}

enum FamilyStep {
    Vae(VaeStep),
    Gan(GanStep),
    Ae(AeStep),
    ConvVae(ConvVaeStep),
    ConvAe(ConvAeStep),
}

impl FamilyStep {
    /// Room for `n` examples in the step's activations.
    fn reserve(&mut self, cfg: &ModelConfig, n: usize) {
        match self {
            FamilyStep::Vae(s) => s.reserve(cfg, n),
            FamilyStep::Gan(s) => s.reserve(cfg, n),
            FamilyStep::Ae(s) => s.reserve(n),
            FamilyStep::ConvVae(s) => s.reserve(cfg, n),
            FamilyStep::ConvAe(s) => s.reserve(n),
        }
    }
}

impl Engine {
    /// An engine over `theta` (flat, in `ParamLayout::new(cfg)`'s order) with zero moments.
    pub fn new(cfg: ModelConfig, theta: Vec<f32>) -> Result<Self> {
        let layout = ParamLayout::new(&cfg);
        ensure!(theta.len() == layout.total, "{} parameters for a model of {}", theta.len(), layout.total);
        let total = layout.total;
        let mut e = Self {
            cfg,
            layout,
            theta,
            grad: vec![0.0; total],
            moments: Moments::zeros(total),
            t: 0,
            phases: PhaseTimes::default(),
            real_digits_as_2x: cfg!(target_arch = "wasm32"),
            adam: AdamConfig::for_kind(cfg.kind),
            step: None,
        };
        e.step = Some(match (cfg.kind.family(), cfg.kind.is_convolutional()) {
            (Family::Gan, _) => FamilyStep::Gan(GanStep::new(&e)?),
            (Family::Vae, false) => FamilyStep::Vae(VaeStep::new(&e)?),
            (Family::Vae, true) => FamilyStep::ConvVae(ConvVaeStep::new(&e)?),
            (Family::Ae, false) => FamilyStep::Ae(AeStep::new(&e)?),
            (Family::Ae, true) => FamilyStep::ConvAe(ConvAeStep::new(&e)?),
        });
        Ok(e)
    }

    /// One step: forward, backward and Adam, committed only if every check passed (a refused
    /// step leaves the parameters and moments as they were). It runs on the thread pool where
    /// the build has one (`threads.rs`).
    pub fn step(&mut self, batch: &Batch, lr: f64) -> Result<StepLosses> {
        // The activations grow here, on the calling thread, so that an allocation that fails
        // traps where the caller sees it (the page's worker reports a trap and restarts), not on
        // a pool thread that the caller would wait on for ever.
        if let Some(family) = self.step.as_mut() {
            family.reserve(&self.cfg, batch.indices.len());
        }
        threads::in_pool(|| self.step_here(batch, lr))
    }

    fn step_here(&mut self, batch: &Batch, lr: f64) -> Result<StepLosses> {
        ensure!(!batch.indices.is_empty(), "a training step needs at least one example");
        let examples = batch.data.len().min(batch.data.images.len() / IMAGE_PIXELS);
        if let Some(&i) = batch.indices.iter().find(|&&i| i >= examples) {
            bail!("example {i} is outside the dataset of {examples}");
        }
        ensure!(
            batch.noise.len() == batch.indices.len() * self.cfg.latent,
            "{} noise values for {} examples of latent size {}",
            batch.noise.len(),
            batch.indices.len(),
            self.cfg.latent
        );
        self.adam = batch.adam;
        let Some(mut family) = self.step.take() else {
            bail!("the engine's step was lost in an earlier step that did not return");
        };
        let result = match &mut family {
            FamilyStep::Vae(s) => s.run(self, batch, lr).map(StepLosses::Vae),
            FamilyStep::Gan(s) => s.run(self, batch, lr).map(StepLosses::Gan),
            FamilyStep::Ae(s) => s.run(self, batch, lr).map(StepLosses::Vae),
            FamilyStep::ConvVae(s) => s.run(self, batch, lr).map(StepLosses::Vae),
            FamilyStep::ConvAe(s) => s.run(self, batch, lr).map(StepLosses::Vae),
        };
        self.step = Some(family);
        // A refused step's proposals (a GAN's discriminator, before its generator was refused)
        // are dropped, so no later commit takes them.
        let losses = result.inspect_err(|_| self.moments.discard())?;
        let mut sw = Stopwatch::start();
        self.commit();
        self.phases.optimizer += sw.lap();
        Ok(losses)
    }

    /// Adam alone, over every parameter, from the gradient in `grad`.
    pub fn apply_gradient(&mut self, lr: f64) {
        self.moments.update(&self.adam, self.t + 1, lr, &mut self.theta, &self.grad, 0..self.layout.total);
        self.commit();
    }

    /// Ends a step: the proposals become θ and the moments (if it made any), and t counts it.
    fn commit(&mut self) {
        self.moments.commit(&mut self.theta);
        self.t += 1;
    }

    /// Adam's proposal for step t + 1 over `range`.
    fn propose(&mut self, lr: f64, range: Range<usize>) {
        self.moments.propose(&self.adam, self.t + 1, lr, &self.theta, &self.grad, range);
    }

    fn layout_range(&self, prefix: &str) -> Range<usize> {
        let (off, count) = self.layout.range(prefix);
        off as usize..(off + count) as usize
    }

    /// The step's check (a loss or gradient that is not finite refuses it before anything
    /// changes), then Adam's step over every parameter, in place: for a step of one network,
    /// which nothing after this can refuse.
    fn check_and_update(&mut self, loss: f32, lr: f64, sw: &mut Stopwatch) -> Result<()> {
        if !loss.is_finite() {
            return Err(diverged("the loss", loss));
        }
        if !self.grad_is_finite(0..self.layout.total) {
            return Err(diverged("the gradient", "not finite"));
        }
        self.phases.backward += sw.lap();
        self.moments.update(&self.adam, self.t + 1, lr, &mut self.theta, &self.grad, 0..self.layout.total);
        self.phases.optimizer += sw.lap();
        Ok(())
    }

    /// Every gradient entry over `range` is finite.
    fn grad_is_finite(&self, range: Range<usize>) -> bool {
        layers::all_finite(&self.grad[range])
    }
}

/// The batch's images as rows [n, p + c] of pixel·scale + shift, each followed (c = 10) by the
/// one-hot of its label, or of `labels` where given (a cGAN's mismatched rows), its one at `hot`
/// (a cGAN discriminator's label gain; else 1). The indices were checked by `Engine::step`.
fn fill_inputs(batch: &Batch, labels: Option<&[u8]>, (scale, shift): (f32, f32), hot: f32, out: &mut [f32], p: usize, c: usize) -> Result<()> {
    let data = batch.data;
    for (r, (&i, row)) in batch.indices.iter().zip(out.chunks_exact_mut(p + c)).enumerate() {
        let pixels = &data.images[i * p..(i + 1) * p];
        for (o, &v) in row[..p].iter_mut().zip(pixels) {
            *o = (v as f32 / 255.0) * scale + shift;
        }
        if c == CLASSES {
            one_hot_into(labels.map_or(data.labels[i], |l| l[r]), hot, &mut row[p..])?;
        }
    }
    Ok(())
}

/// The one-hot row of digit `label` (its one at `hot`), written into `out` (10 wide).
fn one_hot_into(label: u8, hot: f32, out: &mut [f32]) -> Result<()> {
    ensure!((label as usize) < out.len(), "label {label} is not a digit from 0 to 9");
    out.fill(0.0);
    out[label as usize] = hot;
    Ok(())
}
