//! Every WGSL kernel on its own, forward and backward, against a candle reference on the CPU, at
//! odd sizes (not multiples of the matrix product's 32×64 tiles or the 256-wide workgroups), in
//! the style of llm.c's kernel tests. Each runs in milliseconds on lavapipe. The kernels are driven through
//! the same `Recorder` methods the step graphs use (`latent_lab::gpu::testing`).
use crate::common;

use crate::common::gpu;

use candle_core::{Device, Tensor, Var};
use latent_lab::gpu::testing::{self, params, rows, AdamBuffers, Kernel, Layer, View};
use latent_lab::model::one_hot;

const DEV: Device = Device::Cpu;
/// Odd sizes: rows, output columns, inner dimension; rows and columns each past one tile (32 rows,
/// 64 columns) and short of two, so every edge of a tile is crossed.
const M: usize = 37;
const N: usize = 77;
const K: usize = 45;
const KEEP: f32 = 1.0 / 0.7;


fn bytes(v: &[f32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn words(v: &[u32]) -> &[u8] {
    bytemuck::cast_slice(v)
}

fn floats(b: &[u8]) -> Vec<f32> {
    common::bytes_f32(b)
}

fn tensor(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, &DEV).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// |got − want| ≤ tol · max(1, |want|) everywhere.
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * w.abs().max(1.0), "{what}[{i}]: webgpu {g}, cpu {w}");
    }
}

/// Dropout keep flags as the kernels read them (bit i of word i / 32), and as a 0 / keep tensor.
fn keep_bits(rng: &mut common::Rng, count: usize, shape: &[usize]) -> (Vec<u32>, Tensor) {
    let flags: Vec<bool> = (0..count).map(|_| rng.uniform(0.0, 1.0) >= 0.3).collect();
    let mut bits = vec![0u32; count.div_ceil(32)];
    for (i, _) in flags.iter().enumerate().filter(|(_, &k)| k) {
        bits[i / 32] |= 1 << (i % 32);
    }
    let scale: Vec<f32> = flags.iter().map(|&k| if k { KEEP } else { 0.0 }).collect();
    (bits, tensor(&scale, shape))
}

fn leaky(t: &Tensor) -> Tensor {
    t.maximum(&(t * 0.2).unwrap()).unwrap()
}

fn activate(t: &Tensor, code: u32) -> Tensor {
    match code {
        params::act::RELU => t.relu().unwrap(),
        params::act::LEAKY => leaky(t),
        params::act::SIGMOID => candle_nn::ops::sigmoid(t).unwrap(),
        _ => t.clone(),
    }
}

// ----- linear.wgsl -----

/// Y = act(X·Wᵀ + b) ⊙ mask for every activation, X [37, 29], W [45, 29]: the linear layer's forward.
#[test]
fn matmul_forward_with_bias_activation_and_dropout() {
    let mut rng = common::Rng::new(1);
    let x = rng.vec(M * K, -1.0, 1.0);
    // W sits after 7 other values of θ, its bias after it: offsets as in a real layout.
    let mut theta = rng.vec(7, 0.0, 1.0);
    let w = rng.vec(N * K, -0.5, 0.5);
    let b = rng.vec(N, -0.5, 0.5);
    theta.extend(&w);
    theta.extend(&b);
    let layer = Layer { weight: 7, bias: (7 + N * K) as u32, fan_in: K, fan_out: N };
    let (bits, mask) = keep_bits(&mut rng, M * N, &[M, N]);
    for code in [params::act::NONE, params::act::RELU, params::act::LEAKY, params::act::SIGMOID] {
        let out = testing::run(&gpu(), &[bytes(&x), bytes(&theta), bytes(&vec![0.0; M * N]), words(&bits)], |r, b| {
            r.linear_forward(M, rows(&b[0], 0, K), layer, &b[1], &b[2], code, Some((&b[3], 0)));
            Ok(())
        })
        .unwrap();
        let pre = tensor(&x, &[M, K]).matmul(&tensor(&w, &[N, K]).t().unwrap()).unwrap().broadcast_add(&tensor(&b, &[N])).unwrap();
        let want = (activate(&pre, code) * &mask).unwrap();
        assert_close(&format!("act {code}"), &floats(&out[2]), &values(&want), 1e-5);
    }
}

/// The linear layer's backward, dZ [37, 45] and X [37, 29] → dW = dZᵀ·X, db = Σ dZ and dX = dZ·W
/// (added to what dX held), against candle's autograd of the forward.
#[test]
fn matmul_backward_and_bias_grad_of_a_linear_layer() {
    let mut rng = common::Rng::new(2);
    let x = rng.vec(M * K, -1.0, 1.0);
    let w = rng.vec(N * K, -0.5, 0.5);
    let b = rng.vec(N, -0.5, 0.5);
    let dz = rng.vec(M * N, -1.0, 1.0);
    let dx_before = rng.vec(M * K, -1.0, 1.0);
    let mut theta = w.clone();
    theta.extend(&b);
    let layer = Layer { weight: 0, bias: (N * K) as u32, fan_in: K, fan_out: N };
    let grads0 = vec![9.0; theta.len()];
    let inputs = [bytes(&x), bytes(&dz), bytes(&theta), bytes(&grads0), bytes(&dx_before)];
    let out = testing::run(&gpu(), &inputs, |r, b| {
        r.linear_backward(M, rows(&b[0], 0, K), &b[1], layer, &b[2], Some(&b[3]), Some((&b[4], K, true)));
        Ok(())
    })
    .unwrap();
    let (xv, wv, bv) = (Var::new(&x[..], &DEV).unwrap(), Var::new(&w[..], &DEV).unwrap(), Var::new(&b[..], &DEV).unwrap());
    let xt = xv.as_tensor().reshape((M, K)).unwrap();
    let wt = wv.as_tensor().reshape((N, K)).unwrap();
    let y = xt.matmul(&wt.t().unwrap()).unwrap().broadcast_add(bv.as_tensor()).unwrap();
    let grads = (y * tensor(&dz, &[M, N])).unwrap().sum_all().unwrap().backward().unwrap();
    let grads_out = floats(&out[3]);
    assert_close("dW", &grads_out[..N * K], &values(grads.get(&wv).unwrap()), 1e-5);
    assert_close("db", &grads_out[N * K..], &values(grads.get(&bv).unwrap()), 1e-5);
    let dx_want = (grads.get(&xv).unwrap() + tensor(&dx_before, &[M * K])).unwrap();
    assert_close("dX (accumulated)", &floats(&out[4]), &values(&dx_want), 1e-5);
}

/// C at an offset with a row stride wider than the result, A read transposed through its view,
/// accumulating: the strided views the GAN's graph uses for its fake rows.
#[test]
fn matmul_through_strided_views_accumulating() {
    let mut rng = common::Rng::new(3);
    let at = rng.vec(K * M, -1.0, 1.0); // A stored transposed: [29, 37]
    let bm = rng.vec(K * N, -1.0, 1.0); // B [29, 45]
    let c_rs = N + 3;
    let c0 = rng.vec(5 + M * c_rs, -1.0, 1.0);
    let out = testing::run(&gpu(), &[bytes(&at), bytes(&bm), bytes(&c0)], |r, b| {
        let a = View { buf: &b[0], off: 0, rs: 1, cs: M as u32 };
        let c = View { buf: &b[2], off: 5, rs: c_rs as u32, cs: 1 };
        r.matmul((M, N, K), a, rows(&b[1], 0, N), c, params::act::FLAG_ACCUMULATE, None, None);
        Ok(())
    })
    .unwrap();
    let prod = values(&tensor(&at, &[K, M]).t().unwrap().matmul(&tensor(&bm, &[K, N])).unwrap());
    let mut want = c0.clone();
    for i in 0..M {
        for j in 0..N {
            want[5 + i * c_rs + j] += prod[i * N + j];
        }
    }
    assert_close("C", &floats(&out[2]), &want, 1e-5);
}

/// dZ = dY ⊙ mask ⊙ act′(Y), for ReLU and LeakyReLU with dropout: candle's autograd of
/// mask ⊙ act(pre), read off the outputs as the kernel does.
#[test]
fn act_backward_for_relu_and_leaky_with_dropout() {
    let mut rng = common::Rng::new(4);
    let count = M * N;
    let pre = rng.vec(count, -1.0, 1.0);
    let dy = rng.vec(count, -1.0, 1.0);
    let (bits, mask) = keep_bits(&mut rng, count + 11, &[count + 11]);
    let mask = mask.narrow(0, 11, count).unwrap(); // the kernel reads from bit 11 on
    for code in [params::act::RELU, params::act::LEAKY] {
        let pv = Var::new(&pre[..], &DEV).unwrap();
        let y = (activate(pv.as_tensor(), code) * &mask).unwrap();
        let grads = (&y * tensor(&dy, &[count])).unwrap().sum_all().unwrap().backward().unwrap();
        // Y as the forward left it, before dropout (the kernel reads the sign of act(pre)).
        let y_act = values(&activate(&tensor(&pre, &[count]), code));
        let out = testing::run(&gpu(), &[bytes(&y_act), bytes(&dy), words(&bits)], |r, b| {
            r.act_backward(count, &b[0], &b[1], code, Some((&b[2], 11)));
            Ok(())
        })
        .unwrap();
        assert_close(&format!("dZ act {code}"), &floats(&out[1]), &values(grads.get(&pv).unwrap()), 1e-6);
    }
}

/// db = Σ_rows dZ over [37, 45], written at an offset and added to what was there.
#[test]
fn bias_grad_sums_rows_and_accumulates() {
    let mut rng = common::Rng::new(5);
    let dz = rng.vec(M * N, -1.0, 1.0);
    let db0 = rng.vec(N + 3, -1.0, 1.0);
    let out = testing::run(&gpu(), &[bytes(&dz), bytes(&db0)], |r, b| {
        r.bias_grad(M, N, &b[0], &b[1], 3, true);
        Ok(())
    })
    .unwrap();
    let sums = values(&tensor(&dz, &[M, N]).sum(0).unwrap());
    let mut want = db0.clone();
    for j in 0..N {
        want[3 + j] += sums[j];
    }
    assert_close("db", &floats(&out[1]), &want, 1e-5);
}

// ----- batch.wgsl -----

/// Rows gathered from a dataset of bytes: scaled and shifted pixels, then no label, the digit's
/// own, or a wrong one, written from row `row0`.
#[test]
fn gather_pixels_and_labels() {
    let mut rng = common::Rng::new(6);
    let examples = 11;
    let images = rng.bytes(examples * 784);
    let labels: Vec<u32> = (0..examples).map(|i| (i * 7 % 10) as u32).collect();
    let idx: Vec<u32> = vec![3, 10, 0, 3, 7];
    let wrong: Vec<u32> = vec![1, 2, 9, 0, 4];
    let n = idx.len();
    let picked: Vec<f32> = idx.iter().flat_map(|&i| images[i as usize * 784..][..784].iter().map(|&p| p as f32)).collect();
    let px = (tensor(&picked, &[n, 784]) / 255.0).unwrap();
    let own: Vec<u8> = idx.iter().map(|&i| labels[i as usize] as u8).collect();
    let wrong_u8: Vec<u8> = wrong.iter().map(|&l| l as u8).collect();
    // (the label's value: 1, or a cGAN discriminator's label gain)
    for (mode, width, scale, shift, hot, label) in [
        (params::label::NONE, 784, 1.0, 0.0, 1.0, None),
        (params::label::OWN, 794, 2.0, -1.0, 10.0, Some(&own)),
        (params::label::WRONG, 794, 2.0, -1.0, 1.0, Some(&wrong_u8)),
    ] {
        let row0 = 2;
        let x0 = vec![-7.0f32; (row0 + n) * width];
        let out = testing::run(&gpu(), &[&images[..], words(&labels), words(&idx), words(&wrong), bytes(&x0)], |r, b| {
            r.gather((n, row0, width), mode, (scale, shift), hot, &b[0], &b[1], &b[2], Some(&b[3]), &b[4]);
            Ok(())
        })
        .unwrap();
        let pixels = px.affine(scale as f64, shift as f64).unwrap();
        let want_rows = match label {
            Some(l) => Tensor::cat(&[&pixels, &(one_hot(l, &DEV).unwrap() * hot as f64).unwrap()], 1).unwrap(),
            None => pixels,
        };
        let mut want = x0[..row0 * width].to_vec();
        want.extend(values(&want_rows));
        assert_close(&format!("label mode {mode}"), &floats(&out[4]), &want, 1e-6);
    }
}

/// The generator's (and the decoder's) input: z, then the one-hot label of each row's example.
#[test]
fn latent_input_joins_the_label() {
    let mut rng = common::Rng::new(7);
    let (n, l) = (M, 5);
    let noise = rng.vec(n * l, -2.0, 2.0);
    let labels: Vec<u32> = (0..50).map(|i| (i * 3 % 10) as u32).collect();
    let idx: Vec<u32> = (0..n as u32).map(|i| (i * 13) % 50).collect();
    let out = testing::run(&gpu(), &[words(&labels), words(&idx), bytes(&noise), bytes(&vec![0.0; n * (l + 10)])], |r, b| {
        r.latent_input((n, l, l + 10), &b[0], &b[1], &b[2], &b[3]);
        Ok(())
    })
    .unwrap();
    let y: Vec<u8> = idx.iter().map(|&i| labels[i as usize] as u8).collect();
    let want = Tensor::cat(&[&tensor(&noise, &[n, l]), &one_hot(&y, &DEV).unwrap()], 1).unwrap();
    assert_close("z", &floats(&out[3]), &values(&want), 0.0);
}

// ----- vae.wgsl -----

struct Posterior {
    mu: Vec<f32>,
    logvar: Vec<f32>,
    eps: Vec<f32>,
}

fn posterior(seed: u64, n: usize, l: usize) -> Posterior {
    let mut rng = common::Rng::new(seed);
    Posterior { mu: rng.vec(n * l, -1.5, 1.5), logvar: rng.vec(n * l, -2.0, 1.0), eps: rng.vec(n * l, -2.0, 2.0) }
}

/// z = μ + exp(½ log σ²)·ε, then the label (cVAE), against candle.
#[test]
fn reparameterise_forward() {
    let (n, l) = (M, 7);
    let p = posterior(8, n, l);
    let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
    let idx: Vec<u32> = (0..n as u32).rev().collect();
    let z0 = vec![0.0; n * (l + 10)];
    let inputs = [bytes(&p.mu), bytes(&p.logvar), bytes(&p.eps), words(&labels), words(&idx), bytes(&z0)];
    let out = testing::run(&gpu(), &inputs, |r, b| {
        r.reparameterise((n, l, l + 10), &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]);
        Ok(())
    })
    .unwrap();
    let z = (tensor(&p.mu, &[n, l]) + ((tensor(&p.logvar, &[n, l]) * 0.5).unwrap().exp().unwrap() * tensor(&p.eps, &[n, l])).unwrap()).unwrap();
    let y: Vec<u8> = idx.iter().map(|&i| labels[i as usize] as u8).collect();
    let want = Tensor::cat(&[&z, &one_hot(&y, &DEV).unwrap()], 1).unwrap();
    assert_close("z", &floats(&out[5]), &values(&want), 1e-6);
}

/// The reparameterisation's backward plus the KL term's: for L = Σ z·dZ + β·KL / n (β = 0.37),
/// candle's autograd gives dμ and d log σ²; the per-element KL terms (unweighted) too.
#[test]
fn kl_reparameterise_backward_against_autograd() {
    let (n, l, width) = (M, 7, 17);
    let p = posterior(9, n, l);
    let mut rng = common::Rng::new(10);
    let dz = rng.vec(n * width, -1.0, 1.0); // [n, latent + label]: the label columns are ignored
    let zeros = vec![0.0f32; n * l];
    let inputs = [bytes(&p.mu), bytes(&p.logvar), bytes(&p.eps), bytes(&dz), bytes(&zeros), bytes(&zeros), bytes(&zeros)];
    let out = testing::run(&gpu(), &inputs, |r, b| {
        r.kl_reparameterise_backward((n, l, width), 0.37, &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &b[6]);
        Ok(())
    })
    .unwrap();
    let (mu, lv) = (Var::new(&p.mu[..], &DEV).unwrap(), Var::new(&p.logvar[..], &DEV).unwrap());
    let (mu_t, lv_t) = (mu.as_tensor().reshape((n, l)).unwrap(), lv.as_tensor().reshape((n, l)).unwrap());
    let z = (&mu_t + ((&lv_t * 0.5).unwrap().exp().unwrap() * tensor(&p.eps, &[n, l])).unwrap()).unwrap();
    let dz_latent = tensor(&dz, &[n, width]).narrow(1, 0, l).unwrap();
    let kl = latent_lab::vae::kl_to_unit_gaussian(&mu_t, &lv_t).unwrap(); // per example [n]
    let loss = ((z * dz_latent).unwrap().sum_all().unwrap() + (kl.sum_all().unwrap() * (0.37 / n as f64)).unwrap()).unwrap();
    let grads = loss.backward().unwrap();
    assert_close("dmu", &floats(&out[4]), &values(grads.get(&mu).unwrap()), 1e-5);
    assert_close("dlogvar", &floats(&out[5]), &values(grads.get(&lv).unwrap()), 1e-5);
    let terms = floats(&out[6]);
    let per_example: Vec<f32> = terms.chunks(l).map(|c| c.iter().sum()).collect();
    assert_close("KL terms", &per_example, &values(&kl), 1e-5);
}

/// Each reconstruction loss (BCE on logits, L2, L1) against pixels of rows that carry a label
/// after them: the per-element terms, and the logits replaced by d(Σ terms / n)/dl from candle's
/// autograd.
#[test]
fn reconstruction_forward_and_backward() {
    use latent_lab::config::Recon;
    let n = M;
    let mut rng = common::Rng::new(11);
    let x_width = 794;
    let x = rng.vec(n * x_width, 0.0, 1.0);
    let logits = rng.vec(n * 784, -6.0, 6.0);
    for recon in Recon::ALL {
        let out = testing::run(&gpu(), &[bytes(&x), bytes(&logits), bytes(&vec![0.0; n * 784])], |r, b| {
            r.reconstruction(n, x_width, params::recon::code(recon), &b[0], &b[1], &b[2]);
            Ok(())
        })
        .unwrap();
        let lv = Var::new(&logits[..], &DEV).unwrap();
        let target = tensor(&x, &[n, x_width]).narrow(1, 0, 784).unwrap();
        let terms = latent_lab::vae::reconstruction_terms(recon, &lv.as_tensor().reshape((n, 784)).unwrap(), &target).unwrap();
        let grads = (terms.sum_all().unwrap() / n as f64).unwrap().backward().unwrap();
        assert_close(&format!("{} terms", recon.name()), &floats(&out[2]), &values(&terms), 1e-5);
        assert_close(&format!("{} dlogits", recon.name()), &floats(&out[1]), &values(grads.get(&lv).unwrap()), 1e-5);
    }
}

// ----- gan.wgsl -----

/// The generator's images as the discriminator sees them, 2·sigmoid(l) − 1 and the label ×3, from
/// row `row0`; and its backward, dl = dX · 2s(1 − s), against candle's autograd.
#[test]
fn fake_to_d_forward_and_fake_backward() {
    let n = M;
    let mut rng = common::Rng::new(12);
    let logits = rng.vec(n * 784, -5.0, 5.0);
    let labels: Vec<u32> = (0..60).map(|i| (i * 7 % 10) as u32).collect();
    let idx: Vec<u32> = (0..n as u32).map(|i| (i * 5 + 1) % 60).collect();
    let row0 = 3;
    let xd0 = vec![0.5f32; (row0 + n) * 794];
    let out = testing::run(&gpu(), &[bytes(&logits), words(&labels), words(&idx), bytes(&xd0)], |r, b| {
        r.fake_to_d((n, row0, 794), 3.0, &b[0], &b[1], &b[2], &b[3]);
        Ok(())
    })
    .unwrap();
    let lv = Var::new(&logits[..], &DEV).unwrap();
    let img = candle_nn::ops::sigmoid(&lv.as_tensor().reshape((n, 784)).unwrap()).unwrap().affine(2.0, -1.0).unwrap();
    let y: Vec<u8> = idx.iter().map(|&i| labels[i as usize] as u8).collect();
    let mut want = xd0[..row0 * 794].to_vec();
    want.extend(values(&Tensor::cat(&[&img, &(one_hot(&y, &DEV).unwrap() * 3.0).unwrap()], 1).unwrap()));
    assert_close("X_d", &floats(&out[3]), &want, 1e-6);

    let dx = rng.vec(n * 784, -1.0, 1.0);
    let out = testing::run(&gpu(), &[bytes(&logits), bytes(&dx)], |r, b| {
        r.fake_backward(n, &b[0], &b[1]);
        Ok(())
    })
    .unwrap();
    let grads = (img * tensor(&dx, &[n, 784])).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("dl", &floats(&out[1]), &values(grads.get(&lv).unwrap()), 1e-5);
}

fn stat(stats: &[f32], slot: u32) -> f32 {
    stats[slot as usize]
}

/// L_D, mean D(real), mean D(fake) and the logits' gradients, against src/gan.rs's losses and
/// candle's autograd: unconditional at 37 rows, matching-aware (real | fake | mismatched) at 301,
/// more rows than the kernel's 256 threads.
#[test]
fn discriminator_loss_plain_and_matching_aware() {
    for (n, conditional) in [(37, false), (301, true)] {
        let blocks = if conditional { 3 } else { 2 };
        let mut rng = common::Rng::new(13);
        let logits = rng.vec(blocks * n, -4.0, 4.0);
        let out = testing::run(&gpu(), &[bytes(&logits), bytes(&vec![0.0; blocks * n]), bytes(&[0.0; 8])], |r, b| {
            r.discriminator_loss(n, conditional, &b[0], &b[1], &b[2]);
            Ok(())
        })
        .unwrap();
        let lv = Var::new(&logits[..], &DEV).unwrap();
        let part = |i: usize| lv.as_tensor().narrow(0, i * n, n).unwrap();
        let loss = if conditional {
            latent_lab::gan::conditional_discriminator_loss(&part(0), &part(1), &part(2)).unwrap()
        } else {
            latent_lab::gan::discriminator_loss(&part(0), &part(1)).unwrap()
        };
        let grads = loss.backward().unwrap();
        let stats = floats(&out[2]);
        let mean_d = |t: Tensor| candle_nn::ops::sigmoid(&t).unwrap().mean_all().unwrap().to_scalar::<f32>().unwrap();
        let what = if conditional { "cgan" } else { "gan" };
        assert_close(&format!("{what} L_D"), &[stat(&stats, params::stats::D_LOSS)], &[loss.to_scalar::<f32>().unwrap()], 1e-5);
        assert_close(&format!("{what} D(real)"), &[stat(&stats, params::stats::D_REAL)], &[mean_d(part(0))], 1e-5);
        assert_close(&format!("{what} D(fake)"), &[stat(&stats, params::stats::D_FAKE)], &[mean_d(part(1))], 1e-5);
        assert_close(&format!("{what} dl"), &floats(&out[1]), &values(grads.get(&lv).unwrap()), 1e-6);
    }
}

/// The non-saturating L_G and its gradient, at 301 rows.
#[test]
fn generator_loss_against_autograd() {
    let n = 301;
    let mut rng = common::Rng::new(14);
    let logits = rng.vec(n, -4.0, 4.0);
    let out = testing::run(&gpu(), &[bytes(&logits), bytes(&vec![0.0; n]), bytes(&[0.0; 8])], |r, b| {
        r.generator_loss(n, &b[0], &b[1], &b[2]);
        Ok(())
    })
    .unwrap();
    let lv = Var::new(&logits[..], &DEV).unwrap();
    let loss = latent_lab::gan::generator_loss(lv.as_tensor()).unwrap();
    let grads = loss.backward().unwrap();
    let stats = floats(&out[2]);
    assert_close("L_G", &[stat(&stats, params::stats::G_LOSS)], &[loss.to_scalar::<f32>().unwrap()], 1e-5);
    assert_close("dl", &floats(&out[1]), &values(grads.get(&lv).unwrap()), 1e-6);
}

// ----- reduce.wgsl -----

/// A sum over several workgroups' chunks and a partial last one (3·4096 + 37 values from offset
/// 5), of the values scaled and of their squares, against candle; the same sum twice is the same
/// to the bit (each element has a fixed place in a fixed order).
#[test]
fn sum_partials_then_sum_final_over_many_workgroups() {
    let count = 3 * params::SUM_CHUNK as usize + 37;
    let mut rng = common::Rng::new(15);
    let src = rng.vec(5 + count, -1.0, 1.0);
    let run = || {
        testing::run(&gpu(), &[bytes(&src), bytes(&[0.0; 8])], |r, b| {
            r.sum(&b[0], 5, count, &b[1], 2, 0.25, false);
            r.sum(&b[0], 5, count, &b[1], 3, 1.0, true);
            Ok(())
        })
        .unwrap()
    };
    let (first, second) = (floats(&run()[1]), floats(&run()[1]));
    let t = tensor(&src[5..], &[count]);
    let sum = t.sum_all().unwrap().to_scalar::<f32>().unwrap();
    let sq = t.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
    assert_close("scaled sum", &[first[2]], &[0.25 * sum], 1e-4);
    assert_close("sum of squares", &[first[3]], &[sq], 1e-5);
    assert_eq!(first[2].to_bits(), second[2].to_bits(), "the sum repeats exactly");
    assert_eq!(first[3].to_bits(), second[3].to_bits(), "the sum of squares repeats exactly");
}

/// The verdict: a finite VAE step commits (its loss is BCE + KL, the count goes up); a gradient
/// that is not finite refuses it and halts; a halted queue refuses a finite step too; a GAN step
/// is also judged on the generator's loss.
#[test]
fn check_step_commits_refuses_and_halts() {
    use params::{control, stats as s};
    let verdict = |gan: bool, stats: [f32; 8], control_words: [u32; 2]| -> (Vec<f32>, Vec<u32>) {
        let out = testing::run(&gpu(), &[bytes(&stats), words(&control_words)], |r, b| {
            r.check_step((!gan).then_some(1.0), &b[0], &b[1]);
            Ok(())
        })
        .unwrap();
        (floats(&out[0]), out[1].chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    };
    let mut vae = [0f32; 8];
    vae[s::BCE as usize] = 100.0;
    vae[s::KL as usize] = 5.0;
    vae[s::GRAD_SQ as usize] = 3.0;
    let (st, ctl) = verdict(false, vae, [0, 4]);
    assert_eq!((st[s::LOSS as usize], st[s::OK as usize], st[s::COMMITTED as usize]), (105.0, 1.0, 5.0));
    assert_eq!(ctl, vec![0, 5]);
    let mut bad = vae;
    bad[s::GRAD_SQ as usize] = f32::INFINITY;
    let (st, ctl) = verdict(false, bad, [0, 4]);
    assert_eq!((st[s::OK as usize], st[s::COMMITTED as usize]), (0.0, 4.0));
    assert_eq!(ctl[control::HALTED as usize], 1);
    let (st, ctl) = verdict(false, vae, [1, 4]);
    assert_eq!((st[s::OK as usize], ctl[control::COMMITTED as usize]), (0.0, 4));
    let mut gan = [0f32; 8];
    gan[s::D_LOSS as usize] = 1.3;
    gan[s::G_LOSS as usize] = f32::NAN;
    let (st, _) = verdict(true, gan, [0, 0]);
    assert_eq!(st[s::OK as usize], 0.0, "a GAN step with a generator loss that is not finite");
    assert_eq!(st[s::D_LOSS as usize], 1.3, "a GAN's check leaves L_D as it is");
    gan[s::G_LOSS as usize] = 0.7;
    assert_eq!(verdict(true, gan, [0, 0]).0[s::OK as usize], 1.0);
}

// ----- adam.wgsl -----

/// Adam's proposal at step 2 over a range inside the buffers (1,031 values from offset 3) from
/// nonzero moments, against src/adam.rs on candle; then `commit` copies the proposal over only
/// when the step passed.
#[test]
fn propose_and_commit_against_src_adam() {
    let (off, count, total) = (3usize, 1031usize, 1040usize);
    let (lr, beta1, beta2, t) = (1e-3f64, 0.5f64, 0.99f64, 2u64);
    let mut rng = common::Rng::new(16);
    let theta = rng.vec(total, -1.0, 1.0);
    let grads = rng.vec(total, -0.1, 0.1);
    let m = rng.vec(total, -0.01, 0.01);
    let v = rng.vec(total, 0.0, 1e-3);
    // The reference: src/adam.rs over one parameter, the range, carrying the same moments at t = 1.
    let var = Var::new(&theta[off..off + count], &DEV).unwrap();
    let config = latent_lab::adam::AdamConfig { beta1, beta2, eps: 1e-8 };
    let mut adam = latent_lab::adam::Adam::new(vec![("p".to_string(), var.clone())], &config).unwrap();
    let moments = [("p".to_string(), (m[off..off + count].to_vec(), v[off..off + count].to_vec()))].into();
    adam.set_state(&latent_lab::train::OptimizerState { t: t - 1, moments }).unwrap();
    let update = adam.propose_named(&[("p".to_string(), grads[off..off + count].to_vec())].into(), lr, &DEV).unwrap();
    let want_theta = values(&adam.proposed_params(&update)["p"]);
    adam.commit(update).unwrap();
    let (_, state) = adam.state().unwrap();
    let (want_m, want_v) = &state["p"];

    let step = params::Step {
        lr: lr as f32,
        scale_m: (1.0 / (1.0 - beta1.powi(t as i32))) as f32,
        scale_v: (1.0 / (1.0 - beta2.powi(t as i32))) as f32,
        eps: 1e-8,
        beta1: beta1 as f32,
        one_minus_beta1: (1.0 - beta1) as f32,
        beta2: beta2 as f32,
        one_minus_beta2: (1.0 - beta2) as f32,
    };
    let gpu = gpu();
    let step = gpu.uniform("step", bytemuck::bytes_of(&step));
    let p = params::Adam { off: off as u32, count: count as u32, ..Default::default() };
    let unset = vec![-5.0f32; total];
    for ok in [1.0f32, 0.0] {
        let mut stats = [0f32; 8];
        stats[params::stats::OK as usize] = ok;
        let inputs = [bytes(&theta), bytes(&grads), bytes(&m), bytes(&v), bytes(&unset), bytes(&unset), bytes(&unset), bytes(&stats)];
        let out = testing::run(&gpu, &inputs, |r, b| {
            let buffers = AdamBuffers {
                theta: &b[0],
                grads: &b[1],
                m: &b[2],
                v: &b[3],
                next_theta: &b[4],
                next_m: &b[5],
                next_v: &b[6],
            };
            r.adam_propose(p, &step, &buffers);
            r.adam_commit(p, &b[7], &buffers);
            Ok(())
        })
        .unwrap();
        let range = |b: &[u8]| floats(b)[off..off + count].to_vec();
        assert_close("proposed θ", &range(&out[4]), &want_theta, 1e-6);
        assert_close("proposed m", &range(&out[5]), want_m, 1e-6);
        assert_close("proposed v", &range(&out[6]), want_v, 1e-6);
        assert_eq!(floats(&out[4])[..off], unset[..off], "outside the range nothing is proposed");
        let committed = floats(&out[0]);
        if ok == 1.0 {
            assert_close("committed θ", &committed[off..off + count], &want_theta, 1e-6);
            assert_close("committed m", &floats(&out[2])[off..off + count], want_m, 1e-6);
            assert_eq!(committed[..off], theta[..off], "outside the range θ stays");
        } else {
            assert_eq!(committed, theta, "a refused step commits nothing");
            assert_eq!(floats(&out[3]), v, "a refused step leaves v");
        }
    }
}

// ----- the kernels as a whole -----

/// A uniform's Rust struct and its WGSL struct come from one field list, at the same offsets.
#[test]
fn a_uniform_declares_the_same_fields_in_both_languages() {
    assert_eq!(params::Fake::WGSL, "struct Fake { rows: u32, width: u32, row0: u32, hot: f32, }\n");
    assert_eq!(std::mem::size_of::<params::Matmul>(), 64);
    let m = params::Matmul { k: 29, keep: 1.5, ..Default::default() };
    let words: &[u32] = bytemuck::cast_slice(std::slice::from_ref(&m));
    assert_eq!((words[2], f32::from_bits(words[14])), (29, 1.5));
}

/// The prelude prepended to every shader declares each shared constant once.
#[test]
fn the_prelude_declares_each_constant_once() {
    let p = params::wgsl_prelude();
    assert!(p.contains("const STAT_OK: u32 = 6u;"));
    assert!(p.contains("const LEAK: f32 = 0.2;"));
    let names: Vec<&str> = p.lines().filter_map(|l| l.strip_prefix("const ")).map(|l| l.split(':').next().unwrap_or("")).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(names.len(), unique.len());
}

/// Every `@compute` entry point in src/gpu/*.wgsl is a kernel the crate compiles, and has a test
/// here named after it.
#[test]
fn every_entry_point_has_a_kernel_test() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gpu");
    let mut entry_points = Vec::new();
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "wgsl") {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines = text.lines();
            while let Some(line) = lines.next() {
                if line.starts_with("@compute") {
                    let f = lines.next().unwrap();
                    let name = f.trim_start_matches("fn ").split('(').next().unwrap().to_string();
                    entry_points.push(name);
                }
            }
        }
    }
    entry_points.sort();
    let mut compiled: Vec<String> = Kernel::ALL.iter().map(|k| k.entry_point().to_string()).collect();
    compiled.sort();
    assert_eq!(entry_points, compiled, "the WGSL entry points and the crate's kernels");
    let tests = include_str!("gpu_kernels.rs");
    let test_names: Vec<&str> =
        tests.lines().filter_map(|l| l.strip_prefix("fn ")).map(|l| l.split('(').next().unwrap()).collect();
    for e in &entry_points {
        assert!(test_names.iter().any(|t| t.contains(e.as_str())), "no kernel test named after {e}");
    }
}

/// The kernels compile once per device, each on its first use: every backend and recording on
/// the device shares them.
#[test]
fn kernels_are_compiled_once_per_device() {
    let gpu = gpu();
    let a = gpu.kernels();
    let b = gpu.clone().kernels();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert!(std::ptr::eq(a.pipeline(Kernel::Matmul), b.pipeline(Kernel::Matmul)), "matmul was compiled twice");
    gpu.check().unwrap();
}
