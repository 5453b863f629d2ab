//! Weights files: safetensors with PyTorch's `state_dict` names, f32, and metadata in the header.
//!
//! A file written by `safetensors.torch.save_file(model.state_dict(), …)` loads unchanged (sizes are
//! read off the shapes when the metadata is missing), and what we write loads in PyTorch.

use crate::vae::VaeConfig;
use anyhow::{anyhow, bail, ensure, Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};

/// What the header records beside the tensors: `kind`, `latent`, `hidden`, `dataset`, `epochs`,
/// `test_loss`, and anything else a writer adds. Values are strings, as safetensors requires.
pub type Metadata = BTreeMap<String, String>;

pub struct Checkpoint {
    pub cfg: VaeConfig,
    pub params: VarMap,
    pub meta: Metadata,
}

/// Reads and checks a VAE weights file: every tensor present, f32, and of the shape the sizes need.
pub fn load(bytes: &[u8], device: &Device) -> Result<Checkpoint> {
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("weights file is not valid safetensors: {e}"))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| anyhow!("weights file is not valid safetensors: {e}"))?;
    let meta: Metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let kind = meta.get("kind").map(String::as_str).unwrap_or("vae");
    ensure!(kind == "vae", "weights file holds a `{kind}` model; this build loads `vae`");

    let shape_of = |name: &str| -> Result<Vec<usize>> {
        Ok(st.tensor(name).map_err(|_| anyhow!("weights file has no tensor `{name}`"))?.shape().to_vec())
    };
    // Sizes come from the shapes (what PyTorch files carry); metadata, when present, must agree.
    let fc1 = shape_of("fc1.weight")?;
    let fc21 = shape_of("fc21.weight")?;
    ensure!(fc1.len() == 2 && fc21.len() == 2, "weights `fc1.weight`/`fc21.weight` are not matrices");
    let cfg = VaeConfig { latent: fc21[0], hidden: fc1[0] };
    cfg.validate().context("weights file")?;
    for (key, value) in [("latent", cfg.latent), ("hidden", cfg.hidden)] {
        if let Some(m) = meta.get(key) {
            ensure!(
                m.parse::<usize>().ok() == Some(value),
                "weights metadata says {key} = {m} but the tensors have {key} = {value}"
            );
        }
    }

    let params = VarMap::new();
    {
        let mut data = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        for (name, shape) in cfg.param_shapes() {
            let view = st.tensor(&name).map_err(|_| anyhow!("weights file has no tensor `{name}`"))?;
            ensure!(view.dtype() == Dtype::F32, "weight `{name}` is {:?}; expected F32", view.dtype());
            ensure!(
                view.shape() == shape.as_slice(),
                "weight `{name}` has shape {:?}; expected {shape:?} for latent {} and hidden {}",
                view.shape(),
                cfg.latent,
                cfg.hidden
            );
            let values: Vec<f32> =
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                bail!("weight `{name}` holds a non-finite value ({}) at element {i}", values[i]);
            }
            data.insert(name, Var::from_tensor(&Tensor::from_vec(values, shape, device)?)?);
        }
    }
    let mut meta = meta;
    meta.insert("kind".into(), "vae".into());
    meta.insert("latent".into(), cfg.latent.to_string());
    meta.insert("hidden".into(), cfg.hidden.to_string());
    Ok(Checkpoint { cfg, params, meta })
}

/// Writes the parameters (sorted by name) and metadata as safetensors bytes.
pub fn save(cfg: &VaeConfig, params: &VarMap, meta: &Metadata) -> Result<Vec<u8>> {
    let data = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape) in cfg.param_shapes() {
        let var = data.get(&name).with_context(|| format!("model has no parameter `{name}`"))?;
        let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        tensors.push((name, shape, values.iter().flat_map(|v| v.to_le_bytes()).collect()));
    }
    let views = tensors
        .iter()
        .map(|(n, s, d)| Ok((n.as_str(), TensorView::new(Dtype::F32, s.clone(), d)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut meta: HashMap<String, String> = meta.clone().into_iter().collect();
    meta.insert("kind".into(), "vae".into());
    meta.insert("latent".into(), cfg.latent.to_string());
    meta.insert("hidden".into(), cfg.hidden.to_string());
    sorted_header(safetensors::serialize(views, Some(meta))?)
}

/// Rewrites a safetensors file's JSON header with its keys sorted (the library writes them from
/// hash maps, in a different order each time), so saving the same weights gives the same bytes.
/// The data section and its offsets are unchanged; the header is padded with spaces to a multiple
/// of 8 bytes, as the format asks.
fn sorted_header(bytes: Vec<u8>) -> Result<Vec<u8>> {
    let n = u64::from_le_bytes(bytes[..8].try_into()?) as usize;
    // serde_json's maps are ordered by key (BTreeMap), so a round trip sorts the header.
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n])?;
    let mut json = serde_json::to_vec(&header)?;
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}
