//! The CPU engine against its references: each matrix product against a plain f64 one at odd
//! sizes, and every model kind's training step against candle's autograd (`reference.rs`): the
//! same weights, minibatch, noise and dropout give losses within 1e-4 relative, each gradient
//! tensor within 1e-3 of its largest value, Adam's updates within 1e-6, and 200-step loss curves
//! within 2%.
use crate::common;
use crate::common::parity::{self, SEED};

use latent_lab::adam::AdamConfig;
use latent_lab::config::{Recipe, Recon, VaeObjective};
use latent_lab::engine::lanes::{Lanes, V4};
use latent_lab::engine::layers;
use latent_lab::engine::matmul::{self, Act, Epilogue, Strided};
use latent_lab::keystream::{self, Stream};
use latent_lab::model::{init_params, Kind, ModelConfig};
use latent_lab::reference::CandleBackend;
use latent_lab::train::{Batch, CpuBackend, HostBackend, Trainer};
use candle_core::Device;
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::collections::HashMap;

/// Each of the blocked product's tile shapes and edges (rows 1 to 5 left, 8, 4 and 1 to 3
/// columns left, k not a multiple of 4), with A plain and transposed and B read by rows or by
/// columns (the forward's Wᵀ: its panels copied transposed, and the dot-product form), and every
/// epilogue, against the f64 reference. A plain is packed by sixes where it is wide enough
/// (n ≥ 64, k > 16: from (9, 70, 33) on, one with k too short), A transposed where its rows lie
/// over 64 apart (m > 64: the last two), each leaving every count of rows from 0 to 5 over.
#[test]
fn the_blocked_product_matches_the_reference_at_odd_sizes() {
    let mut rng = common::Rng::new(3);
    let sizes = [
        (1, 1, 1), (5, 3, 7), (4, 8, 16), (7, 13, 5), (9, 20, 33), (13, 37, 3), (3, 9, 0), (17, 4, 64), (1, 9, 5),
        (9, 70, 33), (14, 64, 17), (6, 67, 16), (13, 72, 19), (11, 64, 18), (10, 66, 40), (12, 80, 21), (67, 9, 21), (71, 70, 30),
    ];
    for &(m, n, k) in &sizes {
        // A plain with B's rows contiguous, A transposed likewise, and A plain with B's columns
        // contiguous (the forward's X·Wᵀ: the dot-product form)
        for (transposed, b_by_columns) in [(false, false), (true, false), (false, true)] {
            let a = rng.vec(m * k + 3, -1.0, 1.0);
            // A [m, k]: rows k apart, or the transpose of a [k, m] matrix
            let a = if transposed { Strided::transposed(&a, m) } else { Strided::rows(&a, k) };
            // B [k, n]: rows padded to n + 2, as a layer's W[:, ..cols] is; or W [n, k + 1] transposed
            let b_rs = if b_by_columns { k + 1 } else { n + 2 };
            let b_values = rng.vec(k.max(1) * (n + 2) + n * (k + 1), -1.0, 1.0);
            let b = if b_by_columns { Strided::transposed(&b_values, b_rs) } else { Strided::rows(&b_values, b_rs) };
            let bias = rng.vec(n, -0.5, 0.5);
            let mask: Vec<f32> = (0..m * n).map(|i| if i % 3 == 0 { 0.0 } else { 1.5 }).collect();
            let start = rng.vec(m * n, -1.0, 1.0);
            let epilogues = [
                Epilogue::default(),
                Epilogue { accumulate: true, ..Epilogue::default() },
                Epilogue { bias: Some(&bias), act: Act::Relu, ..Epilogue::default() },
                Epilogue { bias: Some(&bias), act: Act::Leaky, mask: Some(&mask), ..Epilogue::default() },
                Epilogue { accumulate: true, bias: Some(&bias), act: Act::Leaky, mask: None },
            ];
            for (which, e) in epilogues.into_iter().enumerate() {
                let (mut want, mut got) = (start.clone(), start.clone());
                matmul::reference(m, n, k, a, b, &mut want, n, e);
                matmul::blocked(m, n, k, a, b, &mut got, n, e);
                let mut native = start.clone();
                matmul::multiply(m, n, k, a, b, &mut native, n, e);
                let mut dot = want.clone();
                if b_by_columns {
                    dot.copy_from_slice(&start);
                    matmul::blocked_dot(m, n, k, a, b, &mut dot, n, e);
                }
                for (what, c) in [("blocked", &got), ("multiply", &native), ("the dot-product form", &dot)] {
                    let worst = want.iter().zip(c).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                    assert!(worst <= 1e-5 * (k as f32 + 1.0), "{what} [{m}×{k}]·[{k}×{n}] A transposed {transposed}, B by columns {b_by_columns}, epilogue {which}: off by {worst}");
                }
            }
        }
    }
}

/// An operand marked as mostly zeros (a layer's input, `skipping_zeros`) gives the product of the
/// unmarked one value for value (only exact zeros are skipped), and the reference's: X as A in the
/// dot-product form (the forward's X·Wᵀ) and as B in the broadcast form (dW = dYᵀ·X, dYᵀ packed or
/// not), at odd sizes, with rows like digits (zeros but for a stretch, some all zeros or none,
/// some −0) so that tiles skip most steps, some, or none. And the product (`split_rows`, as
/// `multiply` runs it) takes the dot-product form for a marked X only where its first row is
/// worth skipping zeros in: digits' X gives the dot-product form's C bit for bit, a marked X of
/// no zeros the blocked product's of the unmarked X (the broadcast tiles).
#[test]
fn skipping_an_inputs_zeros_changes_no_value_of_the_product() {
    let mut rng = common::Rng::new(5);
    // rows of `width` values: zeros but for one stretch; every fifth row all values, every seventh
    // none; the first row's stretch is its first 2 values (a product looks at its first row to
    // decide whether to skip, so every product here looks further)
    let digits = |rng: &mut common::Rng, rows: usize, width: usize| -> Vec<f32> {
        let mut x = vec![0f32; rows * width];
        for (r, row) in x.chunks_mut(width.max(1)).enumerate() {
            let start = (rng.uniform(0.0, 1.0) * width as f32) as usize;
            let len = (rng.uniform(0.0, 0.4) * width as f32) as usize;
            let stretch = if r == 0 {
                0..2.min(width)
            } else if r % 5 == 4 {
                0..width
            } else if r % 7 == 6 {
                0..0
            } else {
                start..(start + len).min(width)
            };
            for v in &mut row[stretch] {
                *v = rng.uniform(-1.0, 1.0);
            }
            if let Some(v) = row.get_mut(r % width.max(1)).filter(|v| **v == 0.0) {
                *v = -0.0;
            }
        }
        x
    };
    for &(m, n, k) in &[(5, 13, 23), (9, 20, 33), (7, 70, 200), (130, 37, 19), (3, 9, 0)] {
        // forward: A = X [m, k] (marked), B = W [n, k] read by columns
        let x = digits(&mut rng, m, k);
        let w = rng.vec(n * k, -1.0, 1.0);
        let bias = rng.vec(n, -0.5, 0.5);
        let e = Epilogue { bias: Some(&bias), act: Act::Relu, ..Epilogue::default() };
        let (a, b) = (Strided::rows(&x, k), Strided::transposed(&w, k));
        // backward: A = dYᵀ [m, k] (dY [k, m], packed where m > 64), B = X [k, n] (marked)
        let x_b = digits(&mut rng, k, n);
        let dy = rng.vec(k * m, -1.0, 1.0);
        let (dyt, xb) = (Strided::transposed(&dy, m), Strided::rows(&x_b, n));
        for (form, a, b, marked) in [("dot", a, b, (a.skipping_zeros(), b)), ("broadcast", dyt, xb, (dyt, xb.skipping_zeros()))] {
            let (mut want, mut plain, mut skipped) = (vec![0f32; m * n], vec![0f32; m * n], vec![0f32; m * n]);
            matmul::reference(m, n, k, a, b, &mut want, n, e);
            let blocked = if form == "dot" { matmul::blocked_dot } else { matmul::blocked };
            blocked(m, n, k, a, b, &mut plain, n, e);
            blocked(m, n, k, marked.0, marked.1, &mut skipped, n, e);
            let differ = plain.iter().zip(&skipped).filter(|(p, s)| p != s).count();
            assert_eq!(differ, 0, "{form} [{m}×{k}]·[{k}×{n}]: {differ} values differ where zeros are skipped");
            let worst = want.iter().zip(&skipped).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-5 * (k as f32 + 1.0), "{form} [{m}×{k}]·[{k}×{n}]: off the reference by {worst}");
        }
        // the form a marked X takes: the dot products for digits, the broadcast tiles for dense rows
        let dense = rng.vec(m * k, -1.0, 1.0);
        for (what, x, dot) in [("digits", &x, true), ("dense rows", &dense, false)] {
            let (mut product, mut by_form) = (vec![0f32; m * n], vec![0f32; m * n]);
            let a = Strided::rows(x, k);
            matmul::split_rows(1, m, n, k, a.skipping_zeros(), b, &mut product, n, e, matmul::blocked);
            if dot {
                matmul::blocked_dot(m, n, k, a.skipping_zeros(), b, &mut by_form, n, e);
            } else {
                matmul::blocked(m, n, k, a, b, &mut by_form, n, e);
            }
            assert!(product == by_form, "[{m}×{k}]·[{k}×{n}], {what} marked: not the product of its form");
        }
    }
}

/// The loss's exponential and logarithm on four lanes (polynomials; wasm has no instruction for
/// either) against f64's over their whole ranges: e^x for x ≤ 0 within 3 ulp (to e^−87, where
/// it stops), ln(1 + x) for 0 ≤ x ≤ 1 within 3 ulp.
#[test]
fn the_lanes_exp_and_ln_1p_are_within_a_few_ulp() {
    // the spacing of f32s at the value (a unit in the last place)
    let ulp = |want: f64| {
        let f = (want as f32).abs();
        f32::from_bits(f.to_bits() + 1) - f
    };
    for i in 0..=200_000 {
        let x = -87.0 * i as f32 / 200_000.0;
        let got = V4::splat(x).exp_nonpositive().to_array()[0];
        let want = (x as f64).exp();
        assert!((got as f64 - want).abs() <= 3.0 * ulp(want) as f64, "exp({x}) = {got}, not {want}");
        let u = i as f32 / 200_000.0;
        let got = V4::splat(u).ln_1p_unit().to_array()[0];
        let want = (u as f64).ln_1p();
        assert!((got as f64 - want).abs() <= 3.0 * ulp(want) as f64, "ln_1p({u}) = {got}, not {want}");
    }
    let floor = V4::splat(-87.0).exp_nonpositive().to_array()[0];
    assert!(floor > 0.0 && floor.is_normal(), "e^-87 gave {floor}");
    assert_eq!(V4::splat(-1000.0).exp_nonpositive().to_array()[0], floor, "below -87 the exponential stops at e^-87");
    assert_eq!(V4::splat(0.0).exp_nonpositive().to_array(), [1.0; 4]);
}

/// The GAN's images, sigmoid four at a time (a last len mod 4 padded), against f64's at every
/// remainder, over logits from −100 to 100 (0 among them): within 4e-7, and 0 ≤ s ≤ 1.
#[test]
fn the_lanes_sigmoid_matches_f64s_at_odd_lengths() {
    for len in [1, 4, 7, 1001] {
        let logits: Vec<f32> = (0..len).map(|i| if len == 1 { 0.0 } else { -100.0 + 200.0 * i as f32 / (len - 1) as f32 }).collect();
        let mut s = logits.clone();
        layers::sigmoid_in_place(&mut s);
        for (&l, &got) in logits.iter().zip(&s) {
            let want = 1.0 / (1.0 + (-(l as f64)).exp());
            assert!((got as f64 - want).abs() <= 4e-7 && (0.0..=1.0).contains(&got), "sigmoid({l}) = {got}, not {want} (length {len})");
        }
    }
}

/// Each reconstruction loss four pixels at a time (and a row's last p mod 4 padded) against the
/// formulas in f64, at row widths that leave every remainder: the summed loss within 1e-6
/// relative, each gradient within 1e-6 of the largest, over logits from −40 to 40 (0 among them).
#[test]
fn the_reconstruction_losses_match_their_formulas_at_odd_widths() {
    let mut rng = common::Rng::new(11);
    for p in [1, 3, 4, 6, 13, 784] {
        for recon in [Recon::Bce, Recon::L2, Recon::L1] {
            let (n, x_rs) = (5, p + 2);
            let mut logits = rng.vec(n * p, -40.0, 40.0);
            logits[0] = 0.0;
            let x = rng.vec(n * x_rs, 0.0, 1.0);
            let (mut want_sum, mut want_grad) = (0f64, vec![0f64; n * p]);
            for i in 0..n {
                for j in 0..p {
                    let (l, t) = (logits[i * p + j] as f64, x[i * x_rs + j] as f64);
                    let s = 1.0 / (1.0 + (-l).exp());
                    let d = s - t;
                    let (loss, grad) = match recon {
                        Recon::Bce => (l.max(0.0) - t * l + (-l.abs()).exp().ln_1p(), d),
                        Recon::L2 => (d * d, 2.0 * d * s * (1.0 - s)),
                        Recon::L1 => (d.abs(), d.signum() * s * (1.0 - s)),
                    };
                    want_sum += loss;
                    want_grad[i * p + j] = grad / n as f64;
                }
            }
            let sum = latent_lab::engine::layers::recon_backward(recon, &mut logits, p, &x, x_rs, n);
            assert!((sum - want_sum).abs() <= 1e-6 * want_sum.abs().max(1.0), "{recon:?} at width {p}: loss {sum}, not {want_sum}");
            let largest = want_grad.iter().fold(0f64, |m, g| m.max(g.abs()));
            for (k, (&got, want)) in logits.iter().zip(&want_grad).enumerate() {
                assert!((got as f64 - want).abs() <= 1e-6 * largest, "{recon:?} at width {p}: gradient {k} is {got}, not {want}");
            }
        }
    }
}

/// The step's gradient check: every non-finite value is found wherever it sits (each lane of a
/// vector, the tail), and the extremes of the finite ones (largest, smallest subnormal, -0) pass.
#[test]
fn the_gradient_check_finds_every_value_that_is_not_finite() {
    use latent_lab::engine::layers::all_finite;
    let finite = [f32::MAX, -f32::MAX, f32::MIN_POSITIVE, 1e-45, -0.0, 0.0, 1.0];
    let mut xs: Vec<f32> = (0..23).map(|i| finite[i % finite.len()]).collect();
    assert!(all_finite(&xs) && all_finite(&[]));
    for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN] {
        for at in 0..xs.len() {
            let kept = std::mem::replace(&mut xs[at], bad);
            assert!(!all_finite(&xs), "{bad} at {at} of {}", xs.len());
            xs[at] = kept;
        }
    }
}

/// Bands the split product handed to its kernel (`split_rows`'s test).
static BANDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[allow(clippy::too_many_arguments)]
fn counted_blocked(m: usize, n: usize, k: usize, a: Strided, b: Strided, c: &mut [f32], c_rs: usize, e: Epilogue) {
    BANDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    matmul::blocked(m, n, k, a, b, c, c_rs, e);
}

/// The threaded build's products: C's rows split into 2 to 4 bands run on rayon's threads (as in
/// the browser's pool) give the blocked product's C bit for bit, so a step's numbers do not
/// depend on the threads it ran on, in every layout and epilogue, at sizes whose bands are
/// uneven or narrower than a tile, and for the forward a marked A whose rows are zeros but for a
/// stretch in its first half and dense in its second (the form a band takes is the whole
/// product's, decided from its first row); a product too small to be worth splitting runs whole.
#[test]
fn products_split_across_threads_match_the_whole_product_bit_for_bit() {
    let mut rng = common::Rng::new(5);
    for &(m, n, k) in &[(37, 130, 129), (9, 300, 200), (128, 401, 21), (20, 33, 800)] {
        assert!(m * n * k >= matmul::MIN_SPLIT_WORK, "[{m}, {n}, {k}] is below the split's threshold");
        for (transposed, b_by_columns, marked) in [(false, false, false), (true, false, false), (false, true, false), (false, true, true)] {
            let mut a_values = rng.vec(m * k, -1.0, 1.0);
            if marked {
                // zeros but for the first 4 values in the first half's rows
                a_values[..m / 2 * k].iter_mut().enumerate().filter(|(i, _)| i % k >= 4).for_each(|(_, v)| *v = 0.0);
            }
            let a = if transposed { Strided::transposed(&a_values, m) } else { Strided::rows(&a_values, k) };
            let a = if marked { a.skipping_zeros() } else { a };
            let b_values = rng.vec(k * n, -1.0, 1.0);
            let b = if b_by_columns { Strided::transposed(&b_values, k) } else { Strided::rows(&b_values, n) };
            let bias = rng.vec(n, -0.5, 0.5);
            let mask: Vec<f32> = (0..m * n).map(|i| if i % 7 == 0 { 0.0 } else { 1.25 }).collect();
            let start = rng.vec(m * (n + 3), -1.0, 1.0);
            let epilogues = [
                Epilogue::default(),
                Epilogue { accumulate: true, bias: Some(&bias), act: Act::Leaky, mask: Some(&mask) },
            ];
            for (which, e) in epilogues.into_iter().enumerate() {
                // C's rows n + 3 apart, as a band of a wider buffer
                let mut whole = start.clone();
                matmul::split_rows(1, m, n, k, a, b, &mut whole, n + 3, e, matmul::blocked);
                for parts in 2..=4 {
                    let mut split = start.clone();
                    BANDS.store(0, std::sync::atomic::Ordering::Relaxed);
                    matmul::split_rows(parts, m, n, k, a, b, &mut split, n + 3, e, counted_blocked);
                    let bands = BANDS.load(std::sync::atomic::Ordering::Relaxed);
                    let what = format!("[{m}×{k}]·[{k}×{n}] A transposed {transposed}, B by columns {b_by_columns}, marked {marked}, epilogue {which}, {parts} parts");
                    // (a band under two tiles of rows, or under the threshold's work, splits no further)
                    assert!((2..=parts).contains(&bands), "{what}: {bands} bands");
                    assert!(split == whole, "{what}: differs from the whole product");
                }
            }
        }
    }
    // Too little work to be worth a thread: one band.
    let (a, b) = (vec![1.0; 16 * 16], vec![1.0; 16 * 16]);
    let mut c = vec![0.0; 16 * 16];
    BANDS.store(0, std::sync::atomic::Ordering::Relaxed);
    matmul::split_rows(4, 16, 16, 16, Strided::rows(&a, 16), Strided::rows(&b, 16), &mut c, 16, Epilogue::default(), counted_blocked);
    assert_eq!(BANDS.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(c.iter().all(|&v| v == 16.0));
}

fn params(cfg: &ModelConfig) -> candle_nn::VarMap {
    init_params(cfg, SEED, &Device::Cpu).unwrap()
}

/// One step from the same weights and minibatch (clear of the activations' kinks) on the engine
/// and on candle: the losses, and every gradient.
fn one_step_parity(kind: Kind) {
    one_step_parity_with(kind, VaeObjective::for_kind(kind));
}

fn one_step_parity_with(kind: Kind, objective: VaeObjective) {
    let cfg = kind.default_config();
    let data = common::mnist().train.take(4096);
    let mut engine = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
    let mut candle = CandleBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
    engine.record_gradients = true;
    candle.record_gradients = true;
    let (indices, noise) = parity::clear_minibatch(&cfg, &data, 128);
    let draws = parity::gan_draws(&cfg, &data, &indices);
    // The fast recipe's label gain: a cGAN's discriminator sees its label ×10.
    let label_gain = Recipe::Fast.settings(kind).label_gain as f32;
    let adam = AdamConfig::for_settings(kind, &Recipe::Fast.settings(kind));
    let batch = Batch { data: &data, indices: &indices, noise: &noise, gan: draws.as_ref(), vae: objective, label_gain, adam };
    // The tutorials' rate, as tests/gpu.rs takes: at step 1 Adam moves every weight by about
    // ±lr whatever its gradient's size, so a gradient at rounding level (a unit barely used) can
    // move either way on two backends, and the generator's gradient, taken through the updated
    // discriminator, sees that in proportion to lr.
    let lr = Recipe::Tutorial.settings(kind).learning_rate;
    let want = candle.run_step(&batch, lr).unwrap();
    let got = engine.run_step(&batch, lr).unwrap();
    for (i, (a, b)) in parity::headline_parts(&want).iter().zip(parity::headline_parts(&got)).enumerate() {
        parity::assert_close_rel(&format!("{} loss part {i}, candle vs the engine", kind.name()), *a, b, 1e-4);
    }
    parity::assert_gradients_close(kind, &candle.last_gradients, &engine.last_gradients, "the engine");
}

#[test]
fn one_step_parity_vae() {
    one_step_parity(Kind::Vae);
}

/// The other reconstruction losses and KL weights, on the VAE and the cVAE: L2 at β = 0.25 and L1
/// at β = 4 (and BCE at β = 0, the autoencoder-with-noise end).
#[test]
fn one_step_parity_of_each_reconstruction_loss_and_kl_weight() {
    for (kind, recon, kl_weight) in [(Kind::Vae, Recon::L2, 0.25), (Kind::Cvae, Recon::L1, 4.0), (Kind::Vae, Recon::Bce, 0.0)] {
        one_step_parity_with(kind, VaeObjective { recon, kl_weight });
    }
}

/// The autoencoder at its tutorial's squared error, and at L1.
#[test]
fn one_step_parity_ae() {
    one_step_parity(Kind::Ae);
    one_step_parity_with(Kind::Ae, VaeObjective { recon: Recon::L1, kl_weight: 0.0 });
}

/// The convolutional kinds (im2col products, col2im, max pooling), at their default sizes; the
/// autoencoder at L1 too.
#[test]
fn one_step_parity_conv_vae() {
    one_step_parity(Kind::ConvVae);
}

#[test]
fn one_step_parity_conv_ae() {
    one_step_parity(Kind::ConvAe);
    one_step_parity_with(Kind::ConvAe, VaeObjective { recon: Recon::L1, kl_weight: 0.0 });
}

#[test]
fn one_step_parity_cvae() {
    one_step_parity(Kind::Cvae);
}

#[test]
fn one_step_parity_gan() {
    one_step_parity(Kind::Gan);
}

#[test]
fn one_step_parity_cgan() {
    one_step_parity(Kind::Cgan);
}

/// The browser's discriminator takes real digits as 2x, its fc1's bias less W's pixel columns'
/// sums and its weight's gradient corrected after (`Engine::real_digits_as_2x`, so its products
/// skip the digits' zeros); natively the rows are 2x − 1. From the same weights and minibatch the
/// two ways give one step's losses within 1e-6 relative and every gradient within 1e-5 of its
/// largest value (the discriminator's, and the generator's through the discriminator's
/// proposal), and not bit for bit: the browser's way ran.
#[test]
fn real_digits_as_2x_give_the_discriminators_step_of_2x_minus_1() {
    let data = common::mnist().train.take(4096);
    for kind in [Kind::Gan, Kind::Cgan] {
        let cfg = kind.default_config();
        let (indices, noise) = parity::clear_minibatch(&cfg, &data, 128);
        let draws = parity::gan_draws(&cfg, &data, &indices);
        let label_gain = Recipe::Fast.settings(kind).label_gain as f32;
        let adam = AdamConfig::for_settings(kind, &Recipe::Fast.settings(kind));
        let batch = Batch { data: &data, indices: &indices, noise: &noise, gan: draws.as_ref(), vae: VaeObjective::for_kind(kind), label_gain, adam };
        let [plain, as_2x] = [false, true].map(|as_2x| {
            let mut engine = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
            engine.set_real_digits_as_2x(as_2x);
            engine.record_gradients = true;
            let losses = engine.run_step(&batch, Recipe::Fast.settings(kind).learning_rate).unwrap();
            (losses, std::mem::take(&mut engine.last_gradients))
        });
        for (i, (a, b)) in parity::headline_parts(&plain.0).iter().zip(parity::headline_parts(&as_2x.0)).enumerate() {
            parity::assert_close_rel(&format!("{} loss part {i}, 2x − 1 vs 2x", kind.name()), *a, b, 1e-6);
        }
        let mut differ = 0;
        for (name, want) in &plain.1 {
            let got = &as_2x.1[name];
            let largest = want.iter().fold(0f32, |a, x| a.max(x.abs()));
            let worst = want.iter().zip(got).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-5 * largest, "{} {name}: off by {worst} of {largest} with real digits as 2x", kind.name());
            differ += want.iter().zip(got).filter(|(x, y)| x != y).count();
        }
        assert!(differ > 0, "{}: real digits as 2x gave every gradient bit for bit", kind.name());
    }
}

/// Fed the same gradients, the two Adams agree within 1e-6 over three steps (the bias
/// corrections of t = 1, 2, 3), for both families' β1.
#[test]
fn adam_updates_agree_with_candle() {
    for kind in [Kind::Vae, Kind::Gan] {
        let cfg = ModelConfig { hidden: 48, ..kind.default_config() };
        let mut engine = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
        let mut candle = CandleBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..3 {
            let grads: HashMap<String, Vec<f32>> = cfg
                .param_shapes()
                .into_iter()
                .map(|(name, shape)| (name, (0..shape.iter().product()).map(|_| rng.random_range(-0.05f32..0.05)).collect()))
                .collect();
            engine.apply_gradients(&grads, 1e-3).unwrap();
            candle.apply_gradients(&grads, 1e-3).unwrap();
        }
        let (e, c) = (engine.snapshot().unwrap(), candle.snapshot().unwrap());
        assert_eq!((e.optimizer.t, c.optimizer.t), (3, 3));
        let start = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap().snapshot().unwrap();
        for (name, cv) in &c.params {
            let moved = cv.iter().zip(&start.params[name]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(moved > 1e-4, "{name}: Adam did not move the weights ({moved})");
            let worst = cv.iter().zip(&e.params[name]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-6, "{} {name}: the updates differ by {worst}", kind.name());
            for (which, (cm, em)) in [(&c.optimizer.moments[name].0, &e.optimizer.moments[name].0), (&c.optimizer.moments[name].1, &e.optimizer.moments[name].1)].into_iter().enumerate() {
                let worst = cm.iter().zip(em).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst <= 1e-6, "{name}: Adam's moment {which} differs by {worst}");
            }
        }
    }
}

/// A step trains with the Adam constants its batch brings (the recipe's β2, which the page may
/// change between steps): after one step from zero moments, m = (1 − β1)·g and v = (1 − β2)·g²
/// for every parameter, on the engine and on candle, at a β2 of 0.6 (neither the kind's 0.999
/// nor the fast VAE's 0.99); a second step at 0.95 moves v by its own constants, not the first's.
#[test]
fn a_step_takes_adams_constants_from_its_batch() {
    for kind in [Kind::Vae, Kind::Gan] {
        let cfg = ModelConfig { hidden: 32, ..kind.default_config() };
        let data = common::mnist().train.take(256);
        let indices: Vec<usize> = (0..32).collect();
        let mut rng = StdRng::seed_from_u64(3);
        let noise: Vec<f32> = (0..indices.len() * cfg.latent).map(|_| rng.random_range(-1f32..1.0)).collect();
        let draws = parity::gan_draws(&cfg, &data, &indices);
        let batch = |beta2| {
            let adam = AdamConfig { beta2, ..AdamConfig::for_kind(kind) };
            Batch { data: &data, indices: &indices, noise: &noise, gan: draws.as_ref(), vae: Default::default(), label_gain: 1.0, adam }
        };
        let mut engine = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
        let mut candle = CandleBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
        engine.record_gradients = true;
        candle.record_gradients = true;
        // Step 1 at β2 0.6 from zero moments: m = (1 − β1)·g, v = (1 − 0.6)·g².
        engine.run_step(&batch(0.6), 1e-3).unwrap();
        candle.run_step(&batch(0.6), 1e-3).unwrap();
        let b1 = (1.0 - AdamConfig::for_kind(kind).beta1) as f32;
        let first = [("engine", engine.last_gradients.clone(), engine.snapshot().unwrap()), ("candle", candle.last_gradients.clone(), candle.snapshot().unwrap())];
        for (backend, grads, snap) in &first {
            assert_eq!(snap.optimizer.t, 1);
            for (name, g) in grads {
                let (m, v) = &snap.optimizer.moments[name];
                let g_max = g.iter().fold(0f32, |a, x| a.max(x.abs()));
                for (i, &g) in g.iter().enumerate() {
                    let what = format!("{} on {backend}: {name}[{i}]", kind.name());
                    assert!((m[i] - b1 * g).abs() <= 1e-6 * g_max, "{what}: m {} for g {g}", m[i]);
                    assert!((v[i] - 0.4 * g * g).abs() <= 1e-6 * g_max * g_max, "{what}: v {} for g {g}, not (1 − 0.6)·g²", v[i]);
                }
            }
        }
        // Step 2 at β2 0.95: v = 0.95·v₁ + 0.05·g², not step 1's constants kept.
        engine.run_step(&batch(0.95), 1e-3).unwrap();
        candle.run_step(&batch(0.95), 1e-3).unwrap();
        let second = [("engine", &engine.last_gradients, engine.snapshot().unwrap()), ("candle", &candle.last_gradients, candle.snapshot().unwrap())];
        for ((backend, grads, snap), (_, _, before)) in second.iter().zip(&first) {
            assert_eq!(snap.optimizer.t, 2);
            for (name, g) in grads.iter() {
                let ((_, v), (_, v1)) = (&snap.optimizer.moments[name], &before.optimizer.moments[name]);
                let v_max = g.iter().zip(v1).fold(0f32, |a, (x, w)| a.max(x * x).max(*w));
                for (i, &g) in g.iter().enumerate() {
                    let want = 0.95 * v1[i] + 0.05 * g * g;
                    assert!((v[i] - want).abs() <= 1e-5 * v_max, "{} on {backend}: {name}[{i}]: v {} where 0.95·{} + 0.05·{g}² = {want}", kind.name(), v[i], v1[i]);
                }
            }
        }
    }
}

/// 200 steps through the same trainer (shuffles, noise, dropout) on the engine and on candle, at
/// hidden width 64 and batch 32 over 1,600 examples (so the fast recipe's decay halves the rate
/// at step 50, 100 and 150): the loss curves, as means over each 25 steps, agree within 2%.
fn curves_agree(kind: Kind) {
    let cfg = ModelConfig { hidden: 64, ..kind.default_config() };
    let run = |on_engine: bool| -> Vec<f32> {
        let mut t = Trainer::new(Box::new(CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap()), SEED);
        t.set_dataset(common::mnist().train.take(1600)).unwrap();
        assert_eq!(t.batch_size(), 32);
        if !on_engine {
            t.use_device(Box::new(CandleBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap())).unwrap();
        }
        let curve: Vec<f32> = (0..200).map(|_| t.step().unwrap().losses.headline()).collect();
        assert_eq!(t.backend_name(), if on_engine { "cpu" } else { "candle" });
        curve.chunks(25).map(|w| w.iter().sum::<f32>() / w.len() as f32).collect()
    };
    let (want, got) = (run(false), run(true));
    eprintln!("{}: candle {want:?}\n{}: engine {got:?}", kind.name(), kind.name());
    for (i, (a, b)) in want.iter().zip(&got).enumerate() {
        parity::assert_close_rel(&format!("{} steps {}..{}, candle vs the engine", kind.name(), i * 25 + 1, i * 25 + 25), *a, *b, 0.02);
    }
    if !kind.is_gan() {
        assert!(got[got.len() - 1] < 0.8 * got[0], "{}: the engine's loss did not fall: {got:?}", kind.name());
    }
}

#[test]
fn curves_agree_vae() {
    curves_agree(Kind::Vae);
}

#[test]
fn curves_agree_cvae() {
    curves_agree(Kind::Cvae);
}

#[test]
fn curves_agree_ae() {
    curves_agree(Kind::Ae);
}

#[test]
fn curves_agree_conv_vae() {
    curves_agree(Kind::ConvVae);
}

#[test]
fn curves_agree_conv_ae() {
    curves_agree(Kind::ConvAe);
}

#[test]
fn curves_agree_gan() {
    curves_agree(Kind::Gan);
}

#[test]
fn curves_agree_cgan() {
    curves_agree(Kind::Cgan);
}

/// The keystream in bulk (`keystream::fill_u64`, what the dropout draws take) is the stream's own
/// `next_u64`, word for word: from the start, from inside a block and at the edges of blocks and of
/// rand_chacha's buffer of four, on another stream, across the block counter's carry, for 0 to
/// 1,000 words; and it leaves the stream where `next_u64` would have.
#[test]
fn the_bulk_keystream_is_the_streams_own_words() {
    use rand::RngCore;
    // (the last: four blocks across the block counter's carry into its high word)
    let carry = 16 * ((1u128 << 32) - 2) + 1;
    for &(start, stream, len) in &[(0u128, 0u64, 1000usize), (1, 0, 7), (15, 3, 33), (16, 0, 1), (63, 1 << 40, 64), (64, 0, 0), (1001, 9, 129), (carry, 0, 64)] {
        let mut bulk = Stream::seed_from_u64(7);
        bulk.set_stream(stream);
        bulk.set_word_pos(start);
        let mut one_at_a_time = bulk.clone();
        let mut got = vec![0u64; len];
        keystream::fill_u64(&mut bulk, &mut got).unwrap();
        let want: Vec<u64> = (0..len).map(|_| one_at_a_time.next_u64()).collect();
        assert_eq!(got, want, "from word {start} of stream {stream}, {len} words");
        assert_eq!(bulk.get_word_pos(), one_at_a_time.get_word_pos(), "from word {start}, {len} words: left elsewhere");
        assert_eq!(bulk.next_u64(), one_at_a_time.next_u64());
    }
}

/// The dropout flags a GAN step consumes: 30% of units dropped (within 0.5% over 400,000 flags),
/// in each of the four 16-bit positions a draw supplies, and a flag says nothing of its neighbour.
#[test]
fn dropout_draws_drop_three_in_ten_independently() {
    use latent_lab::gan::DropoutKeep;
    let keep = DropoutKeep::draw(&mut Stream::seed_from_u64(5), 500, 200).unwrap();
    let flags: Vec<bool> = keep.h1.iter().chain(keep.h2.iter()).collect();
    assert_eq!(flags.len(), 500 * 3 * 200);
    let dropped = |f: &mut dyn Iterator<Item = bool>| {
        let (mut d, mut n) = (0usize, 0usize);
        f.for_each(|k| {
            n += 1;
            d += !k as usize;
        });
        d as f64 / n as f64
    };
    let all = dropped(&mut flags.iter().copied());
    assert!((all - 0.3).abs() < 0.005, "{all} of the units dropped");
    for q in 0..4 {
        let rate = dropped(&mut flags.iter().skip(q).step_by(4).copied());
        assert!((rate - 0.3).abs() < 0.01, "position {q} of each draw: {rate} dropped");
    }
    let both = flags.windows(2).filter(|w| !w[0] && !w[1]).count() as f64 / (flags.len() - 1) as f64;
    assert!((both - 0.09).abs() < 0.005, "neighbours both dropped {both} of the time (independent: 0.09)");
}

/// A batch that names an example the dataset does not have is refused by name, for both
/// families, and the step changes nothing.
#[test]
fn a_batch_outside_the_dataset_is_refused_and_changes_nothing() {
    let data = common::mnist().train.take(100);
    for kind in [Kind::Vae, Kind::Cgan] {
        let cfg = ModelConfig { hidden: 16, ..kind.default_config() };
        let mut engine = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
        let before = engine.snapshot().unwrap().params;
        let indices = [3usize, 100];
        let noise = vec![0.5f32; 2 * cfg.latent];
        let draws = parity::gan_draws(&cfg, &common::mnist().train, &indices);
        let adam = AdamConfig::for_kind(kind);
        let batch = Batch { data: &data, indices: &indices, noise: &noise, gan: draws.as_ref(), vae: Default::default(), label_gain: 1.0, adam };
        common::expect_err(engine.run_step(&batch, 1e-3), &["example 100 is outside the dataset of 100"]);
        assert_eq!(engine.snapshot().unwrap().params, before, "{}: the refused step changed the weights", kind.name());
    }
}

/// The engine's own clock (the benchmark's shares) counts time in every phase, for every kind.
#[test]
fn the_engines_clock_counts_every_phase_of_every_kind() {
    for kind in latent_lab::config::Kind::ALL {
        let mut cfg = kind.default_config();
        cfg.hidden = 32;
        let mut lab = latent_lab::lab::Lab::fresh(cfg, 1).unwrap();
        lab.set_dataset(crate::common::mnist().train.take(256)).unwrap();
        let before = lab.trainer().engine_phases().unwrap();
        for _ in 0..3 {
            lab.train_step().unwrap();
        }
        let p = lab.trainer().engine_phases().unwrap();
        assert_eq!(before.forward + before.loss + before.backward + before.optimizer, 0.0);
        for (phase, ms) in [("forward", p.forward), ("loss", p.loss), ("backward", p.backward), ("optimizer", p.optimizer)] {
            assert!(ms > 0.0 && ms < 10_000.0, "{kind:?}: {phase} took {ms} ms over 3 steps");
        }
    }
}

/// The shipped classifier's forward on the engine (what `eval` and the page's verdict run) against
/// candle's conv2d and max-pool, on 77 real test digits and 3 of noise (two chunks of 32 and a
/// ragged 16): features within 1e-4 of their largest value, the same digit read for each.
#[test]
fn the_classifier_forward_on_the_engine_matches_candles() {
    use latent_lab::classifier::{features_and_predictions, ClassifierModel};
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/www/weights/classifier.safetensors")).unwrap();
    let model = ClassifierModel::load(&bytes, &Device::Cpu).unwrap();
    let test = common::mnist().test.take(77);
    let mut images: Vec<f32> = test.images.iter().map(|&p| f32::from(p) / 255.0).collect();
    images.extend(common::Rng::new(5).vec(3 * 784, 0.0, 1.0));
    let (features, digits) = features_and_predictions(&model.net, &images).unwrap();

    let x = candle_core::Tensor::from_slice(&images, (80, 784), &Device::Cpu).unwrap();
    let want = model.net.features(&x).unwrap();
    let want_digits: Vec<u8> = model.net.logits_from_features(&want).unwrap().argmax(1).unwrap().to_vec1::<u32>().unwrap().into_iter().map(|d| d as u8).collect();
    let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(features.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = features.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(scale > 1.0 && worst <= 1e-4 * scale, "features differ by {worst} (largest {scale})");
    assert_eq!(digits, want_digits);
    let right = digits.iter().zip(&test.labels).filter(|(d, y)| d == y).count();
    assert!(right >= 75, "{right} of 77 test digits read right");
}
