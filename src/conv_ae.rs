//! The convolutional autoencoder the tutorials teach (pytorch-beginner's `conv_autoencoder.py`),
//! with its tensor names: two `nn.Sequential`s, so the layers with weights are `encoder.0`,
//! `encoder.3`, `decoder.0`, `decoder.2` and `decoder.4`.
//!
//! encoder: x [n, 1, 28, 28] in [−1, 1] → Conv2d(1, 16, 3, stride 3, padding 1) → ReLU [n, 16, 10, 10]
//!          → MaxPool2d(2, stride 2) [n, 16, 5, 5] → Conv2d(16, 8, 3, stride 2, padding 1) → ReLU [n, 8, 3, 3]
//!          → MaxPool2d(2, stride 1) → code [n, 8, 2, 2], flattened to [n, 32]
//! decoder: code → ConvTranspose2d(8, 16, 3, stride 2) → ReLU [n, 16, 5, 5]
//!          → ConvTranspose2d(16, 8, 5, stride 3, padding 1) → ReLU [n, 8, 15, 15]
//!          → ConvTranspose2d(8, 1, 2, stride 2, padding 1) → Tanh → x̂ [n, 1, 28, 28] in [−1, 1]
//!
//! The sizes: `hidden` is the first convolution's channels (16), `latent` the code's values
//! (8 channels × 2 × 2 = 32). Pixels, the loss and the scaling are `ae.rs`'s (`PointNet`).

use crate::ae::PointNet;
use crate::config::{ModelConfig, CONV_AE_CODE_PIXELS};
use crate::conv::Conv;
use crate::mnist::{IMAGE_PIXELS, IMAGE_SIDE};
use crate::pool::max_pool2d;
use anyhow::{ensure, Result};
use candle_core::Tensor;
use candle_nn::VarBuilder;

#[derive(Clone, Debug)]
pub struct ConvAutoencoder {
    pub cfg: ModelConfig,
    /// encoder.0, encoder.3
    encoder: [Conv; 2],
    /// decoder.0, decoder.2, decoder.4
    decoder: [Conv; 3],
}

impl ConvAutoencoder {
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        let layers = cfg.conv_layers();
        ensure!(layers.len() == 5, "a conv-ae has five convolutions");
        let conv = |i: usize| Conv::new(&layers[i], &vb);
        Ok(Self { cfg, encoder: [conv(0)?, conv(1)?], decoder: [conv(2)?, conv(3)?, conv(4)?] })
    }
}

impl PointNet for ConvAutoencoder {
    fn config(&self) -> ModelConfig {
        self.cfg
    }

    fn encode_scaled(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let x = x.reshape((n, 1, IMAGE_SIDE, IMAGE_SIDE))?;
        let h = max_pool2d(&self.encoder[0].forward(&x)?.relu()?, 2, 2)?; // [n, 16, 5, 5]
        let code = max_pool2d(&self.encoder[1].forward(&h)?.relu()?, 2, 1)?; // [n, 8, 2, 2]
        Ok(code.flatten_from(1)?)
    }

    fn decode_scaled(&self, z: &Tensor) -> Result<Tensor> {
        let n = z.dim(0)?;
        let side = 2;
        let z = z.reshape((n, self.cfg.latent / CONV_AE_CODE_PIXELS, side, side))?;
        let h = self.decoder[0].forward(&z)?.relu()?; // [n, 16, 5, 5]
        let h = self.decoder[1].forward(&h)?.relu()?; // [n, 8, 15, 15]
        let x = self.decoder[2].forward(&h)?.tanh()?; // [n, 1, 28, 28]
        Ok(x.reshape((n, IMAGE_PIXELS))?)
    }
}
