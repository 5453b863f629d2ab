//! A recorded training step at one batch size, with the buffers it uploads into, and the small
//! cache of recordings a backend keeps (steps and samples alike: each holds its activations).

use crate::layout::ParamLayout;
use super::recorder::Recorded;
use super::state::TrainState;
use super::Gpu;
use crate::config::ModelConfig;

/// Recordings kept per cache. Two batch sizes are usual (the batch, and an epoch's short last
/// one); keep a few, not every one.
const PLANS_KEPT: usize = 4;

/// What a step graph is recorded over: the model, its state on the GPU and the dataset there.
pub(crate) struct StepGraph<'a> {
    pub gpu: &'a Gpu,
    pub cfg: &'a ModelConfig,
    pub layout: &'a ParamLayout,
    pub state: &'a TrainState,
    pub images: &'a wgpu::Buffer,
    pub labels: &'a wgpu::Buffer,
}

impl StepGraph<'_> {
    /// A scratch buffer of `len` floats.
    pub fn buffer(&self, name: &str, len: usize) -> wgpu::Buffer {
        self.gpu.storage(name, (len * 4) as u64)
    }
}

/// The recorded dispatches of one training step at one batch size, and that step's buffers.
pub(crate) struct StepPlan {
    pub recorded: Recorded,
    pub _activations: Vec<wgpu::Buffer>,
    /// This step's example indices (u32) and noise (f32), uploaded per step.
    pub idx: wgpu::Buffer,
    pub noise: wgpu::Buffer,
    /// GAN kinds: the dropout bits and the mismatched labels, uploaded per step.
    pub gan: Option<super::gan_step::GanInputs>,
}

/// Recordings by batch size, the oldest dropped first.
pub(crate) struct PlanCache<P> {
    plans: Vec<(usize, P)>,
}

impl<P> PlanCache<P> {
    pub fn new() -> Self {
        Self { plans: Vec::new() }
    }

    pub fn clear(&mut self) {
        self.plans.clear();
    }

    /// The recording for `rows`, made by `record` if there is none.
    pub fn get_or_record(&mut self, rows: usize, record: impl FnOnce() -> anyhow::Result<P>) -> anyhow::Result<&P> {
        let i = match self.plans.iter().position(|(r, _)| *r == rows) {
            Some(i) => i,
            None => {
                let plan = record()?;
                if self.plans.len() >= PLANS_KEPT {
                    self.plans.remove(0);
                }
                self.plans.push((rows, plan));
                self.plans.len() - 1
            }
        };
        Ok(&self.plans[i].1)
    }
}
