//! One autoencoder training step, hand-derived from src/ae.rs:
//!
//!   x [n, 784] in [−1, 1] → encoder.0 → ReLU → encoder.2 → ReLU → encoder.4 → ReLU → encoder.6 → code
//!   code → decoder.0 → ReLU → decoder.2 → ReLU → decoder.4 → ReLU → decoder.6 → tanh → y
//!   loss = Σ over pixels (y − x)² (L2) or |y − x| (L1) per example, averaged over the batch
//!
//! then the backward pass in reverse order into the flat gradient, the step's check, and Adam.
//! The eight layers run as one chain: activation k is layer k's output (0 is the input), and
//! every layer but the code's (3) and the last (7) is followed by a ReLU.

use super::clock::Stopwatch;
use super::layers::{act_backward, signed_recon_backward, Linear};
use super::matmul::Act;
use super::{fill_inputs, Engine};
use crate::backend::{Batch, LossParts};
use crate::config::{AE_DECODER, AE_ENCODER};
use crate::mnist::IMAGE_PIXELS;
use anyhow::Result;

/// The code layer: its output takes no activation.
const CODE: usize = 3;
/// Pixels v in [0, 1] as the network sees them, 2v − 1 in [−1, 1] for its Tanh output (ae.rs's
/// `to_signed`, the tutorial's `Normalize((0.5,), (0.5,))`).
pub(super) const SIGNED_PIXELS: (f32, f32) = (2.0, -1.0);

pub struct AeStep {
    layers: Vec<Linear>,
    rows: usize,
    /// acts[0] = x, acts[k + 1] = layer k's output (after its activation; the last after tanh).
    acts: Vec<Vec<f32>>,
    /// grads[k] = the gradient at layer k's output, before its activation.
    grads: Vec<Vec<f32>>,
}

impl AeStep {
    pub fn new(e: &Engine) -> Result<Self> {
        let layers = AE_ENCODER
            .iter()
            .chain(&AE_DECODER)
            .map(|name| Linear::of(&e.layout, &e.cfg, name))
            .collect::<Result<Vec<_>>>()?;
        let count = layers.len();
        Ok(Self { layers, rows: 0, acts: vec![Vec::new(); count + 1], grads: vec![Vec::new(); count] })
    }

    fn act(k: usize, count: usize) -> Act {
        if k == CODE || k + 1 == count { Act::None } else { Act::Relu }
    }

    /// Room for `n` examples (buffers only ever grow, so steady training allocates nothing).
    pub(super) fn reserve(&mut self, n: usize) {
        if n <= self.rows {
            return;
        }
        self.rows = n;
        self.acts[0].resize(n * IMAGE_PIXELS, 0.0);
        for (k, layer) in self.layers.iter().enumerate() {
            self.acts[k + 1].resize(n * layer.fan_out, 0.0);
            self.grads[k].resize(n * layer.fan_out, 0.0);
        }
    }

    /// Forward, backward and Adam's step, in place once the checks pass: a step whose loss or
    /// gradient is not finite is refused before anything changes.
    pub fn run(&mut self, e: &mut Engine, batch: &Batch, lr: f64) -> Result<LossParts> {
        let n = batch.indices.len();
        self.reserve(n);
        let count = self.layers.len();
        let p = IMAGE_PIXELS;
        let mut sw = Stopwatch::start();
        let th = &e.theta;
        // forward
        fill_inputs(batch, None, SIGNED_PIXELS, 1.0, &mut self.acts[0][..n * p], p, 0)?;
        for (k, layer) in self.layers.iter().enumerate() {
            let (done, next) = self.acts.split_at_mut(k + 1);
            layer.forward(th, n, &done[k], layer.fan_in, &mut next[0][..n * layer.fan_out], Self::act(k, count), None);
        }
        let y = &mut self.acts[count][..n * p];
        y.iter_mut().for_each(|v| *v = v.tanh());
        e.phases.forward += sw.lap();
        // loss, and its gradient at the last layer's output (before tanh)
        let (x, y, dy) = (&self.acts[0], &self.acts[count], &mut self.grads[count - 1]);
        let sum = signed_recon_backward(batch.vae.recon, x, y, dy, p, n)?;
        let loss = (sum / n as f64) as f32;
        e.phases.loss += sw.lap();
        // backward, in reverse order
        let g = &mut e.grad;
        for k in (0..count).rev() {
            let layer = &self.layers[k];
            let (below, here) = self.grads.split_at_mut(k);
            let dx = below.last_mut().map(|d| (&mut d[..n * layer.fan_in], layer.fan_in, false));
            layer.backward(th, n, &self.acts[k], layer.fan_in, &here[0], Some(g), dx);
            if k > 0 {
                act_backward(&self.acts[k][..n * layer.fan_in], &mut below[k - 1][..n * layer.fan_in], Self::act(k - 1, count), None);
            }
        }
        // the step's check, then Adam over every parameter
        e.check_and_update(loss, lr, &mut sw)?;
        Ok(LossParts { loss, bce: loss, kl: 0.0 })
    }
}
