//! latent-lab: a VAE on MNIST that trains and runs natively and in the browser.
//!
//! Layers, innermost first: `vae` (the model), `checkpoint` and `mnist` (files), `train` (the
//! training loop and its backend seam), `lab` (the checked plain-Rust API), `wasm` (the thin
//! `#[wasm_bindgen]` binding).

pub mod checkpoint;
pub mod lab;
pub mod mnist;
pub mod train;
pub mod vae;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
