//! A run saved and resumed (`Lab::save_run`, `Lab::resume`; the page's autosave) goes on exactly
//! where it stood: the same steps, minibatches and random numbers, to the bit, for every kind.

use crate::common::{self, bits, expect_err};
use latent_lab::config::{Family, Kind, Recon, VaeObjective};
use latent_lab::lab::Lab;
use latent_lab::mnist::Dataset;
use latent_lab::resume;
use latent_lab::train::{StepLosses, StepStats};
use rand::{RngCore, SeedableRng};

/// Every loss part of a step, as bits.
fn loss_bits(s: &StepStats) -> Vec<u32> {
    match s.losses {
        StepLosses::Vae(p) => bits(&[p.loss, p.bce, p.kl]),
        StepLosses::Gan(g) => bits(&[g.d_loss, g.g_loss, g.d_real, g.d_fake]),
    }
}

fn steps(lab: &mut Lab, n: usize) -> Vec<(u64, Vec<u32>)> {
    (0..n).map(|_| lab.train_step().unwrap()).map(|s| (s.step, loss_bits(&s))).collect()
}

/// 200 digits: at batch 32, an epoch is 7 steps, so the runs below cross epochs and reshuffle.
fn data() -> Dataset {
    common::mnist().train.take(200)
}

#[test]
fn a_resumed_run_takes_the_steps_the_saved_one_would_have_taken_for_every_kind() {
    for kind in Kind::ALL {
        let mut cfg = kind.default_config();
        cfg.hidden = 48;
        let mut lab = Lab::fresh(cfg, 3).unwrap();
        lab.set_dataset(data()).unwrap();
        lab.trainer_mut().set_max_recoveries(3).unwrap();
        lab.trainer_mut().set_learning_rate(1.5e-3).unwrap();
        // An objective other than the default, which the resumed steps must minimise too.
        match kind.family() {
            Family::Vae => lab.trainer_mut().set_objective(VaeObjective { recon: Recon::L2, kl_weight: 0.5 }).unwrap(),
            Family::Ae => lab.trainer_mut().set_objective(VaeObjective { recon: Recon::L1, kl_weight: 0.0 }).unwrap(),
            Family::Gan => {}
        }
        steps(&mut lab, 10); // into the second epoch
        let saved = lab.save_run().unwrap();
        let epochs_then = lab.metadata()["epochs"].clone();
        let on = steps(&mut lab, 12);

        let mut resumed = Lab::resume(&saved).unwrap();
        assert_eq!(resumed.trainer().steps(), 10, "{kind:?}");
        assert_eq!(resumed.trainer().settings(), lab.trainer().settings(), "{kind:?}");
        assert_eq!(resumed.trainer().max_recoveries(), 3);
        assert_eq!(resumed.trainer().objective(), lab.trainer().objective(), "{kind:?}");
        resumed.set_dataset(data()).unwrap();
        assert_eq!(steps(&mut resumed, 12), on, "{kind:?}: the resumed steps differ");
        assert_eq!(on.first().map(|s| s.0), Some(11));
        // The weights, Adam's state and the metadata (epochs counted once) agree too.
        assert_eq!(resumed.save().unwrap(), lab.save().unwrap(), "{kind:?}");
        assert_eq!(resumed.save_run().unwrap(), lab.save_run().unwrap(), "{kind:?}");
        // A saved run is also a weights file: it loads as the model it holds, its epochs counted
        // and none of the trainer's entries carried into the model's metadata.
        let plain = Lab::from_safetensors(&saved).unwrap();
        assert_eq!(plain.config(), cfg);
        let meta = plain.metadata();
        assert_eq!(meta["epochs"], epochs_then, "{kind:?}");
        assert_eq!(epochs_then, "1.48", "{kind:?}: 7 steps an epoch, then 3 of 32 digits of 200");
        assert!(meta.keys().all(|k| !k.starts_with("trainer.") && !k.starts_with("lab.") && k != "training_state"), "{meta:?}");
    }
}

/// The trainer's streams are rand's `StdRng` by another name, so the shipped weights' documented
/// commands still write the same bytes.
#[test]
fn the_trainers_streams_draw_what_stdrng_draws() {
    for seed in [0u64, 1, 42, 0x6472_6f70] {
        let mut std_rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut chacha = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
        for _ in 0..1000 {
            assert_eq!(std_rng.next_u64(), chacha.next_u64(), "seed {seed}");
        }
    }
}

#[test]
fn a_run_resumed_on_other_digits_keeps_its_epochs_and_reshuffles() {
    let mut lab = Lab::fresh(Kind::Vae.default_config(), 1).unwrap();
    lab.set_dataset(data()).unwrap();
    steps(&mut lab, 3);
    let epochs = lab.trainer().epochs();
    let mut resumed = Lab::resume(&lab.save_run().unwrap()).unwrap();
    resumed.set_dataset(common::mnist().train.take(100)).unwrap();
    assert_eq!(resumed.trainer().epochs(), epochs);
    assert_eq!(resumed.train_step().unwrap().step, 4);
}

#[test]
fn a_damaged_or_wrong_file_is_refused_by_name() {
    let cfg = Kind::Gan.default_config();
    let mut lab = Lab::fresh(cfg, 2).unwrap();
    lab.set_dataset(data()).unwrap();
    steps(&mut lab, 2);
    let saved = lab.save_run().unwrap();

    expect_err(Lab::resume(&lab.save().unwrap()), &["this is a weights file, not a saved training run", "load it as a model"]);
    let decoder = lab.save_decoder(latent_lab::checkpoint::StoredDtype::F32).unwrap();
    expect_err(Lab::resume(&decoder), &["this is a weights file, not a saved training run"]);
    expect_err(Lab::resume(&saved[..saved.len() / 2]), &["not valid safetensors"]);

    // The header edited in place (same length): an unknown decay.
    let edited = replace(&saved, br#""trainer.decay":"inverse-epoch""#, br#""trainer.decay":"inverse-epocX""#);
    expect_err(Lab::resume(&edited), &["unknown learning-rate decay `inverse-epocX`"]);
    let edited = replace(&saved, br#""trainer.cursor":"64""#, br#""trainer.cursor":"6x""#);
    expect_err(Lab::resume(&edited), &["`trainer.cursor` (6x) is not a number"]);

    // Written whole with one part wrong: the shuffle, the place in it, Adam's second moment.
    let snapshot = lab.trainer().cpu().snapshot().unwrap();
    let meta = latent_lab::checkpoint::Metadata::new();
    let mut state = lab.trainer().state().unwrap();
    state.order[0] = state.order[1];
    expect_err(Lab::resume(&resume::write(&cfg, &snapshot, &meta, &state, 0.0, None).unwrap()), &["the epoch's shuffle is not an order of 0..200"]);
    let mut state = lab.trainer().state().unwrap();
    state.cursor = 201;
    expect_err(Lab::resume(&resume::write(&cfg, &snapshot, &meta, &state, 0.0, None).unwrap()), &["the place in the epoch (201) is past its 200 examples"]);
    let mut bad = lab.trainer().cpu().snapshot().unwrap();
    bad.optimizer.moments.get_mut("generator.fc1.bias").unwrap().1[3] = -1.0;
    let state = lab.trainer().state().unwrap();
    expect_err(
        Lab::resume(&resume::write(&cfg, &bad, &meta, &state, 0.0, None).unwrap()),
        &["Adam's `exp_avg_sq.generator.fc1.bias` holds a negative second moment (-1) at element 3"],
    );
}

/// Adam's β2 goes with a saved run (the fast VAE recipe's 0.99); a run saved before it was a
/// setting trained at PyTorch's 0.999, and one out of range is refused by name.
#[test]
fn a_saved_run_keeps_adams_beta2() {
    let mut lab = Lab::fresh(Kind::Vae.default_config(), 2).unwrap();
    lab.set_dataset(data()).unwrap();
    steps(&mut lab, 2);
    assert_eq!(lab.trainer().settings().adam_beta2, 0.99);
    let saved = lab.save_run().unwrap();
    assert_eq!(Lab::resume(&saved).unwrap().trainer().settings().adam_beta2, 0.99);
    // The header edited in place: the key renamed, as a run written before it had none.
    let older = replace(&saved, br#""trainer.adam_beta2":"#, br#""trainer.adam_betaX":"#);
    assert_eq!(Lab::resume(&older).unwrap().trainer().settings().adam_beta2, 0.999);
    let edited = replace(&saved, br#""trainer.adam_beta2":"0.99""#, br#""trainer.adam_beta2":"1.99""#);
    expect_err(Lab::resume(&edited), &["Adam's β2 1.99 is outside [0.5, 1)"]);
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(from)));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}
