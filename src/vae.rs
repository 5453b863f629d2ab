//! The variational autoencoder of PyTorch's `examples/vae`, with its tensor names.
//!
//! encoder: x [n, 784] → fc1 → ReLU → h [n, hidden] → fc21 → μ [n, latent]
//!                                                  → fc22 → log σ² [n, latent]
//! reparameterise: z = μ + exp(½ log σ²) · ε,  ε ~ N(0, I)
//! decoder: z → fc3 → ReLU → fc4 → logits [n, 784] → sigmoid → x̂
//! loss per example = BCE(x̂, x) summed over pixels + KL(q(z|x) ‖ N(0, I))
//!
//! The conditional VAE (`cvae`) joins the digit's one-hot label y [n, 10] to the encoder's input
//! ([x, y], 794 wide) and to the latent ([z, y]), so z is left to carry only the style.

use crate::mnist::IMAGE_PIXELS;
use crate::config::{with_label, ModelConfig, Recon, VaeObjective};
use anyhow::Result;
use candle_core::{Tensor, D};
use candle_nn::{Linear, Module, VarBuilder};

#[derive(Clone, Debug)]
pub struct Vae {
    pub cfg: ModelConfig,
    fc1: Linear,
    fc21: Linear,
    fc22: Linear,
    fc3: Linear,
    fc4: Linear,
}

/// What every VAE kind is (this MLP, the conv VAE of `conv_vae.rs`): an encoder to a Gaussian
/// and a decoder to logits; decoding to pixels and the loss follow from those two.
pub trait VariationalNet: std::fmt::Debug + Send + Sync {
    fn config(&self) -> ModelConfig;

    /// x [n, 784] in [0, 1], y [n, 10] for a conditional kind → (μ [n, latent], log σ² [n, latent])
    fn encode(&self, x: &Tensor, y: Option<&Tensor>) -> Result<(Tensor, Tensor)>;

    /// z [n, latent], y [n, 10] for a conditional kind → logits [n, 784]
    fn decode_logits(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor>;

    /// z [n, latent], y [n, 10] for a conditional kind → images [n, 784] in [0, 1]
    fn decode(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&self.decode_logits(z, y)?)?)
    }

    /// x [n, 784], y [n, 10] for a conditional kind, ε [n, latent] → the per-example loss,
    /// averaged over the batch: the reconstruction term `objective.recon` says plus β·KL.
    fn loss(&self, x: &Tensor, y: Option<&Tensor>, eps: &Tensor, objective: VaeObjective) -> Result<VaeLoss> {
        let (mu, logvar) = self.encode(x, y)?;
        let z = (&mu + (&logvar * 0.5)?.exp()? * eps)?;
        let logits = self.decode_logits(&z, y)?;
        let n = x.dim(0)? as f64;
        let bce = (reconstruction_terms(objective.recon, &logits, x)?.sum_all()? / n)?;
        let kl = (kl_to_unit_gaussian(&mu, &logvar)?.sum_all()? / n)?;
        let total = (&bce + (&kl * objective.kl_weight)?)?;
        Ok(VaeLoss { total, bce, kl })
    }
}

impl Vae {
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
        Ok(Self {
            cfg,
            fc1: candle_nn::linear(p + c, h, vb.pp("fc1"))?,
            fc21: candle_nn::linear(h, l, vb.pp("fc21"))?,
            fc22: candle_nn::linear(h, l, vb.pp("fc22"))?,
            fc3: candle_nn::linear(l + c, h, vb.pp("fc3"))?,
            fc4: candle_nn::linear(h, p, vb.pp("fc4"))?,
        })
    }
}

impl VariationalNet for Vae {
    fn config(&self) -> ModelConfig {
        self.cfg
    }

    /// x [n, 784] → fc1 → ReLU → (fc21, fc22), the label joined first for a cVAE
    fn encode(&self, x: &Tensor, y: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let h = self.fc1.forward(&with_label(x, y)?)?.relu()?;
        Ok((self.fc21.forward(&h)?, self.fc22.forward(&h)?))
    }

    /// z [n, latent] → fc3 → ReLU → fc4 → logits [n, 784], the label joined first for a cVAE
    fn decode_logits(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        let h = self.fc3.forward(&with_label(z, y)?)?.relu()?;
        Ok(self.fc4.forward(&h)?)
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

/// The reconstruction loss of sigmoid(logits) against targets x, elementwise: BCE on the logits,
/// or the squared (L2) or absolute (L1) difference of the decoded pixels.
pub fn reconstruction_terms(recon: Recon, logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    Ok(match recon {
        Recon::Bce => bce_with_logits(logits, x)?,
        Recon::L2 => (candle_nn::ops::sigmoid(logits)? - x)?.sqr()?,
        Recon::L1 => (candle_nn::ops::sigmoid(logits)? - x)?.abs()?,
    })
}

/// KL(N(μ, σ²) ‖ N(0, 1)) per example, summed over latent dimensions:
/// −½ Σ (1 + log σ² − μ² − σ²)   → [n]
pub fn kl_to_unit_gaussian(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let inner = ((logvar + 1.0)? - mu.sqr()? - logvar.exp()?)?;
    Ok((inner.sum(D::Minus1)? * -0.5)?)
}
