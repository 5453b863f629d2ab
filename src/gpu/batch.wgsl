// Minibatches, gathered on the GPU from the dataset uploaded once, and the networks' inputs.
//
// gather:       X[row0 + r, c] = scale · pixel(idx[r], c) / 255 + shift       c < 784
//               X[row0 + r, 784 + j] = (j == label) ? hot : 0                  j < 10 (conditional)
//               The VAE reads x as is (scale 1, shift 0); the GAN's discriminator reads 2x − 1.
//               The label is the digit's own, or (cGAN's mismatched rows) wrong[r].
// latent_input: Z[r, :latent] = ε[r]  (the GAN's z), Z[r, latent + j] = one-hot label
// No backward: these inputs take no gradient. Gather and Latent are declared in params.rs.

@group(0) @binding(0) var<uniform> g: Gather;
@group(0) @binding(1) var<storage, read> images: array<u32>;  // the dataset's bytes, four to a word
@group(0) @binding(2) var<storage, read> labels: array<u32>;  // one per example
@group(0) @binding(3) var<storage, read> idx: array<u32>;     // this step's examples
@group(0) @binding(4) var<storage, read> wrong: array<u32>;   // cGAN: a wrong label per row
@group(0) @binding(5) var<storage, read_write> x: array<f32>;

fn label_of(r: u32) -> u32 {
  if (g.label_mode == LABEL_WRONG) { return wrong[r]; }
  return labels[idx[r]];
}

@compute @workgroup_size(256)
fn gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 256u;
  if (i >= g.rows * g.width) { return; }
  let r = i / g.width;
  let c = i % g.width;
  var v = 0.0;
  if (c < PIXELS) {
    let byte_index = idx[r] * PIXELS + c;
    let byte = (images[byte_index / 4u] >> (8u * (byte_index % 4u))) & 255u;
    v = g.scale * (f32(byte) / 255.0) + g.shift;
  } else {
    v = select(0.0, g.hot, c - PIXELS == label_of(r));
  }
  x[(g.row0 + r) * g.width + c] = v;
}

@group(0) @binding(0) var<uniform> l: Latent;
@group(0) @binding(1) var<storage, read> l_labels: array<u32>;
@group(0) @binding(2) var<storage, read> l_idx: array<u32>;
@group(0) @binding(3) var<storage, read> noise: array<f32>;
@group(0) @binding(4) var<storage, read_write> z: array<f32>;

@compute @workgroup_size(256)
fn latent_input(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= l.rows * l.width) { return; }
  let r = i / l.width;
  let c = i % l.width;
  var v = 0.0;
  if (c < l.latent) {
    v = noise[r * l.latent + c];
  } else {
    v = select(0.0, 1.0, c - l.latent == l_labels[l_idx[r]]);
  }
  z[i] = v;
}
