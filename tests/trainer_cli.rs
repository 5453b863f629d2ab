//! The native trainer as a reader runs it (`cargo run --release --bin train -- …`), on a small
//! slice of real MNIST written out as IDX files: on the CPU, and with `--backend webgpu` on the
//! machine's Vulkan device (Mesa's lavapipe here), where it trains through the same seam.

use crate::common;

use crate::common::{idx, read_metadata};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The first `train` and `test` examples of MNIST as the four IDX files `--mnist DIR` reads.
fn small_mnist(dir: &Path, train: usize, test: usize) {
    let m = common::mnist();
    std::fs::create_dir_all(dir).unwrap();
    for (name, set, n) in [("train", &m.train, train), ("t10k", &m.test, test)] {
        let part = set.take(n);
        std::fs::write(dir.join(format!("{name}-images-idx3-ubyte")), idx(&[n, 28, 28], &part.images)).unwrap();
        std::fs::write(dir.join(format!("{name}-labels-idx1-ubyte")), idx(&[n], &part.labels)).unwrap();
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("latent-lab-trainer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_train")).current_dir(env!("CARGO_MANIFEST_DIR")).args(args).output().unwrap()
}

/// The test losses the trainer printed, one per epoch.
fn test_losses(stdout: &str) -> Vec<f64> {
    stdout
        .lines()
        .filter_map(|l| l.split("test loss").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// Trains a small VAE for 3 epochs of 1,024 digits on `backend` and returns its printed test losses
/// and the written file's metadata.
fn train_small_vae(backend: &str) -> (Vec<f64>, std::collections::HashMap<String, String>, String) {
    let dir = scratch(backend);
    small_mnist(&dir.join("mnist"), 1024, 500);
    let out = dir.join("vae.safetensors");
    let run = train(&[
        "vae", "--latent", "4", "--hidden", "32", "--epochs", "3", "--batch", "64", "--backend", backend,
        "--mnist", dir.join("mnist").to_str().unwrap(), "--out", out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout).to_string(), String::from_utf8_lossy(&run.stderr).to_string());
    assert!(run.status.success(), "train --backend {backend} failed:\n{stdout}\n{stderr}");
    let meta = read_metadata(&std::fs::read(&out).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    (test_losses(&stdout), meta, stderr)
}

fn assert_learns(backend: &str, losses: &[f64]) {
    assert_eq!(losses.len(), 3, "{backend}: one test loss per epoch, got {losses:?}");
    // An untrained VAE scores about 784·ln 2 ≈ 543 per digit.
    assert!(losses.iter().all(|l| l.is_finite() && *l < 543.0), "{backend}: {losses:?}");
    assert!(losses[2] < losses[0] - 20.0, "{backend}: the test loss barely fell: {losses:?}");
}

#[test]
fn the_trainer_trains_on_the_cpu_and_on_webgpu_alike() {
    let (cpu, cpu_meta, _) = train_small_vae("cpu");
    assert_learns("cpu", &cpu);
    assert!(!cpu_meta["trainer"].contains("--backend"), "{}", cpu_meta["trainer"]);
    // The fast recipe's rate for a VAE (4e-3, halved in the second epoch and a third in the
    // third, on both backends) and its Adam β2, named in the command the file records.
    assert!(cpu_meta["trainer"].ends_with("--epochs 3 --batch 64 --lr 0.004 --seed 1 --decay inverse-epoch --beta2 0.99"), "{}", cpu_meta["trainer"]);

    let (gpu, gpu_meta, stderr) = train_small_vae("webgpu");
    assert!(stderr.contains("training on WebGPU"), "no device announced: {stderr}");
    assert_learns("webgpu", &gpu);
    assert!(gpu_meta["trainer"].ends_with("--backend webgpu"), "{}", gpu_meta["trainer"]);
    assert_eq!(gpu_meta["epochs"], "3");
    // The same minibatches, noise and initial weights: the backends agree to float rounding.
    for (epoch, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        assert!((c - g).abs() <= 1e-3 * c, "epoch {}: test loss {c} on the CPU, {g} on WebGPU", epoch + 1);
    }
}

#[test]
fn an_unknown_backend_is_a_clear_error() {
    let run = train(&["vae", "--backend", "tpu"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("--backend: `tpu` is not cpu, webgpu or auto"), "{stderr}");
}

/// --recon and --beta train a VAE on that objective and are recorded in the file's command (the
/// plain BCE + KL run above records neither); the classifier and a GAN refuse them.
#[test]
fn the_trainer_takes_a_reconstruction_loss_and_kl_weight() {
    let dir = scratch("objective");
    small_mnist(&dir.join("mnist"), 256, 100);
    let out = dir.join("vae.safetensors");
    let mnist = dir.join("mnist");
    let run = train(&[
        "vae", "--latent", "4", "--hidden", "16", "--epochs", "1", "--recon", "l2", "--beta", "2.5",
        "--mnist", mnist.to_str().unwrap(), "--out", out.to_str().unwrap(),
    ]);
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("decay inverse-epoch --beta2 0.99 --recon l2 --beta 2.5, seed 1"), "{stderr}");
    let meta = read_metadata(&std::fs::read(&out).unwrap());
    assert!(meta["trainer"].ends_with("--decay inverse-epoch --beta2 0.99 --recon l2 --beta 2.5"), "{}", meta["trainer"]);
    for (kind, want) in [("gan", "a GAN has neither"), ("classifier", "the classifier trains with cross-entropy")] {
        let run = train(&[kind, "--beta", "2", "--epochs", "1", "--mnist", mnist.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert!(!run.status.success(), "{kind} took --beta");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(want), "{kind}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A convolutional kind trains on the CPU whatever `--backend` asks: `auto` says why and records
/// no backend in the file's command, `webgpu` is refused by name; no decoder file is written (the
/// light sampler that reads one has no convolutions).
#[test]
fn a_convolutional_kind_trains_on_the_cpu_and_says_why() {
    let dir = scratch("conv");
    small_mnist(&dir.join("mnist"), 256, 100);
    let (mnist, out_path) = (dir.join("mnist"), dir.join("conv-ae.safetensors"));
    let (mnist, out) = (mnist.to_str().unwrap(), out_path.to_str().unwrap());
    let run_on = |backend| train(&["conv-ae", "--latent", "8", "--hidden", "4", "--epochs", "1", "--backend", backend, "--mnist", mnist, "--out", out]);
    let run = run_on("auto");
    let (stdout, stderr) = (String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("a `conv-ae` model trains on the CPU: the WebGPU backend has linear layers only, not its convolutions"), "{stderr}");
    let meta = read_metadata(&std::fs::read(&out_path).unwrap());
    assert_eq!((meta["kind"].as_str(), meta["latent"].as_str(), meta["hidden"].as_str()), ("conv-ae", "8", "4"));
    assert!(meta["trainer"].ends_with("--epochs 1 --batch 32 --lr 0.002 --seed 1 --decay inverse-epoch"), "{}", meta["trainer"]);
    assert!(!dir.join("conv-ae.decoder.safetensors").exists(), "a decoder file was written");
    assert!(stdout.contains(&format!("wrote {out}\n")), "{stdout}");

    let run = run_on("webgpu");
    assert!(!run.status.success(), "--backend webgpu trained a conv-ae");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("a `conv-ae` model trains on the CPU: the WebGPU backend has linear layers only"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
