//! The GPU training backend: the state and dataset on the device, one step as one queue submission.
//!
//! The dataset is uploaded once; a step uploads only its example indices, its noise and, for a
//! GAN, the trainer's dropout flags (as bits) and mismatched labels, so both backends consume the
//! same numbers. One submission is the step's recorded graph (`vae_step.rs`, `gan_step.rs`: gather,
//! forward, loss, backward, Adam, check, commit) and a copy of the step's stats into a buffer the
//! host maps when it wants them, so steps queue behind each other without waiting for readback.
//!
//! Every `sync_interval` steps (`DEFAULT_SYNC_INTERVAL` unless set) the submission also copies the
//! weights and Adam's moments out; that copy is what training falls back to if the device is lost.

use super::device::{read_buffer, to_f32, PendingCopy};
use super::gan_step;
use crate::layout::ParamLayout;
use super::params::stats;
use super::plan::{PlanCache, StepGraph, StepPlan};
use super::sample::{self, SamplePlan};
use super::state::{Synced, TrainState};
use super::vae_step;
use super::Gpu;
use crate::adam::OptimizerState;
use crate::mnist::{Dataset, IMAGE_PIXELS};
use crate::config::{ModelConfig, VaeObjective};
use crate::backend::{
    Batch, GanLosses, LossParts, PendingSnapshot, PendingStep, Snapshot, StepLosses, StepReadback, TrainBackend,
};
use anyhow::{anyhow, bail, ensure, Result};
use candle_nn::VarMap;
use std::any::Any;
use std::sync::Arc;

/// The trainer's default: steps between copies of the weights out of the GPU.
pub use crate::backend::DEFAULT_SYNC_INTERVAL;

/// Queue submissions made, and bytes written to and copied out of the GPU, since the backend began.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GpuIo {
    pub submissions: u64,
    pub uploaded: u64,
    pub read_back: u64,
}

/// The training set on the GPU.
struct GpuDataset {
    images: wgpu::Buffer,
    labels: wgpu::Buffer,
    len: usize,
}

/// What a submitted step reads back: its stats and, at a sync step, the weights copy.
struct GpuReadback {
    stats: [f32; stats::LEN],
    synced: Option<Synced>,
}

pub struct GpuBackend {
    gpu: Gpu,
    cfg: ModelConfig,
    layout: Arc<ParamLayout>,
    state: TrainState,
    data: Option<GpuDataset>,
    plans: PlanCache<StepPlan>,
    /// The setting `plans` were recorded for.
    plans_for: PlanSetting,
    sample_plans: PlanCache<SamplePlan>,
    /// Steps committed, as last read back; steps submitted and not yet read back.
    committed: u64,
    in_flight: u64,
    /// A refused step was read back; the GPU holds every later step until the next submit clears it.
    halted: bool,
    sync_interval: u64,
    /// The weights copy the most recently finished step brought, until taken.
    snapshot: Option<Snapshot>,
    io: GpuIo,
}

impl GpuBackend {
    /// The model over `params` (and Adam's state, if training continues) on `gpu`.
    pub fn new(gpu: Gpu, cfg: ModelConfig, params: &VarMap, state: Option<&OptimizerState>) -> Result<Self> {
        // The WGSL graphs are the linear VAEs' and GANs' (`vae_step.rs`, `gan_step.rs`).
        if let Some(why) = cfg.kind.linear_only_refusal("the WebGPU backend") {
            anyhow::bail!("{why}");
        }
        anyhow::ensure!(
            cfg.kind.family() != crate::config::Family::Ae,
            "an `{}` model trains on the CPU: the WebGPU backend has the VAE and GAN steps only",
            cfg.kind.name()
        );
        let layout = ParamLayout::new(&cfg);
        let data = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        let theta = layout.join("the model", |name| {
            data.get(name).and_then(|var| var.as_tensor().flatten_all().ok()?.to_vec1::<f32>().ok())
        })?;
        drop(data);
        let (m, v) = match state {
            Some(s) => s.flat_moments(&layout)?,
            None => (vec![0f32; layout.total], vec![0f32; layout.total]),
        };
        let committed = state.map_or(0, |s| s.t);
        let state = TrainState::new(&gpu, &cfg, &theta, &m, &v, committed);
        gpu.check()?;
        Ok(Self {
            gpu,
            cfg,
            layout: Arc::new(layout),
            state,
            data: None,
            plans: PlanCache::new(),
            plans_for: PlanSetting::Vae(VaeObjective::default()),
            sample_plans: PlanCache::new(),
            committed,
            in_flight: 0,
            halted: false,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            snapshot: None,
            io: GpuIo::default(),
        })
    }

    /// The device (its adapter's name, `lose_device` for the fallback's tests).
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn config(&self) -> ModelConfig {
        self.cfg
    }

    /// Where each parameter sits in the GPU's flat buffers.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Steps submitted and not yet read back.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Queue traffic so far, for the benchmark.
    pub fn io(&self) -> GpuIo {
        self.io
    }

    pub fn sync_interval(&self) -> u64 {
        self.sync_interval
    }

    /// Decodes latent vectors [n, latent] (and labels, conditional kinds) with the GPU's current
    /// weights; `read` the result for images [n, 784]. Checked by the caller (`Lab`).
    pub fn sample(&mut self, z: &[f32], labels: Option<&[u8]>) -> Result<PendingCopy> {
        self.gpu.check()?;
        let l = self.cfg.latent;
        ensure!(!z.is_empty() && z.len().is_multiple_of(l), "{} values is not a whole number of latent vectors", z.len());
        let n = z.len() / l;
        if let Some(labels) = labels {
            ensure!(labels.len() == n, "{} labels for {n} latent vectors", labels.len());
        }
        let (gpu, cfg, layout, theta) = (&self.gpu, &self.cfg, &self.layout, &self.state.theta);
        let plan = self.sample_plans.get_or_record(n, || {
            let plan = sample::record(gpu, cfg, layout, theta, n)?;
            gpu.check()?;
            Ok(plan)
        })?;
        let q = &self.gpu.queue;
        q.write_buffer(&plan.z, 0, bytemuck::cast_slice(z));
        if let Some(labels) = labels {
            let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            q.write_buffer(&plan.labels, 0, bytemuck::cast_slice(&labels));
        }
        let bytes = (n * IMAGE_PIXELS * 4) as u64;
        let buf = self.gpu.readback("samples", bytes);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        plan.recorded.encode(&mut encoder);
        encoder.copy_buffer_to_buffer(&plan.out, 0, &buf, 0, bytes);
        q.submit([encoder.finish()]);
        self.io.submissions += 1;
        self.io.uploaded += (z.len() * 4 + labels.map_or(0, |l| l.len() * 4)) as u64;
        self.io.read_back += bytes;
        self.gpu.check()?;
        Ok(PendingCopy::new(self.gpu.clone(), buf))
    }

    /// The last step's gradients, by parameter name (for the parity tests).
    #[cfg(any(test, feature = "test-hooks"))]
    pub async fn read_gradients(&self) -> Result<std::collections::HashMap<String, Vec<f32>>> {
        let bytes = self.layout.total as u64 * 4;
        let buf = self.gpu.readback("gradients", bytes);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.state.grads, 0, &buf, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        let flat = PendingCopy::new(self.gpu.clone(), buf).read().await?;
        Ok(self.layout.split(&flat))
    }

    /// Adam alone on the given gradients (by name), committed unconditionally: the parity test's
    /// check that both backends' optimisers agree when fed the same numbers.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn apply_gradients(&mut self, grads: &std::collections::HashMap<String, Vec<f32>>, learning_rate: f64) -> Result<()> {
        use super::params::control;
        use super::recorder::Recorder;
        let flat = self.layout.join("the gradients", |name| grads.get(name))?;
        let q = &self.gpu.queue;
        q.write_buffer(&self.state.grads, 0, bytemuck::cast_slice(&flat));
        let mut step_stats = [0f32; stats::LEN];
        step_stats[stats::OK as usize] = 1.0;
        q.write_buffer(&self.state.stats, 0, bytemuck::cast_slice(&step_stats));
        let t = self.committed + self.in_flight + 1;
        self.state.write_step(&self.gpu, learning_rate, t, None);
        let mut r = Recorder::new(&self.gpu)?;
        self.state.record_adam(&mut r, &self.layout, "");
        self.state.record_commit(&mut r, &self.layout);
        let recorded = r.finish();
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        recorded.encode(&mut encoder);
        q.submit([encoder.finish()]);
        self.committed += 1;
        // No check kernel ran: count the step on the GPU as the check would have.
        q.write_buffer(&self.state.control, 4 * control::COMMITTED as u64, &(self.committed as u32).to_le_bytes());
        self.gpu.check()
    }
}

/// What a recorded step bakes in besides its row count: a VAE's objective, a GAN's label gain
/// (`Batch::label_gain`). The plan cache holds one setting's plans.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PlanSetting {
    Vae(VaeObjective),
    Gan { label_gain: f32 },
}

/// The recorded step for `n` rows, recorded now if the cache has none.
fn step_plan<'p>(plans: &'p mut PlanCache<StepPlan>, graph: &StepGraph, n: usize, setting: PlanSetting) -> Result<&'p StepPlan> {
    plans.get_or_record(n, || {
        let plan = match setting {
            PlanSetting::Gan { label_gain } => gan_step::record(graph, n, label_gain)?,
            PlanSetting::Vae(objective) => vae_step::record(graph, n, objective)?,
        };
        graph.gpu.check()?;
        Ok(plan)
    })
}

impl TrainBackend for GpuBackend {
    fn name(&self) -> &'static str {
        "webgpu"
    }

    /// Uploads the training set once; its images are gathered on the GPU from then on.
    fn set_dataset(&mut self, data: &Dataset) -> Result<()> {
        self.gpu.check()?;
        ensure!(!data.is_empty(), "the dataset is empty");
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let images = self.gpu.storage_init("dataset images", &data.images);
        let labels = self.gpu.storage_init("dataset labels", bytemuck::cast_slice(&labels));
        self.data = Some(GpuDataset { images, labels, len: data.len() });
        self.plans.clear(); // their bind groups name the old dataset
        self.gpu.check()
    }

    /// Queues one step. Adam's t for it is the steps committed so far plus those still in flight:
    /// a refused step halts every later one on the GPU, so that count is exact for every step that
    /// commits.
    fn submit(&mut self, batch: &Batch, learning_rate: f64) -> Result<PendingStep> {
        self.gpu.check()?;
        let Some(d) = &self.data else {
            bail!("no dataset on the GPU: hand one over with set_dataset before train_step");
        };
        // The trainer hands every dataset to its backend before the first batch of it.
        ensure!(d.len == batch.data.len(), "the batch comes from another dataset than the one on the GPU");
        let n = batch.indices.len();
        ensure!(n > 0, "an empty batch");
        ensure!(batch.noise.len() == n * self.cfg.latent, "{} noise values for {n} rows", batch.noise.len());
        let gan = self.cfg.kind.is_gan();
        ensure!(batch.gan.is_some() == gan, "a {} step {} dropout draws", self.cfg.kind.name(), if gan { "needs" } else { "takes no" });
        if self.halted {
            ensure!(self.in_flight == 0, "steps queued behind a refused one must be read back first");
            self.gpu.queue.write_buffer(&self.state.control, 0, bytemuck::cast_slice(&[0u32]));
            self.halted = false;
        }
        let t = self.committed + self.in_flight + 1;
        let sync = self.sync_interval > 0 && t.is_multiple_of(self.sync_interval);
        let graph = StepGraph {
            gpu: &self.gpu,
            cfg: &self.cfg,
            layout: &self.layout,
            state: &self.state,
            images: &d.images,
            labels: &d.labels,
        };
        let setting = if gan { PlanSetting::Gan { label_gain: batch.label_gain } } else { PlanSetting::Vae(batch.vae) };
        if setting != self.plans_for {
            self.plans.clear(); // recorded for another setting (steps in flight keep their buffers)
            self.plans_for = setting;
        }
        let plan = step_plan(&mut self.plans, &graph, n, setting)?;
        // Packed before anything is written, so draws of the wrong shape leave the queue untouched.
        let gan_uploads = match (&plan.gan, batch.gan) {
            (Some(inputs), Some(draws)) => Some((inputs, inputs.layout.pack(draws)?, inputs.layout.wrong_labels(draws)?)),
            _ => None,
        };
        let q = &self.gpu.queue;
        let idx: Vec<u32> = batch.indices.iter().map(|&i| i as u32).collect();
        q.write_buffer(&plan.idx, 0, bytemuck::cast_slice(&idx));
        q.write_buffer(&plan.noise, 0, bytemuck::cast_slice(batch.noise));
        let mut upload = (idx.len() * 4 + batch.noise.len() * 4 + 16) as u64;
        if let Some((inputs, bits, wrong)) = &gan_uploads {
            q.write_buffer(&inputs.masks, 0, bytemuck::cast_slice(bits));
            q.write_buffer(&inputs.wrong, 0, bytemuck::cast_slice(wrong));
            upload += (bits.len() * 4 + wrong.len() * 4) as u64;
        }
        self.state.write_step(&self.gpu, learning_rate, t, Some(batch.adam));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        plan.recorded.encode(&mut encoder);
        // The stats, and at a sync step the weights behind them, in one buffer: one mapping per
        // step, so steps' readbacks resolve in the order they were queued.
        let stats_bytes = (stats::LEN * 4) as u64;
        let copy = if sync {
            self.state.copy_out(&self.gpu, &mut encoder, self.layout.total, stats_bytes)
        } else {
            self.gpu.readback("step stats", stats_bytes)
        };
        encoder.copy_buffer_to_buffer(&self.state.stats, 0, &copy, 0, stats_bytes);
        let readback = copy.size();
        self.gpu.queue.submit([encoder.finish()]);
        self.gpu.check()?;
        self.in_flight += 1;
        self.io.submissions += 1;
        self.io.uploaded += upload;
        self.io.read_back += readback;
        let (gpu, total) = (self.gpu.clone(), self.layout.total);
        Ok(PendingStep(Box::pin(async move {
            let v = to_f32(&read_buffer(&gpu, &copy).await?);
            let mut stats = [0f32; stats::LEN];
            stats.copy_from_slice(&v[..stats::LEN]);
            let synced = if sync { Some(Synced::parse(&v[stats::LEN..], total)?) } else { None };
            Ok(StepReadback(Box::new(GpuReadback { stats, synced })))
        })))
    }

    /// Takes a step's readback: its losses, or the error that refused it (the weights unchanged).
    fn finish(&mut self, readback: StepReadback) -> Result<StepLosses> {
        let Ok(r) = readback.0.downcast::<GpuReadback>() else {
            bail!("the WebGPU backend was handed another backend's readback");
        };
        self.in_flight = self.in_flight.saturating_sub(1);
        let s = r.stats;
        self.committed = s[stats::COMMITTED as usize] as u64;
        if let Some(synced) = &r.synced {
            self.snapshot = Some(synced.snapshot(&self.layout));
        }
        let gan = self.cfg.kind.is_gan();
        let slot = |i: u32| s[i as usize];
        if slot(stats::OK) != 1.0 {
            self.halted = true;
            let (what, value) = if !slot(stats::LOSS).is_finite() {
                (if gan { "the discriminator's loss" } else { "the loss" }, slot(stats::LOSS).to_string())
            } else if !slot(stats::GRAD_SQ).is_finite() {
                (if gan { "the discriminator's gradient" } else { "the gradient" }, "not finite".to_string())
            } else if gan && !slot(stats::G_LOSS).is_finite() {
                ("the generator's loss", slot(stats::G_LOSS).to_string())
            } else if gan && !slot(stats::G_GRAD_SQ).is_finite() {
                ("the generator's gradient", "not finite".to_string())
            } else {
                ("an earlier step", "refused".to_string())
            };
            return Err(crate::backend::diverged(what, value));
        }
        Ok(if gan {
            StepLosses::Gan(GanLosses {
                d_loss: slot(stats::D_LOSS),
                g_loss: slot(stats::G_LOSS),
                d_real: slot(stats::D_REAL),
                d_fake: slot(stats::D_FAKE),
            })
        } else {
            StepLosses::Vae(LossParts { loss: slot(stats::LOSS), bce: slot(stats::BCE), kl: slot(stats::KL) })
        })
    }

    fn forget_oldest(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// 0: never copy the weights out on the way (only `snapshot_now` does).
    fn set_sync_interval(&mut self, steps: u64) {
        self.sync_interval = steps;
    }

    fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.snapshot.take()
    }

    /// Copies the weights and Adam's moments out now (after every queued step).
    fn snapshot_now(&mut self) -> Result<PendingSnapshot> {
        self.gpu.check()?;
        ensure!(self.in_flight == 0, "{} WebGPU steps are still queued; finish them first", self.in_flight);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        let buf = self.state.copy_out(&self.gpu, &mut encoder, self.layout.total, 0);
        self.gpu.queue.submit([encoder.finish()]);
        self.io.submissions += 1;
        self.io.read_back += buf.size();
        let (gpu, layout) = (self.gpu.clone(), self.layout.clone());
        Ok(PendingSnapshot(Box::pin(async move {
            let synced = Synced::parse(&to_f32(&read_buffer(&gpu, &buf).await?), layout.total)?;
            Ok(synced.snapshot(&layout))
        })))
    }

    /// Adam's state as it is on the device now (natively only: it waits for the copy; in the
    /// browser take it from `snapshot_now`). Every submitted step must have been finished first.
    fn optimizer_state(&self) -> Result<OptimizerState> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            ensure!(self.in_flight == 0, "{} WebGPU steps are still queued; finish them first", self.in_flight);
            let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
            let buf = self.state.copy_out(&self.gpu, &mut encoder, self.layout.total, 0);
            self.gpu.queue.submit([encoder.finish()]);
            let synced = Synced::parse(&to_f32(&pollster::block_on(read_buffer(&self.gpu, &buf))?), self.layout.total)?;
            Ok(synced.snapshot(&self.layout).optimizer)
        }
        #[cfg(target_arch = "wasm32")]
        bail!("in the browser the WebGPU backend's Adam state is read back asynchronously: use snapshot_now")
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        ensure!(self.in_flight == 0, "{} WebGPU steps are still queued; finish them first", self.in_flight);
        let (m, v) = state.flat_moments(&self.layout)?;
        let q = &self.gpu.queue;
        q.write_buffer(&self.state.m, 0, bytemuck::cast_slice(&m));
        q.write_buffer(&self.state.v, 0, bytemuck::cast_slice(&v));
        let mut control_words = [0u32; super::params::control::LEN];
        control_words[super::params::control::COMMITTED as usize] = state.t as u32;
        q.write_buffer(&self.state.control, 0, bytemuck::cast_slice(&control_words));
        self.committed = state.t;
        self.halted = false;
        self.gpu.check()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
