//! Decoding latent vectors on the GPU with its current weights: the VAE's decoder
//! (z (+ label) → fc3 → ReLU → fc4 → sigmoid) or the GAN's generator
//! (z (+ label) → fc1 → LeakyReLU → fc2 → LeakyReLU → fc3 → sigmoid), recorded per batch size.

use crate::layout::ParamLayout;
use super::params::act;
use super::recorder::{rows, Recorded, Recorder};
use super::Gpu;
use crate::mnist::IMAGE_PIXELS;
use crate::config::ModelConfig;
use anyhow::Result;

/// The recorded dispatches that decode `n` latent vectors, and their buffers.
pub(crate) struct SamplePlan {
    pub recorded: Recorded,
    _activations: Vec<wgpu::Buffer>,
    /// In: z [n, latent] and labels [n] (u32); out: images [n, 784].
    pub z: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    pub out: wgpu::Buffer,
}

pub(crate) fn record(gpu: &Gpu, cfg: &ModelConfig, layout: &ParamLayout, theta: &wgpu::Buffer, n: usize) -> Result<SamplePlan> {
    let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
    let buf = |name: &str, len: usize| gpu.storage(name, (len * 4) as u64);
    let z = buf("sample z", n * l);
    let labels = buf("sample labels", n);
    // Row r's label is labels[r]: the latent input reads labels through an index.
    let idx = gpu.storage_init("sample rows", bytemuck::cast_slice(&(0..n as u32).collect::<Vec<u32>>()));
    let zc = buf("sample z+label", n * (l + c));
    let out = buf("samples", n * p);
    let mut r = Recorder::new(gpu)?;
    r.latent_input((n, l, l + c), &labels, &idx, &z, &zc);
    let layer = |name: &str| layout.layer(cfg, name);
    let mut acts = vec![idx];
    if cfg.kind.is_gan() {
        let (f1, f2, f3) = (layer("generator.fc1")?, layer("generator.fc2")?, layer("generator.fc3")?);
        let (h1, h2) = (buf("sample h1", n * h), buf("sample h2", n * 2 * h));
        r.linear_forward(n, rows(&zc, 0, l + c), f1, theta, &h1, act::LEAKY, None);
        r.linear_forward(n, rows(&h1, 0, h), f2, theta, &h2, act::LEAKY, None);
        r.linear_forward(n, rows(&h2, 0, 2 * h), f3, theta, &out, act::SIGMOID, None);
        acts.extend([h1, h2]);
    } else {
        let (f3, f4) = (layer("fc3")?, layer("fc4")?);
        let h3 = buf("sample h3", n * h);
        r.linear_forward(n, rows(&zc, 0, l + c), f3, theta, &h3, act::RELU, None);
        r.linear_forward(n, rows(&h3, 0, h), f4, theta, &out, act::SIGMOID, None);
        acts.push(h3);
    }
    acts.push(zc);
    Ok(SamplePlan { recorded: r.finish(), _activations: acts, z, labels, out })
}
