//! Where each parameter sits in a backend's flat buffers (θ, gradients, Adam's moments and
//! proposals), for the CPU engine (`engine/`) and the GPU (`gpu/`) alike: one slot per parameter
//! in name order (src/adam.rs's order), so a network's parameters (all names under "generator."
//! or "discriminator.") are one contiguous range and Adam over them is one pass.

use crate::config::ModelConfig;
use anyhow::{anyhow, bail, ensure, Result};
use std::collections::HashMap;

pub struct ParamLayout {
    /// (name, shape, offset), sorted by name.
    pub entries: Vec<(String, Vec<usize>, usize)>,
    pub total: usize,
}

impl ParamLayout {
    pub fn new(cfg: &ModelConfig) -> Self {
        let mut shapes = cfg.param_shapes();
        shapes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut total = 0;
        let entries = shapes
            .into_iter()
            .map(|(name, shape)| {
                let off = total;
                total += shape.iter().product::<usize>();
                (name, shape, off)
            })
            .collect();
        Self { entries, total }
    }

    pub fn offset(&self, name: &str) -> Result<u32> {
        match self.entries.iter().find(|e| e.0 == name) {
            Some(e) => Ok(e.2 as u32),
            None => bail!("no parameter {name}"),
        }
    }

    /// The contiguous range of the parameters whose names start with `prefix` (offset, count).
    pub fn range(&self, prefix: &str) -> (u32, u32) {
        let inside: Vec<_> = self.entries.iter().filter(|e| e.0.starts_with(prefix)).collect();
        match (inside.first(), inside.last()) {
            (Some(first), Some(last)) => {
                let end = last.2 + last.1.iter().product::<usize>();
                (first.2 as u32, (end - first.2) as u32)
            }
            _ => (0, 0),
        }
    }

    /// Flat values → named tensors' values.
    pub fn split(&self, flat: &[f32]) -> HashMap<String, Vec<f32>> {
        self.entries
            .iter()
            .map(|(name, shape, off)| (name.clone(), flat[*off..off + shape.iter().product::<usize>()].to_vec()))
            .collect()
    }

    /// Named tensors' values → flat values; every parameter must be there, at its size.
    pub fn join<V: AsRef<[f32]>>(&self, what: &str, get: impl Fn(&str) -> Option<V>) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.total];
        for (name, shape, off) in &self.entries {
            let v = get(name).ok_or_else(|| anyhow!("{what} has nothing for {name}"))?;
            let v = v.as_ref();
            let n: usize = shape.iter().product();
            ensure!(v.len() == n, "{what}: {name} has {} values; expected {n}", v.len());
            out[*off..off + n].copy_from_slice(v);
        }
        Ok(out)
    }

    /// Linear layer `name`'s place in θ.
    pub fn layer(&self, cfg: &ModelConfig, name: &str) -> Result<Layer> {
        let Some(&(_, fan_in, fan_out)) = cfg.layers().iter().find(|l| l.0 == name) else {
            bail!("no layer {name}");
        };
        Ok(Layer {
            weight: self.offset(&format!("{name}.weight"))?,
            bias: self.offset(&format!("{name}.bias"))?,
            fan_in,
            fan_out,
        })
    }
}

/// A linear layer's place in θ: W [fan_out, fan_in] at `weight`, b [fan_out] at `bias`.
#[derive(Clone, Copy, Debug)]
pub struct Layer {
    pub weight: u32,
    pub bias: u32,
    pub fan_in: usize,
    pub fan_out: usize,
}
