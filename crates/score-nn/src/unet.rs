//! A small UNet in the style of DDPM++ (Song et al. 2021). It is *not* EDM's `SongUNet`
//! (Karras et al. 2022 App. F): it has no resampling residual blocks, no bottleneck
//! blocks, one attention head, and maps labels after the first mapping layer.
//! `docs/score-core.md` ("The UNet against EDM's SongUNet") lists every difference.
//!
//! Encoder: a 3×3 input convolution, then per resolution level `blocks_per_level`
//! residual blocks (GroupNorm → SiLU → conv → + embedding → GroupNorm → SiLU → dropout
//! → conv, with a 1×1 skip when the width changes, scaled by 1/√2), self-attention at the
//! resolutions in `attn_resolutions`, and 2×2 average-pool downsampling between levels.
//! Decoder: the mirror image with `blocks_per_level + 1` blocks per level, each taking
//! the matching encoder activation through a skip connection (concatenation), and
//! nearest-neighbour upsampling. Output: GroupNorm → SiLU → 3×3 conv.
//!
//! Noise embedding: positional(c_noise) (+ `map_augment`(augment)) → Linear → SiLU →
//! Linear, plus `map_label`(label) and `map_context`(context); each block adds an
//! affine projection of SiLU(embedding) to its first activation.
//!
//! Text conditioning (as Stable Diffusion's UNet, Rombach et al. 2022): with
//! `token_dim > 0`, the blocks at the heights in `cross_attn_resolutions` end with
//! cross-attention from the pixels to a token sequence (`Conditioning::tokens`, masked
//! by `token_mask`); the pooled text embedding goes in as `context`. Images may be
//! rectangular (`width`); resolutions name heights.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Dropout, DropoutConfig, GroupNorm, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::softmax;

use super::norm::{group_norm, group_norm_layer, group_norm_silu, silu};
use burn::tensor::{Device, Tensor};

use super::embedding::{ConditioningMaps, positional_embedding};
use super::precond::ScoreNetwork;
use score_core::denoiser::Conditioning;

/// Configuration of [`UNet`].
#[derive(Config, Debug)]
pub struct UNetConfig {
    /// Image side (square images; must be divisible by 2^(levels − 1)).
    pub resolution: usize,
    /// Image channels.
    #[config(default = 1)]
    pub in_channels: usize,
    /// Base width.
    #[config(default = 32)]
    pub model_channels: usize,
    /// Width multiplier per level.
    #[config(default = "vec![1, 2, 2]")]
    pub channel_mult: Vec<usize>,
    /// Residual blocks per level in the encoder (the decoder has one more).
    #[config(default = 1)]
    pub blocks_per_level: usize,
    /// Resolutions with self-attention.
    #[config(default = "vec![7]")]
    pub attn_resolutions: Vec<usize>,
    /// Dropout probability inside residual blocks.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// GroupNorm groups (clamped to divide the width).
    #[config(default = 8)]
    pub groups: usize,
    /// Class-label dimension (0 = unconditional).
    #[config(default = 0)]
    pub label_dim: usize,
    /// Augmentation-vector dimension (0 = none).
    #[config(default = 0)]
    pub augment_dim: usize,
    /// Context-vector dimension (0 = none).
    #[config(default = 0)]
    pub context_dim: usize,
    /// Image width when it differs from `resolution` (the height); 0 = square.
    #[config(default = 0)]
    pub width: usize,
    /// Width of the tokens read by cross-attention (0 = no cross-attention).
    #[config(default = 0)]
    pub token_dim: usize,
    /// Heights at which blocks end with cross-attention to the tokens.
    #[config(default = "vec![]")]
    pub cross_attn_resolutions: Vec<usize>,
}

fn conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .init(device)
}

fn zero_conv(cin: usize, cout: usize, k: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// Self-attention over the pixels of a feature map (one head).
#[derive(Module, Debug)]
pub struct AttentionBlock {
    norm: GroupNorm,
    qkv: Conv2d,
    proj: Conv2d,
}

impl AttentionBlock {
    fn new(ch: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm: group_norm_layer(groups, ch, device),
            qkv: conv(ch, 3 * ch, 1, device),
            proj: zero_conv(ch, ch, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let qkv = scorelab_kernels::conv2d_layer(&self.qkv, group_norm(&self.norm, x.clone()))
            .reshape([b, 3, c, h * w]);
        let q = qkv.clone().narrow(1, 0, 1).reshape([b, c, h * w]);
        let k = qkv.clone().narrow(1, 1, 1).reshape([b, c, h * w]);
        let v = qkv.narrow(1, 2, 1).reshape([b, c, h * w]);
        let att = softmax(q.swap_dims(1, 2).matmul(k).div_scalar((c as f64).sqrt()), 2); // [b, hw, hw]
        let out = v.matmul(att.swap_dims(1, 2)).reshape([b, c, h, w]);
        (x + scorelab_kernels::conv2d_layer(&self.proj, out))
            .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
    }
}

/// The token sequence and its mask, as cross-attention reads them.
struct Tokens<'a> {
    tokens: &'a Tensor<3>,
    mask: &'a Tensor<2>,
}

/// Cross-attention from the pixels of a feature map to a token sequence (one head):
/// queries from the normalised map, keys and values from the tokens, padding masked,
/// zero-initialised output projection, residual scaled by 1/√2 as the self-attention.
/// A sample whose mask is all zeros gets nothing added (the "no condition" input).
#[derive(Module, Debug)]
pub struct CrossAttention {
    norm: GroupNorm,
    q: Conv2d,
    kv: Linear,
    proj: Conv2d,
}

impl CrossAttention {
    fn new(ch: usize, token_dim: usize, groups: usize, device: &Device) -> Self {
        Self {
            norm: group_norm_layer(groups, ch, device),
            q: conv(ch, ch, 1, device),
            kv: LinearConfig::new(token_dim, 2 * ch).init(device),
            proj: zero_conv(ch, ch, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>, t: &Tokens) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let l = t.tokens.dims()[1];
        let q = scorelab_kernels::conv2d_layer(&self.q, group_norm(&self.norm, x.clone()))
            .reshape([b, c, h * w])
            .swap_dims(1, 2); // [b, hw, c]
        let kv = self.kv.forward(t.tokens.clone()); // [b, l, 2c]
        let k = kv.clone().narrow(2, 0, c);
        let v = kv.narrow(2, c, c);
        // Padding gets a −10⁴ logit: exp(−10⁴) is exactly 0 in f32.
        let bias = t
            .mask
            .clone()
            .sub_scalar(1.0)
            .mul_scalar(1e4)
            .reshape([b, 1, l]);
        let logits = q.matmul(k.swap_dims(1, 2)).div_scalar((c as f64).sqrt()) + bias;
        let present = t.mask.clone().max_dim(1).reshape([b, 1, 1]);
        let out = softmax(logits, 2).matmul(v) * present; // [b, hw, c]
        let out = out.swap_dims(1, 2).reshape([b, c, h, w]);
        (x + scorelab_kernels::conv2d_layer(&self.proj, out))
            .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)
    }
}

/// A residual block with noise-embedding injection and optional attention.
#[derive(Module, Debug)]
pub struct ResBlock {
    norm0: GroupNorm,
    conv0: Conv2d,
    affine: Linear,
    norm1: GroupNorm,
    dropout: Dropout,
    conv1: Conv2d,
    skip: Option<Conv2d>,
    attn: Option<AttentionBlock>,
    cross: Option<CrossAttention>,
}

impl ResBlock {
    fn new(
        cin: usize,
        cout: usize,
        emb: usize,
        res: usize,
        cfg: &UNetConfig,
        device: &Device,
    ) -> Self {
        let attn = cfg.attn_resolutions.contains(&res);
        let cross = cfg.token_dim > 0 && cfg.cross_attn_resolutions.contains(&res);
        Self {
            norm0: group_norm_layer(cfg.groups, cin, device),
            conv0: conv(cin, cout, 3, device),
            affine: LinearConfig::new(emb, cout).init(device),
            norm1: group_norm_layer(cfg.groups, cout, device),
            dropout: DropoutConfig::new(cfg.dropout).init(),
            conv1: zero_conv(cout, cout, 3, device),
            skip: (cin != cout).then(|| conv(cin, cout, 1, device)),
            attn: attn.then(|| AttentionBlock::new(cout, cfg.groups, device)),
            cross: cross.then(|| CrossAttention::new(cout, cfg.token_dim, cfg.groups, device)),
        }
    }

    fn forward(&self, x: Tensor<4>, emb: &Tensor<2>, tokens: Option<&Tokens>) -> Tensor<4> {
        let [b, _, _, _] = x.dims();
        let h =
            scorelab_kernels::conv2d_layer(&self.conv0, group_norm_silu(&self.norm0, x.clone()));
        let cout = h.dims()[1];
        let h = h + self.affine.forward(emb.clone()).reshape([b, cout, 1, 1]);
        let h = scorelab_kernels::conv2d_layer(
            &self.conv1,
            self.dropout.forward(group_norm_silu(&self.norm1, h)),
        );
        let skip = match &self.skip {
            Some(s) => scorelab_kernels::conv2d_layer(s, x),
            None => x,
        };
        let mut out = (h + skip).mul_scalar(std::f64::consts::FRAC_1_SQRT_2);
        if let Some(a) = &self.attn {
            out = a.forward(out);
        }
        match (&self.cross, tokens) {
            (Some(c), Some(t)) => c.forward(out, t),
            _ => out,
        }
    }
}

/// The UNet network F on `[B, C, H, W]`.
#[derive(Module, Debug)]
pub struct UNet {
    map0: Linear,
    map1: Linear,
    cond: ConditioningMaps,
    conv_in: Conv2d,
    enc: Vec<Vec<ResBlock>>,
    dec: Vec<Vec<ResBlock>>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    emb_channels: usize,
    model_channels: usize,
    widest_channels: usize,
}

impl UNetConfig {
    /// The configuration stored in a checkpoint. Fields added since a checkpoint was
    /// written (`width`, `token_dim`, `cross_attn_resolutions`) take their defaults, so
    /// older checkpoints (the shipped demo UNet) still load.
    pub fn from_json(mut v: serde_json::Value) -> Result<Self, serde_json::Error> {
        if let Some(m) = v.as_object_mut() {
            m.entry("width").or_insert(0.into());
            m.entry("token_dim").or_insert(0.into());
            m.entry("cross_attn_resolutions")
                .or_insert(serde_json::Value::Array(Vec::new()));
        }
        serde_json::from_value(v)
    }

    /// Check that the resolution halves cleanly at every level.
    pub fn validate(&self) -> Result<(), String> {
        let levels = self.channel_mult.len();
        if levels == 0 {
            return Err("channel_mult: need at least one level".into());
        }
        if self.channel_mult.contains(&0) {
            return Err(format!(
                "channel_mult: every level needs a positive multiplier, got {:?}",
                self.channel_mult
            ));
        }
        // The sinusoidal noise embedding has model_channels/2 cosines and as many sines.
        if self.model_channels < 2 || !self.model_channels.is_multiple_of(2) {
            return Err(format!(
                "model_channels (--channels): must be even and at least 2, got {}",
                self.model_channels
            ));
        }
        if self.in_channels == 0 || self.resolution == 0 || self.groups == 0 {
            return Err(format!(
                "in_channels, resolution and groups must be positive, got {}, {} and {}",
                self.in_channels, self.resolution, self.groups
            ));
        }
        for (name, side) in [("resolution", self.resolution), ("width", self.width)] {
            let step = 1usize << (levels - 1);
            if !side.is_multiple_of(step) {
                let (below, above) = (side / step * step, (side / step + 1) * step);
                let near = match below {
                    0 => format!("{above}"),
                    _ => format!("{below} or {above}"),
                };
                return Err(format!(
                    "{name}: {side} is not a multiple of {step} (its {levels} levels halve it {} times); {near} would do",
                    levels - 1
                ));
            }
        }
        if self.token_dim == 0 && !self.cross_attn_resolutions.is_empty() {
            return Err("cross_attn_resolutions: needs token_dim > 0".into());
        }
        Ok(())
    }

    /// Build the network on `device`.
    pub fn init(&self, device: &Device) -> UNet {
        let mc = self.model_channels;
        let emb = 4 * mc;
        let mut enc = Vec::new();
        let mut skips = vec![mc];
        let mut ch = mc;
        let mut res = self.resolution;
        for (level, &mult) in self.channel_mult.iter().enumerate() {
            let mut blocks = Vec::new();
            for _ in 0..self.blocks_per_level {
                let cout = mc * mult;
                blocks.push(ResBlock::new(ch, cout, emb, res, self, device));
                ch = cout;
                skips.push(ch);
            }
            enc.push(blocks);
            if level + 1 < self.channel_mult.len() {
                res /= 2;
                skips.push(ch);
            }
        }
        let mut dec = Vec::new();
        for (level, &mult) in self.channel_mult.iter().enumerate().rev() {
            let mut blocks = Vec::new();
            for _ in 0..=self.blocks_per_level {
                let cout = mc * mult;
                let skip = skips.pop().expect("one skip per encoder activation");
                blocks.push(ResBlock::new(ch + skip, cout, emb, res, self, device));
                ch = cout;
            }
            dec.push(blocks);
            if level > 0 {
                res *= 2;
            }
        }
        UNet {
            map0: LinearConfig::new(mc, emb).init(device),
            map1: LinearConfig::new(emb, emb).init(device),
            cond: ConditioningMaps::new(
                self.label_dim,
                self.augment_dim,
                self.context_dim,
                emb,
                device,
            ),
            conv_in: conv(self.in_channels, mc, 3, device),
            enc,
            dec,
            norm_out: group_norm_layer(self.groups, ch, device),
            conv_out: zero_conv(ch, self.in_channels, 3, device),
            emb_channels: emb,
            model_channels: mc,
            widest_channels: mc * self.channel_mult.iter().copied().max().unwrap_or(1),
        }
    }
}

impl ScoreNetwork<4> for UNet {
    fn forward(
        &self,
        x_in: Tensor<4>,
        c_noise: Tensor<1>,
        cond: Option<&Conditioning>,
    ) -> Tensor<4> {
        let mut emb = self.map1.forward(silu(
            self.map0
                .forward(positional_embedding(c_noise, self.model_channels)),
        ));
        if let Some(c) = self.cond.forward(cond) {
            emb = emb + c;
        }
        let emb = silu(emb);
        let tokens = cond.and_then(|c| {
            Some(Tokens {
                tokens: c.tokens.as_ref()?,
                mask: c.token_mask.as_ref()?,
            })
        });
        let tokens = tokens.as_ref();
        let mut h = scorelab_kernels::conv2d_layer(&self.conv_in, x_in);
        let mut skips = vec![h.clone()];
        let levels = self.enc.len();
        for (level, blocks) in self.enc.iter().enumerate() {
            for b in blocks {
                h = b.forward(h, &emb, tokens);
                skips.push(h.clone());
            }
            if level + 1 < levels {
                h = scorelab_kernels::downsample2x(h);
                skips.push(h.clone());
            }
        }
        for (i, blocks) in self.dec.iter().enumerate() {
            for b in blocks {
                let s = skips.pop().expect("one skip per encoder activation");
                h = b.forward(Tensor::cat(vec![h, s], 1), &emb, tokens);
            }
            if i + 1 < levels {
                h = scorelab_kernels::upsample2x(h);
            }
        }
        scorelab_kernels::conv2d_layer(&self.conv_out, group_norm_silu(&self.norm_out, h))
    }
}

impl UNet {
    /// Width of the noise embedding.
    pub fn emb_channels(&self) -> usize {
        self.emb_channels
    }

    /// The class-label dimension the network takes (0: unconditional).
    pub fn label_dim(&self) -> usize {
        self.cond
            .label
            .as_ref()
            .map_or(0, |l| l.weight.val().dims()[0])
    }

    /// The width of the widest level (model_channels × the largest multiplier).
    pub fn widest_channels(&self) -> usize {
        self.widest_channels
    }
}

/// Working memory of one image through a UNet (the estimate behind every size check of
/// a UNet): the sampler's states (8 images' worth), about 24 maps of the widest level
/// live at once, and attention at a sixteenth of the positions, in f32 bytes.
pub fn pass_bytes([c, h, w]: [usize; 3], widest_channels: usize) -> u128 {
    let px = (h * w) as u128;
    let state = 8 * c as u128 * px;
    let acts = 24 * widest_channels as u128 * px;
    let attn = 3 * (px / 16).pow(2);
    (state + acts + attn) * 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use score_core::tensor::{randn, stream_rng, to_vec_f32};

    #[test]
    fn unet_shapes_and_conditioning() {
        let device = Device::flex();
        let cfg = UNetConfig::new(8)
            .with_model_channels(8)
            .with_channel_mult(vec![1, 2])
            .with_attn_resolutions(vec![4])
            .with_groups(4)
            .with_label_dim(3)
            .with_augment_dim(2)
            .with_context_dim(5);
        cfg.validate().unwrap();
        let net = cfg.init(&device);
        let mut rng = stream_rng(0, 0, 0);
        let x = randn([2, 1, 8, 8], &mut rng, &device);
        let c = score_core::tensor::tensor1(&[0.1, -0.5], &device);
        let plain = net.forward(x.clone(), c.clone(), None);
        assert_eq!(plain.dims(), [2, 1, 8, 8]);
        // The output convolution is zero-initialised (EDM), so the untrained F is 0.
        assert_eq!(to_vec_f32(plain.abs().sum()).unwrap()[0], 0.0);
        // map_augment is zero-initialised: an augmentation vector adds nothing to the
        // embedding yet, while labels and context do.
        let aug = Conditioning {
            augment: Some(randn([2, 2], &mut rng, &device)),
            ..Default::default()
        };
        let e_aug = net.cond.forward(Some(&aug)).unwrap();
        assert_eq!(to_vec_f32(e_aug.abs().sum()).unwrap()[0], 0.0);
        let lab = Conditioning {
            class_labels: Some(randn([2, 3], &mut rng, &device)),
            context: Some(randn([2, 5], &mut rng, &device)),
            ..Default::default()
        };
        let e_lab = net.cond.forward(Some(&lab)).unwrap();
        assert_eq!(e_lab.dims(), [2, net.emb_channels()]);
        assert!(to_vec_f32(e_lab.abs().sum()).unwrap()[0] > 0.0);
        assert!(net.cond.forward(None).is_none());
        assert!(
            UNetConfig::new(6)
                .with_channel_mult(vec![1, 2, 2])
                .validate()
                .is_err()
        );
    }

    #[test]
    fn cross_attention_ignores_padding_and_an_empty_mask() {
        let device = Device::flex();
        let mut rng = stream_rng(0, 1, 0);
        let mut ca = CrossAttention::new(8, 5, 4, &device);
        ca.proj = conv(8, 8, 1, &device); // not zero, so the output depends on the tokens
        let x = randn([2, 8, 4, 3], &mut rng, &device);
        let tok = randn([2, 3, 5], &mut rng, &device);
        let ones = Tensor::<2>::ones([2, 3], &device);
        let full = ca.forward(
            x.clone(),
            &Tokens {
                tokens: &tok,
                mask: &ones,
            },
        );
        // Two more padding tokens of any value change nothing.
        let junk = randn([2, 2, 5], &mut rng, &device).mul_scalar(100.0);
        let padded_tok = Tensor::cat(vec![tok.clone(), junk], 1);
        let padded_mask = Tensor::cat(vec![ones.clone(), Tensor::<2>::zeros([2, 2], &device)], 1);
        let padded = ca.forward(
            x.clone(),
            &Tokens {
                tokens: &padded_tok,
                mask: &padded_mask,
            },
        );
        // exp(−10⁴) underflows to 0 in f32: the same sums, up to f32 rounding of
        // O(1) values (a few ulp at 1.0 ≈ 1e-6).
        let d = to_vec_f32((full.clone() - padded).abs().max()).unwrap()[0];
        assert!(d < 1e-5, "{d}");
        // An all-zero mask is "no condition": exactly the residual path alone.
        let zeros = Tensor::<2>::zeros([2, 3], &device);
        let none = ca.forward(
            x.clone(),
            &Tokens {
                tokens: &tok,
                mask: &zeros,
            },
        );
        let plain = (x.clone() + scorelab_kernels::conv2d_layer(&ca.proj, x.zeros_like()))
            .mul_scalar(std::f64::consts::FRAC_1_SQRT_2);
        let d0 = to_vec_f32((none - plain).abs().max()).unwrap()[0];
        assert!(d0 < 1e-6, "{d0}");
        // And the tokens matter when present.
        let other = ca.forward(
            x,
            &Tokens {
                tokens: &tok.mul_scalar(-1.0),
                mask: &ones,
            },
        );
        assert!(to_vec_f32((full - other).abs().max()).unwrap()[0] > 1e-3);
    }

    #[test]
    fn text_conditioned_rectangular_unet_runs_with_and_without_tokens() {
        let device = Device::flex();
        let cfg = UNetConfig::new(8)
            .with_width(4)
            .with_model_channels(8)
            .with_channel_mult(vec![1, 2])
            .with_groups(4)
            .with_context_dim(5)
            .with_token_dim(5)
            .with_cross_attn_resolutions(vec![4]);
        cfg.validate().unwrap();
        let net = cfg.init(&device);
        let mut rng = stream_rng(0, 2, 0);
        let x = randn([2, 1, 8, 4], &mut rng, &device);
        let c = score_core::tensor::tensor1(&[0.1, -0.5], &device);
        let cond = Conditioning {
            context: Some(randn([2, 5], &mut rng, &device)),
            tokens: Some(randn([2, 3, 5], &mut rng, &device)),
            token_mask: Some(Tensor::<2>::ones([2, 3], &device)),
            ..Default::default()
        };
        assert_eq!(
            net.forward(x.clone(), c.clone(), Some(&cond)).dims(),
            [2, 1, 8, 4]
        );
        assert_eq!(net.forward(x, c, None).dims(), [2, 1, 8, 4]);
        let crosses = net
            .enc
            .iter()
            .chain(net.dec.iter())
            .flatten()
            .filter(|b| b.cross.is_some())
            .count();
        // Height 4 is the second level: one encoder block and two decoder blocks.
        assert_eq!(crosses, 3);
        assert!(cfg.clone().with_width(5).validate().is_err());
        assert!(
            UNetConfig::new(8)
                .with_cross_attn_resolutions(vec![4])
                .validate()
                .is_err()
        );
    }
}
