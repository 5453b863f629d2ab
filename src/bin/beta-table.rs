//! The KL weight's trade-off, measured: trains a fresh VAE at each β and prints the README's β
//! table.
//!
//!     cargo run --release --bin beta-table -- --epochs 10 --lr 0.002 --beta2 0.999   (the README's table)
//!
//! Options: --betas LIST (0.5,1,2,4), --epochs F (10) or --steps N (a budget of steps, what the
//! test uses), --recon bce|l2|l1 (bce: the loss trained on), --recipe, --batch, --lr, --decay, --beta2 (as
//! the trainer takes them; the fast recipe by default), --latent N (20), --hidden N (400),
//! --seed N (1), --samples N (5000), --classifier PATH, --mnist DIR.
//!
//! Each row, on the 10,000 test digits with fixed noise (as `eval` and the trainer report them):
//! the reconstruction term (binary cross-entropy, whichever loss trained), the KL term and their
//! sum, the test loss; and the Fréchet distance of 5,000 samples from N(0, I) as `eval` measures
//! it. A larger β buys a latent nearer N(0, I) (lower KL, samples that look more like digits) with
//! blurrier reconstructions (higher BCE).

use anyhow::{bail, ensure, Context, Result};
use candle_core::Device;
use latent_lab::config::{Recon, SettingsChoice, VaeObjective};
use latent_lab::lab::Lab;
use latent_lab::metrics::Yardstick;
use latent_lab::mnist;
use latent_lab::model::Kind;
use std::path::PathBuf;

const USAGE: &str = "usage: beta-table [--betas 0.5,1,2,4] [--epochs F | --steps N] [--recon bce|l2|l1] [--recipe fast|tutorial] [--batch N] [--lr F] [--decay none|inverse-epoch] [--beta2 F] [--latent N] [--hidden N] [--seed N] [--samples N] [--classifier PATH] [--mnist DIR]";

fn main() -> Result<()> {
    let mut betas = vec![0.5, 1.0, 2.0, 4.0];
    let (mut epochs, mut steps) = (None, None);
    let mut cfg = Kind::Vae.default_config();
    let mut settings = SettingsChoice::default();
    let (mut seed, mut samples) = (1u64, 5000usize);
    let mut classifier = PathBuf::from("www/weights/classifier.safetensors");
    let mut mnist_dir = mnist::default_dir();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let bad = || format!("{flag}: cannot read `{value}`");
        if flag == "--beta" {
            bail!("--beta: this command trains one VAE per β of --betas");
        }
        if settings.take(&flag, &value)? {
            continue;
        }
        match flag.as_str() {
            "--betas" => betas = value.split(',').map(|b| b.trim().parse()).collect::<Result<_, _>>().with_context(bad)?,
            "--epochs" => epochs = Some(value.parse::<f64>().with_context(bad)?),
            "--steps" => steps = Some(value.parse::<u64>().with_context(bad)?),
            "--latent" => cfg.latent = value.parse().with_context(bad)?,
            "--hidden" => cfg.hidden = value.parse().with_context(bad)?,
            "--seed" => seed = value.parse().with_context(bad)?,
            "--samples" => samples = value.parse().with_context(bad)?,
            "--classifier" => classifier = value.into(),
            "--mnist" => mnist_dir = value.into(),
            _ => bail!("unknown option {flag}\n{USAGE}"),
        }
    }
    ensure!(!(epochs.is_some() && steps.is_some()), "--epochs and --steps: choose one budget");
    ensure!(!betas.is_empty(), "--betas: no β given");
    for &beta in &betas {
        VaeObjective::check_kl_weight(beta)?;
    }
    let recon = settings.recon.unwrap_or(Recon::Bce);

    let device = Device::Cpu;
    let data = mnist::load_dir(&mnist_dir)?;
    let bytes = std::fs::read(&classifier).with_context(|| format!("reading {}", classifier.display()))?;
    let yardstick = Yardstick::new(&bytes, &data.test, &device)?;

    println!("| β | steps | epochs | test BCE | test KL | test loss (BCE + KL) | Fréchet distance |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &beta in &betas {
        let mut lab = Lab::fresh(cfg, seed)?;
        lab.trainer_mut().choose(&SettingsChoice { recon: Some(recon), kl_weight: Some(beta), ..settings })?;
        lab.set_dataset(data.train.clone())?;
        let total = steps.unwrap_or_else(|| (epochs.unwrap_or(10.0) * lab.trainer().steps_per_epoch() as f64).round() as u64);
        ensure!(total > 0, "a budget of 0 steps trains nothing");
        let t = lab.trainer();
        eprintln!(
            "β {beta}: {total} steps of {} latent {} hidden {} on {} + β·KL (batch {}, lr {}, decay {}, Adam β2 {}, seed {seed})",
            cfg.kind.name(),
            cfg.latent,
            cfg.hidden,
            recon.name(),
            t.batch_size(),
            t.learning_rate(),
            t.settings().decay.name(),
            t.settings().adam_beta2
        );
        for _ in 0..total {
            lab.train_step()?;
        }
        let test = lab.evaluate(&data.test)?;
        let q = yardstick.measure(&lab, samples, 0)?;
        println!(
            "| {beta} | {total} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
            lab.trainer().epochs(),
            test.bce,
            test.kl,
            test.loss,
            q.frechet_distance
        );
    }
    Ok(())
}
