//! The model kinds and their sizes: everything about a model's shapes, and how a digit label joins
//! its inputs. A leaf: the networks (`vae.rs`, `gan.rs`), the model type over them (`model.rs`),
//! the optimiser and the GPU backend all read it, and it reads none of them.
//!
//! | kind   | networks                        | label (one-hot, 10) joined to      |
//! |--------|---------------------------------|------------------------------------|
//! | `vae`  | encoder + decoder (`vae.rs`)    | —                                  |
//! | `cvae` | encoder + decoder               | the encoder's input, the latent    |
//! | `gan`  | generator + discriminator (`gan.rs`) | —                             |
//! | `cgan` | generator + discriminator       | the generator's z, the discriminator's input |
//! | `ae`   | encoder + decoder (`ae.rs`)     | —                                  |
//! | `conv-ae`  | conv encoder + transposed-conv decoder (`conv_ae.rs`) | —            |
//! | `conv-vae` | conv encoder + transposed-conv decoder (`conv_vae.rs`) | —           |

use crate::mnist::{CLASSES, IMAGE_PIXELS};
use anyhow::{bail, ensure, Result};
use candle_core::{Device, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Vae,
    Cvae,
    Gan,
    Cgan,
    /// The plain autoencoder the tutorials start from (a point code, no KL term).
    Ae,
    /// The tutorials' convolutional autoencoder.
    ConvAe,
    /// A VAE with a convolutional encoder and a transposed-convolution decoder.
    ConvVae,
}

/// The model families: what a kind's training step and its losses are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Vae,
    Gan,
    Ae,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Vae => "vae",
            Family::Gan => "gan",
            Family::Ae => "ae",
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 7] = [Kind::Vae, Kind::Cvae, Kind::Gan, Kind::Cgan, Kind::Ae, Kind::ConvAe, Kind::ConvVae];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Vae => "vae",
            Kind::Cvae => "cvae",
            Kind::Gan => "gan",
            Kind::Cgan => "cgan",
            Kind::Ae => "ae",
            Kind::ConvAe => "conv-ae",
            Kind::ConvVae => "conv-vae",
        }
    }

    pub fn family(self) -> Family {
        match self {
            Kind::Vae | Kind::Cvae | Kind::ConvVae => Family::Vae,
            Kind::Gan | Kind::Cgan => Family::Gan,
            Kind::Ae | Kind::ConvAe => Family::Ae,
        }
    }

    pub fn parse(s: &str) -> Result<Kind> {
        by_name(&Kind::ALL, Kind::name, s, "model kind", "kinds")
    }

    pub fn is_gan(self) -> bool {
        self.family() == Family::Gan
    }

    /// Whether the model has an encoder (`encode`, `reconstruct`, the latent map): the VAEs and the autoencoder.
    pub fn has_encoder(self) -> bool {
        !self.is_gan()
    }

    /// Whether the model has convolutions: then it trains on the CPU engine only, since the
    /// WebGPU backend has linear layers only.
    pub fn is_convolutional(self) -> bool {
        matches!(self, Kind::ConvAe | Kind::ConvVae)
    }

    /// Why a backend built of linear layers cannot train this kind, if it cannot.
    pub fn linear_only_refusal(self, backend: &str) -> Option<String> {
        self.is_convolutional().then(|| {
            format!("a `{}` model trains on the CPU: {backend} has linear layers only, not its convolutions", self.name())
        })
    }

    /// Whether the model takes a digit label beside its latent vector.
    pub fn is_conditional(self) -> bool {
        matches!(self, Kind::Cvae | Kind::Cgan)
    }

    /// Width of the label joined to the networks' inputs: 10 for conditional kinds, else 0.
    pub fn label_width(self) -> usize {
        if self.is_conditional() { CLASSES } else { 0 }
    }

    /// The sizes the tutorials use: VAE latent 20, hidden 400; GAN z 64, hidden 256 (G 64→256→512→784);
    /// autoencoder code 3, hidden 128 (784→128→64→12→3); the convolutional autoencoder's code of
    /// 8 channels × 2 × 2 behind a first convolution of 16 channels; the conv VAE latent 20, its
    /// dense layer 400 wide.
    pub fn default_config(self) -> ModelConfig {
        let (latent, hidden) = match self {
            Kind::ConvAe => (CONV_AE_CODE_PIXELS * 8, 16),
            _ => match self.family() {
                Family::Gan => (64, 256),
                Family::Vae => (20, 400),
                Family::Ae => (3, 128),
            },
        };
        ModelConfig { kind: self, latent, hidden }
    }

}

/// How a model trains unless told otherwise: its minibatch size and Adam's learning rate (Adam's β
/// and ε are each family's own, `adam.rs`). `Fast` is the default for every model, the CLI's and the
/// page's; it was found by measuring time to digits on the page's engine (the README's "Time to
/// digits" table records the search). `Tutorial` is the classic tutorials' setting, kept by name
/// for the page's VAE-beside-GAN story and for the shipped VAEs' files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipe {
    Fast,
    Tutorial,
}

/// What a recipe sets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainSettings {
    pub batch_size: usize,
    /// The rate of the first epoch; `decay` lowers it in later ones.
    pub learning_rate: f64,
    pub decay: Decay,
    /// GAN kinds: sample (and save) the generator's weights averaged over the steps, an
    /// exponential moving average (`cpu.rs`), rather than the last step's. Training itself is the same.
    pub average: bool,
    /// cGAN: what the one-hot label is multiplied by where it joins the discriminator's input
    /// (1: the tutorials' plain one-hot). It changes only training: the generator and the files are as ever.
    pub label_gain: f64,
    /// Adam's β2, the decay of its second moment (PyTorch's 0.999; β1 and ε are the kind's,
    /// `AdamConfig::for_kind`).
    pub adam_beta2: f64,
}

/// Adam's β2 as PyTorch defaults it, the tutorials' and every recipe's but the fast VAE one
/// (`adam::AdamConfig::PYTORCH` is built on it).
pub const PYTORCH_ADAM_BETA2: f64 = 0.999;

/// The fast recipe's rate and Adam β2 for the linear VAEs (VAE and cVAE). A shorter memory of
/// the gradients' scale (about 100 steps against 0.999's 1,000) lets twice the rate train
/// stably: natively at batch 32, after the 1,800 steps 10 s buys in the tab, the VAE's Fréchet
/// distance went from 211.8, 223.6 and 217.2 (seeds 1 to 3, 2e-3 and 0.999) to 203.1, 202.4 and 208.6,
/// and the cVAE's from 221.6 to 177.4, read as asked 50.0% → 70.9% (README, "Time to digits").
pub const FAST_VAE_LEARNING_RATE: f64 = 4e-3;
pub const FAST_VAE_ADAM_BETA2: f64 = 0.99;

/// The fast recipe's label gain for the cGAN's discriminator: 10 of its 794 inputs are the label,
/// and at its initial weights a one-hot of 1 is too faint for it to learn within a minute that a
/// digit shown with the wrong label is fake (README, "Time to digits").
pub const FAST_LABEL_GAIN: f64 = 10.0;

/// How the learning rate falls over a run's epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decay {
    /// The same rate throughout.
    None,
    /// The rate ÷ (1 + e) in epoch e, counted from 0: the full rate in the first epoch, half in
    /// the second, a tenth in the tenth. A minute in the tab is all first epoch; a long run ends
    /// at the tutorials' small rates, which a GAN needs to sharpen.
    InverseEpoch,
}

impl Decay {
    pub const ALL: [Decay; 2] = [Decay::None, Decay::InverseEpoch];

    pub fn name(self) -> &'static str {
        match self {
            Decay::None => "none",
            Decay::InverseEpoch => "inverse-epoch",
        }
    }

    pub fn parse(s: &str) -> Result<Decay> {
        by_name(&Decay::ALL, Decay::name, s, "learning-rate decay", "decays")
    }

    /// What the rate is multiplied by after `epochs` passes over the data (fractional).
    pub fn factor(self, epochs: f64) -> f64 {
        match self {
            Decay::None => 1.0,
            Decay::InverseEpoch => 1.0 / (1.0 + epochs.max(0.0).floor()),
        }
    }
}

impl Recipe {
    pub const ALL: [Recipe; 2] = [Recipe::Fast, Recipe::Tutorial];
    pub const DEFAULT: Recipe = Recipe::Fast;

    pub fn name(self) -> &'static str {
        match self {
            Recipe::Fast => "fast",
            Recipe::Tutorial => "tutorial",
        }
    }

    pub fn parse(s: &str) -> Result<Recipe> {
        by_name(&Recipe::ALL, Recipe::name, s, "recipe", "recipes")
    }

    /// - tutorial: batch 128 at a constant rate, Adam's β2 PyTorch's 0.999; the VAEs and the
    ///   autoencoder at their tutorials' lr 1e-3, the GANs at DCGAN's 2e-4.
    /// - fast: batch 32 at ten times the GAN's rate (2e-3), for the linear VAEs four times
    ///   theirs (4e-3, with Adam's β2 at 0.99: `FAST_VAE_ADAM_BETA2`) and for the other kinds
    ///   twice (2e-3), falling as 1/(1 + epoch). At this model size a step costs the tab little
    ///   more at batch 32 than at 128, so a minute buys about three times the updates, and the
    ///   higher rate makes each count; the decay lets a long run settle. A GAN's samples come
    ///   from its generator averaged over the steps, and the cGAN's discriminator sees its label
    ///   ×10 (`FAST_LABEL_GAIN`).
    pub fn settings(self, kind: Kind) -> TrainSettings {
        let linear_vae = kind.family() == Family::Vae && !kind.is_convolutional();
        let (batch_size, learning_rate, decay, adam_beta2) = match (self, kind.is_gan()) {
            (Recipe::Tutorial, false) => (128, 1e-3, Decay::None, PYTORCH_ADAM_BETA2),
            (Recipe::Tutorial, true) => (128, 2e-4, Decay::None, PYTORCH_ADAM_BETA2),
            (Recipe::Fast, _) if linear_vae => (32, FAST_VAE_LEARNING_RATE, Decay::InverseEpoch, FAST_VAE_ADAM_BETA2),
            (Recipe::Fast, _) => (32, 2e-3, Decay::InverseEpoch, PYTORCH_ADAM_BETA2),
        };
        let fast = self == Recipe::Fast;
        let label_gain = if fast && kind == Kind::Cgan { FAST_LABEL_GAIN } else { 1.0 };
        TrainSettings { batch_size, learning_rate, decay, average: fast && kind.is_gan(), label_gain, adam_beta2 }
    }

    /// The recipe whose settings these are, if any (a hand-set rate or batch is no recipe).
    pub fn of(kind: Kind, settings: TrainSettings) -> Option<Recipe> {
        Recipe::ALL.into_iter().find(|r| r.settings(kind) == settings)
    }
}

/// How a VAE scores its reconstruction of an image, summed over the 784 pixels: binary
/// cross-entropy on the decoder's logits (the tutorials' and PyTorch's example's), or the squared
/// (L2) or absolute (L1) difference of the decoded pixels sigmoid(logit) from the image's (L1's
/// median is sharper than L2's mean: the blur argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recon {
    #[default]
    Bce,
    L2,
    L1,
}

impl Recon {
    pub const ALL: [Recon; 3] = [Recon::Bce, Recon::L2, Recon::L1];

    pub fn name(self) -> &'static str {
        match self {
            Recon::Bce => "bce",
            Recon::L2 => "l2",
            Recon::L1 => "l1",
        }
    }

    pub fn parse(s: &str) -> Result<Recon> {
        by_name(&Recon::ALL, Recon::name, s, "reconstruction loss", "reconstruction losses")
    }
}

/// What a VAE step minimises per example: the reconstruction term plus β times the KL term
/// (β = 1 is the plain VAE; below 1 sharper reconstructions, above 1 a latent closer to N(0, I)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VaeObjective {
    pub recon: Recon,
    pub kl_weight: f64,
}

impl Default for VaeObjective {
    fn default() -> Self {
        Self { recon: Recon::Bce, kl_weight: 1.0 }
    }
}

impl VaeObjective {
    /// A kind's objective unless told otherwise: BCE + KL for the VAEs; for the autoencoder its
    /// tutorial's squared error (`nn.MSELoss`, here summed over the pixels) and no KL term.
    pub fn for_kind(kind: Kind) -> Self {
        if kind.family() == Family::Ae { Self { recon: Recon::L2, kl_weight: 0.0 } } else { Self::default() }
    }

    /// Whether a model of `kind` can minimise this: a VAE any loss at β in 0..=100; the
    /// autoencoder L2 or L1 of its Tanh output (BCE needs probabilities) with no KL term; a GAN none.
    pub fn check_for(self, kind: Kind) -> Result<()> {
        match kind.family() {
            Family::Gan => bail!("a GAN has no reconstruction loss or KL weight: those are a VAE's settings"),
            Family::Ae => {
                ensure!(
                    self.recon != Recon::Bce,
                    "an autoencoder's reconstruction loss is l2 or l1: its Tanh output in [−1, 1] is not a probability, so bce does not apply"
                );
                ensure!(self.kl_weight == 0.0, "an autoencoder has no KL term, so no KL weight: that is a VAE's setting");
                Ok(())
            }
            Family::Vae => Self::check_kl_weight(self.kl_weight),
        }
    }

    /// The KL weight β's range: 0 (an autoencoder with noise) to 100.
    pub fn check_kl_weight(beta: f64) -> Result<()> {
        ensure!(beta.is_finite() && (0.0..=100.0).contains(&beta), "KL weight β = {beta} is outside 0..=100");
        Ok(())
    }
}

/// Training settings chosen on a command line over the default recipe (the trainer's and
/// time-to-digits'): a recipe first, then each setting given on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SettingsChoice {
    pub recipe: Option<Recipe>,
    pub batch_size: Option<usize>,
    pub learning_rate: Option<f64>,
    pub decay: Option<Decay>,
    pub average: Option<bool>,
    pub label_gain: Option<f64>,
    pub adam_beta2: Option<f64>,
    /// VAE kinds: the reconstruction loss and the KL weight β.
    pub recon: Option<Recon>,
    pub kl_weight: Option<f64>,
}

impl SettingsChoice {
    pub const USAGE: &str =
        "[--recipe fast|tutorial] [--batch N] [--lr F] [--decay none|inverse-epoch] [--average on|off] [--label-gain F] [--beta2 F] [--recon bce|l2|l1] [--beta F]";

    /// Takes `flag value` when the flag is one of `USAGE`'s; `Ok(false)` for any other flag.
    pub fn take(&mut self, flag: &str, value: &str) -> Result<bool> {
        let bad = || anyhow::anyhow!("{flag}: cannot read `{value}`");
        match flag {
            "--recipe" => self.recipe = Some(Recipe::parse(value)?),
            "--batch" => self.batch_size = Some(value.parse().map_err(|_| bad())?),
            "--lr" => self.learning_rate = Some(value.parse().map_err(|_| bad())?),
            "--decay" => self.decay = Some(Decay::parse(value)?),
            "--average" => {
                self.average = Some(match value {
                    "on" => true,
                    "off" => false,
                    _ => bail!("--average: `{value}` is neither on nor off"),
                })
            }
            "--label-gain" => self.label_gain = Some(value.parse().map_err(|_| bad())?),
            "--beta2" => self.adam_beta2 = Some(value.parse().map_err(|_| bad())?),
            "--recon" => self.recon = Some(Recon::parse(value)?),
            "--beta" => self.kl_weight = Some(value.parse().map_err(|_| bad())?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The one of `all` named `s`, or an error that lists the names: "unknown recipe `slow`; the
/// recipes are fast and tutorial".
fn by_name<T: Copy>(all: &[T], name: fn(T) -> &'static str, s: &str, what: &str, plural: &str) -> Result<T> {
    if let Some(&t) = all.iter().find(|&&t| name(t) == s) {
        return Ok(t);
    }
    let names: Vec<&str> = all.iter().map(|&t| name(t)).collect();
    let list = match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.join(""),
    };
    bail!("unknown {what} `{s}`; the {plural} are {list}")
}

/// A model's kind and sizes; everything about its shapes follows from these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelConfig {
    pub kind: Kind,
    /// VAE: latent dimensions; GAN: dimensions of the generator's input noise z.
    pub latent: usize,
    /// VAE: the encoder's and decoder's hidden width; GAN: the narrower hidden width (the other is twice it).
    pub hidden: usize,
}

impl ModelConfig {
    pub const fn vae(latent: usize, hidden: usize) -> Self {
        Self { kind: Kind::Vae, latent, hidden }
    }

    pub fn validate(&self) -> Result<()> {
        ensure!((1..=512).contains(&self.latent), "latent size {} is outside 1..=512", self.latent);
        ensure!((1..=4096).contains(&self.hidden), "hidden size {} is outside 1..=4096", self.hidden);
        if self.kind == Kind::Ae {
            ensure!(self.hidden >= 2, "an autoencoder's hidden size {} is below 2 (its second layer is half as wide)", self.hidden);
        }
        if self.kind == Kind::ConvAe {
            // channels, not a dense width: 4096 of them would need gigabytes of activations
            ensure!(self.hidden <= 256, "a conv-ae's first convolution of {} channels is above 256", self.hidden);
            ensure!(
                self.latent.is_multiple_of(CONV_AE_CODE_PIXELS),
                "a conv-ae's code of {} is not a whole number of 2×2 channels (a multiple of 4)",
                self.latent
            );
        }
        Ok(())
    }

    /// The convolutions, in the order they run: a conv-ae's, a conv-vae's; none for the other kinds.
    pub fn conv_layers(&self) -> Vec<ConvLayer> {
        let conv = |name, c_in, c_out, kernel, stride, padding| ConvLayer { name, c_in, c_out, kernel, stride, padding, transposed: false };
        let deconv = |name, c_in, c_out, kernel, stride, padding| ConvLayer { name, c_in, c_out, kernel, stride, padding, transposed: true };
        let h = self.hidden;
        match self.kind {
            // b×1×28×28 → b×h×10×10 → pool b×h×5×5 → b×c×3×3 → pool b×c×2×2, and back.
            Kind::ConvAe => {
                let c = self.latent / CONV_AE_CODE_PIXELS;
                vec![
                    conv("encoder.0", 1, h, 3, 3, 1),
                    conv("encoder.3", h, c, 3, 2, 1),
                    deconv("decoder.0", c, h, 3, 2, 0),
                    deconv("decoder.2", h, 8, 5, 3, 1),
                    deconv("decoder.4", 8, 1, 2, 2, 1),
                ]
            }
            // b×1×28×28 → b×32×14×14 → b×64×7×7, and back from b×64×7×7.
            Kind::ConvVae => vec![
                conv("encoder.0", 1, CONV_VAE_CHANNELS[0], 4, 2, 1),
                conv("encoder.2", CONV_VAE_CHANNELS[0], CONV_VAE_CHANNELS[1], 4, 2, 1),
                deconv("decoder.0", CONV_VAE_CHANNELS[1], CONV_VAE_CHANNELS[0], 4, 2, 1),
                deconv("decoder.2", CONV_VAE_CHANNELS[0], 1, 4, 2, 1),
            ],
            _ => Vec::new(),
        }
    }

    /// Every parameter as (PyTorch name, shape, fan_in), in initialisation order: the order the
    /// layers run in, encoder first.
    pub fn param_specs(&self) -> Vec<(String, Vec<usize>, usize)> {
        let linear = |layers: &[(&str, usize, usize)]| linear_param_specs(layers);
        let conv = |layers: &[ConvLayer]| -> Vec<(String, Vec<usize>, usize)> { layers.iter().flat_map(ConvLayer::param_specs).collect() };
        let (convs, linears) = (self.conv_layers(), self.layers());
        match self.kind {
            Kind::ConvVae => [conv(&convs[..2]), linear(&linears), conv(&convs[2..])].concat(),
            Kind::ConvAe => conv(&convs),
            _ => linear(&linears),
        }
    }

    /// The linear layers, in initialisation order, as (PyTorch name, fan_in, fan_out) (of a
    /// convolutional kind, the linear layers between its convolutions: `conv_layers` has those).
    pub fn layers(&self) -> Vec<(&'static str, usize, usize)> {
        let (l, h, p, c) = (self.latent, self.hidden, IMAGE_PIXELS, self.kind.label_width());
        if self.kind == Kind::ConvAe {
            return Vec::new();
        }
        if self.kind == Kind::ConvVae {
            let f = CONV_VAE_FEATURES;
            return vec![("fc1", f, h), ("fc21", h, l), ("fc22", h, l), ("fc3", l, h), ("fc4", h, f)];
        }
        match self.kind.family() {
            Family::Gan => vec![
                ("generator.fc1", l + c, h),
                ("generator.fc2", h, 2 * h),
                ("generator.fc3", 2 * h, p),
                ("discriminator.fc1", p + c, 2 * h),
                ("discriminator.fc2", 2 * h, h),
                ("discriminator.fc3", h, 1),
            ],
            Family::Vae => vec![("fc1", p + c, h), ("fc21", h, l), ("fc22", h, l), ("fc3", l + c, h), ("fc4", h, p)],
            Family::Ae => {
                let w = ae_widths(self);
                let mut layers: Vec<_> = AE_ENCODER.iter().zip(w.windows(2)).map(|(&n, io)| (n, io[0], io[1])).collect();
                layers.extend(AE_DECODER.iter().zip(w.windows(2).rev()).map(|(&n, io)| (n, io[1], io[0])));
                layers
            }
        }
    }

    /// Every parameter with its PyTorch name and shape: a linear `.weight` is [out, in], a
    /// convolution's [out, in, k, k], a transposed convolution's [in, out, k, k]; `.bias` is [out].
    pub fn param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        self.param_specs().into_iter().map(|(name, shape, _)| (name, shape)).collect()
    }

    /// The parameters that decode (a VAE's fc3 and fc4, a GAN's generator, an autoencoder's
    /// decoder): all that sampling needs.
    pub fn decoder_param_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let family = self.kind.family();
        let decodes = |n: &str| match family {
            Family::Gan => n.starts_with("generator."),
            Family::Vae => n.starts_with("fc3.") || n.starts_with("fc4.") || n.starts_with("decoder."),
            Family::Ae => n.starts_with("decoder."),
        };
        self.param_shapes().into_iter().filter(|(n, _)| decodes(n)).collect()
    }

    /// The decoder's linear layers in the order they run (PyTorch name, fan_in, fan_out); of a
    /// convolutional kind, only those before its transposed convolutions.
    pub fn decoder_layers(&self) -> Vec<(&'static str, usize, usize)> {
        let names: &[&str] = match self.kind.family() {
            Family::Gan => &["generator.fc1", "generator.fc2", "generator.fc3"],
            Family::Vae => &["fc3", "fc4"],
            Family::Ae => &AE_DECODER,
        };
        let layers = self.layers();
        names.iter().filter_map(|n| layers.iter().find(|l| l.0 == *n).copied()).collect()
    }
}

/// A 2-D convolution (or a transposed one) of PyTorch's, square kernel, no output padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvLayer {
    pub name: &'static str,
    pub c_in: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// `ConvTranspose2d`: its weight is [c_in, c_out, k, k].
    pub transposed: bool,
}

impl ConvLayer {
    /// The weight's shape as PyTorch stores it.
    pub fn weight_shape(&self) -> Vec<usize> {
        let (a, b) = if self.transposed { (self.c_in, self.c_out) } else { (self.c_out, self.c_in) };
        vec![a, b, self.kernel, self.kernel]
    }

    /// (name, shape, fan_in) of the weight and the bias; PyTorch's fan_in is the weight's
    /// dimension 1 times the kernel's area (so a transposed convolution's counts its outputs).
    pub fn param_specs(&self) -> [(String, Vec<usize>, usize); 2] {
        let shape = self.weight_shape();
        let fan_in = shape[1] * self.kernel * self.kernel;
        [(format!("{}.weight", self.name), shape, fan_in), (format!("{}.bias", self.name), vec![self.c_out], fan_in)]
    }

    /// The side of the output, for a side of `n` pixels in.
    pub fn out_side(&self, n: usize) -> Option<usize> {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        if self.transposed {
            ((n.checked_sub(1)? * s) + k).checked_sub(2 * p)
        } else {
            Some((n + 2 * p).checked_sub(k)? / s + 1)
        }
    }
}

/// The convolutional autoencoder's code is its last pool's 2×2 pixels of each channel.
pub const CONV_AE_CODE_PIXELS: usize = 4;
/// The conv VAE's two convolutions' channels, and what they leave of an image: 64 channels of 7×7.
pub const CONV_VAE_CHANNELS: [usize; 2] = [32, 64];
pub const CONV_VAE_SIDE: usize = 7;
pub const CONV_VAE_FEATURES: usize = CONV_VAE_CHANNELS[1] * CONV_VAE_SIDE * CONV_VAE_SIDE;

/// The autoencoder's linear layers as `nn.Sequential` names them (ReLUs at the odd indices; the
/// decoder's Tanh at 7), encoder first.
pub const AE_ENCODER: [&str; 4] = ["encoder.0", "encoder.2", "encoder.4", "encoder.6"];
pub const AE_DECODER: [&str; 4] = ["decoder.0", "decoder.2", "decoder.4", "decoder.6"];
/// The width of the autoencoder's third layer (the tutorial's 12), whatever the other sizes.
pub const AE_NARROW: usize = 12;

/// The autoencoder's widths from the image to the code: 784, hidden, hidden/2, 12, latent (the
/// tutorial's 784 → 128 → 64 → 12 → 3); the decoder runs them backwards.
pub fn ae_widths(cfg: &ModelConfig) -> [usize; 5] {
    [IMAGE_PIXELS, cfg.hidden, cfg.hidden / 2, AE_NARROW, cfg.latent]
}

/// Linear layers' parameters as (PyTorch name, shape, fan_in): `.weight` [out, in], `.bias` [out].
pub fn linear_param_specs(layers: &[(&str, usize, usize)]) -> Vec<(String, Vec<usize>, usize)> {
    layers
        .iter()
        .flat_map(|&(name, fan_in, fan_out)| {
            [(format!("{name}.weight"), vec![fan_out, fan_in], fan_in), (format!("{name}.bias"), vec![fan_out], fan_in)]
        })
        .collect()
}

pub fn linear_param_shapes(layers: &[(&str, usize, usize)]) -> Vec<(String, Vec<usize>)> {
    linear_param_specs(layers).into_iter().map(|(name, shape, _)| (name, shape)).collect()
}

/// Labels [n] in 0..10 → one-hot rows [n, 10], flattened.
pub fn one_hot_rows(labels: &[u8]) -> Result<Vec<f32>> {
    let mut v = vec![0f32; labels.len() * CLASSES];
    for (i, &y) in labels.iter().enumerate() {
        ensure!((y as usize) < CLASSES, "label {i} is {y}; digit labels are 0 to 9");
        v[i * CLASSES + y as usize] = 1.0;
    }
    Ok(v)
}

/// Labels [n] in 0..10 → one-hot rows [n, 10].
pub fn one_hot(labels: &[u8], device: &Device) -> Result<Tensor> {
    Ok(Tensor::from_vec(one_hot_rows(labels)?, (labels.len(), CLASSES), device)?)
}

/// The one-hot labels of the batch for a conditional model, `None` for an unconditional one.
pub fn batch_one_hot(cfg: &ModelConfig, labels: &[u8], device: &Device) -> Result<Option<Tensor>> {
    cfg.kind.is_conditional().then(|| one_hot(labels, device)).transpose()
}

/// Joins a one-hot label to each row: [n, d] → [n, d + 10]; unconditional models pass `None`.
pub fn with_label(x: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
    Ok(match y {
        Some(y) => Tensor::cat(&[x, y], 1)?,
        None => x.clone(),
    })
}
