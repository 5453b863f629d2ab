//! What the Rust side and the WGSL kernels share, each defined once here: every kernel's uniform
//! parameters, the slots of a step's stats, the activation codes and flags, the control words.
//!
//! A uniform is declared with `uniform!`, which makes both the `#[repr(C)]` plain-old-data struct
//! the host writes and the WGSL `struct` the kernel reads, field for field from one list; the
//! constants become WGSL `const`s. [`wgsl_prelude`] is prepended to every shader source, so the
//! two languages cannot disagree on a field's place or a slot's number.

/// Declares a uniform struct once for both languages: all fields are 4-byte scalars (`u32`,
/// `f32`), so the Rust struct has no padding and its bytes are the WGSL struct's.
macro_rules! uniform {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ident),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty),*
        }

        // SAFETY: repr(C), every field a 4-byte `u32` or `f32` (checked below), so no padding
        // and every bit pattern is a valid value.
        unsafe impl bytemuck::Zeroable for $name {}
        unsafe impl bytemuck::Pod for $name {}

        const _: () = {
            let fields = [$(std::mem::size_of::<$ty>()),*];
            let mut i = 0;
            while i < fields.len() {
                assert!(fields[i] == 4, "a uniform field is not a 4-byte scalar");
                i += 1;
            }
            assert!(std::mem::size_of::<$name>() == 4 * fields.len());
            // WebGPU's uniform bindings are read in 16-byte rows.
            assert!(std::mem::size_of::<$name>() % 16 == 0, "pad the uniform to a multiple of 16 bytes");
        };

        impl $name {
            /// The WGSL declaration of this struct.
            pub const WGSL: &'static str =
                concat!("struct ", stringify!($name), " {", $(" ", stringify!($field), ": ", stringify!($ty), ","),*, " }\n");
        }
    };
}

uniform! {
    /// linear.wgsl `matmul`: C[m, n] (+)= act(A·B + bias) ⊙ mask over strided views.
    Matmul {
        m: u32, n: u32, k: u32,
        /// Activation code (bits 0–1) | FLAG_BIAS | FLAG_MASK | FLAG_ACCUMULATE.
        flags: u32,
        a_off: u32, a_rs: u32, a_cs: u32, b_off: u32,
        b_rs: u32, b_cs: u32, c_off: u32, c_rs: u32,
        bias_off: u32, mask_off: u32,
        /// Dropout's scale for kept units, 1/(1 − p).
        keep: f32,
        _pad: u32,
    }
}

uniform! {
    /// linear.wgsl `act_backward`: dZ = dY ⊙ mask ⊙ act′(Y) in place, over `count` values.
    Elementwise {
        count: u32, _pad0: u32,
        /// Activation code | FLAG_MASK.
        flags: u32,
        mask_off: u32,
        keep: f32, _pad1: u32, _pad2: u32, _pad3: u32,
    }
}

uniform! {
    /// linear.wgsl `bias_grad`: db[dst_off + j] (+)= Σ_r dZ[src_off + r·src_rs + j].
    BiasGrad {
        rows: u32, cols: u32, src_off: u32, src_rs: u32,
        dst_off: u32, accumulate: u32, _pad0: u32, _pad1: u32,
    }
}

uniform! {
    /// batch.wgsl `gather`: rows of the dataset into X[row0.., width], pixels scaled and shifted.
    Gather {
        rows: u32, row0: u32, width: u32,
        /// LABEL_NONE, LABEL_OWN or LABEL_WRONG.
        label_mode: u32,
        scale: f32, shift: f32,
        /// The label's one-hot value (a cGAN discriminator's label gain; else 1).
        hot: f32,
        _pad0: u32,
    }
}

uniform! {
    /// batch.wgsl `latent_input`: Z[r] = ε[r] then the one-hot label (width − latent columns).
    Latent {
        rows: u32, latent: u32, width: u32, _pad: u32,
    }
}

uniform! {
    /// vae.wgsl: `reparameterise`, `kl_reparameterise_backward`, `reconstruction`.
    Vae {
        rows: u32, latent: u32,
        /// Z's row length (latent + label columns).
        width: u32,
        /// X's row length (pixels + label columns).
        x_width: u32,
        inv_n: f32,
        /// The reconstruction loss: `recon::BCE`, `recon::L2` or `recon::L1`.
        recon: u32,
        /// β / n: the KL term's gradient scale.
        kl_scale: f32,
        _pad0: u32,
    }
}

uniform! {
    /// gan.wgsl `fake_to_d` and `fake_backward`.
    Fake {
        rows: u32, width: u32, row0: u32,
        /// `fake_to_d`: the label's one-hot value (the label gain).
        hot: f32,
    }
}

uniform! {
    /// gan.wgsl `discriminator_loss` and `generator_loss`.
    GanLoss {
        n: u32, conditional: u32, _pad0: u32, _pad1: u32,
    }
}

uniform! {
    /// reduce.wgsl `sum_partials`: partials[w] = Σ over workgroup w's chunk of src[off..off + count]
    /// (of squares with `square`).
    SumPartials {
        count: u32, off: u32, square: u32, _pad: u32,
    }
}

uniform! {
    /// reduce.wgsl `sum_final`: stats[slot] = scale · Σ partials[..count].
    SumFinal {
        count: u32, slot: u32, scale: f32, _pad: u32,
    }
}

uniform! {
    /// reduce.wgsl `check_step`: a VAE's loss is reconstruction + kl_weight · KL.
    Check {
        gan: u32, kl_weight: f32, _pad0: u32, _pad1: u32,
    }
}

uniform! {
    /// adam.wgsl `propose` and `commit`: the parameter range.
    Adam {
        off: u32, count: u32, _pad0: u32, _pad1: u32,
    }
}

uniform! {
    /// adam.wgsl `propose`: this step's learning rate, bias corrections 1/(1 − βᵗ) and Adam's
    /// constants (the step's `Batch::adam`: β2 is the recipe's).
    Step {
        lr: f32, scale_m: f32, scale_v: f32, eps: f32,
        beta1: f32, one_minus_beta1: f32, beta2: f32, one_minus_beta2: f32,
    }
}

/// Slots of a step's stats buffer (f32): what one step reports.
pub mod stats {
    /// The VAE's loss per example (BCE + KL), or the GAN discriminator's loss L_D.
    pub const LOSS: u32 = 0;
    pub const D_LOSS: u32 = 0;
    /// The VAE's BCE per example, or the generator's loss L_G.
    pub const BCE: u32 = 1;
    pub const G_LOSS: u32 = 1;
    /// The VAE's KL per example, or mean D(real).
    pub const KL: u32 = 2;
    pub const D_REAL: u32 = 2;
    /// Mean D(fake).
    pub const D_FAKE: u32 = 3;
    /// |g|² of the VAE's or the discriminator's gradient.
    pub const GRAD_SQ: u32 = 4;
    /// |g|² of the generator's gradient.
    pub const G_GRAD_SQ: u32 = 5;
    /// 1 if the step was committed, else 0.
    pub const OK: u32 = 6;
    /// Steps committed so far, this one included.
    pub const COMMITTED: u32 = 7;
    /// Slots in all.
    pub const LEN: usize = 8;
}

/// Words of the control buffer (u32), which outlives steps.
pub mod control {
    /// Nonzero once a step was refused: every later step is refused until the host clears it.
    pub const HALTED: u32 = 0;
    /// Steps committed so far (Adam's t).
    pub const COMMITTED: u32 = 1;
    pub const LEN: usize = 2;
}

/// Activation codes (bits 0–1 of a flags word) and the flags above them.
pub mod act {
    pub const NONE: u32 = 0;
    pub const RELU: u32 = 1;
    pub const LEAKY: u32 = 2;
    pub const SIGMOID: u32 = 3;
    /// The bits that hold the activation code.
    pub const BITS: u32 = 3;
    pub const FLAG_BIAS: u32 = 16;
    pub const FLAG_MASK: u32 = 32;
    pub const FLAG_ACCUMULATE: u32 = 64;
}

/// `Gather::label_mode`.
pub mod label {
    pub const NONE: u32 = 0;
    /// The digit's own label.
    pub const OWN: u32 = 1;
    /// The cGAN's mismatched label for the row.
    pub const WRONG: u32 = 2;
}

/// The VAE's reconstruction losses (`config::Recon`).
pub mod recon {
    use crate::config::Recon;
    pub const BCE: u32 = 0;
    pub const L2: u32 = 1;
    pub const L1: u32 = 2;

    pub fn code(r: Recon) -> u32 {
        match r {
            Recon::Bce => BCE,
            Recon::L2 => L2,
            Recon::L1 => L1,
        }
    }
}

/// LeakyReLU's slope for negative inputs (src/gan.rs's).
pub const LEAK: f32 = 0.2;

/// Elements one workgroup of `sum_partials` adds up: 256 threads, 16 each.
pub const SUM_CHUNK: u32 = 4096;

/// The WGSL every shader source starts with: the uniform structs and the shared constants.
pub fn wgsl_prelude() -> String {
    let mut out = String::from("// Generated from src/gpu/params.rs: the structs and constants Rust and WGSL share.\n");
    for decl in [
        Matmul::WGSL,
        Elementwise::WGSL,
        BiasGrad::WGSL,
        Gather::WGSL,
        Latent::WGSL,
        Vae::WGSL,
        Fake::WGSL,
        GanLoss::WGSL,
        SumPartials::WGSL,
        SumFinal::WGSL,
        Check::WGSL,
        Adam::WGSL,
        Step::WGSL,
    ] {
        out.push_str(decl);
    }
    let u32s = [
        ("STAT_LOSS", stats::LOSS),
        ("STAT_D_LOSS", stats::D_LOSS),
        ("STAT_BCE", stats::BCE),
        ("STAT_G_LOSS", stats::G_LOSS),
        ("STAT_KL", stats::KL),
        ("STAT_D_REAL", stats::D_REAL),
        ("STAT_D_FAKE", stats::D_FAKE),
        ("STAT_GRAD_SQ", stats::GRAD_SQ),
        ("STAT_G_GRAD_SQ", stats::G_GRAD_SQ),
        ("STAT_OK", stats::OK),
        ("STAT_COMMITTED", stats::COMMITTED),
        ("CONTROL_HALTED", control::HALTED),
        ("CONTROL_COMMITTED", control::COMMITTED),
        ("ACT_NONE", act::NONE),
        ("ACT_RELU", act::RELU),
        ("ACT_LEAKY", act::LEAKY),
        ("ACT_SIGMOID", act::SIGMOID),
        ("ACT_BITS", act::BITS),
        ("FLAG_BIAS", act::FLAG_BIAS),
        ("FLAG_MASK", act::FLAG_MASK),
        ("FLAG_ACCUMULATE", act::FLAG_ACCUMULATE),
        ("LABEL_NONE", label::NONE),
        ("LABEL_OWN", label::OWN),
        ("LABEL_WRONG", label::WRONG),
        ("RECON_BCE", recon::BCE),
        ("RECON_L2", recon::L2),
        ("RECON_L1", recon::L1),
        ("PIXELS", crate::mnist::IMAGE_PIXELS as u32),
        ("SUM_CHUNK", SUM_CHUNK),
    ];
    for (name, value) in u32s {
        out.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    out.push_str(&format!("const LEAK: f32 = {LEAK:?};\n"));
    out
}
