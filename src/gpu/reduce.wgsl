// Sums into the step's stats, and the step's verdict.
//
// sum:         stats[slot] = scale · Σ_i src[off + i]      (a loss: its per-element terms)
//              stats[slot] = Σ_i src[off + i]²             (square = 1: a gradient's squared norm)
// check_step:  ok = the losses and gradient norms are finite and no earlier step was refused.
//              A refused step halts every later one until the host clears `control`, so a step
//              queued behind a failure cannot move the weights either (the CPU backend's rule: a
//              step that fails leaves the weights as they were).
// stats: 0 loss (VAE) / L_D, 1 BCE / L_G, 2 KL / D(real), 3 D(fake), 4 |g|² (VAE or D), 5 |g|² (G),
//        6 ok (1 or 0), 7 steps committed so far (this one included).
// control: 0 halted, 1 steps committed.

struct Sum {
  count: u32, off: u32, slot: u32, square: u32,
  scale: f32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> s: Sum;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;

var<workgroup> part: array<f32, 256>;

@compute @workgroup_size(256)
fn sum(@builtin(local_invocation_id) lid: vec3u) {
  let t = lid.x;
  var acc = 0.0;
  for (var i = t; i < s.count; i += 256u) {
    let v = src[s.off + i];
    acc += select(v, v * v, s.square != 0u);
  }
  part[t] = acc;
  workgroupBarrier();
  for (var w = 128u; w > 0u; w >>= 1u) {
    if (t < w) { part[t] += part[t + w]; }
    workgroupBarrier();
  }
  if (t == 0u) { stats[s.slot] = part[0] * s.scale; }
}

struct Check {
  gan: u32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> c: Check;
@group(0) @binding(1) var<storage, read_write> c_stats: array<f32>;
@group(0) @binding(2) var<storage, read_write> control: array<u32>;

// WGSL has no isFinite; a float is finite unless its exponent bits are all ones.
fn finite(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u; }

@compute @workgroup_size(1)
fn check_step() {
  if (c.gan == 0u) { c_stats[0] = c_stats[1] + c_stats[2]; }
  var ok = finite(c_stats[0]) && finite(c_stats[4]) && control[0] == 0u;
  if (c.gan != 0u) { ok = ok && finite(c_stats[1]) && finite(c_stats[5]); }
  if (ok) { control[1] += 1u; } else { control[0] = 1u; }
  c_stats[6] = select(0.0, 1.0, ok);
  c_stats[7] = f32(control[1]);
}
