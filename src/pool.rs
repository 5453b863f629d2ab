//! 2-D max pooling with any kernel and stride, forward beside backward, as a candle custom op:
//! candle-core 0.11's own `max_pool2d` refuses a backward pass when the kernel differs from the
//! stride, and the convolutional autoencoder's second pool is PyTorch's `MaxPool2d(2, stride=1)`.
//!
//! forward:  x [n, c, h, w] → y [n, c, (h − k)/s + 1, (w − k)/s + 1], each the largest of its k×k window
//! backward: dx = each window's dy added at the first largest element of that window, in
//!           row-major order (PyTorch's choice), so overlapping windows add up where they share it
//!
//! `tests/conv.rs` checks both against finite differences and a plain loop at odd sizes.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

/// x [n, c, h, w] → its k×k maxima every `stride` pixels (no padding; windows that do not fit are dropped).
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool { kernel, stride })
}

#[derive(Clone, Copy)]
struct MaxPool {
    kernel: usize,
    stride: usize,
}

/// The pooled side of a side of `n` pixels.
fn pooled(n: usize, kernel: usize, stride: usize) -> candle_core::Result<usize> {
    if kernel == 0 || stride == 0 || n < kernel {
        candle_core::bail!("max pool of kernel {kernel} and stride {stride} does not fit a side of {n} pixels")
    }
    Ok((n - kernel) / stride + 1)
}

impl MaxPool {
    /// (n·c planes, h, w, out_h, out_w) of a contiguous [n, c, h, w] input.
    fn dims(&self, layout: &Layout) -> candle_core::Result<(usize, usize, usize, usize, usize)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        Ok((n * c, h, w, pooled(h, self.kernel, self.stride)?, pooled(w, self.kernel, self.stride)?))
    }

    /// The flat index, within its plane, of the first largest element of output pixel (oy, ox)'s window.
    fn argmax(&self, plane: &[f32], w: usize, oy: usize, ox: usize) -> usize {
        let (k, s) = (self.kernel, self.stride);
        let mut best = (oy * s) * w + ox * s;
        for dy in 0..k {
            for dx in 0..k {
                let i = (oy * s + dy) * w + ox * s + dx;
                // `>` keeps the first of equal maxima; a NaN is taken so that it propagates.
                if plane[i] > plane[best] || (plane[i].is_nan() && !plane[best].is_nan()) {
                    best = i;
                }
            }
        }
        best
    }
}

/// The contiguous f32 values a layout describes.
fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(values) = storage else { candle_core::bail!("max pool takes f32 {what}") };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("max pool takes contiguous {what}"),
    }
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool2d"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "input")?;
        let (planes, h, w, oh, ow) = self.dims(layout)?;
        let mut y = Vec::with_capacity(planes * oh * ow);
        for plane in x.chunks_exact(h * w) {
            for oy in 0..oh {
                for ox in 0..ow {
                    y.push(plane[self.argmax(plane, w, oy, ox)]);
                }
            }
        }
        let (n, c, _, _) = layout.shape().dims4()?;
        Ok((CpuStorage::F32(y), Shape::from((n, c, oh, ow))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(&grad_res.contiguous()?, &MaxPoolBackward(*self))?))
    }
}

/// (x, dy) → dx: the backward pass of `MaxPool`.
struct MaxPoolBackward(MaxPool);

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "max-pool2d-backward"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, dys: &CpuStorage, dyl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let pool = self.0;
        let x = contiguous_f32(xs, xl, "input")?;
        let dy = contiguous_f32(dys, dyl, "gradient")?;
        let (planes, h, w, oh, ow) = pool.dims(xl)?;
        if dy.len() != planes * oh * ow {
            candle_core::bail!("max pool's gradient has {} values for {planes} planes of {oh}×{ow}", dy.len())
        }
        let mut dx = vec![0f32; x.len()];
        for ((plane, dplane), dyplane) in x.chunks_exact(h * w).zip(dx.chunks_exact_mut(h * w)).zip(dy.chunks_exact(oh * ow)) {
            for oy in 0..oh {
                for ox in 0..ow {
                    dplane[pool.argmax(plane, w, oy, ox)] += dyplane[oy * ow + ox];
                }
            }
        }
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}
