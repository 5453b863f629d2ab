//! The plain autoencoder the tutorials start from (pytorch-beginner's `simple_autoencoder.py`),
//! with its tensor names: two `nn.Sequential`s, so the linear layers are `encoder.0`, `encoder.2`,
//! `encoder.4`, `encoder.6` and `decoder.0` … `decoder.6` (ReLUs between, Tanh last).
//!
//! encoder: x [n, 784] in [−1, 1] → 128 → ReLU → 64 → ReLU → 12 → ReLU → code [n, 3]
//! decoder: code → 12 → ReLU → 64 → ReLU → 128 → ReLU → 784 → Tanh → x̂ in [−1, 1]
//! loss per example = Σ over pixels (x̂ − x)² (the tutorial's `nn.MSELoss` is this ÷ 784), or
//! Σ |x̂ − x| (L1)
//!
//! The pixels are scaled to [−1, 1] on the way in (the tutorial's `Normalize((0.5,), (0.5,))`)
//! and back to [0, 1] on the way out, so the model reads and writes images as every other kind
//! does. The code is a point: no prior pulls it anywhere, which is the tutorials' point about
//! holes in an autoencoder's latent space.

use crate::config::{ae_widths, ModelConfig, Recon, AE_DECODER, AE_ENCODER};
use anyhow::{bail, Result};
use candle_core::Tensor;
use candle_nn::{Linear, Module, VarBuilder};

#[derive(Clone, Debug)]
pub struct Autoencoder {
    pub cfg: ModelConfig,
    encoder: Vec<Linear>,
    decoder: Vec<Linear>,
}

/// What every autoencoder kind is (this one, the convolutional one of `conv_ae.rs`): an encoder
/// and a decoder in the [−1, 1] units it trains in; pixels in [0, 1] and the loss follow from them.
pub trait PointNet: std::fmt::Debug + Send + Sync {
    fn config(&self) -> ModelConfig;

    /// x [n, 784] in [−1, 1] → code [n, latent]
    fn encode_scaled(&self, x: &Tensor) -> Result<Tensor>;

    /// code [n, latent] → the Tanh output [n, 784] in [−1, 1]
    fn decode_scaled(&self, z: &Tensor) -> Result<Tensor>;

    /// Images [n, 784] in [0, 1] → codes [n, latent]
    fn encode(&self, images: &Tensor) -> Result<Tensor> {
        self.encode_scaled(&to_signed(images)?)
    }

    /// Codes [n, latent] → images [n, 784] in [0, 1]
    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        Ok(((self.decode_scaled(z)? + 1.0)? * 0.5)?)
    }

    /// Images [n, 784] in [0, 1] → the reconstruction loss per example (summed over pixels, in
    /// the [−1, 1] units the network trains in) [n], and the reconstructions in [0, 1].
    fn reconstruction(&self, images: &Tensor, recon: Recon) -> Result<(Tensor, Tensor)> {
        let x = to_signed(images)?;
        let y = self.decode_scaled(&self.encode_scaled(&x)?)?;
        let loss = reconstruction_error(recon, &y, &x)?.sum(1)?;
        Ok((loss, ((y + 1.0)? * 0.5)?))
    }

    /// Images [n, 784] in [0, 1] → the loss per example averaged over the batch (what a step minimises).
    fn loss(&self, images: &Tensor, recon: Recon) -> Result<Tensor> {
        Ok(self.reconstruction(images, recon)?.0.mean_all()?)
    }
}

impl Autoencoder {
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        let w = ae_widths(&cfg);
        let encoder = AE_ENCODER
            .iter()
            .zip(w.windows(2))
            .map(|(name, io)| Ok(candle_nn::linear(io[0], io[1], vb.pp(name))?))
            .collect::<Result<_>>()?;
        let decoder = AE_DECODER
            .iter()
            .zip(w.windows(2).rev())
            .map(|(name, io)| Ok(candle_nn::linear(io[1], io[0], vb.pp(name))?))
            .collect::<Result<_>>()?;
        Ok(Self { cfg, encoder, decoder })
    }
}

impl PointNet for Autoencoder {
    fn config(&self) -> ModelConfig {
        self.cfg
    }

    fn encode_scaled(&self, x: &Tensor) -> Result<Tensor> {
        relu_chain(&self.encoder, x)
    }

    fn decode_scaled(&self, z: &Tensor) -> Result<Tensor> {
        Ok(relu_chain(&self.decoder, z)?.tanh()?)
    }
}

/// Each layer then ReLU, but for the last, whose output is left as it is.
fn relu_chain(layers: &[Linear], x: &Tensor) -> Result<Tensor> {
    let mut h = x.clone();
    for (i, layer) in layers.iter().enumerate() {
        h = layer.forward(&h)?;
        if i + 1 < layers.len() {
            h = h.relu()?;
        }
    }
    Ok(h)
}

/// Pixels in [0, 1] → [−1, 1].
fn to_signed(images: &Tensor) -> Result<Tensor> {
    Ok(((images * 2.0)? - 1.0)?)
}

/// The squared (L2) or absolute (L1) error of y against x, elementwise.
fn reconstruction_error(recon: Recon, y: &Tensor, x: &Tensor) -> Result<Tensor> {
    Ok(match recon {
        Recon::L2 => (y - x)?.sqr()?,
        Recon::L1 => (y - x)?.abs()?,
        Recon::Bce => bail!("an autoencoder's reconstruction loss is l2 or l1, not bce"),
    })
}
