//! The kernel tests' entry (tests/gpu_kernels.rs), behind the `test-hooks` feature: upload some
//! buffers, record dispatches through the same `Recorder` methods the step graphs use, run them
//! as one submission, and read every buffer back.

pub use super::kernels::Kernel;
pub use crate::layout::Layer;
pub use super::recorder::{rows, AdamBuffers, Recorder, View};

/// The kernels' uniform structs and the constants shared with WGSL (src/gpu/params.rs).
pub mod params {
    pub use super::super::params::*;
}

use super::device::{read_buffer, Gpu};
use anyhow::Result;

/// Uploads `inputs` as storage buffers (in order), lets `record` record dispatches over them,
/// runs those, and returns every buffer's bytes afterwards.
pub fn run(gpu: &Gpu, inputs: &[&[u8]], record: impl FnOnce(&mut Recorder, &[wgpu::Buffer]) -> Result<()>) -> Result<Vec<Vec<u8>>> {
    gpu.check()?;
    let buffers: Vec<wgpu::Buffer> = inputs.iter().map(|b| gpu.storage_init("kernel test input", &pad(b))).collect();
    let mut r = Recorder::new(gpu)?;
    record(&mut r, &buffers)?;
    let recorded = r.finish();
    let mut encoder = gpu.device.create_command_encoder(&Default::default());
    recorded.encode(&mut encoder);
    let copies: Vec<wgpu::Buffer> = buffers
        .iter()
        .map(|b| {
            let copy = gpu.readback("kernel test output", b.size());
            encoder.copy_buffer_to_buffer(b, 0, &copy, 0, b.size());
            copy
        })
        .collect();
    gpu.queue.submit([encoder.finish()]);
    gpu.check()?;
    let mut out = Vec::with_capacity(copies.len());
    for (copy, input) in copies.iter().zip(inputs) {
        let mut bytes = pollster::block_on(read_buffer(gpu, copy))?;
        bytes.truncate(input.len().max(4));
        out.push(bytes);
    }
    Ok(out)
}

/// A buffer's contents padded to a whole number of words (an empty binding is not allowed).
fn pad(bytes: &[u8]) -> Vec<u8> {
    let mut v = bytes.to_vec();
    v.resize(bytes.len().max(4).next_multiple_of(4), 0);
    v
}
