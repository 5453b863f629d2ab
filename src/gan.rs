//! A small MLP GAN on MNIST, as the tutorials build it.
//!
//! generator:     z [n, 64] → fc1 → LeakyReLU(0.2) → [n, 256] → fc2 → LeakyReLU(0.2) → [n, 512]
//!                → fc3 → sigmoid → images [n, 784] in [0, 1]
//! discriminator: 2x − 1 [n, 784] → fc1 → LeakyReLU(0.2) → [n, 512] → fc2 → LeakyReLU(0.2) → [n, 256]
//!                → fc3 → logit [n, 1]   (D(x) = sigmoid(logit), the probability x is real)
//!
//! While training, dropout (p = 0.3) follows each of the discriminator's hidden layers, as in the
//! tutorials' vanilla GAN: without it this discriminator wins within an epoch and the generator
//! collapses onto one pattern. The masks come from a seeded generator, so runs repeat exactly.
//!
//! Losses, with BCE on logits (softplus(l) = log(1 + eᶫ)):
//!   discriminator: BCE(D(x), 1) + BCE(D(G(z)), 0) = softplus(−l_real) + softplus(l_fake)
//!   generator (non-saturating): BCE(D(G(z)), 1) = softplus(−l_fake)
//!
//! The conditional GAN (`cgan`) joins the one-hot label y [n, 10] to z and to the discriminator's
//! input, and its discriminator also learns that a real digit with a wrong label is fake.

use crate::keystream::{self, Stream};
use crate::mnist::IMAGE_PIXELS;
use crate::config::{with_label, ModelConfig};
use anyhow::{ensure, Result};
use candle_core::{Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use rand::Rng;

const LEAK: f64 = 0.2;
/// The probability that dropout zeroes a discriminator unit while training.
pub const DROPOUT: f64 = 0.3;

/// LeakyReLU(x) = max(x, 0.2·x)
fn leaky_relu(x: &Tensor) -> Result<Tensor> {
    Ok(x.maximum(&(x * LEAK)?)?)
}

/// softplus(l) = log(1 + eᶫ) = max(l, 0) + log(1 + e^−|l|), the stable form.
pub fn softplus(l: &Tensor) -> Result<Tensor> {
    Ok((l.relu()? + (l.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

#[derive(Clone, Debug)]
pub struct Generator {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Generator {
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (l, h, c) = (cfg.latent, cfg.hidden, cfg.kind.label_width());
        Ok(Self {
            fc1: candle_nn::linear(l + c, h, vb.pp("fc1"))?,
            fc2: candle_nn::linear(h, 2 * h, vb.pp("fc2"))?,
            fc3: candle_nn::linear(2 * h, IMAGE_PIXELS, vb.pp("fc3"))?,
        })
    }

    /// z [n, latent], y [n, 10] for a cGAN → images [n, 784] in [0, 1]
    pub fn forward(&self, z: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        let h = leaky_relu(&self.fc1.forward(&with_label(z, y)?)?)?;
        let h = leaky_relu(&self.fc2.forward(&h)?)?;
        Ok(candle_nn::ops::sigmoid(&self.fc3.forward(&h)?)?)
    }
}

#[derive(Clone, Debug)]
pub struct Discriminator {
    fc1: Linear,
    fc2: Linear,
    fc3: Linear,
}

impl Discriminator {
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (h, c) = (cfg.hidden, cfg.kind.label_width());
        Ok(Self {
            fc1: candle_nn::linear(IMAGE_PIXELS + c, 2 * h, vb.pp("fc1"))?,
            fc2: candle_nn::linear(2 * h, h, vb.pp("fc2"))?,
            fc3: candle_nn::linear(h, 1, vb.pp("fc3"))?,
        })
    }

    /// x [n, 784] in [0, 1], y [n, 10] for a cGAN → logits [n] (positive: judged real). With
    /// `dropout` (training), each hidden layer is multiplied by its mask.
    pub fn forward(&self, x: &Tensor, y: Option<&Tensor>, dropout: Option<&DropoutMasks>) -> Result<Tensor> {
        // Pixels enter centred, 2x − 1 in [−1, 1], as the tutorials normalise MNIST for their
        // tanh generators (sigmoid·2 − 1 is tanh(·/2), so this is that pipeline exactly).
        let x = x.affine(2.0, -1.0)?;
        let mut h = leaky_relu(&self.fc1.forward(&with_label(&x, y)?)?)?;
        if let Some(m) = dropout {
            h = (h * &m.h1)?;
        }
        let mut h = leaky_relu(&self.fc2.forward(&h)?)?;
        if let Some(m) = dropout {
            h = (h * &m.h2)?;
        }
        Ok(self.fc3.forward(&h)?.squeeze(1)?)
    }
}

#[derive(Clone, Debug)]
pub struct Gan {
    pub cfg: ModelConfig,
    pub generator: Generator,
    pub discriminator: Discriminator,
}

impl Gan {
    pub fn new(cfg: ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            cfg,
            generator: Generator::new(cfg, vb.pp("generator"))?,
            discriminator: Discriminator::new(cfg, vb.pp("discriminator"))?,
        })
    }
}

/// Inverted-dropout masks for the discriminator's hidden layers, [n, 2·hidden] and [n, hidden]:
/// each entry 0 with probability p, else 1/(1 − p), so a layer's expected value is unchanged.
pub struct DropoutMasks {
    pub h1: Tensor,
    pub h2: Tensor,
}

/// Which of the discriminator's hidden units dropout keeps, for `n` rows: `h1` [n, 2·hidden] and
/// `h2` [n, hidden], row-major; a kept unit is scaled by 1/(1 − p), each kept with probability 1 − p.
#[derive(Clone, Debug, PartialEq)]
pub struct DropoutKeep {
    pub h1: KeepFlags,
    pub h2: KeepFlags,
}

/// Keep flags as drawn: each from 16 bits of the stream, four to a word (a step of the shipped GAN
/// takes 300,000 flags at batch 128, and a draw per flag was a tenth of the step in the tab; the
/// words are drawn in bulk, `keystream::fill_u64`, and read as they are, without a flag apiece).
/// A unit is dropped when its 16 bits fall below round(p · 2¹⁶), so with probability 0.300003.
#[derive(Clone, Debug, PartialEq)]
pub struct KeepFlags {
    words: Vec<u64>,
    len: usize,
}

impl KeepFlags {
    /// Bits of a word below which a unit is dropped.
    const BELOW: u64 = (DROPOUT * 65536.0 + 0.5) as u64;
    /// A kept unit's factor (inverted dropout).
    pub const KEPT: f32 = (1.0 / (1.0 - DROPOUT)) as f32;

    fn draw(rng: &mut Stream, len: usize) -> Result<Self> {
        let mut words = vec![0; len.div_ceil(4)];
        keystream::fill_u64(rng, &mut words)?;
        Ok(Self { words, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether flag q of a word keeps its unit.
    #[inline(always)]
    fn kept(word: u64, q: usize) -> bool {
        (word >> (16 * q)) & 0xffff >= Self::BELOW
    }

    pub fn iter(&self) -> impl Iterator<Item = bool> + '_ {
        self.words.iter().flat_map(|&w| (0..4).map(move |q| Self::kept(w, q))).take(self.len)
    }

    /// `out[i]` ← unit i's factor in the mask, `KEPT` or 0, for the first min(flags, out.len()).
    pub fn factors_into(&self, out: &mut [f32]) {
        let len = self.len.min(out.len());
        for (four, &w) in out[..len].chunks_mut(4).zip(&self.words) {
            for (q, o) in four.iter_mut().enumerate() {
                *o = if Self::kept(w, q) { Self::KEPT } else { 0.0 };
            }
        }
    }
}

impl DropoutKeep {
    pub fn draw(rng: &mut Stream, n: usize, hidden: usize) -> Result<Self> {
        let h1 = KeepFlags::draw(rng, n * 2 * hidden)?;
        Ok(Self { h1, h2: KeepFlags::draw(rng, n * hidden)? })
    }

    /// The masks as tensors of 0 and 1/(1 − p), for `n` rows of a model with `hidden` units.
    pub fn masks(&self, n: usize, hidden: usize, device: &Device) -> Result<DropoutMasks> {
        let mask = |flags: &KeepFlags, width: usize| -> Result<Tensor> {
            ensure!(flags.len() == n * width, "{} dropout flags for {n} rows of {width} units", flags.len());
            let mut v = vec![0f32; n * width];
            flags.factors_into(&mut v);
            Ok(Tensor::from_vec(v, (n, width), device)?)
        };
        Ok(DropoutMasks { h1: mask(&self.h1, 2 * hidden)?, h2: mask(&self.h2, hidden)? })
    }
}

/// Every random number of one GAN step besides its minibatch and z, drawn in this order: the
/// dropout of the discriminator's pass over the real rows, over the generated rows, over the
/// generated rows again for the generator's loss; then, for a cGAN, each real digit's wrong label
/// and the dropout of the pass over those mismatched pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct GanDraws {
    pub real: DropoutKeep,
    pub fake: DropoutKeep,
    pub generator: DropoutKeep,
    pub mismatched: Option<Mismatched>,
}

/// A cGAN's real digits shown with a label they are not, as fake.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatched {
    /// Each row's label shifted by 1 to 9 (mod 10), so never its own.
    pub labels: Vec<u8>,
    pub keep: DropoutKeep,
}

impl GanDraws {
    /// The draws for a minibatch with digit `labels`, from `rng` (the trainer's dropout stream).
    pub fn draw(rng: &mut Stream, cfg: &ModelConfig, labels: &[u8]) -> Result<Self> {
        let (n, h) = (labels.len(), cfg.hidden);
        let real = DropoutKeep::draw(rng, n, h)?;
        let fake = DropoutKeep::draw(rng, n, h)?;
        let generator = DropoutKeep::draw(rng, n, h)?;
        let mismatched = if cfg.kind.is_conditional() {
            let labels = labels.iter().map(|&l| (l + rng.random_range(1..10u8)) % 10).collect();
            Some(Mismatched { labels, keep: DropoutKeep::draw(rng, n, h)? })
        } else {
            None
        };
        Ok(Self { real, fake, generator, mismatched })
    }
}

/// The discriminator's loss, averaged over the batch: mean softplus(−l_real) + mean softplus(l_fake).
pub fn discriminator_loss(real_logits: &Tensor, fake_logits: &Tensor) -> Result<Tensor> {
    Ok((softplus(&real_logits.neg()?)?.mean_all()? + softplus(fake_logits)?.mean_all()?)?)
}

/// The conditional discriminator's loss ("matching-aware", Reed et al. 2016): real digits with
/// their labels are real; generated digits, and real digits shown with a wrong label, are fake:
/// mean softplus(−l_real) + ½ (mean softplus(l_fake) + mean softplus(l_mismatched)).
/// Without the mismatched pairs the discriminator can win on realism alone, and the generator
/// learns to ignore the label.
pub fn conditional_discriminator_loss(real_logits: &Tensor, fake_logits: &Tensor, mismatched_logits: &Tensor) -> Result<Tensor> {
    let fake_part = ((softplus(fake_logits)?.mean_all()? + softplus(mismatched_logits)?.mean_all()?)? * 0.5)?;
    Ok((softplus(&real_logits.neg()?)?.mean_all()? + fake_part)?)
}

/// The non-saturating generator loss, averaged over the batch: mean softplus(−l_fake).
pub fn generator_loss(fake_logits: &Tensor) -> Result<Tensor> {
    Ok(softplus(&fake_logits.neg()?)?.mean_all()?)
}
