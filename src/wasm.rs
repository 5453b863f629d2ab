//! The browser API: a thin `#[wasm_bindgen]` layer over [`crate::lab::Lab`] and the classifier
//! (the whole module, with the `full` feature; `wasm_sampler.rs` is the light one's).
//!
//! A Rust error arrives in JavaScript as a thrown `Error` whose message names the problem; the
//! errors the page must act on are also named (`e.name`): `"DeviceLostError"` (the WebGPU device
//! is gone: `fall_back_to_cpu`) and `"DivergedError"` (a step was refused, the weights kept).
//! Nothing here panics (a panic would kill the module). Arrays cross as typed arrays: latent
//! vectors and pixels as `Float32Array`, bytes as `Uint8Array`; structured values (capabilities,
//! metadata, GPU traffic, a step's losses) as plain objects, through serde-wasm-bindgen.

use crate::checkpoint::StoredDtype;
use crate::classifier::ClassifierModel;
use crate::explore;
use crate::gpu::{DeviceLost, Gpu};
use crate::lab::Lab;
use crate::mnist::{self, Dataset};
use crate::config::{Decay, Recipe, Recon, VaeObjective};
use crate::model::{Kind, ModelConfig};
use crate::train::{Diverged, PendingStep, StepLosses};
use crate::wasm_sampler::{set_panic_hook, to_js, Capabilities};
use candle_core::Device;
use js_sys::{Float32Array, Promise};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// The thrown `Error`: the whole chain as its message, and a `name` the page can act on when the
/// chain holds a lost device or a diverged step.
fn js_err(e: anyhow::Error) -> JsValue {
    let error = js_sys::Error::new(&format!("{e:#}"));
    if e.chain().any(|c| c.is::<DeviceLost>()) {
        error.set_name("DeviceLostError");
    } else if e.chain().any(|c| c.is::<Diverged>()) {
        error.set_name("DivergedError");
    }
    error.into()
}

#[wasm_bindgen(start)]
fn start() {
    set_panic_hook();
}

/// A generative model of any kind (`vae`, `cvae`, `gan`, `cgan`) with its trainer.
///
/// The lab sits behind a shared cell because WebGPU readbacks finish after the call that asked
/// for them returns: the promise holds the cell and borrows it only once the readback is in, never
/// across an `await`, so a borrow can never be refused.
#[wasm_bindgen]
pub struct Model {
    inner: Rc<RefCell<Inner>>,
}

struct Inner {
    lab: Lab,
    /// Steps submitted and not yet handed out by `next_stats`, oldest first.
    queue: VecDeque<Queued>,
}

/// A submitted step as `next_stats` will hand it out.
enum Queued {
    /// On its way (on WebGPU), or done (on the CPU, where a step runs as it is submitted).
    Step(PendingStep),
    /// A CPU step that failed as it ran (it diverged): `next_stats` rejects with its error in its
    /// turn, after the steps queued before it, so results always come out in order.
    Failed(anyhow::Error),
}

fn busy() -> JsError {
    JsError::new("the model is busy with another call")
}

/// A WebGPU device, to train and sample on: `await WebGpu.request()`.
#[wasm_bindgen]
pub struct WebGpu {
    gpu: Gpu,
}

#[wasm_bindgen]
impl WebGpu {
    /// The browser's WebGPU adapter and a device on it. Throws, saying why, where there is none
    /// (no `navigator.gpu`, no adapter, no device).
    pub async fn request() -> Result<WebGpu, JsValue> {
        let gpu = Gpu::request().await.map_err(js_err)?;
        Ok(WebGpu { gpu })
    }

    /// The adapter's name and backend.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.gpu.adapter.clone()
    }
}

/// What `recover` did, as a plain object.
#[derive(Serialize)]
struct RecoveryJs {
    resumed_at: u64,
    learning_rate: f64,
    retries_left: u32,
}

/// What `fall_back_to_cpu` did: training continues from step `resumed_at` (the last weights read
/// back from the GPU); the `lost_steps` after it are trained again.
#[wasm_bindgen]
pub struct Fallback {
    #[wasm_bindgen(readonly)]
    pub resumed_at: f64,
    #[wasm_bindgen(readonly)]
    pub lost_steps: f64,
}

/// What one `train_step` reports. A VAE step fills `loss`, `bce` and `kl`; a GAN step fills
/// `d_loss`, `g_loss`, `d_real` and `d_fake` (the discriminator's mean verdict on real and
/// generated digits). The others are `undefined`.
#[wasm_bindgen]
#[derive(Clone, Copy)]
pub struct TrainStats {
    losses: StepLosses,
    /// An autoencoder's steps report their loss alone (it has no KL term).
    autoencoder: bool,
    /// Steps taken by this model's trainer, this one included.
    #[wasm_bindgen(readonly)]
    pub step: f64,
    /// Passes over the dataset so far (fractional).
    #[wasm_bindgen(readonly)]
    pub epoch: f64,
}

/// A step's losses as `TrainStats.losses` gives them.
#[derive(Serialize)]
#[serde(untagged)]
enum LossesObject {
    Vae { loss: f32, bce: f32, kl: f32 },
    Gan { d_loss: f32, g_loss: f32, d_real: f32, d_fake: f32 },
    Ae { loss: f32 },
}

impl TrainStats {
    fn of(lab: &Lab, s: crate::train::StepStats) -> Self {
        let autoencoder = lab.config().kind.family() == crate::config::Family::Ae;
        TrainStats { losses: s.losses, autoencoder, step: s.step as f64, epoch: s.epoch }
    }
}

#[wasm_bindgen]
impl TrainStats {
    /// The step's losses as one object: `{loss, bce, kl}` for a VAE step, `{d_loss, g_loss,
    /// d_real, d_fake}` for a GAN step, `{loss}` for an autoencoder's (the names
    /// `capabilities.losses` lists).
    #[wasm_bindgen(getter)]
    pub fn losses(&self) -> JsValue {
        to_js(&match self.losses {
            StepLosses::Vae(p) if self.autoencoder => LossesObject::Ae { loss: p.loss },
            StepLosses::Vae(p) => LossesObject::Vae { loss: p.loss, bce: p.bce, kl: p.kl },
            StepLosses::Gan(g) => LossesObject::Gan { d_loss: g.d_loss, g_loss: g.g_loss, d_real: g.d_real, d_fake: g.d_fake },
        })
    }

    // The seven getters below are kept for compatibility; `losses` gives them as one object.

    /// Kept for compatibility: `losses.loss`.
    #[wasm_bindgen(getter)]
    pub fn loss(&self) -> Option<f32> {
        if let StepLosses::Vae(p) = self.losses { Some(p.loss) } else { None }
    }
    /// Kept for compatibility: `losses.bce`.
    #[wasm_bindgen(getter)]
    pub fn bce(&self) -> Option<f32> {
        match self.losses {
            StepLosses::Vae(p) if !self.autoencoder => Some(p.bce),
            _ => None,
        }
    }
    /// Kept for compatibility: `losses.kl`.
    #[wasm_bindgen(getter)]
    pub fn kl(&self) -> Option<f32> {
        match self.losses {
            StepLosses::Vae(p) if !self.autoencoder => Some(p.kl),
            _ => None,
        }
    }
    /// Kept for compatibility: `losses.d_loss`.
    #[wasm_bindgen(getter)]
    pub fn d_loss(&self) -> Option<f32> {
        if let StepLosses::Gan(g) = self.losses { Some(g.d_loss) } else { None }
    }
    /// Kept for compatibility: `losses.g_loss`.
    #[wasm_bindgen(getter)]
    pub fn g_loss(&self) -> Option<f32> {
        if let StepLosses::Gan(g) = self.losses { Some(g.g_loss) } else { None }
    }
    /// Kept for compatibility: `losses.d_real`.
    #[wasm_bindgen(getter)]
    pub fn d_real(&self) -> Option<f32> {
        if let StepLosses::Gan(g) = self.losses { Some(g.d_real) } else { None }
    }
    /// Kept for compatibility: `losses.d_fake`.
    #[wasm_bindgen(getter)]
    pub fn d_fake(&self) -> Option<f32> {
        if let StepLosses::Gan(g) = self.losses { Some(g.d_fake) } else { None }
    }
}

/// Posterior means and log-variances, each flattened [n, latent].
#[wasm_bindgen(getter_with_clone)]
pub struct Encoding {
    #[wasm_bindgen(readonly)]
    pub mu: Vec<f32>,
    #[wasm_bindgen(readonly)]
    pub logvar: Vec<f32>,
}

/// Reconstructions [n, 784] and the loss of each image [n].
#[wasm_bindgen(getter_with_clone)]
pub struct Reconstruction {
    #[wasm_bindgen(readonly)]
    pub images: Vec<f32>,
    #[wasm_bindgen(readonly)]
    pub losses: Vec<f32>,
}

/// Digits from the page's MNIST files: pixels [n, 784] in [0, 1] and labels [n].
#[wasm_bindgen(getter_with_clone)]
pub struct Digits {
    #[wasm_bindgen(readonly)]
    pub images: Vec<f32>,
    #[wasm_bindgen(readonly)]
    pub labels: Vec<u8>,
}

/// `recipe_settings(kind, recipe)`.
#[derive(Serialize)]
struct RecipeSettings {
    batch_size: usize,
    learning_rate: f64,
    lr_decay: &'static str,
    adam_beta2: f64,
}

/// A recipe's settings for a kind (`"fast"` or `"tutorial"`): `{batch_size, learning_rate,
/// lr_decay, adam_beta2}`, what setting `Model.recipe` gives a model of that kind. The page shows them before
/// it holds a whole model (its first digits come from a `Sampler`).
#[wasm_bindgen]
pub fn recipe_settings(kind: &str, recipe: &str) -> Result<JsValue, JsValue> {
    let s = Recipe::parse(recipe).map_err(js_err)?.settings(Kind::parse(kind).map_err(js_err)?);
    Ok(to_js(&RecipeSettings { batch_size: s.batch_size, learning_rate: s.learning_rate, lr_decay: s.decay.name(), adam_beta2: s.adam_beta2 }))
}

/// What the CPU engine of this build runs on: `"1 thread, relaxed SIMD"` for the relaxed-SIMD binary
/// (`latent_lab_relaxed_bg.wasm`: its products use `f32x4.relaxed_madd`), `"1 thread, SIMD"` for the
/// plain simd128 one, which browsers without relaxed SIMD load, and `"2 threads, relaxed SIMD"` or
/// `"2 threads, SIMD"` for the threaded ones (`threads/latent_lab_relaxed_bg.wasm`,
/// `threads/latent_lab_bg.wasm`) once `start_threads(2)` has run. Said by the
/// binary itself, so the page reports what was loaded and started, not what it asked for.
#[wasm_bindgen]
pub fn cpu_engine() -> String {
    let simd = if cfg!(target_feature = "relaxed-simd") { "relaxed SIMD" } else { "SIMD" };
    match crate::engine::threads::count() {
        1 => format!("1 thread, {simd}"),
        n => format!("{n} threads, {simd}"),
    }
}

/// The threaded build only: starts a pool of `threads` Web Workers over this module's shared
/// memory (wasm-bindgen-rayon's `initThreadPool`), across which the engine's steps then split
/// their products; resolves to the pool's size. Call it once, from a Worker (a step waits for
/// its threads with `Atomics.wait`, which a page's main thread may not), before anything else
/// of the module runs: a second call is refused.
#[cfg(feature = "threads")]
#[wasm_bindgen]
pub async fn start_threads(threads: usize) -> Result<usize, JsError> {
    use crate::engine::threads;
    use wasm_bindgen::JsCast;
    if threads < 1 || threads > 16 {
        return Err(JsError::new(&format!("start_threads takes 1 to 16 threads, not {threads}")));
    }
    if threads::count() > 1 || STARTING.with(|s| s.replace(true)) {
        return Err(JsError::new("the thread pool was started already"));
    }
    wasm_bindgen_futures::JsFuture::from(wasm_bindgen_rayon::init_thread_pool(threads))
        .await
        .map_err(|e| {
            let why = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).or_else(|| e.as_string());
            JsError::new(&format!("the thread pool did not start: {}", why.unwrap_or_else(|| format!("{e:?}"))))
        })?;
    threads::started(threads);
    Ok(threads)
}

#[cfg(feature = "threads")]
thread_local! {
    /// `start_threads` was called (the pool may still be starting).
    static STARTING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// One split (`"train"` or `"test"`) of the page's MNIST file: `www/data/mnist.safetensors.gz` or
/// `www/data/mnist-test.safetensors.gz`, inflated (they are stored gzipped).
#[wasm_bindgen]
pub fn load_digits(bytes: &[u8], split: &str) -> Result<Digits, JsValue> {
    let data = mnist::unpack_split(bytes, split).map_err(js_err)?;
    let mut images = Vec::with_capacity(data.len() * mnist::IMAGE_PIXELS);
    for i in 0..data.len() {
        data.image_f32(i, &mut images);
    }
    Ok(Digits { images, labels: data.labels })
}

/// A drawing (`width` × `height` ink values in [0, 1]) made to look like an MNIST digit: the ink
/// scaled to fit 20 × 20 and centred by its centre of mass in 28 × 28. Throws on an empty drawing.
#[wasm_bindgen]
pub fn center_digit(pixels: &[f32], width: usize, height: usize) -> Result<Vec<f32>, JsValue> {
    explore::center_like_mnist(pixels, width, height).map_err(js_err)
}

/// The latent map's projection: the two principal axes of a set of latent points.
#[wasm_bindgen]
pub struct Pca {
    pca: explore::Pca,
}

#[wasm_bindgen]
impl Pca {
    /// Fits points [n, dim] (n ≥ 2, dim ≥ 2).
    pub fn fit(points: &[f32], dim: usize) -> Result<Pca, JsValue> {
        Ok(Pca { pca: explore::Pca::fit(points, dim).map_err(js_err)? })
    }

    /// Points [n, dim] → map positions [n, 2].
    pub fn project(&self, points: &[f32]) -> Result<Vec<f32>, JsValue> {
        self.pca.project(points).map_err(js_err)
    }

    /// Map positions [n, 2] → latent points [n, dim] on the mapped plane.
    pub fn unproject(&self, xy: &[f32]) -> Result<Vec<f32>, JsValue> {
        self.pca.unproject(xy).map_err(js_err)
    }

    /// The share of the variance along each of the two axes.
    #[wasm_bindgen(getter)]
    pub fn explained(&self) -> Vec<f32> {
        self.pca.explained.to_vec()
    }
}

/// `Model.step_phases`.
#[derive(Serialize)]
struct Phases {
    forward: f64,
    loss: f64,
    backward: f64,
    optimizer: f64,
}

/// `Model.gpu_traffic`.
#[derive(Serialize)]
struct GpuTraffic {
    submissions: u64,
    uploaded: u64,
    read_back: u64,
}

impl Model {
    fn wrap(lab: Lab) -> Model {
        Model { inner: Rc::new(RefCell::new(Inner { lab, queue: VecDeque::new() })) }
    }

    fn lab(&self) -> Result<std::cell::Ref<'_, Lab>, JsValue> {
        Ok(std::cell::Ref::map(self.inner.try_borrow().map_err(|_| busy())?, |i| &i.lab))
    }

    fn lab_mut(&self) -> Result<std::cell::RefMut<'_, Lab>, JsValue> {
        Ok(std::cell::RefMut::map(self.inner.try_borrow_mut().map_err(|_| busy())?, |i| &mut i.lab))
    }

    /// A VAE's or autoencoder's objective changed by `change` (checked for the kind: a GAN has no
    /// reconstruction loss or KL term, an autoencoder no KL term).
    fn set_objective(&self, change: impl FnOnce(VaeObjective) -> VaeObjective) -> Result<(), JsValue> {
        let mut lab = self.lab_mut()?;
        let objective = change(lab.trainer().objective());
        lab.trainer_mut().set_objective(objective).map_err(js_err)
    }

    /// For getters, which cannot throw: a default in the (never expected) case of a busy model.
    fn peek<T: Default>(&self, f: impl FnOnce(&Lab) -> T) -> T {
        self.inner.try_borrow().map(|i| f(&i.lab)).unwrap_or_default()
    }
}

#[wasm_bindgen]
impl Model {
    /// A fresh VAE with PyTorch's initialisation drawn from `seed`.
    #[wasm_bindgen(constructor)]
    pub fn new(latent: usize, hidden: usize, seed: u32) -> Result<Model, JsValue> {
        Ok(Model::wrap(Lab::fresh(ModelConfig::vae(latent, hidden), seed as u64).map_err(js_err)?))
    }

    /// A fresh model of `kind` (`vae`, `cvae`, `gan`, `cgan`), at the tutorial sizes unless
    /// `latent` / `hidden` are given.
    pub fn create(kind: &str, seed: u32, latent: Option<usize>, hidden: Option<usize>) -> Result<Model, JsValue> {
        let mut cfg = Kind::parse(kind).map_err(js_err)?.default_config();
        cfg.latent = latent.unwrap_or(cfg.latent);
        cfg.hidden = hidden.unwrap_or(cfg.hidden);
        Ok(Model::wrap(Lab::fresh(cfg, seed as u64).map_err(js_err)?))
    }

    /// A model from safetensors bytes: a file we saved, or a PyTorch `state_dict`.
    pub fn load(bytes: &[u8]) -> Result<Model, JsValue> {
        Ok(Model::wrap(Lab::from_safetensors(bytes).map_err(js_err)?))
    }

    /// The weights and metadata as safetensors bytes: f32, or `save("f16")` for half the size.
    pub fn save(&self, dtype: Option<String>) -> Result<Vec<u8>, JsValue> {
        let dtype = dtype.as_deref().map(StoredDtype::parse).transpose().map_err(js_err)?.unwrap_or_default();
        self.lab()?.save_as(dtype).map_err(js_err)
    }

    /// The whole training run as one file (weights, Adam's state, the trainer's place, settings
    /// and random streams): `Model.resume` goes on from it exactly. On WebGPU, `sync` first.
    pub fn save_run(&self) -> Result<Vec<u8>, JsValue> {
        self.lab()?.save_run().map_err(js_err)
    }

    /// A run saved by `save_run`; after `set_dataset` with the same digits, its next step is the
    /// one the saved run would have taken next (same minibatch, same random numbers).
    pub fn resume(bytes: &[u8]) -> Result<Model, JsValue> {
        Ok(Model::wrap(Lab::resume(bytes).map_err(js_err)?))
    }

    #[wasm_bindgen(getter)]
    pub fn kind(&self) -> String {
        self.peek(|lab| lab.config().kind.name().into())
    }

    /// Whether `sample`, `interpolate` and `encode` take digit labels (cvae, cgan).
    #[wasm_bindgen(getter)]
    pub fn conditional(&self) -> bool {
        self.peek(|lab| lab.config().kind.is_conditional())
    }

    #[wasm_bindgen(getter)]
    pub fn latent(&self) -> usize {
        self.peek(|lab| lab.config().latent)
    }

    #[wasm_bindgen(getter)]
    pub fn hidden(&self) -> usize {
        self.peek(|lab| lab.config().hidden)
    }

    /// What this model can do, so the page need not guess from its kind's name: `{kind, family:
    /// "vae" | "gan" | "ae", encoder, conditional, latent, hidden, losses}`, where `encoder` says whether
    /// `encode` and `reconstruct` work, `conditional` whether the calls take digit labels, and
    /// `losses` names the parts a training step reports (`TrainStats.losses`' keys), and `whole`
    /// is false for a model loaded from a decoder file (it samples; encoding and training need the whole file).
    #[wasm_bindgen(getter)]
    pub fn capabilities(&self) -> JsValue {
        self.peek(|lab| to_js(&Capabilities::of(&lab.config(), !lab.decoder_only())))
    }

    /// The header metadata as a plain object of strings (`kind`, `latent`, `epochs`, …).
    #[wasm_bindgen(getter)]
    pub fn meta(&self) -> JsValue {
        self.peek(|lab| to_js(&lab.metadata()))
    }

    /// Kept for compatibility: the header metadata as a JSON string (`meta` is the object).
    #[wasm_bindgen(getter)]
    pub fn metadata(&self) -> String {
        self.peek(|lab| serde_json::to_string(&lab.metadata()).unwrap_or_else(|_| "{}".into()))
    }

    /// Which backend trains: `"cpu"` (the engine) or `"webgpu"` after `use_webgpu`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.peek(|lab| lab.backend_name().into())
    }

    /// n latent vectors, flattened [n, latent] → n images, flattened [n, 784], in [0, 1].
    /// Conditional models also take `labels`, one digit (0–9) per vector.
    pub fn sample(&self, z: &[f32], labels: Option<Vec<u8>>) -> Result<Vec<f32>, JsValue> {
        self.lab()?.sample(z, labels.as_deref()).map_err(js_err)
    }

    /// `steps` images from `z_a` to `z_b`, ends included and equal to `sample(z_a)`, `sample(z_b)`.
    /// Conditional models also take the digit `label`.
    pub fn interpolate(&self, z_a: &[f32], z_b: &[f32], steps: usize, label: Option<u8>) -> Result<Vec<f32>, JsValue> {
        self.lab()?.interpolate(z_a, z_b, steps, label).map_err(js_err)
    }

    /// Images, flattened [n, 784] in [0, 1] → posterior means and log-variances (VAE kinds; a
    /// cVAE also takes the images' digit `labels`); an autoencoder's codes as the means, with
    /// log-variances of −Infinity (a point). A GAN has no encoder and throws.
    pub fn encode(&self, images: &[f32], labels: Option<Vec<u8>>) -> Result<Encoding, JsValue> {
        let (mu, logvar) = self.lab()?.encode(images, labels.as_deref()).map_err(js_err)?;
        Ok(Encoding { mu, logvar })
    }

    /// Images [n, 784] in [0, 1] (and their digit `labels` for a cVAE) → their reconstructions
    /// from the posterior means and each image's loss (BCE + KL; an autoencoder's squared error,
    /// summed over the pixels on [−1, 1]). A GAN has no encoder and throws.
    pub fn reconstruct(&self, images: &[f32], labels: Option<Vec<u8>>) -> Result<Reconstruction, JsValue> {
        let (images, losses) = self.lab()?.reconstruct(images, labels.as_deref()).map_err(js_err)?;
        Ok(Reconstruction { images, losses })
    }

    /// Hands over the training set once: images as bytes [n, 784] (0–255), labels [n].
    pub fn set_dataset(&mut self, images: Vec<u8>, labels: Vec<u8>) -> Result<(), JsValue> {
        self.lab_mut()?.set_dataset(Dataset::new(images, labels).map_err(js_err)?).map_err(js_err)
    }

    /// Hands over the train split of the page's MNIST file (`www/data/mnist.safetensors.gz`, inflated).
    pub fn set_dataset_safetensors(&mut self, bytes: &[u8]) -> Result<(), JsValue> {
        let data = mnist::unpack(bytes).map_err(js_err)?;
        self.lab_mut()?.set_dataset(data.train).map_err(js_err)
    }

    #[wasm_bindgen(getter)]
    pub fn batch_size(&self) -> usize {
        self.peek(|lab| lab.trainer().batch_size())
    }

    #[wasm_bindgen(setter)]
    pub fn set_batch_size(&mut self, n: usize) -> Result<(), JsValue> {
        self.lab_mut()?.trainer_mut().set_batch_size(n).map_err(js_err)
    }

    #[wasm_bindgen(getter)]
    pub fn learning_rate(&self) -> f64 {
        self.peek(|lab| lab.trainer().learning_rate())
    }

    #[wasm_bindgen(setter)]
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<(), JsValue> {
        self.lab_mut()?.trainer_mut().set_learning_rate(lr).map_err(js_err)
    }

    /// `"fast"` (the default), `"tutorial"`, or `"custom"` once the batch size, learning rate,
    /// decay or Adam's β2 is set by hand: the recipe those settings are (with a GAN's averaging
    /// and a cGAN's label gain, which only a recipe sets here).
    #[wasm_bindgen(getter)]
    pub fn recipe(&self) -> String {
        self.peek(|lab| lab.trainer().recipe().map_or("custom", Recipe::name).to_string())
    }

    /// Sets the batch size, learning rate, decay, a GAN's averaging, a cGAN's label gain and
    /// Adam's β2 to a recipe's for this kind: `"fast"` or `"tutorial"`.
    #[wasm_bindgen(setter)]
    pub fn set_recipe(&mut self, name: &str) -> Result<(), JsValue> {
        let recipe = Recipe::parse(name).map_err(js_err)?;
        self.lab_mut()?.trainer_mut().set_recipe(recipe);
        Ok(())
    }

    /// Adam's β2, the decay of its second moment: 0.999 (PyTorch's), or 0.99 in the fast recipe
    /// of the VAE and cVAE. Set by hand it must lie in [0.5, 1); it takes effect from the next step.
    #[wasm_bindgen(getter)]
    pub fn adam_beta2(&self) -> f64 {
        self.peek(|lab| lab.trainer().settings().adam_beta2)
    }

    #[wasm_bindgen(setter)]
    pub fn set_adam_beta2(&mut self, beta2: f64) -> Result<(), JsValue> {
        self.lab_mut()?.trainer_mut().set_adam_beta2(beta2).map_err(js_err)
    }

    /// How the learning rate falls over the epochs: `"inverse-epoch"` (the fast recipe's: the rate
    /// ÷ (1 + epoch)) or `"none"`.
    #[wasm_bindgen(getter)]
    pub fn lr_decay(&self) -> String {
        self.peek(|lab| lab.trainer().settings().decay.name().to_string())
    }

    #[wasm_bindgen(setter)]
    pub fn set_lr_decay(&mut self, name: &str) -> Result<(), JsValue> {
        let decay = Decay::parse(name).map_err(js_err)?;
        self.lab_mut()?.trainer_mut().set_decay(decay);
        Ok(())
    }

    /// A VAE's reconstruction loss, summed over the 784 pixels: `"bce"` (binary cross-entropy,
    /// the default), `"l2"` (squared error) or `"l1"` (absolute error) of the decoded pixels.
    /// Setting it takes effect from the next step, also while training runs; a GAN refuses it.
    /// An autoencoder's is `"l2"` (its tutorial's squared error, the default) or `"l1"`.
    #[wasm_bindgen(getter)]
    pub fn reconstruction_loss(&self) -> String {
        self.peek(|lab| lab.trainer().objective().recon.name().to_string())
    }

    #[wasm_bindgen(setter)]
    pub fn set_reconstruction_loss(&mut self, name: &str) -> Result<(), JsValue> {
        let recon = Recon::parse(name).map_err(js_err)?;
        self.set_objective(|o| VaeObjective { recon, ..o })
    }

    /// A VAE's KL weight β: each step minimises reconstruction + β·KL (1, the plain VAE; 0 to
    /// 100). Takes effect from the next step, also while training runs; a GAN refuses it, and an
    /// autoencoder (0: it has no KL term) refuses any other value.
    #[wasm_bindgen(getter)]
    pub fn kl_weight(&self) -> f64 {
        self.peek(|lab| lab.trainer().objective().kl_weight)
    }

    #[wasm_bindgen(setter)]
    pub fn set_kl_weight(&mut self, beta: f64) -> Result<(), JsValue> {
        self.set_objective(|o| VaeObjective { kl_weight: beta, ..o })
    }

    /// Every how many steps the WebGPU device's weights are copied back to the CPU (50): what a
    /// lost device can cost, against the bytes each copy reads back.
    #[wasm_bindgen(getter)]
    pub fn sync_interval(&self) -> u32 {
        self.peek(|lab| lab.trainer().sync_interval() as u32)
    }

    #[wasm_bindgen(setter)]
    pub fn set_sync_interval(&mut self, steps: u32) -> Result<(), JsValue> {
        self.lab_mut()?.set_sync_interval(steps as u64).map_err(js_err)
    }

    /// Milliseconds the CPU engine's steps have spent so far in each phase: `{forward, loss,
    /// backward, optimizer}` (the benchmark's shares; a step on WebGPU adds nothing here).
    #[wasm_bindgen(getter)]
    pub fn step_phases(&self) -> JsValue {
        self.peek(|lab| {
            let p = lab.trainer().engine_phases().unwrap_or_default();
            to_js(&Phases { forward: p.forward, loss: p.loss, backward: p.backward, optimizer: p.optimizer })
        })
    }

    /// Training steps taken so far by this model's trainer (a resumed run's count goes on).
    #[wasm_bindgen(getter)]
    pub fn steps_trained(&self) -> f64 {
        self.peek(|lab| lab.trainer().steps() as f64)
    }

    /// Steps in one pass over the dataset at the current batch size (0 with no dataset).
    #[wasm_bindgen(getter)]
    pub fn steps_per_epoch(&self) -> usize {
        self.peek(|lab| lab.trainer().steps_per_epoch())
    }

    /// One step on the next shuffled minibatch, on the CPU: an Adam step of the VAE, or one
    /// discriminator and one generator step of the GAN. If a loss or gradient is not finite it
    /// throws and leaves the weights untouched. (On WebGPU, use `submit_step` and `next_stats`.)
    pub fn train_step(&mut self) -> Result<TrainStats, JsValue> {
        let mut lab = self.lab_mut()?;
        let s = lab.train_step().map_err(js_err)?;
        Ok(TrainStats::of(&lab, s))
    }

    /// Moves training (and `sample_async`) to WebGPU: the weights, Adam's state and the dataset go
    /// up to the device once. The CPU keeps the weights as last read back, every `sync_interval` steps (50).
    pub fn use_webgpu(&mut self, gpu: &WebGpu) -> Result<(), JsValue> {
        self.lab_mut()?.use_gpu(gpu.gpu.clone()).map_err(js_err)
    }

    /// The WebGPU adapter training runs on, or `undefined` on the CPU.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> Option<String> {
        self.peek(|lab| lab.gpu_adapter().map(String::from))
    }

    /// Queues the next training step. On WebGPU it is submitted to the GPU's queue and this returns
    /// at once; on the CPU it runs now. `next_stats` hands out the results in order.
    pub fn submit_step(&mut self) -> Result<(), JsValue> {
        let mut inner = self.inner.try_borrow_mut().map_err(|_| busy())?;
        // Behind a refused CPU step nothing more trains until the queue has been handed out.
        if inner.queue.iter().any(|q| matches!(q, Queued::Failed(_))) {
            inner.queue.push_back(Queued::Failed(anyhow::anyhow!("an earlier queued step was refused; this one did not run")));
            return Ok(());
        }
        let queued = match inner.lab.submit_step() {
            Ok(step) => Queued::Step(step),
            // a step on the CPU (the engine) ran and was refused
            Err(e) if inner.lab.trainer().device().is_none() => Queued::Failed(e),
            Err(e) => return Err(js_err(e)),
        };
        inner.queue.push_back(queued);
        Ok(())
    }

    /// Steps submitted whose stats `next_stats` has not handed out yet.
    #[wasm_bindgen(getter)]
    pub fn steps_queued(&self) -> usize {
        self.inner.try_borrow().map(|i| i.queue.len()).unwrap_or(0)
    }

    /// A promise of the oldest queued step's `TrainStats`. It rejects with the step's error: a
    /// diverging step (the weights are left as before it, and so by every step queued behind it),
    /// or a lost WebGPU device (then `fall_back_to_cpu`).
    pub fn next_stats(&mut self) -> Result<Promise, JsValue> {
        let step = self.inner.try_borrow_mut().map_err(|_| busy())?.queue.pop_front();
        let step = step.ok_or_else(|| JsError::new("no training step is queued: call submit_step first"))?;
        let inner = self.inner.clone();
        let step = match step {
            Queued::Step(step) => step,
            Queued::Failed(e) => return Ok(Promise::reject(&js_err(e))),
        };
        Ok(future_to_promise(async move {
            // A lost readback comes back as the step's error from finish_step, which keeps the
            // trainer's queue in step.
            let outcome = step.read().await.map_err(|e| js_err(e))?;
            let mut inner = inner.try_borrow_mut().map_err(|_| JsValue::from(busy()))?;
            let s = inner.lab.finish_step(outcome).map_err(|e| js_err(e))?;
            Ok(TrainStats::of(&inner.lab, s).into())
        }))
    }

    /// Reads the GPU's weights back, so that `save`, `sample` and the other CPU calls see every
    /// step trained. Every queued step must have been handed out by `next_stats` first. Resolves
    /// at once on the CPU.
    pub fn sync(&mut self) -> Result<Promise, JsValue> {
        let pending = self.lab_mut()?.begin_sync().map_err(js_err)?;
        let inner = self.inner.clone();
        Ok(future_to_promise(async move {
            if let Some(p) = pending {
                let synced = p.read().await.map_err(|e| js_err(e))?;
                let mut inner = inner.try_borrow_mut().map_err(|_| JsValue::from(busy()))?;
                inner.lab.finish_sync(synced).map_err(|e| js_err(e))?;
            }
            Ok(JsValue::UNDEFINED)
        }))
    }

    /// After the WebGPU device is lost: training continues on the CPU from the last weights read
    /// back. Queued steps are dropped.
    pub fn fall_back_to_cpu(&mut self) -> Result<Fallback, JsValue> {
        let mut inner = self.inner.try_borrow_mut().map_err(|_| busy())?;
        let f = inner.lab.fall_back_to_cpu().map_err(js_err)?;
        inner.queue.clear();
        Ok(Fallback { resumed_at: f.resumed_at as f64, lost_steps: f.lost_steps as f64 })
    }

    /// After a step rejected with a `DivergedError`: back to the last good weights (copied every
    /// `sync_interval` steps), at half the learning rate, on the same backend. Returns
    /// `{resumed_at, learning_rate, retries_left}`; training goes on from step `resumed_at`.
    /// Throws once `max_recoveries` rollbacks are spent. Queued steps are dropped.
    pub fn recover(&mut self) -> Result<JsValue, JsValue> {
        let mut inner = self.inner.try_borrow_mut().map_err(|_| busy())?;
        let r = inner.lab.recover().map_err(js_err)?;
        inner.queue.clear();
        Ok(to_js(&RecoveryJs { resumed_at: r.resumed_at, learning_rate: r.learning_rate, retries_left: r.retries_left }))
    }

    /// How many rollbacks `recover` may make in this model's run (4; 0 turns it off).
    #[wasm_bindgen(getter)]
    pub fn max_recoveries(&self) -> u32 {
        self.peek(|lab| lab.trainer().max_recoveries())
    }

    #[wasm_bindgen(setter)]
    pub fn set_max_recoveries(&mut self, n: u32) -> Result<(), JsValue> {
        self.lab_mut()?.trainer_mut().set_max_recoveries(n).map_err(js_err)
    }

    /// The WebGPU queue's traffic since `use_webgpu`, `{submissions, uploaded, read_back}`
    /// (bytes), or `undefined` on the CPU: for the benchmark.
    #[wasm_bindgen(getter)]
    pub fn gpu_traffic(&self) -> JsValue {
        match self.peek(|lab| lab.gpu_io()) {
            Some(io) => to_js(&GpuTraffic { submissions: io.submissions, uploaded: io.uploaded, read_back: io.read_back }),
            None => JsValue::UNDEFINED,
        }
    }

    /// Kept for compatibility: `gpu_traffic` as a JSON string.
    #[wasm_bindgen(getter)]
    pub fn gpu_io(&self) -> Option<String> {
        self.peek(|lab| lab.gpu_io())
            .map(|io| format!(r#"{{"submissions":{},"uploaded":{},"read_back":{}}}"#, io.submissions, io.uploaded, io.read_back))
    }

    /// Destroys the WebGPU device training runs on, as a driver reset would: for tests of the fallback.
    pub fn lose_device(&self) -> Result<(), JsValue> {
        self.lab()?.lose_gpu_device().map_err(js_err)
    }

    /// A promise of `sample(z, labels)`: decoded on WebGPU when training runs there (with the GPU's
    /// current weights), else on the CPU.
    pub fn sample_async(&mut self, z: &[f32], labels: Option<Vec<u8>>) -> Result<Promise, JsValue> {
        let mut lab = self.lab_mut()?;
        match lab.sample_on_gpu(z, labels.as_deref()).map_err(js_err)? {
            Some(pending) => Ok(future_to_promise(async move {
                let images = pending.read().await.map_err(|e| js_err(e))?;
                Ok(Float32Array::from(&images[..]).into())
            })),
            None => {
                let images = lab.sample(z, labels.as_deref()).map_err(js_err)?;
                Ok(Promise::resolve(&JsValue::from(Float32Array::from(&images[..]))))
            }
        }
    }
}

/// The digit classifier (`www/weights/classifier.safetensors`): reads generated digits, for the
/// page's mode-coverage bar and digit checks.
#[wasm_bindgen]
pub struct Classifier {
    model: ClassifierModel,
}

#[wasm_bindgen]
impl Classifier {
    pub fn load(bytes: &[u8]) -> Result<Classifier, JsValue> {
        Ok(Classifier { model: ClassifierModel::load(bytes, &Device::Cpu).map_err(js_err)? })
    }

    /// Images, flattened [n, 784] in [0, 1] → the digit (0–9) each is read as.
    pub fn classify(&self, images: &[f32]) -> Result<Vec<u8>, JsValue> {
        self.model.classify(images).map_err(js_err)
    }

    /// The Fréchet distance between two sets of images (each flattened [n, 784] in [0, 1], at
    /// least 2 of each) in the classifier's 128 features, as `eval` measures samples: lower is
    /// closer. The page measures how sharp reconstructions are with it (against their originals).
    pub fn frechet_distance(&self, images_a: &[f32], images_b: &[f32]) -> Result<f64, JsValue> {
        crate::metrics::frechet_distance_of_images(&self.model.net, images_a, images_b).map_err(js_err)
    }
}
