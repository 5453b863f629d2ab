//! The convolutional kinds' layers on the engine, each forward beside its backward over
//! caller-owned activations: a convolution of either direction as one im2col product over the
//! whole batch, and max pooling with any kernel and stride (PyTorch's, as `src/conv.rs` and
//! `src/pool.rs` define them for candle, which the tests hold these to).
//!
//! Activations are position-major, [n, y, x, channel] (the classifier's layout,
//! `classify.rs`), so that a window's pixels are runs of whole channel vectors and a product's
//! rows are pixels:
//!
//! conv2d           cols [n·oh·ow, k·k·c_in] = im2col(x);  y [n·oh·ow, c_out] = cols · Wᵀ + b
//! conv_transpose2d cols [n·h·w, k·k·c_out] = x [n·h·w, c_in] · W;  y = col2im(cols) + b
//!
//! with W, PyTorch's [a, b, k, k] ([out, in, k, k], or [in, out, k, k] transposed), read as
//! [a, k·k·b]: it is reordered to [a, k, k, b] each step (`load`), so a column of the im2col
//! rows is (ky, kx, channel), and its gradient is reordered back into θ's layout. `col2im` is the
//! adjoint of `im2col` over the same windows, so each direction's backward is the other's forward.

use super::layers::column_sums;
use super::matmul::{multiply, Act, Epilogue, Strided};
use crate::config::ConvLayer;
use crate::layout::ParamLayout;
use anyhow::{anyhow, Result};

/// How k×k windows at a stride and padding lay over a square image: `windows`² of them, over
/// `image`² pixels (a convolution's input for conv2d, its output for conv_transpose2d).
#[derive(Clone, Copy, Debug)]
struct Windows {
    kernel: usize,
    stride: usize,
    padding: usize,
    image: usize,
    windows: usize,
}

impl Windows {
    /// f(window, kernel position ky·k + kx, pixel) for every kernel position of every window that
    /// falls inside the image (windows and pixels row-major).
    fn each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (k, s, p) = (self.kernel, self.stride as isize, self.padding as isize);
        for oy in 0..self.windows {
            for ox in 0..self.windows {
                for ky in 0..k {
                    let y = oy as isize * s - p + ky as isize;
                    if y < 0 || y >= self.image as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let x = ox as isize * s - p + kx as isize;
                        if x >= 0 && x < self.image as isize {
                            f(oy * self.windows + ox, ky * k + kx, y as usize * self.image + x as usize);
                        }
                    }
                }
            }
        }
    }

    /// cols [n·windows², k·k·ch] ← each window's pixels of src [n·image², ch], zeros off the image.
    fn im2col(&self, n: usize, ch: usize, src: &[f32], cols: &mut [f32]) {
        let (per_image, row) = (self.windows * self.windows, self.kernel * self.kernel * ch);
        let pixels = self.image * self.image * ch;
        cols[..n * per_image * row].fill(0.0);
        for i in 0..n {
            let (img, out) = (&src[i * pixels..(i + 1) * pixels], &mut cols[i * per_image * row..(i + 1) * per_image * row]);
            self.each(|w, at, pixel| out[w * row + at * ch..][..ch].copy_from_slice(&img[pixel * ch..][..ch]));
        }
    }

    /// dst [n·image², ch] ← each column's values added onto the pixels they stand for (overwrites dst).
    fn col2im(&self, n: usize, ch: usize, cols: &[f32], dst: &mut [f32]) {
        let (per_image, row) = (self.windows * self.windows, self.kernel * self.kernel * ch);
        let pixels = self.image * self.image * ch;
        dst[..n * pixels].fill(0.0);
        for i in 0..n {
            let (block, img) = (&cols[i * per_image * row..(i + 1) * per_image * row], &mut dst[i * pixels..(i + 1) * pixels]);
            self.each(|w, at, pixel| {
                img[pixel * ch..][..ch].iter_mut().zip(&block[w * row + at * ch..][..ch]).for_each(|(d, v)| *d += v);
            });
        }
    }
}

/// A convolution of either direction in θ, at its input's side.
pub struct Conv {
    layer: ConvLayer,
    /// Offsets of its weight and bias in θ (and the gradient).
    w: usize,
    b: usize,
    pub side_in: usize,
    pub side_out: usize,
    /// W [a, b, k, k] (θ's) as [a, k, k, b], and its gradient in that order.
    wr: Vec<f32>,
    dwr: Vec<f32>,
    /// The im2col rows of the batch: a conv2d's input patches, kept from the forward for dW; a
    /// transposed convolution's product before col2im, then its output gradient's patches.
    cols: Vec<f32>,
}

impl Conv {
    pub fn of(layout: &ParamLayout, layer: &ConvLayer, side_in: usize) -> Result<Self> {
        let side_out = layer.out_side(side_in).filter(|&s| s > 0).ok_or_else(|| anyhow!("{} does not fit a side of {side_in}", layer.name))?;
        let size = layer.weight_shape().iter().product();
        Ok(Self {
            layer: *layer,
            w: layout.offset(&format!("{}.weight", layer.name))? as usize,
            b: layout.offset(&format!("{}.bias", layer.name))? as usize,
            side_in,
            side_out,
            wr: vec![0.0; size],
            dwr: vec![0.0; size],
            cols: Vec::new(),
        })
    }

    /// Values per example of its output.
    pub fn output_len(&self) -> usize {
        self.side_out * self.side_out * self.layer.c_out
    }

    /// The windows, and the width of an im2col row (k·k times the channels they gather).
    fn windows(&self) -> (Windows, usize) {
        let l = &self.layer;
        let (image, windows, ch) = if l.transposed { (self.side_out, self.side_in, l.c_out) } else { (self.side_in, self.side_out, l.c_in) };
        (Windows { kernel: l.kernel, stride: l.stride, padding: l.padding, image, windows }, l.kernel * l.kernel * ch)
    }

    /// (a, b) of the weight's [a, b, k, k].
    fn weight_dims(&self) -> (usize, usize) {
        let l = &self.layer;
        if l.transposed { (l.c_in, l.c_out) } else { (l.c_out, l.c_in) }
    }

    /// Room for `n` examples.
    pub fn reserve(&mut self, n: usize) {
        let (g, row) = self.windows();
        self.cols.resize(n * g.windows * g.windows * row, 0.0);
    }

    /// The weight from θ, reordered [a, b, k, k] → [a, k, k, b]: each step, before the forward.
    pub fn load(&mut self, theta: &[f32]) {
        let ((a, b), k2) = (self.weight_dims(), self.layer.kernel * self.layer.kernel);
        transpose_each(a, b, k2, &theta[self.w..self.w + a * b * k2], &mut self.wr);
    }

    /// y [n·side_out², c_out] = act(conv(x [n·side_in², c_in]) + b).
    pub fn forward(&mut self, theta: &[f32], n: usize, x: &[f32], y: &mut [f32], act: Act) {
        let l = self.layer;
        let (g, row) = self.windows();
        let bias = &theta[self.b..self.b + l.c_out];
        let rows = n * g.windows * g.windows;
        if !l.transposed {
            g.im2col(n, l.c_in, x, &mut self.cols);
            let e = Epilogue { bias: Some(bias), act, ..Epilogue::default() };
            multiply(rows, l.c_out, row, Strided::rows(&self.cols, row), Strided::transposed(&self.wr, row), y, l.c_out, e);
        } else {
            multiply(rows, row, l.c_in, Strided::rows(x, l.c_in), Strided::rows(&self.wr, row), &mut self.cols, row, Epilogue::default());
            g.col2im(n, l.c_out, &self.cols, y);
            for pixel in y[..n * self.output_len()].chunks_exact_mut(l.c_out) {
                pixel.iter_mut().zip(bias).for_each(|(v, b)| *v = act.apply(*v + b));
            }
        }
    }

    /// From dy [n·side_out², c_out] (the gradient at the output before its activation): dW and db
    /// into `grad` (θ's layout), and dx [n·side_in², c_in] (overwritten) when the input needs one.
    /// `x` is the forward's input; a conv2d reuses the forward's patches of it.
    pub fn backward(&mut self, n: usize, x: &[f32], dy: &[f32], grad: &mut [f32], dx: Option<&mut [f32]>) {
        let l = self.layer;
        let (g, row) = self.windows();
        let rows = n * g.windows * g.windows;
        let out_rows = n * self.side_out * self.side_out;
        if !l.transposed {
            // dW [c_out, row] = dyᵀ · cols; dcols = dy · W, added back onto the input's pixels
            multiply(l.c_out, row, rows, Strided::transposed(dy, l.c_out), Strided::rows(&self.cols, row), &mut self.dwr, row, Epilogue::default());
            if let Some(dx) = dx {
                multiply(rows, row, l.c_out, Strided::rows(dy, l.c_out), Strided::rows(&self.wr, row), &mut self.cols, row, Epilogue::default());
                g.col2im(n, l.c_in, &self.cols, dx);
            }
        } else {
            // dcols = dy's patches; dW [c_in, row] = xᵀ · dcols; dx = dcols · Wᵀ
            g.im2col(n, l.c_out, dy, &mut self.cols);
            multiply(l.c_in, row, rows, Strided::transposed(x, l.c_in), Strided::rows(&self.cols, row), &mut self.dwr, row, Epilogue::default());
            if let Some(dx) = dx {
                multiply(rows, l.c_in, row, Strided::rows(&self.cols, row), Strided::transposed(&self.wr, row), dx, l.c_in, Epilogue::default());
            }
        }
        column_sums(&dy[..out_rows * l.c_out], l.c_out, &mut grad[self.b..self.b + l.c_out]);
        let ((a, b), k2) = (self.weight_dims(), l.kernel * l.kernel);
        transpose_each(a, k2, b, &self.dwr, &mut grad[self.w..self.w + a * b * k2]);
    }
}

/// Max pooling of k×k windows every `stride` pixels (no padding) over [n, side², ch], which
/// remembers each maximum's place for the backward.
pub struct MaxPool {
    kernel: usize,
    stride: usize,
    ch: usize,
    pub side_in: usize,
    pub side_out: usize,
    /// For each output value, the index of the input value it took.
    taken: Vec<u32>,
}

impl MaxPool {
    pub fn new(kernel: usize, stride: usize, ch: usize, side_in: usize) -> Result<Self> {
        anyhow::ensure!(kernel > 0 && stride > 0 && side_in >= kernel, "a max pool of {kernel} every {stride} does not fit a side of {side_in}");
        Ok(Self { kernel, stride, ch, side_in, side_out: (side_in - kernel) / stride + 1, taken: Vec::new() })
    }

    pub fn output_len(&self) -> usize {
        self.side_out * self.side_out * self.ch
    }

    pub fn reserve(&mut self, n: usize) {
        self.taken.resize(n * self.output_len(), 0);
    }

    /// y = each window's largest value of x, the first in row-major order of equal ones (PyTorch's
    /// choice); a NaN is taken, so that it propagates.
    pub fn forward(&mut self, n: usize, x: &[f32], y: &mut [f32]) {
        let (k, s, ch, side) = (self.kernel, self.stride, self.ch, self.side_in);
        let mut out = 0;
        for i in 0..n {
            let base = i * side * side * ch;
            for oy in 0..self.side_out {
                for ox in 0..self.side_out {
                    for c in 0..ch {
                        let mut best = base + (oy * s * side + ox * s) * ch + c;
                        for dy in 0..k {
                            for dx in 0..k {
                                let at = base + ((oy * s + dy) * side + ox * s + dx) * ch + c;
                                if x[at] > x[best] || (x[at].is_nan() && !x[best].is_nan()) {
                                    best = at;
                                }
                            }
                        }
                        y[out] = x[best];
                        self.taken[out] = best as u32;
                        out += 1;
                    }
                }
            }
        }
    }

    /// dx (overwritten) = each output's gradient added at the input value it took.
    pub fn backward(&self, n: usize, dy: &[f32], dx: &mut [f32]) {
        dx[..n * self.side_in * self.side_in * self.ch].fill(0.0);
        for (&at, &d) in self.taken[..n * self.output_len()].iter().zip(dy) {
            dx[at as usize] += d;
        }
    }
}

/// dst [n, cols, rows] ← src [n, rows, cols]: each of n row-major matrices transposed. What turns
/// position-major activations [n, pixels, ch] into PyTorch's channel-major flatten [n, ch, pixels]
/// (and back, with rows and cols swapped), and a weight [a, b, k·k] into [a, k·k, b].
pub(super) fn transpose_each(n: usize, rows: usize, cols: usize, src: &[f32], dst: &mut [f32]) {
    let size = rows * cols;
    for (s, d) in src[..n * size].chunks_exact(size).zip(dst[..n * size].chunks_exact_mut(size)) {
        for r in 0..rows {
            for c in 0..cols {
                d[c * rows + r] = s[r * cols + c];
            }
        }
    }
}
