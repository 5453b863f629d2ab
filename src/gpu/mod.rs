//! The WebGPU backend: WGSL compute kernels run through `wgpu`, on the browser's WebGPU in the page
//! and on Vulkan natively (Mesa's lavapipe in the tests).
//!
//! - `device.rs`: getting a device (apart from the work, so tests can inject one), its buffers,
//!   the one async readback;
//! - `params.rs`: what Rust and WGSL share (uniform structs, stats slots, activation codes),
//!   defined once and prepended to every shader as a generated prelude;
//! - `kernels.rs`: the kernels by name, compiled once per device and shared by its backends;
//! - `recorder.rs`: one typed method per kernel, recording dispatches to replay;
//! - `state.rs`: θ, gradients, Adam's moments and proposals on the device, and their copy out;
//! - `vae_step.rs`, `gan_step.rs`: one training step per model family, as a graph of kernels;
//! - `sample.rs`: decoding latent vectors;
//! - `plan.rs`: recorded steps per batch size;
//! - `backend.rs`: the training backend, one step per queue submission;
//! - `*.wgsl`: one file per kernel family, each forward beside its backward, the formula on top.

mod backend;
mod device;
mod gan_step;
mod kernels;
mod params;
mod plan;
mod recorder;
mod sample;
mod state;
#[cfg(all(any(test, feature = "test-hooks"), not(target_arch = "wasm32")))]
#[doc(hidden)]
pub mod testing;
mod vae_step;

pub use backend::{GpuBackend, GpuIo, DEFAULT_SYNC_INTERVAL};
pub use device::{read_buffer, DeviceLost, Gpu, PendingCopy};
pub use kernels::Kernels;
pub use crate::layout::ParamLayout;
