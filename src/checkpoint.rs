//! Weights files: safetensors with PyTorch's `state_dict` names, and metadata in the header.
//!
//! A file written by `safetensors.torch.save_file(model.state_dict(), …)` loads unchanged (kind and
//! sizes are read off the tensor names and shapes when the metadata is missing), in f32 or in the
//! precisions PyTorch users save (`model.half()`: F16, `.bfloat16()`: BF16, `.double()`: F64),
//! converted to f32; what we write (f32, or f16 on request) loads in PyTorch. The same format
//! carries every model kind and the digit classifier. A malformed file is refused with an error
//! that names what is wrong, under the limits the safetensors reference library sets: a header of
//! at most 100 MB, of valid JSON; every tensor's bytes inside the file, none overlapping another,
//! and their number what its dtype and shape need.

use crate::mnist::{CLASSES, IMAGE_PIXELS};
use crate::config::{Kind, ModelConfig};
use anyhow::{anyhow, bail, ensure, Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use safetensors::{tensor::TensorView, Dtype, SafeTensorError, SafeTensors};
use std::collections::{BTreeMap, HashMap};

/// What the header records beside the tensors: `kind`, `latent`, `hidden`, `dataset`, `epochs`,
/// `test_loss`, and anything else a writer adds. Values are strings, as safetensors requires.
pub type Metadata = BTreeMap<String, String>;

pub struct Checkpoint {
    pub cfg: ModelConfig,
    pub params: VarMap,
    pub meta: Metadata,
    /// Read from a decoder file (`save_decoder`): the other parameters are zeros, not weights.
    pub decoder_only: bool,
}

/// The metadata entry that marks a decoder file, and its value.
const PART: (&str, &str) = ("part", "decoder");

/// The precision tensors are written in: f32, or f16 (half the bytes; the models' weights are far
/// inside its range, and their samples change by well under a grey level).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoredDtype {
    #[default]
    F32,
    F16,
}

impl StoredDtype {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f32" | "F32" | "float32" => Ok(Self::F32),
            "f16" | "F16" | "float16" | "half" => Ok(Self::F16),
            _ => bail!("unknown weights precision `{name}`; use f32 or f16"),
        }
    }
}

/// Parses the container and its metadata; the error says the file is not safetensors, and why.
pub fn read(bytes: &[u8]) -> Result<(SafeTensors<'_>, Metadata)> {
    let invalid = |e: SafeTensorError| anyhow!("weights file is not valid safetensors: {}", explain(&e, bytes));
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(invalid)?;
    let st = SafeTensors::deserialize(bytes).map_err(invalid)?;
    let meta: Metadata = header.metadata().clone().unwrap_or_default().into_iter().collect();
    Ok((st, meta))
}

/// The reference library's refusal in words a reader can act on, naming the tensor where it can.
fn explain(e: &SafeTensorError, bytes: &[u8]) -> String {
    let header_len = bytes.get(..8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]));
    match e {
        SafeTensorError::HeaderTooSmall => format!("it is {} bytes long, too short for the 8-byte header length", bytes.len()),
        SafeTensorError::HeaderTooLarge => format!(
            "its header would be {} bytes, over the format's limit of 100,000,000",
            header_len.unwrap_or_default()
        ),
        SafeTensorError::InvalidHeaderLength => format!(
            "its header length ({} bytes) runs past the end of the {}-byte file",
            header_len.unwrap_or_default(),
            bytes.len()
        ),
        SafeTensorError::InvalidHeader(e) => format!("its header is not UTF-8 text ({e})"),
        SafeTensorError::InvalidHeaderDeserialization(e) => format!("its header is not a valid safetensors header ({e})"),
        SafeTensorError::InvalidOffset(name) => format!(
            "tensor `{name}`'s data offsets overlap another tensor's, leave a gap before it, or run past the end of the file"
        ),
        SafeTensorError::TensorInvalidInfo => match size_mismatch(bytes) {
            Some(detail) => detail,
            None => "a tensor's byte length disagrees with its dtype and shape".into(),
        },
        SafeTensorError::ValidationOverflow => "a tensor's shape is too large to address".into(),
        SafeTensorError::MetadataIncompleteBuffer => {
            "its tensors' data does not end where the file does (the file is cut short, or has bytes after the last tensor)".into()
        }
        other => other.to_string(),
    }
}

/// Which tensor's byte length disagrees with its dtype and shape, read off the header's JSON.
fn size_mismatch(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    for (name, info) in header.as_object()?.iter().filter(|(k, _)| *k != "__metadata__") {
        let dtype: Dtype = serde_json::from_value(info.get("dtype")?.clone()).ok()?;
        let shape: Vec<usize> = serde_json::from_value(info.get("shape")?.clone()).ok()?;
        let offsets: Vec<usize> = serde_json::from_value(info.get("data_offsets")?.clone()).ok()?;
        let elements = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
        let need = elements.checked_mul(dtype.bitsize())?.div_ceil(8);
        let have = offsets.get(1)?.checked_sub(*offsets.first()?);
        if have != Some(need) {
            return Some(format!(
                "tensor `{name}` is {dtype:?} of shape {shape:?}, which needs {need} bytes, but its offsets span {}",
                have.map_or("a negative length".to_string(), |h| format!("{h}"))
            ));
        }
    }
    None
}

/// A generative model's weights file, read and checked, in plain vectors: what `load` makes
/// variables of, and all the sampler (`sampler.rs`) needs, with no tensor library.
pub struct Loaded {
    pub cfg: ModelConfig,
    /// Every parameter the file holds (of a decoder file, the decoder's) as (name, values in f32).
    pub values: Vec<(String, Vec<f32>)>,
    pub meta: Metadata,
    /// A decoder file (`save_decoder`): `values` has the decoder's parameters alone.
    pub decoder_only: bool,
}

/// Reads and checks a generative model's weights file: every tensor present, of a float dtype
/// (converted to f32), finite, and of the shape the kind and sizes need.
pub fn load_checked(bytes: &[u8]) -> Result<Loaded> {
    let (st, meta) = read(bytes)?;
    let decoder_only = meta.get(PART.0).is_some_and(|p| p == PART.1);
    let (cfg, shapes, what) = if decoder_only {
        let cfg = decoder_config(&meta)?;
        (cfg, cfg.decoder_param_shapes(), "the decoder of a ")
    } else {
        let cfg = infer_config(&st, &meta)?;
        (cfg, cfg.param_shapes(), "")
    };
    let values = shapes
        .iter()
        .map(|(name, shape)| Ok((name.clone(), load_values(&st, name, shape)?)))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("{what}{} with latent {} and hidden {}", cfg.kind.name(), cfg.latent, cfg.hidden))?;
    let meta = if decoder_only { meta } else { with_config(&cfg, &meta) };
    Ok(Loaded { cfg, values, meta, decoder_only })
}

/// `load_checked`'s model as variables; of a decoder file, the parameters it lacks are zeros.
pub fn load(bytes: &[u8], device: &Device) -> Result<Checkpoint> {
    let Loaded { cfg, values, meta, decoder_only } = load_checked(bytes)?;
    let params = VarMap::new();
    {
        let mut data = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        let mut values: HashMap<String, Vec<f32>> = values.into_iter().collect();
        for (name, shape) in cfg.param_shapes() {
            let var = match values.remove(&name) {
                Some(v) => Var::from_tensor(&Tensor::from_vec(v, shape, device)?)?,
                None => Var::zeros(shape, candle_core::DType::F32, device)?,
            };
            data.insert(name, var);
        }
    }
    Ok(Checkpoint { cfg, params, meta, decoder_only })
}

/// A decoder file's kind and sizes, from its metadata (its tensors alone cannot tell a VAE's
/// latent from its label width).
fn decoder_config(meta: &Metadata) -> Result<ModelConfig> {
    let entry = |key: &str| meta.get(key).ok_or_else(|| anyhow!("decoder file's metadata has no `{key}`"));
    let size = |key: &str| -> Result<usize> {
        let v = entry(key)?;
        v.parse().map_err(|_| anyhow!("decoder file's metadata says {key} = {v}, not a size"))
    };
    let cfg = ModelConfig { kind: Kind::parse(entry("kind")?)?, latent: size("latent")?, hidden: size("hidden")? };
    cfg.validate().context("decoder file")?;
    Ok(cfg)
}

/// The decoder alone (a VAE's fc3 and fc4, a GAN's generator) as safetensors bytes, with the
/// kind, sizes and `part = decoder` in the metadata: all that sampling needs, in half the bytes
/// or less, for a page's first digits.
pub fn save_decoder(cfg: &ModelConfig, params: &VarMap, meta: &Metadata, dtype: StoredDtype) -> Result<Vec<u8>> {
    // A decoder file serves the light sampler, which decodes linear layers only.
    ensure!(
        !cfg.kind.is_convolutional(),
        "a `{}` model is saved whole: the decoder-only file is for the light sampler, which has no convolutions",
        cfg.kind.name()
    );
    let mut meta = with_config(cfg, meta);
    meta.insert(PART.0.into(), PART.1.into());
    save_params(&cfg.decoder_param_shapes(), params, &meta, dtype)
}

fn shape_of(st: &SafeTensors, name: &str) -> Result<Vec<usize>> {
    let shape = st.tensor(name).map_err(|_| anyhow!("weights file has no tensor `{name}`"))?.shape().to_vec();
    ensure!(shape.len() == 2, "weight `{name}` has shape {shape:?}; weights `…weight` are not matrices");
    Ok(shape)
}

/// The kind and sizes, from the tensor names and shapes (what PyTorch files carry); metadata,
/// when present, must agree.
fn infer_config(st: &SafeTensors, meta: &Metadata) -> Result<ModelConfig> {
    let has = |name: &str| st.tensor(name).is_ok();
    if has("conv1.weight") || meta.get("kind").is_some_and(|k| k == "classifier") {
        bail!("weights file holds the digit classifier, not a generative model; load it as a classifier");
    }
    let label_width = |input: usize, name: &str| -> Result<usize> {
        match input.checked_sub(IMAGE_PIXELS) {
            Some(c @ (0 | CLASSES)) => Ok(c),
            _ => bail!("weight `{name}` takes {input} inputs; expected 784 (an image) or 794 (an image and a label)"),
        }
    };
    let conv_encoder = st.tensor("encoder.0.weight").is_ok_and(|t| t.shape().len() == 4);
    let cfg = if conv_encoder {
        // a convolutional kind: its sizes from the layers that carry them, every shape checked after
        let e0 = st.tensor("encoder.0.weight").map_err(|_| anyhow!("weights file has no tensor `encoder.0.weight`"))?.shape().to_vec();
        if has("fc21.weight") {
            let fc21 = shape_of(st, "fc21.weight")?;
            ModelConfig { kind: Kind::ConvVae, latent: fc21[0], hidden: fc21[1] }
        } else {
            let e3 = st.tensor("encoder.3.weight").map_err(|_| {
                anyhow!("weights file has a convolution `encoder.0.weight` but no `fc21.weight` (a conv-vae) or `encoder.3.weight` (a conv-ae)")
            })?;
            let &[code_channels, _, _, _] = e3.shape() else {
                bail!("weight `encoder.3.weight` has shape {:?}; a conv-ae's second convolution is [out, in, k, k]", e3.shape());
            };
            // an absurd channel count is refused by the size check below, not wrapped
            let latent = code_channels.saturating_mul(crate::config::CONV_AE_CODE_PIXELS);
            ModelConfig { kind: Kind::ConvAe, latent, hidden: e0[0] }
        }
    } else if has("generator.fc1.weight") {
        let g1 = shape_of(st, "generator.fc1.weight")?;
        let c = label_width(shape_of(st, "discriminator.fc1.weight")?[1], "discriminator.fc1.weight")?;
        let kind = if c == 0 { Kind::Gan } else { Kind::Cgan };
        let latent = g1[1].checked_sub(c).filter(|&l| l > 0).ok_or_else(|| {
            anyhow!("weight `generator.fc1.weight` takes {} inputs, too few for a {c}-wide label", g1[1])
        })?;
        ModelConfig { kind, latent, hidden: g1[0] }
    } else if has("fc1.weight") {
        let fc1 = shape_of(st, "fc1.weight")?;
        let fc21 = shape_of(st, "fc21.weight")?;
        let kind = if label_width(fc1[1], "fc1.weight")? == 0 { Kind::Vae } else { Kind::Cvae };
        ModelConfig { kind, latent: fc21[0], hidden: fc1[0] }
    } else if has("encoder.0.weight") {
        // the autoencoder: 784 → hidden → hidden/2 → 12 → latent; the shapes are checked against these after
        let e0 = shape_of(st, "encoder.0.weight")?;
        let e6 = shape_of(st, "encoder.6.weight")?;
        ensure!(e0[1] == IMAGE_PIXELS, "weight `encoder.0.weight` takes {} inputs; an autoencoder's takes an image of 784", e0[1]);
        ModelConfig { kind: Kind::Ae, latent: e6[0], hidden: e0[0] }
    } else {
        bail!("weights file has no tensor `fc1.weight` (a VAE), `generator.fc1.weight` (a GAN) or `encoder.0.weight` (an autoencoder)");
    };
    cfg.validate().context("weights file")?;
    if let Some(k) = meta.get("kind") {
        ensure!(
            k == cfg.kind.name(),
            "weights metadata says kind = `{k}` but the tensors are a `{}` model",
            cfg.kind.name()
        );
    }
    for (key, value) in [("latent", cfg.latent), ("hidden", cfg.hidden)] {
        if let Some(m) = meta.get(key) {
            ensure!(
                m.parse::<usize>().ok() == Some(value),
                "weights metadata says {key} = {m} but the tensors have {key} = {value}"
            );
        }
    }
    Ok(cfg)
}

/// Every named tensor, checked to be of the expected shape and finite, converted to f32 where it
/// is stored as F16, BF16 or F64, as variables.
pub fn load_params(st: &SafeTensors, shapes: &[(String, Vec<usize>)], device: &Device) -> Result<VarMap> {
    let params = VarMap::new();
    {
        let mut data = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        for (name, shape) in shapes {
            let values = load_values(st, name, shape)?;
            data.insert(name.clone(), Var::from_tensor(&Tensor::from_vec(values, shape.clone(), device)?)?);
        }
    }
    Ok(params)
}

/// One named tensor's values as f32, checked to be of `shape` and finite.
pub fn load_values(st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    let view = st.tensor(name).map_err(|_| anyhow!("weights file has no tensor `{name}`"))?;
    ensure!(view.shape() == shape, "weight `{name}` has shape {:?}; expected {shape:?}", view.shape());
    let values = to_f32(&view, name)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!("weight `{name}` holds a non-finite value ({}) at element {i}", values[i]);
    }
    Ok(values)
}

/// A tensor's values as f32. An F64 value beyond f32's range is refused by name, rather than
/// turned into an infinity that the finiteness check would blame on the file.
fn to_f32(view: &TensorView, name: &str) -> Result<Vec<f32>> {
    let d = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => d.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        Dtype::F16 => d.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::BF16 => d.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        Dtype::F64 => {
            let wide: Vec<f64> =
                d.chunks_exact(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])).collect();
            if let Some(i) = wide.iter().position(|v| v.is_finite() && v.abs() > f32::MAX as f64) {
                bail!("weight `{name}` holds {:e} at element {i}, beyond the range of f32", wide[i]);
            }
            wide.into_iter().map(|v| v as f32).collect()
        }
        other => bail!("weight `{name}` is {other:?}; expected F32, F16, BF16 or F64"),
    })
}

/// Writes a generative model's parameters and metadata as safetensors bytes, in `dtype`.
pub fn save(cfg: &ModelConfig, params: &VarMap, meta: &Metadata, dtype: StoredDtype) -> Result<Vec<u8>> {
    save_params(&cfg.param_shapes(), params, &with_config(cfg, meta), dtype)
}

/// `meta` with the kind and sizes of `cfg`, as every file we write records them.
pub fn with_config(cfg: &ModelConfig, meta: &Metadata) -> Metadata {
    let mut meta = meta.clone();
    meta.insert("kind".into(), cfg.kind.name().into());
    meta.insert("latent".into(), cfg.latent.to_string());
    meta.insert("hidden".into(), cfg.hidden.to_string());
    meta
}

/// Writes the named parameters (sorted by name) and metadata as safetensors bytes, in `dtype`.
pub fn save_params(shapes: &[(String, Vec<usize>)], params: &VarMap, meta: &Metadata, dtype: StoredDtype) -> Result<Vec<u8>> {
    let data = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
    let mut tensors: Vec<(&str, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, shape) in shapes {
        let var = data.get(name).with_context(|| format!("model has no parameter `{name}`"))?;
        let values = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let bytes = match dtype {
            StoredDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            StoredDtype::F16 => {
                if let Some(i) = values.iter().position(|v| v.abs() > half::f16::MAX.to_f32()) {
                    bail!("weight `{name}` holds {} at element {i}, beyond the range of f16; save it as f32", values[i]);
                }
                values.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect()
            }
        };
        tensors.push((name, shape.clone(), bytes));
    }
    let stored = match dtype {
        StoredDtype::F32 => Dtype::F32,
        StoredDtype::F16 => Dtype::F16,
    };
    serialize(tensors.into_iter().map(|(n, s, d)| (n.to_string(), stored, s, d)).collect(), meta)
}

/// Named tensors (name, dtype, shape, little-endian bytes) and metadata as safetensors bytes, the
/// header's keys sorted so that the same tensors give the same bytes.
pub fn serialize(tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, meta: &Metadata) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, dtype, s, d)| Ok((n.as_str(), TensorView::new(*dtype, s.clone(), d)?)))
        .collect::<Result<Vec<_>>>()?;
    let meta: HashMap<String, String> = meta.clone().into_iter().collect();
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
