//! A training run as one file, to pick it up again exactly where it stood (the page's autosave).
//!
//! It is a weights file (the model's tensors under their `state_dict` names and its metadata, so
//! it also loads as plain weights) with more beside them: Adam's moments for each parameter, under
//! the names PyTorch's Adam gives them (`exp_avg.<name>`, `exp_avg_sq.<name>`), the epoch's
//! shuffle (`trainer.order`, U32), and the trainer's counts, settings and random streams in the
//! metadata (`trainer.*`). Every value is checked on the way in; a bad one is a named error.
//!
//! Not kept: the trainer's copy to roll back to after a divergence. A resumed run takes its first
//! copy where it resumes, so a rollback after a resume goes back no further than that step.

use crate::checkpoint::{self, Checkpoint, Metadata};
use crate::config::{Decay, ModelConfig, Recon, TrainSettings, VaeObjective, PYTORCH_ADAM_BETA2};
use crate::train::{OptimizerState, Snapshot, StreamPosition, TrainerState};
use anyhow::{anyhow, bail, ensure, Context, Result};
use candle_core::Device;
use safetensors::Dtype;
use std::collections::HashMap;
use std::str::FromStr;

/// The metadata entry that marks a training state (its value: the format's version).
const MARK: &str = "training_state";
const VERSION: &str = "1";
const ORDER: &str = "trainer.order";
/// The run's entry for how many of its trainer's epochs the model's `epochs` already counts.
const FOLDED_EPOCHS: &str = "lab.folded_epochs";

/// What a training state file holds: the model (weights and metadata), Adam's state, the trainer's.
pub struct SavedRun {
    pub checkpoint: Checkpoint,
    pub optimizer: OptimizerState,
    pub trainer: TrainerState,
    /// How many of the trainer's epochs the model's `epochs` entry already counts.
    pub folded_epochs: f64,
    /// A GAN's averaged generator (`average.generator.*`), when the run kept one.
    pub average: Option<HashMap<String, Vec<f32>>>,
}

/// Where a saved run keeps its averaged generator: `average.` + the generator's names.
const AVERAGE: &str = "average.";

/// The run as bytes: the weights and Adam's state of `snapshot`, `meta` (the model's own), the
/// trainer's place, how many of its epochs `meta`'s `epochs` already counts, and a GAN's averaged
/// generator if it keeps one.
pub fn write(
    cfg: &ModelConfig,
    snapshot: &Snapshot,
    meta: &Metadata,
    trainer: &TrainerState,
    folded_epochs: f64,
    average: Option<&HashMap<String, Vec<f32>>>,
) -> Result<Vec<u8>> {
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tensors = Vec::new();
    for (name, shape) in cfg.param_shapes() {
        let w = snapshot.params.get(&name).with_context(|| format!("the snapshot has no parameter `{name}`"))?;
        let (m, v) = snapshot.optimizer.moments.get(&name).with_context(|| format!("Adam's state has no `{name}`"))?;
        tensors.push((format!("exp_avg.{name}"), Dtype::F32, shape.clone(), f32s(m)));
        tensors.push((format!("exp_avg_sq.{name}"), Dtype::F32, shape.clone(), f32s(v)));
        if let Some(a) = average.and_then(|a| a.get(&name)) {
            tensors.push((format!("{AVERAGE}{name}"), Dtype::F32, shape.clone(), f32s(a)));
        }
        tensors.push((name, Dtype::F32, shape, f32s(w)));
    }
    let order: Vec<u8> = trainer.order.iter().flat_map(|i| i.to_le_bytes()).collect();
    tensors.push((ORDER.into(), Dtype::U32, vec![trainer.order.len()], order));

    let mut meta = checkpoint::with_config(cfg, meta);
    let s = &trainer.settings;
    let fields: [(&str, String); 20] = [
        (MARK, VERSION.into()),
        (FOLDED_EPOCHS, folded_epochs.to_string()),
        ("optimizer.t", snapshot.optimizer.t.to_string()),
        ("trainer.steps", trainer.steps.to_string()),
        ("trainer.examples_seen", trainer.examples_seen.to_string()),
        ("trainer.earlier_epochs", trainer.earlier_epochs.to_string()),
        ("trainer.prior_epochs", trainer.prior_epochs.to_string()),
        ("trainer.cursor", trainer.cursor.to_string()),
        ("trainer.rng", stream_text(&trainer.rng)),
        ("trainer.dropout_rng", stream_text(&trainer.dropout_rng)),
        ("trainer.batch_size", s.batch_size.to_string()),
        ("trainer.learning_rate", s.learning_rate.to_string()), // shortest text that reads back exactly
        ("trainer.decay", s.decay.name().into()),
        ("trainer.average", s.average.to_string()),
        ("trainer.label_gain", s.label_gain.to_string()),
        ("trainer.adam_beta2", s.adam_beta2.to_string()),
        ("trainer.recon", trainer.objective.recon.name().into()),
        ("trainer.kl_weight", trainer.objective.kl_weight.to_string()),
        ("trainer.rollbacks", format!("{}/{}", trainer.recoveries, trainer.max_recoveries)),
        ("trainer.sync_interval", trainer.sync_interval.to_string()),
    ];
    meta.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
    checkpoint::serialize(tensors, &meta)
}

/// Reads a training state file back, every part checked. The metadata returned is the model's
/// own (the run's entries taken out).
pub fn read(bytes: &[u8], device: &Device) -> Result<SavedRun> {
    let (st, meta) = checkpoint::read(bytes)?;
    match meta.get(MARK).map(String::as_str) {
        Some(VERSION) => {}
        Some(v) => bail!("this training state is of format version {v}; this build reads version {VERSION}"),
        None => bail!("this is a weights file, not a saved training run (it has no `{MARK}` entry); load it as a model"),
    }
    let mut checkpoint = checkpoint::load(bytes, device).context("the saved run's model")?;
    ensure!(!checkpoint.decoder_only, "this is a decoder file, not a saved training run; load it as a model");
    let field = |key: &str| -> Result<&str> {
        meta.get(key).map(String::as_str).ok_or_else(|| anyhow!("the saved run has no `{key}` entry"))
    };
    let number = |key: &str| -> Result<u64> { parse(key, field(key)?) };
    let real = |key: &str| -> Result<f64> { parse(key, field(key)?) };

    let cfg = checkpoint.cfg;
    let mut moments = HashMap::new();
    let mut average = HashMap::new();
    for (name, shape) in cfg.param_shapes() {
        if name.starts_with("generator.") && st.tensor(&format!("{AVERAGE}{name}")).is_ok() {
            let a = checkpoint::load_values(&st, &format!("{AVERAGE}{name}"), &shape).context("the averaged generator")?;
            average.insert(name.clone(), a);
        }
        let m = checkpoint::load_values(&st, &format!("exp_avg.{name}"), &shape).context("Adam's state")?;
        let v = checkpoint::load_values(&st, &format!("exp_avg_sq.{name}"), &shape).context("Adam's state")?;
        if let Some(i) = v.iter().position(|&x| x < 0.0) {
            bail!("Adam's `exp_avg_sq.{name}` holds a negative second moment ({}) at element {i}", v[i]);
        }
        moments.insert(name, (m, v));
    }
    let t = number("optimizer.t")?;
    ensure!(t < i32::MAX as u64, "the saved run's `optimizer.t` ({t}) is beyond any run's step count");
    let optimizer = OptimizerState { t, moments };

    let order = st.tensor(ORDER).map_err(|_| anyhow!("the saved run has no tensor `{ORDER}` (the epoch's shuffle)"))?;
    ensure!(
        order.dtype() == Dtype::U32 && order.shape().len() == 1,
        "`{ORDER}` is {:?} of shape {:?}; expected U32 of one dimension",
        order.dtype(),
        order.shape()
    );
    let order: Vec<u32> = order.data().chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    let rollbacks = field("trainer.rollbacks")?;
    let (used, allowed) = rollbacks
        .split_once('/')
        .ok_or_else(|| anyhow!("the saved run's `trainer.rollbacks` ({rollbacks}) is not `used/allowed`"))?;
    let trainer = TrainerState {
        steps: number("trainer.steps")?,
        examples_seen: number("trainer.examples_seen")?,
        earlier_epochs: real("trainer.earlier_epochs")?,
        prior_epochs: real("trainer.prior_epochs")?,
        order,
        cursor: parse("trainer.cursor", field("trainer.cursor")?)?,
        rng: parse_stream("trainer.rng", field("trainer.rng")?)?,
        dropout_rng: parse_stream("trainer.dropout_rng", field("trainer.dropout_rng")?)?,
        settings: TrainSettings {
            batch_size: parse("trainer.batch_size", field("trainer.batch_size")?)?,
            learning_rate: real("trainer.learning_rate")?,
            decay: Decay::parse(field("trainer.decay")?)?,
            // runs saved before these were settings trained without them
            average: meta.get("trainer.average").map(|b| parse("trainer.average", b)).transpose()?.unwrap_or(false),
            label_gain: meta.get("trainer.label_gain").map(|g| parse("trainer.label_gain", g)).transpose()?.unwrap_or(1.0),
            adam_beta2: meta.get("trainer.adam_beta2").map(|b| parse("trainer.adam_beta2", b)).transpose()?.unwrap_or(PYTORCH_ADAM_BETA2),
        },
        // runs saved before the objective was a setting trained the plain VAE's
        objective: VaeObjective {
            recon: meta.get("trainer.recon").map(|r| Recon::parse(r)).transpose()?.unwrap_or_default(),
            kl_weight: meta.get("trainer.kl_weight").map(|b| parse("trainer.kl_weight", b)).transpose()?.unwrap_or(1.0),
        },
        sync_interval: number("trainer.sync_interval")?,
        max_recoveries: parse("trainer.rollbacks", allowed)?,
        recoveries: parse("trainer.rollbacks", used)?,
    };
    let folded_epochs = real(FOLDED_EPOCHS)?;
    ensure!(folded_epochs.is_finite() && folded_epochs >= 0.0, "the saved run's `{FOLDED_EPOCHS}` ({folded_epochs}) is not a count of epochs");
    forget_run(&mut checkpoint.meta);
    let average = (!average.is_empty()).then_some(average);
    Ok(SavedRun { checkpoint, optimizer, trainer, folded_epochs, average })
}

/// Takes a saved run's own entries (the marker, `trainer.*`, `optimizer.*`, `lab.*`) out of its
/// metadata, leaving the model's.
pub fn forget_run(meta: &mut Metadata) {
    meta.retain(|k, _| k != MARK && !["trainer.", "optimizer.", "lab."].iter().any(|p| k.starts_with(p)));
}

fn parse<T: FromStr>(key: &str, text: &str) -> Result<T> {
    text.parse().map_err(|_| anyhow!("the saved run's `{key}` ({text}) is not a number of the kind it needs"))
}

/// A stream's place as `seed-in-hex/stream/word-position`.
fn stream_text(p: &StreamPosition) -> String {
    let seed: String = p.seed.iter().map(|b| format!("{b:02x}")).collect();
    format!("{seed}/{}/{}", p.stream, p.word_pos)
}

fn parse_stream(key: &str, text: &str) -> Result<StreamPosition> {
    let bad = || anyhow!("the saved run's `{key}` ({text}) is not a random stream's place (seed/stream/position)");
    let mut parts = text.split('/');
    let (Some(hex), Some(stream), Some(pos), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    ensure!(hex.len() == 64 && hex.is_ascii(), bad());
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(StreamPosition { seed, stream: stream.parse().map_err(|_| bad())?, word_pos: pos.parse().map_err(|_| bad())? })
}
