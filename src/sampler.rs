//! Sampling with no tensor library: a model's decoder (a VAE's fc3 and fc4, a GAN's generator, an
//! autoencoder's decoder)
//! over plain vectors, through the CPU engine's products. It is all the page's light wasm module
//! holds (built without the `full` feature: a quarter of the whole module's bytes gzipped), so a
//! reader's first digits wait for a decoder file and this, not for candle, the trainer and WebGPU.
//!
//! The checks on what comes in are the ones `Lab` makes (it calls the same functions below), so a
//! call refused by one is refused by the other with the same words.

use crate::checkpoint::{self, Loaded, Metadata};
use crate::config::{one_hot_rows, Family, ModelConfig};
use crate::engine::layers::{sigmoid, Linear};
use crate::engine::matmul::Act;
use crate::input::count_rows;
use crate::mnist::IMAGE_PIXELS;
use anyhow::{bail, ensure, Result};

/// Rows decoded at a time: bounds the hidden activations' memory for a 10,000-row call.
const CHUNK_ROWS: usize = 256;

/// A model's decoder, ready to sample.
pub struct Sampler {
    cfg: ModelConfig,
    meta: Metadata,
    decoder_only: bool,
    /// The decoder's weights and biases, layer after layer, each layer's `Linear` pointing in here.
    theta: Vec<f32>,
    /// The decoder's layers in order, each with the activation stored with its output (the last
    /// one's is None: its output goes through a sigmoid into [0, 1], or an autoencoder's Tanh
    /// and back to [0, 1]).
    layers: Vec<(Linear, Act)>,
}

impl Sampler {
    /// The decoder of a weights file: a whole model's file (its other networks are checked as
    /// `Model.load` checks them, then dropped) or a decoder file.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let Loaded { cfg, values, meta, decoder_only } = checkpoint::load_checked(bytes)?;
        ensure!(
            !cfg.kind.is_convolutional(),
            "a `{}` model's decoder has convolutions, and the light sampler decodes linear layers only: load it whole (Model.load)",
            cfg.kind.name()
        );
        let hidden_act = if cfg.kind.is_gan() { Act::Leaky } else { Act::Relu };
        let value = |name: &str| values.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice());
        let decoder = cfg.decoder_layers();
        let mut theta = Vec::new();
        let mut layers = Vec::new();
        for (i, &(name, fan_in, fan_out)) in decoder.iter().enumerate() {
            let (Some(w), Some(b)) = (value(&format!("{name}.weight")), value(&format!("{name}.bias"))) else {
                bail!("weights file has no parameters for `{name}`");
            };
            let linear = Linear { w: theta.len(), b: theta.len() + w.len(), fan_in, fan_out };
            theta.extend_from_slice(w);
            theta.extend_from_slice(b);
            layers.push((linear, if i + 1 < decoder.len() { hidden_act } else { Act::None }));
        }
        Ok(Self { cfg, meta, decoder_only, theta, layers })
    }

    pub fn config(&self) -> ModelConfig {
        self.cfg
    }

    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Whether the file was a decoder file (else a whole model's, of which this keeps the decoder).
    pub fn decoder_only(&self) -> bool {
        self.decoder_only
    }

    /// n latent vectors, flattened [n, latent] (and n digit labels for a conditional model)
    /// → n images, flattened [n, 784], in [0, 1]: what `Lab::sample` gives.
    pub fn sample(&self, z: &[f32], labels: Option<&[u8]>) -> Result<Vec<f32>> {
        let l = self.cfg.latent;
        let n = count_rows(z, l, "latent vectors", "the latent size")?;
        let y = label_rows(&self.cfg, labels, n, "latent vectors")?;
        let c = self.cfg.kind.label_width();
        let widest = self.layers.iter().map(|(layer, _)| layer.fan_out).max().unwrap_or(0);
        let mut images = vec![0f32; n * IMAGE_PIXELS];
        let mut input = vec![0f32; CHUNK_ROWS * (l + c)];
        // layer i writes bufs[i % 2] and reads the other (the first reads `input`)
        let mut bufs = [vec![0f32; CHUNK_ROWS * widest], vec![0f32; CHUNK_ROWS * widest]];
        for start in (0..n).step_by(CHUNK_ROWS) {
            let rows = CHUNK_ROWS.min(n - start);
            // the decoder's input rows: z, then the one-hot label for a conditional model
            for r in 0..rows {
                let row = &mut input[r * (l + c)..(r + 1) * (l + c)];
                row[..l].copy_from_slice(&z[(start + r) * l..(start + r + 1) * l]);
                if let Some(y) = &y {
                    row[l..].copy_from_slice(&y[(start + r) * c..(start + r + 1) * c]);
                }
            }
            for (i, (layer, act)) in self.layers.iter().enumerate() {
                let [even, odd] = &mut bufs;
                let (out, prev) = if i % 2 == 0 { (even, &*odd) } else { (odd, &*even) };
                let (x, x_rs) = if i == 0 { (&input[..], l + c) } else { (&prev[..], self.layers[i - 1].0.fan_out) };
                layer.forward(&self.theta, rows, x, x_rs, &mut out[..rows * layer.fan_out], *act, None);
            }
            let logits = &bufs[(self.layers.len() - 1) % 2][..rows * IMAGE_PIXELS];
            let out = &mut images[start * IMAGE_PIXELS..(start + rows) * IMAGE_PIXELS];
            if self.cfg.kind.family() == Family::Ae {
                // Tanh into [−1, 1], then back to pixels in [0, 1]
                out.iter_mut().zip(logits).for_each(|(p, &a)| *p = (a.tanh() + 1.0) * 0.5);
            } else {
                out.iter_mut().zip(logits).for_each(|(p, &logit)| *p = sigmoid(logit));
            }
        }
        Ok(images)
    }

    /// `steps` images from z_a to z_b, as `Lab::interpolate` gives them.
    pub fn interpolate(&self, z_a: &[f32], z_b: &[f32], steps: usize, label: Option<u8>) -> Result<Vec<f32>> {
        interpolate_with(self.cfg.latent, z_a, z_b, steps, label, |z, y| self.sample(z, y))
    }
}

/// Checks a call's digit labels against the kind (one per row for a conditional model, none
/// otherwise, each 0 to 9) and returns them one-hot, [n, 10] flattened, for a conditional model.
pub fn label_rows(cfg: &ModelConfig, labels: Option<&[u8]>, n: usize, what: &str) -> Result<Option<Vec<f32>>> {
    let kind = cfg.kind.name();
    match (cfg.kind.is_conditional(), labels) {
        (true, Some(l)) => {
            ensure!(l.len() == n, "{} digit labels for {n} {what}; give one label per row", l.len());
            Ok(Some(one_hot_rows(l)?))
        }
        (true, None) => bail!("a `{kind}` model needs a digit label (0 to 9) for each of the {what}"),
        (false, Some(_)) => bail!("a `{kind}` model takes no digit labels; only cvae and cgan models do"),
        (false, None) => Ok(None),
    }
}

/// `steps` images decoded along the straight line from z_a to z_b, both ends included:
/// z_t = (1 − t)·z_a + t·z_b (all of one digit for a conditional model). Each frame is decoded
/// on its own by `sample`, so frame k is bit-for-bit `sample(z_k)` (a batched product may sum in
/// another order) and the ends equal `sample(z_a)` and `sample(z_b)` exactly.
pub fn interpolate_with(
    latent: usize, z_a: &[f32], z_b: &[f32], steps: usize, label: Option<u8>,
    sample: impl Fn(&[f32], Option<&[u8]>) -> Result<Vec<f32>>,
) -> Result<Vec<f32>> {
    ensure!(z_a.len() == latent, "z_a has {} values; the latent size is {latent}", z_a.len());
    ensure!(z_b.len() == latent, "z_b has {} values; the latent size is {latent}", z_b.len());
    ensure!((2..=1000).contains(&steps), "interpolation steps {steps} is outside 2..=1000");
    let mut frames = Vec::with_capacity(steps * IMAGE_PIXELS);
    for s in 0..steps {
        let t = s as f32 / (steps - 1) as f32;
        let z: Vec<f32> = z_a.iter().zip(z_b).map(|(a, b)| (1.0 - t) * a + t * b).collect();
        frames.extend(sample(&z, label.as_ref().map(std::slice::from_ref))?);
    }
    Ok(frames)
}
