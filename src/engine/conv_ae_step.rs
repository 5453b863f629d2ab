//! One convolutional autoencoder training step, hand-derived from src/conv_ae.rs (activations
//! position-major, `conv.rs`), at the default sizes (h = 16 channels, code c = 8 channels × 2 × 2):
//!
//!   x [n, 28, 28, 1] in [−1, 1] → encoder.0 → ReLU [n, 10, 10, h] → max pool 2 [n, 5, 5, h]
//!   → encoder.3 → ReLU [n, 3, 3, c] → max pool 2, stride 1 → code [n, 2, 2, c]
//!   → decoder.0 → ReLU [n, 5, 5, h] → decoder.2 → ReLU [n, 15, 15, 8] → decoder.4 → tanh → y [n, 28, 28, 1]
//!   loss = Σ over pixels (y − x)² (L2) or |y − x| (L1) per example, averaged over the batch
//!
//! then the backward pass in reverse order into the flat gradient, the step's check, and Adam.

use super::ae_step::SIGNED_PIXELS;
use super::clock::Stopwatch;
use super::conv::{Conv, MaxPool};
use super::layers::{act_backward, signed_recon_backward};
use super::matmul::Act;
use super::{fill_inputs, Engine};
use crate::backend::{Batch, LossParts};
use crate::mnist::{IMAGE_PIXELS, IMAGE_SIDE};
use anyhow::{ensure, Result};

pub struct ConvAeStep {
    /// encoder.0, encoder.3; decoder.0, decoder.2, decoder.4
    enc: [Conv; 2],
    pool: [MaxPool; 2],
    dec: [Conv; 3],
    rows: usize,
    x: Vec<f32>,
    /// the encoder's convolutions' outputs (after ReLU) and their pools' (p[1] is the code)
    a: [Vec<f32>; 2],
    p: [Vec<f32>; 2],
    /// the decoder's first two outputs (after ReLU), and the last after tanh
    b: [Vec<f32>; 2],
    y: Vec<f32>,
    /// the gradients at each of those (the convolutions' before their activation)
    da: [Vec<f32>; 2],
    dp: [Vec<f32>; 2],
    db: [Vec<f32>; 2],
    dy: Vec<f32>,
}

impl ConvAeStep {
    pub fn new(e: &Engine) -> Result<Self> {
        let layers = e.cfg.conv_layers();
        ensure!(layers.len() == 5, "a conv-ae has five convolutions");
        let enc0 = Conv::of(&e.layout, &layers[0], IMAGE_SIDE)?;
        let pool0 = MaxPool::new(2, 2, layers[0].c_out, enc0.side_out)?;
        let enc1 = Conv::of(&e.layout, &layers[1], pool0.side_out)?;
        let pool1 = MaxPool::new(2, 1, layers[1].c_out, enc1.side_out)?;
        let dec0 = Conv::of(&e.layout, &layers[2], pool1.side_out)?;
        let dec1 = Conv::of(&e.layout, &layers[3], dec0.side_out)?;
        let dec2 = Conv::of(&e.layout, &layers[4], dec1.side_out)?;
        ensure!(dec2.output_len() == IMAGE_PIXELS, "a conv-ae's decoder does not end at an image");
        let none = || [Vec::new(), Vec::new()];
        Ok(Self {
            enc: [enc0, enc1],
            pool: [pool0, pool1],
            dec: [dec0, dec1, dec2],
            rows: 0,
            x: Vec::new(),
            a: none(),
            p: none(),
            b: none(),
            y: Vec::new(),
            da: none(),
            dp: none(),
            db: none(),
            dy: Vec::new(),
        })
    }

    /// Room for `n` examples (buffers only ever grow, so steady training allocates nothing).
    pub(super) fn reserve(&mut self, n: usize) {
        if n <= self.rows {
            return;
        }
        self.rows = n;
        for k in 0..2 {
            for (buf, width) in [
                (&mut self.a[k], self.enc[k].output_len()),
                (&mut self.da[k], self.enc[k].output_len()),
                (&mut self.p[k], self.pool[k].output_len()),
                (&mut self.dp[k], self.pool[k].output_len()),
                (&mut self.b[k], self.dec[k].output_len()),
                (&mut self.db[k], self.dec[k].output_len()),
            ] {
                buf.resize(n * width, 0.0);
            }
            self.pool[k].reserve(n);
        }
        for buf in [&mut self.x, &mut self.y, &mut self.dy] {
            buf.resize(n * IMAGE_PIXELS, 0.0);
        }
        self.enc.iter_mut().chain(&mut self.dec).for_each(|c| c.reserve(n));
    }

    /// Forward, backward and Adam's step, in place once the checks pass: a step whose loss or
    /// gradient is not finite is refused before anything changes.
    pub fn run(&mut self, e: &mut Engine, batch: &Batch, lr: f64) -> Result<LossParts> {
        let n = batch.indices.len();
        self.reserve(n);
        let p = IMAGE_PIXELS;
        let mut sw = Stopwatch::start();
        let th = &e.theta;
        // forward
        self.enc.iter_mut().chain(&mut self.dec).for_each(|c| c.load(th));
        fill_inputs(batch, None, SIGNED_PIXELS, 1.0, &mut self.x[..n * p], p, 0)?;
        self.enc[0].forward(th, n, &self.x, &mut self.a[0], Act::Relu);
        self.pool[0].forward(n, &self.a[0], &mut self.p[0]);
        self.enc[1].forward(th, n, &self.p[0], &mut self.a[1], Act::Relu);
        self.pool[1].forward(n, &self.a[1], &mut self.p[1]);
        let [b0, b1] = &mut self.b;
        self.dec[0].forward(th, n, &self.p[1], b0, Act::Relu);
        self.dec[1].forward(th, n, b0, b1, Act::Relu);
        self.dec[2].forward(th, n, b1, &mut self.y, Act::None);
        self.y[..n * p].iter_mut().for_each(|v| *v = v.tanh());
        e.phases.forward += sw.lap();
        // loss, and its gradient at the last convolution's output (before tanh)
        let sum = signed_recon_backward(batch.vae.recon, &self.x, &self.y, &mut self.dy, p, n)?;
        let loss = (sum / n as f64) as f32;
        e.phases.loss += sw.lap();
        // backward, in reverse order
        let g = &mut e.grad;
        let relu = |y: &[f32], d: &mut [f32], len: usize| act_backward(&y[..len], &mut d[..len], Act::Relu, None);
        let (b0, b1) = (n * self.dec[0].output_len(), n * self.dec[1].output_len());
        let (a0, a1) = (n * self.enc[0].output_len(), n * self.enc[1].output_len());
        let [db0, db1] = &mut self.db;
        self.dec[2].backward(n, &self.b[1], &self.dy, g, Some(db1));
        relu(&self.b[1], db1, b1);
        self.dec[1].backward(n, &self.b[0], db1, g, Some(db0));
        relu(&self.b[0], db0, b0);
        self.dec[0].backward(n, &self.p[1], db0, g, Some(&mut self.dp[1]));
        self.pool[1].backward(n, &self.dp[1], &mut self.da[1]);
        relu(&self.a[1], &mut self.da[1], a1);
        self.enc[1].backward(n, &self.p[0], &self.da[1], g, Some(&mut self.dp[0]));
        self.pool[0].backward(n, &self.dp[0], &mut self.da[0]);
        relu(&self.a[0], &mut self.da[0], a0);
        self.enc[0].backward(n, &self.x, &self.da[0], g, None);
        // the step's check, then Adam over every parameter
        e.check_and_update(loss, lr, &mut sw)?;
        Ok(LossParts { loss, bce: loss, kl: 0.0 })
    }
}
