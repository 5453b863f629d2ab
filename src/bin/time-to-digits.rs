//! Time to digits: trains a fresh model of a kind for a budget and measures its samples as it goes.
//!
//!     cargo run --release --bin time-to-digits -- gan --seconds 60 --every 5
//!     cargo run --release --bin time-to-digits -- gan --steps 1200 --every-steps 100
//!
//! Options: --seconds S (60) with --every S (5): a budget of training seconds (the clock stops
//! while samples are measured); or --steps N with --every-steps N: a budget of steps (what the
//! tests use, since seconds differ between machines). --recipe fast|tutorial (fast, the default),
//! --batch N, --lr F, --decay none|inverse-epoch and --beta2 F (over the recipe's), --seed N (1),
//! --latent N, --hidden N, --samples N (5000), --classifier PATH, --mnist DIR.
//! `score SECONDS:STEPS:FILE…` measures weights files saved elsewhere (the browser mode,
//! bench/time-to-digits.mjs) and prints the same table.
//!
//! Each row: seconds of training, steps, epochs, the class entropy of the samples as a fraction
//! of ln 10, the Fréchet distance of the shipped classifier's features (as `eval` reports it),
//! and for conditional models the share read as the digit asked for.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use latent_lab::lab::Lab;
use latent_lab::metrics::Yardstick;
use latent_lab::mnist;
use latent_lab::config::{Recipe, SettingsChoice};
use latent_lab::model::{Kind, ModelConfig};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: time-to-digits <vae|cvae|gan|cgan> [--seconds S --every S | --steps N --every-steps N] [--recipe fast|tutorial] [--batch N] [--lr F] [--decay none|inverse-epoch] [--average on|off] [--label-gain F] [--beta2 F] [--recon bce|l2|l1] [--beta F] [--seed N] [--latent N] [--hidden N] [--samples N] [--classifier PATH] [--mnist DIR]\n       time-to-digits score SECONDS:STEPS:FILE… [--samples N] [--classifier PATH] [--mnist DIR]";

enum Budget {
    Seconds { total: f64, every: f64 },
    Steps { total: u64, every: u64 },
}

struct Args {
    cfg: Option<ModelConfig>,
    budget: Budget,
    settings: SettingsChoice,
    seed: Option<u64>,
    samples: usize,
    classifier: PathBuf,
    mnist: PathBuf,
    score: Vec<(f64, u64, PathBuf)>,
}

fn parse_args() -> Result<Args> {
    let mut it = std::env::args().skip(1);
    let first = it.next().context(USAGE)?;
    let cfg = if first == "score" { None } else { Some(Kind::parse(&first).context(USAGE)?.default_config()) };
    let mut a = Args {
        cfg,
        budget: Budget::Seconds { total: 60.0, every: 5.0 },
        settings: SettingsChoice::default(),
        seed: None,
        samples: 5000,
        classifier: "www/weights/classifier.safetensors".into(),
        mnist: mnist::default_dir(),
        score: Vec::new(),
    };
    let (mut seconds, mut every, mut steps, mut every_steps) = (None, None, None, None);
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            if a.cfg.is_some() {
                bail!("unexpected `{arg}`\n{USAGE}");
            }
            let mut parts = arg.splitn(3, ':');
            let (Some(s), Some(n), Some(f)) = (parts.next(), parts.next(), parts.next()) else {
                bail!("score: `{arg}` is not SECONDS:STEPS:FILE");
            };
            a.score.push((s.parse().with_context(|| format!("seconds in `{arg}`"))?, n.parse().with_context(|| format!("steps in `{arg}`"))?, f.into()));
            continue;
        }
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        let bad = || format!("{arg}: cannot read `{value}`");
        if a.settings.take(&arg, &value)? {
            continue;
        }
        match arg.as_str() {
            "--seconds" => seconds = Some(value.parse::<f64>().with_context(bad)?),
            "--every" => every = Some(value.parse::<f64>().with_context(bad)?),
            "--steps" => steps = Some(value.parse::<u64>().with_context(bad)?),
            "--every-steps" => every_steps = Some(value.parse::<u64>().with_context(bad)?),
            "--seed" => a.seed = Some(value.parse().with_context(bad)?),
            "--latent" => sizes(&mut a.cfg, &arg)?.latent = value.parse().with_context(bad)?,
            "--hidden" => sizes(&mut a.cfg, &arg)?.hidden = value.parse().with_context(bad)?,
            "--samples" => a.samples = value.parse().with_context(bad)?,
            "--classifier" => a.classifier = value.into(),
            "--mnist" => a.mnist = value.into(),
            _ => bail!("unknown option {arg}\n{USAGE}"),
        }
    }
    a.budget = match (seconds, every, steps, every_steps) {
        (_, _, Some(total), e) => {
            if seconds.is_some() || every.is_some() {
                bail!("--steps and --seconds: choose one budget");
            }
            Budget::Steps { total, every: e.unwrap_or(total.div_ceil(10).max(1)) }
        }
        (s, e, None, None) => Budget::Seconds { total: s.unwrap_or(60.0), every: e.unwrap_or(5.0) },
        (_, _, None, Some(_)) => bail!("--every-steps goes with --steps"),
    };
    match a.budget {
        Budget::Seconds { total, every } if !(total > 0.0 && every > 0.0) => bail!("--seconds and --every must be positive"),
        Budget::Steps { total, every } if total == 0 || every == 0 => bail!("--steps and --every-steps must be positive"),
        _ => {}
    }
    if a.cfg.is_none() && a.score.is_empty() {
        bail!("score: no SECONDS:STEPS:FILE given\n{USAGE}");
    }
    if a.cfg.is_none() && (!a.settings.is_empty() || a.seed.is_some() || steps.is_some() || seconds.is_some()) {
        bail!("score measures saved files: the training options (--recipe, --batch, --lr, --decay, --seed, a budget) do not apply");
    }
    Ok(a)
}

fn sizes<'a>(cfg: &'a mut Option<ModelConfig>, flag: &str) -> Result<&'a mut ModelConfig> {
    cfg.as_mut().with_context(|| format!("{flag}: only when training a fresh model"))
}

/// The shipped classifier's measure of `samples` samples, printed as one row of the curve.
struct Judge {
    yardstick: Yardstick,
    samples: usize,
}

impl Judge {
    fn header(kind: Kind) {
        let accuracy = if kind.is_conditional() { " | read as asked" } else { "" };
        println!("| seconds | steps | epochs | class entropy / ln 10 | Fréchet distance{accuracy} |");
        println!("|---:|---:|---:|---:|---:{}|", if kind.is_conditional() { "|---:" } else { "" });
    }

    fn row(&self, lab: &Lab, seconds: f64, steps: u64, epochs: f64) -> Result<()> {
        let q = self.yardstick.measure(lab, self.samples, 0)?;
        let accuracy = q.label_accuracy.map_or(String::new(), |a| format!(" | {:.1}%", a * 100.0));
        println!(
            "| {seconds:.1} | {steps} | {epochs:.2} | {:.3} | {:.1}{accuracy} |",
            q.class_entropy / 10f64.ln(),
            q.frechet_distance
        );
        Ok(())
    }
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let device = Device::Cpu;
    let bytes = std::fs::read(&a.classifier).with_context(|| format!("reading {}", a.classifier.display()))?;
    let data = mnist::load_dir(&a.mnist)?;
    let yardstick = Yardstick::new(&bytes, &data.test, &device).with_context(|| format!("loading {}", a.classifier.display()))?;
    let judge = Judge { yardstick, samples: a.samples };
    let Some(cfg) = a.cfg else {
        let mut kind = None;
        for (seconds, steps, file) in &a.score {
            let lab = Lab::from_safetensors(&std::fs::read(file).with_context(|| format!("reading {}", file.display()))?)?;
            if kind.replace(lab.config().kind).is_none() {
                Judge::header(lab.config().kind);
            }
            let epochs = lab.metadata().get("epochs").and_then(|e| e.parse().ok()).unwrap_or(f64::NAN);
            judge.row(&lab, *seconds, *steps, epochs)?;
        }
        return Ok(());
    };
    let seed = a.seed.unwrap_or(1);
    let mut lab = Lab::fresh(cfg, seed)?;
    lab.trainer_mut().choose(&a.settings)?;
    lab.set_dataset(data.train.clone())?;
    let s = lab.trainer().settings();
    eprintln!(
        "{} latent {} hidden {}, recipe {}: batch {}, lr {}, decay {}, Adam β2 {}, average {}, label gain {}, seed {seed}, on the CPU",
        cfg.kind.name(),
        cfg.latent,
        cfg.hidden,
        lab.trainer().recipe().map_or("custom", Recipe::name),
        s.batch_size,
        s.learning_rate,
        s.decay.name(),
        s.adam_beta2,
        if s.average { "on" } else { "off" },
        s.label_gain,
    );
    Judge::header(cfg.kind);
    let mut trained = Duration::ZERO;
    let mut next_row = 1u64;
    loop {
        let t = lab.trainer();
        let (steps, seconds) = (t.steps(), trained.as_secs_f64());
        let (due, done) = match a.budget {
            Budget::Seconds { total, every } => (seconds >= next_row as f64 * every, seconds >= total),
            Budget::Steps { total, every } => (steps >= next_row * every, steps >= total),
        };
        if due || done {
            judge.row(&lab, seconds, steps, t.epochs())?;
            next_row += 1;
        }
        if done {
            return Ok(());
        }
        let start = Instant::now();
        lab.train_step()?;
        trained += start.elapsed();
    }
}
