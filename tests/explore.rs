//! Looking at the latent space: the map's projection, drawn digits made MNIST-like, reconstructions.

use crate::common;

use crate::common::{expect_err, Rng};
use latent_lab::explore::{center_like_mnist, Pca};
use latent_lab::lab::Lab;
use latent_lab::mnist::{self, IMAGE_PIXELS};
use latent_lab::model::{Kind, ModelConfig};

#[test]
fn pca_finds_the_directions_of_largest_spread() {
    // Points spread 10× along (1, 1, 0)/√2, 3× along (0, 0, 1), 0.1× along (1, −1, 0)/√2, around (5, −2, 1).
    let mut rng = Rng::new(7);
    let s = std::f32::consts::FRAC_1_SQRT_2;
    let mut pts = Vec::new();
    for _ in 0..2000 {
        let (a, b, c) = (rng.uniform(-1.0, 1.0) * 10.0, rng.uniform(-1.0, 1.0) * 3.0, rng.uniform(-1.0, 1.0) * 0.1);
        pts.extend([5.0 + a * s + c * s, -2.0 + a * s - c * s, 1.0 + b]);
    }
    let pca = Pca::fit(&pts, 3).unwrap();
    let (a1, a2) = pca.axes.split_at(3);
    assert!((a1[0] - s).abs() < 0.01 && (a1[1] - s).abs() < 0.01 && a1[2].abs() < 0.01, "axis 1 {a1:?}");
    assert!(a2[0].abs() < 0.02 && a2[1].abs() < 0.02 && (a2[2] - 1.0).abs() < 0.01, "axis 2 {a2:?}");
    assert!((pca.mean[0] - 5.0).abs() < 0.5 && (pca.mean[1] + 2.0).abs() < 0.5, "mean {:?}", pca.mean);
    // Variances 100/3, 9/3, 0.01/3 (uniform on ±k has variance k²/3): shares ≈ 0.917 and 0.083.
    assert!((pca.explained[0] - 0.917).abs() < 0.02 && (pca.explained[1] - 0.083).abs() < 0.02, "{:?}", pca.explained);
    // Projecting and unprojecting a point on the plane returns it.
    let on_plane: Vec<f32> = (0..3).map(|i| pca.mean[i] + 2.0 * a1[i] - 1.5 * a2[i]).collect();
    let xy = pca.project(&on_plane).unwrap();
    assert!((xy[0] - 2.0).abs() < 1e-4 && (xy[1] + 1.5).abs() < 1e-4, "{xy:?}");
    let back = pca.unproject(&xy).unwrap();
    for i in 0..3 {
        assert!((back[i] - on_plane[i]).abs() < 1e-4);
    }
    expect_err(Pca::fit(&pts, 1), &["at least 2 latent dimensions"]);
    expect_err(Pca::fit(&pts[..5], 3), &["not a whole number"]);
    expect_err(Pca::fit(&[0.0, f32::NAN, 1.0, 2.0], 2), &["value 1 is NaN"]);
}

/// Centre of mass (x, y) and the ink's bounding box (x0, x1, y0, y1) of a 28×28 image.
fn geometry(img: &[f32]) -> ((f32, f32), (usize, usize, usize, usize)) {
    let (mut m, mut mx, mut my) = (0f32, 0f32, 0f32);
    let (mut x0, mut x1, mut y0, mut y1) = (28, 0, 28, 0);
    for y in 0..28 {
        for x in 0..28 {
            let v = img[y * 28 + x];
            m += v;
            mx += v * (x as f32 + 0.5);
            my += v * (y as f32 + 0.5);
            if v > 0.05 {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
            }
        }
    }
    ((mx / m, my / m), (x0, x1, y0, y1))
}

#[test]
fn a_drawing_is_scaled_to_20_pixels_and_centred_by_its_mass() {
    // A thick vertical bar drawn small in the top-left corner of a 200 × 200 pad.
    let (w, h) = (200, 200);
    let mut pad = vec![0f32; w * h];
    for y in 10..70 {
        for x in 20..32 {
            pad[y * w + x] = 1.0;
        }
    }
    let img = center_like_mnist(&pad, w, h).unwrap();
    assert_eq!(img.len(), IMAGE_PIXELS);
    let ((cx, cy), (x0, x1, y0, y1)) = geometry(&img);
    assert!((cx - 14.0).abs() <= 0.6 && (cy - 14.0).abs() <= 0.6, "centre of mass ({cx}, {cy})");
    assert_eq!(y1 - y0 + 1, 20, "the long side becomes 20 pixels");
    assert_eq!(x1 - x0 + 1, 4, "the aspect is kept: 12/60 of 20");
    assert!(img.iter().all(|p| (0.0..=1.0).contains(p)));

    // The same shape drawn elsewhere and larger gives the same image.
    let mut big = vec![0f32; w * h];
    for y in 100..190 {
        for x in 150..168 {
            big[y * w + x] = 1.0;
        }
    }
    let img2 = center_like_mnist(&big, w, h).unwrap();
    let diff: f32 = img.iter().zip(&img2).map(|(a, b)| (a - b).abs()).sum();
    assert!(diff < 2.0, "moved and scaled copies differ by {diff}");

    expect_err(center_like_mnist(&vec![0.0; w * h], w, h), &["the drawing is empty"]);
    expect_err(center_like_mnist(&pad[..100], w, h), &["100 pixels for a 200×200 drawing"]);
    let mut bad = pad.clone();
    bad[3] = 2.0;
    expect_err(center_like_mnist(&bad, w, h), &["pixel 3 is 2", "[0, 1]"]);
}

#[test]
fn a_real_digit_survives_centring_and_reconstructs_close_to_itself() {
    let test = &common::mnist().test;
    let mut px = Vec::new();
    test.image_f32(0, &mut px);
    // MNIST digits were made this way: re-centring one keeps its ink, its size and its place.
    let again = center_like_mnist(&px, 28, 28).unwrap();
    let ink = |v: &[f32]| v.iter().sum::<f32>();
    assert!((ink(&again) / ink(&px) - 1.0).abs() < 0.25, "ink {} became {}", ink(&px), ink(&again));
    let ((cx, cy), (x0, x1, y0, y1)) = geometry(&again);
    assert!((cx - 14.0).abs() <= 0.6 && (cy - 14.0).abs() <= 0.6, "centre of mass ({cx}, {cy})");
    assert!((19..=21).contains(&(x1 - x0 + 1).max(y1 - y0 + 1)), "box {x0}..{x1} × {y0}..{y1}");
    let ((ox, oy), _) = geometry(&px);
    assert!((ox - cx).abs() < 1.5 && (oy - cy).abs() < 1.5, "the digit moved from ({ox}, {oy}) to ({cx}, {cy})");

    let lab = Lab::from_safetensors(&std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/www/weights/vae-z20.safetensors")).unwrap()).unwrap();
    let mut batch = Vec::new();
    for i in 0..8 {
        test.image_f32(i, &mut batch);
    }
    let (recon, losses) = lab.reconstruct(&batch, None).unwrap();
    assert_eq!((recon.len(), losses.len()), (8 * IMAGE_PIXELS, 8));
    // Each reconstruction is nearer its own digit than any other digit's reconstruction is.
    let d = |a: &[f32], b: &[f32]| -> f32 { a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum() };
    for i in 0..8 {
        let own = d(&recon[i * 784..(i + 1) * 784], &batch[i * 784..(i + 1) * 784]);
        for j in (0..8).filter(|&j| j != i) {
            assert!(own < d(&recon[j * 784..(j + 1) * 784], &batch[i * 784..(i + 1) * 784]), "digit {i} vs {j}");
        }
    }
    // The per-image losses are of the size the shipped test loss (103.8 per digit) says.
    let mean = losses.iter().sum::<f32>() / 8.0;
    assert!((40.0..200.0).contains(&mean), "mean per-image loss {mean}");

    let gan = Lab::fresh(ModelConfig { kind: Kind::Gan, latent: 4, hidden: 8 }, 1).unwrap();
    expect_err(gan.reconstruct(&batch, None), &["`gan` model has no encoder"]);
    // The test-split file round-trips.
    let bytes = mnist::pack_test(test).unwrap();
    let back = mnist::unpack_split(&bytes, "test").unwrap();
    assert_eq!((back.images.len(), back.labels), (test.images.len(), test.labels.clone()));
    expect_err(mnist::unpack_split(&bytes, "train"), &["no tensor `train.images`"]);
}
