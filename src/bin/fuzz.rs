//! A seeded mutation fuzzer for the loaders that read files a reader hands the page: weights
//! (`Lab::from_safetensors`, every kind, f32 and f16, with and without metadata), the page's MNIST
//! file (`mnist::unpack`) and IDX files (`mnist::dataset_from_idx`).
//!
//!     cargo run --release --bin fuzz -- all --inputs 1000000
//!
//! Options: the target (`weights`, `mnist`, `idx` or `all`), --inputs N per target (100000),
//! --seed N (1). Each input is a valid seed file mutated: bits flipped, bytes set to edge values,
//! cut short, lengthened, a stretch repeated or dropped, or (for safetensors) a number, dtype or
//! name inside the JSON header edited and the header length rewritten to match. Every input must
//! load or fail with an error; a panic is a bug, and the input that caused it is written to
//! fuzz-crash-<target>-<n>.bin and the run fails. It prints one line per target: inputs, loads,
//! errors, and how many distinct error messages it met (the tests read those lines).
//!
//! Why not cargo-fuzz: it needs a nightly compiler for its `-Z` sanitizer flags, and this
//! project builds with stable Rust (and Debian's rustc where rustup cannot reach its server).

use anyhow::{bail, Context, Result};
use latent_lab::checkpoint::StoredDtype;
use latent_lab::lab::Lab;
use latent_lab::mnist::{self, Dataset, Mnist, IMAGE_PIXELS};
use latent_lab::model::{Kind, ModelConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A loader under test: Ok(()) when the input loads, Err with its message when it is refused.
type Target = fn(&[u8]) -> Result<()>;

fn load_weights(bytes: &[u8]) -> Result<()> {
    Lab::from_safetensors(bytes).map(|_| ())
}

fn load_mnist(bytes: &[u8]) -> Result<()> {
    mnist::unpack(bytes).map(|_| ())
}

/// An IDX pair in one input: the images file, then the labels file, split where the first
/// eight bytes say (so mutations reach both and the split itself).
fn load_idx(bytes: &[u8]) -> Result<()> {
    let Some(split) = bytes.get(..8) else { bail!("input too short") };
    let at = u64::from_le_bytes(split.try_into()?) as usize;
    let rest = &bytes[8..];
    let at = at.min(rest.len());
    mnist::dataset_from_idx(&rest[..at], &rest[at..]).map(|_| ())
}

fn digits(n: usize, rng: &mut StdRng) -> Dataset {
    let images = (0..n * IMAGE_PIXELS).map(|_| rng.random::<u8>()).collect();
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    Dataset::new(images, labels).expect("a valid dataset")
}

/// Valid files to start from, small so that each input is quick.
fn seeds(target: &str) -> Result<Vec<Vec<u8>>> {
    let mut rng = StdRng::seed_from_u64(7);
    Ok(match target {
        "weights" => {
            let mut out = Vec::new();
            for kind in Kind::ALL {
                // conv-ae's code is whole 2×2 channels
                let latent = if kind == Kind::ConvAe { 4 } else { 2 };
                let cfg = ModelConfig { latent, hidden: 3, ..kind.default_config() };
                let lab = Lab::fresh(cfg, 1)?;
                out.push(lab.save()?);
                out.push(lab.save_as(StoredDtype::F16)?);
            }
            out
        }
        "mnist" => vec![mnist::pack(&Mnist { train: digits(3, &mut rng), test: digits(2, &mut rng) })?],
        "idx" => {
            let d = digits(2, &mut rng);
            let images = mnist::write_idx(&[2, 28, 28], &d.images)?;
            let labels = mnist::write_idx(&[2], &d.labels)?;
            let mut pair = (images.len() as u64).to_le_bytes().to_vec();
            pair.extend(images);
            pair.extend(labels);
            vec![pair]
        }
        _ => bail!("unknown target `{target}`; use weights, mnist, idx or all"),
    })
}

const EDGE_BYTES: [u8; 6] = [0, 1, 0x7f, 0x80, 0xfe, 0xff];
const EDGE_NUMBERS: [&str; 10] = ["0", "1", "2", "-1", "3.5", "255", "4294967296", "18446744073709551615", "99999999999999999999", "null"];
const DTYPES: [&str; 9] = ["\"F32\"", "\"F16\"", "\"BF16\"", "\"F64\"", "\"U8\"", "\"I64\"", "\"BOOL\"", "\"F8_E4M3\"", "\"X9\""];

/// One mutation of `input`, chosen at random.
fn mutate(input: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut v = input.to_vec();
    let pick = |rng: &mut StdRng, len: usize| if len == 0 { 0 } else { rng.random_range(0..len) };
    match rng.random_range(0..8) {
        0 => {
            for _ in 0..rng.random_range(1..=8) {
                let i = pick(rng, v.len());
                if let Some(b) = v.get_mut(i) {
                    *b ^= 1 << rng.random_range(0..8);
                }
            }
        }
        1 => {
            for _ in 0..rng.random_range(1..=4) {
                let i = pick(rng, v.len());
                if let Some(b) = v.get_mut(i) {
                    *b = EDGE_BYTES[rng.random_range(0..EDGE_BYTES.len())];
                }
            }
        }
        2 => v.truncate(pick(rng, v.len())),
        3 => v.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
        4 => {
            let (a, n) = (pick(rng, v.len()), rng.random_range(1..256));
            let stretch: Vec<u8> = v[a..(a + n).min(v.len())].to_vec();
            let at = pick(rng, v.len());
            v.splice(at..at, stretch);
        }
        5 => {
            let (a, n) = (pick(rng, v.len()), rng.random_range(1..256));
            v.drain(a..(a + n).min(v.len()));
        }
        // The first bytes: a safetensors header length, an IDX magic and dimensions.
        6 => {
            let i = pick(rng, v.len().min(24));
            if let Some(b) = v.get_mut(i) {
                *b = rng.random();
            }
        }
        _ => return edit_header(input, rng).unwrap_or(v),
    }
    v
}

/// A safetensors file with one token of its JSON header replaced (a number by an edge value, a
/// dtype by another, a name by another name) and the header length rewritten, so the library's
/// checks of shapes, offsets and dtypes are reached instead of its JSON parser.
fn edit_header(input: &[u8], rng: &mut StdRng) -> Option<Vec<u8>> {
    let n = u64::from_le_bytes(input.get(..8)?.try_into().ok()?) as usize;
    let header = std::str::from_utf8(input.get(8..8usize.checked_add(n)?)?).ok()?;
    let data = &input[8 + n..];
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|&(i, c)| (c.is_ascii_digit() && !header[..i].ends_with(|p: char| p.is_ascii_digit())) || c == '"')
        .map(|(i, _)| i)
        .collect();
    let at = *starts.get(rng.random_range(0..starts.len().max(1)))?;
    let rest = &header[at..];
    let (len, replacement) = if rest.starts_with('"') {
        let end = rest[1..].find('"')? + 2;
        let token = &rest[..end];
        let r = if token.len() <= 9 && token.chars().all(|c| c == '"' || c.is_ascii_alphanumeric() || c == '_') {
            DTYPES[rng.random_range(0..DTYPES.len())].to_string()
        } else {
            // A name: another tensor's, or the same with a character changed.
            format!("\"{}x\"", &token[1..token.len() - 1])
        };
        (end, r)
    } else {
        let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let r = if rng.random_bool(0.5) {
            EDGE_NUMBERS[rng.random_range(0..EDGE_NUMBERS.len())].to_string()
        } else {
            let v: i64 = rest[..end].parse().ok()?;
            (v + rng.random_range(-9..=9)).to_string()
        };
        (end, r)
    };
    let edited = format!("{}{}{}", &header[..at], replacement, &header[at + len..]);
    let mut out = (edited.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(edited.as_bytes());
    out.extend_from_slice(data);
    Some(out)
}

/// What a run over one target met.
struct Tally {
    inputs: usize,
    loaded: usize,
    refused: usize,
    messages: BTreeSet<String>,
}

fn run(target_name: &str, target: Target, inputs: usize, seed: u64) -> Result<Tally> {
    let seeds = seeds(target_name)?;
    for s in &seeds {
        target(s).with_context(|| format!("a {target_name} seed file does not load"))?;
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally { inputs: 0, loaded: 0, refused: 0, messages: BTreeSet::new() };
    for n in 0..inputs {
        let mut input = mutate(&seeds[rng.random_range(0..seeds.len())], &mut rng);
        // Now and then a second mutation on top of the first.
        if rng.random_bool(0.25) {
            input = mutate(&input, &mut rng);
        }
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(Ok(())) => tally.loaded += 1,
            Ok(Err(e)) => {
                tally.refused += 1;
                // The message's kind, without the numbers and names that vary between inputs.
                let kind: String = format!("{e:#}").chars().filter(|c| !c.is_ascii_digit()).take(60).collect();
                tally.messages.insert(kind);
            }
            Err(_) => {
                let path = format!("fuzz-crash-{target_name}-{n}.bin");
                std::fs::write(&path, &input)?;
                bail!("{target_name}: input {n} panicked; it is saved in {path}");
            }
        }
        tally.inputs += 1;
    }
    Ok(tally)
}

fn main() -> Result<()> {
    let (mut which, mut inputs, mut seed) = ("all".to_string(), 100_000usize, 1u64);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--inputs" => inputs = it.next().context("--inputs needs a number")?.parse().context("--inputs")?,
            "--seed" => seed = it.next().context("--seed needs a number")?.parse().context("--seed")?,
            a if !a.starts_with("--") => which = a.to_string(),
            a => bail!("unknown option {a}"),
        }
    }
    let targets: [(&str, Target); 3] = [("weights", load_weights), ("mnist", load_mnist), ("idx", load_idx)];
    if which != "all" && !targets.iter().any(|(n, _)| *n == which) {
        bail!("unknown target `{which}`; use weights, mnist, idx or all");
    }
    // A panic is caught, reported with where it happened, and ends the run with its input saved.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    for (name, target) in targets.into_iter().filter(|(n, _)| which == "all" || *n == which) {
        let started = std::time::Instant::now();
        let t = run(name, target, inputs, seed)?;
        println!(
            "{name}: {} inputs, {} loaded, {} refused with an error, {} distinct messages, no panic ({:.1} s)",
            t.inputs,
            t.loaded,
            t.refused,
            t.messages.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
