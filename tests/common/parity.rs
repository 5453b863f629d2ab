//! What the parity tests of a backend against another share (the engine against candle's autograd
//! in tests/engine.rs, the GPU against the engine in tests/gpu.rs): the weights, a minibatch clear
//! of the activations' kinks, its GAN draws, and the bars (losses 1e-4 relative, each gradient
//! tensor within 1e-3 of its largest value).

use latent_lab::gan::GanDraws;
use latent_lab::keystream::Stream;
use latent_lab::mnist::Dataset;
use latent_lab::model::{init_params, Kind, ModelConfig};
use latent_lab::train::StepLosses;
use candle_core::Device;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::collections::HashMap;

pub const SEED: u64 = 7;

/// The GAN draws for a batch, from a seeded stream (None for a VAE).
pub fn gan_draws(cfg: &ModelConfig, data: &Dataset, indices: &[usize]) -> Option<GanDraws> {
    let labels: Vec<u8> = indices.iter().map(|&i| data.labels[i]).collect();
    cfg.kind.is_gan().then(|| GanDraws::draw(&mut Stream::seed_from_u64(SEED), cfg, &labels).unwrap())
}

pub fn headline_parts(l: &StepLosses) -> Vec<f32> {
    match l {
        StepLosses::Vae(p) => vec![p.loss, p.bce, p.kl],
        StepLosses::Gan(g) => vec![g.d_loss, g.g_loss, g.d_real, g.d_fake],
    }
}

/// `a` (the reference) and `b` (the backend called `other`) within `rel` of the larger.
pub fn assert_close_rel(what: &str, a: f32, b: f32, rel: f32) {
    let tol = rel * a.abs().max(b.abs()).max(1e-6);
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (tolerance {tol})");
}

/// The smallest |pre-activation| of the ReLU / LeakyReLU units a step's forward pass goes through
/// (the VAE's fc1 and fc3; the autoencoder's six hidden layers; the GAN's generator and its discriminator on real and generated rows,
/// dropout included), computed on the CPU. At a kink the gradient jumps: a unit within rounding
/// of 0 can take the other slope on the other backend, which is not a disagreement of the
/// backends' arithmetic. The parity test picks a minibatch whose units all stay clear of it.
fn kink_margin(cfg: &ModelConfig, data: &Dataset, indices: &[usize], noise: &[f32], draws: Option<&GanDraws>) -> f32 {
    use candle_core::Tensor;
    let p = init_params(cfg, SEED, &Device::Cpu).unwrap();
    let vars = p.data().lock().unwrap();
    let dev = Device::Cpu;
    let w = |name: &str| vars[&format!("{name}.weight")].as_tensor().clone();
    let b = |name: &str| vars[&format!("{name}.bias")].as_tensor().clone();
    let pre = |x: &Tensor, name: &str| x.matmul(&w(name).t().unwrap()).unwrap().broadcast_add(&b(name)).unwrap();
    let margin = |t: &Tensor| t.abs().unwrap().flatten_all().unwrap().min(0).unwrap().to_scalar::<f32>().unwrap();
    if cfg.kind.is_convolutional() {
        // Over a million units a batch, a few of them always within rounding of a kink (and a
        // max pool's ties): no batch clears them all. A unit that takes the other slope moves its
        // layer's gradient by one term of thousands summed, inside the gradients' bar.
        return f32::INFINITY;
    }
    let n = indices.len();
    let labels: Vec<u8> = indices.iter().map(|&i| data.labels[i]).collect();
    let y = latent_lab::model::one_hot(&labels, &dev).unwrap();
    let with_y = |x: &Tensor| if cfg.kind.is_conditional() { Tensor::cat(&[x, &y], 1).unwrap() } else { x.clone() };
    let x = latent_lab::train::batch_images(data, indices, &dev).unwrap();
    let eps = Tensor::from_slice(noise, (n, cfg.latent), &dev).unwrap();
    let leaky = |t: &Tensor| t.maximum(&(t * 0.2).unwrap()).unwrap();
    if cfg.kind.family() == latent_lab::config::Family::Ae {
        // the eight layers as one chain; all but the code's (3) and the last (7) take a ReLU
        use latent_lab::config::{AE_DECODER, AE_ENCODER};
        let mut h = x.affine(2.0, -1.0).unwrap();
        let mut m = f32::INFINITY;
        for (k, name) in AE_ENCODER.iter().chain(&AE_DECODER).enumerate() {
            let a = pre(&h, name);
            h = if k == 3 || k == 7 {
                a
            } else {
                m = m.min(margin(&a));
                a.relu().unwrap()
            };
        }
        return m;
    }
    if cfg.kind.is_gan() {
        let g1 = pre(&with_y(&eps), "generator.fc1");
        let g2 = pre(&leaky(&g1), "generator.fc2");
        let fake = candle_nn::ops::sigmoid(&pre(&leaky(&g2), "generator.fc3")).unwrap();
        let draws = draws.expect("a GAN batch has its draws");
        let [real_drop, fake_drop] = [&draws.real, &draws.fake].map(|k| k.masks(n, cfg.hidden, &dev).unwrap());
        let mut m = margin(&g1).min(margin(&g2));
        for (img, drop) in [(&x, real_drop), (&fake, fake_drop)] {
            let d1 = pre(&with_y(&img.affine(2.0, -1.0).unwrap()), "discriminator.fc1");
            let d2 = pre(&(leaky(&d1) * &drop.h1).unwrap(), "discriminator.fc2");
            m = m.min(margin(&d1)).min(margin(&d2));
        }
        m
    } else {
        let h1 = pre(&with_y(&x), "fc1");
        let h = h1.relu().unwrap();
        let (mu, logvar) = (pre(&h, "fc21"), pre(&h, "fc22"));
        let z = (&mu + ((&logvar * 0.5).unwrap().exp().unwrap() * &eps).unwrap()).unwrap();
        margin(&h1).min(margin(&pre(&with_y(&z), "fc3")))
    }
}

/// The first of a few seeded minibatches of `n` whose units are all at least 1e-6 from a kink
/// (two backends' pre-activations differ by about 1e-7): indices and noise.
pub fn clear_minibatch(cfg: &ModelConfig, data: &Dataset, n: usize) -> (Vec<usize>, Vec<f32>) {
    (0..60u64)
        .map(|seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let indices: Vec<usize> = (0..n).map(|_| rng.random_range(0..data.len())).collect();
            let noise: Vec<f32> = (0..n * cfg.latent).map(|_| rng.sample(StandardNormal)).collect();
            (indices, noise)
        })
        .find(|(i, z)| kink_margin(cfg, data, i, z, gan_draws(cfg, data, i).as_ref()) > 1e-6)
        .expect("a minibatch clear of the activations' kinks")
}

/// Every parameter has a gradient on both, none all zeros, and each of `other`'s gradient tensors
/// is within 1e-3 of the reference's largest absolute value.
pub fn assert_gradients_close(kind: Kind, reference: &HashMap<String, Vec<f32>>, other: &HashMap<String, Vec<f32>>, name: &str) {
    assert_eq!(reference.len(), other.len(), "every parameter has a gradient on {name}");
    for (param, rg) in reference {
        let og = &other[param];
        let scale = rg.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = rg.iter().zip(og).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(scale > 0.0, "{param}: the reference gradient is all zeros");
        assert!(worst <= 1e-3 * scale, "{} {param}: {name}'s gradient differs by {worst}, largest |g| {scale}", kind.name());
    }
}
