//! One GAN (or cGAN) training step, hand-derived from src/gan.rs (the same graph as the GPU's
//! `gpu/gan_step.rs`):
//!
//!   generator:     z (+ label) → fc1 → LeakyReLU → fc2 → LeakyReLU → fc3 → logits (images = sigmoid)
//!   discriminator: rows real | generated | (cGAN) real with a wrong label, each 2x − 1 (+ label)
//!                  → fc1 → LeakyReLU → dropout → fc2 → LeakyReLU → dropout → fc3 → logit
//!                  (a real digit's row is kept as 2x, 81% zeros, which fc1's products skip:
//!                  fc1 takes it with its bias less W's pixel columns' sums, and its weight's
//!                  gradient is corrected after, `RealRows`)
//!   L_D over those rows, its backward into the discriminator's gradient, Adam's proposal for it;
//!   then L_G on the generated rows judged by the discriminator *as proposed* (fresh dropout), its
//!   backward through that discriminator into the generator, Adam's proposal for the generator.
//! The caller commits both, so a refused step changes neither network.

use super::lanes::{Lanes, V4};
use super::layers::{act_backward, add_column_sums, sigmoid, sigmoid_in_place, softplus, Linear};
use super::matmul::Act;
use super::clock::Stopwatch;
use super::{fill_inputs, one_hot_into, Engine};
use crate::backend::{diverged, Batch, GanLosses};
use crate::config::ModelConfig;
use crate::gan::DropoutKeep;
use crate::mnist::IMAGE_PIXELS;
use anyhow::{anyhow, bail, ensure, Result};

/// The layers, and every activation, mask and gradient for up to `rows` examples.
pub struct GanStep {
    g1: Linear,
    g2: Linear,
    g3: Linear,
    d1: Linear,
    d2: Linear,
    d3: Linear,
    /// Each network's parameters: one range of the flat buffers.
    d_range: std::ops::Range<usize>,
    g_range: std::ops::Range<usize>,
    rows: usize,
    /// fc1 of the discriminator over real digits' rows kept as 2x (not 2x − 1).
    real_rows: RealRows,
    // generator
    gin: Vec<f32>,
    gh1: Vec<f32>,
    gh2: Vec<f32>,
    /// fc3's output, then (in place) the images: sigmoid of it.
    gimages: Vec<f32>,
    // discriminator over its rows (real, generated, mismatched), and the generator pass
    din: Vec<f32>,
    dmask1: Vec<f32>,
    dmask2: Vec<f32>,
    dh1: Vec<f32>,
    dh2: Vec<f32>,
    dlogits: Vec<f32>,
    emask1: Vec<f32>,
    emask2: Vec<f32>,
    eh1: Vec<f32>,
    eh2: Vec<f32>,
    elogits: Vec<f32>,
    // gradients of the activations
    d_dh1: Vec<f32>,
    d_dh2: Vec<f32>,
    d_dlogits: Vec<f32>,
    d_eh1: Vec<f32>,
    d_eh2: Vec<f32>,
    d_elogits: Vec<f32>,
    d_fake: Vec<f32>,
    d_gh1: Vec<f32>,
    d_gh2: Vec<f32>,
}

impl GanStep {
    pub fn new(e: &Engine) -> Result<Self> {
        let layer = |name: &str| Linear::of(&e.layout, &e.cfg, name);
        let empty = Vec::new;
        Ok(Self {
            g1: layer("generator.fc1")?,
            g2: layer("generator.fc2")?,
            g3: layer("generator.fc3")?,
            d1: layer("discriminator.fc1")?,
            d2: layer("discriminator.fc2")?,
            d3: layer("discriminator.fc3")?,
            d_range: e.layout_range("discriminator."),
            g_range: e.layout_range("generator."),
            rows: 0,
            real_rows: RealRows::default(),
            gin: empty(),
            gh1: empty(),
            gh2: empty(),
            gimages: empty(),
            din: empty(),
            dmask1: empty(),
            dmask2: empty(),
            dh1: empty(),
            dh2: empty(),
            dlogits: empty(),
            emask1: empty(),
            emask2: empty(),
            eh1: empty(),
            eh2: empty(),
            elogits: empty(),
            d_dh1: empty(),
            d_dh2: empty(),
            d_dlogits: empty(),
            d_eh1: empty(),
            d_eh2: empty(),
            d_elogits: empty(),
            d_fake: empty(),
            d_gh1: empty(),
            d_gh2: empty(),
        })
    }

    /// Room for `n` examples (buffers only ever grow, so steady training allocates nothing).
    pub(super) fn reserve(&mut self, cfg: &ModelConfig, n: usize) {
        if n <= self.rows {
            return;
        }
        let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
        let rd = if c > 0 { 3 * n } else { 2 * n };
        self.rows = n;
        for (buf, len) in [
            (&mut self.gin, n * (l + c)),
            (&mut self.gh1, n * h),
            (&mut self.gh2, n * 2 * h),
            (&mut self.gimages, n * p),
            (&mut self.din, rd * (p + c)),
            (&mut self.dmask1, rd * 2 * h),
            (&mut self.dmask2, rd * h),
            (&mut self.dh1, rd * 2 * h),
            (&mut self.dh2, rd * h),
            (&mut self.dlogits, rd),
            (&mut self.emask1, n * 2 * h),
            (&mut self.emask2, n * h),
            (&mut self.eh1, n * 2 * h),
            (&mut self.eh2, n * h),
            (&mut self.elogits, n),
            (&mut self.d_dh1, rd * 2 * h),
            (&mut self.d_dh2, rd * h),
            (&mut self.d_dlogits, rd),
            (&mut self.d_eh1, n * 2 * h),
            (&mut self.d_eh2, n * h),
            (&mut self.d_elogits, n),
            (&mut self.d_fake, n * p),
            (&mut self.d_gh1, n * h),
            (&mut self.d_gh2, n * 2 * h),
        ] {
            buf.resize(len, 0.0);
        }
    }

    pub fn run(&mut self, e: &mut Engine, batch: &Batch, lr: f64) -> Result<GanLosses> {
        let mut sw = Stopwatch::start();
        let n = batch.indices.len();
        self.reserve(&e.cfg, n);
        let (l, h, p, c) = (e.cfg.latent, e.cfg.hidden, IMAGE_PIXELS, e.cfg.kind.label_width());
        let conditional = c > 0;
        let w = p + c; // the discriminator's input width
        let rd = if conditional { 3 * n } else { 2 * n };
        let draws = batch.gan.ok_or_else(|| anyhow!("a GAN step needs its dropout draws in the batch"))?;
        // a cGAN's rows of real digits with wrong labels: their dropout draws
        let mismatched = match &draws.mismatched {
            Some(m) if conditional => Some(&m.keep),
            None if !conditional => None,
            _ => bail!("a cGAN step needs mismatched labels in its draws, and only a cGAN step takes them"),
        };
        if let Some(m) = &draws.mismatched {
            ensure!(m.labels.len() == n, "{} mismatched labels for {n} rows", m.labels.len());
        }
        let th = &e.theta;
        let label = |i: usize| batch.data.labels[batch.indices[i]];
        // The discriminator's rows: real digits (2x, the −1 in fc1's bias), the generator's
        // (2·sigmoid − 1), real digits with wrong labels (2x), each with its label (×gain).
        let gain = batch.label_gain;
        let as_2x = e.real_digits_as_2x;
        let real = if as_2x { (2.0, 0.0) } else { (2.0, -1.0) };
        let (real_din, rest) = self.din.split_at_mut(n * w);
        let (generated_din, mismatched_din) = rest.split_at_mut(n * w);
        // Two halves that need nothing of each other, side by side where there are threads (the
        // first's products split as ever: the other thread takes their halves once its own half,
        // a fifth of a millisecond at batch 128, is done):
        let (generated, inputs) = super::threads::join(
            // the generator's forward, [z, label] → images, into the generated rows
            || -> Result<()> {
                for i in 0..n {
                    let row = &mut self.gin[i * (l + c)..(i + 1) * (l + c)];
                    row[..l].copy_from_slice(&batch.noise[i * l..(i + 1) * l]);
                    if conditional {
                        one_hot_into(label(i), 1.0, &mut row[l..])?;
                    }
                }
                self.g1.forward(th, n, &self.gin, l + c, &mut self.gh1, Act::Leaky, None);
                self.g2.forward(th, n, &self.gh1, h, &mut self.gh2, Act::Leaky, None);
                self.g3.forward(th, n, &self.gh2, 2 * h, &mut self.gimages, Act::None, None);
                sigmoid_in_place(&mut self.gimages[..n * p]);
                for (row, images) in generated_din.chunks_exact_mut(w).zip(self.gimages.chunks_exact(p)).take(n) {
                    for (d, &s) in row[..p].iter_mut().zip(images) {
                        *d = 2.0 * s - 1.0;
                    }
                }
                if conditional {
                    for (i, row) in generated_din.chunks_exact_mut(w).take(n).enumerate() {
                        one_hot_into(label(i), gain, &mut row[p..])?;
                    }
                }
                Ok(())
            },
            // the masks, as inverted dropout's factors (the discriminator's rows in their order,
            // then the generator pass's), and the real digits' rows
            || -> Result<()> {
                for (block, keep) in [Some(&draws.real), Some(&draws.fake), mismatched].into_iter().flatten().enumerate() {
                    expand_mask(keep, n, h, block, &mut self.dmask1, &mut self.dmask2)?;
                }
                expand_mask(&draws.generator, n, h, 0, &mut self.emask1, &mut self.emask2)?;
                fill_inputs(batch, None, real, gain, real_din, p, c)?;
                if let Some(m) = &draws.mismatched {
                    fill_inputs(batch, Some(&m.labels), real, gain, &mut mismatched_din[..n * w], p, c)?;
                }
                if as_2x {
                    self.real_rows.shift_bias(&self.d1, th, p);
                }
                Ok(())
            },
        );
        generated?;
        inputs?;
        // discriminator forward, loss and backward (the generator's images enter as constants)
        for block in 0..rd / n {
            let first = block * n;
            let bias = if block == 1 || !as_2x { self.d1.bias(th) } else { &self.real_rows.bias };
            let (x, y, mask) = (&self.din[first * w..], &mut self.dh1[first * 2 * h..], &self.dmask1[first * 2 * h..]);
            self.d1.forward_with(th, bias, n, x, w, y, Act::Leaky, Some(mask));
        }
        self.d2.forward(th, rd, &self.dh1, 2 * h, &mut self.dh2, Act::Leaky, Some(&self.dmask2));
        self.d3.forward(th, rd, &self.dh2, h, &mut self.dlogits, Act::None, None);
        e.phases.forward += sw.lap();
        let d_loss = discriminator_loss_backward(&self.dlogits[..rd], &mut self.d_dlogits[..rd], n, conditional);
        e.phases.loss += sw.lap();
        if !d_loss.is_finite() {
            return Err(diverged("the discriminator's loss", d_loss));
        }
        let g = &mut e.grad;
        self.d3.backward(th, rd, &self.dh2, h, &self.d_dlogits, Some(g), Some((&mut self.d_dh2, h, false)));
        act_backward(&self.dh2[..rd * h], &mut self.d_dh2[..rd * h], Act::Leaky, Some(&self.dmask2[..rd * h]));
        self.d2.backward(th, rd, &self.dh1, 2 * h, &self.d_dh2, Some(g), Some((&mut self.d_dh1, 2 * h, false)));
        act_backward(&self.dh1[..rd * 2 * h], &mut self.d_dh1[..rd * 2 * h], Act::Leaky, Some(&self.dmask1[..rd * 2 * h]));
        self.d1.backward(th, rd, &self.din, w, &self.d_dh1, Some(g), None);
        if as_2x {
            self.real_rows.correct_gradient(&self.d1, g, &self.d_dh1[..rd * 2 * h], n, p);
        }
        if !e.grad_is_finite(self.d_range.clone()) {
            return Err(diverged("the discriminator's gradient", "not finite"));
        }
        e.phases.backward += sw.lap();
        e.propose(lr, self.d_range.clone());
        e.phases.optimizer += sw.lap();

        // generator half, judged by the discriminator as its proposal leaves it
        let next = &e.moments.next_theta;
        let th = &e.theta;
        let fake = &self.din[n * w..2 * n * w];
        self.d1.forward(next, n, fake, w, &mut self.eh1, Act::Leaky, Some(&self.emask1));
        self.d2.forward(next, n, &self.eh1, 2 * h, &mut self.eh2, Act::Leaky, Some(&self.emask2));
        self.d3.forward(next, n, &self.eh2, h, &mut self.elogits, Act::None, None);
        e.phases.forward += sw.lap();
        // L_G = mean softplus(−l): dl = (sigmoid(l) − 1) / n
        let mut g_loss = 0f64;
        for (d, &l) in self.d_elogits[..n].iter_mut().zip(&self.elogits[..n]) {
            g_loss += softplus(-l) as f64;
            *d = (sigmoid(l) - 1.0) / n as f32;
        }
        let g_loss = (g_loss / n as f64) as f32;
        if !g_loss.is_finite() {
            return Err(diverged("the generator's loss", g_loss));
        }
        e.phases.loss += sw.lap();
        self.d3.backward(next, n, &self.eh2, h, &self.d_elogits, None, Some((&mut self.d_eh2, h, false)));
        act_backward(&self.eh2[..n * h], &mut self.d_eh2[..n * h], Act::Leaky, Some(&self.emask2[..n * h]));
        self.d2.backward(next, n, &self.eh1, 2 * h, &self.d_eh2, None, Some((&mut self.d_eh1, 2 * h, false)));
        act_backward(&self.eh1[..n * 2 * h], &mut self.d_eh1[..n * 2 * h], Act::Leaky, Some(&self.emask1[..n * 2 * h]));
        // only the pixel columns of dX: the label takes no gradient
        self.d1.backward(next, n, fake, w, &self.d_eh1, None, Some((&mut self.d_fake, p, false)));
        // the discriminator saw 2s − 1, s = sigmoid(logit): d logit = d input · 2s(1 − s)
        for (d, &s) in self.d_fake[..n * p].iter_mut().zip(&self.gimages[..n * p]) {
            *d *= 2.0 * s * (1.0 - s);
        }
        let g = &mut e.grad;
        self.g3.backward(th, n, &self.gh2, 2 * h, &self.d_fake, Some(g), Some((&mut self.d_gh2, 2 * h, false)));
        act_backward(&self.gh2[..n * 2 * h], &mut self.d_gh2[..n * 2 * h], Act::Leaky, None);
        self.g2.backward(th, n, &self.gh1, h, &self.d_gh2, Some(g), Some((&mut self.d_gh1, h, false)));
        act_backward(&self.gh1[..n * h], &mut self.d_gh1[..n * h], Act::Leaky, None);
        self.g1.backward(th, n, &self.gin, l + c, &self.d_gh1, Some(g), None);
        if !e.grad_is_finite(self.g_range.clone()) {
            return Err(diverged("the generator's gradient", "not finite"));
        }
        e.phases.backward += sw.lap();
        e.propose(lr, self.g_range.clone());
        e.phases.optimizer += sw.lap();
        let mean_verdict = |logits: &[f32]| logits.iter().map(|&l| sigmoid(l) as f64).sum::<f64>() as f32 / n as f32;
        Ok(GanLosses {
            d_loss,
            g_loss,
            d_real: mean_verdict(&self.dlogits[..n]),
            d_fake: mean_verdict(&self.dlogits[n..2 * n]),
        })
    }
}

/// The discriminator's fc1 over rows of real digits kept as v = 2x rather than 2x − 1: x is 81%
/// zeros, so v is too, and the products skip them (`Strided::skipping_zeros`), where 2x − 1 has
/// none. With e the row of ones over the pixel columns (zeros over a cGAN's label),
///   (v − e)·Wᵀ + b = v·Wᵀ + (b − W·eᵀ)            (`shift_bias`: fc1's bias for those rows)
///   dW = Σᵢ dzᵢᵀ (vᵢ − e) = Σᵢ dzᵢᵀ vᵢ − (Σᵢ dzᵢ)ᵀ e   (`correct_gradient`, over the real rows)
/// and db is unchanged. The generated rows (2·sigmoid − 1, no zeros) stay as they are.
#[derive(Default)]
struct RealRows {
    /// b − W·eᵀ [out]: fc1's bias less each unit's sum of weights over the pixel columns.
    bias: Vec<f32>,
    /// Σ dz over the real rows [out].
    sums: Vec<f32>,
}

impl RealRows {
    /// `bias` from fc1's weights and bias in `theta` (this step's).
    fn shift_bias(&mut self, fc1: &Linear, theta: &[f32], p: usize) {
        let w = fc1.weight(theta);
        self.bias.clear();
        self.bias.extend(fc1.bias(theta).iter().zip(w.chunks_exact(fc1.fan_in)).map(|(b, row)| b - lanes_sum(&row[..p])));
    }

    /// dW's pixel columns less each unit's Σ dz over the real rows: blocks 0 and 2 of `dz`'s
    /// blocks of n rows (real digits, and a cGAN's real digits with wrong labels).
    fn correct_gradient(&mut self, fc1: &Linear, grad: &mut [f32], dz: &[f32], n: usize, p: usize) {
        let (fi, fo) = (fc1.fan_in, fc1.fan_out);
        self.sums.clear();
        self.sums.resize(fo, 0.0);
        for (_, rows) in dz.chunks(n * fo).enumerate().filter(|&(block, _)| block != 1) {
            add_column_sums(rows, fo, &mut self.sums);
        }
        for (dw, s) in grad[fc1.w..fc1.w + fi * fo].chunks_exact_mut(fi).zip(&self.sums) {
            dw[..p].iter_mut().for_each(|v| *v -= s);
        }
    }
}

/// Σ xs, four lanes at a time, the lanes summed at the end.
fn lanes_sum(xs: &[f32]) -> f32 {
    let mut chunks = xs.chunks_exact(4);
    // SAFETY: chunks of exactly four floats.
    let acc = (&mut chunks).fold(V4::splat(0.0), |acc, x| acc.add(unsafe { V4::load(x.as_ptr()) }));
    acc.to_array().iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// L_D from the discriminator's logits over its rows (real, generated, and for a cGAN real digits
/// with wrong labels, `n` each), and its gradient with respect to each logit:
///   GAN:  mean softplus(−l_real) + mean softplus(l_fake)
///   cGAN: mean softplus(−l_real) + ½ (mean softplus(l_fake) + mean softplus(l_mismatched))
fn discriminator_loss_backward(logits: &[f32], d: &mut [f32], n: usize, conditional: bool) -> f32 {
    let fake_weight = if conditional { 0.5 } else { 1.0 };
    let mut loss = 0f64;
    for (i, (dl, &l)) in d.iter_mut().zip(logits).enumerate() {
        let (term, grad) = if i < n { (softplus(-l), sigmoid(l) - 1.0) } else { (softplus(l), sigmoid(l)) };
        let weight = if i < n { 1.0 } else { fake_weight };
        loss += (weight * term) as f64;
        *dl = weight * grad / n as f32;
    }
    (loss / n as f64) as f32
}

/// One pass's keep flags as factors (0 or 1/(1 − p)) into block `block` (n rows each) of the
/// layer-1 [.., 2h] and layer-2 [.., h] masks.
fn expand_mask(keep: &DropoutKeep, n: usize, h: usize, block: usize, m1: &mut [f32], m2: &mut [f32]) -> Result<()> {
    for (flags, mask, width) in [(&keep.h1, m1, 2 * h), (&keep.h2, m2, h)] {
        ensure!(flags.len() == n * width, "{} dropout flags for {n} rows of {width} units", flags.len());
        flags.factors_into(&mut mask[block * n * width..(block + 1) * n * width]);
    }
    Ok(())
}
