//! Adam as one fused pass over a range of the flat buffers (src/adam.rs has the formula): in place
//! where the step's checks have all passed (one network's step), or written to the proposal
//! buffers where a later check can still refuse the step (the GAN's discriminator, before its
//! generator's step), so nothing changes until the step commits. Its operations are candle's
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
    /// A range was proposed since the last commit.
    proposed: bool,
}

impl Moments {
    pub fn zeros(total: usize) -> Self {
        let z = || vec![0f32; total];
        Self { m: z(), v: z(), next_theta: z(), next_m: z(), next_v: z(), proposed: false }
    }

    /// Proposes step `t` (from 1) at learning rate `lr` for θ[range] with gradient g[range]
    /// (split across the engine's threads where there are several: each element on its own, so
    /// the split changes no number).
    pub fn propose(&mut self, cfg: &AdamConfig, t: u64, lr: f64, theta: &[f32], grad: &[f32], range: std::ops::Range<usize>) {
        let k = Constants::new(cfg, t, lr);
        let from = Slices { theta: &theta[range.clone()], grad: &grad[range.clone()], m: &self.m[range.clone()], v: &self.v[range.clone()] };
        let to = Proposal {
            theta: &mut self.next_theta[range.clone()],
            m: &mut self.next_m[range.clone()],
            v: &mut self.next_v[range],
        };
        pass(&k, from, to, super::threads::count());
        self.proposed = true;
    }

    /// Takes step `t` over θ[range] and its moments in place: for a step no later check can
    /// refuse. The same numbers as `propose` and `commit`, with three fewer buffers streamed
    /// (a new buffer's lines are read before they are written), the pass being memory-bound.
    pub fn update(&mut self, cfg: &AdamConfig, t: u64, lr: f64, theta: &mut [f32], grad: &[f32], range: std::ops::Range<usize>) {
        let k = Constants::new(cfg, t, lr);
        let state = State { theta: &mut theta[range.clone()], m: &mut self.m[range.clone()], v: &mut self.v[range.clone()] };
        pass_in_place(&k, &grad[range], state, super::threads::count());
    }

    /// Forgets the proposals of a step that was refused.
    pub fn discard(&mut self) {
        self.proposed = false;
    }

    /// Takes the proposals (every range proposed this step) as the new θ and moments: the
    /// buffers swap, so nothing is copied. Nothing to do after `update`.
    pub fn commit(&mut self, theta: &mut Vec<f32>) {
        if std::mem::take(&mut self.proposed) {
            std::mem::swap(theta, &mut self.next_theta);
            std::mem::swap(&mut self.m, &mut self.next_m);
            std::mem::swap(&mut self.v, &mut self.next_v);
        }
    }
}

/// Adam's constants for one step, in f32 as candle's affine rounds them.
struct Constants {
    b1: f32,
    b2: f32,
    c1: f32,
    c2: f32,
    scale_m: f32,
    scale_v: f32,
    eps: f32,
    lr: f32,
}

impl Constants {
    fn new(cfg: &AdamConfig, t: u64, lr: f64) -> Self {
        Self {
            b1: cfg.beta1 as f32,
            b2: cfg.beta2 as f32,
            c1: (1.0 - cfg.beta1) as f32,
            c2: (1.0 - cfg.beta2) as f32,
            scale_m: (1.0 / (1.0 - cfg.beta1.powi(t as i32))) as f32,
            scale_v: (1.0 / (1.0 - cfg.beta2.powi(t as i32))) as f32,
            eps: cfg.eps as f32,
            lr: lr as f32,
        }
    }

    /// One parameter's step: (θ, m, v) from (θ, g, m, v).
    #[inline(always)]
    fn step(&self, theta: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
        let nm = m * self.b1 + g * self.c1;
        let nv = v * self.b2 + (g * g) * self.c2;
        let adjusted = (nm * self.scale_m) / ((nv * self.scale_v).sqrt() + self.eps);
        (theta - adjusted * self.lr, nm, nv)
    }
}

/// What one pass reads: θ, g and the moments over one range.
#[derive(Clone, Copy)]
struct Slices<'a> {
    theta: &'a [f32],
    grad: &'a [f32],
    m: &'a [f32],
    v: &'a [f32],
}

/// What it writes: the proposals over the same range.
struct Proposal<'a> {
    theta: &'a mut [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

/// Parameters below which a pass is not split: a thread's hand-off costs about as much.
const MIN_SPLIT_PARAMS: usize = 1 << 16;

/// The fused pass over `from` into `to`, in `parts` halves side by side where it is large enough.
fn pass(k: &Constants, from: Slices, to: Proposal, parts: usize) {
    let len = from.theta.len();
    if parts > 1 && len >= MIN_SPLIT_PARAMS {
        let mid = len / 2;
        let ((t0, t1), (g0, g1)) = (from.theta.split_at(mid), from.grad.split_at(mid));
        let ((m0, m1), (v0, v1)) = (from.m.split_at(mid), from.v.split_at(mid));
        let (nt0, nt1) = to.theta.split_at_mut(mid);
        let (nm0, nm1) = to.m.split_at_mut(mid);
        let (nv0, nv1) = to.v.split_at_mut(mid);
        super::threads::join(
            || pass(k, Slices { theta: t0, grad: g0, m: m0, v: v0 }, Proposal { theta: nt0, m: nm0, v: nv0 }, parts / 2),
            || pass(k, Slices { theta: t1, grad: g1, m: m1, v: v1 }, Proposal { theta: nt1, m: nm1, v: nv1 }, parts - parts / 2),
        );
        return;
    }
    // Indexed over slices of one length, so the bounds checks go and the loop vectorises.
    let (theta, grad, m, v) = (from.theta, &from.grad[..len], &from.m[..len], &from.v[..len]);
    let (next_theta, next_m, next_v) = (&mut to.theta[..len], &mut to.m[..len], &mut to.v[..len]);
    for i in 0..len {
        (next_theta[i], next_m[i], next_v[i]) = k.step(theta[i], grad[i], m[i], v[i]);
    }
}

/// θ and the moments over one range, updated in place.
struct State<'a> {
    theta: &'a mut [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

/// `pass`, in place.
fn pass_in_place(k: &Constants, grad: &[f32], state: State, parts: usize) {
    let len = state.theta.len();
    if parts > 1 && len >= MIN_SPLIT_PARAMS {
        let mid = len / 2;
        let (g0, g1) = grad.split_at(mid);
        let (t0, t1) = state.theta.split_at_mut(mid);
        let (m0, m1) = state.m.split_at_mut(mid);
        let (v0, v1) = state.v.split_at_mut(mid);
        super::threads::join(
            || pass_in_place(k, g0, State { theta: t0, m: m0, v: v0 }, parts / 2),
            || pass_in_place(k, g1, State { theta: t1, m: m1, v: v1 }, parts - parts / 2),
        );
        return;
    }
    let (grad, theta, m, v) = (&grad[..len], state.theta, &mut state.m[..len], &mut state.v[..len]);
    for i in 0..len {
        (theta[i], m[i], v[i]) = k.step(theta[i], grad[i], m[i], v[i]);
    }
}
