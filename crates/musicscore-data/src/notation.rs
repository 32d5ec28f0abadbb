//! Reading the key signature off a staff-system image, and the signature a key name
//! implies: what text-to-score's key adherence compares.
//!
//! A key signature is written as `fifths`: the number of sharps (positive) or flats
//! (negative), −7 to 7, as MusicXML's `<fifths>`.
//!
//! [`read_key_signature`] works on one system (a crop or a generated image) at the
//! corpus's scale (a staff space `s` of about 3.5 px):
//!
//! 1. Its staves come from [`crate::image::detect_staves`]. In a band from 2 `s` above a
//!    staff's top line to 1.5 `s` below its bottom line (a sharp on the top line reaches
//!    1.5 `s` above it, a flat's stem 2 `s` above its note), dark pixels (luma below
//!    half) are glyph ink, except on a staff line's rows (within a pixel of a detected
//!    line, or dark over half the image's width: a thick or undetected line), where a
//!    pixel counts only when the nearest rows above and below the line are dark at
//!    that column too (a stroke crossing the line).
//! 2. Glyphs are 8-connected pieces of glyph ink, pieces sharing at least half the
//!    narrower one's columns merged (a stroke cut by a line), with their bounding boxes.
//! 3. The clef is the first glyph at least 1.5 `s` wide and 2.5 `s` tall (SMuFL's
//!    treble, alto and bass clefs, as verovio engraves them, are 2.5–2.8 `s` wide and
//!    3–7 `s` tall; a brace or barline before it is under 0.5 `s` wide). Glyphs under
//!    1.2 `s` tall just after it (a bass clef's dots) are skipped.
//! 4. The signature's accidentals follow: glyphs 1.8–3.2 `s` tall and at most 1.5 `s`
//!    wide (a sharp is 2.8 `s` × 1.0 `s`, a flat 2.4 `s` × 0.9 `s`; a stemmed note is
//!    at least 3.5 `s` tall, a note head alone 1 `s`), the first within 1.5 `s` of the
//!    clef, each next within 1 `s` of the previous one and 1–2.5 `s` above or below
//!    it (successive accidentals of a signature are a fourth or a fifth apart, 1.5 or
//!    2 `s`), at most 7.
//! 5. Sharps or flats: from two accidentals on, the direction of the first step (the
//!    second sharp, C, is a fourth below the first, F; the second flat, E, a fourth
//!    above the first, B, in every clef); a lone accidental by its shape: ink in two or
//!    more columns of its top 40 % of rows is a sharp's two stems, in none a flat's
//!    thin stem (anti-aliased to grey); with one, by its ink's balance (a flat's lies
//!    in its lower half, its bowl; a sharp's is balanced between the halves).
//!
//! A system's reading is the most frequent among its staves (the first staff's on a
//! tie); a system with no readable staff gives `None`.

use crate::image::{Raster, Staff, detect_staves};

/// A key signature read off an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyReading {
    /// Sharps (positive) or flats (negative).
    pub fifths: i32,
    /// Staves that gave a reading.
    pub staves: usize,
    /// Of them, those that gave this one.
    pub agreeing: usize,
}

/// The signature of a key name: "B-flat major" → −2, "F-sharp minor" → 3, "C major" → 0.
/// Accepts `A`–`G`, then `-flat`, ` flat`, `b`, `♭`, `-sharp`, ` sharp`, `#` or `♯`,
/// then `major` or `minor` (major when absent); `None` for anything else, or a key
/// beyond seven sharps or flats.
pub fn key_fifths(key: &str) -> Option<i32> {
    let k = key.trim();
    let mut chars = k.chars();
    let letter = chars.next()?.to_ascii_uppercase();
    // Position on the line of fifths of the natural letters, C = 0.
    let base = match letter {
        'F' => -1,
        'C' => 0,
        'G' => 1,
        'D' => 2,
        'A' => 3,
        'E' => 4,
        'B' => 5,
        _ => return None,
    };
    let rest = chars.as_str().trim_start().to_lowercase();
    let (alter, rest) = [
        ("-flat", -7),
        ("flat", -7),
        ("♭", -7),
        ("b", -7),
        ("-sharp", 7),
        ("sharp", 7),
        ("♯", 7),
        ("#", 7),
    ]
    .iter()
    .find_map(|(p, a)| rest.strip_prefix(p).map(|r| (*a, r.trim())))
    .unwrap_or((0, rest.trim()));
    let mode = match rest {
        "" | "major" => 0,
        "minor" => -3,
        _ => return None,
    };
    let f = base + alter + mode;
    (-7..=7).contains(&f).then_some(f)
}

/// A glyph: a run of columns holding glyph ink, with its bounding box (ends exclusive)
/// and its ink in the upper and lower halves of the box.
#[derive(Debug, Clone, Copy)]
struct Glyph {
    x0: usize,
    x1: usize,
    top: usize,
    bottom: usize,
    upper: usize,
    lower: usize,
    /// Columns with ink in the glyph's top 40 % of rows: a sharp's two stems, a flat's
    /// one thin stem (anti-aliased to grey, mostly not ink).
    top_columns: usize,
}

impl Glyph {
    fn width(&self) -> f64 {
        (self.x1 - self.x0) as f64
    }
    fn height(&self) -> f64 {
        (self.bottom - self.top) as f64
    }
    fn centre(&self) -> f64 {
        (self.top + self.bottom) as f64 / 2.0
    }
}

/// Whether pixel (x, y) is dark.
fn dark(img: &Raster, x: usize, y: usize) -> bool {
    img.luma(y * img.width + x) < 192
}

/// Step 1: the glyph-ink mask of a staff's band, as a closure over (x, y). Line rows are
/// those within a pixel of a detected line's centre, and any row of the band dark over
/// at least half the image's width (a line drawn two pixels thick, or one the detector
/// missed: no glyph row of a system is that long).
fn glyph_ink<'a>(img: &'a Raster, staff: &'a Staff) -> impl Fn(usize, usize) -> bool + 'a {
    let long: Vec<bool> = (0..img.height)
        .map(|y| 2 * (0..img.width).filter(|&x| dark(img, x, y)).count() >= img.width)
        .collect();
    let on_line = move |y: usize| {
        long[y]
            || staff
                .lines
                .iter()
                .any(|&c| ((y as f64 + 0.5) - c).abs() < 1.0)
    };
    move |x: usize, y: usize| {
        if !dark(img, x, y) {
            return false;
        }
        if !on_line(y) {
            return true;
        }
        let above = (0..y).rev().find(|&r| !on_line(r));
        let below = (y + 1..img.height).find(|&r| !on_line(r));
        matches!((above, below), (Some(a), Some(b)) if dark(img, x, a) && dark(img, x, b))
    }
}

/// The 8-connected components of `mask` (`w` × `h`, row-major), as pixel indices.
fn components(mask: &[bool], w: usize, h: usize) -> Vec<Vec<usize>> {
    let mut label = vec![usize::MAX; w * h];
    let mut comps: Vec<Vec<usize>> = Vec::new();
    for start in 0..w * h {
        if !mask[start] || label[start] != usize::MAX {
            continue;
        }
        let id = comps.len();
        let mut stack = vec![start];
        let mut members = Vec::new();
        label[start] = id;
        while let Some(i) = stack.pop() {
            members.push(i);
            let (x, y) = ((i % w) as isize, (i / w) as isize);
            for (dx, dy) in [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ] {
                let (nx, ny) = (x + dx, y + dy);
                if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                    continue;
                }
                let j = ny as usize * w + nx as usize;
                if mask[j] && label[j] == usize::MAX {
                    label[j] = id;
                    stack.push(j);
                }
            }
        }
        comps.push(members);
    }
    comps
}

/// Step 2: the glyphs of one staff, left to right: 8-connected components of its glyph
/// ink, and components whose column ranges overlap by at least half the narrower one's
/// width merged (a stroke cut where it crosses a staff line lies above and below it in
/// the same columns; the staggered accidentals of a signature, or a clef and the first
/// of them, overlap by a column or two and stay apart).
fn glyphs(img: &Raster, staff: &Staff) -> Vec<Glyph> {
    let s = staff.space;
    let first = *staff.lines.first().unwrap_or(&0.0);
    let last = *staff.lines.last().unwrap_or(&0.0);
    let y0 = (first - 2.0 * s).floor().max(0.0) as usize;
    let y1 = ((last + 1.5 * s).ceil() as usize).min(img.height);
    let (w, h) = (img.width, y1.saturating_sub(y0));
    let ink = glyph_ink(img, staff);
    let mask: Vec<bool> = (0..w * h).map(|i| ink(i % w, y0 + i / w)).collect();
    let comps = components(&mask, w, h);
    let mut boxes: Vec<(usize, usize, Vec<usize>)> = comps
        .into_iter()
        .map(|m| {
            let x0 = m.iter().map(|i| i % w).min().unwrap_or(0);
            let x1 = m.iter().map(|i| i % w + 1).max().unwrap_or(0);
            (x0, x1, m)
        })
        .collect();
    boxes.sort_by_key(|b| (b.0, b.1));
    let mut merged: Vec<(usize, usize, Vec<usize>)> = Vec::new();
    for b in boxes {
        let overlap = |m: &(usize, usize, Vec<usize>)| {
            let shared = m.1.min(b.1).saturating_sub(b.0.max(m.0));
            2 * shared >= (m.1 - m.0).min(b.1 - b.0).max(1)
        };
        match merged.last_mut() {
            Some(m) if b.0 < m.1 && overlap(m) => {
                m.1 = m.1.max(b.1);
                m.2.extend(b.2);
            }
            _ => merged.push(b),
        }
    }
    let pieces: Vec<Vec<usize>> = merged
        .into_iter()
        .flat_map(|(_, _, m)| split_touching(m, w, s))
        .collect();
    pieces
        .into_iter()
        .map(|m| {
            let x0 = m.iter().map(|i| i % w).min().unwrap_or(0);
            let x1 = m.iter().map(|i| i % w + 1).max().unwrap_or(0);
            let top = y0 + m.iter().map(|i| i / w).min().unwrap_or(0);
            let bottom = y0 + m.iter().map(|i| i / w + 1).max().unwrap_or(0);
            let mid = (top + bottom) as f64 / 2.0;
            let upper = m
                .iter()
                .filter(|&&i| ((y0 + i / w) as f64 + 0.5) < mid)
                .count();
            let top_rows = top + (0.4 * (bottom - top) as f64).round().max(1.0) as usize;
            let mut cols: Vec<usize> = m
                .iter()
                .filter(|&&i| y0 + i / w < top_rows)
                .map(|i| i % w)
                .collect();
            cols.sort_unstable();
            cols.dedup();
            Glyph {
                x0,
                x1,
                top,
                bottom,
                upper,
                lower: m.len() - upper,
                top_columns: cols.len(),
            }
        })
        .collect()
}

/// A component 1.5–2.6 `s` wide and at most 4 `s` tall cut at its column of least ink
/// when that column holds at most 2 of its pixels (two accidentals that touch),
/// recursively; pieces are at least `s` / 2 wide. `m` holds pixel indices of a `w`-wide band.
fn split_touching(m: Vec<usize>, w: usize, s: f64) -> Vec<Vec<usize>> {
    let x0 = m.iter().map(|i| i % w).min().unwrap_or(0);
    let x1 = m.iter().map(|i| i % w + 1).max().unwrap_or(0);
    let min_piece = (s / 2.0).ceil() as usize;
    let (y0, y1) = (
        m.iter().map(|i| i / w).min().unwrap_or(0),
        m.iter().map(|i| i / w + 1).max().unwrap_or(0),
    );
    let (width, height) = ((x1 - x0) as f64, (y1 - y0) as f64);
    // Two touching accidentals are at most 2.6 s wide and 4 s tall; a clef is wider
    // (bass) or taller (treble, alto) and is never cut.
    if width <= 1.5 * s || width > 2.6 * s || height > 4.0 * s || x1 - x0 < 2 * min_piece + 1 {
        return vec![m];
    }
    let mut ink = vec![0usize; x1 - x0];
    for i in &m {
        ink[i % w - x0] += 1;
    }
    let cut = (x0 + min_piece..x1 - min_piece).min_by_key(|&x| (ink[x - x0], x));
    match cut {
        Some(c) if ink[c - x0] <= 2 => {
            let (left, right): (Vec<usize>, Vec<usize>) = m.into_iter().partition(|i| i % w <= c);
            let mut out = split_touching(left, w, s);
            out.extend(split_touching(right, w, s));
            out
        }
        _ => vec![m],
    }
}

/// Steps 3–5 on one staff: its signature, or `None` when no clef is found.
fn read_staff(img: &Raster, staff: &Staff) -> Option<i32> {
    let s = staff.space;
    let gl = glyphs(img, staff);
    let clef = gl
        .iter()
        .position(|g| g.width() >= 2.0 * s && g.height() >= 2.5 * s)?;
    let mut prev_end = gl[clef].x1;
    let mut i = clef + 1;
    while i < gl.len() && gl[i].height() < 1.2 * s && (gl[i].x0.saturating_sub(prev_end) as f64) < s
    {
        prev_end = gl[i].x1;
        i += 1;
    }
    let mut acc: Vec<Glyph> = Vec::new();
    for g in &gl[i..] {
        let gap = g.x0.saturating_sub(prev_end) as f64;
        if g.height() < 0.5 * s && g.width() <= 0.6 * s && gap <= s {
            // A fragment of a stroke the line removal cut off: step over it.
            prev_end = g.x1;
            continue;
        }
        let shaped = (0.5 * s..=3.2 * s).contains(&g.height()) && g.width() <= 1.5 * s;
        let near = gap <= if acc.is_empty() { 1.5 * s } else { s };
        let stepped = acc
            .last()
            .is_none_or(|p| (s..=2.5 * s).contains(&(g.centre() - p.centre()).abs()));
        if !(shaped && near && stepped) || acc.len() == 7 {
            break;
        }
        acc.push(*g);
        prev_end = g.x1;
    }
    let sharps = match acc.as_slice() {
        [] => return Some(0),
        [one] => match one.top_columns {
            0 => false,
            1 => one.upper as f64 >= 0.6 * one.lower as f64,
            _ => true,
        },
        [a, b, ..] => b.centre() > a.centre(),
    };
    let n = acc.len() as i32;
    Some(if sharps { n } else { -n })
}

/// The key signature of a one-system image (steps 1–5 of the module docs).
pub fn read_key_signature(img: &Raster) -> Option<KeyReading> {
    let readings: Vec<i32> = detect_staves(img)
        .iter()
        .filter_map(|st| read_staff(img, st))
        .collect();
    let first = *readings.first()?;
    let count = |f: i32| readings.iter().filter(|&&r| r == f).count();
    let best = readings
        .iter()
        .copied()
        .max_by_key(|&f| (count(f), f == first))
        .unwrap_or(first);
    Some(KeyReading {
        fifths: best,
        staves: readings.len(),
        agreeing: count(best),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Staff space of the synthetic staves (pixels); every threshold scales with it.
    const S: usize = 7;

    /// A white 240×120 image with one five-line staff (lines one pixel thick, `S` apart,
    /// top line at row 40) from column 10 to 230, a barline at column 10 and a clef-like
    /// block (2.6 `s` × 7 `s`) at columns 14–31.
    fn staff() -> Raster {
        let mut r = Raster::white(240, 120, 1);
        for l in 0..5 {
            for x in 10..230 {
                r.data[(40 + l * S) * 240 + x] = 0;
            }
        }
        fill(&mut r, 10, 40, 1, 4 * S + 1);
        fill(&mut r, 14, 40 - S, 18, 7 * S);
        r
    }

    fn fill(r: &mut Raster, x: usize, y: usize, w: usize, h: usize) {
        for yy in y..y + h {
            for xx in x..x + w {
                r.data[yy * 240 + xx] = 0;
            }
        }
    }

    /// A sharp centred on row `y` at column `x`: two stems 2.8 `s` tall joined by two
    /// bars, 1 `s` wide (SMuFL's proportions).
    fn sharp(r: &mut Raster, x: usize, y: usize) {
        let h = 20;
        fill(r, x + 1, y - h / 2, 1, h);
        fill(r, x + 5, y - h / 2, 1, h);
        fill(r, x, y - 4, S, 2);
        fill(r, x, y + 3, S, 2);
    }

    /// A flat whose bowl sits on row `y`: a stem 2.4 `s` tall and a bowl in its lower
    /// third, 0.9 `s` wide.
    fn flat(r: &mut Raster, x: usize, y: usize) {
        fill(r, x, y - 13, 1, 17);
        fill(r, x, y - 2, 6, 2);
        fill(r, x + 5, y - 2, 1, 5);
        fill(r, x, y + 3, 6, 1);
    }

    /// A staff line the detector does not take (drawn over 55 % of the width, under its
    /// 60 % coverage) is still not glyph ink: read as a line, it joined the clef and
    /// every accidental into one glyph and the signature read as none.
    #[test]
    fn a_line_the_detector_misses_is_not_taken_for_a_glyph() {
        let row = |steps_below_f5: usize| 40 + steps_below_f5 * S / 2;
        let mut d = staff();
        for x in 10..230 {
            d.data[(40 + 4 * S) * 240 + x] = if x < 142 { 0 } else { 255 };
        }
        sharp(&mut d, 36, row(0));
        sharp(&mut d, 45, row(3));
        let staves = detect_staves(&d);
        assert_eq!(
            staves.first().map(|s| s.lines.len()),
            Some(4),
            "the bottom line is missed"
        );
        assert_eq!(read_key_signature(&d).map(|k| k.fifths), Some(2));
    }

    /// A lone sharp whose lower half holds most of its ink (here a lower bar 6 rows
    /// thick; on real pages a bar merged with a staff line, or a light anti-aliased
    /// upper half) is still a sharp: its two stems show in its top 40 %, where a flat
    /// has one. The ink balance alone read it as a flat.
    #[test]
    fn a_lone_sharp_is_told_by_its_two_stems() {
        let mut g = staff();
        let (x, y) = (36, 40);
        fill(&mut g, x + 1, y - 10, 1, 20);
        fill(&mut g, x + 5, y - 10, 1, 20);
        fill(&mut g, x, y - 4, S, 1);
        fill(&mut g, x, y + 3, S, 6);
        assert_eq!(read_key_signature(&g).map(|k| k.fifths), Some(1));
    }

    #[test]
    fn reads_sharps_flats_and_none_on_a_synthetic_staff() {
        // Treble-clef positions: the top line is F5 (row 40), each step S / 2 lower.
        let row = |steps_below_f5: usize| 40 + steps_below_f5 * S / 2;
        assert_eq!(read_key_signature(&staff()).map(|k| k.fifths), Some(0));
        // D major: F♯5, C♯5.
        let mut d = staff();
        sharp(&mut d, 36, row(0));
        sharp(&mut d, 45, row(3));
        assert_eq!(read_key_signature(&d).map(|k| k.fifths), Some(2));
        // E♭ major: B♭4, E♭5, A♭4.
        let mut e = staff();
        flat(&mut e, 36, row(4));
        flat(&mut e, 44, row(1));
        flat(&mut e, 52, row(5));
        assert_eq!(read_key_signature(&e).map(|k| k.fifths), Some(-3));
        // F major: a lone flat, told from a sharp by its shape.
        let mut f = staff();
        flat(&mut f, 36, row(4));
        assert_eq!(read_key_signature(&f).map(|k| k.fifths), Some(-1));
        // G major: a lone sharp.
        let mut g = staff();
        sharp(&mut g, 36, row(0));
        assert_eq!(read_key_signature(&g).map(|k| k.fifths), Some(1));
        // A stemmed note (head 1.2 s, stem 3.5 s) after the clef is not an accidental.
        let mut n = staff();
        fill(&mut n, 38, row(4) - 3, 8, 6);
        fill(&mut n, 45, row(4) - 25, 1, 25);
        assert_eq!(read_key_signature(&n).map(|k| k.fifths), Some(0));
        // No staff, no reading.
        assert_eq!(read_key_signature(&Raster::white(240, 120, 1)), None);
    }

    #[test]
    fn key_names_map_to_the_circle_of_fifths() {
        for (k, f) in [
            ("C major", 0),
            ("A minor", 0),
            ("G major", 1),
            ("E minor", 1),
            ("B-flat major", -2),
            ("G minor", -2),
            ("F-sharp minor", 3),
            ("C-sharp minor", 4),
            ("A-flat major", -4),
            ("E-flat major", -3),
            ("B major", 5),
            ("C# major", 7),
            ("Cb major", -7),
            ("F", -1),
            ("d minor", -1),
            ("E♭ major", -3),
        ] {
            assert_eq!(key_fifths(k), Some(f), "{k}");
        }
        for bad in [
            "",
            "H major",
            "C dorian",
            "G-sharp major sharp",
            "A-sharp major",
        ] {
            assert_eq!(key_fifths(bad), None, "{bad}");
        }
    }
}
