//! The reference training backend: candle's autograd for the backward pass, then `adam.rs`'s Adam,
//! each model as its module writes it. The CPU backend (`cpu.rs`, the engine) is held to it by the
//! tests, for every kind.

use crate::adam::{Adam, AdamConfig};
use crate::backend::{
    diverged, Batch, GanLosses, HostBackend, LossParts, OptimizerState, PendingSnapshot, PendingStep, Snapshot, StepLosses,
    StepReadback, TrainBackend,
};
use crate::gan::{conditional_discriminator_loss, discriminator_loss, generator_loss, Discriminator, DropoutKeep, Gan};
use crate::mnist::batch_images;
use crate::model::{one_hot, ModelConfig, Net};
use crate::ae::PointNet;
use crate::vae::VariationalNet;
use std::sync::Arc;
use anyhow::{anyhow, bail, ensure, Result};
use candle_core::{backprop::GradStore, DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::any::Any;
use std::collections::HashMap;


/// `loss`'s value and its gradients, refused (so nothing changes) when either is not finite: a
/// finite loss can still have an overflowing gradient, and stepping on it would poison every
/// weight. `whose` names the network in the error ("the discriminator's loss"); `None` for a VAE.
fn checked_backward(loss: &Tensor, opt: &Adam, whose: Option<&str>) -> Result<(f32, GradStore)> {
    let name = |part: &str| whose.map_or_else(|| format!("the {part}"), |w| format!("the {w}'s {part}"));
    let value = loss.to_scalar::<f32>()?;
    if !value.is_finite() {
        return Err(diverged(&name("loss"), value));
    }
    let grads = loss.backward()?;
    if !opt.grad_sq_norm(&grads)?.is_finite() {
        return Err(diverged(&name("gradient"), "not finite"));
    }
    Ok((value, grads))
}

/// candle on the CPU (wasm SIMD in the browser): autograd for the backward pass, then Adam. Its
/// parameters are the model's own (the `VarMap` every other part of the crate reads), so a step here
/// changes what the model samples, and a snapshot from another backend is written into them.
pub struct CandleBackend {
    cfg: ModelConfig,
    params: VarMap,
    model: CpuModel,
    device: Device,
    /// With `record_gradients`, the last step's gradients by parameter name (the parity tests').
    #[cfg(feature = "test-hooks")]
    pub record_gradients: bool,
    #[cfg(feature = "test-hooks")]
    pub last_gradients: HashMap<String, Vec<f32>>,
}

enum CpuModel {
    Vae { vae: Arc<dyn VariationalNet>, opt: Adam },
    Gan { gan: Gan, opt_g: Adam, opt_d: Adam },
    Ae { ae: Arc<dyn PointNet>, opt: Adam },
}

impl CandleBackend {
    /// Trains the model over `params` in place, with Adam's settings for the kind (until a step
    /// brings its own, `Batch::adam`).
    pub fn new(cfg: ModelConfig, params: &VarMap, device: Device) -> Result<Self> {
        let adam = AdamConfig::for_kind(cfg.kind);
        let model = match Net::new(cfg, params, &device)? {
            Net::Vae(vae) => CpuModel::Vae { vae, opt: Adam::new(Adam::vars_under(params, "")?, &adam)? },
            Net::Ae(ae) => CpuModel::Ae { ae, opt: Adam::new(Adam::vars_under(params, "")?, &adam)? },
            Net::Gan(gan) => CpuModel::Gan {
                gan,
                opt_g: Adam::new(Adam::vars_under(params, "generator.")?, &adam)?,
                opt_d: Adam::new(Adam::vars_under(params, "discriminator.")?, &adam)?,
            },
        };
        Ok(Self {
            cfg,
            params: params.clone(),
            model,
            device,
            #[cfg(feature = "test-hooks")]
            record_gradients: false,
            #[cfg(feature = "test-hooks")]
            last_gradients: HashMap::new(),
        })
    }

    fn optimizers(&self) -> Vec<&Adam> {
        match &self.model {
            CpuModel::Vae { opt, .. } | CpuModel::Ae { opt, .. } => vec![opt],
            CpuModel::Gan { opt_g, opt_d, .. } => vec![opt_d, opt_g],
        }
    }

    #[cfg(feature = "test-hooks")]
    fn optimizers_mut(&mut self) -> Vec<&mut Adam> {
        match &mut self.model {
            CpuModel::Vae { opt, .. } | CpuModel::Ae { opt, .. } => vec![opt],
            CpuModel::Gan { opt_g, opt_d, .. } => vec![opt_d, opt_g],
        }
    }

    #[cfg(feature = "test-hooks")]
    fn record(&mut self, grads: HashMap<String, Vec<f32>>, first: bool) {
        if self.record_gradients {
            if first {
                self.last_gradients.clear();
            }
            self.last_gradients.extend(grads);
        }
    }

    /// Adam alone on given gradients (by name): the parity tests' check of the optimiser.
    #[cfg(feature = "test-hooks")]
    pub fn apply_gradients(&mut self, grads: &HashMap<String, Vec<f32>>, learning_rate: f64) -> Result<()> {
        let device = self.device.clone();
        let mut opts = self.optimizers_mut();
        let updates = opts.iter().map(|o| o.propose_named(grads, learning_rate, &device)).collect::<Result<Vec<_>>>()?;
        for (opt, update) in opts.iter_mut().zip(updates) {
            opt.commit(update)?;
        }
        Ok(())
    }

    /// One step, now: forward, backward and Adam, all or nothing.
    pub fn run_step(&mut self, batch: &Batch, learning_rate: f64) -> Result<StepLosses> {
        match &mut self.model {
            CpuModel::Vae { opt, .. } | CpuModel::Ae { opt, .. } => opt.set_config(&batch.adam),
            CpuModel::Gan { opt_g, opt_d, .. } => [opt_g, opt_d].into_iter().for_each(|o| o.set_config(&batch.adam)),
        }
        let n = batch.indices.len();
        let x = batch_images(batch.data, batch.indices, &self.device)?;
        let labels = batch.labels();
        let y = crate::config::batch_one_hot(&self.cfg, &labels, &self.device)?;
        let noise = Tensor::from_slice(batch.noise, (n, self.cfg.latent), &self.device)?;
        #[cfg(feature = "test-hooks")]
        let mut recorded = Vec::new();
        let losses = match &mut self.model {
            CpuModel::Vae { vae, opt } => {
                let loss = vae.loss(&x, y.as_ref(), &noise, batch.vae)?;
                let (total, grads) = checked_backward(&loss.total, opt, None)?;
                #[cfg(feature = "test-hooks")]
                recorded.push(opt.named_grads(&grads)?);
                opt.step(&grads, learning_rate)?;
                StepLosses::Vae(LossParts {
                    loss: total,
                    bce: loss.bce.to_scalar::<f32>()?,
                    kl: loss.kl.to_scalar::<f32>()?,
                })
            }
            CpuModel::Ae { ae, opt } => {
                let loss = ae.loss(&x, batch.vae.recon)?;
                let (total, grads) = checked_backward(&loss, opt, None)?;
                #[cfg(feature = "test-hooks")]
                recorded.push(opt.named_grads(&grads)?);
                opt.step(&grads, learning_rate)?;
                StepLosses::Vae(LossParts { loss: total, bce: total, kl: 0.0 })
            }
            CpuModel::Gan { gan, opt_g, opt_d } => {
                let draws = batch.gan.ok_or_else(|| anyhow!("a GAN step needs its dropout draws in the batch"))?;
                let y = y.as_ref();
                let h = self.cfg.hidden;
                let masks = |keep: &DropoutKeep| keep.masks(n, h, &self.device);
                let fake = gan.generator.forward(&noise, y)?;
                // The discriminator's label, ×gain (`TrainSettings::label_gain`).
                let gain = batch.label_gain as f64;
                let d_y = y.map(|y| y * gain).transpose()?;
                let d_y = d_y.as_ref();
                // Discriminator half: real against a detached fake, so only D's weights get gradients.
                let real_logits = gan.discriminator.forward(&x, d_y, Some(&masks(&draws.real)?))?;
                let fake_logits = gan.discriminator.forward(&fake.detach(), d_y, Some(&masks(&draws.fake)?))?;
                let d_loss = match &draws.mismatched {
                    // Each real digit shown once more with a label it is not.
                    Some(m) if self.cfg.kind.is_conditional() => {
                        let wrong = (one_hot(&m.labels, &self.device)? * gain)?;
                        let mismatched_logits = gan.discriminator.forward(&x, Some(&wrong), Some(&masks(&m.keep)?))?;
                        conditional_discriminator_loss(&real_logits, &fake_logits, &mismatched_logits)?
                    }
                    None if !self.cfg.kind.is_conditional() => discriminator_loss(&real_logits, &fake_logits)?,
                    _ => bail!("a cGAN step needs mismatched labels in its draws, and only a cGAN step takes them"),
                };
                let (d_loss_value, d_grads) = checked_backward(&d_loss, opt_d, Some("discriminator"))?;
                #[cfg(feature = "test-hooks")]
                recorded.push(opt_d.named_grads(&d_grads)?);
                let d_update = opt_d.propose(&d_grads, learning_rate)?;
                // Generator half, judged by the discriminator as its update leaves it. Built from
                // plain tensors, that discriminator takes no gradient of its own.
                let vb = VarBuilder::from_tensors(opt_d.proposed_params(&d_update), DType::F32, &self.device);
                let next_d = Discriminator::new(self.cfg, vb.pp("discriminator"))?;
                let g_loss = generator_loss(&next_d.forward(&fake, d_y, Some(&masks(&draws.generator)?))?)?;
                let (g_loss_value, g_grads) = checked_backward(&g_loss, opt_g, Some("generator"))?;
                #[cfg(feature = "test-hooks")]
                recorded.push(opt_g.named_grads(&g_grads)?);
                let g_update = opt_g.propose(&g_grads, learning_rate)?;
                opt_d.commit(d_update)?;
                opt_g.commit(g_update)?;
                let mean_verdict = |l: &Tensor| -> Result<f32> {
                    Ok(candle_nn::ops::sigmoid(l)?.mean_all()?.to_scalar::<f32>()?)
                };
                StepLosses::Gan(GanLosses {
                    d_loss: d_loss_value,
                    g_loss: g_loss_value,
                    d_real: mean_verdict(&real_logits)?,
                    d_fake: mean_verdict(&fake_logits)?,
                })
            }
        };
        #[cfg(feature = "test-hooks")]
        for (i, grads) in recorded.into_iter().enumerate() {
            self.record(grads, i == 0);
        }
        Ok(losses)
    }
}

impl TrainBackend for CandleBackend {
    fn name(&self) -> &'static str {
        "candle"
    }

    /// Runs the step before returning: its readback is ready at once. A step that fails here
    /// fails `submit`, so it is never counted.
    fn submit(&mut self, batch: &Batch, learning_rate: f64) -> Result<PendingStep> {
        Ok(PendingStep::done(self.run_step(batch, learning_rate)?))
    }

    fn finish(&mut self, readback: StepReadback) -> Result<StepLosses> {
        readback.into_losses("candle")
    }

    fn snapshot_now(&mut self) -> Result<PendingSnapshot> {
        Ok(PendingSnapshot::ready(self.snapshot()?))
    }

    fn optimizer_state(&self) -> Result<OptimizerState> {
        let mut state = OptimizerState::default();
        for opt in self.optimizers() {
            let (t, moments) = opt.state()?;
            state.t = t;
            state.moments.extend(moments);
        }
        Ok(state)
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        match &mut self.model {
            CpuModel::Vae { opt, .. } | CpuModel::Ae { opt, .. } => opt.set_state(state),
            CpuModel::Gan { opt_g, opt_d, .. } => {
                opt_d.set_state(state)?;
                opt_g.set_state(state)
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The convolutional kinds train here in the trainer and the tab; its parameters are the model's
/// own, so there is nothing to publish.
impl HostBackend for CandleBackend {
    fn config(&self) -> ModelConfig {
        self.cfg
    }

    fn publish(&self) -> Result<()> {
        Ok(())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        // Everything checked and built first, so a bad snapshot changes nothing.
        let vars = self.params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        let mut next = Vec::with_capacity(vars.len());
        for (name, var) in vars.iter() {
            let values = snapshot.params.get(name).ok_or_else(|| anyhow!("the snapshot has no {name}"))?;
            ensure!(values.len() == var.elem_count(), "the snapshot's {name} has {} values", values.len());
            next.push((var.clone(), Tensor::from_slice(values, var.shape(), &self.device)?));
        }
        drop(vars);
        self.set_optimizer_state(&snapshot.optimizer)?;
        for (var, value) in next {
            var.set(&value)?;
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let vars = self.params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        let params = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().flatten_all()?.to_vec1::<f32>()?)))
            .collect::<Result<HashMap<_, _>>>()?;
        drop(vars);
        Ok(Snapshot { params, optimizer: self.optimizer_state()? })
    }
}
