//! A linear layer over the flat parameters, its forward beside its backward, and the pieces of a
//! step between layers (activations' backward, the losses and their gradients), each over
//! caller-owned buffers so a step allocates nothing.

use super::lanes::{Lanes, V4};
use super::matmul::{multiply, Act, Epilogue, Strided, LEAK};
use crate::config::{ModelConfig, Recon};
use crate::layout::ParamLayout;
use anyhow::{bail, Result};

/// A linear layer's place in the flat parameters: W [fan_out, fan_in] at `w`, b [fan_out] at `b`
/// (PyTorch's `nn.Linear` layout).
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    pub w: usize,
    pub b: usize,
    pub fan_in: usize,
    pub fan_out: usize,
}

impl Linear {
    pub fn of(layout: &ParamLayout, cfg: &ModelConfig, name: &str) -> Result<Self> {
        let l = layout.layer(cfg, name)?;
        Ok(Self { w: l.weight as usize, b: l.bias as usize, fan_in: l.fan_in, fan_out: l.fan_out })
    }

    /// W [fan_out, fan_in] in the flat parameters.
    pub fn weight<'a>(&self, theta: &'a [f32]) -> &'a [f32] {
        &theta[self.w..self.w + self.fan_in * self.fan_out]
    }

    /// b [fan_out] in the flat parameters.
    pub fn bias<'a>(&self, theta: &'a [f32]) -> &'a [f32] {
        &theta[self.b..self.b + self.fan_out]
    }

    /// y [n, out] = act(x [n, in] · Wᵀ + b) ⊙ mask, x's rows `x_rs` apart.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(&self, theta: &[f32], n: usize, x: &[f32], x_rs: usize, y: &mut [f32], act: Act, mask: Option<&[f32]>) {
        self.forward_with(theta, self.bias(theta), n, x, x_rs, y, act, mask);
    }

    /// The forward with another bias [out] in place of b.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_with(&self, theta: &[f32], bias: &[f32], n: usize, x: &[f32], x_rs: usize, y: &mut [f32], act: Act, mask: Option<&[f32]>) {
        let (fi, fo) = (self.fan_in, self.fan_out);
        let b = Strided::transposed(self.weight(theta), fi);
        // (x may be a minibatch of digits, mostly zeros: the product skips those where it pays)
        let e = Epilogue { accumulate: false, bias: Some(&bias[..fo]), act, mask };
        multiply(n, fo, fi, Strided::rows(x, x_rs).skipping_zeros(), b, y, fo, e);
    }

    /// From dy [n, out] (the gradient at this layer's output, before its activation): dW = dyᵀ·x
    /// and db = Σ dy into `grad` (when the parameters take one), and dx = dy · W[:, ..cols]
    /// (overwritten, or added to with `accumulate`) when the input needs one: `cols` can stop
    /// short of fan_in, where the input's last columns are a label, which takes no gradient.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self, theta: &[f32], n: usize, x: &[f32], x_rs: usize, dy: &[f32], grad: Option<&mut [f32]>,
        dx: Option<(&mut [f32], usize, bool)>,
    ) {
        let (fi, fo) = (self.fan_in, self.fan_out);
        if let Some(grad) = grad {
            let dw = &mut grad[self.w..self.w + fi * fo];
            multiply(fo, fi, n, Strided::transposed(dy, fo), Strided::rows(x, x_rs).skipping_zeros(), dw, fi, Epilogue::default());
            column_sums(&dy[..n * fo], fo, &mut grad[self.b..self.b + fo]);
        }
        if let Some((dx, cols, accumulate)) = dx {
            let w = Strided::rows(self.weight(theta), fi);
            multiply(n, cols, fo, Strided::rows(dy, fo), w, dx, cols, Epilogue { accumulate, ..Epilogue::default() });
        }
    }
}

/// No value is ±∞ or NaN. Tested on the bits (an exponent of all ones) and or-ed without a short
/// cut, so it runs four lanes at a time: a sum of squares in f64 did the same job as one chain of
/// dependent adds, a tenth of a VAE step's backward at the page's batch in the tab.
pub fn all_finite(xs: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    xs.iter().fold(0u32, |any, x| any | u32::from(x.to_bits() & EXPONENT == EXPONENT)) == 0
}

/// sums [cols] = Σ over rows of m [.., cols]
pub(super) fn column_sums(m: &[f32], cols: usize, sums: &mut [f32]) {
    sums.fill(0.0);
    add_column_sums(m, cols, sums);
}

/// sums [cols] += Σ over rows of m [.., cols], row by row
pub(super) fn add_column_sums(m: &[f32], cols: usize, sums: &mut [f32]) {
    for row in m.chunks_exact(cols) {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
}

/// d ← d · act'(z) ⊙ mask, the activation's slope read from its output y = act(z) ⊙ mask: y > 0
/// exactly where z > 0 (a dropped unit has y = 0 and mask 0, so its gradient is 0 either way).
pub fn act_backward(y: &[f32], d: &mut [f32], act: Act, mask: Option<&[f32]>) {
    match (act, mask) {
        (Act::None, None) => {}
        (Act::None, Some(m)) => d.iter_mut().zip(m).for_each(|(d, m)| *d *= m),
        (Act::Relu, _) => d.iter_mut().zip(y).for_each(|(d, &y)| *d = if y > 0.0 { *d } else { 0.0 }),
        (Act::Leaky, None) => d.iter_mut().zip(y).for_each(|(d, &y)| *d *= if y > 0.0 { 1.0 } else { LEAK }),
        (Act::Leaky, Some(m)) => {
            d.iter_mut().zip(y).zip(m).for_each(|((d, &y), &m)| *d *= m * if y > 0.0 { 1.0 } else { LEAK })
        }
    }
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// xs ← sigmoid(xs), four at a time on the lanes' exponential (the scalar `exp` is a libm call
/// in wasm: over a GAN's generated images, 100,000 values a step at batch 128, about 1 ms); the
/// last xs.len() mod 4 padded to four lanes, so every value takes the same arithmetic.
pub fn sigmoid_in_place(xs: &mut [f32]) {
    let mut chunks = xs.chunks_exact_mut(4);
    for x in &mut chunks {
        // SAFETY: chunks of exactly four floats.
        unsafe { sigmoid_lanes(V4::load(x.as_ptr())).0.store(x.as_mut_ptr()) };
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let mut lanes = [0f32; 4];
        lanes[..tail.len()].copy_from_slice(tail);
        tail.copy_from_slice(&sigmoid_lanes(V4::from_array(lanes)).0.to_array()[..tail.len()]);
    }
}

/// (sigmoid(l), e, 1/(1 + e)) with one exponential of a value ≤ 0: e = e^−|l|, and sigmoid(l) is
/// 1/(1 + e) where l ≥ 0, e/(1 + e) elsewhere (the loss's log and slope reuse e and 1/(1 + e)).
#[inline(always)]
fn sigmoid_lanes(l: V4) -> (V4, V4, V4) {
    let e = V4::splat(0.0).sub(l.abs()).exp_nonpositive();
    let inv = V4::splat(1.0).div(V4::splat(1.0).add(e));
    (l.select_nonneg(inv, e.mul(inv)), e, inv)
}

/// softplus(l) = log(1 + eˡ) in its stable form max(l, 0) + log(1 + e^−|l|).
pub fn softplus(l: f32) -> f32 {
    l.max(0.0) + (-l.abs()).exp().ln_1p()
}

/// Σ over rows of the reconstruction loss of sigmoid(logits) against x (x's rows `x_rs` apart,
/// their first `p` columns the targets), and the logits overwritten by the gradient of that sum ÷ `n`:
/// - BCE: max(l, 0) − x·l + log(1 + e^−|l|), gradient (s − x) / n, s = sigmoid(l);
/// - L2: (s − x)², gradient 2(s − x)·s(1 − s) / n;
/// - L1: |s − x|, gradient sign(s − x)·s(1 − s) / n (0 where s = x).
///
/// The rows are summed as a fixed tree of bands of at most 16 rows (halves of whole bands), the
/// halves side by side where the engine has threads: the same sum on any number of threads.
pub fn recon_backward(recon: Recon, logits: &mut [f32], p: usize, x: &[f32], x_rs: usize, n: usize) -> f64 {
    recon_rows(recon, &mut logits[..n * p], p, x, x_rs, 1.0 / n as f32, super::threads::count())
}

/// Rows in a band that `recon_rows` sums on one thread.
const RECON_BAND: usize = 16;

fn recon_rows(recon: Recon, logits: &mut [f32], p: usize, x: &[f32], x_rs: usize, scale: f32, parts: usize) -> f64 {
    let rows = logits.len() / p;
    if rows > RECON_BAND {
        let mid = rows.div_ceil(2 * RECON_BAND) * RECON_BAND;
        let (upper, lower) = logits.split_at_mut(mid * p);
        let x_lower = &x[mid * x_rs..];
        let (a, b) = super::threads::join_if(
            parts > 1,
            || recon_rows(recon, upper, p, x, x_rs, scale, parts / 2),
            || recon_rows(recon, lower, p, x_lower, x_rs, scale, parts - parts / 2),
        );
        return a + b;
    }
    let mut sum = 0f64;
    for (i, row) in logits.chunks_exact_mut(p).enumerate() {
        let target = &x[i * x_rs..i * x_rs + p];
        let mut row_sum = V4::splat(0.0);
        let (mut rows, mut targets) = (row.chunks_exact_mut(4), target.chunks_exact(4));
        for (l, t) in (&mut rows).zip(&mut targets) {
            // SAFETY: chunks of exactly four floats.
            let (loss, grad) = unsafe { recon_lanes(recon, V4::load(l.as_ptr()), V4::load(t.as_ptr()), scale) };
            row_sum = row_sum.add(loss);
            // SAFETY: as above.
            unsafe { grad.store(l.as_mut_ptr()) };
        }
        // the last p mod 4 pixels, padded to four lanes (the padding's loss is not summed)
        let (l, t) = (rows.into_remainder(), targets.remainder());
        let mut tail = 0f32;
        if !l.is_empty() {
            let (mut lv, mut tv) = ([0f32; 4], [0f32; 4]);
            lv[..l.len()].copy_from_slice(l);
            tv[..t.len()].copy_from_slice(t);
            let (loss, grad) = recon_lanes(recon, V4::from_array(lv), V4::from_array(tv), scale);
            tail = loss.to_array()[..l.len()].iter().sum();
            l.copy_from_slice(&grad.to_array()[..l.len()]);
        }
        let lanes = row_sum.to_array();
        sum += ((lanes[0] + lanes[2]) + (lanes[1] + lanes[3]) + tail) as f64;
    }
    sum
}

/// Four pixels' reconstruction loss and its gradient × `scale`, from their logits l and targets x,
/// with one exponential for both: e = e^−|l|, log(1 + e^−|l|), and sigmoid(l) = 1/(1 + e) where
/// l ≥ 0, e/(1 + e) elsewhere.
#[inline(always)]
fn recon_lanes(recon: Recon, l: V4, t: V4, scale: f32) -> (V4, V4) {
    let (s, e, inv) = sigmoid_lanes(l);
    let d = s.sub(t);
    let scale = V4::splat(scale);
    // s(1 − s) = e/(1 + e)², free of the cancellation in 1 − s where s is near 1
    let slope = e.mul(inv).mul(inv);
    match recon {
        Recon::Bce => (l.max(V4::splat(0.0)).sub(t.mul(l)).add(e.ln_1p_unit()), d.mul(scale)),
        Recon::L2 => (d.mul(d), V4::splat(2.0).mul(d).mul(slope).mul(scale)),
        Recon::L1 => (d.abs(), d.sign().mul(slope).mul(scale)),
    }
}

/// z's first l columns of each of n rows (rows `z_rs` apart) = μ + exp(½ log σ²)·ε, μ, log σ² and
/// ε [n, l]: the reparameterisation.
pub fn reparameterise(n: usize, l: usize, mu: &[f32], logvar: &[f32], noise: &[f32], z: &mut [f32], z_rs: usize) {
    for i in 0..n {
        let zrow = &mut z[i * z_rs..i * z_rs + l];
        for d in 0..l {
            let k = i * l + d;
            zrow[d] = mu[k] + (logvar[k] * 0.5).exp() * noise[k];
        }
    }
}

/// Σ of KL = −½ Σ (1 + log σ² − μ² − σ²) over the first `count` values, and from dz (the
/// decoder's gradient at z = μ + σ·ε) the encoder's: dμ = dz + μ·scale and
/// d log σ² = dz·ε·½σ + ½(σ² − 1)·scale, scale = β / n (the KL term's weight per example).
#[allow(clippy::too_many_arguments)]
pub fn kl_backward(count: usize, mu: &[f32], logvar: &[f32], noise: &[f32], dz: &[f32], dmu: &mut [f32], dlogvar: &mut [f32], scale: f32) -> f64 {
    let mut kl = 0f64;
    for k in 0..count {
        let (mu, lv, eps, dz) = (mu[k], logvar[k], noise[k], dz[k]);
        let var = lv.exp();
        kl += (-0.5 * (1.0 + lv - mu * mu - var)) as f64;
        dmu[k] = dz + mu * scale;
        dlogvar[k] = dz * eps * 0.5 * (lv * 0.5).exp() + 0.5 * (var - 1.0) * scale;
    }
    kl
}

/// Σ over n rows of an autoencoder's reconstruction loss of its output y = tanh(·) against the
/// targets x (both [n, p] in [−1, 1]): L2 (y − x)² or L1 |y − x|; and dy, its gradient at the
/// output before the tanh, ÷ n: d·(1 − y²)/n with d = 2(y − x) or sign(y − x).
pub fn signed_recon_backward(recon: Recon, x: &[f32], y: &[f32], dy: &mut [f32], p: usize, n: usize) -> Result<f64> {
    let scale = 1.0 / n as f32;
    let mut sum = 0f64;
    for ((row_x, row_y), row_d) in x[..n * p].chunks_exact(p).zip(y[..n * p].chunks_exact(p)).zip(dy[..n * p].chunks_exact_mut(p)) {
        let mut row_sum = 0f32;
        for ((&t, &o), d) in row_x.iter().zip(row_y).zip(row_d) {
            let diff = o - t;
            let slope = (1.0 - o * o) * scale;
            (row_sum, *d) = match recon {
                Recon::L2 => (row_sum + diff * diff, 2.0 * diff * slope),
                Recon::L1 => (row_sum + diff.abs(), sign(diff) * slope),
                Recon::Bce => bail!("an autoencoder's reconstruction loss is l2 or l1, not bce"),
            };
        }
        sum += row_sum as f64;
    }
    Ok(sum)
}

/// −1, 0 or 1 (f32::signum gives 1 at 0: L1's subgradient there is taken as 0).
pub fn sign(d: f32) -> f32 {
    if d > 0.0 {
        1.0
    } else if d < 0.0 {
        -1.0
    } else {
        0.0
    }
}
