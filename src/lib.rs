//! latent-lab: VAEs and GANs on MNIST that train and run natively and in the browser.
//!
//! Layers, innermost first; each module reads only modules of the layers beneath it:
//! 1. `mnist` (the dataset and its files), `input` (checks on what comes in from outside),
//!    `keystream` (the trainer's random streams, their words in bulk)
//! 2. `config` (the kinds, their sizes and layers, how a label joins an input), `layout` (where
//!    each parameter sits in a backend's flat buffers)
//! 3. the convolution blocks `conv` and `pool` (max pooling with its backward); then the
//!    generative networks `vae`, `gan`, `ae` (the plain autoencoder), `conv_ae` and `conv_vae`;
//!    `adam` (the optimiser, its settings and state)
//! 4. `model` (initialisation, one type over every generative kind), `checkpoint` (safetensors)
//! 5. `classifier` (the digit classifier, the quality yardstick); `backend` (the training seam: a
//!    step's batch and losses, the `TrainBackend` trait)
//! 6. `engine` (every kind's training step, hand-derived, over flat buffers)
//! 7. the backends behind that seam: `cpu` (the engine), `gpu` (WebGPU: WGSL kernels through
//!    wgpu), `reference` (candle's autograd, what the tests hold the other two to); beside them
//!    `sampler` (a decoder over plain vectors through the engine's products: all the light wasm
//!    module holds)
//! 8. `train` (the trainer: the loop, every random number of a step, device copies and fallback),
//!    then `resume` (a run as one file: weights, Adam's state and the trainer's place)
//! 9. `lab` (the checked plain-Rust API over a model and its trainer)
//! 10. `metrics` (sample quality)
//! 11. `explore` (the latent map's projection, drawn digits)
//! 12. `wasm_sampler` (the light module's binding: a sampler alone), then `wasm` (the whole
//!     module's thin `#[wasm_bindgen]` binding, with the `full` feature), the binaries in `src/bin/`

pub mod adam;
pub mod ae;
pub mod backend;
pub mod checkpoint;
pub mod classifier;
pub mod config;
pub mod conv;
pub mod conv_ae;
pub mod conv_vae;
pub mod cpu;
pub mod engine;
pub mod explore;
pub mod gan;
pub mod gpu;
pub mod input;
pub mod keystream;
pub mod layout;
pub mod lab;
pub mod metrics;
pub mod mnist;
pub mod pool;
pub mod model;
pub mod reference;
pub mod resume;
pub mod sampler;
pub mod train;
pub mod vae;

#[cfg(all(target_arch = "wasm32", feature = "full"))]
pub mod wasm;
#[cfg(target_arch = "wasm32")]
pub mod wasm_sampler;
