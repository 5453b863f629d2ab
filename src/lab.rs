//! The plain-Rust API that the browser binding (`wasm.rs`) and native code both use: a model of any
//! kind with its trainer, and every check on what comes in from outside, so bad input is an error, never a panic.

use crate::checkpoint::{self, Metadata};
use crate::mnist::{Dataset, IMAGE_PIXELS};
use crate::model::{init_params, one_hot, ModelConfig, Net};
use crate::train::{evaluate, CpuBackend, LossParts, StepStats, Trainer};
use crate::vae::{bce_with_logits, kl_to_unit_gaussian, Vae};
use anyhow::{bail, ensure, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

/// Most images one call may ask for (bounds memory: 10,000 × 784 floats is 31 MB).
pub const MAX_IMAGES_PER_CALL: usize = 10_000;

pub struct Lab {
    cfg: ModelConfig,
    params: VarMap,
    net: Net,
    meta: Metadata,
    trainer: Trainer,
    /// How many of the trainer's epochs `meta["epochs"]` already counts.
    folded_epochs: f64,
    device: Device,
}

impl Lab {
    fn from_params(cfg: ModelConfig, params: VarMap, meta: Metadata, seed: u64) -> Result<Self> {
        let device = Device::Cpu;
        let net = Net::new(cfg, &params, &device)?;
        // The dropout stream is seeded apart from the trainer's shuffling and noise.
        let backend = CpuBackend::new(cfg, &params, device.clone(), seed ^ 0x6472_6f70)?;
        let mut trainer = Trainer::new(Box::new(backend), cfg.latent, seed);
        trainer.set_learning_rate(cfg.kind.default_adam().0)?;
        Ok(Self { cfg, params, net, meta, trainer, folded_epochs: 0.0, device })
    }

    /// A new model with PyTorch's initialisation drawn from `seed`.
    pub fn fresh(cfg: ModelConfig, seed: u64) -> Result<Self> {
        let params = init_params(&cfg, seed, &Device::Cpu)?;
        let meta = Metadata::from([
            ("dataset".to_string(), "mnist".to_string()),
            ("epochs".to_string(), "0".to_string()),
            ("seed".to_string(), seed.to_string()),
        ]);
        Self::from_params(cfg, params, meta, seed)
    }

    /// A model from safetensors bytes (ours, or a PyTorch `state_dict`).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self> {
        let ck = checkpoint::load(bytes, &Device::Cpu)?;
        Self::from_params(ck.cfg, ck.params, ck.meta, 0)
    }

    pub fn config(&self) -> ModelConfig {
        self.cfg
    }

    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    pub fn trainer_mut(&mut self) -> &mut Trainer {
        &mut self.trainer
    }

    /// The metadata as it would be saved now: `epochs` counts the training done here too, and a
    /// `test_loss` measured before that training is dropped, since it no longer describes the weights.
    pub fn metadata(&self) -> Metadata {
        let mut meta = self.meta.clone();
        let extra = self.trainer.epochs() - self.folded_epochs;
        if extra > 0.0 {
            let before: f64 = meta.get("epochs").and_then(|e| e.parse().ok()).unwrap_or(0.0);
            meta.insert("epochs".into(), format!("{}", ((before + extra) * 1000.0).round() / 1000.0));
            meta.remove("test_loss");
        }
        meta
    }

    /// Records metadata to be saved with the weights.
    pub fn set_metadata(&mut self, key: &str, value: &str) {
        self.meta.insert(key.to_string(), value.to_string());
    }

    /// Records the test-set loss per example measured on the weights as they are now.
    pub fn record_test_loss(&mut self, loss: f32) {
        self.meta = self.metadata();
        self.folded_epochs = self.trainer.epochs();
        self.meta.insert("test_loss".into(), format!("{loss:.3}"));
    }

    /// The one-hot labels a conditional model needs for `n` rows; `None` for other kinds.
    fn labels_for(&self, labels: Option<&[u8]>, n: usize, what: &str) -> Result<Option<Tensor>> {
        let kind = self.cfg.kind.name();
        match (self.cfg.kind.is_conditional(), labels) {
            (true, Some(l)) => {
                ensure!(l.len() == n, "{} digit labels for {n} {what}; give one label per row", l.len());
                Ok(Some(one_hot(l, &self.device)?))
            }
            (true, None) => bail!("a `{kind}` model needs a digit label (0 to 9) for each of the {what}"),
            (false, Some(_)) => bail!("a `{kind}` model takes no digit labels; only cvae and cgan models do"),
            (false, None) => Ok(None),
        }
    }

    /// n latent vectors, flattened [n, latent] (and n digit labels for a conditional model)
    /// → n images, flattened [n, 784], in [0, 1]: the VAE's decoder or the GAN's generator.
    pub fn sample(&self, z: &[f32], labels: Option<&[u8]>) -> Result<Vec<f32>> {
        let n = count_rows(z, self.cfg.latent, "latent vectors", "the latent size")?;
        let y = self.labels_for(labels, n, "latent vectors")?;
        let z = Tensor::from_slice(z, (n, self.cfg.latent), &self.device)?;
        Ok(self.net.generate(&z, y.as_ref())?.flatten_all()?.to_vec1()?)
    }

    /// `steps` images decoded along the straight line from z_a to z_b, both ends included:
    /// z_t = (1 − t)·z_a + t·z_b (all of one digit for a conditional model). Each frame is decoded
    /// on its own, so frame k is bit-for-bit `sample(z_k)` (a batched matmul may sum in another
    /// order) and the ends equal `sample(z_a)` and `sample(z_b)` exactly.
    pub fn interpolate(&self, z_a: &[f32], z_b: &[f32], steps: usize, label: Option<u8>) -> Result<Vec<f32>> {
        let l = self.cfg.latent;
        ensure!(z_a.len() == l, "z_a has {} values; the latent size is {l}", z_a.len());
        ensure!(z_b.len() == l, "z_b has {} values; the latent size is {l}", z_b.len());
        ensure!((2..=1000).contains(&steps), "interpolation steps {steps} is outside 2..=1000");
        let mut frames = Vec::with_capacity(steps * IMAGE_PIXELS);
        for s in 0..steps {
            let t = s as f32 / (steps - 1) as f32;
            let z: Vec<f32> = z_a.iter().zip(z_b).map(|(a, b)| (1.0 - t) * a + t * b).collect();
            frames.extend(self.sample(&z, label.as_ref().map(std::slice::from_ref))?);
        }
        Ok(frames)
    }

    /// The VAE, the checked images x [n, 784] and labels y, and the posterior (μ, log σ²) of each
    /// image: what `encode` and `reconstruct` share. `call` names the caller in the error a GAN gets.
    fn posterior(&self, images: &[f32], labels: Option<&[u8]>, call: &str) -> Result<Posterior<'_>> {
        let Net::Vae(vae) = &self.net else {
            bail!("a `{}` model has no encoder; {call} works on vae and cvae models", self.cfg.kind.name());
        };
        let n = count_images(images)?;
        let y = self.labels_for(labels, n, "images")?;
        let x = Tensor::from_slice(images, (n, IMAGE_PIXELS), &self.device)?;
        let (mu, logvar) = vae.encode(&x, y.as_ref())?;
        Ok(Posterior { vae, x, y, mu, logvar })
    }

    /// Images, flattened [n, 784] in [0, 1] (and their digit labels for a cVAE) → posterior means
    /// and log-variances, each [n, latent]. A GAN has no encoder.
    pub fn encode(&self, images: &[f32], labels: Option<&[u8]>) -> Result<(Vec<f32>, Vec<f32>)> {
        let p = self.posterior(images, labels, "encode")?;
        Ok((p.mu.flatten_all()?.to_vec1()?, p.logvar.flatten_all()?.to_vec1()?))
    }

    /// Images [n, 784] (and their digit labels for a cVAE) → their reconstructions [n, 784],
    /// decoded from the posterior means, and each image's loss: BCE of that reconstruction plus
    /// the KL term (the training loss with the noise at zero, so the figure is repeatable).
    pub fn reconstruct(&self, images: &[f32], labels: Option<&[u8]>) -> Result<(Vec<f32>, Vec<f32>)> {
        let Posterior { vae, x, y, mu, logvar } = self.posterior(images, labels, "reconstruct")?;
        let logits = vae.decode_logits(&mu, y.as_ref())?;
        let loss = (bce_with_logits(&logits, &x)?.sum(1)? + kl_to_unit_gaussian(&mu, &logvar)?)?;
        let recon = candle_nn::ops::sigmoid(&logits)?;
        Ok((recon.flatten_all()?.to_vec1()?, loss.to_vec1()?))
    }

    pub fn set_dataset(&mut self, data: Dataset) {
        self.trainer.set_dataset(data);
    }

    pub fn train_step(&mut self) -> Result<StepStats> {
        self.trainer.step()
    }

    /// A VAE's per-example loss over `data`, with fixed noise. (A GAN has no such loss; the
    /// `eval` command measures its samples instead.)
    pub fn evaluate(&self, data: &Dataset) -> Result<LossParts> {
        let Net::Vae(vae) = &self.net else {
            bail!("a `{}` model has no test loss; measure its samples with the eval command", self.cfg.kind.name());
        };
        evaluate(vae, data, 0, &self.device)
    }

    pub fn save(&self) -> Result<Vec<u8>> {
        checkpoint::save(&self.cfg, &self.params, &self.metadata())
    }
}

/// A VAE's encoding of checked images: see [`Lab::posterior`].
struct Posterior<'a> {
    vae: &'a Vae,
    x: Tensor,
    y: Option<Tensor>,
    mu: Tensor,
    logvar: Tensor,
}

/// How many rows of `width` values `values` holds, checking it is a whole, bounded, finite batch.
pub(crate) fn count_rows(values: &[f32], width: usize, what: &str, width_name: &str) -> Result<usize> {
    ensure!(!values.is_empty(), "no {what} given");
    ensure!(
        values.len() % width == 0,
        "{what}: {} values is not a multiple of {width_name} ({width})",
        values.len()
    );
    let n = values.len() / width;
    ensure!(n <= MAX_IMAGES_PER_CALL, "{n} {what} in one call; at most {MAX_IMAGES_PER_CALL}");
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!("{what}: value {i} is {}, not a finite number", values[i]);
    }
    Ok(n)
}

/// How many 28×28 images `images` holds, checking every pixel is a number in [0, 1].
pub(crate) fn count_images(images: &[f32]) -> Result<usize> {
    let n = count_rows(images, IMAGE_PIXELS, "images", "784 pixels (28×28)")?;
    if let Some(i) = images.iter().position(|p| !(0.0..=1.0).contains(p)) {
        bail!("image pixel {i} is {}; pixels must lie in [0, 1]", images[i]);
    }
    Ok(n)
}
