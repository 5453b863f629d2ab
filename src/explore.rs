//! Tools for looking at a latent space: a 2-D projection for the latent map, and turning a digit
//! drawn on a pad into an MNIST-like image before it is encoded.

use crate::metrics::symmetric_eigen;
use crate::mnist::{IMAGE_PIXELS, IMAGE_SIDE};
use anyhow::{bail, ensure, Result};

/// The two principal axes of a set of latent points: the map draws x = (z − mean)·axis₁ and
/// y = (z − mean)·axis₂, and a map position (x, y) decodes from mean + x·axis₁ + y·axis₂.
#[derive(Clone, Debug)]
pub struct Pca {
    pub dim: usize,
    pub mean: Vec<f32>,
    /// axis₁ then axis₂, each `dim` long, unit length.
    pub axes: Vec<f32>,
    /// The share of the total variance along each axis.
    pub explained: [f32; 2],
}

impl Pca {
    /// Fits points [n, dim] (n ≥ 2, dim ≥ 2): the top two eigenvectors of their covariance.
    pub fn fit(points: &[f32], dim: usize) -> Result<Self> {
        ensure!(dim >= 2, "a 2-D projection needs at least 2 latent dimensions, got {dim}");
        ensure!(points.len().is_multiple_of(dim), "{} values is not a whole number of {dim}-wide points", points.len());
        if let Some(i) = points.iter().position(|v| !v.is_finite()) {
            bail!("point value {i} is {}, not a finite number", points[i]);
        }
        let g = crate::metrics::Gaussian::fit(points, dim)?;
        let (values, vectors) = symmetric_eigen(&g.cov, dim);
        let mut order: Vec<usize> = (0..dim).collect();
        order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
        let total: f64 = values.iter().map(|v| v.max(0.0)).sum::<f64>().max(f64::MIN_POSITIVE);
        let mut axes = Vec::with_capacity(2 * dim);
        for &k in &order[..2] {
            // Eigenvectors are columns of V; fix the sign so the largest entry is positive, so
            // refitting the same points never mirrors the map.
            let col: Vec<f64> = (0..dim).map(|i| vectors[i * dim + k]).collect();
            let big = col.iter().copied().fold(0f64, |m, v| if v.abs() > m.abs() { v } else { m });
            let sign = if big < 0.0 { -1.0 } else { 1.0 };
            axes.extend(col.iter().map(|v| (v * sign) as f32));
        }
        let explained = [(values[order[0]].max(0.0) / total) as f32, (values[order[1]].max(0.0) / total) as f32];
        Ok(Self { dim, mean: g.mean.iter().map(|&m| m as f32).collect(), axes, explained })
    }

    /// Points [n, dim] → map positions [n, 2].
    pub fn project(&self, points: &[f32]) -> Result<Vec<f32>> {
        ensure!(points.len().is_multiple_of(self.dim), "{} values is not a whole number of {}-wide points", points.len(), self.dim);
        let (a1, a2) = self.axes.split_at(self.dim);
        Ok(points
            .chunks(self.dim)
            .flat_map(|p| {
                let (mut x, mut y) = (0f32, 0f32);
                for i in 0..self.dim {
                    let c = p[i] - self.mean[i];
                    x += c * a1[i];
                    y += c * a2[i];
                }
                [x, y]
            })
            .collect())
    }

    /// Map positions [n, 2] → latent points [n, dim] on the plane the map shows.
    pub fn unproject(&self, xy: &[f32]) -> Result<Vec<f32>> {
        ensure!(xy.len().is_multiple_of(2), "{} values is not a whole number of (x, y) positions", xy.len());
        let (a1, a2) = self.axes.split_at(self.dim);
        Ok(xy
            .chunks(2)
            .flat_map(|p| (0..self.dim).map(move |i| self.mean[i] + p[0] * a1[i] + p[1] * a2[i]))
            .collect())
    }
}

/// A drawing (ink in [0, 1], `width` × `height`, row-major) made to look like an MNIST digit, as
/// MNIST's digits were made: the ink's bounding box scaled (keeping its aspect) to fit 20 × 20,
/// then placed in the 28 × 28 frame so that its centre of mass sits at the frame's centre.
/// An empty drawing is an error, not a blank image.
pub fn center_like_mnist(pixels: &[f32], width: usize, height: usize) -> Result<Vec<f32>> {
    ensure!((8..=1024).contains(&width) && (8..=1024).contains(&height), "drawing size {width}×{height} is outside 8..=1024");
    ensure!(pixels.len() == width * height, "{} pixels for a {width}×{height} drawing", pixels.len());
    if let Some(i) = pixels.iter().position(|p| !(0.0..=1.0).contains(p)) {
        bail!("drawing pixel {i} is {}; pixels must lie in [0, 1]", pixels[i]);
    }
    let inked = |p: f32| p > 0.05;
    let (mut x0, mut x1, mut y0, mut y1) = (width, 0, height, 0);
    for y in 0..height {
        for x in 0..width {
            if inked(pixels[y * width + x]) {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
            }
        }
    }
    ensure!(x0 <= x1, "the drawing is empty: draw a digit first");
    let (bw, bh) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
    let scale = 20.0 / bw.max(bh);
    let (sw, sh) = (((bw * scale).round() as usize).max(1), ((bh * scale).round() as usize).max(1));
    // Box-filter the bounding box down (or up) to sw × sh: each target pixel averages the source
    // area it covers, so thin strokes keep their ink.
    let mut small = vec![0f32; sw * sh];
    for ty in 0..sh {
        for tx in 0..sw {
            let (sx0, sx1) = (x0 as f32 + tx as f32 / scale, x0 as f32 + (tx + 1) as f32 / scale);
            let (sy0, sy1) = (y0 as f32 + ty as f32 / scale, y0 as f32 + (ty + 1) as f32 / scale);
            let (mut sum, mut area) = (0f32, 0f32);
            let mut y = sy0.floor() as usize;
            while (y as f32) < sy1 && y < height {
                let wy = (sy1.min(y as f32 + 1.0) - sy0.max(y as f32)).max(0.0);
                let mut x = sx0.floor() as usize;
                while (x as f32) < sx1 && x < width {
                    let wx = (sx1.min(x as f32 + 1.0) - sx0.max(x as f32)).max(0.0);
                    sum += pixels[y * width + x] * wx * wy;
                    area += wx * wy;
                    x += 1;
                }
                y += 1;
            }
            small[ty * sw + tx] = if area > 0.0 { (sum / area).min(1.0) } else { 0.0 };
        }
    }
    // Centre of mass of the scaled ink, then the offset that puts it at (14, 14).
    let (mut mass, mut mx, mut my) = (0f32, 0f32, 0f32);
    for y in 0..sh {
        for x in 0..sw {
            let v = small[y * sw + x];
            mass += v;
            mx += v * (x as f32 + 0.5);
            my += v * (y as f32 + 0.5);
        }
    }
    let half = IMAGE_SIDE as f32 / 2.0;
    let (ox, oy) = ((half - mx / mass).round() as isize, (half - my / mass).round() as isize);
    let mut out = vec![0f32; IMAGE_PIXELS];
    for y in 0..sh {
        for x in 0..sw {
            let (tx, ty) = (x as isize + ox, y as isize + oy);
            if (0..IMAGE_SIDE as isize).contains(&tx) && (0..IMAGE_SIDE as isize).contains(&ty) {
                out[ty as usize * IMAGE_SIDE + tx as usize] = small[y * sw + x];
            }
        }
    }
    Ok(out)
}
