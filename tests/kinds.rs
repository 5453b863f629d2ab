//! The GAN and the class-conditional kinds: shapes, losses against closed forms, files, the
//! checked API, training steps, and the optimiser against candle-nn's.

use crate::common;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use crate::common::{bits, expect_err, random_state_dict, read_metadata, write_safetensors, Rng};
use latent_lab::adam::{Adam, AdamConfig};
use latent_lab::config::Recipe;
use latent_lab::gan::{conditional_discriminator_loss, discriminator_loss, generator_loss, softplus};
use latent_lab::lab::Lab;
use latent_lab::mnist::Dataset;
use latent_lab::model::{Kind, ModelConfig};
use latent_lab::train::{StepLosses, StepStats};
use std::collections::HashMap;

fn cfg(kind: Kind) -> ModelConfig {
    kind.default_config()
}

fn shapes(cfg: ModelConfig) -> HashMap<String, Vec<usize>> {
    cfg.param_shapes().into_iter().collect()
}

#[test]
fn gan_and_conditional_shapes_follow_the_tutorials() {
    let gan = shapes(cfg(Kind::Gan));
    // generator z (64) → 256 → 512 → 784; discriminator 784 → 512 → 256 → 1
    assert_eq!(gan["generator.fc1.weight"], vec![256, 64]);
    assert_eq!(gan["generator.fc2.weight"], vec![512, 256]);
    assert_eq!(gan["generator.fc3.weight"], vec![784, 512]);
    assert_eq!(gan["discriminator.fc1.weight"], vec![512, 784]);
    assert_eq!(gan["discriminator.fc2.weight"], vec![256, 512]);
    assert_eq!(gan["discriminator.fc3.weight"], vec![1, 256]);
    assert_eq!(gan["discriminator.fc3.bias"], vec![1]);
    assert_eq!(gan.len(), 12);
    // The label (one-hot, 10) joins z and the discriminator's input.
    let cgan = shapes(cfg(Kind::Cgan));
    assert_eq!(cgan["generator.fc1.weight"], vec![256, 74]);
    assert_eq!(cgan["discriminator.fc1.weight"], vec![512, 794]);
    // … and the cVAE's encoder input and latent.
    let cvae = shapes(cfg(Kind::Cvae));
    assert_eq!(cvae["fc1.weight"], vec![400, 794]);
    assert_eq!(cvae["fc3.weight"], vec![400, 30]);
    assert_eq!(cvae["fc21.weight"], vec![20, 400]);
    assert_eq!(Kind::parse("cgan").unwrap(), Kind::Cgan);
    expect_err(Kind::parse("wgan"), &["unknown model kind `wgan`; the kinds are vae, cvae, gan, cgan, ae, conv-ae and conv-vae"]);
}

#[test]
fn gan_losses_match_closed_forms() {
    let dev = Device::Cpu;
    let l = [-30.0f32, -2.0, -0.5, 0.0, 0.5, 2.0, 30.0];
    let t = Tensor::new(&l, &dev).unwrap();
    let got: Vec<f32> = softplus(&t).unwrap().to_vec1().unwrap();
    for (x, y) in l.iter().zip(&got) {
        let want = (1.0 + (*x as f64).exp()).ln();
        assert!((*y as f64 - want).abs() <= 1e-6 * want.max(1.0), "softplus({x}) = {y}, want {want}");
    }
    // At logit 0, D(x) = ½: the discriminator's loss is 2 ln 2, the generator's ln 2.
    let zeros = Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap();
    let d: f32 = discriminator_loss(&zeros, &zeros).unwrap().to_scalar().unwrap();
    let g: f32 = generator_loss(&zeros).unwrap().to_scalar().unwrap();
    assert!((d - 2.0 * std::f32::consts::LN_2).abs() < 1e-6, "{d}");
    assert!((g - std::f32::consts::LN_2).abs() < 1e-6, "{g}");
    // The conditional discriminator counts generated and mismatched pairs half each.
    let cd: f32 = conditional_discriminator_loss(&zeros, &zeros, &zeros).unwrap().to_scalar().unwrap();
    assert!((cd - 2.0 * std::f32::consts::LN_2).abs() < 1e-6, "{cd}");
    let far = Tensor::new(&[-40f32; 5], &dev).unwrap();
    let cd: f32 = conditional_discriminator_loss(&zeros, &far, &zeros).unwrap().to_scalar().unwrap();
    assert!((cd - 1.5 * std::f32::consts::LN_2).abs() < 1e-6, "ln 2 + ½ (0 + ln 2), got {cd}");
    // A confident, correct discriminator has a small loss; the generator it fools not.
    let real = Tensor::new(&[8f32, 9.0], &dev).unwrap();
    let fake = Tensor::new(&[-8f32, -9.0], &dev).unwrap();
    let d: f32 = discriminator_loss(&real, &fake).unwrap().to_scalar().unwrap();
    let g: f32 = generator_loss(&fake).unwrap().to_scalar().unwrap();
    assert!(d < 1e-3 && g > 8.0, "d {d} g {g}");
}

#[test]
fn our_adam_equals_candle_adamw_bit_for_bit() {
    let dev = Device::Cpu;
    let mut rng = Rng::new(5);
    let w0 = rng.vec(300, -1.0, 1.0);
    let ours = Var::from_vec(w0.clone(), (30, 10), &dev).unwrap();
    let theirs = Var::from_vec(w0, (30, 10), &dev).unwrap();
    let gan = AdamConfig::for_kind(Kind::Gan);
    let mut adam = Adam::new(vec![("w".into(), ours.clone())], &gan).unwrap();
    let lr = Recipe::Tutorial.settings(Kind::Gan).learning_rate;
    let params = ParamsAdamW { lr, beta1: gan.beta1, beta2: gan.beta2, eps: gan.eps, weight_decay: 0.0 };
    assert_eq!((lr, gan.beta1, gan.beta2, gan.eps), (2e-4, 0.5, 0.999, 1e-8), "the GAN tutorials' Adam");
    let mut adamw = AdamW::new(vec![theirs.clone()], params).unwrap();
    let target = Tensor::new(rng.vec(300, -1.0, 1.0), &dev).unwrap().reshape((30, 10)).unwrap();
    for step in 0..20 {
        let lr = if step < 10 { 2e-4 } else { 1e-3 };
        let g_ours = ((ours.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap()).backward().unwrap();
        let g_theirs = ((theirs.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap()).backward().unwrap();
        adam.step(&g_ours, lr).unwrap();
        adamw.set_learning_rate(lr);
        adamw.step(&g_theirs).unwrap();
        let a = ours.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = theirs.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(bits(&a), bits(&b), "step {step}");
    }
}

#[test]
fn every_kind_saves_and_loads_and_is_recognised_without_metadata() {
    for kind in Kind::ALL {
        // conv-ae's code is whole channels of 2×2 pixels
        let c = ModelConfig { kind, latent: if kind == Kind::ConvAe { 8 } else { 6 }, hidden: 24 };
        let lab = Lab::fresh(c, 3).unwrap();
        let bytes = lab.save().unwrap();
        assert_eq!(read_metadata(&bytes).get("kind").map(String::as_str), Some(kind.name()));
        let loaded = Lab::from_safetensors(&bytes).unwrap();
        assert_eq!(loaded.config(), c);
        let z = Rng::new(1).vec(3 * c.latent, -2.0, 2.0);
        let labels = kind.is_conditional().then_some(&[0u8, 4, 9][..]);
        assert_eq!(bits(&lab.sample(&z, labels).unwrap()), bits(&loaded.sample(&z, labels).unwrap()), "{kind:?}");
        // A PyTorch state_dict without metadata: the kind comes from the names and shapes.
        let sd = random_state_dict(&c, 2, 0.1);
        let bare = Lab::from_safetensors(&write_safetensors(&sd, None)).unwrap();
        assert_eq!(bare.config(), c, "{kind:?} from tensors alone");
    }
    // Metadata that names another kind than the tensors hold.
    let sd = random_state_dict(&cfg(Kind::Gan), 2, 0.1);
    let meta = HashMap::from([("kind".to_string(), "cgan".to_string())]);
    expect_err(
        Lab::from_safetensors(&write_safetensors(&sd, Some(meta))),
        &["metadata says kind = `cgan`", "tensors are a `gan` model"],
    );
    // A discriminator whose input is neither an image nor an image and a label.
    let mut sd = random_state_dict(&cfg(Kind::Gan), 2, 0.1);
    for (name, shape, values) in &mut sd {
        if name == "discriminator.fc1.weight" {
            *shape = vec![512, 790];
            *values = vec![0.0; 512 * 790];
        }
    }
    expect_err(Lab::from_safetensors(&write_safetensors(&sd, None)), &["`discriminator.fc1.weight` takes 790 inputs"]);
    // A missing generator layer.
    let sd: Vec<_> = random_state_dict(&cfg(Kind::Gan), 2, 0.1).into_iter().filter(|(n, _, _)| n != "generator.fc2.bias").collect();
    expect_err(Lab::from_safetensors(&write_safetensors(&sd, None)), &["no tensor `generator.fc2.bias`"]);
}

#[test]
fn calls_a_kind_cannot_do_are_clear_errors() {
    let gan = Lab::fresh(ModelConfig { kind: Kind::Gan, latent: 8, hidden: 16 }, 1).unwrap();
    let px = vec![0.5f32; 784];
    expect_err(gan.encode(&px, None), &["`gan` model has no encoder", "encode works on the VAEs and the autoencoders"]);
    expect_err(gan.evaluate(&common::mnist().test.take(10)), &["`gan` model has no test loss"]);
    expect_err(gan.sample(&[0.0; 8], Some(&[3])), &["`gan` model takes no digit labels"]);

    let cgan = Lab::fresh(ModelConfig { kind: Kind::Cgan, latent: 8, hidden: 16 }, 1).unwrap();
    expect_err(cgan.sample(&[0.0; 16], None), &["`cgan` model needs a digit label", "each of the latent vectors"]);
    expect_err(cgan.sample(&[0.0; 16], Some(&[1])), &["1 digit labels for 2 latent vectors"]);
    expect_err(cgan.sample(&[0.0; 16], Some(&[1, 10])), &["label 1 is 10", "0 to 9"]);
    expect_err(cgan.interpolate(&[0.0; 8], &[1.0; 8], 3, None), &["needs a digit label"]);

    let cvae = Lab::fresh(ModelConfig { kind: Kind::Cvae, latent: 4, hidden: 16 }, 1).unwrap();
    expect_err(cvae.encode(&px, None), &["`cvae` model needs a digit label", "images"]);
    let (mu, logvar) = cvae.encode(&px, Some(&[7])).unwrap();
    assert_eq!((mu.len(), logvar.len()), (4, 4));
}

#[test]
fn the_label_steers_conditional_models_and_interpolation_keeps_it() {
    for kind in [Kind::Cvae, Kind::Cgan] {
        let lab = Lab::fresh(ModelConfig { kind, latent: 4, hidden: 32 }, 9).unwrap();
        let z = Rng::new(4).vec(4, -1.0, 1.0);
        let three = lab.sample(&z, Some(&[3])).unwrap();
        let eight = lab.sample(&z, Some(&[8])).unwrap();
        assert_ne!(bits(&three), bits(&eight), "{kind:?}: the label must change the image");
        let frames = lab.interpolate(&z, &z, 3, Some(3)).unwrap();
        assert_eq!(bits(&frames[..784]), bits(&three), "{kind:?}");
        assert_eq!(bits(&frames[2 * 784..]), bits(&three), "{kind:?}");
    }
}

fn gan_losses(s: &StepStats) -> latent_lab::train::GanLosses {
    match s.losses {
        StepLosses::Gan(g) => g,
        other => panic!("a GAN step reported {other:?}"),
    }
}

#[test]
fn gan_steps_train_both_networks_and_report_verdicts() {
    for kind in [Kind::Gan, Kind::Cgan] {
        let mut lab = Lab::fresh(cfg(kind), 2).unwrap();
        lab.trainer_mut().set_recipe(Recipe::Tutorial); // what these bars were set at
        lab.set_dataset(common::mnist().train.take(2048)).unwrap();
        lab.trainer_mut().set_batch_size(64).unwrap();
        let before = common::read_tensors(&lab.save().unwrap());
        let mut first = None;
        let mut last = None;
        for i in 0..60 {
            let g = gan_losses(&lab.train_step().unwrap());
            assert!(g.d_loss.is_finite() && g.g_loss.is_finite(), "{kind:?} step {i}: {g:?}");
            assert!((0.0..=1.0).contains(&g.d_real) && (0.0..=1.0).contains(&g.d_fake), "{g:?}");
            first.get_or_insert(g);
            last = Some(g);
        }
        let (first, last) = (first.unwrap(), last.unwrap());
        // Fresh networks start near D(x) = ½; sixty steps teach D to tell real from generated.
        assert!((first.d_real - 0.5).abs() < 0.1 && (first.d_fake - 0.5).abs() < 0.1, "{first:?}");
        assert!(last.d_real > last.d_fake + 0.05, "{kind:?}: D does not separate real from fake: {last:?}");
        assert!(last.d_loss < first.d_loss, "{kind:?}: {first:?} → {last:?}");
        // Both networks' weights moved.
        let after = common::read_tensors(&lab.save().unwrap());
        for name in ["generator.fc1.weight", "discriminator.fc3.weight"] {
            assert_ne!(bits(&before[name].1), bits(&after[name].1), "{kind:?}: {name} did not change");
        }
    }
}

#[test]
fn a_gan_step_with_an_overflowing_loss_changes_neither_network() {
    // A discriminator whose last layer is huge (finite, so the file loads) overflows its logits:
    // the step must fail and leave both networks as they were.
    let c = ModelConfig { kind: Kind::Cgan, latent: 8, hidden: 32 };
    let mut sd = random_state_dict(&c, 4, 0.2);
    for (name, _, values) in &mut sd {
        if name == "discriminator.fc3.weight" {
            values.iter_mut().for_each(|v| *v = 3e38);
        }
    }
    let mut lab = Lab::from_safetensors(&write_safetensors(&sd, None)).unwrap();
    lab.set_dataset(common::mnist().train.take(256)).unwrap();
    let before = lab.save().unwrap();
    let z = Rng::new(2).vec(8, -1.0, 1.0);
    let sample_before = lab.sample(&z, Some(&[5])).unwrap();
    let msg = expect_err(lab.train_step(), &["training diverged", "the weights were not changed"]);
    assert!(msg.contains("discriminator"), "{msg}");
    assert_eq!(lab.save().unwrap(), before, "a failed step changed the weights");
    assert_eq!(bits(&lab.sample(&z, Some(&[5])).unwrap()), bits(&sample_before));
    assert_eq!(lab.trainer().steps(), 0, "a failed step is not counted");
}

#[test]
fn conditional_training_uses_the_labels() {
    // A cVAE trained only on 1s and 7s: asked for a 1 it draws something closer to the average
    // real 1 than to the average real 7, and the other way round.
    let data = &common::mnist().train;
    let keep: Vec<usize> = (0..data.len()).filter(|&i| matches!(data.labels[i], 1 | 7)).take(4000).collect();
    let images: Vec<u8> = keep.iter().flat_map(|&i| data.images[i * 784..(i + 1) * 784].to_vec()).collect();
    let labels: Vec<u8> = keep.iter().map(|&i| data.labels[i]).collect();
    let mean_of = |digit: u8| -> Vec<f32> {
        let rows: Vec<usize> = (0..labels.len()).filter(|&r| labels[r] == digit).collect();
        (0..784).map(|p| rows.iter().map(|&r| images[r * 784 + p] as f32 / 255.0).sum::<f32>() / rows.len() as f32).collect()
    };
    let (mean1, mean7) = (mean_of(1), mean_of(7));
    let mut lab = Lab::fresh(ModelConfig { kind: Kind::Cvae, latent: 4, hidden: 200 }, 1).unwrap();
    lab.set_dataset(Dataset::new(images.clone(), labels.clone()).unwrap()).unwrap();
    for _ in 0..200 {
        lab.train_step().unwrap();
    }
    let z = vec![0.0f32; 4];
    let dist = |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum() };
    let one = lab.sample(&z, Some(&[1])).unwrap();
    let seven = lab.sample(&z, Some(&[7])).unwrap();
    assert!(dist(&one, &mean1) < 0.8 * dist(&one, &mean7), "asked for a 1: {} to 1s, {} to 7s", dist(&one, &mean1), dist(&one, &mean7));
    assert!(dist(&seven, &mean7) < 0.8 * dist(&seven, &mean1), "asked for a 7: {} to 7s, {} to 1s", dist(&seven, &mean7), dist(&seven, &mean1));
}
