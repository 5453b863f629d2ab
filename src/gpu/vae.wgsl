// The VAE's own kernels: reparameterisation, and the loss with its gradient.
//
// reparameterise: z = μ + exp(½ log σ²) · ε            Z[r, :latent]; label columns as latent_input
//   backward:     dμ = dz,   d log σ² = dz · ε · ½ exp(½ log σ²)
// KL per example: −½ Σ_j (1 + log σ² − μ² − σ²),  averaged over the batch (÷ n), weighted by β
//   backward:     dμ += β μ / n,   d log σ² += β ½ (σ² − 1) / n
// reconstruction, summed over pixels, averaged over the batch, s = sigmoid(l):
//   BCE on logits: max(l, 0) − x·l + log(1 + e^−|l|),  dl = (s − x) / n
//   L2:            (s − x)²,                           dl = 2(s − x)·s(1 − s) / n
//   L1:            |s − x|,                            dl = sign(s − x)·s(1 − s) / n
// The per-element loss terms go to `terms`; reduce.wgsl sums them. Vae is declared in params.rs.

@group(0) @binding(0) var<uniform> v: Vae;
@group(0) @binding(1) var<storage, read> mu: array<f32>;
@group(0) @binding(2) var<storage, read> logvar: array<f32>;
@group(0) @binding(3) var<storage, read> eps: array<f32>;
@group(0) @binding(4) var<storage, read> labels: array<u32>;
@group(0) @binding(5) var<storage, read> idx: array<u32>;
@group(0) @binding(6) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(256)
fn reparameterise(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= v.rows * v.width) { return; }
  let r = i / v.width;
  let c = i % v.width;
  var out = 0.0;
  if (c < v.latent) {
    let j = r * v.latent + c;
    out = mu[j] + exp(0.5 * logvar[j]) * eps[j];
  } else {
    out = select(0.0, 1.0, c - v.latent == labels[idx[r]]);
  }
  z[i] = out;
}

@group(0) @binding(0) var<uniform> kb: Vae;
@group(0) @binding(1) var<storage, read> k_mu: array<f32>;
@group(0) @binding(2) var<storage, read> k_logvar: array<f32>;
@group(0) @binding(3) var<storage, read> k_eps: array<f32>;
@group(0) @binding(4) var<storage, read> dz: array<f32>;
@group(0) @binding(5) var<storage, read_write> dmu: array<f32>;
@group(0) @binding(6) var<storage, read_write> dlogvar: array<f32>;
@group(0) @binding(7) var<storage, read_write> kl_terms: array<f32>;

// The reparameterisation's backward and the KL term's loss and gradient, per (row, latent dim).
@compute @workgroup_size(256)
fn kl_reparameterise_backward(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= kb.rows * kb.latent) { return; }
  let r = j / kb.latent;
  let c = j % kb.latent;
  let m = k_mu[j];
  let lv = k_logvar[j];
  let g = dz[r * kb.width + c];
  let sd = exp(0.5 * lv);
  kl_terms[j] = -0.5 * (1.0 + lv - m * m - exp(lv));
  dmu[j] = g + m * kb.kl_scale;
  dlogvar[j] = g * k_eps[j] * 0.5 * sd + 0.5 * (exp(lv) - 1.0) * kb.kl_scale;
}

@group(0) @binding(0) var<uniform> bb: Vae;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> logits: array<f32>;   // becomes dL/dlogits
@group(0) @binding(3) var<storage, read_write> recon_terms: array<f32>;

@compute @workgroup_size(256)
fn reconstruction(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= bb.rows * PIXELS) { return; }
  let t = x[(i / PIXELS) * bb.x_width + i % PIXELS];
  let l = logits[i];
  let s = 1.0 / (1.0 + exp(-l));
  let d = s - t;
  if (bb.recon == RECON_L2) {
    recon_terms[i] = d * d;
    logits[i] = 2.0 * d * s * (1.0 - s) * bb.inv_n;
  } else if (bb.recon == RECON_L1) {
    recon_terms[i] = abs(d);
    logits[i] = sign(d) * s * (1.0 - s) * bb.inv_n;
  } else {
    recon_terms[i] = max(l, 0.0) - t * l + log(1.0 + exp(-abs(l)));
    logits[i] = d * bb.inv_n;
  }
}
