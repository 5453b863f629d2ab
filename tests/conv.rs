//! The convolutional kinds (conv-ae, conv-vae): their layers against PyTorch's definitions in
//! plain f64 loops (forward at odd sizes; gradients against finite differences), PyTorch-layout
//! files of each kind loading and computing as the reference does, and a few steps of training.

use crate::common::{self, expect_err, write_safetensors, Rng};
use candle_core::{Device, Tensor, Var};
use candle_nn::VarBuilder;
use latent_lab::config::ConvLayer;
use latent_lab::conv::Conv;
use latent_lab::lab::Lab;
use latent_lab::model::{Kind, ModelConfig};
use latent_lab::pool::max_pool2d;
use latent_lab::sampler::Sampler;
use std::collections::HashMap;

/// An image batch [n, c, h, w] in f64, row-major.
#[derive(Clone, Debug)]
struct Maps {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

impl Maps {
    fn new(n: usize, c: usize, h: usize, w: usize, v: Vec<f64>) -> Self {
        assert_eq!(v.len(), n * c * h * w);
        Self { n, c, h, w, v }
    }

    fn at(&self, n: usize, c: usize, y: usize, x: usize) -> f64 {
        self.v[((n * self.c + c) * self.h + y) * self.w + x]
    }

    fn map(mut self, f: impl Fn(f64) -> f64) -> Self {
        self.v.iter_mut().for_each(|x| *x = f(*x));
        self
    }
}

/// PyTorch's Conv2d: out[n, o, i, j] = b[o] + Σ_{c, ki, kj} x[n, c, i·s − p + ki, j·s − p + kj] · w[o, c, ki, kj],
/// zero outside the image; the weight is [out, in, k, k].
fn conv2d_ref(x: &Maps, w: &[f64], b: &[f64], c_out: usize, k: usize, s: usize, p: usize) -> Maps {
    let (oh, ow) = ((x.h + 2 * p - k) / s + 1, (x.w + 2 * p - k) / s + 1);
    let mut out = vec![0.0; x.n * c_out * oh * ow];
    for n in 0..x.n {
        for o in 0..c_out {
            for i in 0..oh {
                for j in 0..ow {
                    let mut sum = b[o];
                    for c in 0..x.c {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (y, xx) = ((i * s + ki) as isize - p as isize, (j * s + kj) as isize - p as isize);
                                if y >= 0 && xx >= 0 && (y as usize) < x.h && (xx as usize) < x.w {
                                    sum += x.at(n, c, y as usize, xx as usize) * w[((o * x.c + c) * k + ki) * k + kj];
                                }
                            }
                        }
                    }
                    out[((n * c_out + o) * oh + i) * ow + j] = sum;
                }
            }
        }
    }
    Maps::new(x.n, c_out, oh, ow, out)
}

/// PyTorch's ConvTranspose2d: each input pixel x[n, c, i, j] adds x · w[c, o, ki, kj] onto
/// out[n, o, i·s − p + ki, j·s − p + kj] (what falls outside is dropped); the weight is
/// [in, out, k, k] and the output side (h − 1)·s − 2p + k.
fn conv_transpose2d_ref(x: &Maps, w: &[f64], b: &[f64], c_out: usize, k: usize, s: usize, p: usize) -> Maps {
    let (oh, ow) = ((x.h - 1) * s + k - 2 * p, (x.w - 1) * s + k - 2 * p);
    let mut out = vec![0.0; x.n * c_out * oh * ow];
    for n in 0..x.n {
        for o in 0..c_out {
            out[(n * c_out + o) * oh * ow..][..oh * ow].iter_mut().for_each(|v| *v = b[o]);
        }
        for c in 0..x.c {
            for i in 0..x.h {
                for j in 0..x.w {
                    for o in 0..c_out {
                        for ki in 0..k {
                            for kj in 0..k {
                                let (y, xx) = ((i * s + ki) as isize - p as isize, (j * s + kj) as isize - p as isize);
                                if y >= 0 && xx >= 0 && (y as usize) < oh && (xx as usize) < ow {
                                    out[((n * c_out + o) * oh + y as usize) * ow + xx as usize] +=
                                        x.at(n, c, i, j) * w[((c * c_out + o) * k + ki) * k + kj];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Maps::new(x.n, c_out, oh, ow, out)
}

/// PyTorch's MaxPool2d(k, stride s), no padding: the largest value of each window.
fn max_pool_ref(x: &Maps, k: usize, s: usize) -> Maps {
    let (oh, ow) = ((x.h - k) / s + 1, (x.w - k) / s + 1);
    let mut out = Vec::with_capacity(x.n * x.c * oh * ow);
    for n in 0..x.n {
        for c in 0..x.c {
            for i in 0..oh {
                for j in 0..ow {
                    let window = (0..k).flat_map(|ki| (0..k).map(move |kj| (ki, kj)));
                    out.push(window.map(|(ki, kj)| x.at(n, c, i * s + ki, j * s + kj)).fold(f64::NEG_INFINITY, f64::max));
                }
            }
        }
    }
    Maps::new(x.n, x.c, oh, ow, out)
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// The largest difference between `got` and `want`, as a share of `want`'s largest magnitude.
fn relative(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-12);
    got.iter().zip(want).map(|(&g, w)| (g as f64 - w).abs()).fold(0.0, f64::max) / scale
}

/// Central differences of a scalar function of `at`, one coordinate at a time.
fn finite_differences(at: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let eps = 1e-3;
    let mut x = at.to_vec();
    (0..at.len())
        .map(|i| {
            x[i] = at[i] + eps;
            let up = f(&x);
            x[i] = at[i] - eps;
            let down = f(&x);
            x[i] = at[i];
            (up - down) / (2.0 * eps)
        })
        .collect()
}

/// Each of the crate's convolutions (both directions, the tutorials' strides and paddings and
/// others, odd sizes, batch 2) against PyTorch's definition in f64: outputs within 1e-5 of their
/// largest value; the gradients of Σ out · r (r random) with respect to the input, the weight and
/// the bias within 1e-4 of the largest, against finite differences of the f64 reference.
#[test]
fn convolutions_match_pytorchs_definition_and_their_gradients_match_finite_differences() {
    let layers = [
        // (c_in, c_out, kernel, stride, padding, transposed, input side)
        (1, 4, 3, 3, 1, false, 28), // conv-ae's encoder.0 (fewer channels)
        (3, 5, 3, 2, 1, false, 11),
        (2, 3, 4, 2, 1, false, 9),
        (2, 3, 5, 1, 2, false, 7),
        (3, 4, 3, 2, 0, true, 2), // conv-ae's decoder.0
        (2, 3, 5, 3, 1, true, 5), // decoder.2
        (3, 1, 2, 2, 1, true, 7), // decoder.4
        (2, 3, 4, 2, 1, true, 7), // conv-vae's decoders
        (3, 2, 3, 1, 1, true, 5),
    ];
    for (case, &(c_in, c_out, k, s, p, transposed, side)) in layers.iter().enumerate() {
        let layer = ConvLayer { name: "layer", c_in, c_out, kernel: k, stride: s, padding: p, transposed };
        let mut rng = Rng::new(case as u64 + 1);
        let n = 2;
        let x = rng.vec(n * c_in * side * side, -1.0, 1.0);
        let w = rng.vec(c_in * c_out * k * k, -0.5, 0.5);
        let b = rng.vec(c_out, -0.5, 0.5);
        let reference = |x: &[f64], w: &[f64], b: &[f64]| {
            let x = Maps::new(n, c_in, side, side, x.to_vec());
            if transposed { conv_transpose2d_ref(&x, w, b, c_out, k, s, p) } else { conv2d_ref(&x, w, b, c_out, k, s, p) }
        };
        let want = reference(&f64s(&x), &f64s(&w), &f64s(&b));
        let r = rng.vec(want.v.len(), -1.0, 1.0);
        let loss = |x: &[f64], w: &[f64], b: &[f64]| reference(x, w, b).v.iter().zip(&r).map(|(y, &r)| y * r as f64).sum::<f64>();

        let dev = Device::Cpu;
        let xv = Var::from_slice(&x, (n, c_in, side, side), &dev).unwrap();
        let wv = Var::from_slice(&w, layer.weight_shape(), &dev).unwrap();
        let bv = Var::from_slice(&b, c_out, &dev).unwrap();
        let tensors = HashMap::from([("layer.weight".to_string(), wv.as_tensor().clone()), ("layer.bias".to_string(), bv.as_tensor().clone())]);
        let conv = Conv::new(&layer, &VarBuilder::from_tensors(tensors, candle_core::DType::F32, &dev)).unwrap();
        let y = conv.forward(xv.as_tensor()).unwrap();
        assert_eq!(y.dims(), [n, c_out, want.h, want.w], "case {case}");
        assert_eq!(Some(want.h), layer.out_side(side), "case {case}");
        let d = relative(&values(&y), &want.v);
        assert!(d <= 1e-5, "case {case} {layer:?}: outputs {d} apart");

        let rt = Tensor::from_slice(&r, y.shape(), &dev).unwrap();
        let grads = (y * rt).unwrap().sum_all().unwrap().backward().unwrap();
        let (xf, wf, bf) = (f64s(&x), f64s(&w), f64s(&b));
        let checks = [
            ("input", xv.as_tensor(), finite_differences(&xf, |v| loss(v, &wf, &bf))),
            ("weight", wv.as_tensor(), finite_differences(&wf, |v| loss(&xf, v, &bf))),
            ("bias", bv.as_tensor(), finite_differences(&bf, |v| loss(&xf, &wf, v))),
        ];
        for (what, t, want) in checks {
            let got = values(grads.get(t).unwrap_or_else(|| panic!("case {case}: no gradient for the {what}")));
            let d = relative(&got, &want);
            assert!(d <= 1e-4, "case {case} {layer:?}: d{what} {d} apart from finite differences");
        }
    }
    // An input the layer cannot cover is named, not a panic.
    let layer = ConvLayer { name: "encoder.0", c_in: 1, c_out: 2, kernel: 5, stride: 1, padding: 0, transposed: false };
    let vb = VarBuilder::zeros(candle_core::DType::F32, &Device::Cpu);
    let conv = Conv::new(&layer, &vb).unwrap();
    expect_err(conv.forward(&Tensor::zeros((1, 1, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap()), &["encoder.0 does not fit an input of 3×3"]);
    expect_err(conv.forward(&Tensor::zeros((1, 2, 9, 9), candle_core::DType::F32, &Device::Cpu).unwrap()), &["encoder.0 takes 1 channels, not 2"]);
}

/// Max-pooling with the stride the tutorial's second pool uses (kernel 2, stride 1: the case
/// candle's own backward refuses) and others: forward exactly PyTorch's; the gradient, on
/// values without ties, equal to finite differences; on ties, all of it to the first maximum of
/// each window in row-major order, as PyTorch gives it.
#[test]
fn max_pooling_with_any_stride_matches_pytorch_forward_and_backward() {
    let dev = Device::Cpu;
    for (case, &(k, s, c, side)) in [(2, 1, 3, 3), (2, 2, 2, 10), (2, 1, 2, 6), (3, 2, 2, 7), (3, 1, 1, 5)].iter().enumerate() {
        let n = 2;
        let len = n * c * side * side;
        // distinct values 0.01 apart, shuffled: no ties, and finite differences of 1e-3 stay in
        // each window's order
        let mut order: Vec<usize> = (0..len).collect();
        let mut rng = Rng::new(case as u64 + 11);
        for i in (1..len).rev() {
            order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
        }
        let x: Vec<f32> = order.iter().map(|&i| i as f32 * 0.01 - 1.0).collect();
        let want = max_pool_ref(&Maps::new(n, c, side, side, f64s(&x)), k, s);
        let xv = Var::from_slice(&x, (n, c, side, side), &dev).unwrap();
        let y = max_pool2d(xv.as_tensor(), k, s).unwrap();
        assert_eq!(y.dims(), [n, c, want.h, want.w], "case {case}");
        assert_eq!(f64s(&values(&y)), want.v, "case {case}: kernel {k} stride {s}");

        let r = rng.vec(want.v.len(), -1.0, 1.0);
        let rt = Tensor::from_slice(&r, y.shape(), &dev).unwrap();
        let grads = (y * rt).unwrap().sum_all().unwrap().backward().unwrap();
        let got = values(grads.get(xv.as_tensor()).unwrap());
        let fd = finite_differences(&f64s(&x), |v| {
            max_pool_ref(&Maps::new(n, c, side, side, v.to_vec()), k, s).v.iter().zip(&r).map(|(y, &r)| y * r as f64).sum()
        });
        let d = relative(&got, &fd);
        assert!(d <= 1e-5, "case {case}: kernel {k} stride {s}: dx {d} apart from finite differences");
    }
    // Ties: a 3×3 image of zeros under kernel 2, stride 1 has four windows, each of whose first
    // pixel (its top left) takes the window's gradient.
    let xv = Var::from_slice(&[0f32; 9], (1, 1, 3, 3), &dev).unwrap();
    let y = max_pool2d(xv.as_tensor(), 2, 1).unwrap();
    let grads = (y * Tensor::from_slice(&[1f32, 2., 3., 4.], (1, 1, 2, 2), &dev).unwrap()).unwrap().sum_all().unwrap().backward().unwrap();
    assert_eq!(values(grads.get(xv.as_tensor()).unwrap()), [1., 2., 0., 3., 4., 0., 0., 0., 0.]);
    expect_err(max_pool2d(xv.as_tensor(), 4, 1).map_err(anyhow::Error::from), &["max pool of kernel 4 and stride 1 does not fit a side of 3 pixels"]);
}

/// A state_dict as PyTorch writes one for the layers written out here by hand (names and shapes
/// as `nn.Sequential` and `nn.Linear` give them, independent of the crate's own table), values
/// drawn at PyTorch's init scale, 1/√fan_in.
fn pytorch_state_dict(layers: &[(&str, Vec<usize>)], seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for (name, shape) in layers {
        // nn.ConvTranspose2d's fan_in is its weight's dim 1 · k², as nn.Conv2d's is
        let fan_in: usize = shape[1..].iter().product();
        let bound = 1.0 / (fan_in as f32).sqrt();
        let out_features = if name.starts_with("decoder.") && shape.len() == 4 { shape[1] } else { shape[0] };
        out.push((format!("{name}.weight"), shape.clone(), rng.vec(shape.iter().product(), -bound, bound)));
        out.push((format!("{name}.bias"), vec![out_features], rng.vec(out_features, -bound, bound)));
    }
    out
}

struct Reference {
    sd: HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Reference {
    fn new(sd: &[(String, Vec<usize>, Vec<f32>)]) -> Self {
        Self { sd: sd.iter().map(|(n, s, v)| (n.clone(), (s.clone(), f64s(v)))).collect() }
    }

    fn weight(&self, layer: &str) -> (&[usize], &[f64], &[f64]) {
        let (shape, w) = &self.sd[&format!("{layer}.weight")];
        (shape, w, &self.sd[&format!("{layer}.bias")].1)
    }

    fn conv(&self, layer: &str, x: &Maps, s: usize, p: usize) -> Maps {
        let (shape, w, b) = self.weight(layer);
        conv2d_ref(x, w, b, shape[0], shape[2], s, p)
    }

    fn deconv(&self, layer: &str, x: &Maps, s: usize, p: usize) -> Maps {
        let (shape, w, b) = self.weight(layer);
        conv_transpose2d_ref(x, w, b, shape[1], shape[2], s, p)
    }

    /// rows [n, in] → [n, out]
    fn linear(&self, layer: &str, x: &[f64]) -> Vec<f64> {
        let (shape, w, b) = self.weight(layer);
        let (out, inp) = (shape[0], shape[1]);
        x.chunks(inp).flat_map(|row| (0..out).map(move |o| b[o] + (0..inp).map(|i| w[o * inp + i] * row[i]).sum::<f64>())).collect()
    }
}

fn relu(x: f64) -> f64 {
    x.max(0.0)
}

/// The two kinds' files at the tutorials' sizes and at others, with no metadata: the kind and
/// sizes come off the tensors, and encoding and decoding (whole model) agree with the reference
/// forward pass, written from the layer definitions, to 1e-5; the light sampler refuses them by
/// name (it has no convolutions), and the page is told to load them whole.
#[test]
fn pytorch_state_dicts_of_the_conv_kinds_load_and_compute_as_the_reference_does() {
    let n = 3;
    let images: Vec<f32> = common::mnist().test.take(n).images.iter().map(|&p| p as f32 / 255.0).collect();
    // conv-ae: (first conv's channels, code channels)
    for (h, c) in [(16, 8), (6, 3)] {
        let layers = [
            ("encoder.0", vec![h, 1, 3, 3]),
            ("encoder.3", vec![c, h, 3, 3]),
            ("decoder.0", vec![c, h, 3, 3]),
            ("decoder.2", vec![h, 8, 5, 5]),
            ("decoder.4", vec![8, 1, 2, 2]),
        ];
        let sd = pytorch_state_dict(&layers, h as u64);
        let lab = Lab::from_safetensors(&write_safetensors(&sd, None)).unwrap();
        assert_eq!(lab.config(), ModelConfig { kind: Kind::ConvAe, latent: 4 * c, hidden: h });
        let r = Reference::new(&sd);
        let x = Maps::new(n, 1, 28, 28, f64s(&images)).map(|p| 2.0 * p - 1.0);
        let e = max_pool_ref(&r.conv("encoder.0", &x, 3, 1).map(relu), 2, 2);
        assert_eq!((e.c, e.h), (h, 5));
        let code = max_pool_ref(&r.conv("encoder.3", &e, 2, 1).map(relu), 2, 1);
        assert_eq!((code.c, code.h), (c, 2));
        let (got, logvar) = lab.encode(&images, None).unwrap();
        assert!(relative(&got, &code.v) <= 1e-5, "conv-ae {h}/{c}: codes {} apart", relative(&got, &code.v));
        assert!(logvar.iter().all(|v| *v == f32::NEG_INFINITY));

        let z = Rng::new(4).vec(n * 4 * c, -2.0, 2.0);
        let zm = Maps::new(n, c, 2, 2, f64s(&z));
        let d = r.deconv("decoder.0", &zm, 2, 0).map(relu);
        assert_eq!(d.h, 5);
        let d = r.deconv("decoder.2", &d, 3, 1).map(relu);
        assert_eq!(d.h, 15);
        let out = r.deconv("decoder.4", &d, 2, 1).map(|v| (v.tanh() + 1.0) / 2.0);
        assert_eq!((out.c, out.h), (1, 28));
        let got = lab.sample(&z, None).unwrap();
        assert!(relative(&got, &out.v) <= 1e-5, "conv-ae {h}/{c}: images {} apart", relative(&got, &out.v));
        expect_err(Sampler::from_safetensors(&write_safetensors(&sd, None)), &["a `conv-ae` model's decoder has convolutions", "load it whole (Model.load)"]);
    }
    // conv-vae: (hidden, latent)
    for (hidden, latent) in [(400, 20), (33, 5)] {
        let layers = [
            ("encoder.0", vec![32, 1, 4, 4]),
            ("encoder.2", vec![64, 32, 4, 4]),
            ("fc1", vec![hidden, 3136]),
            ("fc21", vec![latent, hidden]),
            ("fc22", vec![latent, hidden]),
            ("fc3", vec![hidden, latent]),
            ("fc4", vec![3136, hidden]),
            ("decoder.0", vec![64, 32, 4, 4]),
            ("decoder.2", vec![32, 1, 4, 4]),
        ];
        let sd = pytorch_state_dict(&layers, hidden as u64);
        let lab = Lab::from_safetensors(&write_safetensors(&sd, None)).unwrap();
        assert_eq!(lab.config(), ModelConfig { kind: Kind::ConvVae, latent, hidden });
        let r = Reference::new(&sd);
        let x = Maps::new(n, 1, 28, 28, f64s(&images));
        let e = r.conv("encoder.0", &x, 2, 1).map(relu);
        let e = r.conv("encoder.2", &e, 2, 1).map(relu);
        assert_eq!((e.c, e.h), (64, 7));
        let h1: Vec<f64> = r.linear("fc1", &e.v).into_iter().map(relu).collect();
        let (mu, logvar) = (r.linear("fc21", &h1), r.linear("fc22", &h1));
        let (got_mu, got_logvar) = lab.encode(&images, None).unwrap();
        assert!(relative(&got_mu, &mu) <= 1e-5 && relative(&got_logvar, &logvar) <= 1e-5, "conv-vae {hidden}/{latent}: posteriors apart");

        let z = Rng::new(5).vec(n * latent, -2.0, 2.0);
        let h3: Vec<f64> = r.linear("fc3", &f64s(&z)).into_iter().map(relu).collect();
        let h4: Vec<f64> = r.linear("fc4", &h3).into_iter().map(relu).collect();
        let d = r.deconv("decoder.0", &Maps::new(n, 64, 7, 7, h4), 2, 1).map(relu);
        assert_eq!((d.c, d.h), (32, 14));
        let out = r.deconv("decoder.2", &d, 2, 1).map(|v| 1.0 / (1.0 + (-v).exp()));
        assert_eq!((out.c, out.h), (1, 28));
        let got = lab.sample(&z, None).unwrap();
        assert!(relative(&got, &out.v) <= 1e-5, "conv-vae {hidden}/{latent}: images {} apart", relative(&got, &out.v));
        expect_err(Sampler::from_safetensors(&lab.save().unwrap()), &["a `conv-vae` model's decoder has convolutions"]);
    }
    // Malformed files are refused by name, never a panic: a scalar where the second convolution
    // should be, a channel count that would overflow the code's size (a tensor of no elements
    // needs no bytes), and more first-layer channels than a conv-ae takes.
    let conv_ae = |e3: Vec<usize>, values: Vec<f32>| {
        let mut sd = pytorch_state_dict(&[("encoder.0", vec![16, 1, 3, 3]), ("decoder.0", vec![8, 16, 3, 3])], 1);
        sd.push(("encoder.3.weight".into(), e3, values));
        Lab::from_safetensors(&write_safetensors(&sd, None))
    };
    expect_err(conv_ae(vec![], vec![1.0]), &["weight `encoder.3.weight` has shape []", "[out, in, k, k]"]);
    expect_err(conv_ae(vec![1 << 62, 0, 3, 3], vec![]), &["outside 1..=512"]);
    expect_err(Lab::fresh(ModelConfig { kind: Kind::ConvAe, latent: 32, hidden: 300 }, 1), &["a conv-ae's first convolution of 300 channels is above 256"]);
}

/// Fresh models of both kinds learn on the CPU (the engine's convolutions and pooling), at the
/// default recipe: 100 steps of batch 32 more than halve the
/// loss on 500 held-out digits.
#[test]
fn fresh_conv_models_learn() {
    let test = common::mnist().test.take(500);
    for kind in [Kind::ConvAe, Kind::ConvVae] {
        let mut lab = Lab::fresh(kind.default_config(), 2).unwrap();
        lab.set_dataset(common::mnist().train.take(3200)).unwrap();
        let before = lab.evaluate(&test).unwrap().loss;
        for _ in 0..100 {
            lab.train_step().unwrap();
        }
        assert_eq!(lab.backend_name(), "cpu", "{kind:?}");
        let after = lab.evaluate(&test).unwrap().loss;
        eprintln!("{}: held-out loss {before:.1} → {after:.1} in 100 steps", kind.name());
        assert!(after < 0.5 * before, "{}: held-out loss {before:.1} → {after:.1} in 100 steps", kind.name());
    }
}
