//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod parity;

use latent_lab::mnist::{self, Mnist};
use safetensors::{tensor::TensorView, Dtype};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The real MNIST files, loaded once per test binary.
pub fn mnist() -> &'static Mnist {
    static M: OnceLock<Mnist> = OnceLock::new();
    M.get_or_init(|| {
        mnist::load_dir(&mnist::default_dir()).unwrap_or_else(|e| panic!("loading MNIST: {e:#}"))
    })
}

/// The whole error chain, `outer: inner: ...`, so a test sees the root cause too.
pub fn chain(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

/// Unwraps an error whose message must contain every one of `needles`; returns the message.
pub fn expect_err<T>(r: anyhow::Result<T>, needles: &[&str]) -> String {
    let e = match r {
        Ok(_) => panic!("expected an error containing {needles:?}, got Ok"),
        Err(e) => e,
    };
    let msg = chain(&e);
    for n in needles {
        assert!(msg.contains(n), "error message {msg:?} does not contain {n:?}");
    }
    msg
}

/// An IDX file of unsigned bytes with the given dimensions.
pub fn idx(dims: &[usize], body: &[u8]) -> Vec<u8> {
    latent_lab::mnist::write_idx(dims, body).unwrap()
}

/// A small deterministic generator (xorshift64*), so tests need no extra crates.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Named F32 tensors (name, shape, values) as safetensors bytes, with optional metadata —
/// what `safetensors.torch.save_file(state_dict)` writes when `metadata` is None.
pub fn write_safetensors(
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    metadata: Option<HashMap<String, String>>,
) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(n, s, v)| (n.clone(), s.clone(), f32_bytes(v))).collect();
    let views: Vec<(&str, TensorView)> = bytes
        .iter()
        .map(|(n, s, d)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize(views, metadata).unwrap()
}

/// All tensors of a safetensors file as (name → (shape, values)).
pub fn read_tensors(bytes: &[u8]) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let st = safetensors::SafeTensors::deserialize(bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            assert_eq!(v.dtype(), Dtype::F32, "tensor {n}");
            (n, (v.shape().to_vec(), bytes_f32(v.data())))
        })
        .collect()
}

/// Metadata of a safetensors file.
pub fn read_metadata(bytes: &[u8]) -> HashMap<String, String> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    header.metadata().clone().unwrap_or_default()
}

/// Random weights for every parameter of `cfg`, PyTorch-named.
pub fn random_state_dict(
    cfg: &latent_lab::model::ModelConfig,
    seed: u64,
    scale: f32,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    cfg.param_shapes()
        .into_iter()
        .map(|(n, s)| {
            let len = s.iter().product();
            (n, s, rng.vec(len, -scale, scale))
        })
        .collect()
}

pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The machine's Vulkan device (Mesa's lavapipe here), once per test binary: a Vulkan instance per
/// test would cost seconds each.
pub fn gpu() -> latent_lab::gpu::Gpu {
    static GPU: OnceLock<latent_lab::gpu::Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        pollster::block_on(latent_lab::gpu::Gpu::request())
            .unwrap_or_else(|e| panic!("no Vulkan device ({e:#}); scripts/setup.sh installs Mesa's lavapipe"))
    })
    .clone()
}
