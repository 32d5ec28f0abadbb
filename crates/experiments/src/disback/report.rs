//! The study's Markdown tables and SVG plots.

use std::fmt::Write as _;
use std::path::Path;

use score_eval::plot::{Plot, Series};

use crate::disback::records::{Report, RunRecord};
use disback::error::Result;

fn interval(v: &Option<[f64; 3]>) -> String {
    match v {
        Some([p, lo, hi]) => format!("{p:.2} [{lo:.2}, {hi:.2}]"),
        None => "—".into(),
    }
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let o = &r.options;
    let _ = writeln!(
        s,
        "# DisBack study\n\nMixture runs: {} generator steps (batch {}, generator lr {}, fake lr {}), Stage 1 M = {} DSM steps, K = {} steps per target; measured every {} steps on {} samples. Threshold: cross-entropy within {} nats of the data's entropy ({}).\n",
        o.run.steps,
        o.run.batch,
        o.run.lr,
        o.run.fake_lr,
        o.run.record_steps,
        o.run.switch_every,
        o.run.every,
        o.run.samples,
        o.ce_margin,
        r.thresholds
    );
    s.push_str("| data | teacher | arm | seeds | reached | median steps | median updates | speed-up (steps) [95% CI] | speed-up (updates) [95% CI] | final CE | final mode-weight error | modes covered | final SW2 |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for m in &r.summary {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {:.2} ± {:.2} | {:.3} ± {:.3} | {:.2} | {:.3} ± {:.3} |",
            m.dataset,
            m.teacher,
            m.arm,
            m.seeds,
            m.reached,
            m.median_steps,
            m.median_updates,
            interval(&m.speedup_steps),
            interval(&m.speedup_updates),
            m.final_cross_entropy[0],
            m.final_cross_entropy[1],
            m.final_mode_weight_error[0],
            m.final_mode_weight_error[1],
            m.final_modes_covered,
            m.final_sliced_w2[0],
            m.final_sliced_w2[1],
        );
    }
    s.push_str(
        "\nSpeed-up = the baseline's median / the arm's (> 1: the arm is faster), with a 95 % percentile bootstrap interval over seeds (2 000 resamples). A run that never reached the threshold counts as the run length plus one measurement interval, a lower bound; no speed-up is given when most runs of both groups are censored. Teacher A: exact targets; B: the MLP fitted by DSM. `n1` and `warm-start-only` coincide by construction (the same Stage 1 ends at the same s′_N, and neither has an intermediate target).\n\nPlots: `ce_<data>_<teacher>_steps.svg` and `…_updates.svg` (median cross-entropy per arm), `score_mismatch.svg`, `image_fd_vs_time.svg`.\n",
    );
    if let Some(im) = &r.image {
        let _ = writeln!(
            s,
            "\n## Images (shipped Fashion-MNIST UNet → one-step generator)\n\nTeacher, 18-step Heun: FD-PCA32 to held-out {:.2}, FID {}.\n",
            im.teacher_fd_to_heldout,
            im.teacher_fid.map_or("—".into(), |f| format!(
                "{:.2} ± {:.2}",
                f.fid, f.std_error
            ))
        );
        s.push_str("| method | steps | updates | train s (Stage 1 s) | FD-PCA32 to teacher | FD-PCA32 to held-out | FID (one step) |\n|---|---|---|---|---|---|---|\n");
        for m in &im.methods {
            if let Some(p) = m.points.last() {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} ({:.0}) | {:.2} | {:.2} | {} |",
                    m.method,
                    p.step,
                    p.updates,
                    p.seconds,
                    m.stage1_seconds,
                    p.fd_to_teacher,
                    p.fd_to_heldout,
                    m.fid.map_or("—".into(), |f| format!(
                        "{:.2} ± {:.2}",
                        f.fid, f.std_error
                    ))
                );
            }
        }
    }
    let _ = writeln!(s, "\nWall time: {:.0} s.", r.seconds);
    s
}

/// Median over the runs of `f` at each measurement index.
fn median_curve(
    runs: &[&RunRecord],
    x: fn(&crate::disback::records::Point) -> f64,
    f: fn(&crate::disback::records::Point) -> f64,
) -> Vec<(f64, f64)> {
    let n = runs.iter().map(|r| r.points.len()).min().unwrap_or(0);
    (0..n)
        .map(|i| {
            let mut v: Vec<f64> = runs.iter().map(|r| f(&r.points[i])).collect();
            v.sort_by(f64::total_cmp);
            (x(&runs[0].points[i]), v[v.len() / 2])
        })
        .collect()
}

/// Convergence plots: median cross-entropy against generator steps and against network
/// updates per arm (2-D, teacher B and A; 16-D), score mismatch, and the image runs'
/// FD against wall-clock time.
pub fn plots(r: &Report, out: &Path) -> Result<()> {
    cross_entropy_plots(r, out)?;
    score_mismatch_plot(r, out)?;
    if let Some(im) = &r.image {
        image_plot(im, out)?;
    }
    Ok(())
}

/// Median cross-entropy against generator steps and against network updates, per data
/// set and teacher.
fn cross_entropy_plots(r: &Report, out: &Path) -> Result<()> {
    let groups = [("ring8", "B"), ("ring8", "A"), ("mix16", "B")];
    for (ds, t) in groups {
        let mut arms: Vec<&str> = r
            .runs
            .iter()
            .filter(|x| x.dataset == ds && x.teacher == t)
            .map(|x| x.arm.as_str())
            .collect();
        arms.sort();
        arms.dedup();
        if arms.is_empty() {
            continue;
        }
        for (xname, x, file) in [
            (
                "generator steps",
                (|p: &crate::disback::records::Point| p.step as f64) as fn(&_) -> f64,
                "steps",
            ),
            (
                "network updates (Stage 1 counted)",
                |p: &crate::disback::records::Point| p.updates as f64,
                "updates",
            ),
        ] {
            let series = arms
                .iter()
                .map(|a| {
                    let runs: Vec<&RunRecord> = r
                        .runs
                        .iter()
                        .filter(|x| x.dataset == ds && x.teacher == t && x.arm == *a)
                        .collect();
                    Series {
                        label: format!("{a} (n={})", runs.len()),
                        points: median_curve(&runs, x, |p| p.measures.cross_entropy),
                        markers_only: false,
                    }
                })
                .collect();
            Plot {
                title: format!("{ds}, teacher {t}: median cross-entropy E_G[-log p]"),
                x_label: xname.into(),
                y_label: "nats".into(),
                log_x: false,
                log_y: true,
                series,
                y_range: None,
            }
            .save(&out.join(format!("ce_{ds}_{t}_{file}.svg")))?;
        }
    }
    Ok(())
}

/// The median score mismatch of the target over training (ring8, teacher B).
fn score_mismatch_plot(r: &Report, out: &Path) -> Result<()> {
    let mism: Vec<Series> = ["baseline", "disback"]
        .iter()
        .map(|a| {
            let runs: Vec<&RunRecord> = r
                .runs
                .iter()
                .filter(|x| x.dataset == "ring8" && x.teacher == "B" && x.arm == *a)
                .collect();
            Series {
                label: a.to_string(),
                points: median_curve(&runs, |p| p.step as f64, |p| p.score_mismatch.max(1e-6)),
                markers_only: false,
            }
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    if !mism.is_empty() {
        Plot {
            title: "ring8, teacher B: score mismatch of the target, E||s_target - s_true||^2"
                .into(),
            x_label: "generator steps".into(),
            y_label: "median over seeds".into(),
            log_x: false,
            log_y: true,
            series: mism,
            y_range: None,
        }
        .save(&out.join("score_mismatch.svg"))?;
    }
    Ok(())
}

/// The image part: FD to the teacher's samples against wall-clock time.
fn image_plot(im: &crate::disback::images::ImageReport, out: &Path) -> Result<()> {
    let series = im
        .methods
        .iter()
        .map(|m| Series {
            label: m.method.clone(),
            points: m
                .points
                .iter()
                .map(|p| (p.seconds.max(1e-3), p.fd_to_teacher))
                .collect(),
            markers_only: false,
        })
        .collect();
    Plot {
        title: "Fashion-MNIST UNet -> one step: FD-PCA32 to the teacher's Heun samples".into(),
        x_label: "training wall-clock seconds (Stage 1 included)".into(),
        y_label: "FD-PCA32".into(),
        log_x: false,
        log_y: false,
        series,
        y_range: None,
    }
    .save(&out.join("image_fd_vs_time.svg"))?;
    Ok(())
}
