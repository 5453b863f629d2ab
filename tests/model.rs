//! The model: parameter names and shapes, initialisation, the loss terms against closed forms,
//! sampling and interpolation.


use candle_core::{Device, Tensor};
use crate::common::{bits, read_metadata, read_tensors, Rng};
use latent_lab::lab::Lab;
use latent_lab::model::{Kind, ModelConfig};
use latent_lab::vae::{bce_with_logits, kl_to_unit_gaussian};

#[test]
fn param_shapes_are_pytorch_state_dict() {
    let cfg = ModelConfig::vae(20, 400);
    let got = cfg.param_shapes();
    let want: Vec<(String, Vec<usize>)> = [
        ("fc1.weight", vec![400, 784]),
        ("fc1.bias", vec![400]),
        ("fc21.weight", vec![20, 400]),
        ("fc21.bias", vec![20]),
        ("fc22.weight", vec![20, 400]),
        ("fc22.bias", vec![20]),
        ("fc3.weight", vec![400, 20]),
        ("fc3.bias", vec![400]),
        ("fc4.weight", vec![784, 400]),
        ("fc4.bias", vec![784]),
    ]
    .into_iter()
    .map(|(n, s)| (n.to_string(), s))
    .collect();
    assert_eq!(got, want);
    assert_eq!(Kind::Vae.default_config(), cfg);
    // Parameter count of PyTorch's examples/vae model.
    let total: usize = got.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    assert_eq!(total, 652_824);
    // Other sizes follow.
    let small = ModelConfig::vae(2, 7).param_shapes();
    assert_eq!(small[2], ("fc21.weight".to_string(), vec![2, 7]));
    assert_eq!(small[6], ("fc3.weight".to_string(), vec![7, 2]));
    assert!(ModelConfig::vae(0, 400).validate().is_err());
    assert!(Lab::fresh(ModelConfig::vae(20, 0), 1).is_err());
}

#[test]
fn saved_file_has_pytorch_names_shapes_metadata_and_init() {
    let cfg = ModelConfig::vae(20, 400);
    let bytes = Lab::fresh(cfg, 7).unwrap().save().unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut want: Vec<String> = cfg.param_shapes().into_iter().map(|(n, _)| n).collect();
    want.sort();
    assert_eq!(names, want, "exactly the state_dict names");
    for (name, shape) in cfg.param_shapes() {
        let t = st.tensor(&name).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
    }
    let meta = read_metadata(&bytes);
    assert_eq!(meta.get("kind").map(String::as_str), Some("vae"));
    assert_eq!(meta.get("latent").map(String::as_str), Some("20"));
    assert_eq!(meta.get("hidden").map(String::as_str), Some("400"));
    assert_eq!(meta.get("dataset").map(String::as_str), Some("mnist"));
    assert_eq!(meta.get("epochs").map(String::as_str), Some("0"));

    // PyTorch's nn.Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
    let tensors = read_tensors(&bytes);
    for (name, fan_in) in [
        ("fc1.weight", 784),
        ("fc1.bias", 784),
        ("fc21.weight", 400),
        ("fc22.bias", 400),
        ("fc3.weight", 20),
        ("fc3.bias", 20),
        ("fc4.weight", 400),
        ("fc4.bias", 400),
    ] {
        let v = &tensors[name].1;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x as f64), hi.max(x as f64)));
        assert!(lo >= -bound && hi <= bound, "{name}: [{lo}, {hi}] outside ±{bound}");
        // The values fill the range (not e.g. a tenth of it); only checkable on big tensors.
        assert!(v.len() < 400 || (lo < -0.8 * bound && hi > 0.8 * bound), "{name}: [{lo}, {hi}] does not fill ±{bound}");
    }
    let w = &tensors["fc1.weight"].1;
    let n = w.len() as f64;
    let mean = w.iter().map(|&x| x as f64).sum::<f64>() / n;
    let std = (w.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
    let bound = 1.0 / 784f64.sqrt();
    let want_std = bound / 3f64.sqrt();
    assert!(mean.abs() < 0.01 * bound, "fc1.weight mean {mean}");
    assert!((std / want_std - 1.0).abs() < 0.01, "fc1.weight std {std}, expected {want_std}");

    // The seed decides the weights.
    let again = Lab::fresh(cfg, 7).unwrap().save().unwrap();
    assert!(again == bytes, "same seed, different file");
    let other = read_tensors(&Lab::fresh(cfg, 8).unwrap().save().unwrap());
    assert_ne!(bits(&other["fc1.weight"].1), bits(w));
}

#[test]
fn kl_matches_closed_form() {
    let mu: Vec<f32> = vec![0.0, 0.0, 0.0, 1.0, -2.0, 0.5, 0.3, -0.7, 3.0, 0.01, -0.02, 1.5];
    let logvar: Vec<f32> = vec![0.0, 0.0, 0.0, 0.5, -1.0, 2.0, -3.0, 0.1, 1.2, -0.4, -6.0, 0.0];
    let (rows, cols) = (4, 3);
    let dev = Device::Cpu;
    let kl = kl_to_unit_gaussian(
        &Tensor::from_slice(&mu, (rows, cols), &dev).unwrap(),
        &Tensor::from_slice(&logvar, (rows, cols), &dev).unwrap(),
    )
    .unwrap();
    assert_eq!(kl.dims(), &[rows]);
    let kl: Vec<f32> = kl.to_vec1().unwrap();
    for r in 0..rows {
        let mut s = 0f64;
        for c in 0..cols {
            let (m, lv) = (mu[r * cols + c] as f64, logvar[r * cols + c] as f64);
            s += 1.0 + lv - m * m - lv.exp();
        }
        let want = -0.5 * s;
        let got = kl[r] as f64;
        assert!(
            (got - want).abs() <= 1e-5 * want.abs().max(1e-6),
            "row {r}: kl {got}, closed form {want}"
        );
    }
    // N(0, 1) against itself is exactly zero; anything else is positive.
    assert_eq!(kl[0], 0.0);
    assert!(kl[1..].iter().all(|&k| k > 0.0));
}

#[test]
fn bce_with_logits_matches_definition_and_stays_finite() {
    let logits: Vec<f32> = vec![0.0, 0.0, 2.0, -2.0, 5.0, -5.0, 30.0, 30.0, -30.0, -30.0, 30.0, -30.0, 0.7, -100.0, 100.0];
    let x: Vec<f32> = vec![0.0, 0.5, 1.0, 1.0, 0.0, 0.3, 0.0, 1.0, 0.0, 1.0, 0.25, 0.75, 0.9, 1.0, 0.0];
    let dev = Device::Cpu;
    let n = logits.len();
    let got: Vec<f32> = bce_with_logits(
        &Tensor::from_slice(&logits, n, &dev).unwrap(),
        &Tensor::from_slice(&x, n, &dev).unwrap(),
    )
    .unwrap()
    .to_vec1()
    .unwrap();
    for i in 0..n {
        let (l, t) = (logits[i] as f64, x[i] as f64);
        // ln σ(l) = −ln(1 + e^−l), ln(1 − σ(l)) = −ln(1 + e^l), evaluated without cancellation.
        let softplus = |u: f64| if u > 0.0 { u + (-u).exp().ln_1p() } else { u.exp().ln_1p() };
        let ln_sig = -softplus(-l);
        let ln_one_minus_sig = -softplus(l);
        let want = -(t * ln_sig + (1.0 - t) * ln_one_minus_sig);
        // Cross-check against the naive formula where f64 can still evaluate it.
        if l.abs() <= 5.0 {
            let s = 1.0 / (1.0 + (-l).exp());
            let naive = -(t * s.ln() + (1.0 - t) * (1.0 - s).ln());
            assert!((naive - want).abs() < 1e-12);
        }
        let g = got[i] as f64;
        assert!(g.is_finite(), "logit {l}, x {t}: bce is {g}");
        assert!(
            (g - want).abs() <= 1e-5 * want.abs() + 1e-6,
            "logit {l}, x {t}: bce {g}, definition {want}"
        );
    }
    // Spot values: ln 2 at l = 0, and ≈ 30 when l = 30 and x = 0.
    assert!((got[0] - std::f32::consts::LN_2).abs() < 1e-6);
    assert!((got[6] - 30.0).abs() < 1e-4);
    // Confidently wrong both ways costs |l|.
    assert!((got[13] - 100.0).abs() < 1e-3 && (got[14] - 100.0).abs() < 1e-3, "{} {}", got[13], got[14]);
    // Confidently right costs (almost) nothing.
    assert!(got[7] >= 0.0 && got[7] < 1e-6 && got[8] >= 0.0 && got[8] < 1e-6);
}

fn interp_lab() -> (Lab, Vec<f32>, Vec<f32>) {
    let lab = Lab::fresh(ModelConfig::vae(20, 400), 3).unwrap();
    let mut rng = Rng::new(11);
    let z_a = rng.vec(20, -2.0, 2.0);
    let z_b = rng.vec(20, -2.0, 2.0);
    (lab, z_a, z_b)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

#[test]
fn interpolate_frames_shape_range_and_path() {
    let (lab, z_a, z_b) = interp_lab();
    let a = lab.sample(&z_a, None).unwrap();
    let b = lab.sample(&z_b, None).unwrap();
    assert_eq!(a.len(), 784);
    assert!(max_diff(&a, &b) > 0.01, "different z must give different images");
    for steps in [2usize, 7, 64] {
        let frames = lab.interpolate(&z_a, &z_b, steps, None).unwrap();
        assert_eq!(frames.len(), steps * 784);
        assert!(frames.iter().all(|p| (0.0..=1.0).contains(p)), "pixels outside [0, 1]");
        assert!(max_diff(&frames[..784], &a) < 1e-6, "steps {steps}: first frame is sample(z_a)");
        assert!(max_diff(&frames[(steps - 1) * 784..], &b) < 1e-6, "steps {steps}: last frame is sample(z_b)");
        // Every frame is the decoded point (1 − t)·z_a + t·z_b; the middle one of 7 is the midpoint.
        if steps == 7 {
            let mid: Vec<f32> = z_a.iter().zip(&z_b).map(|(a, b)| 0.5 * a + 0.5 * b).collect();
            let m = lab.sample(&mid, None).unwrap();
            let d = max_diff(&frames[3 * 784..4 * 784], &m);
            assert!(d < 1e-5, "middle frame differs from sample(midpoint) by {d}");
        }
    }
}

/// `Lab::interpolate` documents that "the first frame is exactly `sample(z_a)` and the last
/// `sample(z_b)`"; checked to the bit.
#[test]
fn interpolate_ends_equal_samples_bitwise() {
    let (lab, z_a, z_b) = interp_lab();
    let a = lab.sample(&z_a, None).unwrap();
    let b = lab.sample(&z_b, None).unwrap();
    for steps in [2usize, 7, 64] {
        let frames = lab.interpolate(&z_a, &z_b, steps, None).unwrap();
        assert_eq!(frames.len(), steps * 784);
        let first_ok = bits(&frames[..784]) == bits(&a);
        let last_ok = bits(&frames[(steps - 1) * 784..]) == bits(&b);
        // Every frame is decoded on its own: frame k is bit-for-bit sample(z_k).
        for k in 0..steps {
            let t = k as f32 / (steps - 1) as f32;
            let z: Vec<f32> = z_a.iter().zip(&z_b).map(|(a, b)| (1.0 - t) * a + t * b).collect();
            let want = lab.sample(&z, None).unwrap();
            assert_eq!(bits(&frames[k * 784..(k + 1) * 784]), bits(&want), "steps {steps}: frame {k}");
        }
        assert!(
            first_ok && last_ok,
            "steps {steps}: first frame bitwise == sample(z_a): {first_ok} (max diff {:e}); \
             last frame bitwise == sample(z_b): {last_ok} (max diff {:e})",
            max_diff(&frames[..784], &a),
            max_diff(&frames[(steps - 1) * 784..], &b)
        );
    }
}

#[test]
fn sample_batches_rows_independently() {
    // n latent vectors in one call give the same images as one call each (to float tolerance).
    let lab = Lab::fresh(ModelConfig::vae(5, 32), 4).unwrap();
    let z = Rng::new(5).vec(5 * 9, -3.0, 3.0);
    let all = lab.sample(&z, None).unwrap();
    assert_eq!(all.len(), 9 * 784);
    for r in 0..9 {
        let one = lab.sample(&z[r * 5..(r + 1) * 5], None).unwrap();
        let d = one.iter().zip(&all[r * 784..(r + 1) * 784]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(d < 1e-6, "row {r} differs by {d}");
    }
}
