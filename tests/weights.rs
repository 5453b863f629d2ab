//! Weights files: exact round trips, PyTorch `state_dict` files without metadata, and every kind
//! of bad input the Lab API must turn into an error (and survive).

use crate::common;

use crate::common::{bits, expect_err, read_metadata, read_tensors, write_safetensors, Rng};
use latent_lab::checkpoint::StoredDtype;
use latent_lab::lab::Lab;
use safetensors::{tensor::TensorView, Dtype};
use latent_lab::model::ModelConfig;
use std::collections::HashMap;

const CFG: ModelConfig = ModelConfig::vae(20, 400);

#[test]
fn safetensors_round_trip_is_bit_exact() {
    // A model that has been trained a little, so the weights are not just the seeded init.
    let mut lab = Lab::fresh(CFG, 21).unwrap();
    lab.set_dataset(common::mnist().train.take(512)).unwrap();
    lab.trainer_mut().set_batch_size(128).unwrap();
    for _ in 0..3 {
        lab.train_step().unwrap();
    }
    lab.set_metadata("note", "round trip");
    let first = lab.save().unwrap();
    let loaded = Lab::from_safetensors(&first).unwrap();
    assert_eq!(loaded.config(), CFG);
    let second = loaded.save().unwrap();

    let (a, b) = (read_tensors(&first), read_tensors(&second));
    assert_eq!(a.len(), 10);
    for (name, (shape, values)) in &a {
        let (shape2, values2) = &b[name];
        assert_eq!(shape, shape2, "{name}");
        assert_eq!(bits(values), bits(values2), "{name} changed in the round trip");
    }
    // The whole file is the same, byte for byte (the header's keys are written sorted).
    assert!(first == second, "the second save differs from the first");
    assert!(lab.save().unwrap() == first, "saving the same weights twice gave different bytes");
    let meta = read_metadata(&second);
    assert_eq!(meta.get("note").map(String::as_str), Some("round trip"));
    assert_eq!(meta.get("epochs").map(String::as_str), Some("0.75"), "3 steps × 128 examples of a 512-example set");

    let z = Rng::new(9).vec(20 * 5, -3.0, 3.0);
    assert_eq!(bits(&lab.sample(&z, None).unwrap()), bits(&loaded.sample(&z, None).unwrap()));
    assert_eq!(bits(&lab.sample(&z[..20], None).unwrap()), bits(&loaded.sample(&z[..20], None).unwrap()));
    let mut px = Vec::new();
    common::mnist().test.image_f32(0, &mut px);
    let (mu_a, lv_a) = lab.encode(&px, None).unwrap();
    let (mu_b, lv_b) = loaded.encode(&px, None).unwrap();
    assert_eq!((bits(&mu_a), bits(&lv_a)), (bits(&mu_b), bits(&lv_b)));
}

#[test]
fn recorded_test_loss_is_saved_until_more_training() {
    let mut lab = Lab::fresh(CFG, 6).unwrap();
    lab.set_dataset(common::mnist().train.take(512)).unwrap();
    lab.trainer_mut().set_batch_size(128).unwrap();
    for _ in 0..3 {
        lab.train_step().unwrap();
    }
    let test = lab.evaluate(&common::mnist().test.take(500)).unwrap();
    lab.record_test_loss(test.loss);
    lab.set_metadata("seed", "6");
    let saved = lab.save().unwrap();
    let meta = read_metadata(&saved);
    let recorded: f32 = meta.get("test_loss").expect("test_loss saved after record_test_loss").parse().unwrap();
    assert!((recorded - test.loss).abs() <= 0.0005, "recorded {recorded}, measured {}", test.loss);
    assert_eq!(meta.get("epochs").map(String::as_str), Some("0.75"));
    // Loading keeps it; evaluating the loaded model gives the same number.
    let loaded = Lab::from_safetensors(&saved).unwrap();
    assert_eq!(loaded.metadata().get("test_loss"), meta.get("test_loss"));
    let again = loaded.evaluate(&common::mnist().test.take(500)).unwrap();
    assert_eq!(again.loss.to_bits(), test.loss.to_bits());
    // One more step: the weights changed, so the old test loss no longer applies; epochs add up.
    lab.train_step().unwrap();
    let meta = read_metadata(&lab.save().unwrap());
    assert_eq!(meta.get("test_loss"), None, "stale test_loss kept after training");
    assert_eq!(meta.get("epochs").map(String::as_str), Some("1"));
}

/// Forward pass in f64 straight from the PyTorch-layout tensors (weight [out, in]).
fn linear(w: &[f32], b: &[f32], x: &[f64]) -> Vec<f64> {
    let (out, inp) = (b.len(), x.len());
    assert_eq!(w.len(), out * inp);
    (0..out).map(|o| b[o] as f64 + (0..inp).map(|i| w[o * inp + i] as f64 * x[i]).sum::<f64>()).collect()
}

fn relu(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| x.max(0.0)).collect()
}

#[test]
fn pytorch_state_dict_without_metadata_loads() {
    let cfg = ModelConfig::vae(3, 16);
    let sd = random_sd(&cfg, 77);
    let bytes = write_safetensors(&sd, None);
    assert!(read_metadata(&bytes).is_empty(), "written without metadata, as save_file(state_dict) does");
    let lab = Lab::from_safetensors(&bytes).unwrap();
    assert_eq!(lab.config(), cfg, "sizes read off the shapes");
    let meta = lab.metadata();
    assert_eq!(meta.get("latent").map(String::as_str), Some("3"));
    assert_eq!(meta.get("hidden").map(String::as_str), Some("16"));
    assert_eq!(meta.get("kind").map(String::as_str), Some("vae"));

    // The weights are used in PyTorch's layout: decode and encode match a hand-written forward pass.
    let t: HashMap<&str, &Vec<f32>> = sd.iter().map(|(n, _, v)| (n.as_str(), v)).collect();
    let z = [0.7f32, -1.2, 0.3];
    let got = lab.sample(&z, None).unwrap();
    let zf: Vec<f64> = z.iter().map(|&v| v as f64).collect();
    let h = relu(linear(t["fc3.weight"], t["fc3.bias"], &zf));
    let logits = linear(t["fc4.weight"], t["fc4.bias"], &h);
    assert_eq!(got.len(), 784);
    for (i, (g, l)) in got.iter().zip(&logits).enumerate() {
        let want = 1.0 / (1.0 + (-l).exp());
        assert!((*g as f64 - want).abs() < 1e-5, "pixel {i}: {g} vs {want}");
    }
    let x: Vec<f32> = Rng::new(3).vec(784, 0.0, 1.0);
    let (mu, logvar) = lab.encode(&x, None).unwrap();
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let h = relu(linear(t["fc1.weight"], t["fc1.bias"], &xf));
    let want_mu = linear(t["fc21.weight"], t["fc21.bias"], &h);
    let want_lv = linear(t["fc22.weight"], t["fc22.bias"], &h);
    for i in 0..3 {
        assert!((mu[i] as f64 - want_mu[i]).abs() < 1e-4, "mu[{i}] {} vs {}", mu[i], want_mu[i]);
        assert!((logvar[i] as f64 - want_lv[i]).abs() < 1e-4, "logvar[{i}] {} vs {}", logvar[i], want_lv[i]);
    }

    // Saving it gives our format: same tensors, plus metadata.
    let saved = lab.save().unwrap();
    let back = read_tensors(&saved);
    for (n, s, v) in &sd {
        assert_eq!(&back[n].0, s);
        assert_eq!(bits(&back[n].1), bits(v), "{n}");
    }
    let m = read_metadata(&saved);
    assert_eq!((m["kind"].as_str(), m["latent"].as_str(), m["hidden"].as_str()), ("vae", "3", "16"));

    // Also the default sizes, with only some of our metadata keys.
    let sd = random_sd(&CFG, 5);
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let lab = Lab::from_safetensors(&write_safetensors(&sd, Some(meta))).unwrap();
    assert_eq!(lab.config(), CFG);
    assert_eq!(lab.metadata().get("format").map(String::as_str), Some("pt"));
}

fn random_sd(cfg: &ModelConfig, seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    common::random_state_dict(cfg, seed, 0.1)
}

fn without(sd: &[(String, Vec<usize>, Vec<f32>)], name: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let out: Vec<_> = sd.iter().filter(|(n, _, _)| n != name).cloned().collect();
    assert_eq!(out.len(), sd.len() - 1);
    out
}

fn replace(
    sd: &[(String, Vec<usize>, Vec<f32>)],
    name: &str,
    shape: Vec<usize>,
    values: Vec<f32>,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    sd.iter()
        .map(|(n, s, v)| if n == name { (n.clone(), shape.clone(), values.clone()) } else { (n.clone(), s.clone(), v.clone()) })
        .collect()
}

#[test]
fn bad_weights_files_are_rejected() {
    let good = Lab::fresh(CFG, 1).unwrap().save().unwrap();
    assert!(Lab::from_safetensors(&good).is_ok());
    let sd = random_sd(&CFG, 2);
    assert!(Lab::from_safetensors(&write_safetensors(&sd, None)).is_ok());

    // Not safetensors at all.
    expect_err(Lab::from_safetensors(&Rng::new(1).bytes(5000)), &["not valid safetensors"]);
    expect_err(Lab::from_safetensors(&[]), &["not valid safetensors"]);
    expect_err(Lab::from_safetensors(b"{\"fc1.weight\": 1}"), &["not valid safetensors"]);
    // Truncated: half the file, and one byte short.
    expect_err(Lab::from_safetensors(&good[..good.len() / 2]), &["not valid safetensors"]);
    expect_err(Lab::from_safetensors(&good[..good.len() - 1]), &["not valid safetensors"]);
    // Header corrupted.
    let mut bad = good.clone();
    bad[12] = b'#';
    expect_err(Lab::from_safetensors(&bad), &["not valid safetensors"]);

    // A tensor missing.
    for name in ["fc22.bias", "fc4.weight", "fc1.weight", "fc21.weight"] {
        let bytes = write_safetensors(&without(&sd, name), None);
        expect_err(Lab::from_safetensors(&bytes), &["no tensor", &format!("`{name}`")]);
    }

    // Wrong shapes, each named with the shape it has and the one it needs.
    let bytes = write_safetensors(&replace(&sd, "fc3.bias", vec![401], vec![0.0; 401]), None);
    expect_err(Lab::from_safetensors(&bytes), &["`fc3.bias`", "[401]", "expected [400]"]);
    let fc4: Vec<f32> = sd.iter().find(|(n, _, _)| n == "fc4.weight").unwrap().2.clone();
    let bytes = write_safetensors(&replace(&sd, "fc4.weight", vec![400, 784], fc4), None);
    expect_err(Lab::from_safetensors(&bytes), &["`fc4.weight`", "[400, 784]", "expected [784, 400]"]);
    let bytes = write_safetensors(&replace(&sd, "fc22.weight", vec![19, 400], vec![0.0; 19 * 400]), None);
    expect_err(Lab::from_safetensors(&bytes), &["`fc22.weight`", "[19, 400]", "expected [20, 400]"]);
    let bytes = write_safetensors(&replace(&sd, "fc1.weight", vec![400 * 784], vec![0.0; 400 * 784]), None);
    expect_err(Lab::from_safetensors(&bytes), &["not matrices"]);

    // Metadata that disagrees with the tensors.
    let meta = HashMap::from([("latent".to_string(), "10".to_string())]);
    expect_err(
        Lab::from_safetensors(&write_safetensors(&sd, Some(meta))),
        &["metadata says latent = 10", "tensors have latent = 20"],
    );
    let meta = HashMap::from([("hidden".to_string(), "four hundred".to_string())]);
    expect_err(Lab::from_safetensors(&write_safetensors(&sd, Some(meta))), &["hidden = four hundred"]);
    let meta = HashMap::from([("kind".to_string(), "gan".to_string())]);
    expect_err(Lab::from_safetensors(&write_safetensors(&sd, Some(meta))), &["`gan`"]);

    // Non-finite values inside a weight.
    let mut w = sd.iter().find(|(n, _, _)| n == "fc4.weight").unwrap().2.clone();
    w[12345] = f32::NAN;
    let bytes = write_safetensors(&replace(&sd, "fc4.weight", vec![784, 400], w.clone()), None);
    expect_err(Lab::from_safetensors(&bytes), &["`fc4.weight`", "NaN", "element 12345"]);
    w[12345] = 0.0;
    w[7] = f32::NEG_INFINITY;
    let bytes = write_safetensors(&replace(&sd, "fc4.weight", vec![784, 400], w), None);
    expect_err(Lab::from_safetensors(&bytes), &["`fc4.weight`", "non-finite", "element 7"]);

    // A dtype no PyTorch model is saved in.
    let bytes = write_typed(&sd, |n| if n == "fc1.bias" { Dtype::I32 } else { Dtype::F32 });
    expect_err(Lab::from_safetensors(&bytes), &["`fc1.bias`", "I32", "expected F32, F16, BF16 or F64"]);
}

/// Named tensors as safetensors bytes, each in the dtype `dtype_of(name)` says (converted from f32).
fn write_typed(sd: &[(String, Vec<usize>, Vec<f32>)], dtype_of: impl Fn(&str) -> Dtype) -> Vec<u8> {
    let encoded: Vec<(String, Vec<usize>, Dtype, Vec<u8>)> = sd
        .iter()
        .map(|(n, s, v)| {
            let dtype = dtype_of(n);
            let bytes: Vec<u8> = match dtype {
                Dtype::F16 => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
                Dtype::BF16 => v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
                Dtype::F64 => v.iter().flat_map(|&x| f64::from(x).to_le_bytes()).collect(),
                Dtype::I32 => v.iter().flat_map(|&x| (x as i32).to_le_bytes()).collect(),
                _ => common::f32_bytes(v),
            };
            (n.clone(), s.clone(), dtype, bytes)
        })
        .collect();
    let views: Vec<(&str, TensorView)> =
        encoded.iter().map(|(n, s, t, d)| (n.as_str(), TensorView::new(*t, s.clone(), d).unwrap())).collect();
    safetensors::serialize(views, None).unwrap()
}

/// The largest difference between two images' pixels.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// What PyTorch users save besides f32 (`model.half()`, `.bfloat16()`, `.double()`) loads,
/// converted to f32, and decodes as the f32 original does; `save_as(F16)` writes half the bytes
/// and loads back the same way.
#[test]
fn f16_bf16_and_f64_files_load_and_decode_like_the_f32_original() {
    // The shipped weights (f16 themselves), each moved by up to 1e-4 of itself, as an f32 original
    // that f16 cannot hold exactly.
    let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/www/weights/vae-z20.safetensors")).unwrap();
    let mut jitter = Rng::new(11);
    let sd: Vec<(String, Vec<usize>, Vec<f32>)> = read_tensors(&Lab::from_safetensors(&shipped).unwrap().save().unwrap())
        .into_iter()
        .map(|(n, (s, v))| (n, s, v.iter().map(|x| x * (1.0 + jitter.uniform(-1e-4, 1e-4))).collect()))
        .collect();
    let f32_file = write_safetensors(&sd, None);
    let original = Lab::from_safetensors(&f32_file).unwrap();
    let z = Rng::new(3).vec(20 * 16, -2.0, 2.0);
    let want = original.sample(&z, None).unwrap();
    // Rounding the weights moves the decoded pixels by about the format's precision: f16 keeps
    // 11 significant bits, bf16 8.
    for (dtype, bar) in [(Dtype::F16, 1e-3), (Dtype::BF16, 1e-2), (Dtype::F64, 1e-6)] {
        let lab = Lab::from_safetensors(&write_typed(&sd, |_| dtype)).unwrap_or_else(|e| panic!("{dtype:?}: {e:#}"));
        assert_eq!(lab.config(), original.config(), "{dtype:?}");
        let d = max_diff(&lab.sample(&z, None).unwrap(), &want);
        println!("{dtype:?} weights decode within {d:.2e} of the f32 original");
        assert!(d < bar, "{dtype:?} weights decode {d} away from the f32 original (bar {bar})");
    }
    // A file of mixed precisions, as a partly converted state_dict would be.
    let mixed = write_typed(&sd, |n| if n.ends_with("bias") { Dtype::F64 } else { Dtype::F16 });
    assert!(max_diff(&Lab::from_safetensors(&mixed).unwrap().sample(&z, None).unwrap(), &want) < 1e-3);

    let half = original.save_as(StoredDtype::F16).unwrap();
    assert!(half.len() < f32_file.len() / 2 + 4096, "f16 file {} bytes, f32 {}", half.len(), f32_file.len());
    let st = safetensors::SafeTensors::deserialize(&half).unwrap();
    assert!(st.tensors().iter().all(|(_, t)| t.dtype() == Dtype::F16));
    let reloaded = Lab::from_safetensors(&half).unwrap();
    assert_eq!(read_metadata(&half), read_metadata(&original.save().unwrap()), "the f16 file keeps the metadata");
    assert!(max_diff(&reloaded.sample(&z, None).unwrap(), &want) < 1e-3);
    // Saving again as f16 loses nothing more.
    assert!(reloaded.save_as(StoredDtype::F16).unwrap() == half);

    // F64 values f32 cannot hold are refused by name, not turned into infinities.
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = sd
        .iter()
        .map(|(n, s, v)| {
            let mut wide: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
            if n == "fc3.bias" {
                wide[5] = 1e300;
            }
            (n.clone(), s.clone(), wide.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect();
    let views: Vec<(&str, TensorView)> =
        encoded.iter().map(|(n, s, d)| (n.as_str(), TensorView::new(Dtype::F64, s.clone(), d).unwrap())).collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    expect_err(Lab::from_safetensors(&bytes), &["`fc3.bias`", "1e300", "element 5", "beyond the range of f32"]);
}

/// A safetensors file with its JSON header rewritten by `edit` (the data left as it was) and the
/// header length set to match.
fn with_header(file: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
    edit(header.as_object_mut().unwrap());
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend_from_slice(&file[8 + n..]);
    out
}

/// The limits the safetensors reference library sets, each refused with an error that says which.
#[test]
fn malformed_containers_are_refused_by_name() {
    let good = write_safetensors(&random_sd(&CFG, 6), None);
    assert!(Lab::from_safetensors(&good).is_ok());
    let refused = |bytes: &[u8], needles: &[&str]| {
        let msg = expect_err(Lab::from_safetensors(bytes), needles);
        assert!(msg.contains("not valid safetensors"), "{msg}");
    };
    // Shorter than the header length itself.
    refused(&good[..5], &["5 bytes long", "too short for the 8-byte header length"]);
    // A header length over the format's 100 MB cap.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&200_000_000u64.to_le_bytes());
    refused(&bad, &["200000000 bytes", "limit of 100,000,000"]);
    // A header length past the end of the file.
    let mut bad = good.clone();
    bad[..8].copy_from_slice(&(good.len() as u64).to_le_bytes());
    refused(&bad, &["runs past the end", &format!("{}-byte file", good.len())]);
    // A header that is not JSON.
    let mut bad = good.clone();
    bad[8] = b'#';
    refused(&bad, &["header is not a valid safetensors header"]);
    // A tensor whose data overlaps the one before it.
    let bad = with_header(&good, |h| {
        let o = h["fc21.bias"]["data_offsets"].as_array().unwrap().clone();
        let (s, e) = (o[0].as_u64().unwrap(), o[1].as_u64().unwrap());
        h["fc21.bias"]["data_offsets"] = serde_json::json!([s - 4, e - 4]);
    });
    refused(&bad, &["data offsets overlap", "tensor `"]);
    // A shape that disagrees with the bytes its offsets span; and a dtype that does.
    let bad = with_header(&good, |h| h["fc3.bias"]["shape"] = serde_json::json!([401]));
    refused(&bad, &["tensor `fc3.bias`", "[401]", "needs 1604 bytes", "offsets span 1600"]);
    let bad = with_header(&good, |h| h["fc4.bias"]["dtype"] = serde_json::json!("F64"));
    refused(&bad, &["tensor `fc4.bias`", "F64", "needs 6272 bytes", "offsets span 3136"]);
    // An unknown dtype.
    let bad = with_header(&good, |h| h["fc4.bias"]["dtype"] = serde_json::json!("F12"));
    refused(&bad, &["header is not a valid safetensors header", "F12"]);
    // Bytes after the last tensor, and a file cut short inside the data.
    let mut bad = good.clone();
    bad.extend([0u8; 8]);
    refused(&bad, &["does not end where the file does"]);
    refused(&good[..good.len() - 4], &["does not end where the file does"]);
}

#[test]
fn bad_calls_are_errors_and_leave_the_lab_working() {
    let lab = Lab::fresh(CFG, 4).unwrap();
    let z = Rng::new(8).vec(20 * 3, -2.0, 2.0);
    let reference = bits(&lab.sample(&z, None).unwrap());
    let still_fine = |lab: &Lab| {
        let s = lab.sample(&z, None).unwrap();
        assert!(s.iter().all(|p| p.is_finite() && (0.0..=1.0).contains(p)));
        assert_eq!(bits(&s), reference, "the lab changed after an error");
    };

    // sample
    expect_err(lab.sample(&z[..19], None), &["19 values", "latent size (20)"]);
    still_fine(&lab);
    expect_err(lab.sample(&z[..41], None), &["41 values", "latent size (20)"]);
    still_fine(&lab);
    expect_err(lab.sample(&[], None), &["no latent vectors"]);
    still_fine(&lab);
    let mut nan = z.clone();
    nan[25] = f32::NAN;
    expect_err(lab.sample(&nan, None), &["value 25 is NaN", "not a finite number"]);
    still_fine(&lab);
    let mut inf = z.clone();
    inf[0] = f32::INFINITY;
    expect_err(lab.sample(&inf, None), &["value 0 is inf"]);
    still_fine(&lab);
    expect_err(lab.sample(&vec![0.0; 20 * 10_001], None), &["10001", "at most 10000"]);
    still_fine(&lab);

    // interpolate
    let (a, b) = (&z[..20], &z[20..40]);
    assert_eq!(lab.interpolate(a, b, 2, None).unwrap().len(), 2 * 784);
    expect_err(lab.interpolate(&z[..19], b, 5, None), &["z_a has 19 values", "latent size is 20"]);
    still_fine(&lab);
    expect_err(lab.interpolate(a, &z[..21], 5, None), &["z_b has 21 values", "latent size is 20"]);
    still_fine(&lab);
    for steps in [0usize, 1, 1001] {
        expect_err(lab.interpolate(a, b, steps, None), &[&format!("steps {steps} is outside 2..=1000")]);
        still_fine(&lab);
    }
    let mut nan_b = b.to_vec();
    nan_b[3] = f32::NAN;
    expect_err(lab.interpolate(a, &nan_b, 4, None), &["not a finite number"]);
    still_fine(&lab);

    // encode
    let mut px = Vec::new();
    common::mnist().test.image_f32(0, &mut px);
    let (mu, logvar) = lab.encode(&px, None).unwrap();
    assert_eq!((mu.len(), logvar.len()), (20, 20));
    expect_err(lab.encode(&px[..783], None), &["783 values", "784 pixels"]);
    still_fine(&lab);
    let mut two = px.clone();
    two.extend_from_slice(&px);
    two.push(0.0);
    expect_err(lab.encode(&two, None), &["1569 values", "784 pixels"]);
    still_fine(&lab);
    let mut bright = px.clone();
    bright[100] = 255.0; // bytes, not scaled
    expect_err(lab.encode(&bright, None), &["pixel 100 is 255", "[0, 1]"]);
    still_fine(&lab);
    let mut neg = px.clone();
    neg[5] = -0.01;
    expect_err(lab.encode(&neg, None), &["pixel 5 is -0.01", "[0, 1]"]);
    still_fine(&lab);
    let mut nan_px = px.clone();
    nan_px[9] = f32::NAN;
    expect_err(lab.encode(&nan_px, None), &["value 9 is NaN"]);
    still_fine(&lab);
    expect_err(lab.encode(&[], None), &["no images"]);
    still_fine(&lab);
    // encode still gives the same answer after all that.
    let (mu2, logvar2) = lab.encode(&px, None).unwrap();
    assert_eq!((bits(&mu), bits(&logvar)), (bits(&mu2), bits(&logvar2)));

    // Training with no data is an error, not a panic, and changes nothing.
    let mut lab = lab;
    expect_err(lab.train_step(), &["no dataset"]);
    still_fine(&lab);
    expect_err(lab.trainer_mut().set_learning_rate(0.0), &["learning rate 0 is outside (0, 1]"]);
    expect_err(lab.trainer_mut().set_learning_rate(f64::NAN), &["outside (0, 1]"]);
    expect_err(lab.trainer_mut().set_batch_size(0), &["batch size 0"]);
    still_fine(&lab);
}

/// A decoder file (the page's first download) holds only what sampling needs, samples exactly as
/// the whole file does, says what it cannot do, and is refused by name when its metadata is wrong.
#[test]
fn a_decoder_file_samples_as_the_whole_model_and_refuses_the_rest() {
    for kind in latent_lab::config::Kind::ALL {
        let mut cfg = kind.default_config();
        cfg.hidden = 24;
        let lab = Lab::fresh(cfg, 5).unwrap();
        if kind.is_convolutional() {
            // the decoder file serves the light sampler, which has no convolutions
            expect_err(lab.save_decoder(StoredDtype::F32), &[&format!("a `{}` model is saved whole", kind.name())]);
            continue;
        }
        let whole = lab.save().unwrap();
        let decoder = lab.save_decoder(StoredDtype::F32).unwrap();
        let names: Vec<String> = {
            let mut n: Vec<String> = read_tensors(&decoder).into_keys().collect();
            n.sort();
            n
        };
        let want: Vec<String> = cfg.decoder_param_shapes().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, { let mut w = want.clone(); w.sort(); w }, "{kind:?}");
        assert!(decoder.len() < whole.len() * 3 / 4, "{kind:?}: the decoder file is {} of {} bytes", decoder.len(), whole.len());
        assert_eq!(read_metadata(&decoder)["part"], "decoder");

        let d = Lab::from_safetensors(&decoder).unwrap();
        assert!(d.decoder_only() && !Lab::from_safetensors(&whole).unwrap().decoder_only());
        assert_eq!(d.config(), cfg);
        let z = Rng::new(9).vec(3 * cfg.latent, -2.0, 2.0);
        let labels = kind.is_conditional().then_some(&[1u8, 4, 7][..]);
        assert_eq!(bits(&d.sample(&z, labels).unwrap()), bits(&lab.sample(&z, labels).unwrap()), "{kind:?}");
        let needs = "this model was loaded from its decoder alone, so it cannot";
        expect_err(d.save(), &[needs, "be saved as a whole weights file"]);
        expect_err(d.save_run(), &[needs]);
        let mut d = d;
        expect_err(d.set_dataset(common::mnist().train.take(10)), &[needs, "train"]);
        if !kind.is_gan() {
            let img = vec![0.5f32; 784];
            let one = kind.is_conditional().then_some(&[3u8][..]);
            expect_err(d.encode(&img, one), &[needs, "encode"]);
        }
    }
    let lab = Lab::fresh(ModelConfig::vae(4, 24), 5).unwrap();
    let decoder = lab.save_decoder(StoredDtype::F16).unwrap();
    let edit = |key: &str, value: Option<&str>| {
        with_header(&decoder, |h| {
            let meta = h.get_mut("__metadata__").unwrap().as_object_mut().unwrap();
            match value {
                Some(v) => meta.insert(key.into(), v.into()),
                None => meta.remove(key),
            };
        })
    };
    expect_err(Lab::from_safetensors(&edit("latent", None)), &["decoder file's metadata has no `latent`"]);
    expect_err(Lab::from_safetensors(&edit("hidden", Some("many"))), &["decoder file's metadata says hidden = many, not a size"]);
    expect_err(Lab::from_safetensors(&edit("latent", Some("5"))), &["the decoder of a vae with latent 5", "fc3.weight` has shape [24, 4]; expected [24, 5]"]);
    expect_err(Lab::from_safetensors(&edit("kind", Some("gan"))), &["the decoder of a gan with latent 4", "weights file has no tensor `generator.fc1.weight`"]);
}
