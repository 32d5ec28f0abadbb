//! diffusers' `UNet2DModel` (the pixel-space UNet of DDPM's CIFAR-10 and most community
//! pixel models) as a burn module whose parameter paths are diffusers' state-dict keys:
//! `conv_in`, the `Timesteps` + `TimestepEmbedding` noise embedding, an optional class
//! embedding, `DownBlock2D`/`AttnDownBlock2D`, `UNetMidBlock2D`,
//! `UpBlock2D`/`AttnUpBlock2D` (ResnetBlock2D with the `default` or `scale_shift` time
//! embedding, multi-head spatial attention, strided-convolution downsampling, nearest
//! ×2 + convolution upsampling) and the GroupNorm → SiLU → convolution head.
//!
//! The network predicts ε (or v) from a discrete step t; `Precond::Discrete` turns it
//! into a denoiser of EDM's σ as k-diffusion's `DiscreteEpsDDPMDenoiser` does. Other
//! block types, Fourier or learned time embeddings and resnet up/down-sampling are
//! refused by name ([`UNet2DConfig::check`]).

use crate::norm::silu;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig};
use burn::tensor::activation::softmax;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};
use scorelab_kernels::conv2d;
use serde::{Deserialize, Serialize};

use crate::edm::layers::{GroupNorm, Init, Linear};
use crate::precond::ScoreNetwork;
use score_core::denoiser::Conditioning;

/// The options of diffusers' `UNet2DModel` (its `config.json`); other keys of that
/// file are ignored, unsupported values are refused by [`Self::check`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct UNet2DConfig {
    /// Image side (diffusers' `sample_size`).
    pub sample_size: Option<usize>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Map [0, 1] inputs to [−1, 1] first.
    pub center_input_sample: bool,
    /// Only `"positional"` is supported.
    pub time_embedding_type: String,
    /// Embedding width (default 4 × the first block's width).
    pub time_embedding_dim: Option<usize>,
    /// `Timesteps`' `downscale_freq_shift`.
    pub freq_shift: f64,
    /// `Timesteps`' order (cosines first when set).
    pub flip_sin_to_cos: bool,
    /// `DownBlock2D` or `AttnDownBlock2D` per level.
    pub down_block_types: Vec<String>,
    /// `UNetMidBlock2D` or none.
    pub mid_block_type: Option<String>,
    /// `UpBlock2D` or `AttnUpBlock2D` per level.
    pub up_block_types: Vec<String>,
    /// Width per level.
    pub block_out_channels: Vec<usize>,
    /// Resnets per down block (up blocks have one more).
    pub layers_per_block: usize,
    /// The mid block's output scale.
    pub mid_block_scale_factor: f64,
    /// Padding of the downsampling convolution.
    pub downsample_padding: usize,
    /// Only `"conv"`.
    pub downsample_type: String,
    /// Only `"conv"`.
    pub upsample_type: String,
    /// Dropout in the resnets.
    pub dropout: f64,
    /// Only `"silu"`.
    pub act_fn: String,
    /// Channels per attention head (`None`: one head).
    pub attention_head_dim: Option<usize>,
    /// GroupNorm groups.
    pub norm_num_groups: usize,
    /// GroupNorm groups of the mid block's attention (default: `norm_num_groups`).
    pub attn_norm_num_groups: Option<usize>,
    /// GroupNorm ε.
    pub norm_eps: f64,
    /// `"default"` (added) or `"scale_shift"`.
    pub resnet_time_scale_shift: String,
    /// Attention in the mid block.
    pub add_attention: bool,
    /// Only none (a class embedding table when `num_class_embeds` is set).
    pub class_embed_type: Option<String>,
    /// Number of classes of the embedding table.
    pub num_class_embeds: Option<usize>,
}

impl Default for UNet2DConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect();
        Self {
            sample_size: None,
            in_channels: 3,
            out_channels: 3,
            center_input_sample: false,
            time_embedding_type: "positional".into(),
            time_embedding_dim: None,
            freq_shift: 0.0,
            flip_sin_to_cos: true,
            down_block_types: s(&[
                "DownBlock2D",
                "AttnDownBlock2D",
                "AttnDownBlock2D",
                "AttnDownBlock2D",
            ]),
            mid_block_type: Some("UNetMidBlock2D".into()),
            up_block_types: s(&[
                "AttnUpBlock2D",
                "AttnUpBlock2D",
                "AttnUpBlock2D",
                "UpBlock2D",
            ]),
            block_out_channels: vec![224, 448, 672, 896],
            layers_per_block: 2,
            mid_block_scale_factor: 1.0,
            downsample_padding: 1,
            downsample_type: "conv".into(),
            upsample_type: "conv".into(),
            dropout: 0.0,
            act_fn: "silu".into(),
            attention_head_dim: Some(8),
            norm_num_groups: 32,
            attn_norm_num_groups: None,
            norm_eps: 1e-5,
            resnet_time_scale_shift: "default".into(),
            add_attention: true,
            class_embed_type: None,
            num_class_embeds: None,
        }
    }
}

fn one_of(name: &str, v: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "{name}: {v:?} is not supported (supported: {allowed:?})"
        ))
    }
}

impl UNet2DConfig {
    /// Refuse what this implementation does not build, naming the option.
    pub fn check(&self) -> Result<(), String> {
        one_of(
            "time_embedding_type",
            &self.time_embedding_type,
            &["positional"],
        )?;
        one_of("downsample_type", &self.downsample_type, &["conv"])?;
        one_of("upsample_type", &self.upsample_type, &["conv"])?;
        if self.downsample_padding != 1 {
            return Err(format!(
                "downsample_padding: {} is not supported (1, the padding of every released UNet2DModel)",
                self.downsample_padding
            ));
        }
        one_of("act_fn", &self.act_fn, &["silu", "swish"])?;
        one_of(
            "resnet_time_scale_shift",
            &self.resnet_time_scale_shift,
            &["default", "scale_shift"],
        )?;
        for t in &self.down_block_types {
            one_of("down_block_types", t, &["DownBlock2D", "AttnDownBlock2D"])?;
        }
        for t in &self.up_block_types {
            one_of("up_block_types", t, &["UpBlock2D", "AttnUpBlock2D"])?;
        }
        if let Some(m) = &self.mid_block_type {
            one_of("mid_block_type", m, &["UNetMidBlock2D"])?;
        }
        if let Some(c) = &self.class_embed_type {
            return Err(format!(
                "class_embed_type: {c:?} is not supported (only a num_class_embeds table)"
            ));
        }
        let n = self.block_out_channels.len();
        if n == 0 || self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(format!(
                "block_out_channels, down_block_types, up_block_types: need the same non-zero length, found {n}, {}, {}",
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        let bad_groups = self
            .block_out_channels
            .iter()
            .any(|&c| c == 0 || !c.is_multiple_of(self.norm_num_groups.max(1)));
        if self.norm_num_groups == 0 || bad_groups {
            return Err(format!(
                "norm_num_groups: {} does not divide every width of {:?}",
                self.norm_num_groups, self.block_out_channels
            ));
        }
        Ok(())
    }

    /// The image side (`sample_size`), required to describe a checkpoint.
    pub fn side(&self) -> Result<usize, String> {
        self.sample_size
            .ok_or_else(|| "sample_size: not set".into())
    }

    /// Build the network with random weights on `device`.
    pub fn init(&self, device: &Device) -> Result<DiffusersUNet, String> {
        self.check()?;
        Ok(build(self, device))
    }
}

/// A k×k convolution with stride and zero padding, weight `[out, in, k, k]`.
#[derive(Module, Debug)]
pub struct Conv {
    weight: Param<Tensor<4>>,
    bias: Option<Param<Tensor<1>>>,
    stride: usize,
    padding: usize,
}

impl Conv {
    fn new(
        cin: usize,
        cout: usize,
        k: usize,
        (stride, padding): (usize, usize),
        device: &Device,
    ) -> Self {
        let init = Init::kaiming(1.0, 1.0);
        let fans = (cin * k * k, cout * k * k);
        Self {
            weight: init.tensor([cout, cin, k, k], fans, 1.0, device),
            bias: Some(init.tensor([cout], fans, 1.0, device)),
            stride,
            padding,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let o = ConvOptions::new([self.stride; 2], [self.padding; 2], [1, 1], 1);
        conv2d(x, self.weight.val(), self.bias.as_ref().map(|b| b.val()), o)
    }
}

fn norm(channels: usize, groups: usize, eps: f64, device: &Device) -> GroupNorm {
    let mut n = GroupNorm::new(channels, eps, device);
    n.groups = groups;
    n
}

/// diffusers' `ResnetBlock2D`.
#[derive(Module, Debug)]
pub struct Resnet {
    norm1: GroupNorm,
    conv1: Conv,
    time_emb_proj: Linear,
    norm2: GroupNorm,
    dropout: Dropout,
    conv2: Conv,
    conv_shortcut: Option<Conv>,
    scale_shift: bool,
    output_scale: f64,
}

impl Resnet {
    fn new(cin: usize, cout: usize, c: &UNet2DConfig, output_scale: f64, device: &Device) -> Self {
        let temb = time_dim(c);
        let scale_shift = c.resnet_time_scale_shift == "scale_shift";
        let init = Init::kaiming(1.0, 1.0);
        Self {
            norm1: norm(cin, c.norm_num_groups, c.norm_eps, device),
            conv1: Conv::new(cin, cout, 3, (1, 1), device),
            time_emb_proj: Linear::new(
                temb,
                cout * if scale_shift { 2 } else { 1 },
                true,
                init,
                device,
            ),
            norm2: norm(cout, c.norm_num_groups, c.norm_eps, device),
            dropout: DropoutConfig::new(c.dropout).init(),
            conv2: Conv::new(cout, cout, 3, (1, 1), device),
            conv_shortcut: (cin != cout).then(|| Conv::new(cin, cout, 1, (1, 0), device)),
            scale_shift,
            output_scale,
        }
    }

    fn forward(&self, x: Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let h = self.conv1.forward(self.norm1.forward_silu(x.clone()));
        let [b, c, _, _] = h.dims();
        let t = self.time_emb_proj.forward(silu(temb.clone()));
        let h = if self.scale_shift {
            let scale = t.clone().narrow(1, 0, c).reshape([b, c, 1, 1]);
            let shift = t.narrow(1, c, c).reshape([b, c, 1, 1]);
            self.norm2.forward(h) * scale.add_scalar(1.0) + shift
        } else {
            self.norm2.forward(h + t.reshape([b, c, 1, 1]))
        };
        let h = self.conv2.forward(self.dropout.forward(silu(h)));
        let skip = match &self.conv_shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        (skip + h).div_scalar(self.output_scale)
    }
}

/// diffusers' `Attention` over the pixels (GroupNorm, q/k/v/out linear layers, residual).
#[derive(Module, Debug)]
pub struct Attn {
    group_norm: Option<GroupNorm>,
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Vec<Linear>,
    heads: usize,
    rescale: f64,
}

impl Attn {
    fn new(
        ch: usize,
        head_dim: usize,
        groups: Option<usize>,
        c: &UNet2DConfig,
        rescale: f64,
        device: &Device,
    ) -> Self {
        let init = Init::kaiming(1.0, 1.0);
        let lin = || Linear::new(ch, ch, true, init, device);
        Self {
            group_norm: groups.map(|g| norm(ch, g, c.norm_eps, device)),
            to_q: lin(),
            to_k: lin(),
            to_v: lin(),
            to_out: vec![lin()],
            heads: (ch / head_dim.max(1)).max(1),
            rescale,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let y = match &self.group_norm {
            Some(g) => g.forward(x.clone()),
            None => x.clone(),
        };
        let y = y.reshape([b, c, n]).swap_dims(1, 2).reshape([b * n, c]); // [B·HW, C]
        let d = c / self.heads;
        let split = |t: Tensor<2>| t.reshape([b, n, self.heads, d]).swap_dims(1, 2); // [B, heads, HW, d]
        let q = split(self.to_q.forward(y.clone()));
        let k = split(self.to_k.forward(y.clone()));
        let v = split(self.to_v.forward(y));
        let att = softmax(q.matmul(k.swap_dims(2, 3)).div_scalar((d as f64).sqrt()), 3);
        let o = att.matmul(v).swap_dims(1, 2).reshape([b * n, c]);
        let o = self.to_out[0]
            .forward(o)
            .reshape([b, n, c])
            .swap_dims(1, 2)
            .reshape([b, c, h, w]);
        (o + x).div_scalar(self.rescale)
    }
}

/// `downsamplers.0` / `upsamplers.0`: a convolution (stride 2 down; after nearest ×2 up).
#[derive(Module, Debug)]
pub struct Resample {
    conv: Conv,
    up: bool,
}

/// A down, mid or up block: resnets, the attention after each (when present), and
/// the resampler.
#[derive(Module, Debug)]
pub struct Block {
    resnets: Vec<Resnet>,
    attentions: Vec<Attn>,
    downsamplers: Vec<Resample>,
    upsamplers: Vec<Resample>,
}

/// diffusers' `UNet2DModel`.
#[derive(Module, Debug)]
pub struct DiffusersUNet {
    conv_in: Conv,
    time_embedding: TimeEmbedding,
    class_embedding: Option<ClassEmbedding>,
    down_blocks: Vec<Block>,
    mid_block: Option<Block>,
    up_blocks: Vec<Block>,
    conv_norm_out: GroupNorm,
    conv_out: Conv,
    time_channels: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    center_input: bool,
    num_classes: usize,
    widest: usize,
}

/// `TimestepEmbedding`: linear → SiLU → linear.
#[derive(Module, Debug)]
pub struct TimeEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

/// `class_embedding`: an embedding table `[classes, temb]`.
#[derive(Module, Debug)]
pub struct ClassEmbedding {
    weight: Param<Tensor<2>>,
}

fn time_dim(c: &UNet2DConfig) -> usize {
    c.time_embedding_dim.unwrap_or(4 * c.block_out_channels[0])
}

fn head_dim(c: &UNet2DConfig, ch: usize) -> usize {
    c.attention_head_dim.unwrap_or(ch)
}

fn down_block(c: &UNet2DConfig, i: usize, cin: usize, device: &Device) -> Block {
    let cout = c.block_out_channels[i];
    let attn = c.down_block_types[i] == "AttnDownBlock2D";
    let last = i + 1 == c.block_out_channels.len();
    let resnets: Vec<Resnet> = (0..c.layers_per_block)
        .map(|j| Resnet::new(if j == 0 { cin } else { cout }, cout, c, 1.0, device))
        .collect();
    let attentions = (0..if attn { c.layers_per_block } else { 0 })
        .map(|_| {
            Attn::new(
                cout,
                head_dim(c, cout),
                Some(c.norm_num_groups),
                c,
                1.0,
                device,
            )
        })
        .collect();
    let downsamplers = (!last)
        .then(|| Resample {
            conv: Conv::new(cout, cout, 3, (2, c.downsample_padding), device),
            up: false,
        })
        .into_iter()
        .collect();
    Block {
        resnets,
        attentions,
        downsamplers,
        upsamplers: Vec::new(),
    }
}

fn up_block(c: &UNet2DConfig, i: usize, prev: usize, device: &Device) -> Block {
    let rev: Vec<usize> = c.block_out_channels.iter().rev().copied().collect();
    let (cout, cin) = (rev[i], rev[(i + 1).min(rev.len() - 1)]);
    let attn = c.up_block_types[i] == "AttnUpBlock2D";
    let layers = c.layers_per_block + 1;
    let resnets: Vec<Resnet> = (0..layers)
        .map(|j| {
            let skip = if j == layers - 1 { cin } else { cout };
            let first = if j == 0 { prev } else { cout };
            Resnet::new(first + skip, cout, c, 1.0, device)
        })
        .collect();
    let attentions = (0..if attn { layers } else { 0 })
        .map(|_| {
            Attn::new(
                cout,
                head_dim(c, cout),
                Some(c.norm_num_groups),
                c,
                1.0,
                device,
            )
        })
        .collect();
    let upsamplers = (i + 1 < rev.len())
        .then(|| Resample {
            conv: Conv::new(cout, cout, 3, (1, 1), device),
            up: true,
        })
        .into_iter()
        .collect();
    Block {
        resnets,
        attentions,
        downsamplers: Vec::new(),
        upsamplers,
    }
}

fn mid_block(c: &UNet2DConfig, device: &Device) -> Block {
    let ch = *c.block_out_channels.last().expect("checked non-empty");
    let s = c.mid_block_scale_factor;
    let groups = c
        .attn_norm_num_groups
        .or((c.resnet_time_scale_shift == "default").then_some(c.norm_num_groups));
    Block {
        resnets: vec![
            Resnet::new(ch, ch, c, s, device),
            Resnet::new(ch, ch, c, s, device),
        ],
        attentions: if c.add_attention {
            vec![Attn::new(ch, head_dim(c, ch), groups, c, s, device)]
        } else {
            Vec::new()
        },
        downsamplers: Vec::new(),
        upsamplers: Vec::new(),
    }
}

fn build(c: &UNet2DConfig, device: &Device) -> DiffusersUNet {
    let c0 = c.block_out_channels[0];
    let temb = time_dim(c);
    let init = Init::kaiming(1.0, 1.0);
    let mut down_blocks = Vec::new();
    let mut cin = c0;
    for i in 0..c.block_out_channels.len() {
        down_blocks.push(down_block(c, i, cin, device));
        cin = c.block_out_channels[i];
    }
    let mut prev = cin;
    let mut up_blocks = Vec::new();
    for i in 0..c.block_out_channels.len() {
        up_blocks.push(up_block(c, i, prev, device));
        prev = c.block_out_channels[c.block_out_channels.len() - 1 - i];
    }
    DiffusersUNet {
        conv_in: Conv::new(c.in_channels, c0, 3, (1, 1), device),
        time_embedding: TimeEmbedding {
            linear_1: Linear::new(c0, temb, true, init, device),
            linear_2: Linear::new(temb, temb, true, init, device),
        },
        class_embedding: c.num_class_embeds.map(|k| ClassEmbedding {
            weight: init.tensor([k, temb], (k, temb), 1.0, device),
        }),
        down_blocks,
        mid_block: c.mid_block_type.as_ref().map(|_| mid_block(c, device)),
        up_blocks,
        conv_norm_out: norm(c0, c.norm_num_groups, c.norm_eps, device),
        conv_out: Conv::new(c0, c.out_channels, 3, (1, 1), device),
        time_channels: c0,
        flip_sin_to_cos: c.flip_sin_to_cos,
        freq_shift: c.freq_shift,
        center_input: c.center_input_sample,
        num_classes: c.num_class_embeds.unwrap_or(0),
        widest: c.block_out_channels.iter().copied().max().unwrap_or(0),
    }
}

impl Block {
    fn forward_down(
        &self,
        mut x: Tensor<4>,
        temb: &Tensor<2>,
        skips: &mut Vec<Tensor<4>>,
    ) -> Tensor<4> {
        for (j, r) in self.resnets.iter().enumerate() {
            x = r.forward(x, temb);
            if let Some(a) = self.attentions.get(j) {
                x = a.forward(x);
            }
            skips.push(x.clone());
        }
        for d in &self.downsamplers {
            x = d.conv.forward(x);
            skips.push(x.clone());
        }
        x
    }

    fn forward_mid(&self, x: Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let mut x = self.resnets[0].forward(x, temb);
        for (j, r) in self.resnets.iter().enumerate().skip(1) {
            if let Some(a) = self.attentions.get(j - 1) {
                x = a.forward(x);
            }
            x = r.forward(x, temb);
        }
        x
    }

    fn forward_up(
        &self,
        mut x: Tensor<4>,
        temb: &Tensor<2>,
        skips: &mut Vec<Tensor<4>>,
    ) -> Tensor<4> {
        for (j, r) in self.resnets.iter().enumerate() {
            let s = skips.pop().expect("one skip per up-block resnet");
            x = r.forward(Tensor::cat(vec![x, s], 1), temb);
            if let Some(a) = self.attentions.get(j) {
                x = a.forward(x);
            }
        }
        for u in &self.upsamplers {
            let [b, c, h, w] = x.dims();
            // Nearest ×2: each pixel repeated over a 2×2 block.
            let up = x
                .reshape([b, c, h, 1, w, 1])
                .expand([b, c, h, 2, w, 2])
                .reshape([b, c, 2 * h, 2 * w]);
            x = u.conv.forward(up);
        }
        x
    }
}

impl DiffusersUNet {
    /// Class count of the embedding table (0: unconditional).
    pub fn label_dim(&self) -> usize {
        self.num_classes
    }

    /// The widest level's channels.
    pub fn widest_channels(&self) -> usize {
        self.widest
    }

    /// diffusers' `get_timestep_embedding` (max period 10 000, shift, flip) → `[B, C]`.
    fn time_proj(&self, t: Tensor<1>) -> Tensor<2> {
        let half = self.time_channels / 2;
        let denom = half as f64 - self.freq_shift;
        let freqs: Vec<f32> = (0..half)
            .map(|i| (-(10_000f64.ln()) * i as f64 / denom).exp() as f32)
            .collect();
        let freqs = score_core::tensor::from_f32(freqs, [1, half], &t.device());
        let b = t.dims()[0];
        let arg = t.reshape([b, 1]) * freqs;
        let (sin, cos) = (arg.clone().sin(), arg.cos());
        let emb = if self.flip_sin_to_cos {
            vec![cos, sin]
        } else {
            vec![sin, cos]
        };
        Tensor::cat(emb, 1)
    }
}

impl ScoreNetwork<4> for DiffusersUNet {
    fn forward(
        &self,
        x_in: Tensor<4>,
        c_noise: Tensor<1>,
        cond: Option<&Conditioning>,
    ) -> Tensor<4> {
        let x_in = if self.center_input {
            x_in.mul_scalar(2.0).sub_scalar(1.0)
        } else {
            x_in
        };
        let t = self.time_proj(c_noise);
        let te = &self.time_embedding;
        let mut temb = te.linear_2.forward(silu(te.linear_1.forward(t)));
        if let (Some(e), Some(l)) = (
            &self.class_embedding,
            cond.and_then(|c| c.class_labels.clone()),
        ) {
            temb = temb + l.matmul(e.weight.val());
        }
        let mut x = self.conv_in.forward(x_in);
        let mut skips = vec![x.clone()];
        for b in &self.down_blocks {
            x = b.forward_down(x, &temb, &mut skips);
        }
        if let Some(m) = &self.mid_block {
            x = m.forward_mid(x, &temb);
        }
        for b in &self.up_blocks {
            x = b.forward_up(x, &temb, &mut skips);
        }
        self.conv_out.forward(self.conv_norm_out.forward_silu(x))
    }
}

/// diffusers' older attention names (`query`, `key`, `value`, `proj_attn`, as in DDPM's
/// converted checkpoints) in today's (`to_q`, `to_k`, `to_v`, `to_out.0`).
pub fn modern_key(key: &str) -> String {
    if !key.contains("attentions.") {
        return key.to_string();
    }
    let parts: Vec<&str> = key.split('.').collect();
    let renamed: Vec<&str> = parts
        .iter()
        .map(|p| match *p {
            "query" => "to_q",
            "key" => "to_k",
            "value" => "to_v",
            "proj_attn" => "to_out.0",
            other => other,
        })
        .collect();
    renamed.join(".")
}
