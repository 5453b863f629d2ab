//! The light browser module's binding: a thin `#[wasm_bindgen]` layer over [`crate::sampler`].
//! Built without the `full` feature (`scripts/build-wasm.sh` writes it as `pkg/sampler.js`), the
//! module holds this alone, and the linker leaves candle, the trainer and WebGPU out: what a page
//! fetches to draw its first digits. A `Sampler` answers the sampling half of `Model`'s API (the
//! same getters, `sample`, `interpolate`), so a view draws from either; `capabilities.whole` is
//! false, and the page fetches the whole module and model when a view needs more.
//!
//! What both bindings share lives here too: errors as thrown `Error`s, plain objects through
//! serde-wasm-bindgen, the capabilities. Nothing here panics.

use crate::config::{Family, ModelConfig};
use crate::sampler;
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A plain JS object (maps as objects, 64-bit integers as numbers), or `undefined` should it fail.
pub fn to_js<T: Serialize>(value: &T) -> JsValue {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).unwrap_or(JsValue::UNDEFINED)
}

/// Only a bug can panic; this makes it say where in the console before the module dies.
pub fn set_panic_hook() {
    console_error_panic_hook::set_once();
}

#[cfg(not(feature = "full"))]
#[wasm_bindgen(start)]
fn start() {
    set_panic_hook();
}

fn js_err(e: anyhow::Error) -> JsValue {
    js_sys::Error::new(&format!("{e:#}")).into()
}

/// `Model.capabilities` and `Sampler.capabilities`.
#[derive(Serialize)]
pub struct Capabilities {
    kind: &'static str,
    family: &'static str,
    encoder: bool,
    conditional: bool,
    latent: usize,
    hidden: usize,
    /// Why WebGPU cannot train this kind, when it cannot (the convolutional kinds): the Train
    /// panel's "On" choice says it; `null` otherwise.
    cpu_only: Option<String>,
    losses: &'static [&'static str],
    /// False for a model loaded from its decoder alone: it samples and interpolates; the rest
    /// (encode, train, save) needs the whole file.
    whole: bool,
}

impl Capabilities {
    pub fn of(cfg: &ModelConfig, whole: bool) -> Capabilities {
        let family = cfg.kind.family();
        Capabilities {
            kind: cfg.kind.name(),
            family: family.name(),
            encoder: cfg.kind.has_encoder(),
            conditional: cfg.kind.is_conditional(),
            latent: cfg.latent,
            hidden: cfg.hidden,
            cpu_only: cfg.kind.linear_only_refusal("WebGPU"),
            losses: match family {
                Family::Gan => &["d_loss", "g_loss", "d_real", "d_fake"],
                Family::Vae => &["loss", "bce", "kl"],
                // the autoencoder's loss is its reconstruction error alone
                Family::Ae => &["loss"],
            },
            whole,
        }
    }
}

/// A model's decoder, to sample from: `Sampler.load(bytes)` takes a decoder file or a whole
/// weights file (as `Model.load` does, with the same checks and errors).
#[wasm_bindgen]
pub struct Sampler {
    inner: sampler::Sampler,
}

#[wasm_bindgen]
impl Sampler {
    pub fn load(bytes: &[u8]) -> Result<Sampler, JsValue> {
        Ok(Sampler { inner: sampler::Sampler::from_safetensors(bytes).map_err(js_err)? })
    }

    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        self.inner.config().kind.name().into()
    }

    #[wasm_bindgen(getter)]
    pub fn conditional(&self) -> bool {
        self.inner.config().kind.is_conditional()
    }

    #[wasm_bindgen(getter)]
    pub fn latent(&self) -> usize {
        self.inner.config().latent
    }

    #[wasm_bindgen(getter)]
    pub fn hidden(&self) -> usize {
        self.inner.config().hidden
    }

    /// `Model.capabilities`' object, with `whole` false: a sampler only samples.
    #[wasm_bindgen(getter)]
    pub fn capabilities(&self) -> JsValue {
        to_js(&Capabilities::of(&self.inner.config(), false))
    }

    /// The header metadata as a plain object of strings (`kind`, `latent`, `epochs`, …).
    #[wasm_bindgen(getter)]
    pub fn meta(&self) -> JsValue {
        to_js(self.inner.metadata())
    }

    /// n latent vectors, flattened [n, latent] → n images, flattened [n, 784], in [0, 1].
    /// Conditional models also take `labels`, one digit (0–9) per vector.
    pub fn sample(&self, z: &[f32], labels: Option<Vec<u8>>) -> Result<Vec<f32>, JsValue> {
        self.inner.sample(z, labels.as_deref()).map_err(js_err)
    }

    /// `steps` images from `z_a` to `z_b`, ends included and equal to `sample(z_a)`, `sample(z_b)`.
    /// Conditional models also take the digit `label`.
    pub fn interpolate(&self, z_a: &[f32], z_b: &[f32], steps: usize, label: Option<u8>) -> Result<Vec<f32>, JsValue> {
        self.inner.interpolate(z_a, z_b, steps, label).map_err(js_err)
    }
}
