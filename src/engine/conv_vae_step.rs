//! One conv VAE training step, hand-derived from src/conv_vae.rs (activations position-major,
//! `conv.rs`; the dense layers see PyTorch's channel-major flatten):
//!
//!   x [n, 28, 28, 1] → encoder.0 → ReLU [n, 14, 14, 32] → encoder.2 → ReLU [n, 7, 7, 64]
//!   → flatten [n, 3136] → fc1 → ReLU → h1 → fc21 → μ, fc22 → log σ²;  z = μ + exp(½ log σ²)·ε
//!   → fc3 → ReLU → h3 → fc4 → ReLU [n, 3136] (fc1 to fc4: the MLP VAE's `DenseVae`) → [n, 7, 7, 64] → decoder.0 → ReLU [n, 14, 14, 32]
//!   → decoder.2 → logits [n, 28, 28, 1]
//!   loss = recon(logits, x) + β·KL(μ, log σ²), each summed per example and averaged over the batch
//!
//! then the backward pass in reverse order into the flat gradient, the step's check, and Adam.

use super::clock::Stopwatch;
use super::conv::{transpose_each, Conv};
use super::layers::{act_backward, recon_backward};
use super::matmul::Act;
use super::vae_step::DenseVae;
use super::{fill_inputs, Engine};
use crate::backend::{Batch, LossParts};
use crate::config::{ModelConfig, CONV_VAE_CHANNELS, CONV_VAE_FEATURES, CONV_VAE_SIDE};
use crate::mnist::{IMAGE_PIXELS, IMAGE_SIDE};
use anyhow::{ensure, Result};

/// The flattened features' pixels and channels.
const PIXELS: usize = CONV_VAE_SIDE * CONV_VAE_SIDE;
const CHANNELS: usize = CONV_VAE_CHANNELS[1];

/// The layers, and every activation and its gradient for up to `rows` examples.
pub struct ConvVaeStep {
    /// encoder.0, encoder.2, decoder.0, decoder.2
    enc: [Conv; 2],
    dec: [Conv; 2],
    /// fc1 to fc4, between the convolutions
    dense: DenseVae,
    rows: usize,
    x: Vec<f32>,
    e0: Vec<f32>,
    e1: Vec<f32>,
    /// e1 flattened channel-major (fc1's input), fc4's output (channel-major) and as positions
    flat: Vec<f32>,
    g: Vec<f32>,
    g_pos: Vec<f32>,
    d0: Vec<f32>,
    logits: Vec<f32>,
    dd0: Vec<f32>,
    dg_pos: Vec<f32>,
    dg: Vec<f32>,
    dflat: Vec<f32>,
    de1: Vec<f32>,
    de0: Vec<f32>,
}

impl ConvVaeStep {
    pub fn new(e: &Engine) -> Result<Self> {
        let convs = e.cfg.conv_layers();
        ensure!(convs.len() == 4, "a conv-vae has four convolutions");
        let enc0 = Conv::of(&e.layout, &convs[0], IMAGE_SIDE)?;
        let enc1 = Conv::of(&e.layout, &convs[1], enc0.side_out)?;
        let dec0 = Conv::of(&e.layout, &convs[2], CONV_VAE_SIDE)?;
        let dec1 = Conv::of(&e.layout, &convs[3], dec0.side_out)?;
        ensure!(enc1.output_len() == CONV_VAE_FEATURES && dec1.output_len() == IMAGE_PIXELS, "a conv-vae's convolutions do not fit its dense layers");
        let empty = Vec::new;
        Ok(Self {
            enc: [enc0, enc1],
            dec: [dec0, dec1],
            dense: DenseVae::new(e)?,
            rows: 0,
            x: empty(),
            e0: empty(),
            e1: empty(),
            flat: empty(),
            g: empty(),
            g_pos: empty(),
            d0: empty(),
            logits: empty(),
            dd0: empty(),
            dg_pos: empty(),
            dg: empty(),
            dflat: empty(),
            de1: empty(),
            de0: empty(),
        })
    }

    /// Room for `n` examples (buffers only ever grow, so steady training allocates nothing).
    pub(super) fn reserve(&mut self, cfg: &ModelConfig, n: usize) {
        self.dense.reserve(cfg, n);
        if n <= self.rows {
            return;
        }
        let f = CONV_VAE_FEATURES;
        let (e0, d0) = (self.enc[0].output_len(), self.dec[0].output_len());
        self.rows = n;
        for (buf, width) in [
            (&mut self.x, IMAGE_PIXELS),
            (&mut self.e0, e0),
            (&mut self.e1, f),
            (&mut self.flat, f),
            (&mut self.g, f),
            (&mut self.g_pos, f),
            (&mut self.d0, d0),
            (&mut self.logits, IMAGE_PIXELS),
            (&mut self.dd0, d0),
            (&mut self.dg_pos, f),
            (&mut self.dg, f),
            (&mut self.dflat, f),
            (&mut self.de1, f),
            (&mut self.de0, e0),
        ] {
            buf.resize(n * width, 0.0);
        }
        self.enc.iter_mut().chain(&mut self.dec).for_each(|c| c.reserve(n));
    }

    /// Forward, backward and Adam's step, in place once the checks pass: a step whose loss or
    /// gradient is not finite is refused before anything changes.
    pub fn run(&mut self, e: &mut Engine, batch: &Batch, lr: f64) -> Result<LossParts> {
        let n = batch.indices.len();
        self.reserve(&e.cfg, n);
        let (p, f) = (IMAGE_PIXELS, CONV_VAE_FEATURES);
        let mut sw = Stopwatch::start();
        let th = &e.theta;
        // forward
        self.enc.iter_mut().chain(&mut self.dec).for_each(|c| c.load(th));
        fill_inputs(batch, None, (1.0, 0.0), 1.0, &mut self.x[..n * p], p, 0)?;
        self.enc[0].forward(th, n, &self.x, &mut self.e0, Act::Relu);
        self.enc[1].forward(th, n, &self.e0, &mut self.e1, Act::Relu);
        transpose_each(n, PIXELS, CHANNELS, &self.e1, &mut self.flat);
        self.dense.forward(th, n, &self.flat, f, batch.noise, &mut self.g, Act::Relu);
        transpose_each(n, CHANNELS, PIXELS, &self.g, &mut self.g_pos);
        self.dec[0].forward(th, n, &self.g_pos, &mut self.d0, Act::Relu);
        self.dec[1].forward(th, n, &self.d0, &mut self.logits, Act::None);
        e.phases.forward += sw.lap();
        // loss; the logits become their gradient
        let objective = batch.vae;
        let bce = recon_backward(objective.recon, &mut self.logits[..n * p], p, &self.x, p, n) / n as f64;
        e.phases.loss += sw.lap();
        // backward, in reverse order
        let g = &mut e.grad;
        self.dec[1].backward(n, &self.d0, &self.logits, g, Some(&mut self.dd0));
        act_backward(&self.d0[..n * self.dec[0].output_len()], &mut self.dd0[..n * self.dec[0].output_len()], Act::Relu, None);
        self.dec[0].backward(n, &self.g_pos, &self.dd0, g, Some(&mut self.dg_pos));
        transpose_each(n, PIXELS, CHANNELS, &self.dg_pos, &mut self.dg);
        act_backward(&self.g[..n * f], &mut self.dg[..n * f], Act::Relu, None);
        let kl = self.dense.backward(th, n, &self.flat, f, batch.noise, objective.kl_weight, &self.dg, g, Some((&mut self.dflat, f)));
        transpose_each(n, CHANNELS, PIXELS, &self.dflat, &mut self.de1);
        act_backward(&self.e1[..n * f], &mut self.de1[..n * f], Act::Relu, None);
        self.enc[1].backward(n, &self.e0, &self.de1, g, Some(&mut self.de0));
        act_backward(&self.e0[..n * self.enc[0].output_len()], &mut self.de0[..n * self.enc[0].output_len()], Act::Relu, None);
        self.enc[0].backward(n, &self.x, &self.de0, g, None);
        // the step's check, then Adam over every parameter
        let total = (bce + objective.kl_weight * kl) as f32;
        e.check_and_update(total, lr, &mut sw)?;
        Ok(LossParts { loss: total, bce: bce as f32, kl: kl as f32 })
    }
}
