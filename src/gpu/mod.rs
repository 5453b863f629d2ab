//! The WebGPU backend: WGSL compute kernels run through `wgpu`, on the browser's WebGPU in the page
//! and on Vulkan natively (Mesa's lavapipe in the tests).
//!
//! - this file: getting a device (apart from the work, so tests can inject one), the one async
//!   readback helper, and the compiled kernels;
//! - `backend.rs`: the training backend (buffers, one step as one queue submission) and sampling;
//! - `*.wgsl`: one file per kernel family, each forward beside its backward, the formula on top.

pub mod backend;

use anyhow::{anyhow, bail, Context, Result};
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// The error of any call on a device that is gone: the page falls back to the CPU on it, so it is
/// recognised by type (`anyhow::Error::downcast_ref`), never by its message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceLost {
    pub reason: String,
}

impl std::fmt::Display for DeviceLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the WebGPU device was lost ({})", self.reason)
    }
}

impl std::error::Error for DeviceLost {}

/// A device and its queue, with what went wrong on it: WebGPU reports validation errors and a lost
/// device through callbacks, which are collected here so they surface as errors, never panics.
#[derive(Clone)]
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    /// The adapter's name and backend, for the page to show.
    pub adapter: String,
    lost: Arc<Mutex<Option<String>>>,
    errors: Arc<Mutex<Vec<String>>>,
}

impl Gpu {
    /// The first adapter and a device on it, with the adapter's own limits (the dataset is one
    /// 47 MB storage buffer, within WebGPU's default 128 MB binding limit).
    pub async fn request() -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("no WebGPU adapter: {e}"))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("latent-lab"),
                required_limits: wgpu::Limits::default().using_resolution(adapter.limits()),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("the WebGPU adapter {} gave no device: {e}", info.name))?;
        // Browsers may keep the adapter's description empty; the page adds what navigator.gpu says.
        let name = if info.name.is_empty() { format!("{:?}", info.backend) } else { format!("{} ({:?})", info.name, info.backend) };
        Ok(Gpu::from_device(device, queue, name))
    }

    /// Wraps a device made elsewhere (a test's), installing the error and device-loss handlers.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, adapter: String) -> Gpu {
        let lost = Arc::new(Mutex::new(None));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let lost_slot = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = lost_slot.lock() {
                *slot = Some(format!("{reason:?}: {message}"));
            }
        });
        let error_log = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut log) = error_log.lock() {
                log.push(e.to_string());
            }
        }));
        Gpu { device, queue, adapter, lost, errors }
    }

    /// Fails if the device was lost or reported an error since the last check.
    pub fn check(&self) -> Result<()> {
        if let Some(reason) = self.lost.lock().map_err(|_| anyhow!("GPU state is poisoned"))?.clone() {
            return Err(DeviceLost { reason }.into());
        }
        let mut errors = self.errors.lock().map_err(|_| anyhow!("GPU state is poisoned"))?;
        if let Some(first) = errors.first() {
            let msg = format!("WebGPU error: {first}");
            errors.clear();
            bail!(msg);
        }
        Ok(())
    }

    pub fn is_lost(&self) -> bool {
        self.lost.lock().map(|l| l.is_some()).unwrap_or(true)
    }

    /// Destroys the device, as a driver reset or a lost tab would (for tests of the fallback).
    pub fn lose_device(&self) {
        self.device.destroy();
        // Native wgpu reports the loss from the next poll.
        #[cfg(not(target_arch = "wasm32"))]
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    pub fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            // 4-byte multiples keep copies legal; an empty binding is not allowed.
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn storage_init(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
        })
    }

    pub fn uniform(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        })
    }

    /// A buffer the host can map to read what was copied into it.
    pub fn readback(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }
}

/// The one readback: maps a `readback` buffer once the queue has filled it and returns its bytes.
/// Natively it waits on the device; in the browser it yields to the event loop until the mapping
/// resolves, so the queue keeps running meanwhile.
pub async fn read_buffer(gpu: &Gpu, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
    let (tx, rx) = futures_channel::oneshot::channel();
    buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    #[cfg(not(target_arch = "wasm32"))]
    gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| anyhow!("waiting for the GPU: {e}"))?;
    let mapped = rx.await.map_err(|_| anyhow!("the GPU readback was dropped"));
    gpu.check()?;
    if let Err(e) = mapped.and_then(|m| m.map_err(anyhow::Error::from)) {
        // A mapping fails when the device is lost (or the buffer destroyed, which this crate never
        // does); the browser can report the failed mapping before the loss itself.
        let reason = format!("a readback failed: {e}");
        if let Ok(mut slot) = gpu.lost.lock() {
            slot.get_or_insert(reason.clone());
        }
        return Err(DeviceLost { reason }.into());
    }
    let bytes = buffer.slice(..).get_mapped_range().map_err(|e| anyhow!("reading a mapped GPU buffer: {e}"))?.to_vec();
    buffer.unmap();
    Ok(bytes)
}

/// Every compute kernel, compiled once per device.
pub struct Kernels {
    pipelines: Vec<wgpu::ComputePipeline>,
}

/// The kernels by name: (WGSL source, entry point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Matmul,
    ActBackward,
    BiasGrad,
    Gather,
    LatentInput,
    Reparameterise,
    KlReparameteriseBackward,
    Bce,
    FakeToD,
    FakeBackward,
    DiscriminatorLoss,
    GeneratorLoss,
    Sum,
    CheckStep,
    AdamPropose,
    AdamCommit,
}

const LINEAR: &str = include_str!("linear.wgsl");
const BATCH: &str = include_str!("batch.wgsl");
const VAE: &str = include_str!("vae.wgsl");
const GAN: &str = include_str!("gan.wgsl");
const REDUCE: &str = include_str!("reduce.wgsl");
const ADAM: &str = include_str!("adam.wgsl");

impl Kernel {
    const ALL: [Kernel; 16] = [
        Kernel::Matmul,
        Kernel::ActBackward,
        Kernel::BiasGrad,
        Kernel::Gather,
        Kernel::LatentInput,
        Kernel::Reparameterise,
        Kernel::KlReparameteriseBackward,
        Kernel::Bce,
        Kernel::FakeToD,
        Kernel::FakeBackward,
        Kernel::DiscriminatorLoss,
        Kernel::GeneratorLoss,
        Kernel::Sum,
        Kernel::CheckStep,
        Kernel::AdamPropose,
        Kernel::AdamCommit,
    ];

    fn source(self) -> (&'static str, &'static str, &'static str) {
        use Kernel::*;
        match self {
            Matmul => ("linear", LINEAR, "matmul"),
            ActBackward => ("linear", LINEAR, "act_backward"),
            BiasGrad => ("linear", LINEAR, "bias_grad"),
            Gather => ("batch", BATCH, "gather"),
            LatentInput => ("batch", BATCH, "latent_input"),
            Reparameterise => ("vae", VAE, "reparameterise"),
            KlReparameteriseBackward => ("vae", VAE, "kl_reparameterise_backward"),
            Bce => ("vae", VAE, "bce"),
            FakeToD => ("gan", GAN, "fake_to_d"),
            FakeBackward => ("gan", GAN, "fake_backward"),
            DiscriminatorLoss => ("gan", GAN, "discriminator_loss"),
            GeneratorLoss => ("gan", GAN, "generator_loss"),
            Sum => ("reduce", REDUCE, "sum"),
            CheckStep => ("reduce", REDUCE, "check_step"),
            AdamPropose => ("adam", ADAM, "propose"),
            AdamCommit => ("adam", ADAM, "commit"),
        }
    }
}

impl Kernels {
    pub fn new(gpu: &Gpu) -> Result<Kernels> {
        let mut modules: Vec<(&str, wgpu::ShaderModule)> = Vec::new();
        let mut pipelines = Vec::with_capacity(Kernel::ALL.len());
        for kernel in Kernel::ALL {
            let (file, source, entry) = kernel.source();
            if !modules.iter().any(|(f, _)| *f == file) {
                let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(file),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
                modules.push((file, module));
            }
            let Some((_, module)) = modules.iter().find(|(f, _)| *f == file) else {
                bail!("kernel source {file} was not compiled");
            };
            pipelines.push(gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            }));
        }
        gpu.check().context("compiling the WGSL kernels")?;
        Ok(Kernels { pipelines })
    }

    pub fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines[k as usize]
    }
}

