//! A device and its queue, what went wrong on it, the buffers this crate makes on it, and the one
//! async readback. Apart from the work, so tests can inject a device of their own.

use super::kernels::Kernels;
use anyhow::{anyhow, bail, Result};
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
    /// The kernels, each compiled on first use and shared by every backend on this device.
    kernels: Arc<Kernels>,
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
        let kernels = Arc::new(Kernels::new(&device));
        Gpu { device, queue, adapter, lost, errors, kernels }
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

    /// This device's kernels, shared by every backend on it; each is compiled on its first use.
    pub fn kernels(&self) -> Arc<Kernels> {
        self.kernels.clone()
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


/// Little-endian f32s out of a readback's bytes.
pub(crate) fn to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A copy out of the GPU in flight (samples, gradients); `read` waits for its floats.
pub struct PendingCopy {
    gpu: Gpu,
    buffer: wgpu::Buffer,
}

impl PendingCopy {
    pub(crate) fn new(gpu: Gpu, buffer: wgpu::Buffer) -> Self {
        Self { gpu, buffer }
    }

    pub async fn read(self) -> Result<Vec<f32>> {
        Ok(to_f32(&read_buffer(&self.gpu, &self.buffer).await?))
    }
}
