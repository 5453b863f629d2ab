//! latent-lab: VAEs and GANs on MNIST that train and run natively and in the browser.
//!
//! Layers, innermost first: `vae`, `gan` and `classifier` (the networks), `model` (kinds, sizes,
//! one type over every generative kind), `adam` (the optimiser), `checkpoint` and `mnist` (files),
//! `train` (the training loop and its backend seam), `gpu` (the WebGPU backend: WGSL kernels through wgpu), `metrics` (sample quality), `explore` (the latent map's projection, drawn digits), `lab` (the checked
//! plain-Rust API), `wasm` (the thin `#[wasm_bindgen]` binding).

pub mod adam;
pub mod checkpoint;
pub mod classifier;
pub mod explore;
pub mod gan;
pub mod gpu;
pub mod lab;
pub mod metrics;
pub mod mnist;
pub mod model;
pub mod train;
pub mod vae;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
