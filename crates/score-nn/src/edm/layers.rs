//! The layers of EDM's `training/networks.py` (Karras et al. 2022), with PyTorch's
//! parameter layout and names, so that an EDM state dict loads key for key:
//! `Linear` (weight `[out, in]`), `Conv2d` with optional up/down-sampling through a
//! separable FIR filter, `GroupNorm` with EDM's group rule, the unified `UNetBlock`
//! of DDPM++, NCSN++ and ADM, and the positional and Fourier noise embeddings.

use crate::norm::silu;
use burn::module::{Initializer, Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::activation::softmax;
use burn::tensor::module::conv_transpose2d;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor};
use scorelab_kernels::conv2d;

use crate::norm::group_norm_act_with;

/// EDM's weight initialisations (`weight_init`), scaled by `weight` (and the bias by
/// `bias`). They matter only for training from scratch; imported weights replace them.
#[derive(Debug, Clone, Copy)]
pub struct Init {
    /// Kaiming (fan-in) instead of Xavier (fan-in + fan-out).
    pub kaiming: bool,
    /// Gain on the weights.
    pub weight: f64,
    /// Gain on the biases.
    pub bias: f64,
}

impl Init {
    /// `xavier_uniform` with gain `weight` (SongUNet).
    pub fn xavier(weight: f64) -> Self {
        Self {
            kaiming: false,
            weight,
            bias: 0.0,
        }
    }

    /// `kaiming_uniform` with gains `weight` and `bias` (DhariwalUNet).
    pub fn kaiming(weight: f64, bias: f64) -> Self {
        Self {
            kaiming: true,
            weight,
            bias,
        }
    }

    pub(crate) fn tensor<const D: usize>(
        &self,
        shape: [usize; D],
        fans: (usize, usize),
        gain: f64,
        device: &Device,
    ) -> Param<Tensor<D>> {
        let (fan_in, fan_out) = fans;
        let bound = if self.kaiming {
            (3.0 / fan_in.max(1) as f64).sqrt()
        } else {
            (6.0 / (fan_in + fan_out).max(1) as f64).sqrt()
        } * gain;
        let init = if bound > 0.0 {
            Initializer::Uniform {
                min: -bound,
                max: bound,
            }
        } else {
            Initializer::Zeros
        };
        init.init(shape, device)
    }
}

/// EDM's `Linear`: y = x·Wᵀ + b with W `[out, in]` as PyTorch stores it.
#[derive(Module, Debug)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Param<Tensor<2>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
}

impl Linear {
    /// A layer `fan_in → fan_out`.
    pub fn new(fan_in: usize, fan_out: usize, bias: bool, init: Init, device: &Device) -> Self {
        let fans = (fan_in, fan_out);
        Self {
            weight: init.tensor([fan_out, fan_in], fans, init.weight, device),
            bias: bias.then(|| init.tensor([fan_out], fans, init.bias, device)),
        }
    }

    /// `[B, in] → [B, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight.val().transpose());
        match &self.bias {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// The input width.
    pub fn in_features(&self) -> usize {
        self.weight.lazy_shape()[1]
    }
}

/// EDM's `GroupNorm`: min(32, C/4) groups, affine.
#[derive(Module, Debug)]
pub struct GroupNorm {
    /// γ `[C]`.
    pub weight: Param<Tensor<1>>,
    /// β `[C]`.
    pub bias: Param<Tensor<1>>,
    /// Number of groups.
    pub groups: usize,
    /// ε.
    pub eps: f64,
}

impl GroupNorm {
    /// EDM's rule: `min(num_groups, channels // min_channels_per_group)` groups (32 and 4).
    pub fn new(channels: usize, eps: f64, device: &Device) -> Self {
        Self {
            weight: Param::from_tensor(Tensor::ones([channels], device)),
            bias: Param::from_tensor(Tensor::zeros([channels], device)),
            groups: 32.min(channels / 4).max(1),
            eps,
        }
    }

    /// Normalise `[B, C, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_act(x, false)
    }

    /// `silu(self.forward(x))`, as one operation on burn-flex.
    pub fn forward_silu(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_act(x, true)
    }

    fn forward_act(&self, x: Tensor<4>, silu: bool) -> Tensor<4> {
        let affine = Some((self.weight.val(), self.bias.val()));
        group_norm_act_with(x, self.groups, self.eps, affine, silu)
    }
}

/// How a [`Conv2d`] resamples: EDM's `up`, `down`, `fused_resample` and the FIR
/// `resample_filter` (`[1, 1]` for DDPM++ and ADM, `[1, 3, 3, 1]` for NCSN++).
#[derive(Debug, Clone, PartialEq)]
pub struct Resample {
    /// Upsample ×2 before the convolution.
    pub up: bool,
    /// Downsample ×2 before the convolution.
    pub down: bool,
    /// EDM's `fused_resample` (pads around the kernel instead of resampling first).
    pub fused: bool,
    /// The 1-D filter taps.
    pub filter: Vec<f32>,
}

impl Resample {
    /// No resampling.
    pub fn none() -> Self {
        Self {
            up: false,
            down: false,
            fused: false,
            filter: vec![1.0, 1.0],
        }
    }
}

/// EDM's `Conv2d`: an optional k×k convolution (`kernel = 0` resamples only) with
/// optional FIR up/down-sampling; weight `[out, in, k, k]` as PyTorch stores it.
#[derive(Module, Debug)]
pub struct Conv2d {
    /// `[out, in, k, k]`, absent for a pure resampling layer.
    pub weight: Option<Param<Tensor<4>>>,
    /// `[out]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Upsampling.
    pub up: bool,
    /// Downsampling.
    pub down: bool,
    /// Fused resampling.
    pub fused: bool,
    /// The 1-D resampling filter.
    pub filter: Vec<f32>,
}

impl Conv2d {
    /// A `cin → cout` layer with a `kernel`×`kernel` convolution (none when 0).
    pub fn new(
        (cin, cout, kernel): (usize, usize, usize),
        resample: Resample,
        init: Init,
        device: &Device,
    ) -> Self {
        let fans = (cin * kernel * kernel, cout * kernel * kernel);
        let has = kernel > 0;
        Self {
            weight: has
                .then(|| init.tensor([cout, cin, kernel, kernel], fans, init.weight, device)),
            bias: has.then(|| init.tensor([cout], fans, init.bias, device)),
            in_channels: cin,
            out_channels: cout,
            up: resample.up,
            down: resample.down,
            fused: resample.fused,
            filter: resample.filter,
        }
    }

    /// The normalised 2-D filter f·fᵀ/(Σf)² repeated over `channels`: `[channels, 1, k, k]`.
    fn filter2d(&self, channels: usize, gain: f64, device: &Device) -> Tensor<4> {
        let k = self.filter.len();
        let sum: f64 = self.filter.iter().map(|&v| v as f64).sum();
        let mut f = Vec::with_capacity(channels * k * k);
        for _ in 0..channels {
            for a in &self.filter {
                for b in &self.filter {
                    f.push((*a as f64 * *b as f64 / (sum * sum) * gain) as f32);
                }
            }
        }
        score_core::tensor::from_f32(f, [channels, 1, k, k], device)
    }

    fn upsample(&self, x: Tensor<4>, padding: usize) -> Tensor<4> {
        let f = self.filter2d(self.in_channels, 4.0, &x.device());
        let o = ConvTransposeOptions::new([2, 2], [padding; 2], [0, 0], [1, 1], self.in_channels);
        conv_transpose2d(x, f, None, o)
    }

    fn downsample(&self, x: Tensor<4>, channels: usize, padding: usize) -> Tensor<4> {
        let f = self.filter2d(channels, 1.0, &x.device());
        conv2d(
            x,
            f,
            None,
            ConvOptions::new([2, 2], [padding; 2], [1, 1], channels),
        )
    }

    fn convolve(&self, x: Tensor<4>, padding: usize) -> Tensor<4> {
        match &self.weight {
            Some(w) => conv2d(
                x,
                w.val(),
                None,
                ConvOptions::new([1, 1], [padding; 2], [1, 1], 1),
            ),
            None => x,
        }
    }

    /// Apply the layer (EDM's `Conv2d.forward`, every branch).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let w_pad = self.weight.as_ref().map_or(0, |w| w.lazy_shape()[3] / 2);
        let f_pad = if self.up || self.down {
            (self.filter.len() - 1) / 2
        } else {
            0
        };
        let has_w = self.weight.is_some();
        let x = if self.fused && self.up && has_w {
            let x = self.upsample(x, f_pad.saturating_sub(w_pad));
            self.convolve(x, w_pad.saturating_sub(f_pad))
        } else if self.fused && self.down && has_w {
            let x = self.convolve(x, w_pad + f_pad);
            self.downsample(x, self.out_channels, 0)
        } else {
            let x = if self.up { self.upsample(x, f_pad) } else { x };
            let x = if self.down {
                self.downsample(x, self.in_channels, f_pad)
            } else {
                x
            };
            self.convolve(x, w_pad)
        };
        match &self.bias {
            Some(b) => x + b.val().reshape([1, self.out_channels, 1, 1]),
            None => x,
        }
    }
}

/// The settings EDM passes to every `UNetBlock` of one network (`block_kwargs`).
#[derive(Debug, Clone)]
pub struct BlockSettings {
    /// Width of the embedding vector.
    pub emb_channels: usize,
    /// Heads: `Some(n)` fixed (SongUNet: 1), `None` = `out / channels_per_head`.
    pub num_heads: Option<usize>,
    /// Channels per head when `num_heads` is `None` (ADM: 64).
    pub channels_per_head: usize,
    /// Dropout probability.
    pub dropout: f64,
    /// Residual scale (SongUNet: √½, ADM: 1).
    pub skip_scale: f64,
    /// GroupNorm ε.
    pub eps: f64,
    /// Resampling filter.
    pub filter: Vec<f32>,
    /// A 1×1 projection on resampling skips even when the width is unchanged.
    pub resample_proj: bool,
    /// Scale-and-shift (ADM) instead of an added embedding (SongUNet).
    pub adaptive_scale: bool,
    /// Initialisation of ordinary layers.
    pub init: Init,
    /// Initialisation of the layers EDM starts near zero.
    pub init_zero: Init,
    /// Initialisation of the attention's qkv layer.
    pub init_attn: Init,
}

/// Self-attention inside a [`UNetBlock`].
#[derive(Module, Debug)]
pub struct BlockAttention {
    norm2: GroupNorm,
    qkv: Conv2d,
    proj: Conv2d,
    heads: usize,
}

/// EDM's unified `UNetBlock`: GroupNorm → SiLU → conv (with resampling) → embedding
/// (added, or scale-and-shift) → GroupNorm → SiLU → dropout → conv, plus the skip, then
/// optional multi-head self-attention.
#[derive(Module, Debug)]
pub struct UNetBlock {
    norm0: GroupNorm,
    conv0: Conv2d,
    affine: Linear,
    norm1: GroupNorm,
    conv1: Conv2d,
    skip: Option<Conv2d>,
    attn: Option<BlockAttention>,
    dropout: Dropout,
    /// Input channels (the decoder concatenates a skip when `x` has fewer).
    pub in_channels: usize,
    out_channels: usize,
    skip_scale: f64,
    adaptive_scale: bool,
}

/// What one [`UNetBlock`] is: widths, resampling, attention.
#[derive(Debug, Clone, Copy)]
pub struct BlockShape {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Upsampling block.
    pub up: bool,
    /// Downsampling block.
    pub down: bool,
    /// With self-attention.
    pub attention: bool,
}

impl UNetBlock {
    /// A block of `shape` with the network-wide settings `s`.
    pub fn new(shape: BlockShape, s: &BlockSettings, device: &Device) -> Self {
        let BlockShape {
            cin,
            cout,
            up,
            down,
            attention,
        } = shape;
        let rs = Resample {
            up,
            down,
            fused: false,
            filter: s.filter.clone(),
        };
        let emb_out = cout * if s.adaptive_scale { 2 } else { 1 };
        let skip = (cout != cin || up || down).then(|| {
            let k = if s.resample_proj || cout != cin { 1 } else { 0 };
            Conv2d::new((cin, cout, k), rs.clone(), s.init, device)
        });
        let heads = s.num_heads.unwrap_or(cout / s.channels_per_head.max(1));
        let attn = (attention && heads > 0).then(|| BlockAttention {
            norm2: GroupNorm::new(cout, s.eps, device),
            qkv: Conv2d::new((cout, cout * 3, 1), Resample::none(), s.init_attn, device),
            proj: Conv2d::new((cout, cout, 1), Resample::none(), s.init_zero, device),
            heads,
        });
        Self {
            norm0: GroupNorm::new(cin, s.eps, device),
            conv0: Conv2d::new((cin, cout, 3), rs, s.init, device),
            affine: Linear::new(s.emb_channels, emb_out, true, s.init, device),
            norm1: GroupNorm::new(cout, s.eps, device),
            conv1: Conv2d::new((cout, cout, 3), Resample::none(), s.init_zero, device),
            skip,
            attn,
            dropout: DropoutConfig::new(s.dropout).init(),
            in_channels: cin,
            out_channels: cout,
            skip_scale: s.skip_scale,
            adaptive_scale: s.adaptive_scale,
        }
    }

    /// `x` `[B, cin, H, W]` and the embedding `[B, emb]` → `[B, cout, H', W']`.
    pub fn forward(&self, x: Tensor<4>, emb: Tensor<2>) -> Tensor<4> {
        let orig = x.clone();
        let x = self.conv0.forward(self.norm0.forward_silu(x));
        let [b, c, _, _] = x.dims();
        let params = self.affine.forward(emb);
        let x = if self.adaptive_scale {
            let scale = params.clone().narrow(1, 0, c).reshape([b, c, 1, 1]);
            let shift = params.narrow(1, c, c).reshape([b, c, 1, 1]);
            silu(shift + self.norm1.forward(x) * scale.add_scalar(1.0))
        } else {
            self.norm1.forward_silu(x + params.reshape([b, c, 1, 1]))
        };
        let x = self.conv1.forward(self.dropout.forward(x));
        let skip = match &self.skip {
            Some(s) => s.forward(orig),
            None => orig,
        };
        let x = (x + skip).mul_scalar(self.skip_scale);
        match &self.attn {
            Some(a) => a.forward(x, self.skip_scale),
            None => x,
        }
    }
}

impl BlockAttention {
    /// Multi-head self-attention over the pixels; EDM splits the qkv channels as
    /// `[heads, C/heads, 3]` (q, k, v interleaved per channel).
    fn forward(&self, x: Tensor<4>, skip_scale: f64) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let (n, ch) = (b * self.heads, c / self.heads);
        let qkv = self
            .qkv
            .forward(self.norm2.forward(x.clone()))
            .reshape([n, ch, 3, h * w]);
        let part = |i: usize| qkv.clone().narrow(2, i, 1).reshape([n, ch, h * w]);
        let (q, k, v) = (part(0), part(1), part(2));
        let k = k.div_scalar((ch as f64).sqrt());
        let weights = softmax(q.swap_dims(1, 2).matmul(k), 2); // [n, q, k]
        let a = v.matmul(weights.swap_dims(1, 2)); // [n, c, q]
        (self.proj.forward(a.reshape([b, c, h, w])) + x).mul_scalar(skip_scale)
    }
}

/// EDM's `PositionalEmbedding`: frequencies (1/10 000)^(i / (C/2 − endpoint)),
/// `[B] → [B, C]` as cosines then sines.
pub fn positional(c_noise: Tensor<1>, channels: usize, endpoint: bool) -> Tensor<2> {
    let half = channels / 2;
    let denom = (half - usize::from(endpoint)).max(1) as f64;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (1.0f64 / 10_000f64).powf(i as f64 / denom) as f32)
        .collect();
    let freqs = score_core::tensor::from_f32(freqs, [1, half], &c_noise.device());
    let b = c_noise.dims()[0];
    let arg = c_noise.reshape([b, 1]) * freqs;
    Tensor::cat(vec![arg.clone().cos(), arg.sin()], 1)
}

/// Swap the two halves of `[B, C]` (SongUNet's "swap sin/cos").
pub fn swap_halves(emb: Tensor<2>) -> Tensor<2> {
    let [_, c] = emb.dims();
    let half = c / 2;
    Tensor::cat(
        vec![emb.clone().narrow(1, half, half), emb.narrow(1, 0, half)],
        1,
    )
}
