//! EDM's networks (Karras et al. 2022, `training/networks.py`) as burn modules, layer
//! for layer: `SongUNet` in its DDPM++ and NCSN++ configurations and `DhariwalUNet`
//! (ADM), configured by EDM's own keyword arguments ([`EdmNetConfig`]). Parameter
//! names and layouts are PyTorch's, so an EDM state dict loads key for key through
//! [`EdmUNet::torch_key`]; the preconditioning (EDM, VP, VE) is the crate's
//! [`Preconditioned`](crate::Preconditioned) around it.
//!
//! ```
//! use score_nn::edm::EdmNetConfig;
//! let cfg = EdmNetConfig::ddpmpp(32, 3); // EDM's CIFAR-10 DDPM++ network
//! assert_eq!(cfg.resolved().unwrap().model_channels, Some(128));
//! ```

pub mod layers;

use crate::norm::silu;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::embedding::FourierEmbedding;
use crate::import::{StateDict, load_state_dict};
use crate::precond::ScoreNetwork;
use layers::{
    BlockSettings, BlockShape, Conv2d, GroupNorm, Init, Linear, Resample, UNetBlock, positional,
    swap_halves,
};
use score_core::denoiser::Conditioning;
use score_core::error::{Result, ScoreError};
use score_core::precond::Precond;
use score_core::sigmas::VpSchedule;

/// EDM's network keyword arguments (`network_kwargs` of `train.py`, the arguments of
/// `SongUNet` and `DhariwalUNet`). Unset options take the defaults of `model_type`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct EdmNetConfig {
    /// `"SongUNet"` (DDPM++, NCSN++) or `"DhariwalUNet"` (ADM).
    pub model_type: String,
    /// Image side.
    pub img_resolution: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Class labels (0 = unconditional).
    #[serde(default)]
    pub label_dim: usize,
    /// Augmentation-label width (0 = none; EDM's augmented runs use 9).
    #[serde(default)]
    pub augment_dim: usize,
    /// Base width.
    pub model_channels: Option<usize>,
    /// Width multiplier per resolution.
    pub channel_mult: Option<Vec<usize>>,
    /// Embedding width multiplier.
    pub channel_mult_emb: Option<usize>,
    /// Residual blocks per resolution.
    pub num_blocks: Option<usize>,
    /// Resolutions with self-attention.
    pub attn_resolutions: Option<Vec<usize>>,
    /// Dropout probability.
    pub dropout: Option<f64>,
    /// Label dropout for classifier-free guidance (training only).
    #[serde(default)]
    pub label_dropout: f64,
    /// SongUNet: `"positional"` (DDPM++) or `"fourier"` (NCSN++).
    pub embedding_type: Option<String>,
    /// SongUNet: noise-embedding width multiplier (1 DDPM++, 2 NCSN++).
    pub channel_mult_noise: Option<usize>,
    /// SongUNet: `"standard"`, `"skip"` or `"residual"` (NCSN++).
    pub encoder_type: Option<String>,
    /// SongUNet: `"standard"` or `"skip"`.
    pub decoder_type: Option<String>,
    /// SongUNet: FIR resampling filter (`[1, 1]` DDPM++, `[1, 3, 3, 1]` NCSN++).
    pub resample_filter: Option<Vec<f32>>,
}

const SONG: &str = "SongUNet";
const ADM: &str = "DhariwalUNet";

impl EdmNetConfig {
    fn base(model_type: &str, res: usize, channels: usize) -> Self {
        Self {
            model_type: model_type.into(),
            img_resolution: res,
            in_channels: channels,
            out_channels: channels,
            ..Self::default()
        }
    }

    /// EDM's `--arch=ddpmpp` (CIFAR-10: `ddpmpp(32, 3)`; FFHQ/AFHQv2 64×64 add
    /// `channel_mult = [1, 2, 2, 2]`).
    pub fn ddpmpp(res: usize, channels: usize) -> Self {
        Self {
            embedding_type: Some("positional".into()),
            encoder_type: Some("standard".into()),
            decoder_type: Some("standard".into()),
            channel_mult_noise: Some(1),
            resample_filter: Some(vec![1.0, 1.0]),
            model_channels: Some(128),
            channel_mult: Some(vec![2, 2, 2]),
            ..Self::base(SONG, res, channels)
        }
    }

    /// EDM's `--arch=ncsnpp`.
    pub fn ncsnpp(res: usize, channels: usize) -> Self {
        Self {
            embedding_type: Some("fourier".into()),
            encoder_type: Some("residual".into()),
            decoder_type: Some("standard".into()),
            channel_mult_noise: Some(2),
            resample_filter: Some(vec![1.0, 3.0, 3.0, 1.0]),
            model_channels: Some(128),
            channel_mult: Some(vec![2, 2, 2]),
            ..Self::base(SONG, res, channels)
        }
    }

    /// EDM's `--arch=adm` (ImageNet 64×64).
    pub fn adm(res: usize, channels: usize) -> Self {
        Self {
            model_channels: Some(192),
            channel_mult: Some(vec![1, 2, 3, 4]),
            ..Self::base(ADM, res, channels)
        }
    }

    /// Every option filled with `model_type`'s default (EDM's signatures), checked.
    pub fn resolved(&self) -> Result<Self, String> {
        let song = match self.model_type.as_str() {
            SONG => true,
            ADM => false,
            other => {
                return Err(format!(
                    "model_type: expected SongUNet or DhariwalUNet, found {other:?}"
                ));
            }
        };
        let mut c = self.clone();
        let or = |v: &mut Option<usize>, song_d: usize, adm_d: usize| {
            v.get_or_insert(if song { song_d } else { adm_d });
        };
        or(&mut c.model_channels, 128, 192);
        or(&mut c.channel_mult_emb, 4, 4);
        or(&mut c.num_blocks, 4, 3);
        c.channel_mult.get_or_insert_with(|| {
            if song {
                vec![1, 2, 2, 2]
            } else {
                vec![1, 2, 3, 4]
            }
        });
        c.attn_resolutions
            .get_or_insert_with(|| if song { vec![16] } else { vec![32, 16, 8] });
        c.dropout.get_or_insert(0.10);
        if song {
            c.embedding_type.get_or_insert_with(|| "positional".into());
            c.channel_mult_noise.get_or_insert(1);
            c.encoder_type.get_or_insert_with(|| "standard".into());
            c.decoder_type.get_or_insert_with(|| "standard".into());
            c.resample_filter.get_or_insert_with(|| vec![1.0, 1.0]);
        }
        c.check(song)?;
        Ok(c)
    }

    fn check(&self, song: bool) -> Result<(), String> {
        let song_only = [
            ("embedding_type", self.embedding_type.is_some()),
            ("channel_mult_noise", self.channel_mult_noise.is_some()),
            ("encoder_type", self.encoder_type.is_some()),
            ("decoder_type", self.decoder_type.is_some()),
            ("resample_filter", self.resample_filter.is_some()),
        ];
        if let Some((name, _)) = song_only.iter().find(|(_, set)| !song && *set) {
            return Err(format!("{name}: DhariwalUNet takes no such argument"));
        }
        let one_of = |name: &str, v: &Option<String>, allowed: &[&str]| match v {
            Some(s) if !allowed.contains(&s.as_str()) => {
                Err(format!("{name}: expected one of {allowed:?}, found {s:?}"))
            }
            _ => Ok(()),
        };
        one_of(
            "embedding_type",
            &self.embedding_type,
            &["positional", "fourier"],
        )?;
        one_of(
            "encoder_type",
            &self.encoder_type,
            &["standard", "skip", "residual"],
        )?;
        one_of("decoder_type", &self.decoder_type, &["standard", "skip"])?;
        let mult = self.channel_mult.as_deref().unwrap_or(&[]);
        if mult.is_empty() || mult.contains(&0) {
            return Err(format!(
                "channel_mult: needs at least one level, each > 0, found {mult:?}"
            ));
        }
        let levels = mult.len() as u32;
        if self.img_resolution == 0 || !self.img_resolution.is_multiple_of(1 << (levels - 1)) {
            return Err(format!(
                "img_resolution: {} is not divisible by 2^{} (channel_mult has {levels} levels)",
                self.img_resolution,
                levels - 1
            ));
        }
        if self.in_channels == 0 || self.out_channels == 0 || self.model_channels == Some(0) {
            return Err("in_channels, out_channels and model_channels must be > 0".into());
        }
        if self
            .resample_filter
            .as_ref()
            .is_some_and(|f| f.is_empty() || f.iter().sum::<f32>() == 0.0)
        {
            return Err("resample_filter: needs taps with a non-zero sum".into());
        }
        Ok(())
    }

    /// Build the network (EDM's initialisation) on `device`.
    pub fn init(&self, device: &Device) -> Result<EdmUNet, String> {
        let c = self.resolved()?;
        Ok(if c.model_type == SONG {
            build_song(&c, device)
        } else {
            build_adm(&c, device)
        })
    }
}

/// One entry of EDM's `enc`/`dec` `ModuleDict`: a block, a convolution or a norm,
/// with its key and its role in the forward pass.
#[derive(Module, Debug)]
pub struct Layer {
    block: Option<UNetBlock>,
    conv: Option<Conv2d>,
    norm: Option<GroupNorm>,
    /// EDM's key (`"32x32_block0"`).
    pub name: String,
}

impl Layer {
    fn block(name: String, b: UNetBlock) -> Self {
        Self {
            block: Some(b),
            conv: None,
            norm: None,
            name,
        }
    }
    fn conv(name: String, c: Conv2d) -> Self {
        Self {
            block: None,
            conv: Some(c),
            norm: None,
            name,
        }
    }
    fn norm(name: String, n: GroupNorm) -> Self {
        Self {
            block: None,
            conv: None,
            norm: Some(n),
            name,
        }
    }
}

/// EDM's `SongUNet` or `DhariwalUNet`: the raw network F(x; c_noise, labels).
#[derive(Module, Debug)]
pub struct EdmUNet {
    map_noise_fourier: Option<FourierEmbedding>,
    map_label: Option<Linear>,
    map_augment: Option<Linear>,
    map_layer0: Linear,
    map_layer1: Linear,
    enc: Vec<Layer>,
    dec: Vec<Layer>,
    out_norm: Option<GroupNorm>,
    out_conv: Option<Conv2d>,
    song: bool,
    noise_channels: usize,
    label_dim: usize,
    widest: usize,
    /// Output channels the denoiser uses: the first `in_channels` when the network has
    /// twice as many outputs (ADM's learned variance, which `iDDPMPrecond` drops); 0 = all.
    take: usize,
}

fn song_settings(c: &EdmNetConfig, emb_channels: usize) -> BlockSettings {
    BlockSettings {
        emb_channels,
        num_heads: Some(1),
        channels_per_head: 64,
        dropout: c.dropout.unwrap_or(0.0),
        skip_scale: 0.5f64.sqrt(),
        eps: 1e-6,
        filter: c.resample_filter.clone().unwrap_or_default(),
        resample_proj: true,
        adaptive_scale: false,
        init: Init::xavier(1.0),
        init_zero: Init::xavier(1e-5),
        init_attn: Init::xavier(0.2f64.sqrt()),
    }
}

fn adm_settings(c: &EdmNetConfig, emb_channels: usize) -> BlockSettings {
    let third = (1.0f64 / 3.0).sqrt();
    BlockSettings {
        emb_channels,
        num_heads: None,
        channels_per_head: 64,
        dropout: c.dropout.unwrap_or(0.0),
        skip_scale: 1.0,
        eps: 1e-5,
        filter: vec![1.0, 1.0],
        resample_proj: false,
        adaptive_scale: true,
        init: Init::kaiming(third, third),
        init_zero: Init::kaiming(0.0, 0.0),
        init_attn: Init::kaiming(third, third),
    }
}

fn shape(cin: usize, cout: usize, attention: bool) -> BlockShape {
    BlockShape {
        cin,
        cout,
        up: false,
        down: false,
        attention,
    }
}

/// The encoder of either network (EDM's loop over levels); returns the layers and
/// the skip widths the decoder consumes.
fn build_encoder(c: &EdmNetConfig, s: &BlockSettings, device: &Device) -> (Vec<Layer>, Vec<usize>) {
    let (mc, mult) = (
        c.model_channels.unwrap_or(0),
        c.channel_mult.clone().unwrap_or_default(),
    );
    let attn = c.attn_resolutions.clone().unwrap_or_default();
    let residual = c.encoder_type.as_deref() == Some("residual");
    let skip_aux = c.encoder_type.as_deref() == Some("skip");
    let filter = s.filter.clone();
    let (mut layers, mut skips) = (Vec::new(), Vec::new());
    let (mut cout, mut caux) = (c.in_channels, c.in_channels);
    for (level, &m) in mult.iter().enumerate() {
        let res = c.img_resolution >> level;
        if level == 0 {
            let first = if c.model_type == SONG { mc } else { mc * m };
            let conv = Conv2d::new((cout, first, 3), Resample::none(), s.init, device);
            layers.push(Layer::conv(format!("{res}x{res}_conv"), conv));
            cout = first;
            skips.push(cout);
        } else {
            let down = BlockShape {
                down: true,
                ..shape(cout, cout, false)
            };
            layers.push(Layer::block(
                format!("{res}x{res}_down"),
                UNetBlock::new(down, s, device),
            ));
            skips.push(cout);
            let rs = |fused| Resample {
                up: false,
                down: true,
                fused,
                filter: filter.clone(),
            };
            if skip_aux {
                let d = Conv2d::new((caux, caux, 0), rs(false), Init::xavier(1.0), device);
                layers.push(Layer::conv(format!("{res}x{res}_aux_down"), d));
                let k = Conv2d::new((caux, cout, 1), Resample::none(), s.init, device);
                layers.push(Layer::conv(format!("{res}x{res}_aux_skip"), k));
            }
            if residual {
                let r = Conv2d::new((caux, cout, 3), rs(true), s.init, device);
                layers.push(Layer::conv(format!("{res}x{res}_aux_residual"), r));
                caux = cout;
            }
        }
        for idx in 0..c.num_blocks.unwrap_or(0) {
            let (cin, out) = (cout, mc * m);
            let b = UNetBlock::new(shape(cin, out, attn.contains(&res)), s, device);
            layers.push(Layer::block(format!("{res}x{res}_block{idx}"), b));
            cout = out;
            skips.push(cout);
        }
    }
    (layers, skips)
}

/// The decoder of either network; SongUNet ends in its `aux_norm`/`aux_conv` pair.
fn build_decoder(
    c: &EdmNetConfig,
    s: &BlockSettings,
    mut skips: Vec<usize>,
    device: &Device,
) -> Vec<Layer> {
    let (mc, mult) = (
        c.model_channels.unwrap_or(0),
        c.channel_mult.clone().unwrap_or_default(),
    );
    let attn = c.attn_resolutions.clone().unwrap_or_default();
    let song = c.model_type == SONG;
    let skip_dec = c.decoder_type.as_deref() == Some("skip");
    let mut cout = *skips.last().unwrap_or(&0);
    let mut layers = Vec::new();
    for (level, &m) in mult.iter().enumerate().rev() {
        let res = c.img_resolution >> level;
        if level == mult.len() - 1 {
            let b0 = UNetBlock::new(shape(cout, cout, true), s, device);
            layers.push(Layer::block(format!("{res}x{res}_in0"), b0));
            let b1 = UNetBlock::new(shape(cout, cout, false), s, device);
            layers.push(Layer::block(format!("{res}x{res}_in1"), b1));
        } else {
            let up = BlockShape {
                up: true,
                ..shape(cout, cout, false)
            };
            layers.push(Layer::block(
                format!("{res}x{res}_up"),
                UNetBlock::new(up, s, device),
            ));
        }
        let blocks = c.num_blocks.unwrap_or(0);
        for idx in 0..=blocks {
            let cin = cout + skips.pop().unwrap_or(0);
            cout = mc * m;
            let a = attn.contains(&res) && (!song || idx == blocks);
            let b = UNetBlock::new(shape(cin, cout, a), s, device);
            layers.push(Layer::block(format!("{res}x{res}_block{idx}"), b));
        }
        if song && (skip_dec || level == 0) {
            layers.extend(song_output(c, s, res, level, cout, device));
        }
    }
    layers
}

/// SongUNet's output layers at one level (`aux_up`, `aux_norm`, `aux_conv`).
fn song_output(
    c: &EdmNetConfig,
    s: &BlockSettings,
    res: usize,
    level: usize,
    cout: usize,
    device: &Device,
) -> Vec<Layer> {
    let levels = c.channel_mult.as_ref().map_or(0, Vec::len);
    let mut out = Vec::new();
    if c.decoder_type.as_deref() == Some("skip") && level < levels - 1 {
        let rs = Resample {
            up: true,
            down: false,
            fused: false,
            filter: s.filter.clone(),
        };
        let up = Conv2d::new(
            (c.out_channels, c.out_channels, 0),
            rs,
            Init::xavier(1.0),
            device,
        );
        out.push(Layer::conv(format!("{res}x{res}_aux_up"), up));
    }
    out.push(Layer::norm(
        format!("{res}x{res}_aux_norm"),
        GroupNorm::new(cout, 1e-6, device),
    ));
    let conv = Conv2d::new(
        (cout, c.out_channels, 3),
        Resample::none(),
        s.init_zero,
        device,
    );
    out.push(Layer::conv(format!("{res}x{res}_aux_conv"), conv));
    out
}

fn build_song(c: &EdmNetConfig, device: &Device) -> EdmUNet {
    let mc = c.model_channels.unwrap_or(0);
    let emb = mc * c.channel_mult_emb.unwrap_or(0);
    let noise = mc * c.channel_mult_noise.unwrap_or(1);
    let s = song_settings(c, emb);
    let (enc, skips) = build_encoder(c, &s, device);
    let dec = build_decoder(c, &s, skips, device);
    let fourier = c.embedding_type.as_deref() == Some("fourier");
    let init = Init::xavier(1.0);
    EdmUNet {
        map_noise_fourier: fourier.then(|| FourierEmbedding::new(noise / 2, 16.0, 0, device)),
        map_label: (c.label_dim > 0).then(|| Linear::new(c.label_dim, noise, true, init, device)),
        map_augment: (c.augment_dim > 0)
            .then(|| Linear::new(c.augment_dim, noise, false, init, device)),
        map_layer0: Linear::new(noise, emb, true, init, device),
        map_layer1: Linear::new(emb, emb, true, init, device),
        enc,
        dec,
        out_norm: None,
        out_conv: None,
        song: true,
        noise_channels: noise,
        label_dim: c.label_dim,
        widest: widest(c),
        take: take(c),
    }
}

fn build_adm(c: &EdmNetConfig, device: &Device) -> EdmUNet {
    let mc = c.model_channels.unwrap_or(0);
    let emb = mc * c.channel_mult_emb.unwrap_or(0);
    let s = adm_settings(c, emb);
    let (enc, skips) = build_encoder(c, &s, device);
    let dec = build_decoder(c, &s, skips, device);
    let last = mc
        * c.channel_mult
            .as_ref()
            .and_then(|m| m.first().copied())
            .unwrap_or(1);
    let label_init = Init {
        kaiming: true,
        weight: (c.label_dim as f64).sqrt(),
        bias: 0.0,
    };
    EdmUNet {
        map_noise_fourier: None,
        map_label: (c.label_dim > 0)
            .then(|| Linear::new(c.label_dim, emb, false, label_init, device)),
        map_augment: (c.augment_dim > 0)
            .then(|| Linear::new(c.augment_dim, mc, false, s.init_zero, device)),
        map_layer0: Linear::new(mc, emb, true, s.init, device),
        map_layer1: Linear::new(emb, emb, true, s.init, device),
        enc,
        dec,
        out_norm: Some(GroupNorm::new(last, 1e-5, device)),
        out_conv: Some(Conv2d::new(
            (last, c.out_channels, 3),
            Resample::none(),
            s.init_zero,
            device,
        )),
        song: false,
        noise_channels: mc,
        label_dim: c.label_dim,
        widest: widest(c),
        take: take(c),
    }
}

fn take(c: &EdmNetConfig) -> usize {
    if c.out_channels == 2 * c.in_channels {
        c.in_channels
    } else {
        0
    }
}

fn widest(c: &EdmNetConfig) -> usize {
    let m = c
        .channel_mult
        .as_ref()
        .and_then(|m| m.iter().max().copied());
    c.model_channels.unwrap_or(0) * m.unwrap_or(1)
}

impl EdmUNet {
    /// The class-label dimension (0: unconditional).
    pub fn label_dim(&self) -> usize {
        self.label_dim
    }

    /// The widest level's channels.
    pub fn widest_channels(&self) -> usize {
        self.widest
    }

    /// The embedding of the noise label and the conditioning, `[B, emb]`.
    fn embedding(&self, c_noise: Tensor<1>, cond: Option<&Conditioning>) -> Tensor<2> {
        let b = c_noise.dims()[0];
        let device = c_noise.device();
        let emb = match &self.map_noise_fourier {
            Some(f) => f.forward(c_noise),
            None => positional(c_noise, self.noise_channels, self.song),
        };
        let mut emb = if self.song { swap_halves(emb) } else { emb };
        let labels = || {
            cond.and_then(|c| c.class_labels.clone())
                .unwrap_or_else(|| Tensor::zeros([b, self.label_dim], &device))
        };
        let augment =
            |emb: Tensor<2>| match (&self.map_augment, cond.and_then(|c| c.augment.clone())) {
                (Some(m), Some(a)) => emb + m.forward(a),
                _ => emb,
            };
        if self.song {
            if let Some(m) = &self.map_label {
                emb = emb + m.forward(labels().mul_scalar((self.label_dim as f64).sqrt()));
            }
            let emb = silu(self.map_layer0.forward(augment(emb)));
            return silu(self.map_layer1.forward(emb));
        }
        emb = augment(emb);
        let mut emb = self.map_layer1.forward(silu(self.map_layer0.forward(emb)));
        if let Some(m) = &self.map_label {
            emb = emb + m.forward(labels());
        }
        silu(emb)
    }

    fn encode(&self, x: Tensor<4>, emb: &Tensor<2>) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut skips: Vec<Tensor<4>> = Vec::new();
        let (mut x, mut aux) = (x.clone(), x);
        let half = std::f64::consts::FRAC_1_SQRT_2;
        for l in &self.enc {
            if let Some(b) = &l.block {
                x = b.forward(x, emb.clone());
                skips.push(x.clone());
                continue;
            }
            let conv = l
                .conv
                .as_ref()
                .expect("an encoder layer is a block or a conv");
            if l.name.ends_with("aux_down") {
                aux = conv.forward(aux);
            } else if l.name.ends_with("aux_skip") {
                x = x + conv.forward(aux.clone());
                *skips.last_mut().expect("a skip precedes aux_skip") = x.clone();
            } else if l.name.ends_with("aux_residual") {
                x = (x + conv.forward(aux)).mul_scalar(half);
                aux = x.clone();
                *skips.last_mut().expect("a skip precedes aux_residual") = x.clone();
            } else {
                x = conv.forward(x);
                skips.push(x.clone());
            }
        }
        (x, skips)
    }

    fn decode(&self, mut x: Tensor<4>, emb: &Tensor<2>, mut skips: Vec<Tensor<4>>) -> Tensor<4> {
        let (mut aux, mut tmp): (Option<Tensor<4>>, Option<Tensor<4>>) = (None, None);
        for l in &self.dec {
            if let Some(b) = &l.block {
                if x.dims()[1] != b.in_channels {
                    let s = skips
                        .pop()
                        .expect("the decoder takes one skip per encoder output");
                    x = Tensor::cat(vec![x, s], 1);
                }
                x = b.forward(x, emb.clone());
            } else if let Some(n) = &l.norm {
                tmp = Some(n.forward(x.clone()));
            } else if let Some(conv) = &l.conv {
                if l.name.ends_with("aux_up") {
                    aux = aux.map(|a| conv.forward(a));
                } else {
                    let t = conv.forward(silu(tmp.take().expect("aux_norm precedes aux_conv")));
                    aux = Some(match aux {
                        Some(a) => t + a,
                        None => t,
                    });
                }
            }
        }
        match (&self.out_norm, &self.out_conv) {
            (Some(n), Some(c)) => c.forward(silu(n.forward(x))),
            _ => aux.expect("SongUNet's decoder ends in aux_conv"),
        }
    }

    /// The map from a burn parameter path to the PyTorch state-dict key (without the
    /// precond's `model.` prefix): `enc.3.block.conv0.weight` →
    /// `enc.32x32_block0.conv0.weight`, `enc.5.block.attn.qkv.weight` →
    /// `enc.8x8_block0.qkv.weight`, `map_noise_fourier.freqs` → `map_noise.freqs`;
    /// other paths are the same.
    pub fn torch_keys(&self) -> impl Fn(&str) -> String + use<> {
        let names = |ls: &[Layer]| ls.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        let (enc, dec) = (names(&self.enc), names(&self.dec));
        move |path: &str| {
            let parts: Vec<&str> = path.split('.').collect();
            let layers = match parts.first() {
                Some(&"enc") => &enc,
                Some(&"dec") => &dec,
                Some(&"map_noise_fourier") => {
                    return path.replacen("map_noise_fourier", "map_noise", 1);
                }
                _ => return path.to_string(),
            };
            let name = parts
                .get(1)
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| layers.get(i));
            match (name, parts.get(2)) {
                (Some(n), Some(&("block" | "conv" | "norm"))) => {
                    // The block's attention layers sit on the block itself in EDM.
                    let mut out = vec![parts[0], n.as_str()];
                    out.extend(parts[3..].iter().filter(|p| **p != "attn"));
                    out.join(".")
                }
                _ => path.to_string(),
            }
        }
    }

    /// Load EDM's state dict of the raw network (the keys of `EDMPrecond.model`, i.e.
    /// without `model.`): every parameter by its PyTorch key, shapes checked, no tensor
    /// left over. EDM's `resample_filter` buffers are checked against the configured
    /// filter instead of loaded (they are constants of the architecture).
    pub fn load_torch(self, sd: &StateDict, cfg: &EdmNetConfig) -> Result<Self> {
        let taps = cfg
            .resolved()
            .ok()
            .and_then(|c| c.resample_filter)
            .unwrap_or(vec![1.0, 1.0]);
        check_resample_filters(sd, &taps)?;
        let keys = self.torch_keys();
        load_state_dict(self, sd, keys, |k| k.ends_with(".resample_filter"))
    }
}

/// Every `*.resample_filter` buffer must be f·fᵀ/(Σf)² of the configured taps
/// (to float32 rounding: the buffer is computed in float32 by EDM).
fn check_resample_filters(sd: &StateDict, taps: &[f32]) -> Result<()> {
    let sum: f64 = taps.iter().map(|&t| t as f64).sum();
    let k = taps.len();
    let want: Vec<f64> = (0..k * k)
        .map(|i| taps[i / k] as f64 * taps[i % k] as f64 / (sum * sum))
        .collect();
    for (key, (shape, values)) in sd
        .tensors
        .iter()
        .filter(|(k, _)| k.ends_with(".resample_filter"))
    {
        let same = shape.as_slice() == [1, 1, k, k]
            && values
                .iter()
                .zip(&want)
                .all(|(v, w)| (*v as f64 - w).abs() <= 1e-6 * w.abs().max(1e-3));
        if !same {
            return Err(ScoreError::Checkpoint {
                path: sd.source.clone(),
                detail: format!(
                    "tensor '{key}': shape {shape:?} values {values:?}, expected the resample_filter {taps:?} of the configuration"
                ),
            });
        }
    }
    Ok(())
}

/// EDM's preconditioning wrappers (`training/networks.py`), by class name and EDM's
/// arguments; [`Self::precond`] gives the crate's [`Precond`] with the same
/// coefficients. With `iDDPMPrecond` the network has twice the image channels (ADM's
/// learned variance) and the denoiser takes the first half (see [`EdmUNet`]'s forward).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "class_name", deny_unknown_fields)]
pub enum EdmPrecondConfig {
    /// `EDMPrecond`.
    #[serde(rename = "EDMPrecond")]
    Edm {
        /// σ_data.
        #[serde(default = "half")]
        sigma_data: f64,
    },
    /// `VPPrecond`.
    #[serde(rename = "VPPrecond")]
    Vp {
        /// β_d.
        #[serde(default = "beta_d")]
        beta_d: f64,
        /// β_min.
        #[serde(default = "beta_min")]
        beta_min: f64,
        /// M.
        #[serde(rename = "M", default = "thousand")]
        m: f64,
        /// ε_t.
        #[serde(default = "eps_t")]
        epsilon_t: f64,
    },
    /// `iDDPMPrecond`.
    #[serde(rename = "iDDPMPrecond")]
    Iddpm {
        /// C₁.
        #[serde(rename = "C_1", default = "c_1")]
        c1: f64,
        /// C₂.
        #[serde(rename = "C_2", default = "c_2")]
        c2: f64,
        /// M.
        #[serde(rename = "M", default = "thousand")]
        m: f64,
    },
    /// `VEPrecond`.
    #[serde(rename = "VEPrecond")]
    Ve {
        /// σ_min.
        #[serde(default = "ve_min")]
        sigma_min: f64,
        /// σ_max.
        #[serde(default = "ve_max")]
        sigma_max: f64,
    },
}

fn half() -> f64 {
    0.5
}
fn beta_d() -> f64 {
    19.9
}
fn beta_min() -> f64 {
    0.1
}
fn thousand() -> f64 {
    1000.0
}
fn eps_t() -> f64 {
    1e-5
}
fn c_1() -> f64 {
    0.001
}
fn c_2() -> f64 {
    0.008
}
fn ve_min() -> f64 {
    0.02
}
fn ve_max() -> f64 {
    100.0
}

impl EdmPrecondConfig {
    /// The crate's preconditioning with EDM's coefficients for this wrapper.
    pub fn precond(&self) -> Precond {
        match *self {
            Self::Edm { sigma_data } => Precond::edm(sigma_data),
            Self::Vp {
                beta_d,
                beta_min,
                m,
                epsilon_t,
            } => Precond::Vp {
                schedule: VpSchedule { beta_d, beta_min },
                m,
                eps_t: epsilon_t,
            },
            Self::Ve {
                sigma_min,
                sigma_max,
            } => Precond::Ve {
                sigma_min,
                sigma_max,
            },
            Self::Iddpm { c1, c2, m } => Precond::Iddpm {
                c1,
                c2,
                m: m as usize,
            },
        }
    }
}

impl ScoreNetwork<4> for EdmUNet {
    fn forward(
        &self,
        x_in: Tensor<4>,
        c_noise: Tensor<1>,
        cond: Option<&Conditioning>,
    ) -> Tensor<4> {
        let emb = self.embedding(c_noise, cond);
        let (x, skips) = self.encode(x_in, &emb);
        let out = self.decode(x, &emb, skips);
        if self.take > 0 {
            out.narrow(1, 0, self.take)
        } else {
            out
        }
    }
}
