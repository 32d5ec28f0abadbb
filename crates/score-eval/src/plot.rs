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

/// Figure width and height, in pixels.
const W: f64 = 640.0;
const H: f64 = 420.0;
/// Margins: left, right (the legend), top, bottom.
const ML: f64 = 70.0;
const MR: f64 = 170.0;
const MT: f64 = 40.0;
const MB: f64 = 55.0;

/// The map from data to pixels: axis units (log10 on a log axis) over the padded
/// ranges `px`, `py` onto the plot box.
#[derive(Debug, Clone, Copy)]
struct Frame {
    log_x: bool,
    log_y: bool,
    px: (f64, f64),
    py: (f64, f64),
}

impl Frame {
    fn tx(&self, v: f64) -> f64 {
        if self.log_x { v.log10() } else { v }
    }
    fn ty(&self, v: f64) -> f64 {
        if self.log_y { v.log10() } else { v }
    }
    fn sx(&self, v: f64) -> f64 {
        ML + (self.tx(v) - self.px.0) / (self.px.1 - self.px.0) * (W - ML - MR)
    }
    fn sy(&self, v: f64) -> f64 {
        H - MB - (self.ty(v) - self.py.0) / (self.py.1 - self.py.0) * (H - MT - MB)
    }
}

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
        let f = self.frame();
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = write!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = write!(
            s,
            r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
            (ML + W - MR) / 2.0,
            esc(&self.title)
        );
        self.write_axes(&mut s, &f);
        for (i, ser) in self.series.iter().enumerate() {
            self.write_series(&mut s, &f, i, ser);
        }
        s.push_str("</svg>\n");
        s
    }

    /// Whether a point is drawn: finite, positive on a log axis, inside `y_range`.
    fn keep(&self, x: f64, y: f64) -> bool {
        let in_range = self.y_range.is_none_or(|(lo, hi)| y >= lo && y <= hi);
        x.is_finite()
            && y.is_finite()
            && (!self.log_x || x > 0.0)
            && (!self.log_y || y > 0.0)
            && in_range
    }

    /// The data range of the kept points (and `y_range`), padded, in axis units.
    fn frame(&self) -> Frame {
        let mut pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| self.keep(x, y))
            .collect();
        if let (Some((lo, hi)), Some(&(x, _))) = (self.y_range, pts.first()) {
            pts.extend([(x, lo), (x, hi)]);
        }
        let span = |v: &dyn Fn(&(f64, f64)) -> f64| {
            pts.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                    (a.min(v(p)), b.max(v(p)))
                })
        };
        let ((mut x0, mut x1), (mut y0, mut y1)) = (span(&|p| p.0), span(&|p| p.1));
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (1.0, 2.0, 1.0, 2.0);
        }
        if x0 == x1 {
            x1 = x0 + 1.0;
        }
        if y0 == y1 {
            y1 = y0 + 1.0;
        }
        let f = Frame {
            log_x: self.log_x,
            log_y: self.log_y,
            px: (0.0, 1.0),
            py: (0.0, 1.0),
        };
        let (px0, px1, py0, py1) = (f.tx(x0), f.tx(x1), f.ty(y0), f.ty(y1));
        let padx = 0.03 * (px1 - px0);
        let pady = 0.05 * (py1 - py0);
        Frame {
            px: (px0 - padx, px1 + padx),
            py: (py0 - pady, py1 + pady),
            ..f
        }
    }

    /// The plot box, grid lines with tick labels, and the axis labels.
    fn write_axes(&self, s: &mut String, f: &Frame) {
        let _ = write!(
            s,
            r#"<rect x="{ML}" y="{MT}" width="{}" height="{}" fill="none" stroke="black"/>"#,
            W - ML - MR,
            H - MT - MB
        );
        let unt = |v: f64, log: bool| if log { 10f64.powf(v) } else { v };
        for t in nice_ticks(unt(f.px.0, self.log_x), unt(f.px.1, self.log_x), self.log_x) {
            let x = f.sx(t);
            let _ = write!(
                s,
                r##"<line x1="{x}" y1="{MT}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{}</text>"##,
                H - MB,
                H - MB + 16.0,
                fmt_tick(t)
            );
        }
        for t in nice_ticks(unt(f.py.0, self.log_y), unt(f.py.1, self.log_y), self.log_y) {
            let y = f.sy(t);
            let _ = write!(
                s,
                r##"<line x1="{ML}" y1="{y}" x2="{}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" text-anchor="end">{}</text>"##,
                W - MR,
                ML - 6.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            (ML + W - MR) / 2.0,
            H - 12.0,
            esc(&self.x_label)
        );
        let _ = write!(
            s,
            r#"<text transform="translate(16 {}) rotate(-90)" text-anchor="middle">{}</text>"#,
            (MT + H - MB) / 2.0,
            esc(&self.y_label)
        );
    }

    /// Series `i`: its line (unless markers only), markers and legend entry.
    fn write_series(&self, s: &mut String, f: &Frame, i: usize, ser: &Series) {
        let c = COLORS[i % COLORS.len()];
        let p: Vec<(f64, f64)> = ser
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| self.keep(x, y))
            .collect();
        if !ser.markers_only && p.len() > 1 {
            let d: Vec<String> = p
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", f.sx(*x), f.sy(*y)))
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
                f.sx(*x),
                f.sy(*y)
            );
        }
        let ly = MT + 10.0 + 18.0 * i as f64;
        let _ = write!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            W - MR + 10.0,
            W - MR + 30.0,
            W - MR + 35.0,
            ly + 4.0,
            esc(&ser.label)
        );
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
