//! Sample quality, measured with the digit classifier (`classifier.rs`):
//!
//! - Fréchet distance between Gaussians fitted to the classifier's 128 penultimate features of
//!   generated samples and of real test digits (FID's formula, with our MNIST classifier in place
//!   of Inception): ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½). Lower is closer to real digits.
//! - Entropy of the predicted-class histogram, −Σ pₖ ln pₖ: ln 10 ≈ 2.303 when every digit is
//!   generated equally often; a GAN that collapses onto a few digits scores lower.
//! - For conditional models, the fraction of samples classified as the digit they were asked for.

use crate::classifier::{features_and_predictions, Classifier, ClassifierModel, FEATURES};
use crate::lab::Lab;
use crate::mnist::{Dataset, CLASSES};
use crate::mnist::batch_images;
use anyhow::{ensure, Result};
use candle_core::Device;
use rand::{rngs::StdRng, Rng, SeedableRng};
use rand_distr::StandardNormal;

/// Mean and covariance of a set of feature vectors.
pub struct Gaussian {
    pub mean: Vec<f64>,
    /// d × d, row-major; the unbiased estimate (divided by n − 1).
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// Fits features [n, d] (n ≥ 2).
    pub fn fit(features: &[f32], d: usize) -> Result<Self> {
        ensure!(d > 0 && features.len().is_multiple_of(d), "{} values is not a whole number of {d}-wide rows", features.len());
        let n = features.len() / d;
        ensure!(n >= 2, "a covariance needs at least 2 samples, got {n}");
        let mut mean = vec![0f64; d];
        for row in features.chunks(d) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut cov = vec![0f64; d * d];
        let mut centred = vec![0f64; d];
        for row in features.chunks(d) {
            for ((c, &v), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = v as f64 - m;
            }
            for i in 0..d {
                let ci = centred[i];
                for j in i..d {
                    cov[i * d + j] += ci * centred[j];
                }
            }
        }
        for i in 0..d {
            for j in i..d {
                let v = cov[i * d + j] / (n - 1) as f64;
                cov[i * d + j] = v;
                cov[j * d + i] = v;
            }
        }
        Ok(Self { mean, cov })
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }
}

/// ‖μ₁ − μ₂‖² + tr(Σ₁) + tr(Σ₂) − 2 tr((Σ₁^½ Σ₂ Σ₁^½)^½). The last trace equals tr((Σ₁Σ₂)^½), and
/// Σ₁^½ Σ₂ Σ₁^½ is symmetric positive semi-definite, so both square roots come from symmetric
/// eigendecompositions.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let d = a.dim();
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |m: &[f64]| (0..d).map(|i| m[i * d + i]).sum::<f64>();
    let root_a = psd_sqrt(&a.cov, d);
    let inner = matmul(&matmul(&root_a, &b.cov, d), &root_a, d);
    let (eigenvalues, _) = symmetric_eigen(&inner, d);
    let cross: f64 = eigenvalues.iter().map(|&l| l.max(0.0).sqrt()).sum();
    mean_term + trace(&a.cov) + trace(&b.cov) - 2.0 * cross
}

fn matmul(a: &[f64], b: &[f64], d: usize) -> Vec<f64> {
    let mut out = vec![0f64; d * d];
    for i in 0..d {
        for k in 0..d {
            let aik = a[i * d + k];
            for j in 0..d {
                out[i * d + j] += aik * b[k * d + j];
            }
        }
    }
    out
}

/// The symmetric square root V·diag(√max(λ, 0))·Vᵀ of a symmetric positive semi-definite matrix.
fn psd_sqrt(m: &[f64], d: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(m, d);
    let mut out = vec![0f64; d * d];
    for (k, &l) in values.iter().enumerate() {
        let s = l.max(0.0).sqrt();
        for i in 0..d {
            let vik = vectors[i * d + k] * s;
            for j in 0..d {
                out[i * d + j] += vik * vectors[j * d + k];
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (as the columns of V, row-major) of a symmetric matrix, by cyclic
/// Jacobi rotations: each rotation zeroes one off-diagonal pair; sweeps repeat until the
/// off-diagonal mass is negligible. O(d³) per sweep, a handful of sweeps; d is 128 here.
pub fn symmetric_eigen(m: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v = vec![0f64; d * d];
    (0..d).for_each(|i| v[i * d + i] = 1.0);
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..d).flat_map(|i| (i + 1..d).map(move |j| (i, j))).map(|(i, j)| 2.0 * a[i * d + j].powi(2)).sum();
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..d {
            for q in p + 1..d {
                let apq = a[p * d + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                // The rotation angle θ with tan 2θ = 2·a_pq / (a_qq − a_pp), taking the smaller root.
                let theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..d {
                    let (akp, akq) = (a[k * d + p], a[k * d + q]);
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for k in 0..d {
                    let (apk, aqk) = (a[p * d + k], a[q * d + k]);
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for k in 0..d {
                    let (vkp, vkq) = (v[k * d + p], v[k * d + q]);
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..d).map(|i| a[i * d + i]).collect(), v)
}

/// −Σ pₖ ln pₖ over the class histogram (natural log; ln 10 for a uniform histogram).
pub fn class_entropy(histogram: &[usize]) -> f64 {
    let n: usize = histogram.iter().sum();
    histogram
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n as f64;
            -p * p.ln()
        })
        .sum()
}

pub fn class_histogram(predictions: &[u8]) -> [usize; CLASSES] {
    let mut h = [0usize; CLASSES];
    for &p in predictions {
        h[p as usize % CLASSES] += 1;
    }
    h
}

/// The Fréchet distance between two sets of images (each flattened [n, 784] in [0, 1], n ≥ 2),
/// as the classifier's features see them: the page's measure of how sharp a VAE's
/// reconstructions are (reconstructions against the digits they rebuild).
pub fn frechet_distance_of_images(classifier: &Classifier, a: &[f32], b: &[f32]) -> Result<f64> {
    let fit = |images: &[f32], which: &str| -> Result<Gaussian> {
        let n = crate::input::count_images(images)?;
        ensure!(n >= 2, "a Fréchet distance needs at least 2 images in each set; the {which} set has {n}");
        Gaussian::fit(&features_and_predictions(classifier, images)?.0, FEATURES)
    };
    Ok(frechet_distance(&fit(a, "first")?, &fit(b, "second")?))
}

/// The Fréchet distance of `lab`'s reconstructions of `data` (decoded from their codes; a
/// conditional model is given each digit's label) to `reference`, in 1,000-digit calls: how sharp
/// what it rebuilds is (`eval`'s second table). `lab` must have an encoder.
pub fn measure_reconstructions(lab: &Lab, classifier: &Classifier, reference: &Gaussian, data: &Dataset) -> Result<f64> {
    let conditional = lab.config().kind.is_conditional();
    let mut features = Vec::with_capacity(data.len() * FEATURES);
    let mut images = Vec::with_capacity(1000 * crate::mnist::IMAGE_PIXELS);
    for start in (0..data.len()).step_by(1000) {
        let end = (start + 1000).min(data.len());
        images.clear();
        (start..end).for_each(|i| data.image_f32(i, &mut images));
        let (rebuilt, _) = lab.reconstruct(&images, conditional.then(|| &data.labels[start..end]))?;
        features.extend(features_and_predictions(classifier, &rebuilt)?.0);
    }
    Ok(frechet_distance(&Gaussian::fit(&features, FEATURES)?, reference))
}

/// Real digits as the classifier sees them: the statistics of its features (the reference that
/// samples are compared to) and the share it reads correctly, from one pass over `data`.
pub struct RealDigits {
    pub features: Gaussian,
    pub accuracy: f64,
}

pub fn measure_real(classifier: &Classifier, data: &Dataset, device: &Device) -> Result<RealDigits> {
    ensure!(data.len() >= 2, "measuring real digits needs at least 2 of them");
    let indices: Vec<usize> = (0..data.len()).collect();
    let images = batch_images(data, &indices, device)?.flatten_all()?.to_vec1::<f32>()?;
    let (features, predictions) = features_and_predictions(classifier, &images)?;
    let right = predictions.iter().zip(&data.labels).filter(|(p, y)| p == y).count();
    Ok(RealDigits { features: Gaussian::fit(&features, FEATURES)?, accuracy: right as f64 / data.len() as f64 })
}

/// The yardstick `eval` and `time-to-digits` measure with: the classifier, and its reading of the
/// real test digits that samples are compared to.
pub struct Yardstick {
    pub classifier: ClassifierModel,
    pub test: RealDigits,
}

impl Yardstick {
    /// The classifier from its safetensors bytes, and what it reads in `test`.
    pub fn new(classifier_bytes: &[u8], test: &Dataset, device: &Device) -> Result<Self> {
        let classifier = ClassifierModel::load(classifier_bytes, device)?;
        let test = measure_real(&classifier.net, test, device)?;
        Ok(Self { classifier, test })
    }

    /// `measure_samples` against the test digits.
    pub fn measure(&self, lab: &Lab, n: usize, seed: u64) -> Result<SampleQuality> {
        measure_samples(lab, &self.classifier.net, &self.test.features, n, seed)
    }
}

/// What `eval` reports for one generative model.
#[derive(Clone, Debug)]
pub struct SampleQuality {
    pub samples: usize,
    pub frechet_distance: f64,
    pub class_entropy: f64,
    pub histogram: [usize; CLASSES],
    /// Conditional models: the fraction of samples classified as the digit asked for.
    pub label_accuracy: Option<f64>,
}

/// Draws `n` samples from z ~ N(0, I) seeded by `seed` (a conditional model is asked for each
/// digit in turn, n/10 of each) and measures them against `reference`.
pub fn measure_samples(
    lab: &Lab,
    classifier: &Classifier,
    reference: &Gaussian,
    n: usize,
    seed: u64,
) -> Result<SampleQuality> {
    ensure!(n >= 2, "measuring needs at least 2 samples");
    let cfg = lab.config();
    let mut rng = StdRng::seed_from_u64(seed);
    let conditional = cfg.kind.is_conditional();
    let (mut features, mut predictions, mut asked) = (Vec::new(), Vec::new(), Vec::new());
    let mut start = 0;
    while start < n {
        let m = (n - start).min(1000);
        let z: Vec<f32> = (0..m * cfg.latent).map(|_| rng.sample(StandardNormal)).collect();
        let labels: Vec<u8> = (start..start + m).map(|i| (i % CLASSES) as u8).collect();
        let images = lab.sample(&z, conditional.then_some(labels.as_slice()))?;
        let (f, p) = features_and_predictions(classifier, &images)?;
        features.extend(f);
        predictions.extend(p);
        asked.extend(labels);
        start += m;
    }
    let histogram = class_histogram(&predictions);
    let label_accuracy = conditional.then(|| {
        predictions.iter().zip(&asked).filter(|(p, a)| p == a).count() as f64 / n as f64
    });
    Ok(SampleQuality {
        samples: n,
        frechet_distance: frechet_distance(&Gaussian::fit(&features, FEATURES)?, reference),
        class_entropy: class_entropy(&histogram),
        histogram,
        label_accuracy,
    })
}
