// Sums into the step's stats, and the step's verdict.
//
// sum, in two passes so a long sum (a GAN's million gradient entries) spreads over many workgroups:
//   sum_partials: partials[w] = Σ_{i in chunk w} src[off + i]     (chunk w: SUM_CHUNK elements from
//                               w·SUM_CHUNK; of squares src² with `square`: a gradient's squared norm)
//   sum_final:    stats[slot] = scale · Σ_w partials[w]           (one workgroup)
//   Each element goes to a fixed thread and each tree to a fixed order, so sums repeat exactly.
// check_step:  ok = the losses and gradient norms are finite and no earlier step was refused.
//              A refused step halts every later one until the host clears `control`, so a step
//              queued behind a failure cannot move the weights either (the CPU backend's rule: a
//              step that fails leaves the weights as they were).
// The stats slots (STAT_*), control words (CONTROL_*) and the uniforms come from params.rs.

@group(0) @binding(0) var<uniform> sp: SumPartials;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

var<workgroup> part: array<f32, 256>;

// Tree sum over the workgroup's 256 values; thread 0 gets the total.
fn tree_sum(t: u32) {
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) { part[t] += part[t + w]; }
    workgroupBarrier();
  }
}

@compute @workgroup_size(256)
fn sum_partials(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let t = lid.x;
  let w = wid.x + wid.y * nwg.x;
  let start = w * SUM_CHUNK;
  let end = min(start + SUM_CHUNK, sp.count);
  var acc = 0.0;
  for (var i = start + t; i < end; i += 256u) {
    let v = src[sp.off + i];
    acc += select(v, v * v, sp.square != 0u);
  }
  part[t] = acc;
  tree_sum(t);
  if (t == 0u && start < sp.count) { partials[w] = part[0]; }
}

@group(0) @binding(0) var<uniform> sf: SumFinal;
@group(0) @binding(1) var<storage, read> f_partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(256)
fn sum_final(@builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  var acc = 0.0;
  for (var i = t; i < sf.count; i += 256u) { acc += f_partials[i]; }
  part[t] = acc;
  tree_sum(t);
  if (t == 0u) { stats[sf.slot] = part[0] * sf.scale; }
}

@group(0) @binding(0) var<uniform> c: Check;
@group(0) @binding(1) var<storage, read_write> c_stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> control: array<u32>;

// WGSL has no isFinite; a float is finite unless its exponent bits are all ones.
fn finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }

@compute @workgroup_size(1)
fn check_step() {
  if (c.gan == 0u) { c_stats[STAT_LOSS] = c_stats[STAT_BCE] + c.kl_weight * c_stats[STAT_KL]; }
  var ok = finite(c_stats[STAT_LOSS]) && finite(c_stats[STAT_GRAD_SQ]) && control[CONTROL_HALTED] == 0u;
  if (c.gan != 0u) { ok = ok && finite(c_stats[STAT_G_LOSS]) && finite(c_stats[STAT_G_GRAD_SQ]); }
  if (ok) { control[CONTROL_COMMITTED] += 1u; } else { control[CONTROL_HALTED] = 1u; }
  c_stats[STAT_OK] = select(0.0, 1.0, ok);
  c_stats[STAT_COMMITTED] = f32(control[CONTROL_COMMITTED]);
}
