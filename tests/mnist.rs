//! The IDX parser and dataset files, against the real MNIST files and corrupted copies of them.

use crate::common;

use crate::common::{expect_err, idx, mnist};
use latent_lab::mnist::{dataset_from_idx, default_dir, load_dir, pack, parse_idx, unpack, Dataset, IMAGE_PIXELS};

fn raw(name: &str) -> Vec<u8> {
    let p = default_dir().join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Known per-class counts of the MNIST training and test sets.
const TRAIN_COUNTS: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

fn counts(d: &Dataset) -> [usize; 10] {
    let mut c = [0usize; 10];
    for &l in &d.labels {
        c[l as usize] += 1;
    }
    c
}

#[test]
fn real_files_parse_with_known_sizes_and_counts() {
    let m = mnist();
    assert_eq!(m.train.len(), 60_000);
    assert_eq!(m.test.len(), 10_000);
    assert_eq!(m.train.images.len(), 60_000 * 784);
    assert_eq!(m.test.images.len(), 10_000 * 784);

    for (name, n) in [("train-images-idx3-ubyte", 60_000), ("t10k-images-idx3-ubyte", 10_000)] {
        let bytes = raw(name);
        let (dims, body) = parse_idx(&bytes).unwrap();
        assert_eq!(dims, vec![n, 28, 28], "{name}");
        assert_eq!(body.len(), n * 784);
        assert_eq!(body, &bytes[16..], "{name}: data is everything after the 16-byte header");
    }
    for (name, n) in [("train-labels-idx1-ubyte", 60_000), ("t10k-labels-idx1-ubyte", 10_000)] {
        let bytes = raw(name);
        let (dims, body) = parse_idx(&bytes).unwrap();
        assert_eq!(dims, vec![n], "{name}");
        assert_eq!(body, &bytes[8..], "{name}: data is everything after the 8-byte header");
    }

    assert!(m.train.labels.iter().all(|&l| l < 10));
    assert!(m.test.labels.iter().all(|&l| l < 10));
    assert_eq!(counts(&m.train), TRAIN_COUNTS);
    assert_eq!(counts(&m.test), TEST_COUNTS);
    assert_eq!(m.train.labels[..5], [5, 0, 4, 1, 9], "first training labels");
    assert_eq!(m.test.labels[..5], [7, 2, 1, 0, 4], "first test labels");

    // Pixel sum of the first training image, straight from the raw bytes after the header.
    let img = raw("train-images-idx3-ubyte");
    let expected: u64 = img[16..16 + 784].iter().map(|&b| b as u64).sum();
    let got: u64 = m.train.images[..784].iter().map(|&b| b as u64).sum();
    assert!(expected > 0);
    assert_eq!(got, expected);
    // image_f32 scales to [0, 1] as ToTensor does.
    let mut px = Vec::new();
    m.train.image_f32(0, &mut px);
    assert_eq!(px.len(), IMAGE_PIXELS);
    let sum: f64 = px.iter().map(|&p| p as f64).sum();
    assert!((sum - expected as f64 / 255.0).abs() < 1e-3, "{sum} vs {}", expected as f64 / 255.0);
    assert!(px.iter().all(|p| (0.0..=1.0).contains(p)));
    assert_eq!(px.iter().cloned().fold(0f32, f32::max), 1.0);
}

#[test]
fn corrupted_idx_files_are_rejected_with_clear_messages() {
    let images = raw("train-images-idx3-ubyte");
    let labels = raw("train-labels-idx1-ubyte");
    // A small valid pair to corrupt: the first 100 examples.
    let n = 100;
    let small_img = idx(&[n, 28, 28], &images[16..16 + n * 784]);
    let small_lbl = idx(&[n], &labels[8..8 + n]);
    let d = dataset_from_idx(&small_img, &small_lbl).unwrap();
    assert_eq!(d, mnist().train.take(n));

    // Truncated: the real file missing its last byte, and one cut inside the header.
    expect_err(parse_idx(&images[..images.len() - 1]), &["truncated", "47039999", "47040000"]);
    expect_err(parse_idx(&images[..10]), &["truncated"]);
    expect_err(dataset_from_idx(&small_img[..small_img.len() - 784], &small_lbl), &["images file", "truncated"]);
    // Too long is not "truncated", but still an error.
    let mut long = small_lbl.clone();
    long.push(3);
    let msg = expect_err(parse_idx(&long), &["101 data bytes", "need 100"]);
    assert!(!msg.contains("truncated"), "{msg}");

    // Wrong magic.
    let mut bad = small_img.clone();
    bad[0] = 0x1f;
    expect_err(parse_idx(&bad), &["not an IDX file"]);
    expect_err(parse_idx(b"PK\x03\x04rest of a zip file"), &["not an IDX file"]);
    expect_err(parse_idx(&[0, 0]), &["too short"]);

    // Wrong element type: 0x0D is IDX's float.
    let mut bad = small_img.clone();
    bad[2] = 0x0D;
    expect_err(parse_idx(&bad), &["element type 0x0d", "unsigned bytes"]);

    // Swapped files: images where labels belong.
    expect_err(dataset_from_idx(&small_lbl, &small_img), &["dimensions [100]", "expected [n, 28, 28]"]);

    // Labels count not matching the images.
    let short_lbl = idx(&[n - 1], &labels[8..8 + n - 1]);
    expect_err(dataset_from_idx(&small_img, &short_lbl), &["100 images", "99 labels"]);
    // A label that is not a digit.
    let mut bad_lbl = small_lbl.clone();
    bad_lbl[8 + 7] = 10;
    expect_err(dataset_from_idx(&small_img, &bad_lbl), &["label 10", "not a digit"]);

    // load_dir on a directory holding a truncated copy names the file.
    let dir = std::env::temp_dir().join(format!("latent-lab-idx-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        std::fs::write(dir.join(f), raw(f)).unwrap();
    }
    assert_eq!(load_dir(&dir).unwrap().test.labels, mnist().test.labels);
    let t10k = raw("t10k-images-idx3-ubyte");
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), &t10k[..t10k.len() / 2]).unwrap();
    expect_err(load_dir(&dir), &["t10k-images-idx3-ubyte", "truncated"]);
    std::fs::remove_file(dir.join("t10k-labels-idx1-ubyte")).unwrap();
    expect_err(load_dir(&dir), &["t10k-labels-idx1-ubyte"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pack_unpack_round_trip() {
    let m = mnist();
    let bytes = pack(m).unwrap();
    // Four u8 tensors plus a small header.
    let data_len = 70_000 * 785;
    assert!(bytes.len() > data_len && bytes.len() < data_len + 4096, "{}", bytes.len());
    let back = unpack(&bytes).unwrap();
    assert_eq!(back.train, m.train);
    assert_eq!(back.test, m.test);
    let meta = common::read_metadata(&bytes);
    assert_eq!(meta.get("dataset").map(String::as_str), Some("mnist"));

    expect_err(unpack(&bytes[..1000]), &["not valid safetensors"]);
    // A weights-like file with the wrong tensors.
    let other = common::write_safetensors(&[("x".to_string(), vec![1], vec![0.0])], None);
    expect_err(unpack(&other), &["no tensor `train.images`"]);
}
