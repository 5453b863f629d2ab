//! Training and sampling on the GPU, for every model kind, with the CPU backend's exact recipe.
//!
//! Parameters, gradients, Adam's moments and Adam's proposals live in flat buffers, one slot per
//! parameter in name order (src/adam.rs's order), so Adam is one dispatch over a range. The dataset
//! is uploaded once; a step uploads only its example indices, its noise (the trainer's seeded
//! stream, so both backends see the same numbers) and, for a GAN, its dropout masks as bits, drawn
//! from the same seeded generator as the CPU backend's. One step is one queue submission: gather,
//! forward, loss, backward, Adam, commit, and a copy of the step's 32 bytes of stats into a buffer
//! the host maps when it wants them, so steps queue behind each other without waiting for readback.
//!
//! Every `SYNC_EVERY` steps the submission also copies the weights and Adam's moments out; that
//! copy is what training falls back to if the device is lost.

use super::{read_buffer, Gpu, Kernel, Kernels};
use crate::adam::{AdamConfig, OptimizerState};
use crate::config::ModelConfig;
use crate::gan::{DropoutKeep, DROPOUT};
use crate::mnist::{Dataset, IMAGE_PIXELS};
use crate::train::{
    self, Batch, GanLosses, LossParts, PendingSnapshot, Snapshot, StepLosses, TrainBackend, DEFAULT_SYNC_INTERVAL,
};
use anyhow::{anyhow, bail, ensure, Result};
use candle_nn::VarMap;
use std::any::Any;
use std::collections::HashMap;


/// Recorded plans kept per backend, for steps and for sampling (each holds its activations).
const PLANS_KEPT: usize = 4;

const STATS: usize = 8;
const OK: usize = 6;
const COMMITTED: usize = 7;

/// Where each parameter sits in the flat buffers.
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

    fn offset(&self, name: &str) -> Result<u32> {
        match self.entries.iter().find(|e| e.0 == name) {
            Some(e) => Ok(e.2 as u32),
            None => bail!("no parameter {name}"),
        }
    }

    /// The contiguous range of the parameters whose names start with `prefix` (offset, count).
    fn range(&self, prefix: &str) -> (u32, u32) {
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
}

fn f(x: f32) -> u32 {
    x.to_bits()
}

fn workgroups(count: usize, size: usize) -> u32 {
    count.div_ceil(size).max(1) as u32
}

fn as_bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A strided view of a matrix in a buffer: element (i, j) at `off + i·rs + j·cs`.
#[derive(Clone, Copy)]
struct View<'a> {
    buf: &'a wgpu::Buffer,
    off: u32,
    rs: u32,
    cs: u32,
}

fn rows<'a>(buf: &'a wgpu::Buffer, off: u32, width: usize) -> View<'a> {
    View { buf, off, rs: width as u32, cs: 1 }
}

/// Activation codes shared with linear.wgsl.
const NONE: u32 = 0;
const RELU: u32 = 1;
const LEAKY: u32 = 2;
const SIGMOID: u32 = 3;
const BIAS: u32 = 16;
const MASK: u32 = 32;
const ACCUMULATE: u32 = 64;

struct Dispatch {
    kernel: Kernel,
    group: wgpu::BindGroup,
    workgroups: (u32, u32, u32),
}

/// Records dispatches with their bind groups once; a step replays them.
struct Recorder<'a> {
    gpu: &'a Gpu,
    kernels: &'a Kernels,
    list: Vec<Dispatch>,
    /// Buffers the bind groups use, kept alive with the plan.
    uniforms: Vec<wgpu::Buffer>,
    /// A buffer to bind where a kernel's optional input is unused.
    dummy: &'a wgpu::Buffer,
    keep: f32,
}

impl<'a> Recorder<'a> {
    fn new(gpu: &'a Gpu, kernels: &'a Kernels, dummy: &'a wgpu::Buffer) -> Self {
        Self { gpu, kernels, list: Vec::new(), uniforms: Vec::new(), dummy, keep: (1.0 / (1.0 - DROPOUT)) as f32 }
    }

    /// A dispatch of `kernel` with a new uniform of `words` at binding 0, then `buffers` in order.
    fn push(&mut self, kernel: Kernel, words: &[u32], buffers: &[&wgpu::Buffer], wg: (u32, u32, u32)) {
        let uniform = self.gpu.uniform("params", bytemuck::cast_slice(words));
        let mut all = vec![&uniform];
        all.extend_from_slice(buffers);
        self.push_bound(kernel, &all, wg);
        self.uniforms.push(uniform);
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
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.list.push(Dispatch { kernel, group, workgroups: wg });
    }

    /// C[m, n] (+)= act(A · B + bias) ⊙ mask   (see linear.wgsl)
    #[allow(clippy::too_many_arguments)]
    fn matmul(
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
        let (mask_buf, mask_off) = mask.unwrap_or((self.dummy, 0));
        let flags = flags | if bias.is_some() { BIAS } else { 0 } | if mask.is_some() { MASK } else { 0 };
        let words = [
            m as u32, n as u32, k as u32, flags, a.off, a.rs, a.cs, b.off, b.rs, b.cs, c.off, c.rs, bias_off, mask_off,
            f(self.keep), 0,
        ];
        let wg = (workgroups(n, 32), workgroups(m, 32), 1);
        self.push(Kernel::Matmul, &words, &[a.buf, b.buf, c.buf, bias_buf, mask_buf], wg);
    }

    /// out [rows, out] = act(x · Wᵀ + b) ⊙ mask, for layer `w` = (θ buffer, weight offset, bias offset, in, out).
    fn linear_forward(&mut self, rows_n: usize, x: View, w: Layer, theta: &wgpu::Buffer, out: &wgpu::Buffer, act: u32, mask: Option<(&wgpu::Buffer, u32)>) {
        let b = View { buf: theta, off: w.weight, rs: 1, cs: w.fan_in as u32 };
        self.matmul((rows_n, w.fan_out, w.fan_in), x, b, rows(out, 0, w.fan_out), act, Some((theta, w.bias)), mask);
    }

    /// dZ = dY ⊙ mask ⊙ act′(Y), in place.
    fn act_backward(&mut self, count: usize, y: &wgpu::Buffer, dy: &wgpu::Buffer, act: u32, mask: Option<(&wgpu::Buffer, u32)>) {
        let (mask_buf, mask_off) = mask.unwrap_or((self.dummy, 0));
        let flags = act | if mask.is_some() { MASK } else { 0 };
        let words = [count as u32, 0, flags, mask_off, f(self.keep), 0, 0, 0];
        self.push(Kernel::ActBackward, &words, &[y, dy, mask_buf], (workgroups(count, 256), 1, 1));
    }

    /// The parameter gradients of layer `w` from dZ [rows, out] and its input x [rows, in]:
    /// dW = dZᵀ·x, db = Σ dZ (written, or added with `accumulate`); and dX = dZ·W[:, :dx_cols] into `dx`.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
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
            self.matmul((w.fan_out, w.fan_in, rows_n), dz_t, x, rows(grads, w.weight, w.fan_in), NONE, None, None);
            let words = [rows_n as u32, w.fan_out as u32, 0, w.fan_out as u32, w.bias, 0, 0, 0];
            self.push(Kernel::BiasGrad, &words, &[dz, grads], (workgroups(w.fan_out, 64), 1, 1));
        }
        if let Some((dx, cols, accumulate)) = dx {
            let b = View { buf: theta, off: w.weight, rs: w.fan_in as u32, cs: 1 };
            let flags = if accumulate { ACCUMULATE } else { NONE };
            self.matmul((rows_n, cols, w.fan_out), rows(dz, 0, w.fan_out), b, rows(dx, 0, cols), flags, None, None);
        }
    }

    /// stats[slot] = scale · Σ src[off..off + count]  (or Σ src² with `square`).
    fn sum(&mut self, src: &wgpu::Buffer, off: u32, count: usize, stats: &wgpu::Buffer, slot: u32, scale: f32, square: bool) {
        let words = [count as u32, off, slot, square as u32, f(scale), 0, 0, 0];
        self.push(Kernel::Sum, &words, &[src, stats], (1, 1, 1));
    }
}

/// A linear layer's place in θ.
#[derive(Clone, Copy)]
struct Layer {
    weight: u32,
    bias: u32,
    fan_in: usize,
    fan_out: usize,
}

fn layer(layout: &ParamLayout, cfg: &ModelConfig, name: &str) -> Result<Layer> {
    let Some(&(_, fan_in, fan_out)) = cfg.layers().iter().find(|l| l.0 == name) else {
        bail!("no layer {name}");
    };
    Ok(Layer {
        weight: layout.offset(&format!("{name}.weight"))?,
        bias: layout.offset(&format!("{name}.bias"))?,
        fan_in,
        fan_out,
    })
}

/// The recorded dispatches of one training step at one batch size, and that step's buffers.
struct StepPlan {
    rows: usize,
    dispatches: Vec<Dispatch>,
    _uniforms: Vec<wgpu::Buffer>,
    _activations: Vec<wgpu::Buffer>,
    idx: wgpu::Buffer,
    noise: wgpu::Buffer,
    masks: wgpu::Buffer,
    wrong: wgpu::Buffer,
    /// How many dropout-mask bits a step uploads: the discriminator's layers 1 and 2 over all its
    /// rows, then the generator pass's layers 1 and 2 (0 for a VAE).
    mask_bits: usize,
}

/// The recorded dispatches that decode `rows` latent vectors.
struct SamplePlan {
    rows: usize,
    dispatches: Vec<Dispatch>,
    _uniforms: Vec<wgpu::Buffer>,
    _activations: Vec<wgpu::Buffer>,
    z: wgpu::Buffer,
    labels: wgpu::Buffer,
    out: wgpu::Buffer,
}

/// The weights and Adam's state as the GPU last copied them out.
#[derive(Clone)]
pub struct Synced {
    /// Steps committed on the GPU when the copy was made (Adam's t).
    pub committed: u64,
    pub theta: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
}

/// What a submitted step's readback holds.
pub struct StepReadback {
    stats: [f32; STATS],
    synced: Option<Synced>,
}

/// A step in the queue; `read` waits for its stats without blocking the queue.
pub struct PendingStep {
    gpu: Gpu,
    stats: wgpu::Buffer,
    sync: Option<wgpu::Buffer>,
    total: usize,
}

impl PendingStep {
    pub async fn read(self) -> Result<StepReadback> {
        let bytes = read_buffer(&self.gpu, &self.stats).await?;
        let v = to_f32(&bytes);
        let mut stats = [0f32; STATS];
        stats.copy_from_slice(&v[..STATS]);
        let synced = match &self.sync {
            Some(buf) => {
                let all = to_f32(&read_buffer(&self.gpu, buf).await?);
                let t = self.total;
                ensure!(all.len() >= 3 * t + 2, "a short weights copy");
                Some(Synced {
                    committed: all[3 * t + 1].to_bits() as u64,
                    theta: all[..t].to_vec(),
                    m: all[t..2 * t].to_vec(),
                    v: all[2 * t..3 * t].to_vec(),
                })
            }
            None => None,
        };
        Ok(StepReadback { stats, synced })
    }
}

pub struct GpuBackend {
    gpu: Gpu,
    kernels: Kernels,
    cfg: ModelConfig,
    pub layout: ParamLayout,
    theta: wgpu::Buffer,
    grads: wgpu::Buffer,
    m: wgpu::Buffer,
    v: wgpu::Buffer,
    next_theta: wgpu::Buffer,
    next_m: wgpu::Buffer,
    next_v: wgpu::Buffer,
    stats: wgpu::Buffer,
    control: wgpu::Buffer,
    step_uniform: wgpu::Buffer,
    dummy: wgpu::Buffer,
    adam_words: [u32; 12],
    data: Option<(wgpu::Buffer, wgpu::Buffer, usize, Vec<u8>)>,
    plans: Vec<StepPlan>,
    sample_plans: Vec<SamplePlan>,
    beta1: f64,
    beta2: f64,
    /// Steps committed, as last read back; steps submitted and not yet read back.
    committed: u64,
    in_flight: u64,
    /// A refused step was read back; the GPU holds every later step until the next submit clears it.
    halted: bool,
    /// Steps between copies of the weights out of the GPU.
    sync_every: u64,
    /// The last copy of the weights and moments out of the GPU.
    pub synced: Option<Synced>,
    /// Queue traffic so far, for the benchmark.
    pub io: GpuIo,
}

/// Queue submissions made, and bytes written to and copied out of the GPU, since the backend began.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GpuIo {
    pub submissions: u64,
    pub uploaded: u64,
    pub read_back: u64,
}

impl GpuBackend {
    /// The model over `params` (and Adam's state, if training continues) on `gpu`.
    pub fn new(gpu: Gpu, cfg: ModelConfig, params: &VarMap, state: Option<&OptimizerState>) -> Result<Self> {
        let kernels = Kernels::new(&gpu)?;
        let layout = ParamLayout::new(&cfg);
        let t = layout.total as u64 * 4;
        let flat = |get: &dyn Fn(&str) -> Result<Vec<f32>>| -> Result<Vec<f32>> {
            let mut out = vec![0f32; layout.total];
            for (name, shape, off) in &layout.entries {
                let v = get(name)?;
                let n: usize = shape.iter().product();
                ensure!(v.len() == n, "{name} has {} values; expected {n}", v.len());
                out[*off..off + n].copy_from_slice(&v);
            }
            Ok(out)
        };
        let data = params.data().lock().map_err(|_| anyhow!("parameter map is poisoned"))?;
        let theta_host = flat(&|name| {
            let var = data.get(name).ok_or_else(|| anyhow!("the model has no parameter {name}"))?;
            Ok(var.as_tensor().flatten_all()?.to_vec1::<f32>()?)
        })?;
        drop(data);
        let moment = |which: usize| -> Result<Vec<f32>> {
            match state {
                Some(s) => flat(&|name| {
                    let (m, v) = s.moments.get(name).ok_or_else(|| anyhow!("Adam's state has no moments for {name}"))?;
                    Ok(if which == 0 { m.clone() } else { v.clone() })
                }),
                None => Ok(vec![0f32; layout.total]),
            }
        };
        let committed = state.map_or(0, |s| s.t);
        let AdamConfig { beta1, beta2, eps, .. } = AdamConfig::for_kind(cfg.kind);
        let adam_words = [
            0,
            0,
            0,
            0,
            f(beta1 as f32),
            f((1.0 - beta1) as f32),
            f(beta2 as f32),
            f((1.0 - beta2) as f32),
            f(eps as f32),
            0,
            0,
            0,
        ];
        let control: [u32; 2] = [0, committed as u32];
        let backend = Self {
            theta: gpu.storage_init("theta", as_bytes(&theta_host)),
            grads: gpu.storage("grads", t),
            m: gpu.storage_init("m", as_bytes(&moment(0)?)),
            v: gpu.storage_init("v", as_bytes(&moment(1)?)),
            next_theta: gpu.storage("next_theta", t),
            next_m: gpu.storage("next_m", t),
            next_v: gpu.storage("next_v", t),
            stats: gpu.storage("stats", (STATS * 4) as u64),
            control: gpu.storage_init("control", bytemuck::cast_slice(&control)),
            step_uniform: gpu.uniform("step", &[0u8; 16]),
            dummy: gpu.storage("dummy", 16),
            adam_words,
            data: None,
            plans: Vec::new(),
            sample_plans: Vec::new(),
            beta1,
            beta2,
            committed,
            in_flight: 0,
            halted: false,
            sync_every: DEFAULT_SYNC_INTERVAL,
            synced: None,
            io: GpuIo::default(),
            kernels,
            cfg,
            layout,
            gpu,
        };
        backend.gpu.check()?;
        Ok(backend)
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    pub fn config(&self) -> ModelConfig {
        self.cfg
    }

    /// Steps submitted and not yet read back.
    pub fn in_flight(&self) -> u64 {
        self.in_flight
    }

    /// Uploads the training set once; its images are gathered on the GPU from then on.
    pub fn upload_dataset(&mut self, data: &Dataset) -> Result<()> {
        self.gpu.check()?;
        ensure!(!data.is_empty(), "the dataset is empty");
        let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
        let images = self.gpu.storage_init("dataset images", &data.images);
        let labels = self.gpu.storage_init("dataset labels", bytemuck::cast_slice(&labels));
        self.data = Some((images, labels, data.len(), fingerprint(data)));
        self.plans.clear(); // their bind groups name the old dataset
        self.gpu.check()
    }

    fn plan_index(&mut self, n: usize) -> Result<usize> {
        if let Some(i) = self.plans.iter().position(|p| p.rows == n) {
            return Ok(i);
        }
        let plan = if self.cfg.kind.is_gan() { self.record_gan_step(n)? } else { self.record_vae_step(n)? };
        self.gpu.check()?;
        // Two sizes are usual (the batch, and an epoch's short last batch); keep a few, not every one.
        if self.plans.len() >= PLANS_KEPT {
            self.plans.remove(0);
        }
        self.plans.push(plan);
        Ok(self.plans.len() - 1)
    }

    fn record_vae_step(&self, n: usize) -> Result<StepPlan> {
        let Some((images, labels, _, _)) = &self.data else { bail!("no dataset on the GPU") };
        let cfg = &self.cfg;
        let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
        let gpu = &self.gpu;
        let act = |name: &str, len: usize| gpu.storage(name, (len * 4) as u64);
        let idx = act("idx", n);
        let noise = act("noise", n * l);
        let x = act("x", n * (p + c));
        let h1 = act("h1", n * h);
        let mu = act("mu", n * l);
        let logvar = act("logvar", n * l);
        let zc = act("z", n * (l + c));
        let h3 = act("h3", n * h);
        let logits = act("logits", n * p);
        let bce_terms = act("bce_terms", n * p);
        let kl_terms = act("kl_terms", n * l);
        let dh3 = act("dh3", n * h);
        let dz = act("dz", n * l);
        let dmu = act("dmu", n * l);
        let dlogvar = act("dlogvar", n * l);
        let dh1 = act("dh1", n * h);
        let [fc1, fc21, fc22, fc3, fc4] =
            ["fc1", "fc21", "fc22", "fc3", "fc4"].map(|name| layer(&self.layout, cfg, name));
        let (fc1, fc21, fc22, fc3, fc4) = (fc1?, fc21?, fc22?, fc3?, fc4?);
        let th = &self.theta;
        let mut r = Recorder::new(gpu, &self.kernels, &self.dummy);
        let inv_n = f(1.0 / n as f32);
        // forward
        let label_mode = if c > 0 { 1 } else { 0 };
        r.push(Kernel::Gather, &[n as u32, 0, (p + c) as u32, label_mode, f(1.0), f(0.0), 0, 0], &[images, labels, &idx, &self.dummy, &x], (workgroups(n * (p + c), 256), 1, 1));
        r.linear_forward(n, rows(&x, 0, p + c), fc1, th, &h1, RELU, None);
        r.linear_forward(n, rows(&h1, 0, h), fc21, th, &mu, NONE, None);
        r.linear_forward(n, rows(&h1, 0, h), fc22, th, &logvar, NONE, None);
        let vae_words = |width: usize| [n as u32, l as u32, width as u32, (p + c) as u32, inv_n, 0, 0, 0];
        r.push(Kernel::Reparameterise, &vae_words(l + c), &[&mu, &logvar, &noise, labels, &idx, &zc], (workgroups(n * (l + c), 256), 1, 1));
        r.linear_forward(n, rows(&zc, 0, l + c), fc3, th, &h3, RELU, None);
        r.linear_forward(n, rows(&h3, 0, h), fc4, th, &logits, NONE, None);
        // loss, then backward in reverse order (logits becomes dlogits)
        r.push(Kernel::Bce, &vae_words(l + c), &[&x, &logits, &bce_terms], (workgroups(n * p, 256), 1, 1));
        let g = Some(&self.grads);
        r.linear_backward(n, rows(&h3, 0, h), &logits, fc4, th, g, Some((&dh3, h, false)));
        r.act_backward(n * h, &h3, &dh3, RELU, None);
        r.linear_backward(n, rows(&zc, 0, l + c), &dh3, fc3, th, g, Some((&dz, l, false)));
        r.push(Kernel::KlReparameteriseBackward, &vae_words(l), &[&mu, &logvar, &noise, &dz, &dmu, &dlogvar, &kl_terms], (workgroups(n * l, 256), 1, 1));
        r.linear_backward(n, rows(&h1, 0, h), &dmu, fc21, th, g, Some((&dh1, h, false)));
        r.linear_backward(n, rows(&h1, 0, h), &dlogvar, fc22, th, g, Some((&dh1, h, true)));
        r.act_backward(n * h, &h1, &dh1, RELU, None);
        r.linear_backward(n, rows(&x, 0, p + c), &dh1, fc1, th, g, None);
        // the step's numbers, its verdict, Adam
        r.sum(&bce_terms, 0, n * p, &self.stats, 1, 1.0 / n as f32, false);
        r.sum(&kl_terms, 0, n * l, &self.stats, 2, 1.0 / n as f32, false);
        r.sum(&self.grads, 0, self.layout.total, &self.stats, 4, 1.0, true);
        r.push(Kernel::CheckStep, &[0, 0, 0, 0], &[&self.stats, &self.control], (1, 1, 1));
        self.record_adam(&mut r, "");
        self.record_commit(&mut r);
        let Recorder { list, uniforms, .. } = r;
        Ok(StepPlan {
            rows: n,
            dispatches: list,
            _uniforms: uniforms,
            _activations: vec![x, h1, mu, logvar, zc, h3, logits, bce_terms, kl_terms, dh3, dz, dmu, dlogvar, dh1],
            idx,
            noise,
            masks: self.gpu.storage("masks", 4),
            wrong: self.gpu.storage("wrong", 4),
            mask_bits: 0,
        })
    }

    /// Adam's proposal over the parameters under `prefix` ("": all of them).
    fn record_adam(&self, r: &mut Recorder, prefix: &str) {
        let (off, count) = self.layout.range(prefix);
        let mut words = self.adam_words;
        words[0] = off;
        words[1] = count;
        let uniform = self.gpu.uniform("adam", bytemuck::cast_slice(&words));
        let wg = (workgroups(count as usize, 256), 1, 1);
        r.push_bound(
            Kernel::AdamPropose,
            &[&uniform, &self.step_uniform, &self.theta, &self.grads, &self.m, &self.v, &self.next_theta, &self.next_m, &self.next_v],
            wg,
        );
        r.uniforms.push(uniform);
    }

    fn record_commit(&self, r: &mut Recorder) {
        let mut words = self.adam_words;
        words[0] = 0;
        words[1] = self.layout.total as u32;
        let wg = (workgroups(self.layout.total, 256), 1, 1);
        r.push(
            Kernel::AdamCommit,
            &words,
            &[&self.stats, &self.next_theta, &self.next_m, &self.next_v, &self.theta, &self.m, &self.v],
            wg,
        );
    }

    fn record_gan_step(&self, n: usize) -> Result<StepPlan> {
        let Some((images, labels, _, _)) = &self.data else { bail!("no dataset on the GPU") };
        let cfg = &self.cfg;
        let conditional = cfg.kind.is_conditional();
        let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
        let w = p + c; // the discriminator's input width
        let rd = if conditional { 3 * n } else { 2 * n }; // discriminator rows: real, fake, mismatched
        let gpu = &self.gpu;
        let act = |name: &str, len: usize| gpu.storage(name, (len * 4) as u64);
        let idx = act("idx", n);
        let noise = act("noise", n * l);
        let wrong = act("wrong", n);
        let mask_bits = rd * 3 * h + n * 3 * h;
        let masks = act("masks", mask_bits.div_ceil(32));
        let gin = act("g_in", n * (l + c));
        let g1 = act("g1", n * h);
        let g2 = act("g2", n * 2 * h);
        let glogit = act("g_logits", n * p);
        let din = act("d_in", rd * w);
        let d1 = act("d1", rd * 2 * h);
        let d2 = act("d2", rd * h);
        let dlogit = act("d_logits", rd);
        let ddlogit = act("dd_logits", rd);
        let dd2 = act("dd2", rd * h);
        let dd1 = act("dd1", rd * 2 * h);
        let e1 = act("e1", n * 2 * h);
        let e2 = act("e2", n * h);
        let elogit = act("e_logits", n);
        let delogit = act("de_logits", n);
        let de2 = act("de2", n * h);
        let de1 = act("de1", n * 2 * h);
        let dfake = act("d_fake", n * p);
        let dg2 = act("dg2", n * 2 * h);
        let dg1 = act("dg1", n * h);
        let lay = |name: &str| layer(&self.layout, cfg, name);
        let (gf1, gf2, gf3) = (lay("generator.fc1")?, lay("generator.fc2")?, lay("generator.fc3")?);
        let (df1, df2, df3) = (lay("discriminator.fc1")?, lay("discriminator.fc2")?, lay("discriminator.fc3")?);
        let (m1, m2) = (0u32, (rd * 2 * h) as u32);
        let (mg1, mg2) = ((rd * 3 * h) as u32, (rd * 3 * h + n * 2 * h) as u32);
        let th = &self.theta;
        let next = &self.next_theta;
        let g = Some(&self.grads);
        let mut r = Recorder::new(gpu, &self.kernels, &self.dummy);
        // generator forward
        r.push(Kernel::LatentInput, &[n as u32, l as u32, (l + c) as u32, 0], &[labels, &idx, &noise, &gin], (workgroups(n * (l + c), 256), 1, 1));
        r.linear_forward(n, rows(&gin, 0, l + c), gf1, th, &g1, LEAKY, None);
        r.linear_forward(n, rows(&g1, 0, h), gf2, th, &g2, LEAKY, None);
        r.linear_forward(n, rows(&g2, 0, 2 * h), gf3, th, &glogit, NONE, None);
        // the discriminator's batch: real digits, the generator's, real digits with wrong labels
        let gather = |r: &mut Recorder, row0: usize, mode: u32| {
            let words = [n as u32, row0 as u32, w as u32, mode, f(2.0), f(-1.0), 0, 0];
            r.push(Kernel::Gather, &words, &[images, labels, &idx, &wrong, &din], (workgroups(n * w, 256), 1, 1));
        };
        gather(&mut r, 0, if conditional { 1 } else { 0 });
        r.push(Kernel::FakeToD, &[n as u32, w as u32, n as u32, 0], &[&glogit, labels, &idx, &din], (workgroups(n * w, 256), 1, 1));
        if conditional {
            gather(&mut r, 2 * n, 2);
        }
        // discriminator forward, loss and backward (the generator's images enter as constants)
        r.linear_forward(rd, rows(&din, 0, w), df1, th, &d1, LEAKY, Some((&masks, m1)));
        r.linear_forward(rd, rows(&d1, 0, 2 * h), df2, th, &d2, LEAKY, Some((&masks, m2)));
        r.linear_forward(rd, rows(&d2, 0, h), df3, th, &dlogit, NONE, None);
        r.push(Kernel::DiscriminatorLoss, &[n as u32, conditional as u32, 0, 0], &[&dlogit, &ddlogit, &self.stats], (1, 1, 1));
        r.linear_backward(rd, rows(&d2, 0, h), &ddlogit, df3, th, g, Some((&dd2, h, false)));
        r.act_backward(rd * h, &d2, &dd2, LEAKY, Some((&masks, m2)));
        r.linear_backward(rd, rows(&d1, 0, 2 * h), &dd2, df2, th, g, Some((&dd1, 2 * h, false)));
        r.act_backward(rd * 2 * h, &d1, &dd1, LEAKY, Some((&masks, m1)));
        r.linear_backward(rd, rows(&din, 0, w), &dd1, df1, th, g, None);
        let (d_off, d_count) = self.layout.range("discriminator.");
        r.sum(&self.grads, d_off, d_count as usize, &self.stats, 4, 1.0, true);
        self.record_adam(&mut r, "discriminator.");
        // generator half, judged by the discriminator as its proposal leaves it
        let fake_rows = rows(&din, (n * w) as u32, w);
        r.linear_forward(n, fake_rows, df1, next, &e1, LEAKY, Some((&masks, mg1)));
        r.linear_forward(n, rows(&e1, 0, 2 * h), df2, next, &e2, LEAKY, Some((&masks, mg2)));
        r.linear_forward(n, rows(&e2, 0, h), df3, next, &elogit, NONE, None);
        r.push(Kernel::GeneratorLoss, &[n as u32, 0, 0, 0], &[&elogit, &delogit, &self.stats], (1, 1, 1));
        r.linear_backward(n, rows(&e2, 0, h), &delogit, df3, next, None, Some((&de2, h, false)));
        r.act_backward(n * h, &e2, &de2, LEAKY, Some((&masks, mg2)));
        r.linear_backward(n, rows(&e1, 0, 2 * h), &de2, df2, next, None, Some((&de1, 2 * h, false)));
        r.act_backward(n * 2 * h, &e1, &de1, LEAKY, Some((&masks, mg1)));
        // only the pixel columns of dX: the label takes no gradient
        r.linear_backward(n, fake_rows, &de1, df1, next, None, Some((&dfake, p, false)));
        r.push(Kernel::FakeBackward, &[n as u32, p as u32, 0, 0], &[&glogit, &dfake], (workgroups(n * p, 256), 1, 1));
        r.linear_backward(n, rows(&g2, 0, 2 * h), &dfake, gf3, th, g, Some((&dg2, 2 * h, false)));
        r.act_backward(n * 2 * h, &g2, &dg2, LEAKY, None);
        r.linear_backward(n, rows(&g1, 0, h), &dg2, gf2, th, g, Some((&dg1, h, false)));
        r.act_backward(n * h, &g1, &dg1, LEAKY, None);
        r.linear_backward(n, rows(&gin, 0, l + c), &dg1, gf1, th, g, None);
        let (g_off, g_count) = self.layout.range("generator.");
        r.sum(&self.grads, g_off, g_count as usize, &self.stats, 5, 1.0, true);
        self.record_adam(&mut r, "generator.");
        r.push(Kernel::CheckStep, &[1, 0, 0, 0], &[&self.stats, &self.control], (1, 1, 1));
        self.record_commit(&mut r);
        let Recorder { list, uniforms, .. } = r;
        Ok(StepPlan {
            rows: n,
            dispatches: list,
            _uniforms: uniforms,
            _activations: vec![
                gin, g1, g2, glogit, din, d1, d2, dlogit, ddlogit, dd2, dd1, e1, e2, elogit, delogit, de2, de1, dfake, dg2, dg1,
            ],
            idx,
            noise,
            masks,
            wrong,
            mask_bits,
        })
    }

    /// Packs the batch's dropout keep flags into the plan's bit layout (the discriminator's layers
    /// 1 and 2 over its real, fake and mismatched rows, then the generator pass's), with the
    /// cGAN's wrong labels.
    fn pack_gan_draws(&self, n: usize, batch: &Batch, mask_bits: usize) -> Result<(Vec<u32>, Vec<u32>)> {
        let draws = batch.gan.ok_or_else(|| anyhow!("a GAN step needs its dropout draws in the batch"))?;
        let h = self.cfg.hidden;
        let conditional = self.cfg.kind.is_conditional();
        ensure!(draws.mismatched.is_some() == conditional, "a cGAN step, and only a cGAN step, has mismatched labels");
        let rd = if conditional { 3 * n } else { 2 * n };
        let mut bits = vec![0u32; mask_bits.div_ceil(32)];
        let mut put = |start: usize, keep: &[bool]| {
            for (i, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
                bits[(start + i) / 32] |= 1 << ((start + i) % 32);
            }
        };
        let (m1, m2) = (0, rd * 2 * h);
        let (mg1, mg2) = (rd * 3 * h, rd * 3 * h + n * 2 * h);
        let mut rows = vec![&draws.real, &draws.fake];
        if let Some(m) = &draws.mismatched {
            rows.push(&m.keep);
        }
        for (block, keep) in rows.into_iter().enumerate() {
            let keep: &DropoutKeep = keep;
            ensure!(keep.h1.len() == n * 2 * h && keep.h2.len() == n * h, "dropout flags for another batch size");
            put(m1 + block * n * 2 * h, &keep.h1);
            put(m2 + block * n * h, &keep.h2);
        }
        put(mg1, &draws.generator.h1);
        put(mg2, &draws.generator.h2);
        let wrong = draws.mismatched.as_ref().map_or(vec![0u32; n], |m| m.labels.iter().map(|&l| l as u32).collect());
        Ok((bits, wrong))
    }

    /// Queues one step. Adam's t for it is the steps committed so far plus those still in flight:
    /// a refused step halts every later one on the GPU, so that count is exact for every step that
    /// commits.
    pub fn submit_step(&mut self, batch: &Batch, learning_rate: f64) -> Result<PendingStep> {
        self.gpu.check()?;
        let Some((_, _, len, print)) = &self.data else {
            bail!("no dataset on the GPU: hand one over with set_dataset before train_step");
        };
        ensure!(
            *len == batch.data.len() && *print == fingerprint(batch.data),
            "the batch comes from another dataset than the one on the GPU"
        );
        let n = batch.indices.len();
        ensure!(n > 0, "an empty batch");
        ensure!(batch.noise.len() == n * self.cfg.latent, "{} noise values for {n} rows", batch.noise.len());
        if self.halted {
            ensure!(self.in_flight == 0, "steps queued behind a refused one must be read back first");
            self.gpu.queue.write_buffer(&self.control, 0, bytemuck::cast_slice(&[0u32]));
            self.halted = false;
        }
        let i = self.plan_index(n)?;
        let gan_draws = if self.cfg.kind.is_gan() {
            let bits = self.plans[i].mask_bits;
            Some(self.pack_gan_draws(n, batch, bits)?)
        } else {
            None
        };
        let plan = &self.plans[i];
        let q = &self.gpu.queue;
        let idx: Vec<u32> = batch.indices.iter().map(|&i| i as u32).collect();
        q.write_buffer(&plan.idx, 0, bytemuck::cast_slice(&idx));
        q.write_buffer(&plan.noise, 0, as_bytes(batch.noise));
        let mut upload = (idx.len() * 4 + batch.noise.len() * 4 + 16) as u64;
        if let Some((bits, wrong)) = &gan_draws {
            q.write_buffer(&plan.masks, 0, bytemuck::cast_slice(bits));
            q.write_buffer(&plan.wrong, 0, bytemuck::cast_slice(wrong));
            upload += (bits.len() * 4 + wrong.len() * 4) as u64;
        }
        let t = self.committed + self.in_flight + 1;
        q.write_buffer(&self.step_uniform, 0, bytemuck::cast_slice(&self.step_words(learning_rate, t)));
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, &plan.dispatches);
        let stats = self.gpu.readback("step stats", (STATS * 4) as u64);
        encoder.copy_buffer_to_buffer(&self.stats, 0, &stats, 0, (STATS * 4) as u64);
        let mut readback = (STATS * 4) as u64;
        let sync = (t % self.sync_every == 0).then(|| {
            let buf = self.copy_state_out(&mut encoder);
            readback += buf.size();
            buf
        });
        q.submit([encoder.finish()]);
        self.gpu.check()?;
        self.in_flight += 1;
        self.io.submissions += 1;
        self.io.uploaded += upload;
        self.io.read_back += readback;
        Ok(PendingStep { gpu: self.gpu.clone(), stats, sync, total: self.layout.total })
    }

    fn encode(&self, encoder: &mut wgpu::CommandEncoder, dispatches: &[Dispatch]) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        for d in dispatches {
            pass.set_pipeline(self.kernels.pipeline(d.kernel));
            pass.set_bind_group(0, &d.group, &[]);
            pass.dispatch_workgroups(d.workgroups.0, d.workgroups.1, d.workgroups.2);
        }
    }

    /// A submitted step whose readback failed: no longer in flight.
    pub fn forget_step(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Takes a step's readback: its losses, or the error that refused it (the weights unchanged).
    pub fn finish_step(&mut self, r: StepReadback) -> Result<StepLosses> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let s = r.stats;
        self.committed = s[COMMITTED] as u64;
        if let Some(synced) = r.synced {
            self.synced = Some(synced);
        }
        let gan = self.cfg.kind.is_gan();
        if s[OK] != 1.0 {
            self.halted = true;
            let (what, value) = if !s[0].is_finite() {
                (if gan { "the discriminator's loss" } else { "the loss" }, s[0].to_string())
            } else if !s[4].is_finite() {
                (if gan { "the discriminator's gradient" } else { "the gradient" }, "not finite".to_string())
            } else if gan && !s[1].is_finite() {
                ("the generator's loss", s[1].to_string())
            } else if gan && !s[5].is_finite() {
                ("the generator's gradient", "not finite".to_string())
            } else {
                ("an earlier step", "refused".to_string())
            };
            return Err(train::diverged(what, value));
        }
        Ok(if gan {
            StepLosses::Gan(GanLosses { d_loss: s[0], g_loss: s[1], d_real: s[2], d_fake: s[3] })
        } else {
            StepLosses::Vae(LossParts { loss: s[0], bce: s[1], kl: s[2] })
        })
    }

    /// Copies the weights and Adam's moments out now (after every queued step).
    pub fn sync_now(&mut self) -> PendingSync {
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        let buf = self.copy_state_out(&mut encoder);
        self.gpu.queue.submit([encoder.finish()]);
        self.io.submissions += 1;
        self.io.read_back += buf.size();
        PendingSync(PendingStep { gpu: self.gpu.clone(), stats: buf, sync: None, total: self.layout.total })
    }

    /// Records a copy of θ, m, v and `control` (in that order) into a new readback buffer.
    fn copy_state_out(&self, encoder: &mut wgpu::CommandEncoder) -> wgpu::Buffer {
        let bytes = self.layout.total as u64 * 4;
        let buf = self.gpu.readback("weights sync", 3 * bytes + 8);
        for (i, src) in [&self.theta, &self.m, &self.v].into_iter().enumerate() {
            encoder.copy_buffer_to_buffer(src, 0, &buf, i as u64 * bytes, bytes);
        }
        encoder.copy_buffer_to_buffer(&self.control, 0, &buf, 3 * bytes, 8);
        buf
    }

    /// The step uniform for Adam's step `t`: lr and the bias corrections 1/(1 − βᵗ), in f64 as candle computes them.
    fn step_words(&self, learning_rate: f64, t: u64) -> [u32; 4] {
        let scale_m = 1f64 / (1f64 - self.beta1.powi(t as i32));
        let scale_v = 1f64 / (1f64 - self.beta2.powi(t as i32));
        [f(learning_rate as f32), f(scale_m as f32), f(scale_v as f32), 0]
    }

    /// The last step's gradients, by parameter name (for the parity tests).
    pub fn read_gradients(&self) -> PendingSync {
        let bytes = self.layout.total as u64 * 4;
        let buf = self.gpu.readback("gradients", bytes);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&self.grads, 0, &buf, 0, bytes);
        self.gpu.queue.submit([encoder.finish()]);
        PendingSync(PendingStep { gpu: self.gpu.clone(), stats: buf, sync: None, total: self.layout.total })
    }

    /// Adam alone on the given gradients (by name), committed unconditionally: the parity test's
    /// check that both backends' optimisers agree when fed the same numbers.
    pub fn apply_gradients(&mut self, grads: &HashMap<String, Vec<f32>>, learning_rate: f64) -> Result<()> {
        let mut flat = vec![0f32; self.layout.total];
        for (name, shape, off) in &self.layout.entries {
            let g = grads.get(name).ok_or_else(|| anyhow!("no gradient for {name}"))?;
            let n: usize = shape.iter().product();
            ensure!(g.len() == n, "gradient of {name}: {} values, expected {n}", g.len());
            flat[*off..off + n].copy_from_slice(g);
        }
        let q = &self.gpu.queue;
        q.write_buffer(&self.grads, 0, as_bytes(&flat));
        let mut stats = [0f32; STATS];
        stats[OK] = 1.0;
        q.write_buffer(&self.stats, 0, as_bytes(&stats));
        let t = self.committed + self.in_flight + 1;
        q.write_buffer(&self.step_uniform, 0, bytemuck::cast_slice(&self.step_words(learning_rate, t)));
        let mut r = Recorder::new(&self.gpu, &self.kernels, &self.dummy);
        self.record_adam(&mut r, "");
        self.record_commit(&mut r);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, &r.list);
        q.submit([encoder.finish()]);
        self.committed += 1;
        // No check kernel ran: count the step on the GPU as the check would have.
        q.write_buffer(&self.control, 4, &(self.committed as u32).to_le_bytes());
        self.gpu.check()
    }

    fn sample_plan_index(&mut self, n: usize) -> Result<usize> {
        if let Some(i) = self.sample_plans.iter().position(|p| p.rows == n) {
            return Ok(i);
        }
        let cfg = self.cfg;
        let (l, h, p, c) = (cfg.latent, cfg.hidden, IMAGE_PIXELS, cfg.kind.label_width());
        let gpu = &self.gpu;
        let buf = |name: &str, len: usize| gpu.storage(name, (len * 4) as u64);
        let z = buf("sample z", n * l);
        let labels = buf("sample labels", n);
        let idx = gpu.storage_init("sample rows", bytemuck::cast_slice(&(0..n as u32).collect::<Vec<u32>>()));
        let zc = buf("sample z+label", n * (l + c));
        let out = buf("samples", n * p);
        let mut r = Recorder::new(gpu, &self.kernels, &self.dummy);
        r.push(Kernel::LatentInput, &[n as u32, l as u32, (l + c) as u32, 0], &[&labels, &idx, &z, &zc], (workgroups(n * (l + c), 256), 1, 1));
        let th = &self.theta;
        let mut acts = vec![idx, zc];
        if cfg.kind.is_gan() {
            let (f1, f2, f3) = (layer(&self.layout, &cfg, "generator.fc1")?, layer(&self.layout, &cfg, "generator.fc2")?, layer(&self.layout, &cfg, "generator.fc3")?);
            let (h1, h2) = (buf("sample h1", n * h), buf("sample h2", n * 2 * h));
            r.linear_forward(n, rows(&acts[1], 0, l + c), f1, th, &h1, LEAKY, None);
            r.linear_forward(n, rows(&h1, 0, h), f2, th, &h2, LEAKY, None);
            r.linear_forward(n, rows(&h2, 0, 2 * h), f3, th, &out, SIGMOID, None);
            acts.extend([h1, h2]);
        } else {
            let (f3, f4) = (layer(&self.layout, &cfg, "fc3")?, layer(&self.layout, &cfg, "fc4")?);
            let h3 = buf("sample h3", n * h);
            r.linear_forward(n, rows(&acts[1], 0, l + c), f3, th, &h3, RELU, None);
            r.linear_forward(n, rows(&h3, 0, h), f4, th, &out, SIGMOID, None);
            acts.push(h3);
        }
        let Recorder { list, uniforms, .. } = r;
        self.gpu.check()?;
        if self.sample_plans.len() >= PLANS_KEPT {
            self.sample_plans.remove(0);
        }
        self.sample_plans.push(SamplePlan { rows: n, dispatches: list, _uniforms: uniforms, _activations: acts, z, labels, out });
        Ok(self.sample_plans.len() - 1)
    }

    /// Decodes latent vectors [n, latent] (and labels, conditional kinds) with the GPU's current
    /// weights; `read` the result for images [n, 784]. Checked by the caller (`Lab`).
    pub fn sample(&mut self, z: &[f32], labels: Option<&[u8]>) -> Result<PendingSync> {
        self.gpu.check()?;
        let l = self.cfg.latent;
        ensure!(!z.is_empty() && z.len() % l == 0, "{} values is not a whole number of latent vectors", z.len());
        let n = z.len() / l;
        let i = self.sample_plan_index(n)?;
        let plan = &self.sample_plans[i];
        let q = &self.gpu.queue;
        q.write_buffer(&plan.z, 0, as_bytes(z));
        if let Some(labels) = labels {
            let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            q.write_buffer(&plan.labels, 0, bytemuck::cast_slice(&labels));
        }
        let bytes = (n * IMAGE_PIXELS * 4) as u64;
        let buf = self.gpu.readback("samples", bytes);
        let mut encoder = self.gpu.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, &plan.dispatches);
        encoder.copy_buffer_to_buffer(&plan.out, 0, &buf, 0, bytes);
        q.submit([encoder.finish()]);
        self.io.submissions += 1;
        self.io.uploaded += (z.len() * 4 + labels.map_or(0, |l| l.len() * 4)) as u64;
        self.io.read_back += bytes;
        self.gpu.check()?;
        Ok(PendingSync(PendingStep { gpu: self.gpu.clone(), stats: buf, sync: None, total: self.layout.total }))
    }
}

/// A copy out of the GPU in flight: weights (from `sync_now`), gradients or samples.
pub struct PendingSync(PendingStep);

/// Images being decoded on the GPU.
pub type PendingImages = PendingSync;

impl PendingSync {
    /// The copied floats.
    pub async fn read(self) -> Result<Vec<f32>> {
        Ok(to_f32(&read_buffer(&self.0.gpu, &self.0.stats).await?))
    }

    /// A `sync_now` copy as weights, moments and Adam's t.
    pub async fn read_synced(self) -> Result<Synced> {
        let t = self.0.total;
        let all = self.read().await?;
        ensure!(all.len() >= 3 * t + 2, "a short weights copy");
        Ok(Synced {
            committed: all[3 * t + 1].to_bits() as u64,
            theta: all[..t].to_vec(),
            m: all[t..2 * t].to_vec(),
            v: all[2 * t..3 * t].to_vec(),
        })
    }
}

impl Synced {
    /// The copied weights and Adam's state by parameter name.
    pub fn snapshot(&self, layout: &ParamLayout) -> Snapshot {
        let mut moments = HashMap::new();
        for (name, shape, off) in &layout.entries {
            let n: usize = shape.iter().product();
            moments.insert(name.clone(), (self.m[*off..off + n].to_vec(), self.v[*off..off + n].to_vec()));
        }
        Snapshot { params: layout.split(&self.theta), optimizer: OptimizerState { t: self.committed, moments } }
    }
}

/// Cheap identity for a dataset: its size and a spread of its bytes.
fn fingerprint(data: &Dataset) -> Vec<u8> {
    let step = (data.images.len() / 64).max(1);
    let mut print: Vec<u8> = data.images.iter().step_by(step).copied().collect();
    print.extend(data.labels.iter().step_by((data.labels.len() / 64).max(1)).copied());
    print
}

/// The training seam: a step is one queue submission, read back later.
impl TrainBackend for GpuBackend {
    fn name(&self) -> &'static str {
        "webgpu"
    }

    fn set_dataset(&mut self, data: &Dataset) -> Result<()> {
        self.upload_dataset(data)
    }

    fn submit(&mut self, batch: &Batch, learning_rate: f64) -> Result<train::PendingStep> {
        let pending = self.submit_step(batch, learning_rate)?;
        Ok(train::PendingStep(Box::pin(async move {
            let r = pending.read().await?;
            Ok(train::StepReadback(Box::new(r)))
        })))
    }

    fn finish(&mut self, readback: train::StepReadback) -> Result<StepLosses> {
        match readback.0.downcast::<StepReadback>() {
            Ok(r) => self.finish_step(*r),
            Err(_) => bail!("the WebGPU backend was handed another backend's step"),
        }
    }

    fn forget_oldest(&mut self) {
        self.forget_step();
    }

    fn set_sync_interval(&mut self, steps: u64) {
        self.sync_every = steps.max(1);
    }

    fn take_snapshot(&mut self) -> Option<Snapshot> {
        self.synced.take().map(|s| s.snapshot(&self.layout))
    }

    fn snapshot_now(&mut self) -> Result<PendingSnapshot> {
        let pending = self.sync_now();
        let layout = ParamLayout::new(&self.cfg);
        Ok(PendingSnapshot(Box::pin(async move { Ok(pending.read_synced().await?.snapshot(&layout)) })))
    }

    fn optimizer_state(&self) -> Result<OptimizerState> {
        bail!("the WebGPU backend's Adam state is read back with snapshot_now")
    }

    fn set_optimizer_state(&mut self, _state: &OptimizerState) -> Result<()> {
        bail!("the WebGPU backend takes Adam's state when it is made")
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
