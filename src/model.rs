//! A model of any generative kind over its parameters: PyTorch's initialisation, and one type that
//! samples from any of them. The kinds and sizes are `config.rs`'s, re-exported here.

pub use crate::config::{linear_param_shapes, one_hot, with_label, Kind, ModelConfig};
use crate::ae::{Autoencoder, PointNet};
use crate::config::Family;
use crate::conv_ae::ConvAutoencoder;
use crate::conv_vae::ConvVae;
use crate::gan::Gan;
use crate::vae::{Vae, VariationalNet};
use std::sync::Arc;
use anyhow::Result;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Fresh parameters drawn as PyTorch's `nn.Linear.reset_parameters` does (weights and biases
/// uniform in ±1/√fan_in), layer by layer from one seeded generator, so a run can be repeated exactly.
pub fn init_params(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<VarMap> {
    cfg.validate()?;
    init_uniform(&cfg.param_specs(), seed, device)
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

/// A model of any kind over its parameters; the varmap's vars stay shared with it, so an
/// optimiser stepping them changes what it computes.
#[derive(Clone, Debug)]
pub enum Net {
    /// The VAEs: the MLP's (`vae`, `cvae`) and the convolutional one.
    Vae(Arc<dyn VariationalNet>),
    Gan(Gan),
    /// The autoencoders: the linear one and the convolutional one.
    Ae(Arc<dyn PointNet>),
}

impl Net {
    pub fn new(cfg: ModelConfig, varmap: &VarMap, device: &Device) -> Result<Net> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, device);
        Ok(match (cfg.kind.family(), cfg.kind.is_convolutional()) {
            (Family::Gan, _) => Net::Gan(Gan::new(cfg, vb)?),
            (Family::Vae, false) => Net::Vae(Arc::new(Vae::new(cfg, vb)?)),
            (Family::Vae, true) => Net::Vae(Arc::new(ConvVae::new(cfg, vb)?)),
            (Family::Ae, false) => Net::Ae(Arc::new(Autoencoder::new(cfg, vb)?)),
            (Family::Ae, true) => Net::Ae(Arc::new(ConvAutoencoder::new(cfg, vb)?)),
        })
    }

    /// z [n, latent] (and one-hot labels [n, 10] for conditional kinds) → images [n, 784] in [0, 1]:
    /// the VAE's decoder, the GAN's generator or the autoencoder's decoder.
    pub fn generate(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        match self {
            Net::Vae(v) => v.decode(z, y),
            Net::Gan(g) => g.generator.forward(z, y),
            Net::Ae(a) => a.decode(z),
        }
    }
}
