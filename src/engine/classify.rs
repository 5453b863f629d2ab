//! The digit classifier's forward on the engine's products: what `eval`, `time-to-digits` and
//! the page's coverage verdict run (tens of thousands of images a call), where candle's conv2d
//! spent most of its time outside arithmetic. Training the classifier stays on candle
//! (`classifier::train`), which is also the tests' reference for this.
//!
//! Each convolution is an im2col product: the 5×5 patches of a chunk of images as rows, times the
//! kernels transposed, bias and ReLU in the store. conv2's patches are [ky, kx, in] (runs copied
//! whole from the position-major activations), so its kernels, PyTorch's [out, in, 5, 5], are
//! reordered to [out, 5, 5, in] once a call.
//! Activations are kept position-major ([y, x, channel]); the flatten before fc1 is PyTorch's
//! channel-major order, as the weights expect.
//!
//! x [n, 784] → patches [n·24·24, 25] · conv1ᵀ → [n, 24, 24, 16] → pool → [n, 12, 12, 16]
//!   → patches [n·8·8, 25·16] · conv2ᵀ → [n, 8, 8, 32] → pool → [n, 4, 4, 32] → flatten [n, 512]
//!   → fc1, ReLU → features [n, 128] → fc2 → logits [n, 10]

use super::conv::transpose_each;
use super::matmul::{multiply, Act, Epilogue, Strided};
use crate::mnist::{CLASSES, IMAGE_PIXELS, IMAGE_SIDE};

const K: usize = 5;
const C1: usize = 16;
const C2: usize = 32;
const S1: usize = IMAGE_SIDE - K + 1; // 24
const P1: usize = S1 / 2; // 12
const S2: usize = P1 - K + 1; // 8
const P2: usize = S2 / 2; // 4
const FLAT: usize = C2 * P2 * P2; // 512
pub const FEATURES: usize = 128;

/// Images per pass: the patches of 32 images are 1.8 MB (conv1) and 3.3 MB (conv2).
const CHUNK: usize = 32;

/// The classifier's weights as flat row-major arrays in PyTorch's layouts.
pub struct ClassifierWeights {
    pub conv1_weight: Vec<f32>, // [16, 1, 5, 5]
    pub conv1_bias: Vec<f32>,   // [16]
    pub conv2_weight: Vec<f32>, // [32, 16, 5, 5]
    pub conv2_bias: Vec<f32>,   // [32]
    pub fc1_weight: Vec<f32>,   // [128, 512]
    pub fc1_bias: Vec<f32>,     // [128]
    pub fc2_weight: Vec<f32>,   // [10, 128]
    pub fc2_bias: Vec<f32>,     // [10]
}

/// y [rows, out] = act(x [rows, fan_in] · Wᵀ + b), W [out, fan_in] row-major.
fn dense(rows: usize, x: &[f32], w: &[f32], b: &[f32], y: &mut [f32], act: Act) {
    let (out, fan_in) = (b.len(), w.len() / b.len());
    let e = Epilogue { bias: Some(b), act, ..Default::default() };
    multiply(rows, out, fan_in, Strided::rows(x, fan_in), Strided::transposed(w, fan_in), y, out, e);
}

/// 2×2 max-pool of [n, side, side, ch] into [n, side/2, side/2, ch].
fn max_pool(n: usize, side: usize, ch: usize, x: &[f32], y: &mut [f32]) {
    let half = side / 2;
    for i in 0..n {
        let (img, out) = (&x[i * side * side * ch..], &mut y[i * half * half * ch..]);
        for py in 0..half {
            for px in 0..half {
                let at = |dy: usize, dx: usize| ((2 * py + dy) * side + 2 * px + dx) * ch;
                let o = (py * half + px) * ch;
                for c in 0..ch {
                    let m = img[at(0, 0) + c].max(img[at(0, 1) + c]).max(img[at(1, 0) + c]).max(img[at(1, 1) + c]);
                    out[o + c] = m;
                }
            }
        }
    }
}

/// Buffers for one chunk of `chunk` images, allocated once per call.
struct Scratch {
    patches1: Vec<f32>,
    conv1: Vec<f32>,
    pool1: Vec<f32>,
    patches2: Vec<f32>,
    conv2: Vec<f32>,
    pool2: Vec<f32>,
    flat: Vec<f32>,
}

impl Scratch {
    fn new(chunk: usize) -> Self {
        let per_chunk = |len: usize| vec![0f32; chunk * len];
        Self {
            patches1: per_chunk(S1 * S1 * K * K),
            conv1: per_chunk(S1 * S1 * C1),
            pool1: per_chunk(P1 * P1 * C1),
            patches2: per_chunk(S2 * S2 * C1 * K * K),
            conv2: per_chunk(S2 * S2 * C2),
            pool2: per_chunk(FLAT),
            flat: per_chunk(FLAT),
        }
    }
}

impl ClassifierWeights {
    /// Images [n, 784] in [0, 1] → (features [n, 128], logits [n, 10]).
    pub fn features_and_logits(&self, images: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let n = images.len() / IMAGE_PIXELS;
        let (mut features, mut logits) = (vec![0f32; n * FEATURES], vec![0f32; n * CLASSES]);
        // A call for a few images (the page's verdict) needs no room for 32.
        let chunk = CHUNK.min(n.max(1));
        let mut s = Scratch::new(chunk);
        // conv2's kernels [out, in, ky, kx] reordered to the patches' [out, ky, kx, in].
        let mut conv2_weight = vec![0f32; self.conv2_weight.len()];
        transpose_each(C2, C1, K * K, &self.conv2_weight, &mut conv2_weight);
        for start in (0..n).step_by(chunk) {
            let b = chunk.min(n - start);
            let x = &images[start * IMAGE_PIXELS..(start + b) * IMAGE_PIXELS];
            // conv1: a row of 25 pixels (ky, kx) per output position.
            for i in 0..b {
                let img = &x[i * IMAGE_PIXELS..];
                for y in 0..S1 {
                    for xx in 0..S1 {
                        let row = &mut s.patches1[((i * S1 + y) * S1 + xx) * K * K..][..K * K];
                        for ky in 0..K {
                            row[ky * K..ky * K + K].copy_from_slice(&img[(y + ky) * IMAGE_SIDE + xx..][..K]);
                        }
                    }
                }
            }
            let rows1 = b * S1 * S1;
            dense(rows1, &s.patches1, &self.conv1_weight, &self.conv1_bias, &mut s.conv1, Act::Relu);
            max_pool(b, S1, C1, &s.conv1, &mut s.pool1);
            // conv2: a row of 25·16 values (ky, kx, channel) per output position; with the
            // activations position-major, each ky's 5 positions × 16 channels are one run.
            for i in 0..b {
                let img = &s.pool1[i * P1 * P1 * C1..];
                for y in 0..S2 {
                    for xx in 0..S2 {
                        let row = &mut s.patches2[((i * S2 + y) * S2 + xx) * C1 * K * K..][..C1 * K * K];
                        for ky in 0..K {
                            row[ky * K * C1..][..K * C1].copy_from_slice(&img[((y + ky) * P1 + xx) * C1..][..K * C1]);
                        }
                    }
                }
            }
            let rows2 = b * S2 * S2;
            dense(rows2, &s.patches2, &conv2_weight, &self.conv2_bias, &mut s.conv2, Act::Relu);
            max_pool(b, S2, C2, &s.conv2, &mut s.pool2);
            // Flatten as PyTorch does, channel-major: [c, y, x].
            transpose_each(b, P2 * P2, C2, &s.pool2, &mut s.flat);
            let f = &mut features[start * FEATURES..(start + b) * FEATURES];
            dense(b, &s.flat, &self.fc1_weight, &self.fc1_bias, f, Act::Relu);
            dense(b, f, &self.fc2_weight, &self.fc2_bias, &mut logits[start * CLASSES..(start + b) * CLASSES], Act::None);
        }
        (features, logits)
    }
}

/// The digit each row of logits [n, 10] reads as (the first of equal largest values).
pub fn argmax_rows(logits: &[f32]) -> Vec<u8> {
    logits
        .chunks(CLASSES)
        .map(|row| row.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) }).0 as u8)
        .collect()
}
