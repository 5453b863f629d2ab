//! Adam, in two halves: `propose` computes the next parameters and moments without touching the
//! model, `commit` writes them. A GAN step needs both networks' updates checked before either is
//! applied (a step that fails must leave the weights as they were), and the generator's half needs
//! the discriminator's proposed weights.
//!
//! Per parameter θ with gradient g, at step t (from 1):
//!   m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
//!   θ ← θ − lr · (m / (1 − β1ᵗ)) / (√(v / (1 − β2ᵗ)) + ε)
//! The tensor operations are those of candle-nn's `AdamW` with no weight decay, in the same order,
//! so the results are the same to the bit.

use crate::config::{Kind, TrainSettings, PYTORCH_ADAM_BETA2};
use crate::layout::ParamLayout;
use anyhow::{anyhow, ensure, Result};
use candle_core::{backprop::GradStore, Device, Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;

/// Adam's hyper-parameters, defined once for every backend (the GPU's kernels take them from here),
/// each step's in its `Batch` (β2 is the recipe's, `config::TrainSettings`). The learning rate is
/// not one of them: it comes with each step, from the trainer's recipe (`config::Recipe`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl AdamConfig {
    /// PyTorch's defaults: β = (0.9, 0.999), ε = 1e-8.
    pub const PYTORCH: AdamConfig = AdamConfig { beta1: 0.9, beta2: PYTORCH_ADAM_BETA2, eps: 1e-8 };

    /// As the tutorials train each family: the VAEs with PyTorch's defaults, the GANs with β1 0.5
    /// (DCGAN's choice, which its successors kept).
    pub fn for_kind(kind: Kind) -> AdamConfig {
        if kind.is_gan() { AdamConfig { beta1: 0.5, ..Self::PYTORCH } } else { Self::PYTORCH }
    }

    /// What a step of `kind` trains with under `settings`: the kind's β1 and ε, the recipe's β2.
    pub fn for_settings(kind: Kind, settings: &TrainSettings) -> AdamConfig {
        AdamConfig { beta2: settings.adam_beta2, ..Self::for_kind(kind) }
    }
}

/// Adam's state by parameter name, as it moves between backends: the steps committed (t) and
/// each parameter's first and second moments.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    pub t: u64,
    pub moments: HashMap<String, (Vec<f32>, Vec<f32>)>,
}

impl OptimizerState {
    /// A flat-buffer backend's moments m and v (in `layout`'s order), by name.
    pub fn from_flat(layout: &ParamLayout, t: u64, m: &[f32], v: &[f32]) -> Self {
        let mut v = layout.split(v);
        let moments = layout.split(m).into_iter().map(|(name, m)| {
            let v = v.remove(&name).unwrap_or_default();
            (name, (m, v))
        });
        Self { t, moments: moments.collect() }
    }

    /// The moments m and v flat, in `layout`'s order; every parameter must be there, at its size.
    pub fn flat_moments(&self, layout: &ParamLayout) -> Result<(Vec<f32>, Vec<f32>)> {
        let m = layout.join("Adam's state", |name| self.moments.get(name).map(|(m, _)| m))?;
        let v = layout.join("Adam's state", |name| self.moments.get(name).map(|(_, v)| v))?;
        Ok((m, v))
    }
}

pub struct Adam {
    params: Vec<Param>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps committed so far.
    t: u64,
}

struct Param {
    name: String,
    theta: Var,
    m: Tensor,
    v: Tensor,
}

/// The next values of every parameter that had a gradient, not yet written.
pub struct AdamUpdate {
    t: u64,
    next: Vec<Option<(Tensor, Tensor, Tensor)>>,
}

impl Adam {
    /// Adam over the named variables, with `config`'s β1, β2 and ε (the learning rate comes with each step).
    pub fn new(named: Vec<(String, Var)>, config: &AdamConfig) -> Result<Self> {
        let params = named
            .into_iter()
            .map(|(name, theta)| {
                let m = theta.as_tensor().zeros_like()?;
                let v = m.clone();
                Ok(Param { name, theta, m, v })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { params, beta1: config.beta1, beta2: config.beta2, eps: config.eps, t: 0 })
    }

    /// β1, β2 and ε from the next step on (a step brings its own: `Batch::adam`); the moments
    /// stay as they are.
    pub fn set_config(&mut self, config: &AdamConfig) {
        (self.beta1, self.beta2, self.eps) = (config.beta1, config.beta2, config.eps);
    }

    /// The variables of `varmap` whose names start with `prefix`, sorted by name.
    pub fn vars_under(varmap: &VarMap, prefix: &str) -> Result<Vec<(String, Var)>> {
        let data = varmap.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        let mut named: Vec<(String, Var)> =
            data.iter().filter(|(n, _)| n.starts_with(prefix)).map(|(n, v)| (n.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(named)
    }

    /// Σ g² over this optimiser's parameters, in f64 so a sum of large finite squares cannot overflow.
    pub fn grad_sq_norm(&self, grads: &GradStore) -> Result<f64> {
        let mut sum = 0f64;
        for p in &self.params {
            if let Some(g) = grads.get(&p.theta) {
                sum += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
            }
        }
        Ok(sum)
    }

    pub fn propose(&self, grads: &GradStore, lr: f64) -> Result<AdamUpdate> {
        self.propose_with(|p| Ok(grads.get(&p.theta).cloned()), lr)
    }

    /// `propose` with gradients given by parameter name (those of other parameters are skipped).
    pub fn propose_named(&self, grads: &HashMap<String, Vec<f32>>, lr: f64, device: &Device) -> Result<AdamUpdate> {
        self.propose_with(
            |p| grads.get(&p.name).map(|g| Ok(Tensor::from_slice(g, p.theta.shape(), device)?)).transpose(),
            lr,
        )
    }

    /// This optimiser's gradients in `grads`, by parameter name.
    pub fn named_grads(&self, grads: &GradStore) -> Result<HashMap<String, Vec<f32>>> {
        let mut out = HashMap::new();
        for p in &self.params {
            if let Some(g) = grads.get(&p.theta) {
                out.insert(p.name.clone(), g.flatten_all()?.to_vec1::<f32>()?);
            }
        }
        Ok(out)
    }

    /// Steps committed and each parameter's moments (m, v), by name.
    pub fn state(&self) -> Result<(u64, HashMap<String, (Vec<f32>, Vec<f32>)>)> {
        let mut moments = HashMap::new();
        for p in &self.params {
            moments.insert(p.name.clone(), (p.m.flatten_all()?.to_vec1::<f32>()?, p.v.flatten_all()?.to_vec1::<f32>()?));
        }
        Ok((self.t, moments))
    }

    /// Takes over the moments of this optimiser's parameters and the step count from `state`.
    pub fn set_state(&mut self, state: &OptimizerState) -> Result<()> {
        let mut next = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let (m, v) = state.moments.get(&p.name).ok_or_else(|| anyhow!("Adam's state has no moments for {}", p.name))?;
            let n = p.theta.elem_count();
            ensure!(m.len() == n && v.len() == n, "Adam's moments for {} have the wrong size", p.name);
            let shape = p.theta.shape();
            next.push((Tensor::from_slice(m, shape, p.theta.device())?, Tensor::from_slice(v, shape, p.theta.device())?));
        }
        for (p, (m, v)) in self.params.iter_mut().zip(next) {
            p.m = m;
            p.v = v;
        }
        self.t = state.t;
        Ok(())
    }

    fn propose_with(&self, grad_of: impl Fn(&Param) -> Result<Option<Tensor>>, lr: f64) -> Result<AdamUpdate> {
        let t = self.t + 1;
        let (beta1, beta2) = (self.beta1, self.beta2);
        let scale_m = 1f64 / (1f64 - beta1.powi(t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(t as i32));
        let mut next = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let Some(g) = grad_of(p)? else {
                next.push(None);
                continue;
            };
            let g = &g;
            let next_m = ((&p.m * beta1)? + (g * (1.0 - beta1))?)?;
            let next_v = ((&p.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&next_m * scale_m)?;
            let v_hat = (&next_v * scale_v)?;
            // candle's AdamW multiplies by (1 − lr·weight_decay) here; with no decay that is × 1.
            let theta = (p.theta.as_tensor() * 1f64)?;
            let adjusted_grad = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            let next_theta = (theta - (adjusted_grad * lr)?)?;
            // Detached: the new values must not hold on to this step's graph (the gradients carry
            // it), or every step would keep every earlier step's tensors alive.
            next.push(Some((next_theta.detach(), next_m.detach(), next_v.detach())));
        }
        Ok(AdamUpdate { t, next })
    }

    /// The parameters as they would be after `update`, by name (unchanged ones as they are).
    pub fn proposed_params(&self, update: &AdamUpdate) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .zip(&update.next)
            .map(|(p, n)| {
                let t = n.as_ref().map_or_else(|| p.theta.as_tensor().clone(), |(theta, _, _)| theta.clone());
                (p.name.clone(), t)
            })
            .collect()
    }

    pub fn commit(&mut self, update: AdamUpdate) -> Result<()> {
        for (p, n) in self.params.iter_mut().zip(update.next) {
            if let Some((theta, m, v)) = n {
                p.theta.set(&theta)?;
                p.m = m;
                p.v = v;
            }
        }
        self.t = update.t;
        Ok(())
    }

    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let update = self.propose(grads, lr)?;
        self.commit(update)
    }
}
