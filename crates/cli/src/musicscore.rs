//! `scorelab musicscore …`: statistics, verification, prompts, export and previews of a
//! MusicScore download (or the corpus shipped in `data/musicscore`).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use musicscore_data::corpus::Split;
use musicscore_data::export::{contact_sheet, export_imagefolder, tile_sheet};
use musicscore_data::image::{ColorMode, DecodeOptions, Resize};
use musicscore_data::prompt::{Captioner, Template};
use musicscore_data::select::{GroupBy, Stats, group_split};
use serde_json::json;

use crate::common::{Common, emit, spinner};
use crate::corpus_args::*;

#[derive(Subcommand)]
pub enum MusicScoreCmd {
    /// Page, file, work and metadata counts; composers, instruments, keys; page sizes and
    /// ink (one line of numbers per layout with --json).
    Stats(StatsArgs),
    /// Read every page and the metadata; list what is unreadable or unmatched. Exits
    /// with an error when something could not be read.
    Verify(RootArgs),
    /// Print each page's prompt.
    Prompts(PromptArgs),
    /// Export selected pages to the Hugging Face imagefolder layout.
    Export(ExportArgs),
    /// A contact sheet (PNG) of pages with their prompts.
    Preview(PreviewArgs),
    /// Train the text-to-score model (a text-conditioned UNet on staff-system images,
    /// MiniLM prompts through cross-attention) on the selected pages (default split:
    /// train).
    Train(crate::textscore_cmd::TextTrainArgs),
    /// Generate staff systems for a prompt with classifier-free guidance; writes
    /// samples.png and samples.json (detected staves per image).
    Generate(crate::textscore_cmd::GenerateArgs),
    /// Readability, prompt adherence against guidance and FID-k of a text-to-score
    /// checkpoint on held-out pages (default split: test); evaluate.json, evaluate.md
    /// and image grids.
    Evaluate(crate::textscore_cmd::EvaluateArgs),
    /// Train the autoencoder whose latent space the latent text-to-score model diffuses
    /// in, on whole staff systems of the selected pages (default split: train).
    TrainAe(crate::latent_cmd::TrainAeArgs),
    /// Reconstruct held-out systems through an autoencoder (default split: test):
    /// PSNR, staves and key signatures read on input against reconstruction, a grid.
    EvaluateAe(crate::latent_cmd::EvaluateAeArgs),
}

#[derive(Args)]
pub struct StatsArgs {
    #[command(flatten)]
    root: RootArgs,
    /// Skip decoding pages (no sizes, ink, blank or duplicate counts; much faster).
    #[arg(long)]
    no_facts: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

#[derive(Args, Clone)]
pub struct CaptionArgs {
    /// Prompt template, or a preset: paper (default), of, full. Placeholders {title}
    /// {composer} {opus} {key} {instrumentation} {style} {period} {year} {genres}
    /// {genre} {id} {page} {file_name}; [ … ] marks a clause dropped when a value is
    /// missing.
    #[arg(long, default_value = "paper")]
    template: String,
    /// Probability of an empty prompt (classifier-free guidance).
    #[arg(long, default_value_t = 0.0)]
    dropout: f64,
}

#[derive(Args)]
pub struct PromptArgs {
    #[command(flatten)]
    root: RootArgs,
    #[command(flatten)]
    caption: CaptionArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print at most this many.
    #[arg(long)]
    limit: Option<usize>,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    root: RootArgs,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    caption: CaptionArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// New group-aware split instead of the published one: train,val,test fractions
    /// (e.g. 0.7,0.15,0.15), seeded with --seed.
    #[arg(long)]
    resplit: Option<String>,
    /// Groups kept together by --resplit: file (PDF) or work [default: file].
    #[arg(long)]
    group_by: Option<String>,
    /// Re-encode as PNG at a training size: fit:WxH (fit and pad), crop:WxH (centre
    /// crop) or tiles:S[@scale] (staff-system tiles). Default: copy the files.
    #[arg(long)]
    resize: Option<String>,
    /// gray or rgb (with --resize) [default: gray].
    #[arg(long)]
    color: Option<String>,
    /// Replace a non-empty output folder.
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    root: RootArgs,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
    /// Pages shown (the first N of the selection).
    #[arg(long, default_value_t = 12)]
    n: usize,
    /// Columns.
    #[arg(long, default_value_t = 4)]
    cols: usize,
    /// Thumbnail width in pixels.
    #[arg(long, default_value_t = 240)]
    thumb: usize,
    /// Show staff-system tiles of the selected pages instead of whole pages: S or
    /// S@scale (tile side, resolution relative to the file); --n counts tiles.
    #[arg(long)]
    tiles: Option<String>,
    #[command(flatten)]
    caption: CaptionArgs,
    #[command(flatten)]
    filter: FilterArgs,
}

impl CaptionArgs {
    fn captioner(&self, seed: u64) -> Result<Captioner> {
        if !(0.0..=1.0).contains(&self.dropout) {
            bail!("--dropout: {} is not in [0, 1]", self.dropout);
        }
        Ok(Captioner {
            template: Template::parse(&self.template)?,
            dropout: self.dropout,
            seed,
        })
    }
}

pub fn run(cmd: &MusicScoreCmd, c: &Common) -> Result<()> {
    match cmd {
        MusicScoreCmd::Train(a) => crate::textscore_cmd::cmd_train(c, a)?,
        MusicScoreCmd::Generate(a) => crate::textscore_cmd::cmd_generate(c, a)?,
        MusicScoreCmd::Evaluate(a) => crate::textscore_cmd::cmd_evaluate(c, a)?,
        MusicScoreCmd::TrainAe(a) => crate::latent_cmd::cmd_train_ae(c, a)?,
        MusicScoreCmd::EvaluateAe(a) => crate::latent_cmd::cmd_evaluate_ae(c, a)?,
        MusicScoreCmd::Stats(a) => cmd_stats(c, a)?,
        MusicScoreCmd::Verify(a) => cmd_verify(c, a)?,
        MusicScoreCmd::Prompts(a) => cmd_prompts(c, a)?,
        MusicScoreCmd::Export(a) => cmd_export(c, a)?,
        MusicScoreCmd::Preview(a) => cmd_preview(c, a)?,
    }
    Ok(())
}

/// `MusicScoreCmd::Stats`.
fn cmd_stats(c: &Common, a: &StatsArgs) -> Result<()> {
    let corpora = open_all(&a.root, !a.no_facts, c.json)?;
    for corpus in &corpora {
        if corpus.pages.is_empty() {
            ensure_pages(corpus, &[])?;
        }
        let keep = select(corpus, &a.filter)?;
        let s = Stats::compute(corpus, &keep);
        emit(c.json, serde_json::to_value(&s)?, || {
            outln!("{}", s.to_markdown());
            if let Some(m) = &corpus.metadata {
                outln!("metadata: {} ({})\n", m.path.display(), m.shape);
            }
        });
    }
    Ok(())
}

/// `MusicScoreCmd::Verify`.
fn cmd_verify(c: &Common, a: &RootArgs) -> Result<()> {
    let corpora = open_all(a, true, c.json)?;
    let mut bad = 0;
    for corpus in &corpora {
        let r = &corpus.report;
        bad += r.skipped.len();
        let value = json!({
            "layout": corpus.root,
            "pages": corpus.pages.len(),
            "metadata": corpus.metadata.as_ref().map(|m| json!({"path": m.path, "shape": m.shape.to_string(), "records": m.records.len()})),
            "report": r,
        });
        emit(c.json, value, || {
            outln!(
                "{}: {} readable pages; metadata {}",
                corpus.root.display(),
                corpus.pages.len(),
                corpus
                    .metadata
                    .as_ref()
                    .map(|m| format!(
                        "{} ({}, {} records)",
                        m.path.display(),
                        m.shape,
                        m.records.len()
                    ))
                    .unwrap_or_else(|| "none".into())
            );
            let list = |title: &str, items: &[String]| {
                outln!("  {title}: {}", items.len());
                for s in items.iter().take(20) {
                    outln!("    {s}");
                }
                if items.len() > 20 {
                    outln!("    … {} more (--json lists all)", items.len() - 20);
                }
            };
            let skipped: Vec<String> = r
                .skipped
                .iter()
                .map(|s| format!("{}: {}", s.source, s.reason))
                .collect();
            list("unreadable or skipped", &skipped);
            list("pages without a record", &r.unmatched_pages);
            list("records without a page", &r.unmatched_records);
            list("metadata oddities", &r.metadata_issues);
            if r.other_archive_entries > 0 {
                outln!(
                    "  non-image archive entries ignored: {}",
                    r.other_archive_entries
                );
            }
        });
    }
    if bad > 0 {
        bail!("{bad} item(s) could not be read (listed above)");
    }
    Ok(())
}

/// `MusicScoreCmd::Prompts`.
fn cmd_prompts(c: &Common, a: &PromptArgs) -> Result<()> {
    let corpus = open_one(&a.root, a.filter.filter()?.needs_facts(), c.json)?;
    let cap = a.caption.captioner(c.seed())?;
    let keep = select(&corpus, &a.filter)?;
    let n = a.limit.unwrap_or(usize::MAX);
    let rows: Vec<(String, String)> = keep
        .iter()
        .take(n)
        .map(|&i| {
            let p = &corpus.pages[i];
            (
                p.file_name.clone(),
                cap.caption(&corpus.fields(i), Some(&p.name), i as u64, 0),
            )
        })
        .collect();
    emit(
        c.json,
        json!(
            rows.iter()
                .map(|(f, t)| json!({"file_name": f, "text": t}))
                .collect::<Vec<_>>()
        ),
        || {
            for (f, t) in &rows {
                outln!("{f}\t{t}");
            }
        },
    );
    Ok(())
}

/// `MusicScoreCmd::Export`.
fn cmd_export(c: &Common, a: &ExportArgs) -> Result<()> {
    score_core::fs::ensure_apart(&a.out, "--out", &a.root.root, "--root")?;
    // Each was ignored without the flag it qualifies (and not even checked).
    if a.group_by.is_some() && a.resplit.is_none() {
        bail!("--group-by: only --resplit groups pages (without it the published splits are kept)");
    }
    if a.color.is_some() && a.resize.is_none() {
        bail!(
            "--color: only --resize re-encodes pages (without it the files are copied as they are)"
        );
    }
    let filter = a.filter.filter()?;
    let corpus = open_one(&a.root, filter.needs_facts(), c.json)?;
    if a.caption.dropout > 0.0 {
        bail!(
            "--dropout: export writes the full prompt of every page; caption dropout belongs to training, which draws it afresh every epoch"
        );
    }
    let cap = a.caption.captioner(c.seed())?;
    let keep = filter.apply(&corpus)?;
    ensure_pages(&corpus, &keep)?;
    let assign: Vec<(usize, Split)> = match &a.resplit {
        None => keep.iter().map(|&i| (i, corpus.pages[i].split)).collect(),
        Some(s) => {
            let f: Vec<f64> = s
                .split(',')
                .map(|x| x.trim().parse::<f64>())
                .collect::<Result<_, _>>()
                .with_context(|| format!("--resplit: '{s}' is not three numbers"))?;
            let f: [f64; 3] = f
                .try_into()
                .map_err(|_| anyhow::anyhow!("--resplit: '{s}' is not three numbers"))?;
            let by = match a.group_by.as_deref().unwrap_or("file") {
                "file" => GroupBy::File,
                "work" => GroupBy::Work,
                other => bail!("--group-by: '{other}' is not file or work"),
            };
            let parts = group_split(&corpus, &keep, f, c.seed(), by)?;
            Split::ALL
                .iter()
                .zip(parts)
                .flat_map(|(s, v)| v.into_iter().map(move |i| (i, *s)))
                .collect()
        }
    };
    let resize = a
        .resize
        .as_deref()
        .map(|r| parse_resize(r, a.color.as_deref().unwrap_or("gray")))
        .transpose()?;
    let sp = spinner(c.json, format!("exporting {} pages", assign.len()));
    let summary = export_imagefolder(&corpus, &assign, &a.out, &cap, resize, a.overwrite);
    if let Some(sp) = sp {
        sp.finish_and_clear();
    }
    let summary = summary?;
    emit(c.json, serde_json::to_value(&summary)?, || {
        let per: Vec<String> = summary
            .images
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        outln!(
            "wrote {} ({}; {:.2} MB) with metadata.jsonl per split",
            summary.out.display(),
            per.join(", "),
            summary.bytes as f64 / 1e6
        );
        for (split, was, now) in &summary.renamed {
            outln!("{split}/{was}: another page of {split} has that name; written as {now}");
        }
    });
    Ok(())
}

/// `MusicScoreCmd::Preview`.
fn cmd_preview(c: &Common, a: &PreviewArgs) -> Result<()> {
    score_core::fs::ensure_apart(&a.out, "--out", &a.root.root, "--root")?;
    // 0 pages wrote an empty sheet; 0 columns was taken as 1.
    for (flag, v) in [("--n", a.n), ("--cols", a.cols), ("--thumb", a.thumb)] {
        if v == 0 {
            bail!("{flag}: must be at least 1");
        }
    }
    let corpus = open_one(&a.root, a.filter.filter()?.needs_facts(), c.json)?;
    let cap = a.caption.captioner(c.seed())?;
    let keep: Vec<usize> = select(&corpus, &a.filter)?;
    ensure_pages(&corpus, &keep)?;
    if let Some(t) = &a.tiles {
        let (resize, _) = parse_resize(&format!("tiles:{t}"), "gray")?;
        let Resize::Tiles { size, scale } = resize else {
            bail!("--tiles: '{t}' is not S or S@scale");
        };
        let n = tile_sheet(&corpus, &keep, size, scale, a.n, a.cols, &a.out)?;
        emit(c.json, json!({"out": a.out, "tiles": n}), || {
            outln!("wrote {} ({n} tiles)", a.out.display())
        });
        return Ok(());
    }
    let keep: Vec<usize> = keep.into_iter().take(a.n).collect();
    let n = contact_sheet(&corpus, &keep, &cap, a.cols, a.thumb, &a.out)?;
    emit(c.json, json!({"out": a.out, "pages": n}), || {
        outln!("wrote {} ({n} pages)", a.out.display())
    });
    Ok(())
}

/// `fit:WxH`, `crop:WxH`, `tiles:S[@scale]`.
pub fn parse_resize(s: &str, color: &str) -> Result<(Resize, DecodeOptions)> {
    let color = match color {
        "gray" | "grey" => ColorMode::Gray,
        "rgb" => ColorMode::Rgb,
        other => bail!("--color: '{other}' is not gray or rgb"),
    };
    let (kind, arg) = s
        .split_once(':')
        .with_context(|| format!("--resize: '{s}' is not fit:WxH, crop:WxH or tiles:S[@scale]"))?;
    let resize = match kind {
        "fit" | "crop" => {
            let (width, height): (usize, usize) = pair(arg, 'x', "--resize")?;
            if width == 0 || height == 0 {
                bail!("--resize: size {width}x{height} is empty");
            }
            if kind == "fit" {
                Resize::FitPad { width, height }
            } else {
                Resize::CentreCrop { width, height }
            }
        }
        "tiles" => {
            let (size, scale) = match arg.split_once('@') {
                Some((a, b)) => (a.parse().ok(), b.parse().ok()),
                None => (arg.parse().ok(), Some(1.0)),
            };
            match (size, scale) {
                (Some(size), Some(scale)) if size > 0 && scale > 0.0 && scale <= 1.0 => {
                    Resize::Tiles { size, scale }
                }
                _ => bail!("--resize: '{s}' is not tiles:S[@scale] with S > 0 and 0 < scale ≤ 1"),
            }
        }
        other => bail!("--resize: unknown mode '{other}' (fit, crop, tiles)"),
    };
    Ok((
        resize,
        DecodeOptions {
            color,
            ..Default::default()
        },
    ))
}
