//! The sampler (the light wasm module's all): the same digits as the whole model's `sample`, from a
//! whole file or a decoder file, and the same refusals, word for word.

use crate::common::{chain, Rng};
use latent_lab::checkpoint::StoredDtype;
use latent_lab::lab::Lab;
use latent_lab::model::{Kind, ModelConfig};
use latent_lab::sampler::Sampler;

fn weights(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www/weights").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest |a − b| over two equally long images.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `rows` latent vectors and, for a conditional model, a label per row.
fn inputs(cfg: &ModelConfig, rows: usize, seed: u64) -> (Vec<f32>, Option<Vec<u8>>) {
    let z = Rng::new(seed).vec(rows * cfg.latent, -2.5, 2.5);
    let labels = cfg.kind.is_conditional().then(|| (0..rows).map(|i| (i % 10) as u8).collect());
    (z, labels)
}

#[test]
fn shipped_decoders_sample_what_the_whole_model_samples() {
    for key in ["vae-z20", "vae-z2", "cvae-z2", "gan-z64", "cgan-z64", "ae-z3", "vae-z3", "vae-z20-l2", "vae-z20-l1"] {
        let whole = weights(&format!("{key}.safetensors"));
        let lab = Lab::from_safetensors(&whole).unwrap();
        let cfg = lab.config();
        // 300 rows cross the sampler's 256-row chunks
        let (z, labels) = inputs(&cfg, 300, 11);
        let want = lab.sample(&z, labels.as_deref()).unwrap();
        for (file, bytes) in [("whole", whole.clone()), ("decoder", weights(&format!("{key}.decoder.safetensors")))] {
            let s = Sampler::from_safetensors(&bytes).unwrap();
            assert_eq!(s.config(), cfg, "{key} {file}");
            assert_eq!(s.decoder_only(), file == "decoder", "{key} {file}");
            let got = s.sample(&z, labels.as_deref()).unwrap();
            let d = max_diff(&got, &want);
            assert!(d <= 1e-5, "{key} from its {file} file: pixels differ from the whole model's by up to {d}");
            assert!(got.iter().all(|p| (0.0..=1.0).contains(p)), "{key} {file}: a pixel outside [0, 1]");
        }
        // the metadata the page shows (epochs, test loss) is the whole model's
        let s = Sampler::from_safetensors(&whole).unwrap();
        assert_eq!(s.metadata(), &lab.metadata(), "{key}");
    }
}

#[test]
fn fresh_models_of_odd_sizes_sample_alike() {
    // the light sampler decodes linear layers only (tests/conv.rs: it refuses the others by name)
    for kind in Kind::ALL.into_iter().filter(|k| !k.is_convolutional()) {
        let cfg = ModelConfig { kind, latent: 3, hidden: 37 };
        let lab = Lab::fresh(cfg, 5).unwrap();
        let (z, labels) = inputs(&cfg, 13, 3);
        let want = lab.sample(&z, labels.as_deref()).unwrap();
        for bytes in [lab.save().unwrap(), lab.save_decoder(StoredDtype::F32).unwrap()] {
            let got = Sampler::from_safetensors(&bytes).unwrap().sample(&z, labels.as_deref()).unwrap();
            let d = max_diff(&got, &want);
            assert!(d <= 1e-5, "{}: up to {d} apart", kind.name());
        }
        // interpolation: each frame is that point's sample, the ends exactly sample(z_a), sample(z_b)
        let s = Sampler::from_safetensors(&lab.save().unwrap()).unwrap();
        let label = labels.as_ref().map(|_| 4u8);
        let (za, zb) = (&z[..3], &z[3..6]);
        let frames = s.interpolate(za, zb, 5, label).unwrap();
        assert_eq!(frames.len(), 5 * 784);
        let one = |v: &[f32]| s.sample(v, label.as_ref().map(std::slice::from_ref)).unwrap();
        assert_eq!(frames[..784], one(za)[..], "{}: first frame", kind.name());
        assert_eq!(frames[4 * 784..], one(zb)[..], "{}: last frame", kind.name());
        let d = max_diff(&frames, &lab.interpolate(za, zb, 5, label).unwrap());
        assert!(d <= 1e-5, "{}: interpolations up to {d} apart", kind.name());
    }
}

#[test]
fn bad_calls_and_files_are_refused_as_the_whole_model_refuses_them() {
    let vae = weights("vae-z2.safetensors");
    let cvae = weights("cvae-z2.decoder.safetensors");
    for bytes in [&vae, &cvae] {
        let lab = Lab::from_safetensors(bytes).unwrap();
        let s = Sampler::from_safetensors(bytes).unwrap();
        let cond = s.config().kind.is_conditional();
        let labels: Option<&[u8]> = if cond { Some(&[1, 2]) } else { None };
        let calls: [(&str, &[f32], Option<&[u8]>); 7] = [
            ("no vectors", &[], labels.map(|_| &[][..])),
            ("a ragged batch", &[0.0, 1.0, 2.0], labels),
            ("a NaN", &[0.0, f32::NAN, 0.0, 0.0], labels),
            ("labels missing or unwanted", &[0.0; 4], if cond { None } else { Some(&[1, 2]) }),
            ("one label for two rows", &[0.0; 4], Some(&[3])),
            ("a label of 10", &[0.0; 4], Some(&[3, 10])),
            ("too many rows", &vec![0.0; 2 * 10_001], None),
        ];
        for (what, z, y) in calls {
            let (a, b) = (s.sample(z, y), lab.sample(z, y));
            let (Err(a), Err(b)) = (a, b) else { panic!("{what}: both must refuse") };
            assert_eq!(chain(&a), chain(&b), "{what}");
        }
        let y = cond.then_some(3u8);
        for (what, za, zb, steps) in [("z_a too short", &[0.0][..], &[0.0, 0.0][..], 4), ("one step", &[0.0, 0.0], &[1.0, 1.0], 1)] {
            let (Err(a), Err(b)) = (s.interpolate(za, zb, steps, y), lab.interpolate(za, zb, steps, y)) else {
                panic!("{what}: both must refuse")
            };
            assert_eq!(chain(&a), chain(&b), "{what}");
        }
    }
    // files: cut short, the classifier's, a decoder file without its sizes, a bad weight
    let mut no_latent = cvae.clone();
    let at = no_latent.windows(8).position(|w| w == b"\"latent\"").expect("the decoder file records its latent size");
    no_latent[at + 6] = b'x';
    let mut nan = Lab::fresh(ModelConfig::vae(2, 5), 1).unwrap().save().unwrap();
    let last = nan.len() - 4;
    nan[last..].copy_from_slice(&f32::NAN.to_le_bytes());
    for (what, bytes) in [
        ("cut short", vae[..vae.len() / 2].to_vec()),
        ("the classifier", weights("classifier.safetensors")),
        ("no latent", no_latent),
        ("a NaN weight", nan),
    ] {
        let a = Sampler::from_safetensors(&bytes).err().unwrap_or_else(|| panic!("{what}: the sampler loaded it"));
        let b = Lab::from_safetensors(&bytes).err().unwrap_or_else(|| panic!("{what}: the model loaded it"));
        assert_eq!(chain(&a), chain(&b), "{what}");
        assert!(!chain(&a).is_empty());
    }
}
