//! A VAE with a convolutional encoder and a transposed-convolution decoder, the shape the conv
//! VAE tutorials share (DCGAN's strided convolutions, no pooling), with the MLP VAE's dense names
//! between the two `nn.Sequential` stacks:
//!
//! encoder: x [n, 1, 28, 28] → encoder.0 Conv2d(1, 32, 4, stride 2, padding 1) → ReLU [n, 32, 14, 14]
//!          → encoder.2 Conv2d(32, 64, 4, stride 2, padding 1) → ReLU [n, 64, 7, 7] → flatten [n, 3136]
//!          → fc1 → ReLU [n, hidden] → fc21 → μ [n, latent], fc22 → log σ² [n, latent]
//! decoder: z → fc3 → ReLU [n, hidden] → fc4 → ReLU [n, 3136] → [n, 64, 7, 7]
//!          → decoder.0 ConvTranspose2d(64, 32, 4, stride 2, padding 1) → ReLU [n, 32, 14, 14]
//!          → decoder.2 ConvTranspose2d(32, 1, 4, stride 2, padding 1) → logits [n, 1, 28, 28]
//!
//! The loss and the reparameterisation are `vae.rs`'s (`VariationalNet`).

use crate::config::{ModelConfig, CONV_VAE_CHANNELS, CONV_VAE_SIDE};
use crate::conv::Conv;
use crate::mnist::{IMAGE_PIXELS, IMAGE_SIDE};
use crate::vae::VariationalNet;
use anyhow::{ensure, Result};
use candle_core::Tensor;
use candle_nn::{Linear, Module, VarBuilder};

#[derive(Clone, Debug)]
pub struct ConvVae {
    pub cfg: ModelConfig,
    /// encoder.0, encoder.2
    encoder: [Conv; 2],
    fc1: Linear,
    fc21: Linear,
    fc22: Linear,
    fc3: Linear,
    fc4: Linear,
    /// decoder.0, decoder.2
    decoder: [Conv; 2],
}

impl ConvVae {
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        let convs = cfg.conv_layers();
        ensure!(convs.len() == 4, "a conv-vae has four convolutions");
        let conv = |i: usize| Conv::new(&convs[i], &vb);
        let linear = |name: &str| -> Result<Linear> {
            let layers = cfg.layers();
            let &(_, fan_in, fan_out) = layers.iter().find(|l| l.0 == name).ok_or_else(|| anyhow::anyhow!("a conv-vae has no {name}"))?;
            Ok(candle_nn::linear(fan_in, fan_out, vb.pp(name))?)
        };
        Ok(Self {
            cfg,
            encoder: [conv(0)?, conv(1)?],
            fc1: linear("fc1")?,
            fc21: linear("fc21")?,
            fc22: linear("fc22")?,
            fc3: linear("fc3")?,
            fc4: linear("fc4")?,
            decoder: [conv(2)?, conv(3)?],
        })
    }
}

impl VariationalNet for ConvVae {
    fn config(&self) -> ModelConfig {
        self.cfg
    }

    fn encode(&self, x: &Tensor, _y: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let n = x.dim(0)?;
        let x = x.reshape((n, 1, IMAGE_SIDE, IMAGE_SIDE))?;
        let h = self.encoder[0].forward(&x)?.relu()?; // [n, 32, 14, 14]
        let h = self.encoder[1].forward(&h)?.relu()?.flatten_from(1)?; // [n, 3136]
        let h = self.fc1.forward(&h)?.relu()?;
        Ok((self.fc21.forward(&h)?, self.fc22.forward(&h)?))
    }

    fn decode_logits(&self, z: &Tensor, _y: Option<&Tensor>) -> Result<Tensor> {
        let n = z.dim(0)?;
        let h = self.fc3.forward(z)?.relu()?;
        let h = self.fc4.forward(&h)?.relu()?.reshape((n, CONV_VAE_CHANNELS[1], CONV_VAE_SIDE, CONV_VAE_SIDE))?;
        let h = self.decoder[0].forward(&h)?.relu()?; // [n, 32, 14, 14]
        let logits = self.decoder[1].forward(&h)?; // [n, 1, 28, 28]
        Ok(logits.reshape((n, IMAGE_PIXELS))?)
    }
}
