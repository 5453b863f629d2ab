//! The generative model kinds, their sizes and layers, and one type that samples from any of them.
//!
//! | kind   | networks                        | label (one-hot, 10) joined to      |
//! |--------|---------------------------------|------------------------------------|
//! | `vae`  | encoder + decoder (`vae.rs`)    | —                                  |
//! | `cvae` | encoder + decoder               | the encoder's input, the latent    |
//! | `gan`  | generator + discriminator (`gan.rs`) | —                             |
//! | `cgan` | generator + discriminator       | the generator's z, the discriminator's input |

use crate::gan::Gan;
use crate::mnist::{CLASSES, IMAGE_PIXELS};
use crate::vae::Vae;
use anyhow::{bail, ensure, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{rngs::StdRng, Rng, SeedableRng};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vae,
    Cvae,
    Gan,
    Cgan,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Vae, Kind::Cvae, Kind::Gan, Kind::Cgan];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Vae => "vae",
            Kind::Cvae => "cvae",
            Kind::Gan => "gan",
            Kind::Cgan => "cgan",
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        match Kind::ALL.into_iter().find(|k| k.name() == s) {
            Some(k) => Ok(k),
            None => bail!("unknown model kind `{s}`; the kinds are vae, cvae, gan and cgan"),
        }
    }

    pub fn is_gan(self) -> bool {
        matches!(self, Kind::Gan | Kind::Cgan)
    }

    /// Whether the model takes a digit label beside its latent vector.
    pub fn is_conditional(self) -> bool {
        matches!(self, Kind::Cvae | Kind::Cgan)
    }

    /// Width of the label joined to the networks' inputs: 10 for conditional kinds, else 0.
    pub fn label_width(self) -> usize {
        if self.is_conditional() { CLASSES } else { 0 }
    }

    /// The sizes the tutorials use: VAE latent 20, hidden 400; GAN z 64, hidden 256 (G 64→256→512→784).
    pub fn default_config(self) -> ModelConfig {
        if self.is_gan() {
            ModelConfig { kind: self, latent: 64, hidden: 256 }
        } else {
            ModelConfig { kind: self, latent: 20, hidden: 400 }
        }
    }

    /// Adam's learning rate and β1 as the tutorials train each family (β2 = 0.999 for both).
    pub fn default_adam(self) -> (f64, f64) {
        if self.is_gan() { (2e-4, 0.5) } else { (1e-3, 0.9) }
    }
}

/// A model's kind and sizes; everything about its shapes follows from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    pub kind: Kind,
    /// VAE: latent dimensions; GAN: dimensions of the generator's input noise z.
    pub latent: usize,
    /// VAE: the encoder's and decoder's hidden width; GAN: the narrower hidden width (the other is twice it).
    pub hidden: usize,
}

impl ModelConfig {
    pub const fn vae(latent: usize, hidden: usize) -> Self {
        Self { kind: Kind::Vae, latent, hidden }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!((1..=512).contains(&self.latent), "latent size {} is outside 1..=512", self.latent);
        ensure!((1..=4096).contains(&self.hidden), "hidden size {} is outside 1..=4096", self.hidden);
        Ok(())
    }

    /// The linear layers, in initialisation order, as (PyTorch name, fan_in, fan_out).
    pub fn layers(&self) -> Vec<(&'static str, usize, usize)> {
        let (l, h, p, c) = (self.latent, self.hidden, IMAGE_PIXELS, self.kind.label_width());
        if self.kind.is_gan() {
            vec![
                ("generator.fc1", l + c, h),
                ("generator.fc2", h, 2 * h),
                ("generator.fc3", 2 * h, p),
                ("discriminator.fc1", p + c, 2 * h),
                ("discriminator.fc2", 2 * h, h),
                ("discriminator.fc3", h, 1),
            ]
        } else {
            vec![("fc1", p + c, h), ("fc21", h, l), ("fc22", h, l), ("fc3", l + c, h), ("fc4", h, p)]
        }
    }

    /// Every parameter with its PyTorch name and shape: `.weight` is [out, in], `.bias` is [out].
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        linear_param_shapes(&self.layers())
    }
}

pub fn linear_param_shapes(layers: &[(&str, usize, usize)]) -> Vec<(String, Vec<usize>)> {
    layers
        .iter()
        .flat_map(|&(name, fan_in, fan_out)| {
            [(format!("{name}.weight"), vec![fan_out, fan_in]), (format!("{name}.bias"), vec![fan_out])]
        })
        .collect()
}

/// Fresh parameters drawn as PyTorch's `nn.Linear.reset_parameters` does (weights and biases
/// uniform in ±1/√fan_in), layer by layer from one seeded generator, so a run can be repeated exactly.
pub fn init_params(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<VarMap> {
    cfg.validate()?;
    init_linear_params(&cfg.layers(), seed, device)
}

pub fn init_linear_params(layers: &[(&str, usize, usize)], seed: u64, device: &Device) -> Result<VarMap> {
    let specs: Vec<(String, Vec<usize>, usize)> = layers
        .iter()
        .flat_map(|&(name, fan_in, fan_out)| {
            [(format!("{name}.weight"), vec![fan_out, fan_in], fan_in), (format!("{name}.bias"), vec![fan_out], fan_in)]
        })
        .collect();
    init_uniform(&specs, seed, device)
}

/// Each (name, shape, fan_in) drawn uniform in ±1/√fan_in, in order, from one generator seeded
/// with `seed` (PyTorch's default for `nn.Linear` and `nn.Conv2d` weights and biases).
pub fn init_uniform(specs: &[(String, Vec<usize>, usize)], seed: u64, device: &Device) -> Result<VarMap> {
    let mut rng = StdRng::seed_from_u64(seed);
    let varmap = VarMap::new();
    {
        let mut data = varmap.data().lock().map_err(|_| anyhow::anyhow!("parameter map is poisoned"))?;
        for (name, shape, fan_in) in specs {
            let bound = 1.0 / (*fan_in as f32).sqrt();
            let n: usize = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            data.insert(name.clone(), Var::from_tensor(&Tensor::from_vec(values, shape.clone(), device)?)?);
        }
    }
    Ok(varmap)
}

/// Labels [n] in 0..10 → one-hot rows [n, 10].
pub fn one_hot(labels: &[u8], device: &Device) -> Result<Tensor> {
    let mut v = vec![0f32; labels.len() * CLASSES];
    for (i, &y) in labels.iter().enumerate() {
        ensure!((y as usize) < CLASSES, "label {i} is {y}; digit labels are 0 to 9");
        v[i * CLASSES + y as usize] = 1.0;
    }
    Ok(Tensor::from_vec(v, (labels.len(), CLASSES), device)?)
}

/// A model of any kind over its parameters; the varmap's vars stay shared with it, so an
/// optimiser stepping them changes what it computes.
#[derive(Clone, Debug)]
pub enum Net {
    Vae(Vae),
    Gan(Gan),
}

impl Net {
    pub fn new(cfg: ModelConfig, varmap: &VarMap, device: &Device) -> Result<Net> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        Ok(if cfg.kind.is_gan() { Net::Gan(Gan::new(cfg, vb)?) } else { Net::Vae(Vae::new(cfg, vb)?) })
    }

    /// z [n, latent] (and one-hot labels [n, 10] for conditional kinds) → images [n, 784] in [0, 1]:
    /// the VAE's decoder or the GAN's generator.
    pub fn generate(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Net::Vae(v) => v.decode(z, y),
            Net::Gan(g) => g.generator.forward(z, y),
        }
    }
}

/// Joins a one-hot label to each row: [n, d] → [n, d + 10]; unconditional models pass `None`.
pub fn with_label(x: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
    Ok(match y {
        Some(y) => Tensor::cat(&[x, y], 1)?,
        None => x.clone(),
    })
}
