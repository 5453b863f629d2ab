//! One VAE (or cVAE) training step as a graph of kernels, hand-derived from src/vae.rs:
//!
//!   x [n, 784 (+10)] → fc1 → ReLU → h1 → fc21 → μ, fc22 → log σ²
//!   z = μ + exp(½ log σ²)·ε (+ label) → fc3 → ReLU → h3 → fc4 → logits
//!   loss = recon(logits, x) + β·KL(μ, log σ²), each per example (÷ n); recon BCE, L2 or L1
//!
//! then the backward pass in reverse order, the gradient's squared norm, the step's check, Adam's
//! proposal over every parameter and its commit.

use super::params::{act, label, recon, stats};
use crate::config::VaeObjective;
use super::plan::{StepGraph, StepPlan};
use super::recorder::{rows, Recorder};
use crate::mnist::IMAGE_PIXELS;
use anyhow::Result;

/// The step for `n` rows minimising `objective` (recorded into the plan: a new objective is a new plan).
pub(crate) fn record(g: &StepGraph, n: usize, objective: VaeObjective) -> Result<StepPlan> {
    let cfg = g.cfg;
    let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
    let idx = g.buffer("idx", n);
    let noise = g.buffer("noise", n * l);
    let x = g.buffer("x", n * (p + c));
    let h1 = g.buffer("h1", n * h);
    let mu = g.buffer("mu", n * l);
    let logvar = g.buffer("logvar", n * l);
    let zc = g.buffer("z", n * (l + c));
    let h3 = g.buffer("h3", n * h);
    let logits = g.buffer("logits", n * p);
    let bce_terms = g.buffer("bce_terms", n * p);
    let kl_terms = g.buffer("kl_terms", n * l);
    let dh3 = g.buffer("dh3", n * h);
    let dz = g.buffer("dz", n * l);
    let dmu = g.buffer("dmu", n * l);
    let dlogvar = g.buffer("dlogvar", n * l);
    let dh1 = g.buffer("dh1", n * h);
    let layer = |name: &str| g.layout.layer(cfg, name);
    let (fc1, fc21, fc22, fc3, fc4) = (layer("fc1")?, layer("fc21")?, layer("fc22")?, layer("fc3")?, layer("fc4")?);
    let s = g.state;
    let th = &s.theta;
    let grads = Some(&s.grads);
    let mut r = Recorder::new(g.gpu)?;
    // forward
    let label_mode = if c > 0 { label::OWN } else { label::NONE };
    r.gather((n, 0, p + c), label_mode, (1.0, 0.0), 1.0, g.images, g.labels, &idx, None, &x);
    r.linear_forward(n, rows(&x, 0, p + c), fc1, th, &h1, act::RELU, None);
    r.linear_forward(n, rows(&h1, 0, h), fc21, th, &mu, act::NONE, None);
    r.linear_forward(n, rows(&h1, 0, h), fc22, th, &logvar, act::NONE, None);
    r.reparameterise((n, l, l + c), &mu, &logvar, &noise, g.labels, &idx, &zc);
    r.linear_forward(n, rows(&zc, 0, l + c), fc3, th, &h3, act::RELU, None);
    r.linear_forward(n, rows(&h3, 0, h), fc4, th, &logits, act::NONE, None);
    // loss, then backward in reverse order (logits becomes dlogits)
    r.reconstruction(n, p + c, recon::code(objective.recon), &x, &logits, &bce_terms);
    r.linear_backward(n, rows(&h3, 0, h), &logits, fc4, th, grads, Some((&dh3, h, false)));
    r.act_backward(n * h, &h3, &dh3, act::RELU, None);
    r.linear_backward(n, rows(&zc, 0, l + c), &dh3, fc3, th, grads, Some((&dz, l, false)));
    // dz holds only the latent columns of dZ (fc3's backward writes l of them): row stride l.
    let beta = objective.kl_weight as f32;
    r.kl_reparameterise_backward((n, l, l), beta, &mu, &logvar, &noise, &dz, &dmu, &dlogvar, &kl_terms);
    r.linear_backward(n, rows(&h1, 0, h), &dmu, fc21, th, grads, Some((&dh1, h, false)));
    r.linear_backward(n, rows(&h1, 0, h), &dlogvar, fc22, th, grads, Some((&dh1, h, true)));
    r.act_backward(n * h, &h1, &dh1, act::RELU, None);
    r.linear_backward(n, rows(&x, 0, p + c), &dh1, fc1, th, grads, None);
    // the step's numbers, its verdict, Adam
    r.sum(&bce_terms, 0, n * p, &s.stats, stats::BCE, 1.0 / n as f32, false);
    r.sum(&kl_terms, 0, n * l, &s.stats, stats::KL, 1.0 / n as f32, false);
    r.sum(&s.grads, 0, g.layout.total, &s.stats, stats::GRAD_SQ, 1.0, true);
    r.check_step(Some(beta), &s.stats, &s.control);
    s.record_adam(&mut r, g.layout, "");
    s.record_commit(&mut r, g.layout);
    Ok(StepPlan {
        recorded: r.finish(),
        _activations: vec![x, h1, mu, logvar, zc, h3, logits, bce_terms, kl_terms, dh3, dz, dmu, dlogvar, dh1],
        idx,
        noise,
        gan: None,
    })
}
