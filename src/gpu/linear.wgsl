// The linear layer, forward and backward, as three uses of one tiled matrix product.
//
// PyTorch stores W as [out, in], so for y = act(x·Wᵀ + b):
//   forward:   Y  = act(X · Wᵀ + b) ⊙ mask       X [n, in], W [out, in]    (bias, activation and
//                                                                          dropout fused in the epilogue)
//   backward:  dZ = dY ⊙ mask ⊙ act′(Y)          (act_backward, elementwise)
//              dX = dZ · W                       [n, out]·[out, in]
//              dW = dZᵀ · X                      [out, n]·[n, in]   (+= when accumulating)
//              db = Σ_rows dZ                    (bias_grad)
// A strided view (offset, row stride, column stride) lets one kernel read A or B transposed.
// The uniform structs (Matmul, Elementwise, BiasGrad), the activation codes (ACT_*) and flags
// (FLAG_*) come from the prelude that src/gpu/params.rs generates.
// Activations: none, ReLU, LeakyReLU(0.2), sigmoid (sampling only: training takes the
// loss on logits). act′ is read from the output: for ReLU and LeakyReLU the output is positive
// exactly where the input was (dropout's zeros have zero gradient anyway).

@group(0) @binding(0) var<uniform> p: Matmul;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read> mask: array<u32>;

fn activate(x: f32, act: u32) -> f32 {
  if (act == ACT_RELU) { return max(x, 0.0); }
  if (act == ACT_LEAKY) { return max(x, LEAK * x); }
  if (act == ACT_SIGMOID) { return 1.0 / (1.0 + exp(-x)); }
  return x;
}

// Inverted dropout: bit i of the mask keeps unit i, scaled by 1/(1 − p); a clear bit zeroes it.
fn mask_bit(i: u32) -> bool {
  return ((mask[i / 32u] >> (i % 32u)) & 1u) == 1u;
}

// A 32×64 tile of C per workgroup of 8×8 threads, each thread a 4×8 block; K in steps of 32
// through workgroup memory. Few threads and few barriers per tile suit CPU implementations of
// WebGPU (SwiftShader, lavapipe), where each barrier switches between groups of invocations, and
// each load from workgroup memory is a gather over a group's lanes: a 4×8 block loads 12 values
// for every 32 products. A thread's columns are 8 apart, so neighbouring threads read
// neighbouring values (no bank conflicts on a real GPU). The block lives in eight vec4s and
// every loop that indexes it is written out: an array indexed in a loop is kept in memory by
// SwiftShader (each access a per-lane gather), which made the product several times slower
// there. Each output sums over k in order, so results repeat exactly.
var<workgroup> tile_a: array<f32, 1024>; // [32 rows][32 k]
var<workgroup> tile_b: array<f32, 2048>; // [32 k][64 columns]

@compute @workgroup_size(8, 8)
fn matmul(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let row0 = wid.y * 32u;
  let col0 = wid.x * 64u;
  let tid = lid.y * 8u + lid.x;
  let ar = lid.y * 4u * 32u; // this thread's first row in tile_a
  let bc = lid.x;            // its first column in tile_b
  // acc{row}{columns 0-3 | 4-7 of the thread's eight}
  var acc0l = vec4f(0.0);
  var acc0h = vec4f(0.0);
  var acc1l = vec4f(0.0);
  var acc1h = vec4f(0.0);
  var acc2l = vec4f(0.0);
  var acc2h = vec4f(0.0);
  var acc3l = vec4f(0.0);
  var acc3h = vec4f(0.0);
  for (var k0 = 0u; k0 < p.k; k0 += 32u) {
    for (var i = tid; i < 1024u; i += 64u) {
      let r = row0 + i / 32u;
      let ka = k0 + i % 32u;
      var va = 0.0;
      if (r < p.m && ka < p.k) { va = a[p.a_off + r * p.a_rs + ka * p.a_cs]; }
      tile_a[i] = va;
    }
    for (var i = tid; i < 2048u; i += 64u) {
      let kb = k0 + i / 64u;
      let col = col0 + i % 64u;
      var vb = 0.0;
      if (kb < p.k && col < p.n) { vb = b[p.b_off + kb * p.b_rs + col * p.b_cs]; }
      tile_b[i] = vb;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < 32u; kk++) {
      let bi = kk * 64u + bc;
      let bl = vec4f(tile_b[bi], tile_b[bi + 8u], tile_b[bi + 16u], tile_b[bi + 24u]);
      let bh = vec4f(tile_b[bi + 32u], tile_b[bi + 40u], tile_b[bi + 48u], tile_b[bi + 56u]);
      let a0 = tile_a[ar + kk];
      let a1 = tile_a[ar + 32u + kk];
      let a2 = tile_a[ar + 64u + kk];
      let a3 = tile_a[ar + 96u + kk];
      acc0l += a0 * bl;
      acc0h += a0 * bh;
      acc1l += a1 * bl;
      acc1h += a1 * bh;
      acc2l += a2 * bl;
      acc2h += a2 * bh;
      acc3l += a3 * bl;
      acc3h += a3 * bh;
    }
    workgroupBarrier();
  }
  let r = row0 + lid.y * 4u;
  let col = col0 + bc;
  store_row(r, col, acc0l, acc0h);
  store_row(r + 1u, col, acc1l, acc1h);
  store_row(r + 2u, col, acc2l, acc2h);
  store_row(r + 3u, col, acc3l, acc3h);
}

// A thread's eight outputs in row r: columns col, col + 8, …, col + 56.
fn store_row(r: u32, col: u32, lo: vec4f, hi: vec4f) {
  store(r, col, lo.x);
  store(r, col + 8u, lo.y);
  store(r, col + 16u, lo.z);
  store(r, col + 24u, lo.w);
  store(r, col + 32u, hi.x);
  store(r, col + 40u, hi.y);
  store(r, col + 48u, hi.z);
  store(r, col + 56u, hi.w);
}

// The epilogue: bias, activation, dropout, and accumulation into C.
fn store(r: u32, col: u32, sum: f32) {
  if (r >= p.m || col >= p.n) { return; }
  var v = sum;
  if ((p.flags & FLAG_BIAS) != 0u) { v += bias[p.bias_off + col]; }
  v = activate(v, p.flags & ACT_BITS);
  if ((p.flags & FLAG_MASK) != 0u) {
    v = select(0.0, v * p.keep, mask_bit(p.mask_off + r * p.n + col));
  }
  let ci = p.c_off + r * p.c_rs + col;
  if ((p.flags & FLAG_ACCUMULATE) != 0u) { v += c[ci]; }
  c[ci] = v;
}

@group(0) @binding(0) var<uniform> e: Elementwise;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> dy: array<f32>;
@group(0) @binding(3) var<storage, read> dmask: array<u32>;

// dZ = dY ⊙ mask ⊙ act′(Y), in place over dY [rows, cols].
@compute @workgroup_size(256)
fn act_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= e.count) { return; }
  var g = dy[i];
  if ((e.flags & FLAG_MASK) != 0u) {
    let mi = e.mask_off + i;
    g = select(0.0, g * e.keep, ((dmask[mi / 32u] >> (mi % 32u)) & 1u) == 1u);
  }
  let act = e.flags & ACT_BITS;
  if (act == ACT_RELU && y[i] <= 0.0) { g = 0.0; }
  if (act == ACT_LEAKY && y[i] <= 0.0) { g = g * LEAK; }
  dy[i] = g;
}

@group(0) @binding(0) var<uniform> bg: BiasGrad;
@group(0) @binding(1) var<storage, read> dz: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;

// db[j] = Σ_r dZ[r, j]
@compute @workgroup_size(64)
fn bias_grad(@builtin(global_invocation_id) gid: vec3u) {
  let j = gid.x;
  if (j >= bg.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < bg.rows; r++) { s += dz[bg.src_off + r * bg.src_rs + j]; }
  if (bg.accumulate != 0u) { s += db[bg.dst_off + j]; }
  db[bg.dst_off + j] = s;
}
