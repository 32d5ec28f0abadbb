//! The evaluation of a text-to-score model as a library function ([`evaluate`]): for the
//! most frequent held-out prompt of each study instrumentation (violin, piano, string
//! quartet), samples at each guidance scale measured for readability, staff-count and
//! key adherence beside the real held-out systems, the unconditional samples and the
//! detector's floor on noise; FID-k against the held-out systems. Writes grids,
//! `evaluate.json` and `evaluate.md`. `scorelab musicscore evaluate` and `cargo xtask
//! experiment musicscore` call it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use musicscore_data::corpus::Split;
use musicscore_data::prompt::Template;
use musicscore_data::{MusicScoreError, Result};
use score_core::burn::tensor::Device;
use score_nn::text::TextEncoder;
use serde_json::json;

use crate::generator::{TextModel, TextRecord};
use crate::systems::{CorpusSpec, Feedback, load_systems};
use crate::textscore::{Adherence, Expectation, Geometry, SystemItem};
use crate::vocabulary::PromptCheck;

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvaluateSpec {
    /// A checkpoint of a text-to-score run (or the shipped model).
    pub checkpoint: PathBuf,
    /// The held-out pages (the published test split unless the filter names one).
    pub corpus: CorpusSpec,
    /// Images per prompt and guidance scale.
    pub n: usize,
    /// Guidance scales.
    pub guidance: Vec<f64>,
    /// FID-k sizes; empty: no FID (it needs `cargo xtask fid-setup`).
    pub fid_k: Vec<usize>,
    /// The guidance scale whose images FID-k uses.
    pub fid_guidance: f64,
    /// Heun σ levels.
    pub steps: usize,
    /// Output folder (evaluate.json, evaluate.md, grids).
    pub out: PathBuf,
    /// Seed of the samples.
    pub seed: u64,
}

impl EvaluateSpec {
    /// The study's evaluation: 24 images per cell at w = 1, 2, 4, 8, FID-k at k = 8, 16,
    /// 32, 64 from the w = 4 images, 18 Heun levels, seed 0.
    pub fn new(
        checkpoint: impl Into<PathBuf>,
        corpus: CorpusSpec,
        out: impl Into<PathBuf>,
    ) -> Self {
        Self {
            checkpoint: checkpoint.into(),
            corpus,
            n: 24,
            guidance: vec![1.0, 2.0, 4.0, 8.0],
            fid_k: vec![8, 16, 32, 64],
            fid_guidance: 4.0,
            steps: 18,
            out: out.into(),
            seed: 0,
        }
    }
}

/// What to sample: `n` images for `prompt` (`None`: unconditional) at guidance `w`.
pub struct Draw<'a> {
    /// The prompt.
    pub prompt: Option<&'a str>,
    /// Images.
    pub n: usize,
    /// Guidance scale.
    pub w: f64,
    /// Heun σ levels.
    pub steps: usize,
    /// Seed.
    pub seed: u64,
}

/// [`TextModel::generate`] reporting its steps to `fb` as `w=<scale>`.
pub fn sample(
    model: &TextModel,
    encoder: Option<&TextEncoder>,
    d: &Draw,
    dev: &Device,
    fb: &Arc<dyn Feedback>,
) -> Result<Vec<f32>> {
    let what = format!("w={}", d.w);
    let n = d.steps.saturating_sub(1) as u64;
    let px = model.generate(encoder, d.prompt, d.n, d.w, d.steps, d.seed, dev, |i, _| {
        fb.step(&what, i as u64, n)
    });
    fb.done(&what);
    px
}

/// Whether `prompt` holds only values the model was trained on (true when the
/// checkpoint records no vocabulary).
pub fn seen(rec: &TextRecord, tpl: &Template, prompt: &str) -> bool {
    rec.vocabulary
        .as_ref()
        .is_none_or(|v| v.check(tpl, prompt) == PromptCheck::Known)
}

/// The most frequent held-out prompt of each study instrumentation (1, 2, 4 staves).
fn eval_prompts(items: &[SystemItem]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for want in [2usize, 1, 4] {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for i in items.iter().filter(|i| i.expected == Some(want)) {
            *counts.entry(i.prompt.as_str()).or_default() += 1;
        }
        if let Some((p, _)) = counts
            .iter()
            .max_by_key(|(p, c)| (**c, std::cmp::Reverse(**p)))
        {
            out.push((p.to_string(), want));
        }
    }
    out
}

fn json_err(e: serde_json::Error) -> MusicScoreError {
    MusicScoreError::Invalid(format!("evaluation report: {e}"))
}

/// Evaluate the model of `spec.checkpoint` as the module says; returns the report (as
/// written to evaluate.json) and its tables (evaluate.md).
pub fn evaluate(
    spec: &EvaluateSpec,
    dev: &Device,
    fb: &Arc<dyn Feedback>,
) -> Result<(serde_json::Value, String)> {
    let t0 = Instant::now();
    let model = TextModel::load(&spec.checkpoint, dev)?;
    let g = model.record.geometry;
    let tpl = Template::parse(&model.record.template)?;
    let held_out = load_systems(&spec.corpus.with_default_split(Split::Test), &g, &tpl, fb)?;
    let (real, corpus) = (held_out.items, held_out.corpus);
    let prompts = eval_prompts(&real);
    if prompts.is_empty() {
        return Err(MusicScoreError::Invalid(format!(
            "{corpus}: no held-out pages of piano, violin or string quartet"
        )));
    }
    let encoder = TextEncoder::load(None, dev)?;
    std::fs::create_dir_all(&spec.out).map_err(|source| MusicScoreError::Io {
        path: spec.out.clone(),
        source,
    })?;
    let per = g.width * g.height;
    let run = |prompt: Option<&str>, w: f64, seed: u64| -> Result<Vec<Vec<f32>>> {
        let draw = Draw {
            prompt,
            n: spec.n,
            w,
            steps: spec.steps,
            seed,
        };
        let px = sample(&model, Some(&encoder), &draw, dev, fb)?;
        Ok(px.chunks(per).map(<[f32]>::to_vec).collect())
    };
    let uncond = run(None, 1.0, spec.seed)?;
    write_grid(&spec.out.join("unconditional.png"), &uncond, g)?;
    let mut rows = Vec::new();
    let mut fid_images: Vec<Vec<f32>> = Vec::new();
    for (k, (prompt, want)) in prompts.iter().enumerate() {
        let seen = seen(&model.record, &tpl, prompt);
        let cell = Cell {
            prompt,
            want: *want,
            seed: spec.seed + 1 + k as u64,
            seen,
        };
        let (row, fid) = prompt_row(spec, &cell, &real, &uncond, (&tpl, g), &run)?;
        rows.push(row);
        fid_images.extend(fid);
    }
    let noise_floor = noise_floor(spec.seed, spec.n.max(64), g, dev)?;
    let fid = (!spec.fid_k.is_empty())
        .then(|| fid_k(&fid_images, &real, &prompts, &spec.fid_k, g, dev, fb))
        .transpose()?;
    let report = json!({
        "checkpoint": spec.checkpoint, "step": model.meta.step, "record": model.record,
        "held_out": corpus, "n": spec.n, "steps": spec.steps, "seed": spec.seed,
        "fid_guidance": spec.fid_guidance, "rows": rows, "fid_k": fid,
        "noise_readability": noise_floor, "seconds": t0.elapsed().as_secs_f64(),
    });
    let md = evaluate_markdown(&report, &spec.guidance)?;
    let text = serde_json::to_string_pretty(&report).map_err(json_err)?;
    score_core::fs::write_atomic(&spec.out.join("evaluate.json"), text.as_bytes())?;
    score_core::fs::write_atomic(&spec.out.join("evaluate.md"), md.as_bytes())?;
    Ok((report, md))
}

/// Sample `n` images for a prompt (`None`: unconditional) at a guidance scale and seed.
type Sampler<'a> = dyn Fn(Option<&str>, f64, u64) -> Result<Vec<Vec<f32>>> + 'a;

/// One evaluated prompt: the prompt, the staves it implies, its samples' seed, and
/// whether the model was trained on its values.
struct Cell<'a> {
    prompt: &'a str,
    want: usize,
    seed: u64,
    seen: bool,
}

/// The report row of one prompt (the real held-out systems of its staff count, the
/// unconditional samples and the guided ones at each scale, measured; their grids
/// written), and its images at the FID guidance scale.
fn prompt_row(
    spec: &EvaluateSpec,
    c: &Cell,
    real: &[SystemItem],
    uncond: &[Vec<f32>],
    (tpl, g): (&Template, Geometry),
    run: &Sampler,
) -> Result<(serde_json::Value, Option<Vec<f32>>)> {
    let fifths = Expectation::of_prompt(tpl, c.prompt).fifths;
    let of_want: Vec<&SystemItem> = real.iter().filter(|i| i.expected == Some(c.want)).collect();
    let reals: Vec<Vec<f32>> = of_want.iter().map(|i| i.pixels.clone()).collect();
    // The real systems against their own pages' prompts: the detectors' ceiling.
    let real_want: Vec<Expectation> = of_want
        .iter()
        .map(|i| Expectation::of_prompt(tpl, &i.prompt))
        .collect();
    write_grid(
        &spec.out.join(format!("staves{}_real.png", c.want)),
        &reals,
        g,
    )?;
    let (mut guided, mut fid) = (Vec::new(), None);
    for &w in &spec.guidance {
        let imgs = run(Some(c.prompt), w, c.seed)?;
        write_grid(
            &spec.out.join(format!("staves{}_w{w}.png", c.want)),
            &imgs,
            g,
        )?;
        let m = Adherence::measure(&imgs, g.width, g.height, Some(c.want), fifths);
        if w == spec.fid_guidance {
            fid = Some(imgs.concat());
        }
        guided.push(json!({"guidance": w, "measure": m}));
    }
    let row = json!({
        "prompt": c.prompt, "expected_staves": c.want, "expected_fifths": fifths,
        "seen_in_training": c.seen,
        "real": Adherence::measure_each(&reals, g.width, g.height, &real_want),
        "unconditional": Adherence::measure(uncond, g.width, g.height, Some(c.want), fifths),
        "guided": guided,
    });
    Ok((row, fid))
}

/// The first 8 images of `imgs` (each `g.height × g.width`) as a grid: one row, or two
/// columns for whole systems (wider than twice their height).
fn write_grid(path: &Path, imgs: &[Vec<f32>], g: Geometry) -> Result<()> {
    let shown = imgs.len().min(8);
    let px: Vec<f32> = imgs.iter().take(8).flatten().copied().collect();
    let cols = if g.width > 2 * g.height { 2 } else { 8 };
    Ok(score_io::image::write_image_grid(
        path,
        &px,
        [shown, 1, g.height, g.width],
        cols,
    )?)
}

/// The staff detector's false-positive floor: `n` images of pure N(0, 1) noise,
/// clamped like a sample.
fn noise_floor(seed: u64, n: usize, g: Geometry, dev: &Device) -> Result<Adherence> {
    let per = g.width * g.height;
    let mut rng = score_core::tensor::stream_rng(seed, 0x4e4f_4953, 0);
    let noise: Vec<Vec<f32>> = (0..n)
        .map(|_| {
            let t = score_core::tensor::randn([per], &mut rng, dev);
            score_core::tensor::to_vec_f32(t)
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(Adherence::measure(&noise, g.width, g.height, None, None))
}

/// FID-k: the first k generated images (taken round-robin over the prompts) against
/// every held-out system image of the three instrumentations, with the FID
/// Inception-v3.
fn fid_k(
    generated: &[Vec<f32>],
    real: &[SystemItem],
    prompts: &[(String, usize)],
    ks: &[usize],
    g: Geometry,
    dev: &Device,
    fb: &Arc<dyn Feedback>,
) -> Result<Vec<serde_json::Value>> {
    use score_eval::fid::stats::{FeatureStats, fid_from_stats};
    let per = g.width * g.height;
    let net = score_eval::fid::FidInception::load_default(dev)?;
    let feats = |images: &[f32]| -> Result<Vec<f32>> {
        let n = images.len() / per;
        let u8s = score_eval::fid::quantize_signed(images)?;
        let f = net.features(&u8s, [n, 1, g.height, g.width], 16, |i| {
            fb.step("inception", i as u64, n as u64)
        });
        fb.done("inception");
        Ok(f?)
    };
    let wanted: Vec<usize> = prompts.iter().map(|p| p.1).collect();
    let reals: Vec<f32> = real
        .iter()
        .filter(|i| i.expected.is_some_and(|e| wanted.contains(&e)))
        .flat_map(|i| i.pixels.iter().copied())
        .collect();
    let real_stats = FeatureStats::from_features(&feats(&reals)?, 2048)?;
    let m = generated.iter().map(|v| v.len() / per).min().unwrap_or(0);
    let mut order = Vec::new();
    for i in 0..m {
        for v in generated {
            order.extend_from_slice(&v[i * per..(i + 1) * per]);
        }
    }
    let fake = feats(&order)?;
    let mut out = Vec::new();
    for &k in ks {
        if k < 2 || k * 2048 > fake.len() {
            continue;
        }
        let s = FeatureStats::from_features(&fake[..k * 2048], 2048)?;
        let fid = fid_from_stats(&s, &real_stats)?;
        out.push(json!({"k": k, "fid": fid, "real_images": reals.len() / per}));
    }
    Ok(out)
}

/// Which count of an [`Adherence`] a table shows.
#[derive(Clone, Copy)]
enum Count {
    Readable,
    Staves,
    Key,
}

/// `k/n = p [lo, hi]` with the Wilson 95 % interval.
fn frac(a: &Adherence, which: Count) -> String {
    let k = match which {
        Count::Readable => a.readable,
        Count::Staves => a.agree,
        Count::Key => a.key_agree,
    };
    let n = a.n;
    let p = k as f64 / n.max(1) as f64;
    let z = 1.96f64;
    let nn = n.max(1) as f64;
    let c = (p + z * z / (2.0 * nn)) / (1.0 + z * z / nn);
    let h = z * (p * (1.0 - p) / nn + z * z / (4.0 * nn * nn)).sqrt() / (1.0 + z * z / nn);
    format!(
        "{k}/{n} = {p:.2} [{:.2}, {:.2}]",
        (c - h).max(0.0),
        (c + h).min(1.0)
    )
}

/// The report's tables as markdown.
fn evaluate_markdown(r: &serde_json::Value, guidance: &[f64]) -> Result<String> {
    let ad = |v: &serde_json::Value| -> Result<Adherence> {
        serde_json::from_value(v.clone()).map_err(json_err)
    };
    let list = |v: &serde_json::Value, what: &str| -> Result<Vec<serde_json::Value>> {
        v.as_array()
            .cloned()
            .ok_or_else(|| MusicScoreError::Invalid(format!("evaluation report: no {what}")))
    };
    let mut s = String::new();
    s.push_str("| prompt | staves | real held-out | unconditional |");
    for w in guidance {
        s.push_str(&format!(" w = {w} |"));
    }
    s.push_str("\n|---|---|---|---|");
    s.push_str(&"---|".repeat(guidance.len()));
    s.push('\n');
    for (title, agree) in [
        ("Readability (a staff system detected)", Count::Readable),
        (
            "Prompt adherence (detected staves = implied)",
            Count::Staves,
        ),
        (
            "Key adherence (key signature read = the key's; real: each page's own key)",
            Count::Key,
        ),
    ] {
        s.push_str(&format!(
            "| **{title}** | | | |{}\n",
            " |".repeat(guidance.len())
        ));
        for row in list(&r["rows"], "rows")? {
            s.push_str(&format!(
                "| {} | {} | {} | {} |",
                row["prompt"].as_str().unwrap_or(""),
                row["expected_staves"],
                frac(&ad(&row["real"])?, agree),
                frac(&ad(&row["unconditional"])?, agree)
            ));
            for gd in list(&row["guided"], "guided")? {
                s.push_str(&format!(" {} |", frac(&ad(&gd["measure"])?, agree)));
            }
            s.push('\n');
        }
    }
    s.push_str(&format!(
        "\nThe detector on pure N(0, 1) noise images (its false-positive floor): readable {}.\n",
        frac(&ad(&r["noise_readability"])?, Count::Readable)
    ));
    if let Some(f) = r["fid_k"].as_array() {
        s.push_str("\n| k | FID-k |\n|---|---|\n");
        for x in f {
            s.push_str(&format!(
                "| {} | {:.1} |\n",
                x["k"],
                x["fid"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    }
    Ok(s)
}
