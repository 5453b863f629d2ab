//! The variational autoencoder of PyTorch's `examples/vae`, with its tensor names.
//!
//! encoder: x [n, 784] → fc1 → ReLU → h [n, hidden] → fc21 → μ [n, latent]
//!                                                  → fc22 → log σ² [n, latent]
//! reparameterise: z = μ + exp(½ log σ²) · ε,  ε ~ N(0, I)
//! decoder: z → fc3 → ReLU → fc4 → logits [n, 784] → sigmoid → x̂
//! loss per example = BCE(x̂, x) summed over pixels + KL(q(z|x) ‖ N(0, I))

use crate::mnist::IMAGE_PIXELS;
use anyhow::{ensure, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{Linear, Module, VarBuilder, VarMap};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaeConfig {
    pub latent: usize,
    pub hidden: usize,
}

impl Default for VaeConfig {
    fn default() -> Self {
        Self { latent: 20, hidden: 400 }
    }
}

impl VaeConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!((1..=512).contains(&self.latent), "latent size {} is outside 1..=512", self.latent);
        ensure!((1..=4096).contains(&self.hidden), "hidden size {} is outside 1..=4096", self.hidden);
        Ok(())
    }

    /// The linear layers as (PyTorch name, fan_in, fan_out).
    pub fn layers(&self) -> [(&'static str, usize, usize); 5] {
        let (l, h, p) = (self.latent, self.hidden, IMAGE_PIXELS);
        [("fc1", p, h), ("fc21", h, l), ("fc22", h, l), ("fc3", l, h), ("fc4", h, p)]
    }

    /// Every parameter with its PyTorch name and shape: `.weight` is [out, in], `.bias` is [out].
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.layers()
            .into_iter()
            .flat_map(|(name, fan_in, fan_out)| {
                [(format!("{name}.weight"), vec![fan_out, fan_in]), (format!("{name}.bias"), vec![fan_out])]
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct Vae {
    pub cfg: VaeConfig,
    fc1: Linear,
    fc21: Linear,
    fc22: Linear,
    fc3: Linear,
    fc4: Linear,
}

impl Vae {
    pub fn new(cfg: VaeConfig, vb: VarBuilder) -> Result<Self> {
        let (l, h, p) = (cfg.latent, cfg.hidden, IMAGE_PIXELS);
        Ok(Self {
            cfg,
            fc1: candle_nn::linear(p, h, vb.pp("fc1"))?,
            fc21: candle_nn::linear(h, l, vb.pp("fc21"))?,
            fc22: candle_nn::linear(h, l, vb.pp("fc22"))?,
            fc3: candle_nn::linear(l, h, vb.pp("fc3"))?,
            fc4: candle_nn::linear(h, p, vb.pp("fc4"))?,
        })
    }

    /// x [n, 784] in [0, 1] → (μ [n, latent], log σ² [n, latent])
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let h = self.fc1.forward(x)?.relu()?;
        Ok((self.fc21.forward(&h)?, self.fc22.forward(&h)?))
    }

    /// z [n, latent] → logits [n, 784]
    pub fn decode_logits(&self, z: &Tensor) -> Result<Tensor> {
        let h = self.fc3.forward(z)?.relu()?;
        Ok(self.fc4.forward(&h)?)
    }

    /// z [n, latent] → images [n, 784] in [0, 1]
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.decode_logits(z)?)?)
    }

    /// x [n, 784], ε [n, latent] → the per-example loss, averaged over the batch.
    pub fn loss(&self, x: &Tensor, eps: &Tensor) -> Result<VaeLoss> {
        let (mu, logvar) = self.encode(x)?;
        let z = (&mu + (&logvar * 0.5)?.exp()? * eps)?;
        let logits = self.decode_logits(&z)?;
        let n = x.dim(0)? as f64;
        let bce = (bce_with_logits(&logits, x)?.sum_all()? / n)?;
        let kl = (kl_to_unit_gaussian(&mu, &logvar)?.sum_all()? / n)?;
        let total = (&bce + &kl)?;
        Ok(VaeLoss { total, bce, kl })
    }
}

/// The loss as tensors, so `total` can be differentiated.
pub struct VaeLoss {
    pub total: Tensor,
    pub bce: Tensor,
    pub kl: Tensor,
}

/// Binary cross-entropy of sigmoid(l) against targets x, elementwise, in the stable form
/// BCE = max(l, 0) − x·l + log(1 + exp(−|l|))  (equal to −x log σ(l) − (1−x) log(1−σ(l))).
pub fn bce_with_logits(logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    let softplus_tail = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok(((logits.relu()? - (x * logits)?)? + softplus_tail)?)
}

/// KL(N(μ, σ²) ‖ N(0, 1)) per example, summed over latent dimensions:
/// −½ Σ (1 + log σ² − μ² − σ²)   → [n]
pub fn kl_to_unit_gaussian(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let inner = ((logvar + 1.0)? - mu.sqr()? - logvar.exp()?)?;
    Ok((inner.sum(D::Minus1)? * -0.5)?)
}

/// Fresh parameters drawn as PyTorch's `nn.Linear.reset_parameters` does (weights and biases
/// uniform in ±1/√fan_in), from a seeded generator so a run can be repeated exactly.
pub fn init_params(cfg: &VaeConfig, seed: u64, device: &Device) -> Result<VarMap> {
    cfg.validate()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().map_err(|_| anyhow::anyhow!("parameter map is poisoned"))?;
        for (layer, fan_in, fan_out) in cfg.layers() {
            let bound = 1.0 / (fan_in as f32).sqrt();
            for (suffix, shape) in [("weight", vec![fan_out, fan_in]), ("bias", vec![fan_out])] {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
                let t = Tensor::from_vec(values, shape, device)?;
                data.insert(format!("{layer}.{suffix}"), Var::from_tensor(&t)?);
            }
        }
    }
    Ok(varmap)
}

/// A model over the given parameters; the varmap's vars stay shared with the model,
/// so an optimizer stepping them changes what the model computes.
pub fn vae_from_varmap(cfg: VaeConfig, varmap: &VarMap, device: &Device) -> Result<Vae> {
    Vae::new(cfg, VarBuilder::from_varmap(varmap, DType::F32, device))
}
