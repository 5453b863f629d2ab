//! The CPU training backend: the engine (`engine/`) behind the training seam. Its parameters live
//! in the engine's flat buffers; the model's own `VarMap` (what sampling, encoding and saving
//! read) is brought up to date from them when read (`publish`), not after every step, since a copy
//! of every weight would cost a tenth of a small step.
//!
//! For a GAN it can also keep the generator's weights averaged over the steps (Polyak averaging,
//! as an exponential moving average: Yazici et al., "The Unusual Effectiveness of Averaging in GAN
//! Training", 2019), which is what `publish` then writes for the generator: at the fast recipe's
//! rate the last step's weights jitter, and their average draws sharper digits (README, "Time to
//! digits"). Training reads only the trained weights; the average changes what is shown and saved.

use crate::adam::OptimizerState;
use crate::backend::{Batch, HostBackend, PendingSnapshot, PendingStep, Snapshot, StepLosses, StepReadback, TrainBackend};
use crate::engine::Engine;
use crate::model::ModelConfig;
use anyhow::{anyhow, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;

pub struct CpuBackend {
    engine: Engine,
    /// The generator's averaged weights, when kept (`set_generator_average`).
    average: Option<GeneratorAverage>,
    params: VarMap,
    /// Whether `params` lag behind the engine's parameters.
    stale: Cell<bool>,
    device: Device,
    /// With `record_gradients`, the last step's gradients by parameter name (the parity tests').
    #[cfg(feature = "test-hooks")]
    pub record_gradients: bool,
    #[cfg(feature = "test-hooks")]
    pub last_gradients: HashMap<String, Vec<f32>>,
}

impl CpuBackend {
    /// Trains the model over `params`, starting from their values, with Adam's settings for the
    /// kind; the params follow the training (`publish`).
    pub fn new(cfg: ModelConfig, params: &VarMap, device: Device) -> Result<Self> {
        let values = var_values(params)?;
        let layout = crate::layout::ParamLayout::new(&cfg);
        let theta = layout.join("the model's parameters", |name| values.get(name))?;
        Ok(Self {
            engine: Engine::new(cfg, theta)?,
            average: None,
            params: params.clone(),
            stale: Cell::new(false),
            device,
            #[cfg(feature = "test-hooks")]
            record_gradients: false,
            #[cfg(feature = "test-hooks")]
            last_gradients: HashMap::new(),
        })
    }

    /// Writes the engine's weights into the model's variables, the generator's from `average` where given.
    fn write_params(&self, average: Option<&GeneratorAverage>) -> Result<()> {
        let vars = self.params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        for (name, shape, off) in &self.engine.layout.entries {
            let var = vars.get(name).ok_or_else(|| anyhow!("the model has no {name}"))?;
            let n: usize = shape.iter().product();
            let values = match average.and_then(|a| a.slot(*off, n).map(|r| &a.values[r])) {
                Some(averaged) => averaged,
                None => &self.engine.theta[*off..off + n],
            };
            var.set(&Tensor::from_slice(values, shape.as_slice(), &self.device)?)?;
        }
        Ok(())
    }

    /// Where the engine's steps' time has gone so far.
    pub fn phases(&self) -> crate::engine::clock::PhaseTimes {
        self.engine.phases
    }

    /// Whether a GAN's discriminator takes real digits as 2x (`Engine::real_digits_as_2x`): the
    /// browser's way, which the tests hold to the native one.
    #[cfg(feature = "test-hooks")]
    pub fn set_real_digits_as_2x(&mut self, on: bool) {
        self.engine.real_digits_as_2x = on;
    }

    /// Adam alone on given gradients (by name, every parameter's): the parity tests' check of the optimiser.
    #[cfg(feature = "test-hooks")]
    pub fn apply_gradients(&mut self, grads: &HashMap<String, Vec<f32>>, learning_rate: f64) -> Result<()> {
        self.engine.grad = self.engine.layout.join("the gradients", |name| grads.get(name))?;
        self.engine.apply_gradient(learning_rate);
        self.stale.set(true);
        self.publish()
    }

    /// One step, now: forward, backward and Adam, all or nothing.
    pub fn run_step(&mut self, batch: &Batch, learning_rate: f64) -> Result<StepLosses> {
        let losses = self.engine.step(batch, learning_rate)?;
        if let Some(a) = &mut self.average {
            a.follow(&self.engine.theta, self.engine.t);
        }
        self.stale.set(true);
        #[cfg(feature = "test-hooks")]
        if self.record_gradients {
            self.last_gradients = self.engine.layout.split(&self.engine.grad);
        }
        Ok(losses)
    }
}

/// The generator's weights averaged over the steps: each step moves the average towards the new
/// weights by 1 − d, d = min(0.999, (1 + t)/(10 + t)) after t steps (TensorFlow's
/// `ExponentialMovingAverage` with `num_updates`, so the first steps' weights are soon forgotten).
/// At step t about the last t/9 steps weigh in (250 of a minute's 2,300 in the tab), at most the
/// last thousand.
struct GeneratorAverage {
    range: std::ops::Range<usize>,
    values: Vec<f32>,
    /// The step count the average is of.
    at: u64,
}

impl GeneratorAverage {
    pub const DECAY: f64 = 0.999;

    fn new(engine: &Engine) -> Self {
        let (off, count) = engine.layout.range("generator.");
        let range = off as usize..(off + count) as usize;
        Self { values: engine.theta[range.clone()].to_vec(), range, at: engine.t }
    }

    /// Where the `n` values at `off` in the flat buffers sit in `values`, if they are the generator's.
    fn slot(&self, off: usize, n: usize) -> Option<std::ops::Range<usize>> {
        self.range.contains(&off).then(|| off - self.range.start..off - self.range.start + n)
    }

    fn decay(t: u64) -> f64 {
        Self::DECAY.min((1.0 + t as f64) / (10.0 + t as f64))
    }

    /// Takes in the weights after step `t`. Weights more than one step on (a device's, copied out
    /// every sync interval) count as that many steps of these weights: d^k. Weights from an earlier
    /// step (a rollback past a divergence) start the average again from them, so none of the
    /// steps thrown away, which led to the divergence, stays in what is sampled and saved.
    fn follow(&mut self, theta: &[f32], t: u64) {
        if t < self.at {
            self.values.copy_from_slice(&theta[self.range.clone()]);
            self.at = t;
            return;
        }
        if t == self.at {
            return;
        }
        let keep = Self::decay(t).powi((t - self.at).min(i32::MAX as u64) as i32) as f32;
        for (a, &w) in self.values.iter_mut().zip(&theta[self.range.clone()]) {
            *a = keep * *a + (1.0 - keep) * w;
        }
        self.at = t;
    }
}

/// Every variable's values, flat, by name.
fn var_values(params: &VarMap) -> Result<HashMap<String, Vec<f32>>> {
    let vars = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
    vars.iter().map(|(name, var)| Ok((name.clone(), var.as_tensor().flatten_all()?.to_vec1::<f32>()?))).collect()
}

impl TrainBackend for CpuBackend {
    fn name(&self) -> &'static str {
        "cpu"
    }

    /// Runs the step before returning: its readback is ready at once. A step that fails here
    /// fails `submit`, so it is never counted.
    fn submit(&mut self, batch: &Batch, learning_rate: f64) -> Result<PendingStep> {
        Ok(PendingStep::done(self.run_step(batch, learning_rate)?))
    }

    fn finish(&mut self, readback: StepReadback) -> Result<StepLosses> {
        readback.into_losses("CPU")
    }

    fn snapshot_now(&mut self) -> Result<PendingSnapshot> {
        Ok(PendingSnapshot::ready(self.snapshot()?))
    }

    fn optimizer_state(&self) -> Result<OptimizerState> {
        let e = &self.engine;
        Ok(OptimizerState::from_flat(&e.layout, e.t, &e.moments.m, &e.moments.v))
    }

    fn set_optimizer_state(&mut self, state: &OptimizerState) -> Result<()> {
        let (m, v) = state.flat_moments(&self.engine.layout)?;
        (self.engine.moments.m, self.engine.moments.v, self.engine.t) = (m, v, state.t);
        if let Some(a) = &mut self.average {
            a.at = state.t; // the average is of the weights at this step count
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl HostBackend for CpuBackend {
    fn config(&self) -> ModelConfig {
        self.engine.cfg
    }

    /// Writes the engine's parameters into the model's `VarMap` if they have moved since the last
    /// time (not after every step, since a copy of every weight costs a tenth of a small step).
    fn publish(&self) -> Result<()> {
        if !self.stale.get() {
            return Ok(());
        }
        self.write_params(self.average.as_ref())?;
        self.stale.set(false);
        Ok(())
    }

    fn publish_trained(&self) -> Result<()> {
        self.write_params(None)?;
        // The next `publish` writes the average again.
        self.stale.set(self.average.is_some());
        Ok(())
    }

    fn generator_average(&self) -> Option<HashMap<String, Vec<f32>>> {
        let a = self.average.as_ref()?;
        let entries = self.engine.layout.entries.iter();
        Some(entries.filter_map(|(name, shape, off)| Some((name.clone(), a.values[a.slot(*off, shape.iter().product())?].to_vec()))).collect())
    }

    fn restore_generator_average(&mut self, average: &HashMap<String, Vec<f32>>) -> Result<()> {
        let layout = &self.engine.layout;
        let a = self.average.as_mut().ok_or_else(|| anyhow!("this model keeps no average of its generator"))?;
        let mut values = a.values.clone();
        for (name, shape, off) in &layout.entries {
            let n: usize = shape.iter().product();
            let Some(slot) = a.slot(*off, n) else { continue };
            let v = average.get(name).ok_or_else(|| anyhow!("the averaged generator has no `{name}`"))?;
            anyhow::ensure!(v.len() == n, "the averaged `{name}` holds {} values, not {n}", v.len());
            anyhow::ensure!(v.iter().all(|x| x.is_finite()), "the averaged `{name}` holds a value that is not finite");
            values[slot].copy_from_slice(v);
        }
        a.values = values;
        a.at = self.engine.t;
        self.stale.set(true);
        Ok(())
    }

    fn set_generator_average(&mut self, on: bool) -> bool {
        if on && !self.engine.cfg.kind.is_gan() {
            return false;
        }
        if on != self.average.is_some() {
            self.average = on.then(|| GeneratorAverage::new(&self.engine));
            self.stale.set(true);
        }
        true
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        // Everything checked and built first, so a bad snapshot changes nothing.
        let layout = &self.engine.layout;
        let theta = layout.join("the snapshot", |name| snapshot.params.get(name))?;
        let (m, v) = snapshot.optimizer.flat_moments(layout)?;
        self.engine.theta = theta;
        (self.engine.moments.m, self.engine.moments.v, self.engine.t) = (m, v, snapshot.optimizer.t);
        if let Some(a) = &mut self.average {
            a.follow(&self.engine.theta, self.engine.t);
        }
        self.stale.set(true);
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot { params: self.engine.layout.split(&self.engine.theta), optimizer: self.optimizer_state()? })
    }
}
