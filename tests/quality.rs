//! The quality yardstick: the metrics against closed forms, the shipped classifier's accuracy,
//! the shipped generative models' bars, and the README's table, all measured once by the `eval`
//! command.

use crate::common;

use latent_lab::metrics::{class_entropy, frechet_distance, symmetric_eigen, Gaussian};
use latent_lab::model::Kind;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

#[test]
fn symmetric_eigen_reconstructs_the_matrix() {
    let d = 6;
    let mut rng = common::Rng::new(3);
    let b: Vec<f64> = rng.vec(d * d, -1.0, 1.0).into_iter().map(f64::from).collect();
    // A = B Bᵀ is symmetric positive semi-definite.
    let mut a = vec![0f64; d * d];
    for i in 0..d {
        for j in 0..d {
            a[i * d + j] = (0..d).map(|k| b[i * d + k] * b[j * d + k]).sum();
        }
    }
    let (values, v) = symmetric_eigen(&a, d);
    for i in 0..d {
        for j in 0..d {
            let r: f64 = (0..d).map(|k| v[i * d + k] * values[k] * v[j * d + k]).sum();
            assert!((r - a[i * d + j]).abs() < 1e-9, "V Λ Vᵀ differs from A at ({i}, {j}): {r} vs {}", a[i * d + j]);
        }
    }
    assert!(values.iter().all(|&l| l > -1e-9), "eigenvalues of B Bᵀ must be ≥ 0: {values:?}");
    let trace: f64 = (0..d).map(|i| a[i * d + i]).sum();
    assert!((values.iter().sum::<f64>() - trace).abs() < 1e-9);
}

#[test]
fn frechet_distance_matches_closed_forms() {
    // Two diagonal Gaussians: FD = ‖μ₁ − μ₂‖² + Σ (σ₁ − σ₂)².
    let d = 3;
    let g = |mean: [f64; 3], sd: [f64; 3]| {
        let mut cov = vec![0f64; d * d];
        (0..d).for_each(|i| cov[i * d + i] = sd[i] * sd[i]);
        Gaussian { mean: mean.to_vec(), cov }
    };
    let a = g([0.0, 1.0, 2.0], [1.0, 2.0, 0.5]);
    let b = g([1.0, 1.0, 0.0], [3.0, 2.0, 1.5]);
    let want = 1.0 + 0.0 + 4.0 + 4.0 + 0.0 + 1.0;
    let got = frechet_distance(&a, &b);
    assert!((got - want).abs() < 1e-9, "FD {got}, want {want}");
    assert!(frechet_distance(&a, &a).abs() < 1e-9);
    // Fitting recovers mean and covariance: two points (0, 0) and (2, 4).
    let fit = Gaussian::fit(&[0.0, 0.0, 2.0, 4.0], 2).unwrap();
    assert_eq!(fit.mean, vec![1.0, 2.0]);
    assert_eq!(fit.cov, vec![2.0, 4.0, 4.0, 8.0]);
    assert!(Gaussian::fit(&[1.0, 2.0], 2).is_err(), "one sample has no covariance");
}

#[test]
fn class_entropy_is_ln_10_for_even_digits_and_zero_for_one() {
    assert!((class_entropy(&[5; 10]) - 10f64.ln()).abs() < 1e-12);
    assert_eq!(class_entropy(&[0, 0, 7, 0, 0, 0, 0, 0, 0, 0]), 0.0);
    assert!((class_entropy(&[1, 1, 0, 0, 0, 0, 0, 0, 0, 0]) - 2f64.ln()).abs() < 1e-12);
}

/// The shipped generative models, as the README's quality table lists them.
const SHIPPED: [&str; 11] = [
    "vae-z20.safetensors",
    "vae-z2.safetensors",
    "cvae-z2.safetensors",
    "gan-z64.safetensors",
    "cgan-z64.safetensors",
    "ae-z3.safetensors",
    "vae-z3.safetensors",
    "vae-z20-l2.safetensors",
    "vae-z20-l1.safetensors",
    "conv-vae-z20.safetensors",
    "conv-ae-z32.safetensors",
];

/// What `eval` printed: its line on the classifier and the real digits, and a row per model.
struct Evaluated {
    /// The classifier's accuracy on the 10,000 test digits, as measured and as recorded in its file.
    accuracy: f64,
    recorded_accuracy: String,
    /// The Fréchet distance of 10,000 real training digits to the test digits.
    real_frechet_distance: f64,
    rows: HashMap<String, Measured>,
    /// The reconstructions table: per model with an encoder, its cells as printed (file, test
    /// loss, Fréchet distance of the reconstructions).
    reconstructions: Vec<[String; 3]>,
}

/// One row of `eval`'s table.
#[derive(Debug)]
struct Measured {
    kind: String,
    frechet_distance: f64,
    class_entropy: f64,
    /// The share read as the digit asked for (conditional models).
    label_accuracy: Option<f64>,
    /// The cells as printed.
    cells: Vec<String>,
}

/// The real `eval` command over every shipped model, as the README tells a reader to run it, once
/// per test binary (10,000 samples each): every bar and the README's table are checked against
/// this one measurement.
fn evaluated() -> &'static Evaluated {
    static EVAL: OnceLock<Evaluated> = OnceLock::new();
    EVAL.get_or_init(|| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_eval"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(SHIPPED.iter().map(|f| format!("www/weights/{f}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "eval failed: {}", String::from_utf8_lossy(&out.stderr));
        let printed = String::from_utf8(out.stdout).unwrap();
        println!("{printed}");
        let number = |c: &str| c.trim_end_matches('%').parse::<f64>().unwrap_or_else(|_| panic!("eval printed `{c}`"));
        let header = printed.lines().next().unwrap_or_default();
        let after = |label: &str| -> &str {
            let at = header.find(label).unwrap_or_else(|| panic!("eval's first line has no `{label}`: {header}"));
            header[at + label.len()..].split([' ', ',', ';', ')']).next().unwrap()
        };
        let rows = SHIPPED
            .iter()
            .map(|&file| {
                let line = printed
                    .lines()
                    .find(|l| l.starts_with(&format!("| {file} |")))
                    .unwrap_or_else(|| panic!("eval printed no row for {file}:\n{printed}"));
                let cells: Vec<String> = line.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect();
                assert_eq!(cells.len(), 5, "{file}: {line}");
                let m = Measured {
                    kind: cells[1].clone(),
                    frechet_distance: number(&cells[2]),
                    class_entropy: number(&cells[3]),
                    label_accuracy: (cells[4] != "—").then(|| number(&cells[4]) / 100.0),
                    cells,
                };
                (file.to_string(), m)
            })
            .collect();
        let reconstructions = printed
            .lines()
            .filter_map(|l| {
                let cells: Vec<String> = l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect();
                (l.starts_with("| ") && cells.len() == 3 && cells[1].parse::<f64>().is_ok()).then(|| cells.try_into().unwrap())
            })
            .collect();
        Evaluated {
            reconstructions,
            accuracy: number(after("test accuracy ")),
            recorded_accuracy: after("measured, ").to_string(),
            real_frechet_distance: number(after("real training digits lie at Fréchet distance ")),
            rows,
        }
    })
}

#[test]
fn shipped_classifier_reads_at_least_98_5_percent_of_test_digits() {
    let e = evaluated();
    assert!(e.accuracy >= 0.985, "test accuracy {:.2}% is below 98.5%", e.accuracy * 100.0);
    assert_eq!(e.recorded_accuracy, format!("{:.4}", e.accuracy), "the classifier file records another accuracy");
    // Real training digits are near the test digits' statistics, and nearer than any generator.
    let fd = e.real_frechet_distance;
    assert!(fd > 0.0, "train and test digits are not identical sets");
    for file in ["vae-z20.safetensors", "gan-z64.safetensors"] {
        let generated = e.rows[file].frechet_distance;
        assert!(fd < generated, "real training digits ({fd:.3}) should be closer to the test digits than {file}'s samples ({generated:.3})");
    }
}

#[test]
fn conditional_models_draw_the_digit_asked_for_at_least_90_percent_of_the_time() {
    for file in ["cgan-z64.safetensors", "cvae-z2.safetensors"] {
        let q = &evaluated().rows[file];
        assert!(Kind::parse(&q.kind).unwrap().is_conditional(), "{file} is {}", q.kind);
        let accuracy = q.label_accuracy.unwrap_or_else(|| panic!("{file}: eval printed no share read as asked"));
        assert!(accuracy >= 0.90, "{file}: {:.2}% of samples read as the digit asked for", accuracy * 100.0);
    }
}

#[test]
fn unconditional_gan_covers_the_digits() {
    let q = &evaluated().rows["gan-z64.safetensors"];
    assert_eq!(Kind::parse(&q.kind).unwrap(), Kind::Gan);
    assert!(q.label_accuracy.is_none());
    let bar = 0.95 * 10f64.ln();
    assert!(q.class_entropy >= bar, "class entropy {:.4} is below 0.95 × ln 10 = {bar:.4} (eval prints the histogram)", q.class_entropy);
}

/// The tutorials' claim, measured: random codes from N(0, I) decoded by the plain autoencoder are
/// further from real digits (Fréchet distance) and cover fewer of them (class entropy) than the
/// same codes through the VAE with the same code size, since nothing pulled the autoencoder's
/// codes towards N(0, I).
#[test]
fn random_codes_through_the_autoencoder_are_worse_digits_than_through_the_vae() {
    // The linear pair shares its code size; the convolutional autoencoder's code is larger (32
    // against the conv VAE's 20), which gives it more room, not less.
    for (ae, vae) in [("ae-z3", "vae-z3"), ("conv-ae-z32", "conv-vae-z20")] {
        let (a, v) = (&evaluated().rows[&format!("{ae}.safetensors")], &evaluated().rows[&format!("{vae}.safetensors")]);
        assert!(a.kind.ends_with("ae") && v.kind.ends_with("vae") && !a.kind.ends_with("vae"), "{ae} is a {}, {vae} a {}", a.kind, v.kind);
        assert!(
            a.frechet_distance > v.frechet_distance,
            "{ae}'s samples ({:.1}) are no further from digits than {vae}'s ({:.1})",
            a.frechet_distance,
            v.frechet_distance
        );
        assert!(a.class_entropy < v.class_entropy, "entropy: {ae} {:.4}, {vae} {:.4}", a.class_entropy, v.class_entropy);
    }
}

/// The blur argument, measured on the shipped latent-20 VAEs that differ only in their loss: the
/// squared error's reconstructions (an average of the plausible strokes) are the furthest from the
/// real digits, further than BCE's and than L1's (a median); and the README's reconstructions table
/// is what `eval` prints.
#[test]
fn l2_reconstructions_are_the_blurriest_and_the_readme_says_what_eval_prints() {
    let rows = &evaluated().reconstructions;
    let fd = |file: &str| -> f64 {
        let row = rows.iter().find(|r| r[0] == file).unwrap_or_else(|| panic!("eval printed no reconstructions of {file}"));
        row[2].parse().unwrap()
    };
    let (bce, l2, l1) = (fd("vae-z20.safetensors"), fd("vae-z20-l2.safetensors"), fd("vae-z20-l1.safetensors"));
    assert!(l2 > 2.0 * bce && l2 > l1, "reconstructions' distance: BCE {bce}, L2 {l2}, L1 {l1}");
    let encoders: Vec<&str> = SHIPPED.iter().copied().filter(|f| !f.starts_with("gan") && !f.starts_with("cgan")).collect();
    assert_eq!(rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>(), encoders, "one row per model with an encoder");
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for row in rows {
        let line = readme
            .lines()
            .find(|l| l.starts_with(&format!("| {} | ", row[0])) && l.matches('|').count() == 4)
            .unwrap_or_else(|| panic!("the README's reconstructions table has no row for {}", row[0]));
        let cells: Vec<f64> = line.trim_matches('|').split('|').skip(1).map(|c| c.trim().parse().unwrap()).collect();
        assert!((cells[0] - row[1].parse::<f64>().unwrap()).abs() <= 0.01, "{}: README {line}, eval {row:?}", row[0]);
        assert!((cells[1] - row[2].parse::<f64>().unwrap()).abs() <= 0.05, "{}: README {line}, eval {row:?}", row[0]);
    }
}

/// The README's sample-quality table: (file, kind, FD, entropy, label accuracy) per row.
fn readme_table() -> Vec<[String; 5]> {
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(".safetensors |"))
        .filter_map(|l| {
            let cells: Vec<String> = l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect();
            (cells.len() == 5 && cells[2].parse::<f64>().is_ok()).then(|| cells.try_into().unwrap())
        })
        .collect()
}

#[test]
fn readme_quality_table_is_what_eval_prints() {
    let rows = readme_table();
    let files: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(files, SHIPPED, "the README's quality table lists the shipped models in this order");
    for row in &rows {
        let cells = &evaluated().rows[&row[0]].cells;
        assert_eq!(cells[1], row[1], "{}: kind", row[0]);
        // Matmul summation order can differ between CPUs (gemm picks kernels by CPU features), so
        // the last printed digit may move; anything more is a different model or a changed metric.
        let close = |a: &str, b: &str, tol: f64| {
            let (a, b) = (a.trim_end_matches('%').parse::<f64>().unwrap(), b.trim_end_matches('%').parse::<f64>().unwrap());
            (a - b).abs() <= tol
        };
        assert!(close(&cells[2], &row[2], 0.05), "{}: README says Fréchet distance {}, eval prints {}", row[0], row[2], cells[2]);
        assert!(close(&cells[3], &row[3], 0.002), "{}: README says entropy {}, eval prints {}", row[0], row[3], cells[3]);
        if row[4] == "—" {
            assert_eq!(cells[4], "—", "{}", row[0]);
        } else {
            assert!(close(&cells[4], &row[4], 0.05), "{}: README says {}, eval prints {}", row[0], row[4], cells[4]);
        }
    }
}

/// The page's sharpness measure: two sets of images through the classifier's features. The same
/// digits are at distance 0, two halves of the test set close, real digits against blurred copies
/// of themselves further, against noise far; a set of one image or a bad pixel is refused by name.
#[test]
fn frechet_distance_of_images_orders_real_blurred_and_noise() {
    use latent_lab::classifier::ClassifierModel;
    use latent_lab::metrics::frechet_distance_of_images;
    let bytes = std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/weights/classifier.safetensors")).unwrap();
    let c = ClassifierModel::load(&bytes, &candle_core::Device::Cpu).unwrap();
    let test = common::mnist().test.take(1000);
    let images: Vec<f32> = test.images.iter().map(|&p| p as f32 / 255.0).collect();
    let (a, b) = images.split_at(500 * 784);
    // a 3×3 box blur of each digit: what an averaging decoder does to strokes
    let blurred: Vec<f32> = a
        .chunks(784)
        .flat_map(|img| {
            (0..784).map(move |i| {
                let (y, x) = (i / 28, i % 28);
                let mut s = 0.0;
                for (dy, dx) in (-1..=1).flat_map(|dy| (-1..=1).map(move |dx| (dy, dx))) {
                    let (yy, xx) = (y + dy, x + dx);
                    if (0..28).contains(&yy) && (0..28).contains(&xx) {
                        s += img[(yy * 28 + xx) as usize];
                    }
                }
                s / 9.0
            })
        })
        .collect();
    let noise = common::Rng::new(5).vec(500 * 784, 0.0, 1.0);
    let fd = |x: &[f32], y: &[f32]| frechet_distance_of_images(&c.net, x, y).unwrap();
    let (same, halves, blur, random) = (fd(a, a), fd(a, b), fd(a, &blurred), fd(a, &noise));
    eprintln!("FD: same {same:.4}, halves {halves:.2}, blurred {blur:.2}, noise {random:.1}");
    assert!(same.abs() < 1e-3, "the same digits at {same}");
    assert!(halves < blur && blur < random, "halves {halves}, blurred {blur}, noise {random}");
    common::expect_err(frechet_distance_of_images(&c.net, &a[..784], b), &["at least 2 images", "first set has 1"]);
    common::expect_err(frechet_distance_of_images(&c.net, a, &[2.0; 1568]), &["pixel 0 is 2"]);
}
