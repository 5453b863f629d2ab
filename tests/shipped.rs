//! The weights the page ships (www/weights/), evaluated on the 10,000 MNIST test images.

use crate::common;

use latent_lab::lab::Lab;
use latent_lab::train::LossParts;
use latent_lab::model::ModelConfig;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// Every generative model under www/weights/.
const SHIPPED_FILES: [&str; 11] = [
    "vae-z20", "vae-z2", "cvae-z2", "gan-z64", "cgan-z64", "ae-z3", "vae-z3", "vae-z20-l2", "vae-z20-l1", "conv-vae-z20", "conv-ae-z32",
];

fn path(latent: usize) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("www/weights/vae-z{latent}.safetensors"))
}

struct Shipped {
    meta: HashMap<String, String>,
    cfg: ModelConfig,
    test: LossParts,
}

/// Loads and evaluates a shipped file once per test binary.
fn shipped(latent: usize) -> &'static Shipped {
    static CACHE: OnceLock<Mutex<HashMap<usize, &'static Shipped>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    cache.entry(latent).or_insert_with(|| {
        let p = path(latent);
        let bytes = std::fs::read(&p).unwrap_or_else(|e| {
            panic!("{}: {e} (train it: cargo run --release --bin train -- vae --latent {latent} --epochs 20 --recipe tutorial)", p.display())
        });
        let lab = Lab::from_safetensors(&bytes).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        let test = lab.evaluate(&common::mnist().test).unwrap();
        let meta = common::read_metadata(&bytes);
        let mut keys: Vec<_> = meta.iter().filter(|(k, _)| k.as_str() != "trainer").collect();
        keys.sort();
        println!(
            "vae-z{latent}: test loss {:.3} (bce {:.3} + kl {:.3}) on 10,000 images; metadata {keys:?}",
            test.loss, test.bce, test.kl
        );
        Box::leak(Box::new(Shipped { meta, cfg: lab.config(), test }))
    })
}

fn check_quality(latent: usize, max_loss: f32) {
    let s = shipped(latent);
    assert_eq!(s.cfg, ModelConfig::vae(latent, 400));
    assert_eq!(s.meta.get("latent").map(String::as_str), Some(latent.to_string().as_str()));
    assert_eq!(s.meta.get("hidden").map(String::as_str), Some("400"));
    assert_eq!(s.meta.get("kind").map(String::as_str), Some("vae"));
    assert_eq!(s.meta.get("dataset").map(String::as_str), Some("mnist"));
    assert!(s.test.loss.is_finite());
    assert!((s.test.loss - (s.test.bce + s.test.kl)).abs() < 1e-2);
    assert!(s.test.kl > 0.0 && s.test.bce > 0.0);
    assert!(
        s.test.loss <= max_loss,
        "vae-z{latent}: test loss {:.3} is above {max_loss}",
        s.test.loss
    );
}

fn check_recorded_test_loss(latent: usize) {
    let s = shipped(latent);
    let recorded = s.meta.get("test_loss").unwrap_or_else(|| {
        panic!("vae-z{latent}: metadata has no test_loss (keys: {:?})", s.meta.keys().collect::<Vec<_>>())
    });
    let recorded: f32 = recorded.parse().unwrap_or_else(|e| panic!("test_loss `{recorded}`: {e}"));
    assert!(
        (recorded - s.test.loss).abs() <= 0.01,
        "vae-z{latent}: metadata test_loss {recorded} but evaluated {:.4}",
        s.test.loss
    );
}

#[test]
fn shipped_z20_test_loss_at_most_106() {
    check_quality(20, 106.0);
}

#[test]
fn shipped_z2_test_loss_at_most_155() {
    check_quality(2, 155.0);
}

#[test]
fn shipped_z20_metadata_test_loss_matches_evaluation() {
    check_recorded_test_loss(20);
}

#[test]
fn shipped_z2_metadata_test_loss_matches_evaluation() {
    check_recorded_test_loss(2);
}

#[test]
fn shipped_z3_test_loss_at_most_142_and_recorded() {
    check_quality(3, 142.0);
    check_recorded_test_loss(3);
}

/// A shipped file of `kind` at its default sizes, evaluated on the 10,000 test images, and the
/// test loss its metadata records.
fn evaluate_shipped(file: &str, kind: latent_lab::model::Kind) -> (LossParts, f32) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("www/weights/{file}.safetensors"));
    let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let lab = Lab::from_safetensors(&bytes).unwrap();
    assert_eq!(lab.config(), kind.default_config(), "{file}");
    let test = lab.evaluate(&common::mnist().test).unwrap();
    let recorded = common::read_metadata(&bytes)["test_loss"].parse().unwrap();
    (test, recorded)
}

/// The shipped autoencoder (the tutorial's 784 → 128 → 64 → 12 → 3, trained by its recipe): its
/// test squared error per image (summed over pixels in [−1, 1]; ÷ 784 is the tutorial's MSELoss)
/// is what its file records, and at most 105. Its quality as a generator is in tests/quality.rs.
#[test]
fn shipped_autoencoder_reconstructs_the_test_digits_as_recorded() {
    let (test, recorded) = evaluate_shipped("ae-z3", latent_lab::model::Kind::Ae);
    println!("ae-z3: test squared error {:.3} per image ({:.5} per pixel)", test.loss, test.loss / 784.0);
    assert!((recorded - test.loss).abs() <= 0.01, "ae-z3: metadata test_loss {recorded} but evaluated {:.4}", test.loss);
    assert!(test.loss <= 105.0, "ae-z3: test squared error {:.3} is above 105", test.loss);
}

#[test]
fn shipped_z2_decodes_a_grid_of_digits() {
    // The 2-d latent space the page draws as a grid: every point decodes to a finite image with some ink.
    let bytes = std::fs::read(path(2)).unwrap_or_else(|e| panic!("{}: {e}", path(2).display()));
    let lab = Lab::from_safetensors(&bytes).unwrap();
    let mut z = Vec::new();
    for i in 0..5 {
        for j in 0..5 {
            z.extend([-2.0 + i as f32, -2.0 + j as f32]);
        }
    }
    let imgs = lab.sample(&z, None).unwrap();
    assert_eq!(imgs.len(), 25 * 784);
    for (k, img) in imgs.chunks(784).enumerate() {
        let ink: f32 = img.iter().sum::<f32>() / 784.0;
        assert!(img.iter().all(|p| (0.0..=1.0).contains(p)));
        assert!((0.03..0.5).contains(&ink), "grid image {k}: mean intensity {ink}");
    }
}

/// The shipped convolutional VAE (latent 20, BCE + KL, the tutorial recipe): its test loss per
/// digit on the 10,000 test images is what its file records, and at most 97 (the MLP VAE of the
/// same latent size ships at 103.7).
#[test]
fn shipped_conv_vae_test_loss_at_most_97_and_recorded() {
    let (test, recorded) = evaluate_shipped("conv-vae-z20", latent_lab::model::Kind::ConvVae);
    println!("conv-vae-z20: test loss {:.3} (bce {:.3} + kl {:.3})", test.loss, test.bce, test.kl);
    assert!((test.loss - (test.bce + test.kl)).abs() < 1e-2 && test.kl > 0.0);
    assert!((recorded - test.loss).abs() <= 0.01, "conv-vae-z20: metadata test_loss {recorded} but evaluated {:.4}", test.loss);
    assert!(test.loss <= 97.0, "conv-vae-z20: test loss {:.3} is above 97", test.loss);
}

/// The shipped convolutional autoencoder (the tutorial's layers, code 8 × 2 × 2, its recipe): its
/// test squared error per image, as its file records it, and at most 100.
#[test]
fn shipped_conv_autoencoder_reconstructs_the_test_digits_as_recorded() {
    let (test, recorded) = evaluate_shipped("conv-ae-z32", latent_lab::model::Kind::ConvAe);
    println!("conv-ae-z32: test squared error {:.3} per image ({:.5} per pixel)", test.loss, test.loss / 784.0);
    // The trainer records the error of its f32 weights; rounding them to f16 moves this one's by
    // about 0.02 (the others' by less than 0.01).
    assert!((recorded - test.loss).abs() <= 0.05, "conv-ae-z32: metadata test_loss {recorded} but evaluated {:.4}", test.loss);
    assert!(test.loss <= 100.0, "conv-ae-z32: test squared error {:.3} is above 100", test.loss);
}

/// Every shipped file records the command that makes it, with each training setting named (the
/// defaults move: the fast recipe is the default now, and the older files were made with the
/// tutorials'), and the settings it records as metadata agree with that command.
#[test]
fn every_shipped_file_records_a_command_that_names_its_settings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/weights");
    for file in SHIPPED_FILES {
        let meta = common::read_metadata(&std::fs::read(dir.join(format!("{file}.safetensors"))).unwrap());
        let command = &meta["trainer"];
        for flag in ["--batch ", "--lr ", "--decay ", "--seed ", "--epochs "] {
            assert!(command.contains(flag), "{file}: `{command}` does not name {flag}");
        }
        let value = |flag: &str| command.split(flag).nth(1).unwrap().split(' ').next().unwrap().to_string();
        assert_eq!(value("--batch "), meta["batch_size"], "{file}");
        assert_eq!(value("--lr "), meta["learning_rate"], "{file}");
        assert_eq!(value("--epochs "), meta["epochs"], "{file}");
        assert!(command.ends_with(" --dtype f16"), "{file}: `{command}` does not write f16");
        // The linear VAEs' fast recipe moves Adam's β2 to 0.99, so their files, made with the
        // tutorials' recipe, name the 0.999 they trained at.
        let kind = command.split(" -- ").nth(1).unwrap().split(' ').next().unwrap();
        if kind == "vae" || kind == "cvae" {
            assert_eq!(value("--beta2 "), "0.999", "{file}: `{command}`");
        }
        // The GANs' files: the fast recipe's averaged generator, and the cGAN's label gain.
        if file.contains("gan") {
            assert!(command.contains(" --average on"), "{file}: `{command}`");
            assert_eq!(command.contains(" --label-gain 10 "), file.starts_with("cgan"), "{file}: `{command}`");
        }
    }
}

/// The shipped files are f16 (half the download), and beside each linear one is its decoder
/// alone, what the page fetches for its first digits: the same tensors, to the byte, and the same
/// metadata.
#[test]
fn every_shipped_file_is_f16_with_its_decoder_beside_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/weights");
    for file in SHIPPED_FILES {
        let whole = std::fs::read(dir.join(format!("{file}.safetensors"))).unwrap();
        let w = safetensors::SafeTensors::deserialize(&whole).unwrap();
        assert!(w.tensors().iter().all(|(_, t)| t.dtype() == safetensors::Dtype::F16), "{file}: not every tensor is f16");
        let cfg = Lab::from_safetensors(&whole).unwrap().config();
        let decoder_path = dir.join(format!("{file}.decoder.safetensors"));
        if cfg.kind.is_convolutional() {
            // the light sampler has no convolutions: the page fetches these whole
            assert!(!decoder_path.exists(), "{file}: a decoder file that nothing reads");
            continue;
        }
        let decoder = std::fs::read(&decoder_path).unwrap();
        let d = safetensors::SafeTensors::deserialize(&decoder).unwrap();
        let mut names = d.names();
        names.sort();
        let mut want: Vec<String> = cfg.decoder_param_shapes().into_iter().map(|(n, _)| n).collect();
        want.sort();
        assert_eq!(names.into_iter().map(String::from).collect::<Vec<_>>(), want, "{file}");
        for name in &want {
            assert_eq!(d.tensor(name).unwrap().data(), w.tensor(name).unwrap().data(), "{file}: `{name}` differs");
        }
        let (mut wm, mut dm) = (common::read_metadata(&whole), common::read_metadata(&decoder));
        assert_eq!(dm.remove("part").as_deref(), Some("decoder"), "{file}");
        wm.remove("part");
        assert_eq!(dm, wm, "{file}: the decoder's metadata is not the whole file's");
    }
}

/// The latent-20 VAEs trained on L2 and L1 record the test loss (BCE + KL, whatever they trained
/// on) that evaluating them gives, and train on the loss their command names.
#[test]
fn the_l2_and_l1_vaes_record_their_test_loss_and_loss() {
    for (file, recon) in [("vae-z20-l2", "l2"), ("vae-z20-l1", "l1")] {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("www/weights/{file}.safetensors"));
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let lab = Lab::from_safetensors(&bytes).unwrap();
        assert_eq!(lab.config(), ModelConfig::vae(20, 400), "{file}");
        let test = lab.evaluate(&common::mnist().test).unwrap();
        let meta = common::read_metadata(&bytes);
        let recorded: f32 = meta["test_loss"].parse().unwrap();
        assert!((recorded - test.loss).abs() <= 0.01, "{file}: metadata test_loss {recorded} but evaluated {:.4}", test.loss);
        assert!(meta["trainer"].contains(&format!(" --recon {recon} ")), "{file}: {}", meta["trainer"]);
    }
}
