//! Training on real MNIST: the loss falls, steps repeat exactly from a seed, and a learning rate
//! that blows up is caught before it touches the weights, and rolled back from.

use crate::common;

use crate::common::{bits, expect_err};
use latent_lab::config::{Decay, Kind, Recipe, Recon, SettingsChoice, TrainSettings, VaeObjective};
use latent_lab::lab::Lab;
use latent_lab::train::{LossParts, StepLosses, StepStats};
use latent_lab::model::ModelConfig;

const CFG: ModelConfig = ModelConfig::vae(20, 400);

/// The VAE losses of a step (every model in this file is a VAE).
fn vae_parts(s: &StepStats) -> LossParts {
    match s.losses {
        StepLosses::Vae(p) => p,
        other => panic!("a VAE step reported {other:?}"),
    }
}

fn mean(v: &[LossParts]) -> f64 {
    v.iter().map(|p| p.loss as f64).sum::<f64>() / v.len() as f64
}

#[test]
fn fresh_models_train_with_the_fast_recipe_and_the_tutorials_is_there_by_name() {
    for kind in Kind::ALL {
        let mut lab = Lab::fresh(kind.default_config(), 1).unwrap();
        let t = lab.trainer_mut();
        assert_eq!(t.recipe(), Some(Recipe::Fast), "{kind:?}");
        // The fast recipe averages a GAN's generator, gives the cGAN's discriminator its label ×10,
        // and trains the linear VAEs at twice the others' rate with Adam's β2 at 0.99.
        let label_gain = if kind == Kind::Cgan { 10.0 } else { 1.0 };
        let (learning_rate, adam_beta2) = if matches!(kind, Kind::Vae | Kind::Cvae) { (4e-3, 0.99) } else { (2e-3, 0.999) };
        let fast = TrainSettings { batch_size: 32, learning_rate, decay: Decay::InverseEpoch, average: kind.is_gan(), label_gain, adam_beta2 };
        assert_eq!(t.settings(), fast, "{kind:?}");
        t.set_recipe(Recipe::Tutorial);
        let want = if kind.is_gan() { 2e-4 } else { 1e-3 };
        let tutorial = TrainSettings { batch_size: 128, learning_rate: want, decay: Decay::None, average: false, label_gain: 1.0, adam_beta2: 0.999 };
        assert_eq!(t.settings(), tutorial, "{kind:?}");
        assert_eq!(t.recipe(), Some(Recipe::Tutorial));
        // A rate, decay or β2 set by hand is no recipe, until one is chosen again; β2 is checked.
        t.set_learning_rate(5e-4).unwrap();
        assert_eq!(t.recipe(), None);
        t.set_recipe(Recipe::Tutorial);
        t.set_adam_beta2(0.9).unwrap();
        assert_eq!(t.recipe(), None);
        for bad in [1.0, 0.4, f64::NAN] {
            common::expect_err(t.set_adam_beta2(bad), &["Adam's β2", "is outside [0.5, 1)"]);
        }
        assert_eq!(t.settings().adam_beta2, 0.9, "a refused β2 changed the setting");
        t.set_recipe(Recipe::Fast);
        t.set_decay(Decay::None);
        assert_eq!(t.recipe(), None);
        t.set_recipe(Recipe::Fast);
        assert_eq!(Recipe::of(kind, t.settings()), Some(Recipe::Fast));
    }
    assert_eq!(Recipe::parse("tutorial").unwrap(), Recipe::Tutorial);
    expect_err(Recipe::parse("slow"), &["unknown recipe `slow`; the recipes are fast and tutorial"]);
    expect_err(Decay::parse("cosine"), &["unknown learning-rate decay `cosine`; the decays are none and inverse-epoch"]);
}

/// The command line's --recon and --beta choose a VAE's objective (over the default BCE + KL); a
/// GAN refuses them, and a β out of range or an unknown loss is named.
#[test]
fn the_reconstruction_loss_and_kl_weight_are_chosen_by_name_and_checked() {
    let mut choice = SettingsChoice::default();
    for (flag, value) in [("--recon", "l1"), ("--beta", "4")] {
        assert!(choice.take(flag, value).unwrap(), "{flag}");
    }
    let mut lab = Lab::fresh(Kind::Vae.default_config(), 1).unwrap();
    assert_eq!(lab.trainer().objective(), VaeObjective { recon: Recon::Bce, kl_weight: 1.0 });
    lab.trainer_mut().choose(&choice).unwrap();
    assert_eq!(lab.trainer().objective(), VaeObjective { recon: Recon::L1, kl_weight: 4.0 });
    // Each given alone keeps the other as it was.
    let beta_only = SettingsChoice { kl_weight: Some(0.5), ..Default::default() };
    lab.trainer_mut().choose(&beta_only).unwrap();
    assert_eq!(lab.trainer().objective(), VaeObjective { recon: Recon::L1, kl_weight: 0.5 });

    let mut gan = Lab::fresh(Kind::Gan.default_config(), 1).unwrap();
    expect_err(gan.trainer_mut().choose(&beta_only), &["--recon and --beta set a VAE's loss; a GAN has neither"]);
    for beta in [-0.1, 100.5, f64::NAN] {
        let bad = VaeObjective { kl_weight: beta, ..Default::default() };
        expect_err(lab.trainer_mut().set_objective(bad), &["KL weight β", "outside 0..=100"]);
    }
    assert_eq!(lab.trainer().objective().kl_weight, 0.5, "a refused β changed the objective");
    expect_err(Recon::parse("l3"), &["unknown reconstruction loss `l3`; the reconstruction losses are bce, l2 and l1"]);
    expect_err(SettingsChoice::default().take("--beta", "lots"), &["--beta"]);
}

/// The fast recipe's decay: epoch e trains at the rate ÷ (1 + e). A run with the decay and one at a
/// constant rate, lowered by hand to a half at the second epoch, take the same steps to the bit.
#[test]
fn the_decaying_rate_halves_in_the_second_epoch() {
    let data = common::mnist().train.take(64); // two steps of 32 an epoch
    let run = |decay: Decay| {
        let mut lab = Lab::fresh(CFG, 4).unwrap();
        lab.set_dataset(data.clone()).unwrap();
        lab.trainer_mut().set_decay(decay);
        let mut rates = Vec::new();
        for step in 0..4 {
            if decay == Decay::None && step == 2 {
                lab.trainer_mut().set_learning_rate(2e-3).unwrap();
            }
            rates.push(lab.trainer().current_learning_rate());
            lab.train_step().unwrap();
        }
        (rates, lab.save().unwrap())
    };
    let (decayed, a) = run(Decay::InverseEpoch);
    let (by_hand, b) = run(Decay::None);
    assert_eq!(decayed, [4e-3, 4e-3, 2e-3, 2e-3]);
    assert_eq!(by_hand, decayed);
    assert_eq!(common::read_tensors(&a), common::read_tensors(&b), "the decay trains at the rate it reports");
    // Trained further after loading, the weights go on at the rate of their third epoch.
    let loaded = Lab::from_safetensors(&a).unwrap();
    assert_eq!(loaded.metadata().get("epochs").map(String::as_str), Some("2"));
    assert_eq!(loaded.trainer().current_learning_rate(), 4e-3 / 3.0);
}

#[test]
fn three_hundred_steps_lower_the_loss() {
    let data = &common::mnist().train;
    let mut lab = Lab::fresh(CFG, 1).unwrap();
    lab.set_dataset(data.clone()).unwrap();
    lab.trainer_mut().set_recipe(Recipe::Tutorial);
    assert_eq!((lab.trainer().batch_size(), lab.trainer().learning_rate()), (128, 1e-3));
    assert_eq!(lab.trainer().steps_per_epoch(), 469);
    let before = lab.save().unwrap();
    let mut losses = Vec::new();
    for i in 0..300 {
        let s = lab.train_step().unwrap();
        assert_eq!(s.step, i + 1);
        let p = vae_parts(&s);
        assert!(p.loss.is_finite() && p.bce > 0.0 && p.kl >= 0.0, "step {i}: {p:?}");
        assert!((p.loss - (p.bce + p.kl)).abs() <= 1e-3 * p.loss, "loss = bce + kl");
        losses.push(p);
    }
    let first = mean(&losses[..20]);
    let last = mean(&losses[280..]);
    let ratio = last / first;
    println!("training: mean loss of steps 1-20 {first:.3}, of steps 281-300 {last:.3}, ratio {ratio:.4}");
    println!("first step {:?}", losses[0]);
    println!("last step {:?}", losses[299]);
    // The untrained model sits near 784·ln 2 ≈ 543 per image.
    assert!((losses[0].loss - 543.0).abs() < 20.0, "first step's loss {:?}", losses[0]);
    // Measured: 343.2 → 141.2, a ratio of 0.41; a trainer that does not train stays near 1.
    assert!(ratio < 0.55, "loss fell only to {ratio:.3} of its start ({first:.2} → {last:.2})");
    assert!(last < 200.0, "after 300 steps the loss is still {last:.2}");
    let epochs = 300.0 * 128.0 / 60_000.0;
    assert!((lab.trainer().epochs() - epochs).abs() < 1e-9);
    let meta = lab.metadata();
    assert_eq!(meta.get("epochs").map(String::as_str), Some("0.64"));

    // The weights moved, and the model still evaluates finitely on held-out data.
    let after = lab.save().unwrap();
    assert!(before != after, "training did not change the saved weights");
    let test = lab.evaluate(&common::mnist().test.take(2000)).unwrap();
    println!("after 300 steps, loss on 2,000 test images {:.3}", test.loss);
    assert!(test.loss < 200.0 && test.loss > 60.0, "test loss {}", test.loss);
}

#[test]
fn training_steps_are_reproducible_from_the_seed() {
    let data = common::mnist().train.take(4096);
    let run = |seed: u64| {
        let mut lab = Lab::fresh(CFG, seed).unwrap();
        lab.set_dataset(data.clone()).unwrap();
        let losses: Vec<u32> = (0..5).map(|_| vae_parts(&lab.train_step().unwrap()).loss.to_bits()).collect();
        (losses, lab.save().unwrap())
    };
    let (a, wa) = run(42);
    let (b, wb) = run(42);
    let (c, _) = run(43);
    println!("seed 42 losses {:?}", a.iter().map(|&x| f32::from_bits(x)).collect::<Vec<_>>());
    assert_eq!(a, b, "same seed and data, different losses");
    assert!(wa == wb, "same seed and data, different weights after 5 steps");
    assert_ne!(a, c, "a different seed gives different losses");
}

#[test]
fn huge_learning_rate_diverges_without_touching_the_weights() {
    let data = common::mnist().train.take(8192);
    let mut lab = Lab::fresh(CFG, 5).unwrap();
    lab.set_dataset(data).unwrap();
    lab.trainer_mut().set_batch_size(128).unwrap();
    lab.trainer_mut().set_learning_rate(1.0).unwrap();
    let z: Vec<f32> = common::Rng::new(2).vec(20 * 4, -2.0, 2.0);
    let mut ok_steps = 0;
    let msg = loop {
        assert!(ok_steps < 300, "300 steps at learning rate 1.0 did not diverge");
        let before = lab.save().unwrap();
        let sample_before = lab.sample(&z, None);
        match lab.train_step() {
            Ok(s) => {
                ok_steps += 1;
                assert_eq!(s.step, ok_steps);
            }
            Err(e) => {
                let msg = common::chain(&e);
                let after = lab.save().unwrap();
                assert!(before == after, "the failing step changed the saved file");
                assert_eq!(lab.trainer().steps(), ok_steps, "a failed step is not counted");
                // sample() still works, and gives what it gave before the failing step.
                let s = lab.sample(&z, None).unwrap();
                assert!(s.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
                if let Ok(prev) = sample_before {
                    assert_eq!(bits(&prev), bits(&s));
                }
                break msg;
            }
        }
    };
    println!("learning rate 1.0 diverged after {ok_steps} good steps: {msg}");
    assert!(msg.contains("diverged"), "{msg}");
    assert!(msg.contains("weights were not changed"), "{msg}");
    // Lowering the rate does not undo the damage, but every further step is still checked:
    // it either succeeds with a finite loss or reports divergence again.
    lab.trainer_mut().set_learning_rate(2e-3).unwrap();
    match lab.train_step() {
        Ok(s) => assert!(vae_parts(&s).loss.is_finite()),
        Err(e) => {
            expect_err::<()>(Err(e), &["diverged"]);
        }
    }
}

/// A step that diverges is not the end: `recover` goes back to the last good copy (taken every
/// sync interval), to the same place in the shuffle, at half the learning rate, a few times a run.
#[test]
fn a_diverged_run_rolls_back_to_the_last_good_weights_at_half_the_rate() {
    let mut lab = Lab::fresh(CFG, 5).unwrap();
    lab.set_dataset(common::mnist().train.take(8192)).unwrap();
    lab.trainer_mut().set_batch_size(128).unwrap();
    lab.trainer_mut().set_learning_rate(1.0).unwrap();
    lab.trainer_mut().set_sync_interval(10).unwrap();
    assert_eq!(lab.trainer().max_recoveries(), 4, "on by default");
    // The weights file and each step's loss, as training went the first time.
    let mut saved = std::collections::HashMap::new();
    let mut losses = Vec::new();
    let diverged_after = loop {
        let steps = lab.trainer().steps();
        assert!(steps < 300, "300 steps at learning rate 1.0 did not diverge");
        if steps.is_multiple_of(10) {
            saved.insert(steps, lab.save().unwrap());
        }
        match lab.train_step() {
            Ok(s) => losses.push(vae_parts(&s).loss),
            Err(e) => {
                expect_err::<()>(Err(e), &["diverged"]);
                break steps;
            }
        }
    };
    let r = lab.recover().unwrap();
    println!("diverged at step {}; rolled back to {}: {r:?}", diverged_after + 1, r.resumed_at);
    assert_eq!(r.resumed_at, diverged_after - diverged_after % 10, "the last copy, taken every 10 steps");
    assert_eq!((r.learning_rate, r.retries_left), (0.5, 3));
    assert_eq!(lab.trainer().steps(), r.resumed_at);
    assert_eq!(lab.trainer().learning_rate(), 0.5);
    assert!(lab.save().unwrap() == saved[&r.resumed_at], "the weights (and the count in the file) are the copy's");
    // The step after the copy comes again: the same weights, minibatch and noise give its loss.
    let again = lab.train_step().unwrap();
    assert_eq!(again.step, r.resumed_at + 1);
    assert_eq!(vae_parts(&again).loss, losses[r.resumed_at as usize], "step {} repeated", again.step);

    // Each further divergence halves the rate again, until the rollbacks are spent.
    let mut rate = 0.5;
    let mut left = 3;
    for _ in 0..100 {
        if lab.train_step().is_ok() {
            continue;
        }
        if left == 0 {
            expect_err(lab.recover(), &["after 4 rollbacks", "training stops here"]);
            break;
        }
        let r = lab.recover().unwrap();
        rate /= 2.0;
        left -= 1;
        assert_eq!((r.learning_rate, r.retries_left), (rate, left));
    }
    println!("after the first rollback: learning rate {rate}, {left} rollbacks left, step {}", lab.trainer().steps());
    assert!(lab.trainer().steps() > r.resumed_at, "training went on after the rollback");

    // Off, a divergence is final.
    let mut lab = Lab::fresh(CFG, 5).unwrap();
    lab.set_dataset(common::mnist().train.take(1024)).unwrap();
    lab.trainer_mut().set_max_recoveries(0).unwrap();
    expect_err(lab.recover(), &["rolling back after a divergence is off"]);
    expect_err(lab.trainer_mut().set_max_recoveries(21), &["more than 20"]);
}

#[test]
fn epochs_keep_counting_across_a_new_dataset() {
    let mut lab = Lab::fresh(CFG, 5).unwrap();
    lab.trainer_mut().set_batch_size(128).unwrap();
    lab.set_dataset(common::mnist().train.take(512)).unwrap();
    for _ in 0..4 {
        lab.train_step().unwrap();
    }
    assert!((lab.trainer().epochs() - 1.0).abs() < 1e-12, "4 × 128 of 512 is one epoch");
    // Handing over another dataset neither forgets nor rescales the epoch already trained.
    lab.set_dataset(common::mnist().train.take(1024)).unwrap();
    assert!((lab.trainer().epochs() - 1.0).abs() < 1e-12, "epochs became {}", lab.trainer().epochs());
    lab.train_step().unwrap();
    assert!((lab.trainer().epochs() - 1.125).abs() < 1e-12, "epochs became {}", lab.trainer().epochs());
    assert_eq!(lab.metadata().get("epochs").map(String::as_str), Some("1.125"));
}

#[test]
fn evaluating_an_empty_dataset_is_an_error() {
    let lab = Lab::fresh(CFG, 5).unwrap();
    expect_err(lab.evaluate(&common::mnist().test.take(0)), &["empty dataset"]);
}

/// The averaged generator (the fast recipe's, for GANs): what sampling and saving read is each
/// step's weights folded into a moving average, d = min(0.999, (1 + t)/(10 + t)), recomputed here
/// from the trained weights step by step; the discriminator and what training goes on from stay
/// the trained weights. Off (the tutorials'), the file holds the trained generator itself.
#[test]
fn a_gans_samples_and_file_come_from_its_generator_averaged_over_the_steps() {
    use latent_lab::backend::HostBackend;
    use latent_lab::cpu::CpuBackend;
    use std::collections::HashMap;
    let cfg = ModelConfig { hidden: 32, ..Kind::Cgan.default_config() };
    let saved = |lab: &Lab| -> HashMap<String, Vec<f32>> {
        let tensors = candle_core::safetensors::load_buffer(&lab.save().unwrap(), &candle_core::Device::Cpu).unwrap();
        tensors.into_iter().map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap())).collect()
    };
    let mut lab = Lab::fresh(cfg, 3).unwrap();
    lab.set_dataset(common::mnist().train.take(640)).unwrap();
    assert!(lab.trainer().settings().average);
    let mut want: HashMap<String, Vec<f32>> = lab.trainer().cpu().snapshot().unwrap().params;
    for t in 1..=30u64 {
        lab.train_step().unwrap();
        let d = 0.999f64.min((1.0 + t as f64) / (10.0 + t as f64)) as f32;
        for (name, w) in lab.trainer().cpu().snapshot().unwrap().params {
            if name.starts_with("generator.") {
                want.get_mut(&name).unwrap().iter_mut().zip(&w).for_each(|(a, &w)| *a = d * *a + (1.0 - d) * w);
            }
        }
    }
    let trained = lab.trainer().cpu().snapshot().unwrap().params;
    let file = saved(&lab);
    for (name, w) in &trained {
        let got = &file[name];
        if name.starts_with("generator.") {
            let worst = got.iter().zip(&want[name]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let apart = got.iter().zip(w).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-6, "{name}: the saved generator is off the average by {worst}");
            assert!(apart > 1e-3, "{name}: the saved generator is the trained one ({apart} apart)");
        } else {
            assert_eq!(got, w, "{name}: the discriminator is saved as trained");
        }
    }
    // The first digits the page draws (the generator file) are the average's too.
    let z = vec![0.3f32; cfg.latent];
    let from_file = Lab::from_safetensors(&lab.save().unwrap()).unwrap();
    assert_eq!(lab.sample(&z, Some(&[4])).unwrap(), from_file.sample(&z, Some(&[4])).unwrap());
    // Off: the file's generator is the trained one.
    lab.trainer_mut().set_average(false).unwrap();
    let file = saved(&lab);
    assert_eq!(file["generator.fc1.weight"], trained["generator.fc1.weight"]);
    expect_err(Lab::fresh(Kind::Vae.default_config(), 1).unwrap().trainer_mut().set_average(true), &["only a GAN's generator is averaged"]);

    // Weights copied out of a device every k steps count as k steps of those weights: d^k.
    let p = latent_lab::model::init_params(&cfg, 5, &candle_core::Device::Cpu).unwrap();
    let mut cpu = CpuBackend::new(cfg, &p, candle_core::Device::Cpu).unwrap();
    assert!(cpu.set_generator_average(true));
    let mut copy = cpu.snapshot().unwrap();
    let before = copy.params["generator.fc2.bias"].clone();
    copy.params.get_mut("generator.fc2.bias").unwrap().iter_mut().for_each(|b| *b += 1.0);
    copy.optimizer.t = 50;
    cpu.restore(&copy).unwrap();
    cpu.publish().unwrap();
    let keep = (51.0f64 / 60.0).powi(50) as f32;
    let published = p.data().lock().unwrap()["generator.fc2.bias"].as_tensor().to_vec1::<f32>().unwrap();
    for (i, (&got, &b)) in published.iter().zip(&before).enumerate() {
        let want = keep * b + (1.0 - keep) * (b + 1.0);
        assert!((got - want).abs() <= 1e-6, "bias {i}: {got}, want {want}");
    }
    // A device starts from the trained weights, not the average.
    cpu.publish_trained().unwrap();
    let trained = p.data().lock().unwrap()["generator.fc2.bias"].as_tensor().to_vec1::<f32>().unwrap();
    assert_eq!(trained, copy.params["generator.fc2.bias"]);
    // A rollback (the weights of an earlier step) starts the average again from them: the steps
    // it throws away, which led to a divergence, leave nothing in what is sampled.
    let mut back = copy.clone();
    back.optimizer.t = 20;
    back.params.get_mut("generator.fc2.bias").unwrap().iter_mut().for_each(|b| *b -= 3.0);
    cpu.restore(&back).unwrap();
    cpu.publish().unwrap();
    let published = p.data().lock().unwrap()["generator.fc2.bias"].as_tensor().to_vec1::<f32>().unwrap();
    assert_eq!(published, back.params["generator.fc2.bias"]);
}
