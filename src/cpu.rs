//! The CPU training backend: the engine (`engine/`) behind the training seam. Its parameters live
//! in the engine's flat buffers; the model's own `VarMap` (what sampling, encoding and saving
//! read) is brought up to date from them when read (`publish`), not after every step, since a copy
//! of every weight would cost a tenth of a small step.

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
            params: params.clone(),
            stale: Cell::new(false),
            device,
            #[cfg(feature = "test-hooks")]
            record_gradients: false,
            #[cfg(feature = "test-hooks")]
            last_gradients: HashMap::new(),
        })
    }

    /// Where the engine's steps' time has gone so far.
    pub fn phases(&self) -> crate::engine::clock::PhaseTimes {
        self.engine.phases
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
        self.stale.set(true);
        #[cfg(feature = "test-hooks")]
        if self.record_gradients {
            self.last_gradients = self.engine.layout.split(&self.engine.grad);
        }
        Ok(losses)
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
        let vars = self.params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        for (name, shape, off) in &self.engine.layout.entries {
            let var = vars.get(name).ok_or_else(|| anyhow!("the model has no {name}"))?;
            let n: usize = shape.iter().product();
            var.set(&Tensor::from_slice(&self.engine.theta[*off..off + n], shape.as_slice(), &self.device)?)?;
        }
        self.stale.set(false);
        Ok(())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        // Everything checked and built first, so a bad snapshot changes nothing.
        let layout = &self.engine.layout;
        let theta = layout.join("the snapshot", |name| snapshot.params.get(name))?;
        let (m, v) = snapshot.optimizer.flat_moments(layout)?;
        self.engine.theta = theta;
        (self.engine.moments.m, self.engine.moments.v, self.engine.t) = (m, v, snapshot.optimizer.t);
        self.stale.set(true);
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot { params: self.engine.layout.split(&self.engine.theta), optimizer: self.optimizer_state()? })
    }
}
