// Adam, in the two halves of src/adam.rs: `propose` writes the next parameters and moments beside
// the current ones, `commit` copies them over if the step's check passed.
//
// Per parameter θ with gradient g, at step t (from 1), scale_m = 1/(1 − β1ᵗ), scale_v = 1/(1 − β2ᵗ):
//   m′ = β1·m + (1 − β1)·g        v′ = β2·v + (1 − β2)·g²
//   θ′ = θ − lr · (m′·scale_m) / (√(v′·scale_v) + ε)
// The operations are those of candle-nn's AdamW (no weight decay) in the same order, in f32;
// the host computes the step's scales in f64 as candle does. Adam, Step: params.rs.

@group(0) @binding(0) var<uniform> a: Adam;
@group(0) @binding(1) var<uniform> st: Step;
@group(0) @binding(2) var<storage, read> theta: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read> m: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> next_theta: array<f32>;
@group(0) @binding(7) var<storage, read_write> next_m: array<f32>;
@group(0) @binding(8) var<storage, read_write> next_v: array<f32>;

@compute @workgroup_size(256)
fn propose(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * 256u;
  if (j >= a.count) { return; }
  let i = a.off + j;
  let g = grad[i];
  let nm = m[i] * st.beta1 + g * st.one_minus_beta1;
  let nv = v[i] * st.beta2 + (g * g) * st.one_minus_beta2;
  let m_hat = nm * st.scale_m;
  let v_hat = nv * st.scale_v;
  next_theta[i] = theta[i] - (m_hat / (sqrt(v_hat) + st.eps)) * st.lr;
  next_m[i] = nm;
  next_v[i] = nv;
}

@group(0) @binding(0) var<uniform> cm: Adam;
@group(0) @binding(1) var<storage, read> c_stats: array<f32>;
@group(0) @binding(2) var<storage, read> c_next_theta: array<f32>;
@group(0) @binding(3) var<storage, read> c_next_m: array<f32>;
@group(0) @binding(4) var<storage, read> c_next_v: array<f32>;
@group(0) @binding(5) var<storage, read_write> c_theta: array<f32>;
@group(0) @binding(6) var<storage, read_write> c_m: array<f32>;
@group(0) @binding(7) var<storage, read_write> c_v: array<f32>;

@compute @workgroup_size(256)
fn commit(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let j = gid.x + gid.y * nwg.x * 256u;
  if (j >= cm.count || c_stats[STAT_OK] != 1.0) { return; }
  let i = cm.off + j;
  c_theta[i] = c_next_theta[i];
  c_m[i] = c_next_m[i];
  c_v[i] = c_next_v[i];
}
