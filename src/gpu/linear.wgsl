// The linear layer, forward and backward, as three uses of one register-blocked matrix product.
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

// A 32×64 tile of C per workgroup of 8×8 threads, each thread a 4×8 block: 12 loads for every
// 32 products, straight from the buffers. A thread's columns are 8 apart, so neighbouring threads
// read neighbouring values of B and share A's (coalesced on a GPU, cached on a CPU). No workgroup
// memory and no barriers: CPU implementations of WebGPU (SwiftShader, lavapipe) run a workgroup
// with barriers as coroutines, and SwiftShader took 2 s to compile the tiled version of this
// kernel, for every device, and ran a step 1.7 times slower. The block lives in eight vec4s that
// no loop indexes: SwiftShader keeps an array indexed in a loop in memory (each access a per-lane
// gather), which once made the product several times slower there. The epilogue is one call in a
// loop, since SwiftShader inlines every call. Each output sums over k in order, so results repeat
// exactly.
@compute @workgroup_size(8, 8)
fn matmul(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  if (p.m == 0u || p.n == 0u) { return; }
  let r = wid.y * 32u + lid.y * 4u;
  let col = wid.x * 64u + lid.x;
  // Rows and columns past the edge read the last one's values (in bounds); they are not stored.
  let lr = p.m - 1u;
  let lc = p.n - 1u;
  let a0 = p.a_off + min(r, lr) * p.a_rs;
  let a1 = p.a_off + min(r + 1u, lr) * p.a_rs;
  let a2 = p.a_off + min(r + 2u, lr) * p.a_rs;
  let a3 = p.a_off + min(r + 3u, lr) * p.a_rs;
  let bl = p.b_off + vec4u(min(col, lc), min(col + 8u, lc), min(col + 16u, lc), min(col + 24u, lc)) * p.b_cs;
  let bh = p.b_off + vec4u(min(col + 32u, lc), min(col + 40u, lc), min(col + 48u, lc), min(col + 56u, lc)) * p.b_cs;
  var acc0l = vec4f(0.0);
  var acc0h = vec4f(0.0);
  var acc1l = vec4f(0.0);
  var acc1h = vec4f(0.0);
  var acc2l = vec4f(0.0);
  var acc2h = vec4f(0.0);
  var acc3l = vec4f(0.0);
  var acc3h = vec4f(0.0);
  for (var k = 0u; k < p.k; k++) {
    let ka = k * p.a_cs;
    let kb = k * p.b_rs;
    let vl = vec4f(b[bl.x + kb], b[bl.y + kb], b[bl.z + kb], b[bl.w + kb]);
    let vh = vec4f(b[bh.x + kb], b[bh.y + kb], b[bh.z + kb], b[bh.w + kb]);
    let x0 = a[a0 + ka];
    let x1 = a[a1 + ka];
    let x2 = a[a2 + ka];
    let x3 = a[a3 + ka];
    acc0l += x0 * vl;
    acc0h += x0 * vh;
    acc1l += x1 * vl;
    acc1h += x1 * vh;
    acc2l += x2 * vl;
    acc2h += x2 * vh;
    acc3l += x3 * vl;
    acc3h += x3 * vh;
  }
  for (var i = 0u; i < 4u; i++) {
    let lo = select(select(select(acc3l, acc2l, i == 2u), acc1l, i == 1u), acc0l, i == 0u);
    let hi = select(select(select(acc3h, acc2h, i == 2u), acc1h, i == 1u), acc0h, i == 0u);
    for (var j = 0u; j < 8u; j++) {
      store(r + i, col + 8u * j, select(hi[j % 4u], lo[j % 4u], j < 4u));
    }
  }
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
