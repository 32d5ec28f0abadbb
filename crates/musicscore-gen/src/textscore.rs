//! Text-to-score generation: the MusicScore paper's generator (Dai et al. 2024, §4) at
//! CPU scale, on score-core's UNet, training loop and samplers.
//!
//! - **Images.** One grayscale image per staff system: the page at [`Geometry::scale`]
//!   × its resolution (0.5 of a 100 dpi page: a staff space of about 3.5 px, the least
//!   at which [`musicscore_data::image::detect_systems`] still separates the five lines), the
//!   system's first `width` columns from its left edge (the brace or barline that
//!   joins its staves, clefs, the start of the key signature), centred vertically on a
//!   white `width × height` canvas, with rows outside the system's band left white. A
//!   four-staff quartet system is about 122 px tall at that scale, hence `height` 128;
//!   taller systems are left out (counted). `width` 32 (16 mm of the page) is what a
//!   2-core CPU trains in about an hour: 2 400 steps at batch 16 at 1.47 s each;
//!   width 48 costs 1.6× and width 64 with twice the channels 5.6× as much
//!   (`docs/musicscore-generation.md`).
//! - **Text.** Prompts from a [`Template`] (the paper's "a music score, instrumentation
//!   is …, key is …"), encoded once per distinct prompt by the MiniLM sentence encoder
//!   ([`score_nn::text`], standing in for the paper's frozen OpenCLIP): the token
//!   states go to the UNet's cross-attention, the pooled embedding to its noise
//!   embedding. Caption dropout is score-core's condition dropout: a dropped prompt has
//!   zero context and an all-zero token mask, the "no condition" input that
//!   classifier-free guidance ([`score_core::guidance`]) uses. With `--label-field`
//!   ([`FieldLabels`]) one template field, the key, is also given as a one-hot class
//!   label (the UNet's `map_label`), dropped with the caption.
//! - **Measures.** Readability is the fraction of images in which the staff detector
//!   finds a system; adherence compares the staves it finds in the image (one system
//!   per image) with the number the prompt's instrumentation implies
//!   ([`expected_staves`]).

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use score_core::burn::tensor::{Device, Tensor};
use score_core::denoiser::Conditioning;
use score_core::tensor::from_f32;
use score_nn::text::TextEncoder;
use score_nn::unet::UNetConfig;
use score_train::train::TrainData;

use musicscore_data::corpus::Corpus;
use musicscore_data::error::{MusicScoreError, Result};
use musicscore_data::image::{
    ColorMode, DecodeOptions, Raster, System, decode, detect_systems, resample,
};
use musicscore_data::metadata::Fields;
use musicscore_data::notation::read_key_signature;
use musicscore_data::prompt::Template;

use crate::vocabulary::Vocabulary;

/// Width of the MiniLM token states and pooled embedding.
pub const TEXT_DIM: usize = 384;

/// How a staff system becomes a training image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Resolution relative to the page file.
    pub scale: f64,
    /// Image width in pixels.
    pub width: usize,
    /// Image height in pixels.
    pub height: usize,
}

impl Default for Geometry {
    fn default() -> Self {
        Self {
            scale: 0.5,
            width: 32,
            height: 128,
        }
    }
}

impl std::fmt::Display for Geometry {
    /// As `--geometry` takes it: `W×H@scale`, e.g. `32x128@0.5`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}@{}", self.width, self.height, self.scale)
    }
}

impl std::str::FromStr for Geometry {
    type Err = MusicScoreError;

    /// `W×H@scale` (`64x128@0.5`; the scale defaults to 0.5), checked.
    fn from_str(s: &str) -> Result<Self> {
        let bad = |what: &str| MusicScoreError::Invalid(format!("--geometry: {what} in '{s}'"));
        let (size, scale) = s.split_once('@').unwrap_or((s, "0.5"));
        let (w, h) = size.split_once('x').ok_or_else(|| {
            MusicScoreError::Invalid(format!(
                "--geometry: '{s}' is not W×H@scale, e.g. 64x128@0.5"
            ))
        })?;
        let g = Self {
            width: w.trim().parse().map_err(|_| bad("width"))?,
            height: h.trim().parse().map_err(|_| bad("height"))?,
            scale: scale.trim().parse().map_err(|_| bad("scale"))?,
        };
        g.validate()?;
        Ok(g)
    }
}

impl Geometry {
    /// Check the numbers.
    pub fn validate(&self) -> Result<()> {
        if !(self.scale > 0.0 && self.scale <= 1.0) || self.width < 8 || self.height < 8 {
            return Err(MusicScoreError::Invalid(format!(
                "geometry: scale {} must lie in (0, 1], width {} and height {} be at least 8",
                self.scale, self.width, self.height
            )));
        }
        Ok(())
    }
}

/// Dark pixel: luma below half.
fn dark(page: &Raster, x: usize, y: usize) -> bool {
    page.luma(y * page.width + x) < 128
}

/// The first column at which the system's staves begin: the first holding dark pixels
/// on at least four rows per staff within the staff rows (five staff lines cross it;
/// a letter of a label to the left rarely does).
fn left_edge(page: &Raster, sys: &System) -> usize {
    let (a, b) = sys.staff_rows;
    let need = 4 * sys.staves;
    (0..page.width)
        .find(|&x| (a..b).filter(|&y| dark(page, x, y)).count() >= need)
        .unwrap_or(0)
}

/// The training image of one system of a page already at the geometry's scale, or
/// `None` when the system is taller than the canvas.
pub fn system_image(page: &Raster, sys: &System, g: &Geometry) -> Option<Raster> {
    let (a, b) = sys.staff_rows;
    if b - a + 4 > g.height {
        return None;
    }
    let x0 = left_edge(page, sys).saturating_sub(2);
    let top = ((a + b) / 2) as isize - (g.height / 2) as isize;
    let (ba, bb) = sys.band;
    let from = (top.max(0) as usize).max(ba);
    let to = ((top + g.height as isize) as usize).min(bb);
    let piece = page.crop(x0, from, g.width, to.saturating_sub(from));
    let mut canvas = Raster::white(g.width, g.height, 1);
    canvas.paste(&piece, 0, from as isize - top);
    Some(canvas)
}

/// A page decoded in grayscale at `scale` × its resolution.
pub fn decode_scaled(bytes: &[u8], scale: f64, source: &str) -> Result<Raster> {
    let opts = DecodeOptions {
        color: ColorMode::Gray,
        ..Default::default()
    };
    let (w0, h0) = musicscore_data::image::image_size(bytes, source)?;
    let (w, h) = (
        ((w0 as f64 * scale).round() as usize).max(1),
        ((h0 as f64 * scale).round() as usize).max(1),
    );
    Ok(resample(&decode(bytes, &opts, Some((w, h)), source)?, w, h))
}

/// The system images of a page with their detected staff counts, and how many systems
/// were too tall for the canvas.
pub fn page_systems(
    bytes: &[u8],
    g: &Geometry,
    source: &str,
) -> Result<(Vec<(Raster, usize)>, usize)> {
    let page = decode_scaled(bytes, g.scale, source)?;
    let systems = detect_systems(&page);
    let kept: Vec<(Raster, usize)> = systems
        .iter()
        .filter_map(|s| Some((system_image(&page, s, g)?, s.staves)))
        .collect();
    let tall = systems.len() - kept.len();
    Ok((kept, tall))
}

/// The staves the detector finds in an image, or `None` when it finds no staff. An
/// image holds one system, so this is that system's staff count; the staves are counted
/// whether or not the detector also sees the barline or brace that joins them (at a
/// staff space of 3.5 px the thin opening barline of a quartet is often too faint for
/// step 3 of [`musicscore_data::image::staff_systems`]).
pub fn detected_staves(image: &Raster) -> Option<usize> {
    let systems = detect_systems(image);
    (!systems.is_empty()).then(|| systems.iter().map(|s| s.staves).sum())
}

/// The number of staves per system that an instrumentation implies, for the three
/// instrumentations the study prompts with: piano 2 (a braced grand staff), violin 1,
/// string quartet (2 violins, viola, cello) 4; `None` for anything else.
pub fn expected_staves(instrumentation: &[String]) -> Option<usize> {
    let parts: Vec<String> = instrumentation
        .iter()
        .map(|s| s.trim().to_lowercase())
        .collect();
    let is =
        |want: &[&str]| parts.len() == want.len() && parts.iter().zip(want).all(|(a, b)| a == b);
    if is(&["piano"]) {
        Some(2)
    } else if is(&["violin"]) {
        Some(1)
    } else if is(&["2 violins", "viola", "cello"]) {
        Some(4)
    } else {
        None
    }
}

/// What a prompt says an image should show: staves per system (from its
/// instrumentation, [`expected_staves`]) and the key signature (from its key,
/// [`musicscore_data::notation::key_fifths`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expectation {
    /// Staves per system.
    pub staves: Option<usize>,
    /// Sharps (positive) or flats (negative).
    pub fifths: Option<i32>,
}

impl Expectation {
    /// What `prompt`, read back through `template` ([`Template::fields_of`]), says.
    pub fn of_prompt(template: &Template, prompt: &str) -> Self {
        let fields = template.fields_of(prompt).unwrap_or_default();
        let get = |name: &str| fields.iter().find(|(f, _)| f == name).map(|(_, v)| v);
        Self {
            staves: get("instrumentation").and_then(|v| {
                expected_staves(
                    &v.split(',')
                        .map(|p| p.trim().to_string())
                        .collect::<Vec<_>>(),
                )
            }),
            fifths: get("key").and_then(|k| musicscore_data::notation::key_fifths(k)),
        }
    }
}

/// One system image with its prompt.
#[derive(Debug, Clone)]
pub struct SystemItem {
    /// Pixels `[1, height, width]` in [−1, 1] (white = 1).
    pub pixels: Vec<f32>,
    /// The prompt of its page.
    pub prompt: String,
    /// Staves the detector found in it.
    pub staves: usize,
    /// Staves its instrumentation implies ([`expected_staves`]).
    pub expected: Option<usize>,
    /// The page it comes from (corpus index).
    pub page: usize,
}

/// The system images of `pages` (in parallel), their prompts from `template`, and
/// how many systems were too tall.
pub fn system_items(
    corpus: &Corpus,
    pages: &[usize],
    g: &Geometry,
    template: &Template,
    on_page: &(dyn Fn() + Sync),
) -> Result<(Vec<SystemItem>, usize)> {
    g.validate()?;
    let per_page: Vec<Result<(Vec<SystemItem>, usize)>> = pages
        .par_iter()
        .map(|&p| {
            let fields: Fields = corpus.fields(p);
            let prompt = template.render(&fields, Some(&corpus.pages[p].name));
            let expected = expected_staves(&fields.instrumentation);
            let (systems, tall) = page_systems(&corpus.read(p)?, g, &corpus.source_name(p))?;
            on_page();
            let items = systems
                .into_iter()
                .map(|(r, staves)| SystemItem {
                    pixels: r.to_chw_f32().into_iter().map(|v| 2.0 * v - 1.0).collect(),
                    prompt: prompt.clone(),
                    staves,
                    expected,
                    page: p,
                })
                .collect();
            Ok((items, tall))
        })
        .collect();
    let mut items = Vec::new();
    let mut tall = 0;
    for r in per_page {
        let (i, t) = r?;
        items.extend(i);
        tall += t;
    }
    Ok((items, tall))
}

/// One prompt field also given to the network as a class label (`--label-field`): the
/// field's value in a prompt, parsed by the template, as a one-hot vector over the
/// values the training prompts had, beside the prompt's text. A value outside `values`
/// (or a prompt off the template) gives the all-zero "no label" row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldLabels {
    /// The template field, e.g. `key`.
    pub field: String,
    /// Its values in the training prompts, sorted: label i is `values[i]`.
    pub values: Vec<String>,
}

impl FieldLabels {
    /// The labels of `field` over the values `vocabulary` recorded for it; refused by
    /// name when the template has no such field.
    pub fn of(field: &str, template: &Template, vocabulary: &Vocabulary) -> Result<Self> {
        if !template.fields().iter().any(|f| f == field) {
            return Err(MusicScoreError::Invalid(format!(
                "--label-field: the template '{}' has no field '{field}' (its fields: {})",
                template.source(),
                template.fields().join(", ")
            )));
        }
        let values = vocabulary
            .fields
            .get(field)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        Ok(Self {
            field: field.into(),
            values,
        })
    }

    /// The label index of `prompt`, if its field value is one of `values`.
    pub fn index(&self, template: &Template, prompt: &str) -> Option<usize> {
        let fields = template.fields_of(prompt)?;
        let (_, v) = fields.iter().find(|(f, _)| *f == self.field)?;
        self.values.iter().position(|x| x == v)
    }
}

/// Encoded prompts: each distinct prompt through the text encoder once.
pub struct PromptBank {
    /// prompt → (token states `[len × 384]`, len, pooled `[384]`).
    map: HashMap<String, (Vec<f32>, usize, Vec<f32>)>,
    /// A field given as a class label too: its number of values, and each encoded
    /// prompt's label (prompts whose value is not among them have none).
    labels: Option<(usize, HashMap<String, usize>)>,
}

impl PromptBank {
    /// Encode the distinct prompts among `prompts`, 16 at a time.
    pub fn build<'a>(
        encoder: &TextEncoder,
        prompts: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        let mut distinct: Vec<&str> = prompts.into_iter().collect();
        distinct.sort_unstable();
        distinct.dedup();
        let mut map = HashMap::new();
        for chunk in distinct.chunks(16) {
            let enc = encoder.encode(chunk)?;
            let tokens = score_core::tensor::to_vec_f32(enc.tokens)?;
            let pooled = score_core::tensor::to_vec_f32(enc.pooled)?;
            let seq = tokens.len() / chunk.len() / TEXT_DIM;
            for (i, p) in chunk.iter().enumerate() {
                let len = enc.ids[i].iter().take_while(|&&id| id != 0).count().max(1);
                let start = i * seq * TEXT_DIM;
                map.insert(
                    p.to_string(),
                    (
                        tokens[start..start + len * TEXT_DIM].to_vec(),
                        len,
                        pooled[i * TEXT_DIM..(i + 1) * TEXT_DIM].to_vec(),
                    ),
                );
            }
        }
        Ok(Self { map, labels: None })
    }

    /// Give `labels`' field as a one-hot class label beside the text: each encoded
    /// prompt parsed with `template` once, here.
    pub fn with_labels(mut self, labels: Option<(Template, FieldLabels)>) -> Self {
        self.labels = labels.map(|(tpl, l)| {
            let index = (self.map.keys())
                .filter_map(|p| Some((p.clone(), l.index(&tpl, p)?)))
                .collect();
            (l.values.len(), index)
        });
        self
    }

    /// Number of distinct prompts.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no prompt is encoded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The conditioning of a batch of prompts: token states padded with zeros to the
    /// longest, their mask, and the pooled embeddings as context.
    pub fn conditioning(&self, prompts: &[&str], device: &Device) -> Result<Conditioning> {
        let rows: Vec<&(Vec<f32>, usize, Vec<f32>)> = prompts
            .iter()
            .map(|p| {
                self.map.get(*p).ok_or_else(|| {
                    MusicScoreError::Invalid(format!("prompt '{p}' was not encoded"))
                })
            })
            .collect::<Result<_>>()?;
        let b = rows.len();
        let l = rows.iter().map(|r| r.1).max().unwrap_or(1);
        let mut tokens = vec![0f32; b * l * TEXT_DIM];
        let mut mask = vec![0f32; b * l];
        let mut pooled = Vec::with_capacity(b * TEXT_DIM);
        for (i, (t, len, p)) in rows.iter().enumerate() {
            tokens[i * l * TEXT_DIM..][..len * TEXT_DIM].copy_from_slice(t);
            mask[i * l..i * l + len].fill(1.0);
            pooled.extend_from_slice(p);
        }
        Ok(Conditioning {
            class_labels: self.one_hot(prompts, device),
            context: Some(from_f32(pooled, [b, TEXT_DIM], device)),
            tokens: Some(from_f32(tokens, [b, l, TEXT_DIM], device)),
            token_mask: Some(from_f32(mask, [b, l], device)),
            ..Default::default()
        })
    }

    /// The one-hot labels `[b, values]` of the labelled field, when there is one.
    fn one_hot(&self, prompts: &[&str], device: &Device) -> Option<Tensor<2>> {
        let (n, index) = self.labels.as_ref().map(|(n, i)| (*n, i))?;
        let mut v = vec![0f32; prompts.len() * n];
        for (i, p) in prompts.iter().enumerate() {
            if let Some(&k) = index.get(*p) {
                v[i * n + k] = 1.0;
            }
        }
        Some(from_f32(v, [prompts.len(), n], device))
    }
}

/// System images (or their latents) with encoded prompts: score-core training data.
pub struct TextScoreData {
    /// The images (or latents) and prompts.
    pub items: Vec<SystemItem>,
    /// Their encoded prompts.
    pub bank: PromptBank,
    /// The shape `[channels, height, width]` of each item's values.
    pub shape: [usize; 3],
}

impl TrainData<4> for TextScoreData {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn batch(
        &self,
        idx: &[usize],
        device: &Device,
    ) -> score_core::Result<(Tensor<4>, Option<Conditioning>)> {
        let [c, h, w] = self.shape;
        let mut px = Vec::with_capacity(idx.len() * c * h * w);
        for &i in idx {
            px.extend_from_slice(&self.items[i].pixels);
        }
        let prompts: Vec<&str> = idx.iter().map(|&i| self.items[i].prompt.as_str()).collect();
        let cond = (self.bank.conditioning(&prompts, device))
            .map_err(|e| score_core::ScoreError::invalid("training prompts", e.to_string()))?;
        Ok((from_f32(px, [idx.len(), c, h, w], device), Some(cond)))
    }
}

/// The study's network: a UNet on `height × width` grayscale images, widths
/// 16/32/32/32 over four levels, self-attention at height/8, cross-attention to the
/// prompt tokens at height/4 and height/8, and the pooled prompt embedding in the
/// noise embedding.
pub fn unet_config(g: &Geometry) -> UNetConfig {
    unet_config_for([1, g.height, g.width])
}

/// [`unet_config`] for inputs of shape `[channels, height, width]`; a latent model's
/// latents (more than one channel) get twice the widths, 32/64/64/64: each of their
/// positions holds a 4×4 patch of pixels.
pub fn unet_config_for([c, h, w]: [usize; 3]) -> UNetConfig {
    let g = Geometry {
        scale: 1.0,
        width: w,
        height: h,
    };
    UNetConfig::new(g.height)
        .with_width(g.width)
        .with_in_channels(c)
        .with_model_channels(if c > 1 { 32 } else { 16 })
        .with_channel_mult(vec![1, 2, 2, 2])
        .with_blocks_per_level(1)
        .with_attn_resolutions(vec![g.height / 8])
        .with_groups(8)
        .with_context_dim(TEXT_DIM)
        .with_token_dim(TEXT_DIM)
        .with_cross_attn_resolutions(vec![g.height / 4, g.height / 8])
}

/// A generated image `[1, h, w]` in [−1, 1] as a grayscale raster.
pub fn raster_of(pixels: &[f32], width: usize, height: usize) -> Raster {
    Raster {
        width,
        height,
        channels: 1,
        data: pixels
            .iter()
            .map(|&v| ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8)
            .collect(),
    }
}

/// What the detectors read off one image: its staff count and key signature.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Staves of the detected system (`None`: no system found).
    pub staves: Option<usize>,
    /// Sharps (positive) or flats (negative) of the key signature (`None`: not read).
    pub fifths: Option<i32>,
}

impl Reading {
    /// Read an image `[1, height, width]` in [−1, 1].
    pub fn of(pixels: &[f32], width: usize, height: usize) -> Self {
        let r = raster_of(pixels, width, height);
        Self {
            staves: detected_staves(&r),
            fifths: read_key_signature(&r).map(|k| k.fifths),
        }
    }
}

/// Readability and prompt adherence of a set of images for one prompt.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Adherence {
    /// Images measured.
    pub n: usize,
    /// Images in which the detector finds a staff system.
    pub readable: usize,
    /// Images in which the detector finds the expected number of staves.
    pub agree: usize,
    /// Images whose key signature reads as the prompt's key implies
    /// ([`musicscore_data::notation::read_key_signature`] against
    /// [`musicscore_data::notation::key_fifths`]); 0 when the prompt names no key.
    #[serde(default)]
    pub key_agree: usize,
}

impl Adherence {
    /// Measure `images` (each `[1, h, w]` in [−1, 1]) against `expected` staves and
    /// the key signature `fifths` (sharps positive, flats negative).
    pub fn measure(
        images: &[Vec<f32>],
        width: usize,
        height: usize,
        expected: Option<usize>,
        fifths: Option<i32>,
    ) -> Self {
        let want = Expectation {
            staves: expected,
            fifths,
        };
        Self::measure_each(images, width, height, &vec![want; images.len()])
    }

    /// [`Adherence::measure`] with each image's own expectation (real systems, each
    /// with its page's prompt).
    pub fn measure_each(
        images: &[Vec<f32>],
        width: usize,
        height: usize,
        want: &[Expectation],
    ) -> Self {
        let readings: Vec<Reading> = images
            .par_iter()
            .map(|px| Reading::of(px, width, height))
            .collect();
        Self::of_readings(&readings, want)
    }

    /// The counts of `readings` against each image's expectation.
    pub fn of_readings(readings: &[Reading], want: &[Expectation]) -> Self {
        let count = |hit: &dyn Fn(&Reading, &Expectation) -> bool| {
            readings.iter().zip(want).filter(|(r, w)| hit(r, w)).count()
        };
        Self {
            n: readings.len(),
            readable: count(&|r, _| r.staves.is_some()),
            agree: count(&|r, w| r.staves.is_some() && r.staves == w.staves),
            key_agree: count(&|r, w| r.fifths.is_some() && r.fifths == w.fifths),
        }
    }

    /// Fraction whose key signature agrees.
    pub fn key_agreement(&self) -> f64 {
        self.key_agree as f64 / self.n.max(1) as f64
    }

    /// Readable fraction.
    pub fn readability(&self) -> f64 {
        self.readable as f64 / self.n.max(1) as f64
    }

    /// Agreeing fraction.
    pub fn agreement(&self) -> f64 {
        self.agree as f64 / self.n.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--label-field key`: each prompt's key as a one-hot row over the training keys,
    /// the all-zero row for a key outside them or a prompt off the template; a field
    /// the template lacks is refused by name.
    #[test]
    fn a_labelled_field_becomes_one_hot_class_labels_beside_the_text() {
        let dev = Device::flex();
        let tpl = Template::parse("paper").unwrap();
        let prompt = |k: &str| format!("a music score, instrumentation is violin, key is {k}");
        let mut vocab = Vocabulary::default();
        for k in ["G major", "D major", "G major", "B-flat major"] {
            vocab.add(&tpl, &prompt(k));
        }
        let labels = FieldLabels::of("key", &tpl, &vocab).unwrap();
        assert_eq!(labels.values, ["B-flat major", "D major", "G major"]);
        let err = FieldLabels::of("tempo", &tpl, &vocab)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'tempo'") && err.contains("key"), "{err}");
        let prompts = [
            prompt("D major"),
            prompt("F major"),
            "not the template".to_string(),
            prompt("B-flat major"),
        ];
        let map = prompts
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    (vec![0.5; 2 * TEXT_DIM], 2, vec![0.25; TEXT_DIM]),
                )
            })
            .collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let plain = PromptBank { map, labels: None };
        assert!(
            plain
                .conditioning(&refs, &dev)
                .unwrap()
                .class_labels
                .is_none()
        );
        let bank = plain.with_labels(Some((tpl, labels)));
        let c = bank.conditioning(&refs, &dev).unwrap();
        let one_hot = score_core::tensor::to_vec_f32(c.class_labels.unwrap()).unwrap();
        #[rustfmt::skip]
        assert_eq!(one_hot, [
            0.0, 1.0, 0.0,
            0.0, 0.0, 0.0,
            0.0, 0.0, 0.0,
            1.0, 0.0, 0.0,
        ]);
        assert_eq!(c.tokens.unwrap().dims(), [4, 2, TEXT_DIM]);
    }

    #[test]
    fn the_signature_weight_covers_the_leading_eighth_and_factor_one_is_edm() {
        use score_train::train::{Denoising, Objective};
        let dev = Device::flex();
        let sw = SignatureWeighted::eighth(4.0).unwrap();
        // 17 columns: the leading ceil(17/8) = 3 of every row and channel weigh 4.
        let w = score_core::tensor::to_vec_f32(sw.weight([2, 3, 17], &dev)).unwrap();
        assert_eq!(w.len(), 2 * 3 * 17);
        for (k, v) in w.iter().enumerate() {
            assert_eq!(*v, if k % 17 < 3 { 4.0 } else { 1.0 }, "element {k}");
        }
        assert!(SignatureWeighted::eighth(0.0).is_err());
        assert!(SignatureWeighted::eighth(f64::NAN).is_err());
        // Its regression is plain denoising's, with the weight added.
        let mut rng = score_core::tensor::stream_rng(1, 0, 0);
        let x0 = score_core::tensor::randn([2, 1, 4, 16], &mut rng, &dev);
        let n = score_core::tensor::randn([2, 1, 4, 16], &mut rng, &dev);
        let s = Tensor::<1>::from_floats([0.5, 2.0], &dev);
        let r = sw
            .regression(x0.clone(), &s, n.clone(), None, &mut rng)
            .unwrap();
        let d = Denoising.regression(x0, &s, n, None, &mut rng).unwrap();
        let v = |t: Tensor<4>| score_core::tensor::to_vec_f32(t).unwrap();
        assert_eq!(v(r.input), v(d.input));
        assert_eq!(v(r.target), v(d.target));
        assert_eq!(r.weight.unwrap().dims(), [1, 1, 4, 16]);
    }

    /// A synthetic page: `staves` five-line staves 7 px apart (space 7) joined by a
    /// barline at x = 40, starting at row `top`, lines from x = 40 to 600.
    fn page(staves: usize, top: usize) -> Raster {
        let mut r = Raster::white(700, 400, 1);
        let mut set = |x: usize, y: usize| r.data[y * 700 + x] = 0;
        let mut last = top;
        for s in 0..staves {
            for l in 0..5 {
                let y = top + s * 56 + l * 7;
                for x in 40..600 {
                    set(x, y);
                }
                last = y;
            }
        }
        for y in top..=last {
            set(40, y);
            set(41, y);
        }
        r
    }

    #[test]
    fn system_image_keeps_the_staves_and_their_count() {
        let g = Geometry {
            scale: 1.0,
            width: 64,
            height: 256,
        };
        for staves in [1, 2, 4] {
            let p = page(staves, 60);
            let systems = detect_systems(&p);
            assert_eq!(systems.len(), 1, "{staves}");
            assert_eq!(systems[0].staves, staves);
            let img = system_image(&p, &systems[0], &g).unwrap();
            assert_eq!((img.width, img.height), (64, 256));
            // The crop starts 2 px left of the barline, so the barline is column 2.
            assert_eq!(img.data[(img.height / 2) * 64 + 2], 0);
            assert_eq!(detected_staves(&img), Some(staves));
        }
        // Four staves span 3·56 + 28 = 196 rows: too tall for a 128-row canvas.
        let small = Geometry { height: 128, ..g };
        let p = page(4, 60);
        assert!(system_image(&p, &detect_systems(&p)[0], &small).is_none());
    }

    #[test]
    fn staves_count_without_the_joining_barline() {
        let mut p = page(2, 60);
        for y in 0..p.height {
            p.data[y * p.width + 40] = 255;
            p.data[y * p.width + 41] = 255;
        }
        // Without the barline the detector sees two one-staff systems…
        assert_eq!(detect_systems(&p).len(), 2);
        // …and the image still has two staves.
        assert_eq!(detected_staves(&p), Some(2));
        assert_eq!(detected_staves(&Raster::white(64, 64, 1)), None);
    }

    #[test]
    fn expected_staves_reads_the_three_study_instrumentations_only() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(expected_staves(&v(&["Piano"])), Some(2));
        assert_eq!(expected_staves(&v(&["violin"])), Some(1));
        assert_eq!(
            expected_staves(&v(&["2 violins", "viola", "cello"])),
            Some(4)
        );
        assert_eq!(expected_staves(&v(&["violin", "piano"])), None);
        assert_eq!(expected_staves(&v(&[])), None);
    }

    #[test]
    fn adherence_counts_blank_and_wrong_images() {
        let g = Geometry {
            scale: 1.0,
            width: 64,
            height: 256,
        };
        let img = |staves| {
            let p = page(staves, 60);
            let r = system_image(&p, &detect_systems(&p)[0], &g).unwrap();
            r.to_chw_f32()
                .into_iter()
                .map(|v| 2.0 * v - 1.0)
                .collect::<Vec<f32>>()
        };
        let blank = vec![1.0f32; 64 * 256];
        let a = Adherence::measure(&[img(2), img(2), img(1), blank], 64, 256, Some(2), None);
        assert_eq!((a.n, a.readable, a.agree), (4, 3, 2));
    }
}

/// EDM's denoising objective with the squared error of the leading `fraction` of the
/// image's columns (where a system's clefs and key signature are) weighted `factor`
/// and every other element 1: a stronger training signal where the key is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SignatureWeighted {
    /// The weight of the leading columns.
    pub factor: f64,
    /// Their share of the width (rounded up to whole columns).
    pub fraction: f64,
}

impl SignatureWeighted {
    /// The leading eighth weighted `factor` (the left eighth of a 416-px system holds
    /// its clefs and a key signature of up to four accidentals).
    pub fn eighth(factor: f64) -> Result<Self> {
        if !(factor > 0.0 && factor.is_finite()) {
            return Err(MusicScoreError::Invalid(format!(
                "--signature-weight {factor}: must be positive and finite"
            )));
        }
        Ok(Self {
            factor,
            fraction: 0.125,
        })
    }

    /// The weight map `[1, c, h, w]`.
    fn weight(
        &self,
        [c, h, w]: [usize; 3],
        device: &Device,
    ) -> score_core::burn::tensor::Tensor<4> {
        let lead = ((w as f64 * self.fraction).ceil() as usize).min(w);
        let row: Vec<f32> = (0..w)
            .map(|x| if x < lead { self.factor as f32 } else { 1.0 })
            .collect();
        let all: Vec<f32> = row.iter().copied().cycle().take(c * h * w).collect();
        from_f32(all, [1, c, h, w], device)
    }
}

impl score_train::train::Objective<4> for SignatureWeighted {
    fn regression(
        &self,
        x0: score_core::burn::tensor::Tensor<4>,
        sigma: &score_core::burn::tensor::Tensor<1>,
        noise: score_core::burn::tensor::Tensor<4>,
        cond: Option<score_core::Conditioning>,
        rng: &mut rand::rngs::StdRng,
    ) -> score_core::Result<score_train::train::Regression<4>> {
        let [_, c, h, w] = x0.dims();
        let device = x0.device();
        let mut r = score_train::train::Objective::<4>::regression(
            &score_train::train::Denoising,
            x0,
            sigma,
            noise,
            cond,
            rng,
        )?;
        r.weight = Some(self.weight([c, h, w], &device));
        Ok(r)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "name": "signature-weighted denoising", "factor": self.factor, "fraction": self.fraction })
    }
}
