//! The compute kernels by name, and their pipelines, each compiled on its first use on a device
//! and shared from then on (see `Gpu::kernels`). Every WGSL source is compiled behind the prelude
//! of `params.rs`. Compiling on first use means a VAE never compiles the GAN's kernels: on
//! SwiftShader the GAN's two loss kernels alone take a second to compile.

use super::params::wgsl_prelude;
use std::sync::OnceLock;

/// Every compute kernel of one device, compiled when first asked for.
pub struct Kernels {
    device: wgpu::Device,
    /// One shader module per WGSL file, in the order of `FILES`.
    modules: [OnceLock<wgpu::ShaderModule>; FILES.len()],
    /// One pipeline per kernel, in the order of `Kernel::ALL`.
    pipelines: [OnceLock<wgpu::ComputePipeline>; Kernel::ALL.len()],
}

/// The kernels by name: (WGSL source, entry point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Matmul,
    ActBackward,
    BiasGrad,
    Gather,
    LatentInput,
    Reparameterise,
    KlReparameteriseBackward,
    Reconstruction,
    FakeToD,
    FakeBackward,
    DiscriminatorLoss,
    GeneratorLoss,
    SumPartials,
    SumFinal,
    CheckStep,
    AdamPropose,
    AdamCommit,
}

// The WGSL files, by their index in FILES.
const LINEAR: usize = 0;
const BATCH: usize = 1;
const VAE: usize = 2;
const GAN: usize = 3;
const REDUCE: usize = 4;
const ADAM: usize = 5;
/// Each WGSL file's name and source.
const FILES: [(&str, &str); 6] = [
    ("linear", include_str!("linear.wgsl")),
    ("batch", include_str!("batch.wgsl")),
    ("vae", include_str!("vae.wgsl")),
    ("gan", include_str!("gan.wgsl")),
    ("reduce", include_str!("reduce.wgsl")),
    ("adam", include_str!("adam.wgsl")),
];

impl Kernel {
    pub const ALL: [Kernel; 17] = [
        Kernel::Matmul,
        Kernel::ActBackward,
        Kernel::BiasGrad,
        Kernel::Gather,
        Kernel::LatentInput,
        Kernel::Reparameterise,
        Kernel::KlReparameteriseBackward,
        Kernel::Reconstruction,
        Kernel::FakeToD,
        Kernel::FakeBackward,
        Kernel::DiscriminatorLoss,
        Kernel::GeneratorLoss,
        Kernel::SumPartials,
        Kernel::SumFinal,
        Kernel::CheckStep,
        Kernel::AdamPropose,
        Kernel::AdamCommit,
    ];

    /// The WGSL entry point's name.
    pub fn entry_point(self) -> &'static str {
        self.source().1
    }

    /// (the file's index in `FILES`, entry point).
    fn source(self) -> (usize, &'static str) {
        use Kernel::*;
        match self {
            Matmul => (LINEAR, "matmul"),
            ActBackward => (LINEAR, "act_backward"),
            BiasGrad => (LINEAR, "bias_grad"),
            Gather => (BATCH, "gather"),
            LatentInput => (BATCH, "latent_input"),
            Reparameterise => (VAE, "reparameterise"),
            KlReparameteriseBackward => (VAE, "kl_reparameterise_backward"),
            Reconstruction => (VAE, "reconstruction"),
            FakeToD => (GAN, "fake_to_d"),
            FakeBackward => (GAN, "fake_backward"),
            DiscriminatorLoss => (GAN, "discriminator_loss"),
            GeneratorLoss => (GAN, "generator_loss"),
            SumPartials => (REDUCE, "sum_partials"),
            SumFinal => (REDUCE, "sum_final"),
            CheckStep => (REDUCE, "check_step"),
            AdamPropose => (ADAM, "propose"),
            AdamCommit => (ADAM, "commit"),
        }
    }
}

impl Kernels {
    /// The kernels of `device`, none compiled yet (`Gpu::from_device` makes the device's one).
    pub(crate) fn new(device: &wgpu::Device) -> Kernels {
        Kernels { device: device.clone(), modules: Default::default(), pipelines: std::array::from_fn(|_| OnceLock::new()) }
    }

    /// `k`'s pipeline, compiled now if this is its first use on the device. A compile error is
    /// the device's: it comes back from the next `Gpu::check`.
    pub fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        self.pipelines[k as usize].get_or_init(|| {
            let (at, entry) = k.source();
            let (file, source) = FILES[at];
            let module = self.modules[at].get_or_init(|| {
                self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(file),
                    source: wgpu::ShaderSource::Wgsl(format!("{}\n{source}", wgsl_prelude()).into()),
                })
            });
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })
    }
}
