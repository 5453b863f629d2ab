// The GAN's own kernels: the generator's output as the discriminator sees it, and the losses.
//
// fake_to_d:  X_d[n + r, c] = 2·sigmoid(l[r, c]) − 1   (the generator's images, centred as real
//             digits are; label columns one-hot ×hot, the label gain, conditional kinds)
//   backward: dl = dX_d · 2·s·(1 − s),  s = sigmoid(l)                   (fake_backward, in place)
// discriminator loss over logits [rows]: real rows 0..n, generated n..2n, mismatched 2n..3n (cGAN):
//   L_D = mean softplus(−l_real) + w·(mean softplus(l_fake) [+ mean softplus(l_mismatched)])
//   with w = 1 (gan) or ½ (cgan);  dl_real = (sigmoid(l) − 1)/n,  dl_fake = w·sigmoid(l)/n
// generator loss (non-saturating): L_G = mean softplus(−l),  dl = (sigmoid(l) − 1)/n
// softplus(l) = max(l, 0) + log(1 + e^−|l|), the stable form. Fake, GanLoss: params.rs.

@group(0) @binding(0) var<uniform> f: Fake;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> xd: array<f32>;

fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn softplus(x: f32) -> f32 { return max(x, 0.0) + log(1.0 + exp(-abs(x))); }

@compute @workgroup_size(256)
fn fake_to_d(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= f.rows * f.width) { return; }
  let r = i / f.width;
  let c = i % f.width;
  var v = 0.0;
  if (c < PIXELS) {
    v = 2.0 * sigmoid(logits[r * PIXELS + c]) - 1.0;
  } else {
    v = select(0.0, f.hot, c - PIXELS == labels[idx[r]]);
  }
  xd[(f.row0 + r) * f.width + c] = v;
}

@group(0) @binding(0) var<uniform> fb: Fake;
@group(0) @binding(1) var<storage, read> fb_logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;   // dX_d [rows, 784] in, dl out

@compute @workgroup_size(256)
fn fake_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= fb.rows * PIXELS) { return; }
  let s = sigmoid(fb_logits[i]);
  dx[i] = dx[i] * 2.0 * s * (1.0 - s);
}

@group(0) @binding(0) var<uniform> ls: GanLoss;
@group(0) @binding(1) var<storage, read> l: array<f32>;
@group(0) @binding(2) var<storage, read_write> dl: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;

var<workgroup> part: array<vec4f, 256>;

// Sums v over the workgroup; every thread gets the total.
fn workgroup_sum(t: u32, v: vec4f) -> vec4f {
  part[t] = v;
  workgroupBarrier();
  for (var s = 128u; s > 0u; s >>= 1u) {
    if (t < s) { part[t] += part[t + s]; }
    workgroupBarrier();
  }
  let total = part[0];
  workgroupBarrier();
  return total;
}

// One workgroup (n is a batch's rows). Writes L_D, mean D(real), mean D(fake) to their stats slots.
@compute @workgroup_size(256)
fn discriminator_loss(@builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  let n = ls.n;
  let inv_n = 1.0 / f32(n);
  let w = select(1.0, 0.5, ls.conditional != 0u);
  var acc = vec4f(0.0);   // softplus(−real), softplus(fake) + softplus(mismatched), D(real), D(fake)
  for (var r = t; r < n; r += 256u) {
    let lr = l[r];
    let lf = l[n + r];
    acc += vec4f(softplus(-lr), softplus(lf), sigmoid(lr), sigmoid(lf));
    dl[r] = (sigmoid(lr) - 1.0) * inv_n;
    dl[n + r] = w * sigmoid(lf) * inv_n;
    if (ls.conditional != 0u) {
      let lm = l[2u * n + r];
      acc.y += softplus(lm);
      dl[2u * n + r] = w * sigmoid(lm) * inv_n;
    }
  }
  let s = workgroup_sum(t, acc);
  if (t == 0u) {
    stats[STAT_D_LOSS] = s.x * inv_n + w * s.y * inv_n;
    stats[STAT_D_REAL] = s.z * inv_n;
    stats[STAT_D_FAKE] = s.w * inv_n;
  }
}

// One workgroup. Writes L_G to its stats slot.
@compute @workgroup_size(256)
fn generator_loss(@builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  let n = ls.n;
  let inv_n = 1.0 / f32(n);
  var acc = vec4f(0.0);
  for (var r = t; r < n; r += 256u) {
    let lg = l[r];
    acc.x += softplus(-lg);
    dl[r] = (sigmoid(lg) - 1.0) * inv_n;
  }
  let s = workgroup_sum(t, acc);
  if (t == 0u) { stats[STAT_G_LOSS] = s.x * inv_n; }
}
