//! Measures generative weights files with the digit classifier.
//!
//!     cargo run --release --bin eval -- www/weights/gan-z64.safetensors www/weights/cgan-z64.safetensors
//!
//! Options: --samples N (10000), --seed N (0), --classifier PATH (www/weights/classifier.safetensors),
//! --mnist DIR. For each file, on N samples from z ~ N(0, I) (conditional models: N/10 of each
//! digit), prints one Markdown table row: the Fréchet distance between the classifier's
//! penultimate features of the samples and of the 10,000 MNIST test images, the entropy of the
//! predicted-class histogram (ln 10 = 2.3026 is perfect coverage), and for conditional models the
//! fraction classified as the digit asked for. Above the table it prints the classifier's measured
//! test accuracy and the distance of 10,000 real training digits (the floor a generator is
//! measured against). Below, for each model with an encoder (the VAEs, the autoencoder), a second
//! table: its test loss per digit (BCE + KL; the autoencoder's squared error) and the Fréchet
//! distance of its reconstructions of the 10,000 test digits (decoded from the posterior means) to
//! those digits: how sharp they are. The README's tables are this command's output.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use latent_lab::classifier::FEATURES;
use latent_lab::lab::Lab;
use latent_lab::metrics::{frechet_distance, measure_real, measure_reconstructions, Yardstick};
use latent_lab::mnist;
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut files = Vec::new();
    let (mut samples, mut seed) = (10_000usize, 0u64);
    let mut classifier_path = PathBuf::from("www/weights/classifier.safetensors");
    let mut mnist_dir = mnist::default_dir();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if !arg.starts_with("--") {
            files.push(PathBuf::from(arg));
            continue;
        }
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        let bad = || format!("{arg}: cannot read `{value}`");
        match arg.as_str() {
            "--samples" => samples = value.parse().with_context(bad)?,
            "--seed" => seed = value.parse().with_context(bad)?,
            "--classifier" => classifier_path = value.into(),
            "--mnist" => mnist_dir = value.into(),
            _ => bail!("unknown option {arg}"),
        }
    }
    if files.is_empty() {
        bail!("usage: eval WEIGHTS.safetensors… [--samples N] [--seed N] [--classifier PATH] [--mnist DIR]");
    }
    let device = Device::Cpu;
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let data = mnist::load_dir(&mnist_dir)?;
    let yardstick = Yardstick::new(&read(&classifier_path)?, &data.test, &device)
        .with_context(|| format!("loading {}", classifier_path.display()))?;
    let (classifier, real) = (&yardstick.classifier, &yardstick.test);
    let train = measure_real(&classifier.net, &data.train.take(10_000), &device)?;
    println!(
        "Features: {} ({FEATURES} penultimate features; test accuracy {:.4} measured, {} recorded), reference: the {} MNIST test images; {} real training digits lie at Fréchet distance {:.2}; {samples} samples per model, seed {seed}.",
        classifier_path.file_name().map_or("?".into(), |n| n.to_string_lossy()),
        real.accuracy,
        classifier.meta.get("test_accuracy").map_or("unrecorded", String::as_str),
        data.test.len(),
        data.train.len().min(10_000),
        frechet_distance(&train.features, &real.features),
    );
    println!();
    println!("| weights | kind | Fréchet distance | class entropy (ln 10 = 2.3026) | classified as the digit asked for |");
    println!("|---|---|---|---|---|");
    let mut histograms = Vec::new();
    let mut reconstructions = Vec::new();
    for file in &files {
        let lab = Lab::from_safetensors(&read(file)?).with_context(|| format!("loading {}", file.display()))?;
        if lab.config().kind.has_encoder() && !lab.decoder_only() {
            let fd = measure_reconstructions(&lab, &classifier.net, &real.features, &data.test)?;
            let loss = lab.evaluate(&data.test)?;
            let name = file.file_name().map_or("?".into(), |n| n.to_string_lossy().into_owned());
            reconstructions.push(format!("| {name} | {:.3} | {fd:.2} |", loss.loss));
        }
        let q = yardstick.measure(&lab, samples, seed)?;
        histograms.push(format!("{}: {:?}", file.file_name().map_or("?".into(), |n| n.to_string_lossy()), q.histogram));
        println!(
            "| {} | {} | {:.2} | {:.4} | {} |",
            file.file_name().map_or("?".into(), |n| n.to_string_lossy()),
            lab.config().kind.name(),
            q.frechet_distance,
            q.class_entropy,
            q.label_accuracy.map_or("—".to_string(), |a| format!("{:.2}%", a * 100.0)),
        );
    }
    println!();
    println!("Digits the classifier read (0 to 9), per model:");
    for h in histograms {
        println!("  {h}");
    }
    if !reconstructions.is_empty() {
        println!();
        println!("Reconstructions of the {} test digits, per model with an encoder:", data.test.len());
        println!();
        println!("| weights | test loss per digit (BCE + KL; ae: squared error) | Fréchet distance of the reconstructions |");
        println!("|---|---|---|");
        for r in reconstructions {
            println!("{r}");
        }
    }
    Ok(())
}
