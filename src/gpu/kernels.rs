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
    Bce,
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

const LINEAR: &str = include_str!("linear.wgsl");
const BATCH: &str = include_str!("batch.wgsl");
const VAE: &str = include_str!("vae.wgsl");
const GAN: &str = include_str!("gan.wgsl");
const REDUCE: &str = include_str!("reduce.wgsl");
const ADAM: &str = include_str!("adam.wgsl");
/// The WGSL files by name.
const FILES: [&str; 6] = ["linear", "batch", "vae", "gan", "reduce", "adam"];

impl Kernel {
    pub const ALL: [Kernel; 17] = [
        Kernel::Matmul,
        Kernel::ActBackward,
        Kernel::BiasGrad,
        Kernel::Gather,
        Kernel::LatentInput,
        Kernel::Reparameterise,
        Kernel::KlReparameteriseBackward,
        Kernel::Bce,
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
        self.source().2
    }

    /// (file, WGSL source, entry point).
    fn source(self) -> (&'static str, &'static str, &'static str) {
        use Kernel::*;
        match self {
            Matmul => ("linear", LINEAR, "matmul"),
            ActBackward => ("linear", LINEAR, "act_backward"),
            BiasGrad => ("linear", LINEAR, "bias_grad"),
            Gather => ("batch", BATCH, "gather"),
            LatentInput => ("batch", BATCH, "latent_input"),
            Reparameterise => ("vae", VAE, "reparameterise"),
            KlReparameteriseBackward => ("vae", VAE, "kl_reparameterise_backward"),
            Bce => ("vae", VAE, "bce"),
            FakeToD => ("gan", GAN, "fake_to_d"),
            FakeBackward => ("gan", GAN, "fake_backward"),
            DiscriminatorLoss => ("gan", GAN, "discriminator_loss"),
            GeneratorLoss => ("gan", GAN, "generator_loss"),
            SumPartials => ("reduce", REDUCE, "sum_partials"),
            SumFinal => ("reduce", REDUCE, "sum_final"),
            CheckStep => ("reduce", REDUCE, "check_step"),
            AdamPropose => ("adam", ADAM, "propose"),
            AdamCommit => ("adam", ADAM, "commit"),
        }
    }
}

impl Kernels {
    /// The kernels of `device`, none compiled yet (use `Gpu::kernels`, which makes one per device).
    pub(crate) fn new(device: &wgpu::Device) -> Kernels {
        Kernels { device: device.clone(), modules: Default::default(), pipelines: std::array::from_fn(|_| OnceLock::new()) }
    }

    /// `k`'s pipeline, compiled now if this is its first use on the device. A compile error is
    /// the device's: it comes back from the next `Gpu::check`.
    pub fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        self.pipelines[k as usize].get_or_init(|| {
            let (file, source, entry) = k.source();
            let at = FILES.iter().position(|f| *f == file).expect("every kernel's file is in FILES");
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
