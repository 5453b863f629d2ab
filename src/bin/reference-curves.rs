//! candle's autograd (`src/reference.rs`, the tests' reference backend) trained through the
//! trainer, for the browser's parity test (`tests/browser/parity.test.mjs`), which trains the same
//! models in the tab's engine and holds them to these figures (the native engine is held to the
//! same reference by `tests/engine.rs`):
//!
//!     cargo run --release --bin reference-curves -- [--kinds vae,gan] [--hidden 64] [--examples 1600] [--steps 200] [--seed 7]
//!
//! Each kind at its default size but for `--hidden`, drawn and trained from `--seed` (what
//! `Model.create(kind, seed, undefined, hidden)` does in the browser) on MNIST's first
//! `--examples` training images at the fast recipe's batch, rate and decay. Prints one JSON object:
//! {"hidden", "examples", "seed", "kinds": [{"kind", "steps": [losses, …]}, …]}, each step's losses as the wasm API names them
//! (`{loss, bce, kl}`, an autoencoder's `{loss}`, a GAN's `{d_loss, g_loss, d_real, d_fake}`).

use anyhow::{bail, Context, Result};
use candle_core::Device;
use latent_lab::config::Family;
use latent_lab::cpu::CpuBackend;
use latent_lab::mnist;
use latent_lab::model::{init_params, Kind, ModelConfig};
use latent_lab::train::{CandleBackend, StepLosses, Trainer};
use serde_json::{json, Value};

const USAGE: &str = "usage: reference-curves [--kinds vae,cvae,gan,cgan,ae,conv-ae,conv-vae] [--hidden N] [--examples N] [--steps N] [--seed N] [--mnist DIR]";

struct Args {
    kinds: Vec<Kind>,
    hidden: usize,
    examples: usize,
    steps: usize,
    seed: u64,
    mnist: std::path::PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut a = Args { kinds: Kind::ALL.to_vec(), hidden: 64, examples: 1600, steps: 200, seed: 7, mnist: mnist::default_dir() };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--help" || arg == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
        let bad = || format!("{arg}: cannot read `{value}`");
        match arg.as_str() {
            "--kinds" => a.kinds = value.split(',').map(|k| Kind::parse(k).with_context(bad)).collect::<Result<_>>()?,
            "--hidden" => a.hidden = value.parse().with_context(bad)?,
            "--examples" => a.examples = value.parse().with_context(bad)?,
            "--steps" => a.steps = value.parse().with_context(bad)?,
            "--seed" => a.seed = value.parse().with_context(bad)?,
            "--mnist" => a.mnist = value.into(),
            _ => bail!("unknown option {arg}\n{USAGE}"),
        }
    }
    if a.hidden == 0 || a.examples == 0 || a.steps == 0 {
        bail!("--hidden, --examples and --steps must be positive\n{USAGE}");
    }
    Ok(a)
}

/// A step's losses under the names `TrainStats.losses` gives them in the browser.
fn losses_json(losses: &StepLosses, autoencoder: bool) -> Value {
    match losses {
        StepLosses::Vae(p) if autoencoder => json!({ "loss": p.loss }),
        StepLosses::Vae(p) => json!({ "loss": p.loss, "bce": p.bce, "kl": p.kl }),
        StepLosses::Gan(g) => json!({ "d_loss": g.d_loss, "g_loss": g.g_loss, "d_real": g.d_real, "d_fake": g.d_fake }),
    }
}

fn curve(kind: Kind, a: &Args, data: &mnist::Dataset) -> Result<Value> {
    let cfg = ModelConfig { hidden: a.hidden, ..kind.default_config() };
    let params = init_params(&cfg, a.seed, &Device::Cpu)?;
    // As `Lab::fresh` starts a model (the engine's trainer from the seed), then candle steps it.
    let mut t = Trainer::new(Box::new(CpuBackend::new(cfg, &params, Device::Cpu)?), a.seed);
    t.set_dataset(data.clone())?;
    t.use_device(Box::new(CandleBackend::new(cfg, &params, Device::Cpu)?))?;
    let autoencoder = kind.family() == Family::Ae;
    let steps = (0..a.steps)
        .map(|i| Ok(losses_json(&t.step().with_context(|| format!("{} step {}", kind.name(), i + 1))?.losses, autoencoder)))
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({ "kind": kind.name(), "steps": steps }))
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let data = mnist::load_dir(&a.mnist)?.train.take(a.examples);
    let kinds = a.kinds.iter().map(|&k| curve(k, &a, &data)).collect::<Result<Vec<_>>>()?;
    println!("{}", json!({ "hidden": a.hidden, "examples": a.examples, "seed": a.seed, "kinds": kinds }));
    Ok(())
}
