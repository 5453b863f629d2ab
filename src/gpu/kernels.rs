//! The compute kernels by name, and their pipelines, compiled once per device (see
//! `Gpu::kernels`). Every WGSL source is compiled behind the prelude of `params.rs`.

use super::params::wgsl_prelude;
use super::Gpu;
use anyhow::{bail, Context, Result};

/// Every compute kernel, compiled once per device.
pub struct Kernels {
    pipelines: Vec<wgpu::ComputePipeline>,
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
    /// Compiles every kernel on `gpu` (use `Gpu::kernels`, which does it once per device).
    pub(crate) fn new(gpu: &Gpu) -> Result<Kernels> {
        let prelude = wgsl_prelude();
        let mut modules: Vec<(&str, wgpu::ShaderModule)> = Vec::new();
        let mut pipelines = Vec::with_capacity(Kernel::ALL.len());
        for kernel in Kernel::ALL {
            let (file, source, entry) = kernel.source();
            if !modules.iter().any(|(f, _)| *f == file) {
                let module = gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(file),
                    source: wgpu::ShaderSource::Wgsl(format!("{prelude}\n{source}").into()),
                });
                modules.push((file, module));
            }
            let Some((_, module)) = modules.iter().find(|(f, _)| *f == file) else {
                bail!("kernel source {file} was not compiled");
            };
            pipelines.push(gpu.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            }));
        }
        gpu.check().context("compiling the WGSL kernels")?;
        Ok(Kernels { pipelines })
    }

    pub fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines[k as usize]
    }
}

