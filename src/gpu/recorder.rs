//! Records kernel dispatches, each with its bind group and uniform, once; a step (or a sample)
//! replays them in one compute pass. One method per kernel, typed by its parameters in
//! `params.rs`, so the step graphs read as the formulas they compute.

use super::kernels::{Kernel, Kernels};
use crate::layout::Layer;
use super::params::{self, act, SUM_CHUNK};
use super::Gpu;
use crate::gan::KeepFlags;
use crate::mnist::IMAGE_PIXELS;
use anyhow::Result;
use std::sync::Arc;

/// A strided view of a matrix in a buffer: element (i, j) at `off + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub buf: &'a wgpu::Buffer,
    pub off: u32,
    pub rs: u32,
    pub cs: u32,
}

/// Rows of `width` values from offset `off`.
pub fn rows(buf: &wgpu::Buffer, off: u32, width: usize) -> View<'_> {
    View { buf, off, rs: width as u32, cs: 1 }
}

fn workgroups(count: usize, size: usize) -> (u32, u32, u32) {
    (count.div_ceil(size).max(1) as u32, 1, 1)
}

struct Dispatch {
    kernel: Kernel,
    group: wgpu::BindGroup,
    workgroups: (u32, u32, u32),
}

/// Recorded dispatches, ready to replay, with the buffers only they use.
pub struct Recorded {
    kernels: Arc<Kernels>,
    dispatches: Vec<Dispatch>,
    _buffers: Vec<wgpu::Buffer>,
}

impl Recorded {
    /// Replays every dispatch, in order, as one compute pass.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for d in &self.dispatches {
            pass.set_pipeline(self.kernels.pipeline(d.kernel));
            pass.set_bind_group(0, &d.group, &[]);
            pass.dispatch_workgroups(d.workgroups.0, d.workgroups.1, d.workgroups.2);
        }
    }
}

pub struct Recorder<'a> {
    gpu: &'a Gpu,
    kernels: Arc<Kernels>,
    list: Vec<Dispatch>,
    /// Uniforms and scratch buffers the bind groups use, kept with the recording.
    owned: Vec<wgpu::Buffer>,
    /// Bound where a kernel's optional input is unused.
    dummy: wgpu::Buffer,
    /// Dropout's scale for kept units, 1/(1 − p).
    keep: f32,
}

impl<'a> Recorder<'a> {
    pub fn new(gpu: &'a Gpu) -> Result<Self> {
        Ok(Self {
            gpu,
            kernels: gpu.kernels(),
            list: Vec::new(),
            owned: Vec::new(),
            dummy: gpu.storage("unused input", 16),
            keep: KeepFlags::KEPT,
        })
    }

    pub fn finish(self) -> Recorded {
        let mut buffers = self.owned;
        buffers.push(self.dummy);
        Recorded { kernels: self.kernels, dispatches: self.list, _buffers: buffers }
    }

    /// A dispatch of `kernel` with a new uniform holding `params` at binding 0, then `buffers`.
    fn push<P: bytemuck::Pod>(&mut self, kernel: Kernel, params: &P, buffers: &[&wgpu::Buffer], wg: (u32, u32, u32)) {
        let uniform = self.gpu.uniform(kernel.entry_point(), bytemuck::bytes_of(params));
        let mut all = vec![&uniform];
        all.extend_from_slice(buffers);
        self.push_bound(kernel, &all, wg);
        self.owned.push(uniform);
    }

    /// A dispatch whose bindings 0.. are exactly `buffers`.
    fn push_bound(&mut self, kernel: Kernel, buffers: &[&wgpu::Buffer], wg: (u32, u32, u32)) {
        let pipeline = self.kernels.pipeline(kernel);
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let group = self.gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry_point()),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.list.push(Dispatch { kernel, group, workgroups: wg });
    }

    // ----- linear.wgsl -----

    /// C[m, n] (+)= act(A · B + bias) ⊙ mask, `flags` an activation code, maybe with
    /// FLAG_ACCUMULATE; bias and mask flags follow from the options.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &mut self,
        (m, n, k): (usize, usize, usize),
        a: View,
        b: View,
        c: View,
        flags: u32,
        bias: Option<(&wgpu::Buffer, u32)>,
        mask: Option<(&wgpu::Buffer, u32)>,
    ) {
        let (bias_buf, bias_off) = bias.unwrap_or((b.buf, 0));
        let (mask_buf, mask_off) = mask.map_or((&self.dummy, 0), |(buf, off)| (buf, off));
        let mask_buf = mask_buf.clone();
        let flags = flags | if bias.is_some() { act::FLAG_BIAS } else { 0 } | if mask.is_some() { act::FLAG_MASK } else { 0 };
        let p = params::Matmul {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            flags,
            a_off: a.off,
            a_rs: a.rs,
            a_cs: a.cs,
            b_off: b.off,
            b_rs: b.rs,
            b_cs: b.cs,
            c_off: c.off,
            c_rs: c.rs,
            bias_off,
            mask_off,
            keep: self.keep,
            _pad: 0,
        };
        // A 32×64 tile of C per workgroup (linear.wgsl).
        let wg = (n.div_ceil(64).max(1) as u32, m.div_ceil(32).max(1) as u32, 1);
        self.push(Kernel::Matmul, &p, &[a.buf, b.buf, c.buf, bias_buf, &mask_buf], wg);
    }

    /// out [rows, out] = act(x · Wᵀ + b) ⊙ mask, for layer `w` in θ.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_forward(&mut self, rows_n: usize, x: View, w: Layer, theta: &wgpu::Buffer, out: &wgpu::Buffer, act: u32, mask: Option<(&wgpu::Buffer, u32)>) {
        let b = View { buf: theta, off: w.weight, rs: 1, cs: w.fan_in as u32 };
        self.matmul((rows_n, w.fan_out, w.fan_in), x, b, rows(out, 0, w.fan_out), act, Some((theta, w.bias)), mask);
    }

    /// dZ = dY ⊙ mask ⊙ act′(Y), in place over `count` values.
    pub fn act_backward(&mut self, count: usize, y: &wgpu::Buffer, dy: &wgpu::Buffer, act: u32, mask: Option<(&wgpu::Buffer, u32)>) {
        let (mask_buf, mask_off) = mask.map_or((&self.dummy, 0), |(buf, off)| (buf, off));
        let mask_buf = mask_buf.clone();
        let p = params::Elementwise {
            count: count as u32,
            flags: act | if mask.is_some() { act::FLAG_MASK } else { 0 },
            mask_off,
            keep: self.keep,
            ..Default::default()
        };
        self.push(Kernel::ActBackward, &p, &[y, dy, &mask_buf], workgroups(count, 256));
    }

    /// db[dst_off + j] (+)= Σ_r dZ[r, j] for dZ [rows, cols] at the start of `dz`.
    pub fn bias_grad(&mut self, rows_n: usize, cols: usize, dz: &wgpu::Buffer, db: &wgpu::Buffer, dst_off: u32, accumulate: bool) {
        let p = params::BiasGrad {
            rows: rows_n as u32,
            cols: cols as u32,
            src_off: 0,
            src_rs: cols as u32,
            dst_off,
            accumulate: accumulate as u32,
            ..Default::default()
        };
        self.push(Kernel::BiasGrad, &p, &[dz, db], workgroups(cols, 64));
    }

    /// The parameter gradients of layer `w` from dZ [rows, out] and its input x [rows, in]:
    /// dW = dZᵀ·x, db = Σ dZ (into `grads`); and dX = dZ·W[:, :dx_cols] into `dx` (added with its flag).
    #[allow(clippy::too_many_arguments)]
    pub fn linear_backward(
        &mut self,
        rows_n: usize,
        x: View,
        dz: &wgpu::Buffer,
        w: Layer,
        theta: &wgpu::Buffer,
        grads: Option<&wgpu::Buffer>,
        dx: Option<(&wgpu::Buffer, usize, bool)>,
    ) {
        if let Some(grads) = grads {
            let dz_t = View { buf: dz, off: 0, rs: 1, cs: w.fan_out as u32 };
            self.matmul((w.fan_out, w.fan_in, rows_n), dz_t, x, rows(grads, w.weight, w.fan_in), act::NONE, None, None);
            self.bias_grad(rows_n, w.fan_out, dz, grads, w.bias, false);
        }
        if let Some((dx, cols, accumulate)) = dx {
            let b = View { buf: theta, off: w.weight, rs: w.fan_in as u32, cs: 1 };
            let flags = if accumulate { act::FLAG_ACCUMULATE } else { act::NONE };
            self.matmul((rows_n, cols, w.fan_out), rows(dz, 0, w.fan_out), b, rows(dx, 0, cols), flags, None, None);
        }
    }

    // ----- batch.wgsl -----

    /// X[row0 + r] = scale · image(idx[r]) + shift, then the label one-hot (`label_mode`) if
    /// `width` leaves room for it.
    #[allow(clippy::too_many_arguments)]
    pub fn gather(
        &mut self,
        (rows_n, row0, width): (usize, usize, usize),
        label_mode: u32,
        (scale, shift): (f32, f32),
        hot: f32,
        images: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        idx: &wgpu::Buffer,
        wrong: Option<&wgpu::Buffer>,
        x: &wgpu::Buffer,
    ) {
        let p = params::Gather { rows: rows_n as u32, row0: row0 as u32, width: width as u32, label_mode, scale, shift, hot, ..Default::default() };
        let wrong = wrong.unwrap_or(&self.dummy).clone();
        self.push(Kernel::Gather, &p, &[images, labels, idx, &wrong, x], workgroups(rows_n * width, 256));
    }

    /// Z[r] = noise[r] [latent] then the one-hot label of example idx[r] (width − latent columns).
    #[allow(clippy::too_many_arguments)]
    pub fn latent_input(&mut self, (rows_n, latent, width): (usize, usize, usize), labels: &wgpu::Buffer, idx: &wgpu::Buffer, noise: &wgpu::Buffer, z: &wgpu::Buffer) {
        let p = params::Latent { rows: rows_n as u32, latent: latent as u32, width: width as u32, _pad: 0 };
        self.push(Kernel::LatentInput, &p, &[labels, idx, noise, z], workgroups(rows_n * width, 256));
    }

    // ----- vae.wgsl -----

    fn vae_params(rows_n: usize, latent: usize, width: usize, x_width: usize) -> params::Vae {
        params::Vae {
            rows: rows_n as u32,
            latent: latent as u32,
            width: width as u32,
            x_width: x_width as u32,
            inv_n: 1.0 / rows_n as f32,
            kl_scale: 1.0 / rows_n as f32,
            ..Default::default()
        }
    }

    /// Z [rows, width] = μ + exp(½ log σ²)·ε, then the one-hot label of idx[r].
    #[allow(clippy::too_many_arguments)]
    pub fn reparameterise(
        &mut self,
        (rows_n, latent, width): (usize, usize, usize),
        mu: &wgpu::Buffer,
        logvar: &wgpu::Buffer,
        eps: &wgpu::Buffer,
        labels: &wgpu::Buffer,
        idx: &wgpu::Buffer,
        z: &wgpu::Buffer,
    ) {
        let p = Self::vae_params(rows_n, latent, width, 0);
        self.push(Kernel::Reparameterise, &p, &[mu, logvar, eps, labels, idx, z], workgroups(rows_n * width, 256));
    }

    /// The reparameterisation's backward from dZ [rows, width], plus the KL term's gradient
    /// (weighted by `kl_weight`) and its per-element terms (unweighted).
    #[allow(clippy::too_many_arguments)]
    pub fn kl_reparameterise_backward(
        &mut self,
        (rows_n, latent, width): (usize, usize, usize),
        kl_weight: f32,
        mu: &wgpu::Buffer,
        logvar: &wgpu::Buffer,
        eps: &wgpu::Buffer,
        dz: &wgpu::Buffer,
        dmu: &wgpu::Buffer,
        dlogvar: &wgpu::Buffer,
        kl_terms: &wgpu::Buffer,
    ) {
        let p = params::Vae { kl_scale: kl_weight / rows_n as f32, ..Self::vae_params(rows_n, latent, width, 0) };
        self.push(Kernel::KlReparameteriseBackward, &p, &[mu, logvar, eps, dz, dmu, dlogvar, kl_terms], workgroups(rows_n * latent, 256));
    }

    /// The reconstruction loss (`params::recon`'s code) of the logits against the pixels of X
    /// [rows, x_width]: per-element terms, and the logits replaced by their gradient.
    pub fn reconstruction(&mut self, rows_n: usize, x_width: usize, recon: u32, x: &wgpu::Buffer, logits: &wgpu::Buffer, terms: &wgpu::Buffer) {
        let p = params::Vae { recon, ..Self::vae_params(rows_n, 0, 0, x_width) };
        self.push(Kernel::Reconstruction, &p, &[x, logits, terms], workgroups(rows_n * IMAGE_PIXELS, 256));
    }

    // ----- gan.wgsl -----

    /// X_d[row0 + r] = 2·sigmoid(logits[r]) − 1, then the one-hot label of idx[r] if `width` has room.
    #[allow(clippy::too_many_arguments)]
    pub fn fake_to_d(&mut self, (rows_n, row0, width): (usize, usize, usize), hot: f32, logits: &wgpu::Buffer, labels: &wgpu::Buffer, idx: &wgpu::Buffer, xd: &wgpu::Buffer) {
        let p = params::Fake { rows: rows_n as u32, width: width as u32, row0: row0 as u32, hot };
        self.push(Kernel::FakeToD, &p, &[logits, labels, idx, xd], workgroups(rows_n * width, 256));
    }

    /// dl = dX_d · 2·s·(1 − s), in place over `dx` [rows, 784].
    pub fn fake_backward(&mut self, rows_n: usize, logits: &wgpu::Buffer, dx: &wgpu::Buffer) {
        let p = params::Fake { rows: rows_n as u32, width: IMAGE_PIXELS as u32, ..Default::default() };
        self.push(Kernel::FakeBackward, &p, &[logits, dx], workgroups(rows_n * IMAGE_PIXELS, 256));
    }

    /// L_D and its logit gradients over real, generated (and mismatched) rows of `logits`.
    pub fn discriminator_loss(&mut self, n: usize, conditional: bool, logits: &wgpu::Buffer, dlogits: &wgpu::Buffer, stats: &wgpu::Buffer) {
        let p = params::GanLoss { n: n as u32, conditional: conditional as u32, ..Default::default() };
        self.push(Kernel::DiscriminatorLoss, &p, &[logits, dlogits, stats], (1, 1, 1));
    }

    /// L_G and its logit gradients.
    pub fn generator_loss(&mut self, n: usize, logits: &wgpu::Buffer, dlogits: &wgpu::Buffer, stats: &wgpu::Buffer) {
        let p = params::GanLoss { n: n as u32, ..Default::default() };
        self.push(Kernel::GeneratorLoss, &p, &[logits, dlogits, stats], (1, 1, 1));
    }

    // ----- reduce.wgsl -----

    /// stats[slot] = scale · Σ src[off..off + count] (or Σ src² with `square`): partial sums over
    /// many workgroups, then one that adds them up.
    #[allow(clippy::too_many_arguments)]
    pub fn sum(&mut self, src: &wgpu::Buffer, off: u32, count: usize, stats: &wgpu::Buffer, slot: u32, scale: f32, square: bool) {
        let groups = count.div_ceil(SUM_CHUNK as usize).max(1);
        let partials = self.gpu.storage("partial sums", (groups * 4) as u64);
        let p = params::SumPartials { count: count as u32, off, square: square as u32, _pad: 0 };
        self.push(Kernel::SumPartials, &p, &[src, &partials], (groups as u32, 1, 1));
        let p = params::SumFinal { count: if count == 0 { 0 } else { groups as u32 }, slot, scale, _pad: 0 };
        self.push(Kernel::SumFinal, &p, &[&partials, stats], (1, 1, 1));
        self.owned.push(partials);
    }

    /// The step's verdict into its stats and the control words; a VAE's (`vae_kl_weight` given)
    /// loss is reconstruction + kl_weight · KL, a GAN's (None) losses are already in.
    pub fn check_step(&mut self, vae_kl_weight: Option<f32>, stats: &wgpu::Buffer, control: &wgpu::Buffer) {
        let p = params::Check { gan: vae_kl_weight.is_none() as u32, kl_weight: vae_kl_weight.unwrap_or(0.0), ..Default::default() };
        self.push(Kernel::CheckStep, &p, &[stats, control], (1, 1, 1));
    }

    // ----- adam.wgsl -----

    /// Adam's proposal over `p`'s range: next θ, m, v from θ, g, m, v and the step uniform.
    pub fn adam_propose(&mut self, p: params::Adam, step: &wgpu::Buffer, buffers: &AdamBuffers) {
        let b = buffers;
        let adam = self.gpu.uniform("adam", bytemuck::bytes_of(&p));
        self.push_bound(
            Kernel::AdamPropose,
            &[&adam, step, b.theta, b.grads, b.m, b.v, b.next_theta, b.next_m, b.next_v],
            workgroups(p.count as usize, 256),
        );
        self.owned.push(adam);
    }

    /// Copies the proposal over θ, m, v in `p`'s range if the step's stats say it passed.
    pub fn adam_commit(&mut self, p: params::Adam, stats: &wgpu::Buffer, buffers: &AdamBuffers) {
        let b = buffers;
        self.push(
            Kernel::AdamCommit,
            &p,
            &[stats, b.next_theta, b.next_m, b.next_v, b.theta, b.m, b.v],
            workgroups(p.count as usize, 256),
        );
    }
}

/// The buffers Adam reads and writes: current values, gradients, and the proposal.
pub struct AdamBuffers<'a> {
    pub theta: &'a wgpu::Buffer,
    pub grads: &'a wgpu::Buffer,
    pub m: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub next_theta: &'a wgpu::Buffer,
    pub next_m: &'a wgpu::Buffer,
    pub next_v: &'a wgpu::Buffer,
}
