//! The FID Inception-v3 network (the TensorFlow "2015-12-05" graph that pytorch-fid,
//! clean-fid and NVIDIA's StyleGAN/EDM metrics use) as a burn [`Module`].
//!
//! Its quirks relative to torchvision's Inception-v3, all taken from the weights file
//! rather than assumed: batch norm has no scale γ and ε = 1e-3; the average pools
//! inside the A/C/E blocks exclude padding from the count; the last E block pools with
//! a 3×3 max pool instead of an average; the output is the 8×8 average pool (`pool3`),
//! 2048 features. Batch norm is folded into the convolution in f64 at load time:
//! w' = w/√(var+ε), b' = β − mean/√(var+ε), which is exact up to one f32 rounding of
//! each folded weight.

use std::collections::HashMap;

use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::relu;
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};

use super::torchscript::ConvLayer;
use score_core::error::{Result, ScoreError};

/// Batch-norm ε of the TF graph.
pub const BN_EPS: f64 = 1e-3;

/// Conv → (folded) batch norm → ReLU.
#[derive(Module, Debug)]
pub struct ConvBn {
    conv: Conv2d,
}

impl ConvBn {
    fn new(l: &ConvLayer, device: &Device) -> Self {
        let [o, i, kh, kw] = l.shape;
        let per_out = i * kh * kw;
        let scale: Vec<f64> = l
            .var
            .iter()
            .map(|&v| 1.0 / (v as f64 + BN_EPS).sqrt())
            .collect();
        let weight: Vec<f32> = l
            .weight
            .iter()
            .enumerate()
            .map(|(k, &w)| (w as f64 * scale[k / per_out]) as f32)
            .collect();
        let bias: Vec<f32> = (0..o)
            .map(|c| (l.beta[c] as f64 - l.mean[c] as f64 * scale[c]) as f32)
            .collect();
        let [ph, pw] = l.padding;
        Self {
            conv: Conv2d {
                weight: Param::from_tensor(Tensor::from_data(
                    TensorData::new(weight, l.shape),
                    device,
                )),
                bias: Some(Param::from_tensor(Tensor::from_data(
                    TensorData::new(bias, [o]),
                    device,
                ))),
                stride: [l.stride; 2],
                kernel_size: [kh, kw],
                dilation: [1, 1],
                groups: 1,
                padding: PaddingConfig2d::Explicit(ph, pw, ph, pw),
            },
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(scorelab_kernels::conv2d_layer(&self.conv, x))
    }
}

fn chain(convs: &[ConvBn], x: Tensor<4>) -> Tensor<4> {
    convs.iter().fold(x, |x, c| c.forward(x))
}

fn max_3x3_stride_2(x: Tensor<4>) -> Tensor<4> {
    max_pool2d(x, MaxPoolOptions::new([3, 3]).with_stride([2, 2]))
}

fn avg_3x3_same(x: Tensor<4>) -> Tensor<4> {
    let o = AvgPoolOptions::new([3, 3])
        .with_stride([1, 1])
        .with_padding([1, 1])
        .with_count_include_pad(false);
    avg_pool2d(x, o)
}

fn max_3x3_same(x: Tensor<4>) -> Tensor<4> {
    let o = MaxPoolOptions::new([3, 3])
        .with_stride([1, 1])
        .with_padding([1, 1]);
    max_pool2d(x, o)
}

/// Blocks A (mixed 5b–5d) and C (mixed 6b–6e): 1×1 | tower | tower_1 | avg-pool → 1×1.
#[derive(Module, Debug)]
pub struct BlockAc {
    conv: ConvBn,
    tower: Vec<ConvBn>,
    tower_1: Vec<ConvBn>,
    pool_conv: ConvBn,
}

impl BlockAc {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let parts = vec![
            self.conv.forward(x.clone()),
            chain(&self.tower, x.clone()),
            chain(&self.tower_1, x.clone()),
            self.pool_conv.forward(avg_3x3_same(x)),
        ];
        Tensor::cat(parts, 1)
    }
}

/// Blocks B (mixed 6a) and D (mixed 7a): reductions with a max-pool branch.
#[derive(Module, Debug)]
pub struct BlockBd {
    towers: Vec<Vec<ConvBn>>,
}

impl BlockBd {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut parts: Vec<_> = self.towers.iter().map(|t| chain(t, x.clone())).collect();
        parts.push(max_3x3_stride_2(x));
        Tensor::cat(parts, 1)
    }
}

/// Block E (mixed 7b, 7c): branches that fork into 1×3 and 3×1 convolutions.
#[derive(Module, Debug)]
pub struct BlockE {
    conv: ConvBn,
    tower: ConvBn,
    tower_mixed: Vec<ConvBn>,
    tower_1: Vec<ConvBn>,
    tower_1_mixed: Vec<ConvBn>,
    pool_conv: ConvBn,
    max_pool: bool,
}

impl BlockE {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let a = self.tower.forward(x.clone());
        let b = chain(&self.tower_1, x.clone());
        let pooled = if self.max_pool {
            max_3x3_same(x.clone())
        } else {
            avg_3x3_same(x.clone())
        };
        let mut parts = vec![self.conv.forward(x)];
        parts.extend(self.tower_mixed.iter().map(|c| c.forward(a.clone())));
        parts.extend(self.tower_1_mixed.iter().map(|c| c.forward(b.clone())));
        parts.push(self.pool_conv.forward(pooled));
        Tensor::cat(parts, 1)
    }
}

/// The FID Inception-v3 feature extractor: `[B, 3, 299, 299]` in the TF input range
/// [−1, 0.9921875] → `[B, 2048]` pool3 features.
#[derive(Module, Debug)]
pub struct InceptionV3 {
    stem_1: Vec<ConvBn>,
    stem_2: Vec<ConvBn>,
    mixed_a: Vec<BlockAc>,
    mixed_b: BlockBd,
    mixed_c: Vec<BlockAc>,
    mixed_d: BlockBd,
    mixed_e: Vec<BlockE>,
}

struct Layers<'a> {
    by_name: HashMap<String, &'a ConvLayer>,
    device: &'a Device,
}

impl Layers<'_> {
    fn take(&mut self, name: &str) -> Result<ConvBn> {
        let l = self.by_name.remove(name).ok_or_else(|| {
            ScoreError::invalid("inception weights", format!("missing layer {name}"))
        })?;
        Ok(ConvBn::new(l, self.device))
    }

    fn seq(&mut self, prefix: &str, names: &[&str]) -> Result<Vec<ConvBn>> {
        names
            .iter()
            .map(|n| self.take(&format!("{prefix}.{n}")))
            .collect()
    }

    fn ac(&mut self, p: &str, tower_1_len: usize) -> Result<BlockAc> {
        let convs = ["conv", "conv_1", "conv_2", "conv_3", "conv_4"];
        let (tower, tower_1) = if tower_1_len == 3 {
            (&convs[..2], &convs[..3])
        } else {
            (&convs[..3], &convs[..5])
        };
        Ok(BlockAc {
            conv: self.take(&format!("{p}.conv"))?,
            tower: self.seq(&format!("{p}.tower"), tower)?,
            tower_1: self.seq(&format!("{p}.tower_1"), tower_1)?,
            pool_conv: self.take(&format!("{p}.tower_2.conv"))?,
        })
    }

    fn e(&mut self, p: &str, max_pool: bool) -> Result<BlockE> {
        Ok(BlockE {
            conv: self.take(&format!("{p}.conv"))?,
            tower: self.take(&format!("{p}.tower_conv"))?,
            tower_mixed: self.seq(p, &["tower_mixed_conv", "tower_mixed_conv_1"])?,
            tower_1: self.seq(p, &["tower_1_conv", "tower_1_conv_1"])?,
            tower_1_mixed: self.seq(p, &["tower_1_mixed_conv", "tower_1_mixed_conv_1"])?,
            pool_conv: self.take(&format!("{p}.tower_2_conv"))?,
            max_pool,
        })
    }
}

impl InceptionV3 {
    /// Build the network from its 94 conv layers (named as in the TorchScript module
    /// tree, e.g. `layers.mixed_4.tower_1.conv_2`). Missing or extra layers are errors.
    pub fn from_layers(layers: &[ConvLayer], device: &Device) -> Result<Self> {
        let mut l = Layers {
            by_name: layers.iter().map(|c| (c.name.clone(), c)).collect(),
            device,
        };
        let net = Self {
            stem_1: l.seq("layers", &["conv", "conv_1", "conv_2"])?,
            stem_2: l.seq("layers", &["conv_3", "conv_4"])?,
            mixed_a: ["mixed", "mixed_1", "mixed_2"]
                .iter()
                .map(|p| l.ac(&format!("layers.{p}"), 3))
                .collect::<Result<_>>()?,
            mixed_b: BlockBd {
                towers: vec![
                    l.seq("layers.mixed_3", &["conv"])?,
                    l.seq("layers.mixed_3.tower", &["conv", "conv_1", "conv_2"])?,
                ],
            },
            mixed_c: (4..8)
                .map(|i| l.ac(&format!("layers.mixed_{i}"), 5))
                .collect::<Result<_>>()?,
            mixed_d: BlockBd {
                towers: vec![
                    l.seq("layers.mixed_8.tower", &["conv", "conv_1"])?,
                    l.seq(
                        "layers.mixed_8.tower_1",
                        &["conv", "conv_1", "conv_2", "conv_3"],
                    )?,
                ],
            },
            mixed_e: vec![l.e("layers.mixed_9", false)?, l.e("layers.mixed_10", true)?],
        };
        if let Some(extra) = l.by_name.keys().next() {
            return Err(ScoreError::invalid(
                "inception weights",
                format!("unexpected layer {extra}"),
            ));
        }
        Ok(net)
    }

    /// pool3 features `[B, 2048]` of images `[B, 3, 299, 299]` in [−1, 0.9921875].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = max_3x3_stride_2(chain(&self.stem_1, x));
        let mut x = max_3x3_stride_2(chain(&self.stem_2, x));
        for b in &self.mixed_a {
            x = b.forward(x);
        }
        x = self.mixed_b.forward(x);
        for b in &self.mixed_c {
            x = b.forward(x);
        }
        x = self.mixed_d.forward(x);
        for b in &self.mixed_e {
            x = b.forward(x);
        }
        let [b, c, _, _] = x.dims();
        avg_pool2d(x, AvgPoolOptions::new([8, 8])).reshape([b, c])
    }
}
