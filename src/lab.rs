//! The plain-Rust API that the browser binding (`wasm.rs`) and native code both use: a model of any
//! kind with its trainer, and every check on what comes in from outside, so bad input is an error, never a panic.

use crate::checkpoint::{self, Metadata, StoredDtype};
use crate::resume;
use crate::gpu::{Gpu, GpuBackend, GpuIo, PendingCopy};
use crate::input::{count_images, count_rows};
use crate::mnist::{Dataset, CLASSES, IMAGE_PIXELS};
use crate::model::{init_params, ModelConfig, Net};
use crate::sampler::{interpolate_with, label_rows};
pub use crate::train::{Fallback, Recovery};
use crate::train::{
    host_backend, LossParts, PendingSnapshot, PendingStep, Snapshot, StepReadback, StepStats,
    Trainer,
};
use crate::ae::PointNet;
use crate::config::{batch_one_hot, Recon, VaeObjective};
use crate::mnist::batch_images;
use crate::vae::{bce_with_logits, kl_to_unit_gaussian, VariationalNet};
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use anyhow::{anyhow, bail, ensure, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;

pub use crate::input::MAX_IMAGES_PER_CALL;


pub struct Lab {
    cfg: ModelConfig,
    params: VarMap,
    net: Net,
    meta: Metadata,
    /// Trains on the CPU, or on WebGPU when chosen; either way `params` hold the weights as the
    /// CPU last saw them (on WebGPU: as last copied back, ready to take over).
    trainer: Trainer,
    /// How many of the trainer's epochs `meta["epochs"]` already counts.
    folded_epochs: f64,
    /// Loaded from a decoder file: it samples, and refuses what needs the rest of the weights.
    decoder_only: bool,
    device: Device,
}

impl Lab {
    fn from_params(cfg: ModelConfig, params: VarMap, meta: Metadata, seed: u64) -> Result<Self> {
        let device = Device::Cpu;
        let net = Net::new(cfg, &params, &device)?;
        let trainer = Trainer::new(host_backend(cfg, &params, device.clone())?, seed);
        Ok(Self { cfg, params, net, meta, trainer, folded_epochs: 0.0, decoder_only: false, device })
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
        let mut ck = checkpoint::load(bytes, &Device::Cpu)?;
        resume::forget_run(&mut ck.meta); // a saved run loaded as plain weights keeps none of its trainer's entries
        // The file's epochs (a PyTorch file records none) are where a decaying rate goes on from.
        let epochs = ck.meta.get("epochs").and_then(|e| e.parse::<f64>().ok()).filter(|e| e.is_finite() && *e >= 0.0);
        let mut lab = Self::from_params(ck.cfg, ck.params, ck.meta, 0)?;
        lab.trainer.set_prior_epochs(epochs.unwrap_or(0.0))?;
        lab.decoder_only = ck.decoder_only;
        Ok(lab)
    }

    /// Whether this model was loaded from a decoder file (`checkpoint::save_decoder`): it samples
    /// and interpolates, and refuses to encode, train or save until the whole file is loaded.
    pub fn decoder_only(&self) -> bool {
        self.decoder_only
    }

    fn whole(&self, what: &str) -> Result<()> {
        ensure!(
            !self.decoder_only,
            "this model was loaded from its decoder alone, so it cannot {what}; load the whole weights file for that"
        );
        Ok(())
    }

    /// The decoder alone, for a page's first digits (`checkpoint::save_decoder`).
    pub fn save_decoder(&self, dtype: StoredDtype) -> Result<Vec<u8>> {
        self.published()?;
        checkpoint::save_decoder(&self.cfg, &self.params, &self.metadata(), dtype)
    }

    /// `params` brought up to date for saving: refused while a device's steps are not read back.
    fn published(&self) -> Result<()> {
        let pending = self.trainer.unsynced_steps();
        ensure!(pending == 0, "{pending} steps trained on WebGPU are not read back yet; sync first");
        self.trainer.cpu().publish()
    }

    pub fn config(&self) -> ModelConfig {
        self.cfg
    }

    /// The model over `params`, brought up to date with the trainer's weights first.
    fn net(&self) -> Result<&Net> {
        self.trainer.cpu().publish()?;
        Ok(&self.net)
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
        let rows = label_rows(&self.cfg, labels, n, what)?;
        Ok(rows.map(|v| Tensor::from_vec(v, (n, CLASSES), &self.device)).transpose()?)
    }

    /// n latent vectors, flattened [n, latent] (and n digit labels for a conditional model)
    /// → n images, flattened [n, 784], in [0, 1]: the VAE's decoder or the GAN's generator.
    pub fn sample(&self, z: &[f32], labels: Option<&[u8]>) -> Result<Vec<f32>> {
        let n = count_rows(z, self.cfg.latent, "latent vectors", "the latent size")?;
        let y = self.labels_for(labels, n, "latent vectors")?;
        let z = Tensor::from_slice(z, (n, self.cfg.latent), &self.device)?;
        Ok(self.net()?.generate(&z, y.as_ref())?.flatten_all()?.to_vec1()?)
    }

    /// `steps` images decoded along the straight line from z_a to z_b, both ends included
    /// (`sampler::interpolate_with`: each frame is bit-for-bit `sample(z_k)`).
    pub fn interpolate(&self, z_a: &[f32], z_b: &[f32], steps: usize, label: Option<u8>) -> Result<Vec<f32>> {
        interpolate_with(self.cfg.latent, z_a, z_b, steps, label, |z, y| self.sample(z, y))
    }

    /// The VAE, the checked images x [n, 784] and labels y, and the posterior (μ, log σ²) of each
    /// image: what `encode` and `reconstruct` share for a VAE. `call` names the caller in the
    /// error a GAN gets.
    fn posterior(&self, images: &[f32], labels: Option<&[u8]>, call: &str) -> Result<Posterior<'_>> {
        let Net::Vae(vae) = self.encoder(call)? else {
            bail!("a `{}` model has no posterior; {call} of this kind goes through its code", self.cfg.kind.name());
        };
        let n = count_images(images)?;
        let y = self.labels_for(labels, n, "images")?;
        let x = Tensor::from_slice(images, (n, IMAGE_PIXELS), &self.device)?;
        let (mu, logvar) = vae.encode(&x, y.as_ref())?;
        Ok(Posterior { vae: vae.as_ref(), x, y, mu, logvar })
    }

    /// The model, when it has an encoder (a VAE or the autoencoder) and all its weights.
    fn encoder(&self, call: &str) -> Result<&Net> {
        let net = self.net()?;
        if matches!(net, Net::Gan(_)) {
            bail!("a `{}` model has no encoder; {call} works on the VAEs and the autoencoders", self.cfg.kind.name());
        }
        self.whole(call)?;
        Ok(net)
    }

    /// The autoencoder and the checked images [n, 784], or None for another kind.
    fn autoencoder_input(&self, images: &[f32], labels: Option<&[u8]>, call: &str) -> Result<Option<(&dyn PointNet, Tensor)>> {
        let Net::Ae(ae) = self.encoder(call)? else { return Ok(None) };
        let n = count_images(images)?;
        self.labels_for(labels, n, "images")?;
        Ok(Some((ae.as_ref(), Tensor::from_slice(images, (n, IMAGE_PIXELS), &self.device)?)))
    }

    /// Images, flattened [n, 784] in [0, 1] (and their digit labels for a cVAE) → posterior means
    /// and log-variances, each [n, latent]. A GAN has no encoder. An autoencoder's code is a
    /// point, not a distribution: its codes come back as the means, with log σ² = −∞ (σ = 0).
    pub fn encode(&self, images: &[f32], labels: Option<&[u8]>) -> Result<(Vec<f32>, Vec<f32>)> {
        if let Some((ae, x)) = self.autoencoder_input(images, labels, "encode")? {
            let code: Vec<f32> = ae.encode(&x)?.flatten_all()?.to_vec1()?;
            let logvar = vec![f32::NEG_INFINITY; code.len()];
            return Ok((code, logvar));
        }
        let p = self.posterior(images, labels, "encode")?;
        Ok((p.mu.flatten_all()?.to_vec1()?, p.logvar.flatten_all()?.to_vec1()?))
    }

    /// Images [n, 784] (and their digit labels for a cVAE) → their reconstructions [n, 784],
    /// decoded from the posterior means, and each image's loss: BCE of that reconstruction plus
    /// the KL term (the training loss with the noise at zero, so the figure is repeatable). An
    /// autoencoder's loss is its squared error summed over the pixels (in the [−1, 1] units it
    /// trains in), whichever loss it trained with.
    pub fn reconstruct(&self, images: &[f32], labels: Option<&[u8]>) -> Result<(Vec<f32>, Vec<f32>)> {
        if let Some((ae, x)) = self.autoencoder_input(images, labels, "reconstruct")? {
            let (loss, recon) = ae.reconstruction(&x, Recon::L2)?;
            return Ok((recon.flatten_all()?.to_vec1()?, loss.to_vec1()?));
        }
        let Posterior { vae, x, y, mu, logvar } = self.posterior(images, labels, "reconstruct")?;
        let logits = vae.decode_logits(&mu, y.as_ref())?;
        let loss = (bce_with_logits(&logits, &x)?.sum(1)? + kl_to_unit_gaussian(&mu, &logvar)?)?;
        let recon = candle_nn::ops::sigmoid(&logits)?;
        Ok((recon.flatten_all()?.to_vec1()?, loss.to_vec1()?))
    }

    pub fn set_dataset(&mut self, data: Dataset) -> Result<()> {
        self.whole("train")?;
        self.trainer.set_dataset(data)
    }

    /// One training step on the CPU, or natively on the GPU (waiting for it). In the browser a
    /// GPU's steps are asynchronous: `submit_step`, then `finish_step` on the readback.
    pub fn train_step(&mut self) -> Result<StepStats> {
        self.trainer.step()
    }

    /// `"webgpu"` or `"cpu"` (`Trainer::backend_name`): where `submit_step` trains.
    pub fn backend_name(&self) -> &'static str {
        self.trainer.backend_name()
    }

    fn gpu_backend(&self) -> Option<&GpuBackend> {
        self.trainer.device().and_then(|d| d.as_any().downcast_ref::<GpuBackend>())
    }

    fn gpu_backend_mut(&mut self) -> Option<&mut GpuBackend> {
        self.trainer.device_mut().and_then(|d| d.as_any_mut().downcast_mut::<GpuBackend>())
    }

    /// The GPU's adapter, when training there.
    pub fn gpu_adapter(&self) -> Option<&str> {
        self.gpu_backend().map(|g| g.gpu().adapter.as_str())
    }

    /// Moves training to `gpu`: the weights and Adam's state go up, the dataset too if one is set.
    pub fn use_gpu(&mut self, gpu: Gpu) -> Result<()> {
        self.whole("train")?;
        ensure!(self.trainer.device().is_none(), "this model already trains on WebGPU");
        let state = self.trainer.cpu().optimizer_state()?;
        // The device trains on from the trained weights, not a GAN generator's average.
        self.trainer.cpu().publish_trained()?;
        let backend = GpuBackend::new(gpu, self.cfg, &self.params, Some(&state))?;
        self.trainer.use_device(Box::new(backend))
    }

    /// Every how many steps the GPU's weights are copied back (what a lost device can cost; 50).
    pub fn set_sync_interval(&mut self, steps: u64) -> Result<()> {
        self.trainer.set_sync_interval(steps)
    }

    /// Queues the next training step: on WebGPU without waiting for it; on the CPU it runs now.
    /// Either way `finish_step` takes its readback.
    pub fn submit_step(&mut self) -> Result<PendingStep> {
        self.trainer.submit()
    }

    /// A submitted step's result. Every sync interval on WebGPU it carries the GPU's weights,
    /// which the CPU side takes over here (what sampling on the CPU, saving, and a fallback use).
    pub fn finish_step(&mut self, readback: StepReadback) -> Result<StepStats> {
        self.trainer.finish(readback)
    }

    /// Steps queued on the GPU and not yet finished.
    pub fn steps_in_flight(&self) -> usize {
        self.trainer.steps_in_flight()
    }

    /// Copies the GPU's weights out now; `finish_sync` takes them. Every queued step must have
    /// been finished first.
    pub fn begin_sync(&mut self) -> Result<Option<PendingSnapshot>> {
        self.trainer.begin_sync()
    }

    pub fn finish_sync(&mut self, snapshot: Snapshot) -> Result<()> {
        self.trainer.finish_sync(snapshot)
    }

    /// After the GPU device is lost (or to leave it): training continues on the CPU from the last
    /// weights read back, and the trainer goes back to that step too, so the steps after it are
    /// trained again on the same minibatches with the same random numbers.
    pub fn fall_back_to_cpu(&mut self) -> Result<Fallback> {
        self.trainer.fall_back_to_cpu()
    }

    /// After a diverged step: [`Trainer::recover`] (back to the last good weights, at half the
    /// learning rate), and onto the GPU again if training was there.
    pub fn recover(&mut self) -> Result<Recovery> {
        let gpu = self.gpu_backend().map(|g| g.gpu().clone());
        let recovery = self.trainer.recover()?;
        if let Some(gpu) = gpu {
            self.use_gpu(gpu)?;
        }
        Ok(recovery)
    }

    /// The GPU queue's traffic so far, when training there.
    pub fn gpu_io(&self) -> Option<GpuIo> {
        self.gpu_backend().map(|g| g.io())
    }

    /// Destroys the GPU device (the page's "Simulate a lost GPU", and tests of the fallback).
    pub fn lose_gpu_device(&self) -> Result<()> {
        let g = self.gpu_backend().ok_or_else(|| anyhow!("this model does not train on WebGPU"))?;
        g.gpu().lose_device();
        Ok(())
    }

    /// Decodes on the GPU when training there (`None`: decode with `sample`). Same checks as `sample`.
    /// A GAN whose samples come from its averaged generator decodes on the CPU, from the average
    /// as of the last copy out (the device holds only the trained weights).
    pub fn sample_on_gpu(&mut self, z: &[f32], labels: Option<&[u8]>) -> Result<Option<PendingCopy>> {
        if self.gpu_backend().is_none() || self.trainer.settings().average {
            return Ok(None);
        }
        let n = count_rows(z, self.cfg.latent, "latent vectors", "the latent size")?;
        self.labels_for(labels, n, "latent vectors")?;
        let Some(g) = self.gpu_backend_mut() else { return Ok(None) };
        Ok(Some(g.sample(z, labels)?))
    }

    /// A VAE's per-example loss over `data`, with fixed noise; an autoencoder's squared error
    /// per example (`loss` and `bce` both, `kl` 0). (A GAN has no such loss; the `eval` command
    /// measures its samples instead.)
    pub fn evaluate(&self, data: &Dataset) -> Result<LossParts> {
        self.whole("be evaluated")?;
        match self.net()? {
            Net::Vae(vae) => evaluate(vae.as_ref(), data, 0, &self.device),
            Net::Ae(ae) => evaluate_autoencoder(ae.as_ref(), data, &self.device),
            Net::Gan(_) => {
                bail!("a `{}` model has no test loss; measure its samples with the eval command", self.cfg.kind.name())
            }
        }
    }

    pub fn save(&self) -> Result<Vec<u8>> {
        self.save_as(StoredDtype::F32)
    }

    /// The whole run as one file (`resume.rs`): the weights, Adam's state, and the trainer's
    /// place, settings and random streams, so that `resume` goes on exactly from here.
    pub fn save_run(&self) -> Result<Vec<u8>> {
        self.whole("be saved as a training run")?;
        let trainer = self.trainer.state()?;
        // The metadata as `save` writes it (epochs counting this trainer's, so the file also loads
        // as plain weights whose decay goes on from there): it folds in all the trainer's epochs.
        let cpu = self.trainer.cpu();
        resume::write(&self.cfg, &cpu.snapshot()?, &self.metadata(), &trainer, self.trainer.epochs(), cpu.generator_average().as_ref())
    }

    /// A run saved by `save_run`, to go on with: hand over the same dataset (`set_dataset`) and
    /// the next step draws the minibatch and random numbers the saved run would have drawn next.
    pub fn resume(bytes: &[u8]) -> Result<Self> {
        let saved = resume::read(bytes, &Device::Cpu)?;
        let ck = saved.checkpoint;
        let device = Device::Cpu;
        let net = Net::new(ck.cfg, &ck.params, &device)?;
        let cpu = host_backend(ck.cfg, &ck.params, device.clone())?;
        let mut trainer = Trainer::resume(cpu, &saved.trainer, &saved.optimizer)?;
        if let Some(average) = &saved.average {
            trainer.restore_generator_average(average)?;
        }
        let folded_epochs = saved.folded_epochs;
        Ok(Self { cfg: ck.cfg, params: ck.params, net, meta: ck.meta, trainer, folded_epochs, decoder_only: false, device })
    }

    /// The weights as safetensors bytes in `dtype` (f16: half the size, for shipping).
    pub fn save_as(&self, dtype: StoredDtype) -> Result<Vec<u8>> {
        self.whole("be saved as a whole weights file")?;
        self.published()?;
        checkpoint::save(&self.cfg, &self.params, &self.metadata(), dtype)
    }
}

/// A VAE's encoding of checked images: see [`Lab::posterior`].
struct Posterior<'a> {
    vae: &'a dyn VariationalNet,
    x: Tensor,
    y: Option<Tensor>,
    mu: Tensor,
    logvar: Tensor,
}

/// An autoencoder's squared error per example over a whole dataset, in batches of 1,000.
fn evaluate_autoencoder(ae: &dyn PointNet, data: &Dataset, device: &Device) -> Result<LossParts> {
    ensure!(!data.is_empty(), "cannot evaluate on an empty dataset");
    let indices: Vec<usize> = (0..data.len()).collect();
    let mut sum = 0f64;
    for chunk in indices.chunks(1000) {
        let (loss, _) = ae.reconstruction(&batch_images(data, chunk, device)?, Recon::L2)?;
        sum += loss.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let loss = (sum / data.len() as f64) as f32;
    Ok(LossParts { loss, bce: loss, kl: 0.0 })
}

/// A VAE's per-example loss over a whole dataset, with noise from `seed` (PyTorch's example also
/// samples z when it tests), in batches of 1,000.
fn evaluate(vae: &dyn VariationalNet, data: &Dataset, seed: u64, device: &Device) -> Result<LossParts> {
    ensure!(!data.is_empty(), "cannot evaluate on an empty dataset");
    let mut rng = StdRng::seed_from_u64(seed);
    let cfg = vae.config();
    let (mut bce, mut kl) = (0f64, 0f64);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(1000) {
        let x = batch_images(data, chunk, device)?;
        let noise: Vec<f32> = (0..chunk.len() * cfg.latent).map(|_| rng.sample(StandardNormal)).collect();
        let eps = Tensor::from_vec(noise, (chunk.len(), cfg.latent), device)?;
        let labels: Vec<u8> = chunk.iter().map(|&i| data.labels[i]).collect();
        let y = batch_one_hot(&cfg, &labels, device)?;
        // the plain VAE's loss (BCE + KL), whatever the model trained with, so files compare
        let loss = vae.loss(&x, y.as_ref(), &eps, VaeObjective::default())?;
        bce += loss.bce.to_scalar::<f32>()? as f64 * chunk.len() as f64;
        kl += loss.kl.to_scalar::<f32>()? as f64 * chunk.len() as f64;
    }
    let n = data.len() as f64;
    Ok(LossParts { loss: ((bce + kl) / n) as f32, bce: (bce / n) as f32, kl: (kl / n) as f32 })
}
