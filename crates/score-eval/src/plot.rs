//! Minimal SVG line plots for reports and docs (log or linear axes, several series,
//! a legend). SVG keeps figures small, diff-able and renderable anywhere.

use std::fmt::Write;
use std::path::Path;

use score_core::error::Result;

/// One series of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
    /// Draw markers only, without a line.
    pub markers_only: bool,
}

/// A line plot.
#[derive(Debug, Clone)]
pub struct Plot {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// The series.
    pub series: Vec<Series>,
    /// Show only this y range (points outside are left out; say so in the title).
    pub y_range: Option<(f64, f64)>,
}

const COLORS: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#bcbd22", "#7f7f7f",
];

fn nice_ticks(lo: f64, hi: f64, log: bool) -> Vec<f64> {
    if log {
        let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        return (a..=b)
            .map(|e| 10f64.powi(e))
            .filter(|t| *t >= lo * 0.999 && *t <= hi * 1.001)
            .collect();
    }
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(mag * 10.0);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + 1e-9 * span {
        out.push(t);
        t += step;
    }
    out
}

fn fmt_tick(v: f64) -> String {
    if v.abs() < 1e-9 {
        return "0".into();
    }
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl Plot {
    /// Render as an SVG string.
    pub fn to_svg(&self) -> String {
        let (w, h, ml, mr, mt, mb) = (640.0, 420.0, 70.0, 170.0, 40.0, 55.0);
        let in_range = |y: f64| self.y_range.is_none_or(|(lo, hi)| y >= lo && y <= hi);
        let keep = |x: f64, y: f64| {
            x.is_finite()
                && y.is_finite()
                && (!self.log_x || x > 0.0)
                && (!self.log_y || y > 0.0)
                && in_range(y)
        };
        let mut pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| keep(x, y))
            .collect();
        if let (Some((lo, hi)), Some(&(x, _))) = (self.y_range, pts.first()) {
            pts.extend([(x, lo), (x, hi)]);
        }
        let tx = |v: f64| if self.log_x { v.log10() } else { v };
        let ty = |v: f64| if self.log_y { v.log10() } else { v };
        let (mut x0, mut x1) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.0), b.max(p.0))
            });
        let (mut y0, mut y1) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (1.0, 2.0, 1.0, 2.0);
        }
        if x0 == x1 {
            x1 = x0 + 1.0;
        }
        if y0 == y1 {
            y1 = y0 + 1.0;
        }
        let (px0, px1, py0, py1) = (tx(x0), tx(x1), ty(y0), ty(y1));
        let padx = 0.03 * (px1 - px0);
        let pady = 0.05 * (py1 - py0);
        let (px0, px1, py0, py1) = (px0 - padx, px1 + padx, py0 - pady, py1 + pady);
        let sx = |v: f64| ml + (tx(v) - px0) / (px1 - px0) * (w - ml - mr);
        let sy = |v: f64| h - mb - (ty(v) - py0) / (py1 - py0) * (h - mt - mb);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = write!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            (ml + w - mr) / 2.0,
            esc(&self.title)
        );
        let _ = write!(
            s,
            r#"<rect x="{ml}" y="{mt}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            w - ml - mr,
            h - mt - mb
        );
        let unt = |v: f64, log: bool| if log { 10f64.powf(v) } else { v };
        for t in nice_ticks(unt(px0, self.log_x), unt(px1, self.log_x), self.log_x) {
            let x = sx(t);
            let _ = write!(
                s,
                r##"<line x1="{x}" y1="{mt}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
                h - mb,
                h - mb + 16.0,
                fmt_tick(t)
            );
        }
        for t in nice_ticks(unt(py0, self.log_y), unt(py1, self.log_y), self.log_y) {
            let y = sy(t);
            let _ = write!(
                s,
                r##"<line x1="{ml}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                w - mr,
                ml - 6.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (ml + w - mr) / 2.0,
            h - 12.0,
            esc(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (mt + h - mb) / 2.0,
            esc(&self.y_label)
        );
        for (i, ser) in self.series.iter().enumerate() {
            let c = COLORS[i % COLORS.len()];
            let p: Vec<(f64, f64)> = ser
                .points
                .iter()
                .copied()
                .filter(|&(x, y)| keep(x, y))
                .collect();
            if !ser.markers_only && p.len() > 1 {
                let d: Vec<String> = p
                    .iter()
                    .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                    .collect();
                let _ = write!(
                    s,
                    r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                    d.join(" ")
                );
            }
            for (x, y) in &p {
                let _ = write!(
                    s,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"/>"#,
                    sx(*x),
                    sy(*y)
                );
            }
            let ly = mt + 10.0 + 18.0 * i as f64;
            let _ = write!(
                s,
                r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
                w - mr + 10.0,
                w - mr + 30.0,
                w - mr + 35.0,
                ly + 4.0,
                esc(&ser.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Write the SVG to `path` (atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        score_core::fs::write_atomic(path, self.to_svg().as_bytes())
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_axes_series_and_legend() {
        let p = Plot {
            title: "t < 1".into(),
            x_label: "σ".into(),
            y_label: "EV".into(),
            log_x: true,
            log_y: false,
            series: vec![Series {
                label: "gaussian".into(),
                points: vec![(0.1, 0.5), (1.0, 0.9), (10.0, 1.0)],
                markers_only: false,
            }],
            y_range: None,
        };
        let svg = p.to_svg();
        assert!(
            svg.starts_with("<svg")
                && svg.contains("polyline")
                && svg.contains("gaussian")
                && svg.contains("t &lt; 1")
        );
        // Decade ticks on the log axis.
        assert!(svg.contains(">0.1<") && svg.contains(">10<"));
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    #[test]
    fn y_range_leaves_out_off_scale_points() {
        let mut p = Plot {
            title: String::new(),
            x_label: String::new(),
            y_label: String::new(),
            log_x: false,
            log_y: false,
            series: vec![Series {
                label: "s".into(),
                points: vec![(1.0, 0.5), (2.0, -400.0), (3.0, 0.9)],
                markers_only: true,
            }],
            y_range: None,
        };
        assert_eq!(p.to_svg().matches("<circle").count(), 3);
        p.y_range = Some((-0.2, 1.0));
        assert_eq!(p.to_svg().matches("<circle").count(), 2);
    }
}
