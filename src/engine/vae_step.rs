//! One VAE (or cVAE) training step, hand-derived from src/vae.rs (the same graph as the GPU's
//! `gpu/vae_step.rs`):
//!
//!   x [n, 784 (+10)] → fc1 → ReLU → h1 → fc21 → μ, fc22 → log σ²
//!   z = μ + exp(½ log σ²)·ε (+ label) → fc3 → ReLU → h3 → fc4 → logits
//!   loss = recon(logits, x) + β·KL(μ, log σ²), each summed per example and averaged over the batch
//!   (recon: BCE, or L2 or L1 of sigmoid(logits), as the batch's objective says)
//!
//! then the backward pass in reverse order into the flat gradient, the step's check, and Adam.
//! The dense layers from fc1 to fc4 (`DenseVae`) are the conv VAE's middle too
//! (`conv_vae_step.rs`), between its convolutions.

use super::clock::Stopwatch;
use super::layers::{act_backward, kl_backward, recon_backward, reparameterise, Linear};
use super::matmul::Act;
use super::{fill_inputs, Engine};
use crate::backend::{Batch, LossParts};
use crate::config::ModelConfig;
use crate::mnist::IMAGE_PIXELS;
use anyhow::Result;

/// A VAE's dense layers, fc1 → (fc21 μ, fc22 log σ²) → z → fc3 → fc4, with every activation and
/// gradient between them for up to `rows` examples.
pub(super) struct DenseVae {
    fc1: Linear,
    fc21: Linear,
    fc22: Linear,
    fc3: Linear,
    fc4: Linear,
    rows: usize,
    h1: Vec<f32>,
    mu: Vec<f32>,
    logvar: Vec<f32>,
    z: Vec<f32>,
    h3: Vec<f32>,
    dh3: Vec<f32>,
    dz: Vec<f32>,
    dmu: Vec<f32>,
    dlogvar: Vec<f32>,
    dh1: Vec<f32>,
}

impl DenseVae {
    pub(super) fn new(e: &Engine) -> Result<Self> {
        let layer = |name: &str| Linear::of(&e.layout, &e.cfg, name);
        let empty = Vec::new;
        Ok(Self {
            fc1: layer("fc1")?,
            fc21: layer("fc21")?,
            fc22: layer("fc22")?,
            fc3: layer("fc3")?,
            fc4: layer("fc4")?,
            rows: 0,
            h1: empty(),
            mu: empty(),
            logvar: empty(),
            z: empty(),
            h3: empty(),
            dh3: empty(),
            dz: empty(),
            dmu: empty(),
            dlogvar: empty(),
            dh1: empty(),
        })
    }

    /// Room for `n` examples (buffers only ever grow, so steady training allocates nothing).
    pub(super) fn reserve(&mut self, cfg: &ModelConfig, n: usize) {
        if n <= self.rows {
            return;
        }
        let (l, h, c) = (cfg.latent, cfg.hidden, cfg.kind.label_width());
        self.rows = n;
        for (buf, width) in [
            (&mut self.h1, h),
            (&mut self.mu, l),
            (&mut self.logvar, l),
            (&mut self.z, l + c),
            (&mut self.h3, h),
            (&mut self.dh3, h),
            (&mut self.dz, l),
            (&mut self.dmu, l),
            (&mut self.dlogvar, l),
            (&mut self.dh1, h),
        ] {
            buf.resize(n * width, 0.0);
        }
    }

    /// The label's width: fc3 takes z and, in a cVAE, the label.
    fn label_width(&self) -> usize {
        self.fc3.fan_in - self.fc21.fan_out
    }

    /// out [n, fc4's outputs] = act(fc4(ReLU(fc3(z)))), z = μ + σ·ε from x's rows (`x_rs` apart,
    /// fc1's inputs), each followed by the row's last columns in a cVAE (the label).
    pub(super) fn forward(&mut self, th: &[f32], n: usize, x: &[f32], x_rs: usize, noise: &[f32], out: &mut [f32], act: Act) {
        let (l, h, c) = (self.fc21.fan_out, self.fc1.fan_out, self.label_width());
        self.fc1.forward(th, n, x, x_rs, &mut self.h1, Act::Relu, None);
        self.fc21.forward(th, n, &self.h1, h, &mut self.mu, Act::None, None);
        self.fc22.forward(th, n, &self.h1, h, &mut self.logvar, Act::None, None);
        reparameterise(n, l, &self.mu, &self.logvar, noise, &mut self.z, l + c);
        for i in 0..n {
            // the label, after the latent columns
            self.z[i * (l + c) + l..(i + 1) * (l + c)].copy_from_slice(&x[(i + 1) * x_rs - c..(i + 1) * x_rs]);
        }
        self.fc3.forward(th, n, &self.z, l + c, &mut self.h3, Act::Relu, None);
        self.fc4.forward(th, n, &self.h3, h, out, act, None);
    }

    /// From dout (the gradient at fc4's output, before its activation): every dense layer's
    /// gradient into `g`, with the KL term's at β = `kl_weight`, and dx for fc1's input (its
    /// first `dx.1` columns) where asked. Returns the KL term per example.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward(
        &mut self, th: &[f32], n: usize, x: &[f32], x_rs: usize, noise: &[f32], kl_weight: f64, dout: &[f32], g: &mut [f32],
        dx: Option<(&mut [f32], usize)>,
    ) -> f64 {
        let (l, h, c) = (self.fc21.fan_out, self.fc1.fan_out, self.label_width());
        self.fc4.backward(th, n, &self.h3, h, dout, Some(g), Some((&mut self.dh3, h, false)));
        act_backward(&self.h3[..n * h], &mut self.dh3[..n * h], Act::Relu, None);
        // only the latent columns of dZ: the label takes no gradient
        self.fc3.backward(th, n, &self.z, l + c, &self.dh3, Some(g), Some((&mut self.dz, l, false)));
        // KL = −½ Σ (1 + log σ² − μ² − σ²) per example, weighted by β; z = μ + σ·ε
        let scale = (kl_weight / n as f64) as f32;
        let kl = kl_backward(n * l, &self.mu, &self.logvar, noise, &self.dz, &mut self.dmu, &mut self.dlogvar, scale) / n as f64;
        self.fc21.backward(th, n, &self.h1, h, &self.dmu, Some(g), Some((&mut self.dh1, h, false)));
        self.fc22.backward(th, n, &self.h1, h, &self.dlogvar, Some(g), Some((&mut self.dh1, h, true)));
        act_backward(&self.h1[..n * h], &mut self.dh1[..n * h], Act::Relu, None);
        self.fc1.backward(th, n, x, x_rs, &self.dh1, Some(g), dx.map(|(dx, cols)| (dx, cols, false)));
        kl
    }
}

/// The dense layers, and the input and logits for up to `rows` examples.
pub struct VaeStep {
    dense: DenseVae,
    rows: usize,
    x: Vec<f32>,
    logits: Vec<f32>,
}

impl VaeStep {
    pub fn new(e: &Engine) -> Result<Self> {
        Ok(Self { dense: DenseVae::new(e)?, rows: 0, x: Vec::new(), logits: Vec::new() })
    }

    /// Room for `n` examples (buffers only ever grow, so steady training allocates nothing).
    pub(super) fn reserve(&mut self, cfg: &ModelConfig, n: usize) {
        self.dense.reserve(cfg, n);
        if n <= self.rows {
            return;
        }
        self.rows = n;
        self.x.resize(n * (IMAGE_PIXELS + cfg.kind.label_width()), 0.0);
        self.logits.resize(n * IMAGE_PIXELS, 0.0);
    }

    /// Forward, backward and Adam's step, in place once the checks pass: a step whose loss or
    /// gradient is not finite is refused before anything changes.
    pub fn run(&mut self, e: &mut Engine, batch: &Batch, lr: f64) -> Result<LossParts> {
        let n = batch.indices.len();
        self.reserve(&e.cfg, n);
        let (p, c) = (IMAGE_PIXELS, e.cfg.kind.label_width());
        let mut sw = Stopwatch::start();
        let th = &e.theta;
        // forward
        fill_inputs(batch, None, (1.0, 0.0), 1.0, &mut self.x[..n * (p + c)], p, c)?;
        self.dense.forward(th, n, &self.x, p + c, batch.noise, &mut self.logits, Act::None);
        e.phases.forward += sw.lap();
        // loss; the logits become their gradient
        let objective = batch.vae;
        let bce = recon_backward(objective.recon, &mut self.logits[..n * p], p, &self.x, p + c, n) / n as f64;
        e.phases.loss += sw.lap();
        // backward, in reverse order
        let kl = self.dense.backward(th, n, &self.x, p + c, batch.noise, objective.kl_weight, &self.logits, &mut e.grad, None);
        // the step's check, then Adam over every parameter
        let total = (bce + objective.kl_weight * kl) as f32;
        e.check_and_update(total, lr, &mut sw)?; // the KL term's share (a few µs) in the backward's
        Ok(LossParts { loss: total, bce: bce as f32, kl: kl as f32 })
    }
}
