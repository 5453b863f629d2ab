//! The browser API: a thin `#[wasm_bindgen]` layer over [`crate::lab::Lab`].
//!
//! Every method returns `Result<_, JsError>`, so a Rust error arrives in JavaScript as a thrown
//! `Error` whose message names the problem; nothing here panics (a panic would kill the module).
//! Arrays cross as typed arrays: latent vectors and pixels as `Float32Array`, bytes as `Uint8Array`.

use crate::lab::Lab;
use crate::mnist::{self, Dataset};
use crate::vae::VaeConfig;
use wasm_bindgen::prelude::*;

fn js_err(e: anyhow::Error) -> JsError {
    JsError::new(&format!("{e:#}"))
}

#[wasm_bindgen(start)]
fn start() {
    // Only a bug can panic; this makes it say where in the console before the module dies.
    console_error_panic_hook::set_once();
}

/// A VAE with its trainer.
#[wasm_bindgen]
pub struct Model {
    lab: Lab,
}

/// What one `train_step` reports: the loss per example and its two parts.
#[wasm_bindgen]
#[derive(Clone, Copy)]
pub struct TrainStats {
    #[wasm_bindgen(readonly)]
    pub loss: f32,
    #[wasm_bindgen(readonly)]
    pub bce: f32,
    #[wasm_bindgen(readonly)]
    pub kl: f32,
    /// Steps taken by this model's trainer, this one included.
    #[wasm_bindgen(readonly)]
    pub step: f64,
    /// Passes over the dataset so far (fractional).
    #[wasm_bindgen(readonly)]
    pub epoch: f64,
}

/// Posterior means and log-variances, each flattened [n, latent].
#[wasm_bindgen(getter_with_clone)]
pub struct Encoding {
    #[wasm_bindgen(readonly)]
    pub mu: Vec<f32>,
    #[wasm_bindgen(readonly)]
    pub logvar: Vec<f32>,
}

#[wasm_bindgen]
impl Model {
    /// A fresh model with PyTorch's initialisation drawn from `seed`.
    #[wasm_bindgen(constructor)]
    pub fn new(latent: usize, hidden: usize, seed: u32) -> Result<Model, JsError> {
        let lab = Lab::fresh(VaeConfig { latent, hidden }, seed as u64).map_err(js_err)?;
        Ok(Model { lab })
    }

    /// A model from safetensors bytes: a file we saved, or a PyTorch `state_dict`.
    pub fn load(bytes: &[u8]) -> Result<Model, JsError> {
        Ok(Model { lab: Lab::from_safetensors(bytes).map_err(js_err)? })
    }

    /// The weights and metadata as safetensors bytes.
    pub fn save(&self) -> Result<Vec<u8>, JsError> {
        self.lab.save().map_err(js_err)
    }

    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        "vae".into()
    }

    #[wasm_bindgen(getter)]
    pub fn latent(&self) -> usize {
        self.lab.config().latent
    }

    #[wasm_bindgen(getter)]
    pub fn hidden(&self) -> usize {
        self.lab.config().hidden
    }

    /// The header metadata, as a JSON object of strings.
    #[wasm_bindgen(getter)]
    pub fn metadata(&self) -> String {
        serde_json::to_string(&self.lab.metadata()).unwrap_or_else(|_| "{}".into())
    }

    /// Which training backend runs `train_step` (`"cpu"`).
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.lab.trainer().backend_name().into()
    }

    /// n latent vectors, flattened [n, latent] → n images, flattened [n, 784], in [0, 1].
    pub fn sample(&self, z: &[f32]) -> Result<Vec<f32>, JsError> {
        self.lab.sample(z).map_err(js_err)
    }

    /// `steps` images from `z_a` to `z_b`, ends included and equal to `sample(z_a)`, `sample(z_b)`.
    pub fn interpolate(&self, z_a: &[f32], z_b: &[f32], steps: usize) -> Result<Vec<f32>, JsError> {
        self.lab.interpolate(z_a, z_b, steps).map_err(js_err)
    }

    /// Images, flattened [n, 784] in [0, 1] → posterior means and log-variances.
    pub fn encode(&self, images: &[f32]) -> Result<Encoding, JsError> {
        let (mu, logvar) = self.lab.encode(images).map_err(js_err)?;
        Ok(Encoding { mu, logvar })
    }

    /// Hands over the training set once: images as bytes [n, 784] (0–255), labels [n].
    pub fn set_dataset(&mut self, images: Vec<u8>, labels: Vec<u8>) -> Result<(), JsError> {
        self.lab.set_dataset(Dataset::new(images, labels).map_err(js_err)?);
        Ok(())
    }

    /// Hands over the train split of the page's MNIST file (`www/data/mnist.safetensors`).
    pub fn set_dataset_safetensors(&mut self, bytes: &[u8]) -> Result<(), JsError> {
        let data = mnist::unpack(bytes).map_err(js_err)?;
        self.lab.set_dataset(data.train);
        Ok(())
    }

    #[wasm_bindgen(getter)]
    pub fn batch_size(&self) -> usize {
        self.lab.trainer().batch_size()
    }

    #[wasm_bindgen(setter)]
    pub fn set_batch_size(&mut self, n: usize) -> Result<(), JsError> {
        self.lab.trainer_mut().set_batch_size(n).map_err(js_err)
    }

    #[wasm_bindgen(getter)]
    pub fn learning_rate(&self) -> f64 {
        self.lab.trainer().learning_rate()
    }

    #[wasm_bindgen(setter)]
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<(), JsError> {
        self.lab.trainer_mut().set_learning_rate(lr).map_err(js_err)
    }

    /// Steps in one pass over the dataset at the current batch size (0 with no dataset).
    #[wasm_bindgen(getter)]
    pub fn steps_per_epoch(&self) -> usize {
        self.lab.trainer().steps_per_epoch()
    }

    /// One Adam step on the next shuffled minibatch. If the loss or gradient is not finite it
    /// throws and leaves the weights untouched.
    pub fn train_step(&mut self) -> Result<TrainStats, JsError> {
        let s = self.lab.train_step().map_err(js_err)?;
        Ok(TrainStats { loss: s.parts.loss, bce: s.parts.bce, kl: s.parts.kl, step: s.step as f64, epoch: s.epoch })
    }
}
