//! One VAE (or cVAE) training step, hand-derived from src/vae.rs (the same graph as the GPU's
//! `gpu/vae_step.rs`):
//!
//!   x [n, 784 (+10)] → fc1 → ReLU → h1 → fc21 → μ, fc22 → log σ²
//!   z = μ + exp(½ log σ²)·ε (+ label) → fc3 → ReLU → h3 → fc4 → logits
//!   loss = recon(logits, x) + β·KL(μ, log σ²), each summed per example and averaged over the batch
//!   (recon: BCE, or L2 or L1 of sigmoid(logits), as the batch's objective says)
//!
//! then the backward pass in reverse order into the flat gradient, the step's check, and Adam.

use super::layers::{act_backward, kl_backward, recon_backward, reparameterise, Linear};
use super::matmul::Act;
use super::clock::Stopwatch;
use super::{fill_inputs, Engine};
use crate::backend::{Batch, LossParts};
use crate::config::ModelConfig;
use crate::mnist::IMAGE_PIXELS;
use anyhow::Result;

/// The layers, and every activation and its gradient for up to `rows` examples.
pub struct VaeStep {
    fc1: Linear,
    fc21: Linear,
    fc22: Linear,
    fc3: Linear,
    fc4: Linear,
    rows: usize,
    x: Vec<f32>,
    h1: Vec<f32>,
    mu: Vec<f32>,
    logvar: Vec<f32>,
    z: Vec<f32>,
    h3: Vec<f32>,
    logits: Vec<f32>,
    dh3: Vec<f32>,
    dz: Vec<f32>,
    dmu: Vec<f32>,
    dlogvar: Vec<f32>,
    dh1: Vec<f32>,
}

impl VaeStep {
    pub fn new(e: &Engine) -> Result<Self> {
        let layer = |name: &str| Linear::of(&e.layout, &e.cfg, name);
        let empty = Vec::new;
        Ok(Self {
            fc1: layer("fc1")?,
            fc21: layer("fc21")?,
            fc22: layer("fc22")?,
            fc3: layer("fc3")?,
            fc4: layer("fc4")?,
            rows: 0,
            x: empty(),
            h1: empty(),
            mu: empty(),
            logvar: empty(),
            z: empty(),
            h3: empty(),
            logits: empty(),
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
        let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
        self.rows = n;
        for (buf, width) in [
            (&mut self.x, p + c),
            (&mut self.h1, h),
            (&mut self.mu, l),
            (&mut self.logvar, l),
            (&mut self.z, l + c),
            (&mut self.h3, h),
            (&mut self.logits, p),
            (&mut self.dh3, h),
            (&mut self.dz, l),
            (&mut self.dmu, l),
            (&mut self.dlogvar, l),
            (&mut self.dh1, h),
        ] {
            buf.resize(n * width, 0.0);
        }
    }

    /// Forward, backward and Adam's proposal; the caller commits. A step whose loss or gradient
    /// is not finite is refused before anything is proposed.
    pub fn run(&mut self, e: &mut Engine, batch: &Batch, lr: f64) -> Result<LossParts> {
        let n = batch.indices.len();
        self.reserve(&e.cfg, n);
        let (l, h, p, c) = (e.cfg.latent, e.cfg.hidden, IMAGE_PIXELS, e.cfg.kind.label_width());
        let mut sw = Stopwatch::start();
        let th = &e.theta;
        // forward
        fill_inputs(batch, None, (1.0, 0.0), 1.0, &mut self.x[..n * (p + c)], p, c)?;
        self.fc1.forward(th, n, &self.x, p + c, &mut self.h1, Act::Relu, None);
        self.fc21.forward(th, n, &self.h1, h, &mut self.mu, Act::None, None);
        self.fc22.forward(th, n, &self.h1, h, &mut self.logvar, Act::None, None);
        reparameterise(n, l, &self.mu, &self.logvar, batch.noise, &mut self.z, l + c);
        for i in 0..n {
            // the label, after the latent columns
            self.z[i * (l + c) + l..(i + 1) * (l + c)].copy_from_slice(&self.x[i * (p + c) + p..(i + 1) * (p + c)]);
        }
        self.fc3.forward(th, n, &self.z, l + c, &mut self.h3, Act::Relu, None);
        self.fc4.forward(th, n, &self.h3, h, &mut self.logits, Act::None, None);
        e.phases.forward += sw.lap();
        // loss; the logits become their gradient
        let objective = batch.vae;
        let bce = recon_backward(objective.recon, &mut self.logits[..n * p], p, &self.x, p + c, n) / n as f64;
        e.phases.loss += sw.lap();
        let dlogits = &self.logits;
        // backward, in reverse order
        let g = &mut e.grad;
        self.fc4.backward(th, n, &self.h3, h, dlogits, Some(g), Some((&mut self.dh3, h, false)));
        act_backward(&self.h3[..n * h], &mut self.dh3[..n * h], Act::Relu, None);
        // only the latent columns of dZ: the label takes no gradient
        self.fc3.backward(th, n, &self.z, l + c, &self.dh3, Some(g), Some((&mut self.dz, l, false)));
        // KL = −½ Σ (1 + log σ² − μ² − σ²) per example, weighted by β; z = μ + σ·ε
        let scale = (objective.kl_weight / n as f64) as f32;
        let kl = kl_backward(n * l, &self.mu, &self.logvar, batch.noise, &self.dz, &mut self.dmu, &mut self.dlogvar, scale) / n as f64;
        self.fc21.backward(th, n, &self.h1, h, &self.dmu, Some(g), Some((&mut self.dh1, h, false)));
        self.fc22.backward(th, n, &self.h1, h, &self.dlogvar, Some(g), Some((&mut self.dh1, h, true)));
        act_backward(&self.h1[..n * h], &mut self.dh1[..n * h], Act::Relu, None);
        self.fc1.backward(th, n, &self.x, p + c, &self.dh1, Some(g), None);
        // the step's check, then Adam over every parameter
        let total = (bce + objective.kl_weight * kl) as f32;
        e.check_and_propose(total, lr, &mut sw)?; // the KL term's share (a few µs) in the backward's
        Ok(LossParts { loss: total, bce: bce as f32, kl: kl as f32 })
    }
}
