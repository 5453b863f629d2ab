//! The WebGPU backend against the CPU one, natively on Vulkan (Mesa's lavapipe): the same weights,
//! minibatch, noise and dropout masks give the same losses, gradients, Adam updates and loss curves,
//! for every model kind. Also: a lost device, diverging steps and sampling on the GPU.
//!
//! Full size only where size matters: one step of each kind at its shipped size (parity of every
//! gradient), sampling, and Adam. The many-step curves, the refusal and the lost device run small
//! (hidden 32 to 64, batches of 16 to 32) with a short sync interval; single kernels are checked
//! at odd sizes in tests/gpu_kernels.rs.
use crate::common;

use crate::common::gpu;
use crate::common::parity;

use latent_lab::adam::AdamConfig;
use latent_lab::config::{Decay, Recipe};
use latent_lab::gpu::{DeviceLost, Gpu, GpuBackend};
use latent_lab::lab::Lab;
use latent_lab::mnist::Dataset;
use latent_lab::model::{init_params, Kind, ModelConfig};
use latent_lab::train::{Batch, CpuBackend, Snapshot, StepLosses, TrainBackend, Trainer};
use candle_core::Device;
use candle_nn::VarMap;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::collections::HashMap;

const SEED: u64 = 7;


/// A fresh GPU device of our own, for the test that destroys it.
fn own_gpu() -> Gpu {
    pollster::block_on(Gpu::request()).expect("a Vulkan device")
}

fn params(cfg: &ModelConfig) -> VarMap {
    init_params(cfg, SEED, &Device::Cpu).unwrap()
}

fn backends(kind: Kind) -> (ModelConfig, CpuBackend, GpuBackend) {
    let cfg = kind.default_config();
    let mut cpu = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
    cpu.record_gradients = true;
    let gpu = GpuBackend::new(gpu(), cfg, &params(&cfg), None).unwrap();
    (cfg, cpu, gpu)
}

/// One step through the seam: submit, wait for the readback, finish.
fn step(backend: &mut dyn TrainBackend, batch: &Batch, lr: f64) -> anyhow::Result<StepLosses> {
    let pending = backend.submit(batch, lr)?;
    let readback = pollster::block_on(pending.read())?;
    backend.finish(readback)
}

fn snapshot(backend: &mut dyn TrainBackend) -> Snapshot {
    pollster::block_on(backend.snapshot_now().unwrap().0).unwrap()
}

fn data() -> Dataset {
    common::mnist().train.take(4096)
}

fn read(p: latent_lab::gpu::PendingCopy) -> Vec<f32> {
    pollster::block_on(p.read()).unwrap()
}

/// One step from the same weights, minibatch and noise: losses within 1e-4 relative, and every
/// gradient tensor within 1e-3 of that tensor's largest absolute value; a cGAN's discriminator at
/// the fast recipe's label gain.
fn one_step_parity(kind: Kind) {
    let (cfg, mut cpu, mut gpu) = backends(kind);
    let data = data();
    gpu.set_dataset(&data).unwrap();
    let (indices, noise) = parity::clear_minibatch(&cfg, &data, 128);
    let draws = parity::gan_draws(&cfg, &data, &indices);
    let label_gain = Recipe::Fast.settings(kind).label_gain as f32;
    let adam = AdamConfig::for_settings(kind, &Recipe::Fast.settings(kind));
    let batch = Batch { data: &data, indices: &indices, noise: &noise, gan: draws.as_ref(), vae: Default::default(), label_gain, adam };
    let lr = Recipe::Tutorial.settings(cfg.kind).learning_rate;
    let c = step(&mut cpu, &batch, lr).unwrap();
    let g = step(&mut gpu, &batch, lr).unwrap();
    for (i, (a, b)) in parity::headline_parts(&c).iter().zip(parity::headline_parts(&g)).enumerate() {
        parity::assert_close_rel(&format!("{} loss part {i}", kind.name()), *a, b, 1e-4);
    }
    let gpu_grads = pollster::block_on(gpu.read_gradients()).unwrap();
    parity::assert_gradients_close(kind, &cpu.last_gradients, &gpu_grads, "webgpu");
}

#[test]
fn one_step_parity_vae() {
    one_step_parity(Kind::Vae);
}

/// The VAE objective may change from one step to the next (the page's KL weight moves while it
/// trains): three steps in a row at L2 with β = 0.25, L1 with β = 4 and BCE with β = 1 agree
/// with the CPU engine step by step, losses and gradients, so each step ran its own objective.
#[test]
fn each_step_minimises_its_own_objective() {
    use latent_lab::config::{Recon, VaeObjective};
    let (cfg, mut cpu, mut gpu) = backends(Kind::Cvae);
    let data = data();
    gpu.set_dataset(&data).unwrap();
    let (indices, noise) = parity::clear_minibatch(&cfg, &data, 64);
    let lr = Recipe::Tutorial.settings(cfg.kind).learning_rate;
    for (recon, kl_weight) in [(Recon::L2, 0.25), (Recon::L1, 4.0), (Recon::Bce, 1.0)] {
        let adam = AdamConfig::for_kind(cfg.kind);
        let batch = Batch { data: &data, indices: &indices, noise: &noise, gan: None, vae: VaeObjective { recon, kl_weight }, label_gain: 1.0, adam };
        let c = step(&mut cpu, &batch, lr).unwrap();
        let g = step(&mut gpu, &batch, lr).unwrap();
        for (i, (a, b)) in parity::headline_parts(&c).iter().zip(parity::headline_parts(&g)).enumerate() {
            parity::assert_close_rel(&format!("{} β {kl_weight}: loss part {i}", recon.name()), *a, b, 1e-4);
        }
        let gpu_grads = pollster::block_on(gpu.read_gradients()).unwrap();
        parity::assert_gradients_close(Kind::Cvae, &cpu.last_gradients, &gpu_grads, "webgpu");
    }
}

/// Each step takes Adam's constants from its batch (the recipe's β2): two steps at β2 0.6 and
/// then 0.95 leave the GPU's moments as the CPU engine's, and v after the first is (1 − 0.6)·g².
#[test]
fn each_step_takes_its_own_adam_constants() {
    let kind = Kind::Gan;
    let cfg = ModelConfig { hidden: 32, ..kind.default_config() };
    let mut cpu = CpuBackend::new(cfg, &params(&cfg), Device::Cpu).unwrap();
    let mut gpu = GpuBackend::new(gpu(), cfg, &params(&cfg), None).unwrap();
    let data = data();
    gpu.set_dataset(&data).unwrap();
    let (indices, noise) = parity::clear_minibatch(&cfg, &data, 32);
    let draws = parity::gan_draws(&cfg, &data, &indices);
    let lr = Recipe::Tutorial.settings(kind).learning_rate;
    for (k, beta2) in [0.6, 0.95].into_iter().enumerate() {
        let adam = AdamConfig { beta2, ..AdamConfig::for_kind(kind) };
        let batch = Batch { data: &data, indices: &indices, noise: &noise, gan: draws.as_ref(), vae: Default::default(), label_gain: 1.0, adam };
        step(&mut cpu, &batch, lr).unwrap();
        step(&mut gpu, &batch, lr).unwrap();
        let grads = pollster::block_on(gpu.read_gradients()).unwrap();
        let (c, g) = (snapshot(&mut cpu), snapshot(&mut gpu));
        for (name, (cm, cv)) in &c.optimizer.moments {
            let (gm, gv) = &g.optimizer.moments[name];
            for (which, (a, b)) in [(cm, gm), (cv, gv)].into_iter().enumerate() {
                let largest = a.iter().fold(0f32, |m, x| m.max(x.abs()));
                let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
                assert!(worst <= 1e-3 * largest, "step {k} at β2 {beta2}: {name}'s moment {which} differs by {worst} (largest {largest})");
            }
            if k == 0 {
                let g_max = grads[name].iter().fold(0f32, |m, x| m.max(x.abs()));
                for (i, (&v, &dg)) in gv.iter().zip(&grads[name]).enumerate() {
                    assert!((v - 0.4 * dg * dg).abs() <= 1e-5 * g_max * g_max, "{name}[{i}]: v {v} on the GPU for g {dg}, not (1 − 0.6)·g²");
                }
            }
        }
    }
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

/// Fed the same gradients, the two Adam updates agree within 1e-6 (three steps, so the bias
/// corrections of t = 1, 2, 3 are all covered).
#[test]
fn adam_updates_agree() {
    for kind in [Kind::Vae, Kind::Gan] {
        let (cfg, _, mut gpu) = backends(kind);
        let cpu_params = params(&cfg);
        let mut cpu = CpuBackend::new(cfg, &cpu_params, Device::Cpu).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..3 {
            let grads: HashMap<String, Vec<f32>> = cfg
                .param_shapes()
                .into_iter()
                .map(|(name, shape)| {
                    let n: usize = shape.iter().product();
                    (name, (0..n).map(|_| rng.random_range(-0.05f32..0.05)).collect())
                })
                .collect();
            cpu.apply_gradients(&grads, 1e-3).unwrap();
            gpu.apply_gradients(&grads, 1e-3).unwrap();
        }
        let synced = snapshot(&mut gpu);
        assert_eq!(synced.optimizer.t, 3);
        let gpu_params = &synced.params;
        let cpu_state = cpu.optimizer_state().unwrap();
        let gpu_m = &synced.optimizer.moments;
        let data = cpu_params.data().lock().unwrap();
        let initial = params(&cfg);
        let initial = initial.data().lock().unwrap();
        for (name, var) in data.iter() {
            let c: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let start: Vec<f32> = initial[name].as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let moved = c.iter().zip(&start).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(moved > 1e-4, "{name}: Adam did not move the weights ({moved})");
            let worst = c.iter().zip(&gpu_params[name]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= 1e-6, "{} {name}: Adam updates differ by {worst}", kind.name());
            let m_worst = cpu_state.moments[name].0.iter().zip(&gpu_m[name].0).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(m_worst <= 1e-6, "{name}: Adam's first moments differ by {m_worst}");
        }
    }
}

/// 80 steps through the same trainer (same shuffles, noise and dropout) on each backend: the loss
/// curves, as means over each 20 steps, agree within 2%; and the GPU copies its weights out every
/// 10 steps on the way (the sync interval), the first copy the CPU's weights at step 10 (later
/// ones drift apart as training amplifies rounding). Two epochs of 40 steps, so the second trains at
/// half the rate on both (the fast recipe's decay). At hidden width 32 and batch 16: lavapipe runs
/// the shipped sizes at about a second a step.
fn curves_agree(kind: Kind) {
    let cfg = ModelConfig { hidden: 32, ..kind.default_config() };
    let steps = 80;
    let run = |on_gpu: bool| -> (Vec<f32>, Vec<Snapshot>) {
        let p = params(&cfg);
        let mut t = Trainer::new(Box::new(CpuBackend::new(cfg, &p, Device::Cpu).unwrap()), SEED);
        t.set_batch_size(16).unwrap();
        t.set_sync_interval(10).unwrap();
        t.set_dataset(common::mnist().train.take(640)).unwrap();
        assert_eq!(t.settings().decay, Decay::InverseEpoch);
        if on_gpu {
            t.use_device(Box::new(GpuBackend::new(gpu(), cfg, &p, None).unwrap())).unwrap();
        }
        let mut copies = Vec::new();
        let curve = (0..steps)
            .map(|_| {
                let s = t.step().unwrap();
                // On the GPU, the CPU side takes the GPU's weights at every 10th step, and only then.
                if on_gpu {
                    assert_eq!(t.unsynced_steps() == 0, s.step.is_multiple_of(10), "step {}: weights copied out", s.step);
                }
                if s.step.is_multiple_of(10) {
                    copies.push(t.cpu().snapshot().unwrap());
                }
                s.losses.headline()
            })
            .collect();
        (curve, copies)
    };
    let (cpu, cpu_copies) = run(false);
    let (gpu, synced) = run(true);
    let means = |c: &[f32]| -> Vec<f32> { c.chunks(20).map(|w| w.iter().sum::<f32>() / w.len() as f32).collect() };
    let (cm, gm) = (means(&cpu), means(&gpu));
    eprintln!("{}: cpu {cm:?}\n{}: webgpu {gm:?}", kind.name(), kind.name());
    for (i, (a, b)) in cm.iter().zip(&gm).enumerate() {
        parity::assert_close_rel(&format!("{} steps {}..{}", kind.name(), i * 20 + 1, i * 20 + 20), *a, *b, 0.02);
    }
    if !kind.is_gan() {
        assert!(gm[gm.len() - 1] < 0.8 * gm[0], "{}: the GPU's loss did not fall: {gm:?}", kind.name());
    }
    // A copy every 10 steps, each at its step, the last one after the last step.
    let ts: Vec<u64> = synced.iter().map(|s| s.optimizer.t).collect();
    assert_eq!(ts, (1..=steps / 10).map(|i| i * 10).collect::<Vec<u64>>(), "{}: the weights copies", kind.name());
    let (first, cpu_first) = (&synced[0], &cpu_copies[0]);
    assert_eq!(first.params.len(), cpu_first.params.len());
    for (name, cv) in &cpu_first.params {
        let gv = &first.params[name];
        let scale = cv.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = cv.iter().zip(gv).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-3 * scale, "{} {name} at step 10: the GPU's copy differs by {worst} (largest |w| {scale})", kind.name());
        let (cm, gm) = (&cpu_first.optimizer.moments[name].0, &first.optimizer.moments[name].0);
        let m_scale = cm.iter().fold(0f32, |m, v| m.max(v.abs()));
        let m_worst = cm.iter().zip(gm).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(m_worst <= 1e-2 * m_scale, "{} {name} at step 10: Adam's m differs by {m_worst} (largest |m| {m_scale})", kind.name());
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
fn curves_agree_gan() {
    curves_agree(Kind::Gan);
}

#[test]
fn curves_agree_cgan() {
    curves_agree(Kind::Cgan);
}

/// The GPU decodes the same images as the CPU from the same weights (every kind it trains).
#[test]
fn sampling_matches_the_cpu() {
    for kind in Kind::ALL.into_iter().filter(|&k| k != Kind::Ae && !k.is_convolutional()) {
        let cfg = kind.default_config();
        let lab = Lab::fresh(cfg, SEED).unwrap();
        let mut gpu = GpuBackend::new(gpu(), cfg, &params(&cfg), None).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let z: Vec<f32> = (0..100 * cfg.latent).map(|_| rng.sample(StandardNormal)).collect();
        let labels: Option<Vec<u8>> = kind.is_conditional().then(|| (0..100).map(|i| (i % 10) as u8).collect());
        let cpu_images = lab.sample(&z, labels.as_deref()).unwrap();
        let gpu_images = read(gpu.sample(&z, labels.as_deref()).unwrap());
        assert_eq!(gpu_images.len(), 100 * 784);
        let worst = cpu_images.iter().zip(&gpu_images).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "{}: GPU samples differ from the CPU's by {worst}", kind.name());
    }
}

/// The autoencoder has no WGSL step: the backend refuses it by name, and the model trains on.
#[test]
fn the_autoencoder_trains_on_the_cpu_and_the_gpu_backend_says_so() {
    let cfg = Kind::Ae.default_config();
    let Err(e) = GpuBackend::new(gpu(), cfg, &params(&cfg), None) else { panic!("the GPU backend took an autoencoder") };
    assert!(format!("{e:#}").contains("an `ae` model trains on the CPU"), "{e:#}");
    let mut lab = Lab::fresh(cfg, SEED).unwrap();
    let Err(e) = lab.use_gpu(gpu()) else { panic!("an autoencoder moved to WebGPU") };
    assert!(format!("{e:#}").contains("trains on the CPU"), "{e:#}");
    assert_eq!(lab.backend_name(), "cpu");
}

/// A step whose loss is not finite is refused on the GPU and leaves the weights as they were;
/// so does every step queued behind it.
#[test]
fn a_diverging_step_leaves_the_weights() {
    let cfg = ModelConfig { hidden: 32, ..Kind::Vae.default_config() };
    let mut gpu = GpuBackend::new(gpu(), cfg, &params(&cfg), None).unwrap();
    let data = data();
    gpu.set_dataset(&data).unwrap();
    let before = snapshot(&mut gpu);
    let indices: Vec<usize> = (0..64).collect();
    let mut noise = vec![0f32; 64 * cfg.latent];
    noise[5] = f32::INFINITY;
    let bad = Batch { data: &data, indices: &indices, noise: &noise, gan: None, vae: Default::default(), label_gain: 1.0, adam: AdamConfig::for_kind(cfg.kind) };
    let good_noise = vec![0.1f32; 64 * cfg.latent];
    let good = Batch { data: &data, indices: &indices, noise: &good_noise, gan: None, vae: Default::default(), label_gain: 1.0, adam: AdamConfig::for_kind(cfg.kind) };
    let first = gpu.submit(&bad, 1e-3).unwrap();
    let second = gpu.submit(&good, 1e-3).unwrap();
    let e = gpu.finish(pollster::block_on(first.read()).unwrap()).unwrap_err();
    assert!(format!("{e:#}").contains("training diverged: the loss is"), "{e:#}");
    let e = gpu.finish(pollster::block_on(second.read()).unwrap()).unwrap_err();
    assert!(format!("{e:#}").contains("an earlier step"), "{e:#}");
    let after = snapshot(&mut gpu);
    assert_eq!(before.params, after.params, "a refused step changed the weights");
    assert_eq!(after.optimizer.t, 0);
    // Training resumes after the refusal.
    let l = step(&mut gpu, &good, 1e-3).unwrap();
    assert!(l.headline().is_finite());
    let resumed = snapshot(&mut gpu);
    assert_eq!(resumed.optimizer.t, 1);
    assert_ne!(before.params, resumed.params);
}

/// The device is lost mid-training: the lab carries on on the CPU from the last weights read back,
/// which are exactly the GPU's weights at that sync. Small (hidden 32, batches of 16), syncing
/// every 5 steps.
#[test]
fn a_lost_device_falls_back_to_the_cpu() {
    let cfg = ModelConfig { hidden: 32, ..Kind::Vae.default_config() };
    let mut lab = Lab::fresh(cfg, SEED).unwrap();
    lab.set_dataset(common::mnist().train.take(1024)).unwrap();
    lab.trainer_mut().set_batch_size(16).unwrap();
    let sync_every = 5;
    lab.set_sync_interval(sync_every).unwrap();
    let gpu = own_gpu();
    lab.use_gpu(gpu.clone()).unwrap();
    assert_eq!(lab.backend_name(), "webgpu");
    // Two steps past the sync: those are what the lost device takes with it.
    let gpu_losses: Vec<f32> = (0..sync_every + 2)
        .map(|_| {
            let pending = lab.submit_step().unwrap();
            let r = pollster::block_on(pending.read()).unwrap();
            lab.finish_step(r).unwrap().losses.headline()
        })
        .collect();
    // The CPU side holds the weights the GPU copied out at the sync.
    let synced = lab.trainer().cpu().snapshot().unwrap();
    assert_eq!(synced.optimizer.t, sync_every);
    // Two more steps are queued when the device goes: the first one's readback says so.
    let (first, second) = (lab.submit_step().unwrap(), lab.submit_step().unwrap());
    gpu.lose_device();
    let e = lab.finish_step(pollster::block_on(first.read()).unwrap()).unwrap_err();
    assert!(e.chain().any(|c| c.is::<DeviceLost>()), "not a DeviceLost error: {e:#}");
    assert!(format!("{e:#}").contains("device was lost"), "{e:#}");
    let report = lab.fall_back_to_cpu().unwrap();
    assert_eq!(report.resumed_at, sync_every);
    assert_eq!(report.lost_steps, 4, "the two steps after the sync, and the two queued");
    // The other queued step's readback, arriving after the fallback, is refused and changes nothing.
    let e = lab.finish_step(pollster::block_on(second.read()).unwrap()).unwrap_err();
    assert!(format!("{e:#}").contains("submitted before training moved to cpu"), "{e:#}");
    assert_eq!(lab.backend_name(), "cpu");
    assert_eq!(lab.trainer().steps(), sync_every);
    // The CPU holds the synced weights bit for bit.
    let saved = latent_lab::checkpoint::load(&lab.save().unwrap(), &Device::Cpu).unwrap();
    let data = saved.params.data().lock().unwrap();
    assert_eq!(data.len(), synced.params.len());
    for (name, v) in &synced.params {
        let got: Vec<f32> = data[name].as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(&got, v, "{name} after the fallback");
    }
    drop(data);
    // And training goes on there, repeating the lost steps on the same minibatches and noise from
    // the same weights: the CPU's loss for the next step is the one the GPU reported for it.
    let s = lab.train_step().unwrap();
    assert_eq!(s.step, sync_every + 1);
    let (cpu, gpu) = (s.losses.headline(), gpu_losses[sync_every as usize]);
    assert!((cpu - gpu).abs() <= 1e-4 * gpu.abs(), "step {}: CPU loss {cpu}, GPU loss {gpu}", s.step);
}

/// Weights trained on WebGPU are saved through the CPU side as the same safetensors: the file
/// loads on either backend, and both decode it alike.
#[test]
fn files_move_between_backends() {
    let cfg = ModelConfig { hidden: 32, ..Kind::Cgan.default_config() };
    let mut lab = Lab::fresh(cfg, SEED).unwrap();
    lab.set_dataset(common::mnist().train.take(1024)).unwrap();
    lab.trainer_mut().set_batch_size(32).unwrap();
    lab.use_gpu(gpu()).unwrap();
    for _ in 0..3 {
        let pending = lab.submit_step().unwrap();
        let r = pollster::block_on(pending.read()).unwrap();
        lab.finish_step(r).unwrap();
    }
    let e = lab.save().unwrap_err();
    assert!(format!("{e:#}").contains("3 steps trained on WebGPU are not read back yet"), "{e:#}");
    let synced = pollster::block_on(lab.begin_sync().unwrap().expect("on the GPU").read()).unwrap();
    assert_eq!(synced.optimizer.t, 3);
    lab.finish_sync(synced).unwrap();
    let bytes = lab.save().unwrap();
    assert!(lab.metadata()["epochs"].parse::<f64>().unwrap() > 0.0);

    let fresh = Lab::fresh(cfg, SEED).unwrap();
    let z: Vec<f32> = (0..10 * cfg.latent).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let labels: Vec<u8> = (0..10).collect();
    let on_cpu = Lab::from_safetensors(&bytes).unwrap();
    let cpu_images = on_cpu.sample(&z, Some(&labels)).unwrap();
    assert_ne!(cpu_images, fresh.sample(&z, Some(&labels)).unwrap(), "the file holds the trained weights");
    let mut on_gpu = Lab::from_safetensors(&bytes).unwrap();
    // A GAN's averaged generator decodes on the CPU; the device decodes the trained weights.
    on_gpu.trainer_mut().set_average(false).unwrap();
    on_gpu.use_gpu(gpu()).unwrap();
    let gpu_images = read(on_gpu.sample_on_gpu(&z, Some(&labels)).unwrap().expect("on the GPU"));
    let worst = cpu_images.iter().zip(&gpu_images).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "the same file decodes differently on the two backends: {worst}");
}

/// A GAN with its generator averaged (the fast recipe's) trains on the device as ever; the CPU
/// folds each copy out into the average, so what is sampled and saved is the average, decoded on
/// the CPU (the device holds only the trained weights); without the average the device decodes.
#[test]
fn an_averaged_gan_on_the_gpu_samples_its_average_from_each_copy_out() {
    let cfg = ModelConfig { hidden: 32, ..Kind::Gan.default_config() };
    let mut lab = Lab::fresh(cfg, 4).unwrap();
    lab.set_dataset(common::mnist().train.take(640)).unwrap();
    lab.use_gpu(gpu()).unwrap();
    lab.set_sync_interval(10).unwrap();
    for _ in 0..20 {
        lab.train_step().unwrap();
    }
    assert_eq!(lab.trainer().unsynced_steps(), 0);
    let z = vec![0.5f32; cfg.latent];
    assert!(lab.sample_on_gpu(&z, None).unwrap().is_none(), "an averaged generator decodes on the CPU");
    let trained = lab.trainer().cpu().snapshot().unwrap().params;
    let tensors = candle_core::safetensors::load_buffer(&lab.save().unwrap(), &Device::Cpu).unwrap();
    let saved = tensors["generator.fc3.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let apart = saved.iter().zip(&trained["generator.fc3.weight"]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(apart > 1e-4, "the saved generator is the trained one ({apart} apart)");
    let saved_d = tensors["discriminator.fc3.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(saved_d, trained["discriminator.fc3.weight"]);
    lab.trainer_mut().set_average(false).unwrap();
    let on_gpu = read(lab.sample_on_gpu(&z, None).unwrap().expect("the device decodes the trained generator"));
    let on_cpu = lab.sample(&z, None).unwrap();
    let worst = on_gpu.iter().zip(&on_cpu).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "the device's and the CPU's trained generator differ by {worst}");
}
