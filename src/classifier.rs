//! The digit classifier that serves as the quality yardstick: a small LeNet-style CNN.
//!
//! x [n, 784] → [n, 1, 28, 28] → conv1 (5×5, 16) → ReLU → max-pool 2 → [n, 16, 12, 12]
//!   → conv2 (5×5, 32) → ReLU → max-pool 2 → [n, 32, 4, 4] → flatten [n, 512]
//!   → fc1 → ReLU → features [n, 128] → fc2 → logits [n, 10]
//!
//! The 128 features before the last layer are what the Fréchet distance compares (`metrics.rs`).
//! Trained with cross-entropy and Adam by `train classifier`; shipped as `www/weights/classifier.safetensors`.

use crate::adam::{Adam, AdamConfig};
use crate::checkpoint::{self, Metadata, StoredDtype};
use crate::engine::classify::{argmax_rows, ClassifierWeights};
use crate::input::count_images;
use crate::mnist::{Dataset, CLASSES, IMAGE_PIXELS, IMAGE_SIDE};
use crate::model::init_uniform;
use crate::mnist::batch_images;
use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2d, Linear, Module, VarBuilder, VarMap};
use rand::{rngs::StdRng, seq::SliceRandom, SeedableRng};

/// Width of the penultimate layer, the features the Fréchet distance uses.
pub use crate::engine::classify::FEATURES;

/// Every parameter as (PyTorch name, shape, fan_in), in initialisation order.
pub fn param_specs() -> Vec<(String, Vec<usize>, usize)> {
    let mut specs = Vec::new();
    for (name, shape) in [
        ("conv1", vec![16, 1, 5, 5]),
        ("conv2", vec![32, 16, 5, 5]),
        ("fc1", vec![FEATURES, 32 * 4 * 4]),
        ("fc2", vec![CLASSES, FEATURES]),
    ] {
        let fan_in: usize = shape[1..].iter().product();
        specs.push((format!("{name}.weight"), shape.clone(), fan_in));
        specs.push((format!("{name}.bias"), vec![shape[0]], fan_in));
    }
    specs
}

pub fn param_shapes() -> Vec<(String, Vec<usize>)> {
    param_specs().into_iter().map(|(n, s, _)| (n, s)).collect()
}

#[derive(Clone, Debug)]
pub struct Classifier {
    conv1: Conv2d,
    conv2: Conv2d,
    fc1: Linear,
    fc2: Linear,
}

impl Classifier {
    pub fn new(vb: VarBuilder) -> Result<Self> {
        let cfg = Default::default();
        Ok(Self {
            conv1: candle_nn::conv2d(1, 16, 5, cfg, vb.pp("conv1"))?,
            conv2: candle_nn::conv2d(16, 32, 5, cfg, vb.pp("conv2"))?,
            fc1: candle_nn::linear(32 * 4 * 4, FEATURES, vb.pp("fc1"))?,
            fc2: candle_nn::linear(FEATURES, CLASSES, vb.pp("fc2"))?,
        })
    }

    /// x [n, 784] in [0, 1] → features [n, 128]
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let x = x.reshape((n, 1, IMAGE_SIDE, IMAGE_SIDE))?;
        let h = self.conv1.forward(&x)?.relu()?.max_pool2d(2)?;
        let h = self.conv2.forward(&h)?.relu()?.max_pool2d(2)?;
        Ok(self.fc1.forward(&h.flatten_from(1)?)?.relu()?)
    }

    /// features [n, 128] → logits [n, 10]
    pub fn logits_from_features(&self, features: &Tensor) -> Result<Tensor> {
        Ok(self.fc2.forward(features)?)
    }

    /// x [n, 784] → logits [n, 10]
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.logits_from_features(&self.features(x)?)
    }

    /// The weights as flat arrays, for the engine's forward (`engine::classify`).
    pub fn weights(&self) -> Result<ClassifierWeights> {
        let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
        let bias = |b: Option<&Tensor>| b.map(flat).transpose()?.ok_or_else(|| anyhow::anyhow!("the classifier has a layer without a bias"));
        Ok(ClassifierWeights {
            conv1_weight: flat(self.conv1.weight())?,
            conv1_bias: bias(self.conv1.bias())?,
            conv2_weight: flat(self.conv2.weight())?,
            conv2_bias: bias(self.conv2.bias())?,
            fc1_weight: flat(self.fc1.weight())?,
            fc1_bias: bias(self.fc1.bias())?,
            fc2_weight: flat(self.fc2.weight())?,
            fc2_bias: bias(self.fc2.bias())?,
        })
    }
}

/// Images [n, 784] → the features [n, 128] and predicted digits [n], on the engine
/// (`engine::classify`; candle's forward above is what the tests hold it to).
pub fn features_and_predictions(net: &Classifier, images: &[f32]) -> Result<(Vec<f32>, Vec<u8>)> {
    ensure!(images.len().is_multiple_of(IMAGE_PIXELS), "{} values is not a whole number of images", images.len());
    let (features, logits) = net.weights()?.features_and_logits(images);
    Ok((features, argmax_rows(&logits)))
}

/// A classifier with its parameters and metadata, from a weights file or fresh.
pub struct ClassifierModel {
    pub net: Classifier,
    pub params: VarMap,
    pub meta: Metadata,
}

impl ClassifierModel {
    pub fn fresh(seed: u64, device: &Device) -> Result<Self> {
        let params = init_uniform(&param_specs(), seed, device)?;
        let net = Classifier::new(VarBuilder::from_varmap(&params, DType::F32, device))?;
        Ok(Self { net, params, meta: Metadata::from([("kind".to_string(), "classifier".to_string())]) })
    }

    pub fn load(bytes: &[u8], device: &Device) -> Result<Self> {
        let (st, mut meta) = checkpoint::read(bytes)?;
        match meta.get("kind").map(String::as_str) {
            None | Some("classifier") => {}
            Some(k) => bail!("weights file holds a `{k}` model, not the digit classifier"),
        }
        let params = checkpoint::load_params(&st, &param_shapes(), device)?;
        meta.insert("kind".into(), "classifier".into());
        let net = Classifier::new(VarBuilder::from_varmap(&params, DType::F32, device))?;
        Ok(Self { net, params, meta })
    }

    pub fn save(&self) -> Result<Vec<u8>> {
        checkpoint::save_params(&param_shapes(), &self.params, &self.meta, StoredDtype::F32)
    }

    /// Images, flattened [n, 784] in [0, 1] → the digit each one is read as.
    pub fn classify(&self, images: &[f32]) -> Result<Vec<u8>> {
        count_images(images)?;
        Ok(features_and_predictions(&self.net, images)?.1)
    }

    /// Test-set accuracy in [0, 1].
    pub fn accuracy(&self, data: &Dataset, device: &Device) -> Result<f64> {
        ensure!(!data.is_empty(), "cannot measure accuracy on an empty dataset");
        let indices: Vec<usize> = (0..data.len()).collect();
        let images = batch_images(data, &indices, device)?.flatten_all()?.to_vec1::<f32>()?;
        let (_, preds) = features_and_predictions(&self.net, &images)?;
        let right = preds.iter().zip(&data.labels).filter(|(p, y)| p == y).count();
        Ok(right as f64 / data.len() as f64)
    }
}

/// Trains the classifier: cross-entropy, Adam (lr 1e-3), shuffled minibatches from `seed`.
/// Calls `each_epoch(epoch, mean train loss)` after every pass.
pub fn train(
    model: &ClassifierModel,
    data: &Dataset,
    epochs: usize,
    batch: usize,
    seed: u64,
    device: &Device,
    mut each_epoch: impl FnMut(usize, f64) -> Result<()>,
) -> Result<()> {
    ensure!(!data.is_empty(), "the dataset is empty");
    let mut opt = Adam::new(Adam::vars_under(&model.params, "")?, &AdamConfig::PYTORCH)?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..data.len()).collect();
    for epoch in 1..=epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut n) = (0f64, 0usize);
        for idx in order.chunks(batch) {
            let x = batch_images(data, idx, device)?;
            let y: Vec<u32> = idx.iter().map(|&i| data.labels[i] as u32).collect();
            let y = Tensor::from_vec(y, idx.len(), device)?;
            let loss = candle_nn::loss::cross_entropy(&model.net.logits(&x)?, &y)?;
            let value = loss.to_scalar::<f32>()?;
            ensure!(value.is_finite(), "classifier training diverged: the loss is {value}");
            opt.step(&loss.backward()?, 1e-3)?;
            sum += value as f64;
            n += 1;
        }
        each_epoch(epoch, sum / n as f64)?;
    }
    Ok(())
}
