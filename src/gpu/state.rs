//! The model's training state on the GPU: θ, the gradients, Adam's moments, Adam's proposals, the
//! step's stats and the control words; how Adam is recorded over it; and its copy out (a `Synced`).

use crate::layout::ParamLayout;
use super::params::{self, control, stats};
use super::recorder::{AdamBuffers, Recorder};
use super::Gpu;
use crate::adam::OptimizerState;
use crate::adam::AdamConfig;
use crate::config::ModelConfig;
use crate::backend::Snapshot;
use anyhow::{ensure, Result};

pub(crate) struct TrainState {
    pub theta: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    pub next_theta: wgpu::Buffer,
    pub next_m: wgpu::Buffer,
    pub next_v: wgpu::Buffer,
    /// A step's stats (params::stats).
    pub stats: wgpu::Buffer,
    /// Across steps: halted, and steps committed (params::control).
    pub control: wgpu::Buffer,
    /// This step's learning rate, bias corrections and Adam's constants, written before each submission.
    pub step: wgpu::Buffer,
    /// Adam's constants: the kind's until a step brings its own (`Batch::adam`).
    adam: AdamConfig,
}

impl TrainState {
    /// The state with weights `theta`, moments `m`, `v` and `committed` steps behind it.
    pub fn new(gpu: &Gpu, cfg: &ModelConfig, theta: &[f32], m: &[f32], v: &[f32], committed: u64) -> Self {
        let bytes = (theta.len() * 4) as u64;
        let mut control_words = [0u32; control::LEN];
        control_words[control::COMMITTED as usize] = committed as u32;
        Self {
            theta: gpu.storage_init("theta", bytemuck::cast_slice(theta)),
            grads: gpu.storage("grads", bytes),
            m: gpu.storage_init("m", bytemuck::cast_slice(m)),
            v: gpu.storage_init("v", bytemuck::cast_slice(v)),
            next_theta: gpu.storage("next_theta", bytes),
            next_m: gpu.storage("next_m", bytes),
            next_v: gpu.storage("next_v", bytes),
            stats: gpu.storage("stats", (stats::LEN * 4) as u64),
            control: gpu.storage_init("control", bytemuck::cast_slice(&control_words)),
            step: gpu.uniform("step", bytemuck::bytes_of(&params::Step::default())),
            adam: AdamConfig::for_kind(cfg.kind),
        }
    }

    fn adam_buffers(&self) -> AdamBuffers<'_> {
        AdamBuffers {
            theta: &self.theta,
            grads: &self.grads,
            m: &self.m,
            v: &self.v,
            next_theta: &self.next_theta,
            next_m: &self.next_m,
            next_v: &self.next_v,
        }
    }

    /// Adam's proposal over the parameters under `prefix` ("": all of them).
    pub fn record_adam(&self, r: &mut Recorder, layout: &ParamLayout, prefix: &str) {
        let (off, count) = layout.range(prefix);
        r.adam_propose(params::Adam { off, count, ..Default::default() }, &self.step, &self.adam_buffers());
    }

    /// The commit of every parameter's proposal, if the step passed its check.
    pub fn record_commit(&self, r: &mut Recorder, layout: &ParamLayout) {
        r.adam_commit(params::Adam { off: 0, count: layout.total as u32, ..Default::default() }, &self.stats, &self.adam_buffers());
    }

    /// The step uniform for Adam's step `t`: lr, the bias corrections 1/(1 − βᵗ) (in f64 as
    /// candle computes them) and `adam`'s constants (or, with none, the last step's).
    pub fn write_step(&mut self, gpu: &Gpu, learning_rate: f64, t: u64, adam: Option<AdamConfig>) {
        if let Some(adam) = adam {
            self.adam = adam;
        }
        let a = self.adam;
        let scale_m = 1f64 / (1f64 - a.beta1.powi(t as i32));
        let scale_v = 1f64 / (1f64 - a.beta2.powi(t as i32));
        let step = params::Step {
            lr: learning_rate as f32,
            scale_m: scale_m as f32,
            scale_v: scale_v as f32,
            eps: a.eps as f32,
            beta1: a.beta1 as f32,
            one_minus_beta1: (1.0 - a.beta1) as f32,
            beta2: a.beta2 as f32,
            one_minus_beta2: (1.0 - a.beta2) as f32,
        };
        gpu.queue.write_buffer(&self.step, 0, bytemuck::bytes_of(&step));
    }

    /// Records a copy of θ, m, v and the control words (in that order) into a new readback buffer.
    /// `lead` bytes are left free at the start of the buffer, for what the caller reads back with
    /// the copy (a step's stats), so one mapping brings both.
    pub fn copy_out(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, total: usize, lead: u64) -> wgpu::Buffer {
        let bytes = total as u64 * 4;
        let control_bytes = (control::LEN * 4) as u64;
        let buf = gpu.readback("weights copy", lead + 3 * bytes + control_bytes);
        for (i, src) in [&self.theta, &self.m, &self.v].into_iter().enumerate() {
            encoder.copy_buffer_to_buffer(src, 0, &buf, lead + i as u64 * bytes, bytes);
        }
        encoder.copy_buffer_to_buffer(&self.control, 0, &buf, lead + 3 * bytes, control_bytes);
        buf
    }
}

/// The weights and Adam's state as the GPU copied them out (flat, in the layout's order).
#[derive(Clone)]
pub(crate) struct Synced {
    /// Steps committed on the GPU when the copy was made (Adam's t).
    pub committed: u64,
    pub theta: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

impl Synced {
    /// Parses a `copy_out` buffer's floats.
    pub fn parse(all: &[f32], total: usize) -> Result<Synced> {
        ensure!(all.len() >= 3 * total + control::LEN, "a short weights copy");
        Ok(Synced {
            committed: all[3 * total + control::COMMITTED as usize].to_bits() as u64,
            theta: all[..total].to_vec(),
            m: all[total..2 * total].to_vec(),
            v: all[2 * total..3 * total].to_vec(),
        })
    }

    /// By parameter name, as every backend hands weights over.
    pub fn snapshot(&self, layout: &ParamLayout) -> Snapshot {
        Snapshot { params: layout.split(&self.theta), optimizer: OptimizerState::from_flat(layout, self.committed, &self.m, &self.v) }
    }
}
