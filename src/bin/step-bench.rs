//! The native engine's training steps, timed: a fresh model of each kind at its default size and
//! the fast recipe's rate, on MNIST's training set, for the benchmark's native column beside
//! PyTorch (`node bench/run.mjs` runs it; `bench/pytorch-step.py` times the same steps in PyTorch).
//!
//!     cargo run --release --bin step-bench -- [--kinds vae,gan] [--batches 128,32] [--steps 50] [--warmup 10] [--json]
//!
//! Prints, per kind and batch, the median and fastest ms of a `train_step` (one thread: the
//! native engine's products are the `gemm` crate's, whole), and this core's ceiling for wasm
//! SIMD's products (`fma128_peak`), as a table or, with --json, as
//! {"rows": [{"kind", "batch", "threads", "median_ms", "fastest_ms"}, …], "fma128_gflops": x | null}.

use anyhow::{bail, Context, Result};
use latent_lab::config::SettingsChoice;
use latent_lab::lab::Lab;
use latent_lab::mnist;
use latent_lab::model::Kind;
use std::time::Instant;

const USAGE: &str = "usage: step-bench [--kinds vae,cvae,gan,cgan] [--batches 128,32] [--steps N] [--warmup N] [--seed N] [--mnist DIR] [--json]";

struct Args {
    kinds: Vec<Kind>,
    batches: Vec<usize>,
    steps: usize,
    warmup: usize,
    seed: u64,
    mnist: std::path::PathBuf,
    json: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        kinds: vec![Kind::Vae, Kind::Gan],
        batches: vec![128, 32],
        steps: 50,
        warmup: 10,
        seed: 1,
        mnist: mnist::default_dir(),
        json: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--json" {
            a.json = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{arg} needs a value\n{USAGE}"))?;
        let bad = || format!("{arg}: cannot read `{value}`");
        match arg.as_str() {
            "--kinds" => a.kinds = value.split(',').map(|k| Kind::parse(k).with_context(bad)).collect::<Result<_>>()?,
            "--batches" => a.batches = value.split(',').map(|b| b.parse().with_context(bad)).collect::<Result<_>>()?,
            "--steps" => a.steps = value.parse().with_context(bad)?,
            "--warmup" => a.warmup = value.parse().with_context(bad)?,
            "--seed" => a.seed = value.parse().with_context(bad)?,
            "--mnist" => a.mnist = value.into(),
            _ => bail!("unknown option {arg}\n{USAGE}"),
        }
    }
    if a.steps == 0 || a.batches.contains(&0) {
        bail!("--steps and every batch must be positive");
    }
    Ok(a)
}

fn main() -> Result<()> {
    let a = parse_args()?;
    let data = mnist::load_dir(&a.mnist)?;
    let mut rows = Vec::new();
    for &kind in &a.kinds {
        for &batch in &a.batches {
            let mut lab = Lab::fresh(kind.default_config(), a.seed)?;
            let mut settings = SettingsChoice::default();
            settings.take("--batch", &batch.to_string())?;
            lab.trainer_mut().choose(&settings)?;
            lab.set_dataset(data.train.clone())?;
            for _ in 0..a.warmup {
                lab.train_step()?;
            }
            let mut ms: Vec<f64> = (0..a.steps)
                .map(|_| {
                    let start = Instant::now();
                    lab.train_step().map(|_| start.elapsed().as_secs_f64() * 1e3)
                })
                .collect::<Result<_>>()?;
            ms.sort_by(f64::total_cmp);
            let median = if ms.len() % 2 == 1 { ms[ms.len() / 2] } else { (ms[ms.len() / 2 - 1] + ms[ms.len() / 2]) / 2.0 };
            rows.push((kind, batch, median, ms[0]));
        }
    }
    let peak = fma128_peak();
    if a.json {
        let peak = peak.map_or("null".into(), |p| format!("{p:.1}"));
        let rows: Vec<String> = rows
            .iter()
            .map(|(k, b, median, fastest)| {
                format!(r#"{{"kind": "{}", "batch": {b}, "threads": 1, "median_ms": {median:.4}, "fastest_ms": {fastest:.4}}}"#, k.name())
            })
            .collect();
        println!("{{\"rows\": [{}], \"fma128_gflops\": {peak}}}", rows.join(", "));
    } else {
        println!("| kind | batch | threads | median ms | fastest ms |\n|---|---:|---:|---:|---:|");
        for (k, b, median, fastest) in rows {
            println!("| {} | {b} | 1 | {median:.2} | {fastest:.2} |", k.name());
        }
        match peak {
            Some(p) => println!("128-bit fused multiply-adds, one thread: {p:.1} GFLOP/s"),
            None => println!("128-bit fused multiply-adds: no FMA on this CPU"),
        }
    }
    Ok(())
}

/// One thread's throughput of 4-lane fused multiply-adds (GFLOP/s, the best of five runs of
/// 160 MFLOP, about 3 ms each): the ceiling of the tab's matrix products, whose `f32x4.relaxed_madd` the browser
/// compiles to the same instruction (`vfmadd231ps` on xmm registers, where the CPU has FMA). Ten
/// independent chains cover the instruction's latency on both of a core's FMA pipes.
fn fma128_peak() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA (checked just above).
        return Some(unsafe { fma128_gflops() });
    }
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
unsafe fn fma128_gflops() -> f64 {
    use std::arch::x86_64::{_mm_cvtss_f32, _mm_fmadd_ps, _mm_set1_ps};
    const CHAINS: usize = 10;
    const ROUNDS: usize = 2_000_000;
    // (opaque to the optimiser, so the chains are computed as written)
    let (x, y) = std::hint::black_box((_mm_set1_ps(0.999_999), _mm_set1_ps(1e-7)));
    let mut best = 0f64;
    for _ in 0..5 {
        let mut acc = [_mm_set1_ps(1.0); CHAINS];
        let start = Instant::now();
        for _ in 0..ROUNDS {
            for a in acc.iter_mut() {
                *a = _mm_fmadd_ps(*a, x, y);
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        // (the chains' sum keeps the work from being optimised away)
        std::hint::black_box(acc.iter().map(|&a| _mm_cvtss_f32(a)).sum::<f32>());
        best = best.max((ROUNDS * CHAINS * 8) as f64 / seconds / 1e9);
    }
    best
}
