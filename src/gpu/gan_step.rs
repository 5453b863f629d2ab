//! One GAN (or cGAN) training step as a graph of kernels, hand-derived from src/cpu.rs's GAN step:
//!
//!   generator:     z (+ label) → fc1 → LeakyReLU → fc2 → LeakyReLU → fc3 → logits (images = sigmoid)
//!   discriminator: rows real | generated | (cGAN) real with a wrong label, each 2x − 1 (+ label)
//!                  → fc1 → LeakyReLU → dropout → fc2 → LeakyReLU → dropout → fc3 → logit
//!   L_D over those rows, its backward into the discriminator's gradients, Adam's proposal for it;
//!   then L_G on the generated rows judged by the discriminator *as proposed* (fresh dropout), its
//!   backward through that discriminator into the generator, Adam's proposal for the generator;
//!   the check of both, and one commit, so a refused step changes neither network.
//!
//! The dropout keep flags and wrong labels are the trainer's draws (`GanDraws`); `MaskLayout`
//! says where each pass's flags sit in the bits the graph reads, and packs them.

use super::params::{act, label, stats};
use super::plan::{StepGraph, StepPlan};
use super::recorder::{rows, Recorder};
use crate::gan::{DropoutKeep, GanDraws, KeepFlags};
use crate::mnist::IMAGE_PIXELS;
use anyhow::{bail, ensure, Result};

/// Where the dropout bits of one step sit: the discriminator's layer 1 over all its rows (real,
/// generated, mismatched), its layer 2 over them, then the generator pass's layers 1 and 2.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MaskLayout {
    n: usize,
    hidden: usize,
    conditional: bool,
}

impl MaskLayout {
    pub fn new(n: usize, hidden: usize, conditional: bool) -> Self {
        Self { n, hidden, conditional }
    }

    /// The discriminator's rows: real, generated, and (cGAN) mismatched.
    fn d_rows(&self) -> usize {
        if self.conditional { 3 * self.n } else { 2 * self.n }
    }

    /// Bit offsets of the discriminator's layer 1 and 2 masks (row 0 of its batch).
    fn d_masks(&self) -> (usize, usize) {
        (0, self.d_rows() * 2 * self.hidden)
    }

    /// Bit offsets of the generator pass's layer 1 and 2 masks.
    fn g_masks(&self) -> (usize, usize) {
        let start = self.d_rows() * 3 * self.hidden;
        (start, start + self.n * 2 * self.hidden)
    }

    pub fn bits(&self) -> usize {
        self.d_rows() * 3 * self.hidden + self.n * 3 * self.hidden
    }

    /// The draws' keep flags as bits in this layout (bit i of word i / 32: unit i kept).
    pub fn pack(&self, draws: &GanDraws) -> Result<Vec<u32>> {
        let (n, h) = (self.n, self.hidden);
        let mut bits = vec![0u32; self.bits().div_ceil(32)];
        let mut put = |start: usize, flags: &KeepFlags, count: usize, what: &str| -> Result<()> {
            ensure!(flags.len() == count, "{what}: {} dropout flags, expected {count}", flags.len());
            for (i, _) in flags.iter().enumerate().filter(|&(_, k)| k) {
                let b = start + i;
                bits[b / 32] |= 1 << (b % 32);
            }
            Ok(())
        };
        let (d1, d2) = self.d_masks();
        let (g1, g2) = self.g_masks();
        let mut passes: Vec<(usize, &DropoutKeep, &str)> = vec![(0, &draws.real, "real rows"), (1, &draws.fake, "generated rows")];
        match (&draws.mismatched, self.conditional) {
            (Some(m), true) => passes.push((2, &m.keep, "mismatched rows")),
            (None, false) => {}
            (Some(_), false) => bail!("an unconditional GAN step was given mismatched labels"),
            (None, true) => bail!("a conditional GAN step needs its mismatched labels (GanDraws::mismatched)"),
        }
        for (block, keep, what) in passes {
            put(d1 + block * n * 2 * h, &keep.h1, n * 2 * h, what)?;
            put(d2 + block * n * h, &keep.h2, n * h, what)?;
        }
        put(g1, &draws.generator.h1, n * 2 * h, "the generator pass")?;
        put(g2, &draws.generator.h2, n * h, "the generator pass")?;
        Ok(bits)
    }

    /// The mismatched rows' labels as the gather kernel reads them (zeros when unconditional).
    pub fn wrong_labels(&self, draws: &GanDraws) -> Result<Vec<u32>> {
        match &draws.mismatched {
            Some(m) => {
                ensure!(m.labels.len() == self.n, "{} mismatched labels for {} rows", m.labels.len(), self.n);
                Ok(m.labels.iter().map(|&l| l as u32).collect())
            }
            None => Ok(vec![0; self.n]),
        }
    }
}

/// A GAN plan's per-step inputs besides the indices and noise.
pub(crate) struct GanInputs {
    pub layout: MaskLayout,
    pub masks: wgpu::Buffer,
    pub wrong: wgpu::Buffer,
}

/// `label_gain`: a cGAN discriminator's label value (`Batch::label_gain`).
pub(crate) fn record(g: &StepGraph, n: usize, label_gain: f32) -> Result<StepPlan> {
    let cfg = g.cfg;
    let conditional = cfg.kind.is_conditional();
    let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
    let w = p + c; // the discriminator's input width
    let masks_at = MaskLayout::new(n, h, conditional);
    let rd = masks_at.d_rows();
    let idx = g.buffer("idx", n);
    let noise = g.buffer("noise", n * l);
    let wrong = g.buffer("wrong", n);
    let masks = g.buffer("masks", masks_at.bits().div_ceil(32));
    let gin = g.buffer("g_in", n * (l + c));
    let g1 = g.buffer("g1", n * h);
    let g2 = g.buffer("g2", n * 2 * h);
    let glogit = g.buffer("g_logits", n * p);
    let din = g.buffer("d_in", rd * w);
    let d1 = g.buffer("d1", rd * 2 * h);
    let d2 = g.buffer("d2", rd * h);
    let dlogit = g.buffer("d_logits", rd);
    let ddlogit = g.buffer("dd_logits", rd);
    let dd2 = g.buffer("dd2", rd * h);
    let dd1 = g.buffer("dd1", rd * 2 * h);
    let e1 = g.buffer("e1", n * 2 * h);
    let e2 = g.buffer("e2", n * h);
    let elogit = g.buffer("e_logits", n);
    let delogit = g.buffer("de_logits", n);
    let de2 = g.buffer("de2", n * h);
    let de1 = g.buffer("de1", n * 2 * h);
    let dfake = g.buffer("d_fake", n * p);
    let dg2 = g.buffer("dg2", n * 2 * h);
    let dg1 = g.buffer("dg1", n * h);
    let layer = |name: &str| g.layout.layer(cfg, name);
    let (gf1, gf2, gf3) = (layer("generator.fc1")?, layer("generator.fc2")?, layer("generator.fc3")?);
    let (df1, df2, df3) = (layer("discriminator.fc1")?, layer("discriminator.fc2")?, layer("discriminator.fc3")?);
    let (m1, m2) = masks_at.d_masks();
    let (mg1, mg2) = masks_at.g_masks();
    let [m1, m2, mg1, mg2] = [m1, m2, mg1, mg2].map(|b| Some((&masks, b as u32)));
    let s = g.state;
    let th = &s.theta;
    let next = &s.next_theta;
    let grads = Some(&s.grads);
    let mut r = Recorder::new(g.gpu)?;
    // generator forward
    r.latent_input((n, l, l + c), g.labels, &idx, &noise, &gin);
    r.linear_forward(n, rows(&gin, 0, l + c), gf1, th, &g1, act::LEAKY, None);
    r.linear_forward(n, rows(&g1, 0, h), gf2, th, &g2, act::LEAKY, None);
    r.linear_forward(n, rows(&g2, 0, 2 * h), gf3, th, &glogit, act::NONE, None);
    // the discriminator's batch: real digits, the generator's, real digits with wrong labels
    let own = if conditional { label::OWN } else { label::NONE };
    r.gather((n, 0, w), own, (2.0, -1.0), label_gain, g.images, g.labels, &idx, Some(&wrong), &din);
    r.fake_to_d((n, n, w), label_gain, &glogit, g.labels, &idx, &din);
    if conditional {
        r.gather((n, 2 * n, w), label::WRONG, (2.0, -1.0), label_gain, g.images, g.labels, &idx, Some(&wrong), &din);
    }
    // discriminator forward, loss and backward (the generator's images enter as constants)
    r.linear_forward(rd, rows(&din, 0, w), df1, th, &d1, act::LEAKY, m1);
    r.linear_forward(rd, rows(&d1, 0, 2 * h), df2, th, &d2, act::LEAKY, m2);
    r.linear_forward(rd, rows(&d2, 0, h), df3, th, &dlogit, act::NONE, None);
    r.discriminator_loss(n, conditional, &dlogit, &ddlogit, &s.stats);
    r.linear_backward(rd, rows(&d2, 0, h), &ddlogit, df3, th, grads, Some((&dd2, h, false)));
    r.act_backward(rd * h, &d2, &dd2, act::LEAKY, m2);
    r.linear_backward(rd, rows(&d1, 0, 2 * h), &dd2, df2, th, grads, Some((&dd1, 2 * h, false)));
    r.act_backward(rd * 2 * h, &d1, &dd1, act::LEAKY, m1);
    r.linear_backward(rd, rows(&din, 0, w), &dd1, df1, th, grads, None);
    let (d_off, d_count) = g.layout.range("discriminator.");
    r.sum(&s.grads, d_off, d_count as usize, &s.stats, stats::GRAD_SQ, 1.0, true);
    s.record_adam(&mut r, g.layout, "discriminator.");
    // generator half, judged by the discriminator as its proposal leaves it
    let fake_rows = rows(&din, (n * w) as u32, w);
    r.linear_forward(n, fake_rows, df1, next, &e1, act::LEAKY, mg1);
    r.linear_forward(n, rows(&e1, 0, 2 * h), df2, next, &e2, act::LEAKY, mg2);
    r.linear_forward(n, rows(&e2, 0, h), df3, next, &elogit, act::NONE, None);
    r.generator_loss(n, &elogit, &delogit, &s.stats);
    r.linear_backward(n, rows(&e2, 0, h), &delogit, df3, next, None, Some((&de2, h, false)));
    r.act_backward(n * h, &e2, &de2, act::LEAKY, mg2);
    r.linear_backward(n, rows(&e1, 0, 2 * h), &de2, df2, next, None, Some((&de1, 2 * h, false)));
    r.act_backward(n * 2 * h, &e1, &de1, act::LEAKY, mg1);
    // only the pixel columns of dX: the label takes no gradient
    r.linear_backward(n, fake_rows, &de1, df1, next, None, Some((&dfake, p, false)));
    r.fake_backward(n, &glogit, &dfake);
    r.linear_backward(n, rows(&g2, 0, 2 * h), &dfake, gf3, th, grads, Some((&dg2, 2 * h, false)));
    r.act_backward(n * 2 * h, &g2, &dg2, act::LEAKY, None);
    r.linear_backward(n, rows(&g1, 0, h), &dg2, gf2, th, grads, Some((&dg1, h, false)));
    r.act_backward(n * h, &g1, &dg1, act::LEAKY, None);
    r.linear_backward(n, rows(&gin, 0, l + c), &dg1, gf1, th, grads, None);
    let (g_off, g_count) = g.layout.range("generator.");
    r.sum(&s.grads, g_off, g_count as usize, &s.stats, stats::G_GRAD_SQ, 1.0, true);
    s.record_adam(&mut r, g.layout, "generator.");
    r.check_step(None, &s.stats, &s.control);
    s.record_commit(&mut r, g.layout);
    Ok(StepPlan {
        recorded: r.finish(),
        _activations: vec![
            gin, g1, g2, glogit, din, d1, d2, dlogit, ddlogit, dd2, dd1, e1, e2, elogit, delogit, de2, de1, dfake, dg2, dg1,
        ],
        idx,
        noise,
        gan: Some(GanInputs { layout: masks_at, masks, wrong }),
    })
}
