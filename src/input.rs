//! Checks on numbers that come in from outside (the page, a file, the command line): each gives an
//! error that names the problem, never a panic. A leaf, so every layer can check its inputs.

use crate::mnist::IMAGE_PIXELS;
use anyhow::{bail, ensure, Result};

/// Most images one call may ask for (bounds memory: 10,000 × 784 floats is 31 MB).
pub const MAX_IMAGES_PER_CALL: usize = 10_000;

/// How many rows of `width` values `values` holds, checking it is a whole, bounded, finite batch.
pub fn count_rows(values: &[f32], width: usize, what: &str, width_name: &str) -> Result<usize> {
    ensure!(!values.is_empty(), "no {what} given");
    ensure!(
        values.len().is_multiple_of(width),
        "{what}: {} values is not a multiple of {width_name} ({width})",
        values.len()
    );
    let n = values.len() / width;
    ensure!(n <= MAX_IMAGES_PER_CALL, "{n} {what} in one call; at most {MAX_IMAGES_PER_CALL}");
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        bail!("{what}: value {i} is {}, not a finite number", values[i]);
    }
    Ok(n)
}

/// How many 28×28 images `images` holds, checking every pixel is a number in [0, 1].
pub fn count_images(images: &[f32]) -> Result<usize> {
    let n = count_rows(images, IMAGE_PIXELS, "images", "784 pixels (28×28)")?;
    if let Some(i) = images.iter().position(|p| !(0.0..=1.0).contains(p)) {
        bail!("image pixel {i} is {}; pixels must lie in [0, 1]", images[i]);
    }
    Ok(n)
}
