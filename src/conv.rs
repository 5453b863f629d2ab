//! A convolution layer of either direction, built from its `config::ConvLayer`: what the
//! convolutional kinds (`conv_ae.rs`, `conv_vae.rs`) are made of, beside max pooling (`pool.rs`).
//!
//! Both directions are a matrix product and a rearrangement, so the product is candle's fast
//! one and each backward pass is the other rearrangement (candle 0.11's own `conv_transpose2d`
//! runs a plain loop on the CPU; none of the tutorials' layers has `output_padding`):
//!
//! conv2d:           x [n, c_in, h, w] → im2col → cols [c_in·k·k, n·oh·ow];  y = W [c_out, c_in·k·k] · cols
//! conv_transpose2d: cols = Wᵀ [c_out·k·k, c_in] · x [c_in, n·h·w];  y = col2im(cols) [n, c_out, oh, ow]
//!
//! The columns of every image sit side by side, so each direction is one product of two
//! matrices, and so is each of its gradients (no per-image products to sum).
//!
//! `col2im` is the adjoint of `im2col` (each adds back what the other gathers), so each is the
//! other's backward; `tests/conv.rs` checks both layers against PyTorch's definitions and
//! finite differences at odd sizes.

use crate::config::ConvLayer;
use anyhow::{ensure, Result};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use candle_nn::VarBuilder;

#[derive(Clone, Debug)]
pub struct Conv {
    pub layer: ConvLayer,
    /// `nn.Conv2d`'s [out, in, k, k], or `nn.ConvTranspose2d`'s [in, out, k, k]
    weight: Tensor,
    bias: Tensor,
}

impl Conv {
    pub fn new(layer: &ConvLayer, vb: &VarBuilder) -> Result<Self> {
        let vb = vb.pp(layer.name);
        Ok(Self { layer: *layer, weight: vb.get(layer.weight_shape(), "weight")?, bias: vb.get(layer.c_out, "bias")? })
    }

    /// x [n, c_in, h, w] → [n, c_out, h', w'] (`ConvLayer::out_side`)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let l = &self.layer;
        let (n, c, h, w) = x.dims4()?;
        ensure!(c == l.c_in, "{} takes {} channels, not {c}", l.name, l.c_in);
        let side = |s| l.out_side(s).filter(|&o| o > 0).ok_or_else(|| anyhow::anyhow!("{} does not fit an input of {h}×{w}", l.name));
        let (oh, ow) = (side(h)?, side(w)?);
        let k2 = l.kernel * l.kernel;
        let y = if l.transposed {
            // [c_in, c_out·k·k]ᵀ · [c_in, n·h·w] → [c_out·k·k, n·h·w] → added onto [n, c_out, oh, ow]
            let wt = self.weight.reshape((l.c_in, l.c_out * k2))?.t()?;
            let x = x.reshape((n, c, h * w))?.transpose(0, 1)?.contiguous()?.reshape((c, n * h * w))?;
            let cols = wt.matmul(&x)?;
            cols.contiguous()?.apply_op1(Col2Im { geometry: Geometry::new(l, oh, ow, h, w), channels: l.c_out })?
        } else {
            let cols = x.contiguous()?.apply_op1(Im2Col { geometry: Geometry::new(l, h, w, oh, ow), channels: c })?;
            let y = self.weight.reshape((l.c_out, c * k2))?.matmul(&cols)?; // [c_out, n·oh·ow]
            y.reshape((l.c_out, n, oh * ow))?.transpose(0, 1)?.contiguous()?.reshape((n, l.c_out, oh, ow))?
        };
        Ok(y.broadcast_add(&self.bias.reshape((1, l.c_out, 1, 1))?)?)
    }
}

/// How a k×k window at stride s, padding p, lays over an image of h×w with `out_h`×`out_w` windows.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    kernel: usize,
    stride: usize,
    padding: usize,
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
}

impl Geometry {
    fn new(l: &ConvLayer, h: usize, w: usize, out_h: usize, out_w: usize) -> Self {
        Self { kernel: l.kernel, stride: l.stride, padding: l.padding, h, w, out_h, out_w }
    }

    /// For each (window row ky, column kx) and output position, the image pixel it covers, if
    /// inside: calls `f(col, pixel)` with col = ky·k + kx in the window and pixel = y·w + x.
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (k, s, p) = (self.kernel, self.stride as isize, self.padding as isize);
        for ky in 0..k {
            for kx in 0..k {
                for oy in 0..self.out_h {
                    let y = oy as isize * s - p + ky as isize;
                    if y < 0 || y >= self.h as isize {
                        continue;
                    }
                    for ox in 0..self.out_w {
                        let x = ox as isize * s - p + kx as isize;
                        if x >= 0 && x < self.w as isize {
                            f(ky * k + kx, oy * self.out_w + ox, y as usize * self.w + x as usize);
                        }
                    }
                }
            }
        }
    }
}

fn f32_contiguous<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = storage else { candle_core::bail!("convolutions take f32") };
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&v[a..b]),
        None => candle_core::bail!("convolutions take contiguous tensors"),
    }
}

/// [n, c, h, w] → [c·k·k, n·out_h·out_w]: each window's pixels as a column (zeros off the
/// image), image after image.
struct Im2Col {
    geometry: Geometry,
    channels: usize,
}

/// [c·k·k, n·out_h·out_w] → [n, c, h, w]: each column's values added back onto the pixels they
/// came from; the adjoint of `Im2Col` for the same geometry.
struct Col2Im {
    geometry: Geometry,
    channels: usize,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let x = f32_contiguous(storage, layout)?;
        let (plane, k2, windows) = (g.h * g.w, g.kernel * g.kernel, g.out_h * g.out_w);
        let c = self.channels;
        let n = x.len() / (c * plane);
        let row = n * windows;
        let mut cols = vec![0f32; c * k2 * row];
        for (i, img) in x.chunks_exact(plane).enumerate() {
            let (image, channel) = (i / c, i % c);
            let out = &mut cols[channel * k2 * row + image * windows..];
            g.each(|col, window, pixel| out[col * row + window] = img[pixel]);
        }
        Ok((CpuStorage::F32(cols), Shape::from((c * k2, row))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im { geometry: self.geometry, channels: self.channels })?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.geometry;
        let cols = f32_contiguous(storage, layout)?;
        let (plane, k2, windows) = (g.h * g.w, g.kernel * g.kernel, g.out_h * g.out_w);
        let c = self.channels;
        let n = cols.len() / (c * k2 * windows);
        let row = n * windows;
        let mut x = vec![0f32; n * c * plane];
        for (i, img) in x.chunks_exact_mut(plane).enumerate() {
            let (image, channel) = (i / c, i % c);
            let block = &cols[channel * k2 * row + image * windows..];
            g.each(|col, window, pixel| img[pixel] += block[col * row + window]);
        }
        Ok((CpuStorage::F32(x), Shape::from((n, c, g.h, g.w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col { geometry: self.geometry, channels: self.channels })?))
    }
}
