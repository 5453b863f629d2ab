//! The plain autoencoder (`ae`): a PyTorch `state_dict` of the tutorial's `nn.Sequential`s loads
//! and computes what a hand-written forward pass computes; what it refuses; and that it trains.

use crate::common::{self, expect_err, random_state_dict, write_safetensors, Rng};
use latent_lab::config::{ae_widths, Recon, SettingsChoice, VaeObjective};
use latent_lab::lab::Lab;
use latent_lab::model::{Kind, ModelConfig};
use latent_lab::sampler::Sampler;
use std::collections::HashMap;

/// rows [n, in] through the named linear layers in order, in f64: ReLU after each but the last.
fn chain(sd: &HashMap<String, (Vec<usize>, Vec<f32>)>, names: &[&str], rows: &[f32], width: usize) -> Vec<f64> {
    let mut h: Vec<f64> = rows.iter().map(|&v| v as f64).collect();
    let mut w_in = width;
    for (k, name) in names.iter().enumerate() {
        let (shape, w) = &sd[&format!("{name}.weight")];
        let (_, b) = &sd[&format!("{name}.bias")];
        let (out, inp) = (shape[0], shape[1]);
        assert_eq!(inp, w_in, "{name}");
        let n = h.len() / inp;
        let mut next = vec![0f64; n * out];
        for r in 0..n {
            for o in 0..out {
                let mut s = b[o] as f64;
                for i in 0..inp {
                    s += h[r * inp + i] * w[o * inp + i] as f64;
                }
                next[r * out + o] = if k + 1 < names.len() { s.max(0.0) } else { s };
            }
        }
        h = next;
        w_in = out;
    }
    h
}

const ENCODER: [&str; 4] = ["encoder.0", "encoder.2", "encoder.4", "encoder.6"];
const DECODER: [&str; 4] = ["decoder.0", "decoder.2", "decoder.4", "decoder.6"];

fn worst(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| (x as f64 - y).abs()).fold(0.0, f64::max)
}

/// A file of the tutorial's layer names and shapes (784 → 128 → 64 → 12 → 3 and back, checked
/// here against the widths and, layer by layer, by the reference forward pass), with no metadata
/// as PyTorch's `save_file` writes it, at the tutorial's sizes and at others: the kind and
/// sizes are read off the tensors, and sampling (whole model and light sampler), encoding and
/// reconstructing agree with a plain f64 forward pass to 1e-5.
#[test]
fn a_pytorch_state_dict_of_the_tutorials_autoencoder_loads_and_computes_as_the_reference_does() {
    for (latent, hidden) in [(3, 128), (5, 40)] {
        let cfg = ModelConfig { kind: Kind::Ae, latent, hidden };
        assert_eq!(ae_widths(&cfg), [784, hidden, hidden / 2, 12, latent]);
        let tensors = random_state_dict(&cfg, 7, 0.3);
        let names: Vec<&str> = tensors.iter().map(|(n, _, _)| n.as_str()).collect();
        for layer in ENCODER.iter().chain(&DECODER) {
            assert!(names.contains(&format!("{layer}.weight").as_str()) && names.contains(&format!("{layer}.bias").as_str()));
        }
        assert_eq!(tensors.len(), 16, "eight linear layers, nothing else");
        let bytes = write_safetensors(&tensors, None);
        let sd: HashMap<String, (Vec<usize>, Vec<f32>)> = tensors.into_iter().map(|(n, s, v)| (n, (s, v))).collect();
        let lab = Lab::from_safetensors(&bytes).unwrap();
        assert_eq!(lab.config(), cfg);
        let sampler = Sampler::from_safetensors(&bytes).unwrap();

        // decoding: (tanh(decoder(z)) + 1) / 2
        let z = Rng::new(3).vec(9 * latent, -2.0, 2.0);
        let want: Vec<f64> = chain(&sd, &DECODER, &z, latent).iter().map(|a| (a.tanh() + 1.0) / 2.0).collect();
        let got = lab.sample(&z, None).unwrap();
        assert!(worst(&got, &want) <= 1e-5, "ae z{latent} h{hidden}: sample off by {}", worst(&got, &want));
        let light = sampler.sample(&z, None).unwrap();
        assert!(worst(&light, &want) <= 1e-5, "ae z{latent} h{hidden}: the sampler off by {}", worst(&light, &want));
        assert!(got.iter().all(|p| (0.0..=1.0).contains(p)));

        // encoding real digits scaled to [−1, 1]; the code is a point (log σ² = −∞)
        let test = common::mnist().test.take(6);
        let images: Vec<f32> = test.images.iter().map(|&p| p as f32 / 255.0).collect();
        let signed: Vec<f32> = images.iter().map(|p| p * 2.0 - 1.0).collect();
        let want_code = chain(&sd, &ENCODER, &signed, 784);
        let (code, logvar) = lab.encode(&images, None).unwrap();
        assert!(worst(&code, &want_code) <= 1e-5, "ae z{latent}: code off by {}", worst(&code, &want_code));
        assert!(logvar.len() == code.len() && logvar.iter().all(|&v| v == f32::NEG_INFINITY));

        // reconstructing: the decoded code, and Σ (y − x)² per image in [−1, 1] units
        let code64: Vec<f32> = want_code.iter().map(|&v| v as f32).collect();
        let y: Vec<f64> = chain(&sd, &DECODER, &code64, latent).iter().map(|a| a.tanh()).collect();
        let (recon, loss) = lab.reconstruct(&images, None).unwrap();
        let want_recon: Vec<f64> = y.iter().map(|v| (v + 1.0) / 2.0).collect();
        assert!(worst(&recon, &want_recon) <= 1e-5);
        for (r, &l) in loss.iter().enumerate() {
            let e: f64 = (0..784).map(|i| (y[r * 784 + i] - signed[r * 784 + i] as f64).powi(2)).sum();
            assert!((l as f64 - e).abs() <= 1e-4 * e.max(1.0), "image {r}: loss {l}, reference {e}");
        }
    }
    // A layer of the wrong width is named.
    let cfg = Kind::Ae.default_config();
    let mut tensors = random_state_dict(&cfg, 7, 0.3);
    for (name, shape, values) in &mut tensors {
        if name == "encoder.2.weight" {
            *shape = vec![60, 128];
            *values = vec![0.0; 60 * 128];
        }
    }
    expect_err(Lab::from_safetensors(&write_safetensors(&tensors, None)), &["encoder.2.weight"]);
}

/// An autoencoder has no KL term, no probabilities to score with BCE and no labels: each asked of
/// it is a clear error, and the model is as it was (its lack of a WebGPU step: tests/gpu.rs).
#[test]
fn an_autoencoder_refuses_what_it_does_not_have() {
    let mut lab = Lab::fresh(ModelConfig { kind: Kind::Ae, latent: 3, hidden: 32 }, 1).unwrap();
    assert_eq!(lab.trainer().objective(), VaeObjective { recon: Recon::L2, kl_weight: 0.0 });
    let t = lab.trainer_mut();
    expect_err(t.set_objective(VaeObjective { recon: Recon::Bce, kl_weight: 0.0 }), &["l2 or l1", "not a probability"]);
    expect_err(t.set_objective(VaeObjective { recon: Recon::L2, kl_weight: 1.0 }), &["no KL term"]);
    expect_err(t.choose(&SettingsChoice { kl_weight: Some(2.0), ..Default::default() }), &["--beta", "autoencoder has none"]);
    assert_eq!(t.objective().recon, Recon::L2);
    t.set_objective(VaeObjective { recon: Recon::L1, kl_weight: 0.0 }).unwrap();
    expect_err(lab.sample(&[0.0; 3], Some(&[1])), &["`ae` model takes no digit labels"]);
    expect_err(lab.encode(&[0.5; 784], Some(&[1])), &["`ae` model takes no digit labels"]);
}

/// A fresh autoencoder trained 400 steps (the fast recipe, batch 32) halves its test squared
/// error, and `evaluate` reports the mean of what `reconstruct` gives per image.
#[test]
fn a_fresh_autoencoder_learns_to_reconstruct() {
    let mut lab = Lab::fresh(Kind::Ae.default_config(), 2).unwrap();
    let test = common::mnist().test.take(500);
    let before = lab.evaluate(&test).unwrap();
    lab.set_dataset(common::mnist().train.take(12_800)).unwrap();
    let mut last = 0.0;
    for _ in 0..400 {
        let s = lab.train_step().unwrap();
        let latent_lab::train::StepLosses::Vae(p) = s.losses else { panic!("an autoencoder step reports one loss") };
        assert_eq!((p.bce, p.kl), (p.loss, 0.0));
        last = p.loss;
    }
    let after = lab.evaluate(&test).unwrap();
    eprintln!("ae test squared error: {} before, {} after 400 steps (last step {last})", before.loss, after.loss);
    assert!(after.loss < 0.5 * before.loss, "{} → {}", before.loss, after.loss);
    let images: Vec<f32> = test.images.iter().map(|&p| p as f32 / 255.0).collect();
    let (_, per_image) = lab.reconstruct(&images, None).unwrap();
    let mean = per_image.iter().map(|&l| l as f64).sum::<f64>() / per_image.len() as f64;
    assert!((mean - after.loss as f64).abs() <= 1e-3 * mean, "reconstruct's mean {mean}, evaluate's {}", after.loss);
}
