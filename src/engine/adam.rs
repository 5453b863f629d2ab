//! Adam as one fused pass over a range of the flat buffers (src/adam.rs has the formula), written
//! to the proposal buffers so nothing changes until the step commits. Its operations are candle's
//! (`adam.rs`'s tensor ops, each constant rounded to f32 as candle's affine does), in the same
//! order, so the two agree to rounding.

use crate::adam::AdamConfig;

/// The moments and proposals over the whole flat parameter vector.
pub struct Moments {
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub next_theta: Vec<f32>,
    pub next_m: Vec<f32>,
    pub next_v: Vec<f32>,
}

impl Moments {
    pub fn zeros(total: usize) -> Self {
        let z = || vec![0f32; total];
        Self { m: z(), v: z(), next_theta: z(), next_m: z(), next_v: z() }
    }

    /// Proposes step `t` (from 1) at learning rate `lr` for θ[range] with gradient g[range].
    pub fn propose(&mut self, cfg: &AdamConfig, t: u64, lr: f64, theta: &[f32], grad: &[f32], range: std::ops::Range<usize>) {
        let (b1, b2) = (cfg.beta1 as f32, cfg.beta2 as f32);
        let (c1, c2) = ((1.0 - cfg.beta1) as f32, (1.0 - cfg.beta2) as f32);
        let scale_m = (1.0 / (1.0 - cfg.beta1.powi(t as i32))) as f32;
        let scale_v = (1.0 / (1.0 - cfg.beta2.powi(t as i32))) as f32;
        let (eps, lr) = (cfg.eps as f32, lr as f32);
        let (theta, grad) = (&theta[range.clone()], &grad[range.clone()]);
        let (m, v) = (&self.m[range.clone()], &self.v[range.clone()]);
        let next_theta = &mut self.next_theta[range.clone()];
        let next_m = &mut self.next_m[range.clone()];
        let next_v = &mut self.next_v[range];
        // Indexed over slices of one length, so the bounds checks go and the loop vectorises.
        let len = theta.len();
        let (grad, m, v, next_m, next_v) = (&grad[..len], &m[..len], &v[..len], &mut next_m[..len], &mut next_v[..len]);
        let next_theta = &mut next_theta[..len];
        for i in 0..len {
            let g = grad[i];
            let nm = m[i] * b1 + g * c1;
            let nv = v[i] * b2 + (g * g) * c2;
            let adjusted = (nm * scale_m) / ((nv * scale_v).sqrt() + eps);
            next_theta[i] = theta[i] - adjusted * lr;
            next_m[i] = nm;
            next_v[i] = nv;
        }
    }

    /// Takes the proposals over the whole vector as the new θ and moments (every range proposed
    /// this step): the buffers swap, so nothing is copied.
    pub fn commit(&mut self, theta: &mut Vec<f32>) {
        std::mem::swap(theta, &mut self.next_theta);
        std::mem::swap(&mut self.m, &mut self.next_m);
        std::mem::swap(&mut self.v, &mut self.next_v);
    }
}
