//! EDM's augmentation pipeline against EDM's own `AugmentPipe`: the fixtures
//! (`xtask/fixtures/edm_augment.py`) ran NVlabs/edm's `training/augment.py` with
//! `train.py`'s geometric set and recorded every random number it drew; here the same
//! draws rebuild each sample's transform, and the images and the 9 labels must match
//! EDM's float64 output.
//!
//! Bound on the images: both sides compute in f64. Each output pixel passes four
//! 12-tap filters and one 4-tap bilinear step (52 multiply-adds along its path), each
//! stage growing an error by at most Σ|h| ≈ 1.9 for the sym6 filter, so the two
//! orders of summation differ by at most about 52 · 2⁻⁵³ · 1.9⁴ ≈ 8e-14 of max|x|;
//! the sampling positions (matrix products of coordinates up to ~100 px) add about
//! as much. 1e-12 of max|out| is ten times that, and 4 000 times below EDM's own
//! float32 error (stored in the fixture, about 4e-6). Labels: both compute in f64 and
//! round to f32, so they may differ by one f32 rounding (2⁻²³ relative).

use safetensors::SafeTensors;
use scoreaug::edm_pipe::{Draws, EdmPipe};

struct Case {
    shape: [usize; 4],
    p: f64,
    float32_error: f64,
    tensors: Vec<(String, Vec<f64>)>,
}

fn load(name: &str) -> Case {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/edm_augment");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{dir}/{name}.json")).unwrap()).unwrap();
    let bytes = std::fs::read(format!("{dir}/{name}.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let data = v
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (k, data)
        })
        .collect();
    let shape: Vec<usize> = serde_json::from_value(meta["shape"].clone()).unwrap();
    Case {
        shape: shape.try_into().unwrap(),
        p: meta["p"].as_f64().unwrap(),
        float32_error: meta["float32_error"].as_f64().unwrap(),
        tensors,
    }
}

impl Case {
    fn get(&self, k: &str) -> &[f64] {
        &self.tensors.iter().find(|(n, _)| n == k).unwrap().1
    }

    /// Sample i's draws, from EDM's call order (xflip: randint, rand; yflip: randint,
    /// rand; scale: randn, rand; rotate: rand, rand; aniso: randn, rand, rand, rand;
    /// translate: randn [2, N], rand).
    fn draws(&self, i: usize) -> Draws {
        let n = self.shape[0];
        let d = |k: usize| self.get(&format!("draw.{k:02}"));
        Draws {
            xflip: (d(0)[i] == 1.0, d(1)[i]),
            yflip: (d(2)[i] == 1.0, d(3)[i]),
            scale: (d(4)[i], d(5)[i]),
            rotate: (d(6)[i], d(7)[i]),
            aniso: [d(8)[i], d(9)[i], d(10)[i], d(11)[i]],
            translate: ([d(12)[i], d(12)[n + i]], d(13)[i]),
        }
    }
}

fn check(name: &str) {
    let case = load(name);
    let [n, c, h, w] = case.shape;
    let pipe = EdmPipe {
        p: case.p,
        ..EdmPipe::default()
    };
    let params: Vec<_> = (0..n).map(|i| pipe.params(&case.draws(i))).collect();
    let applied = params
        .iter()
        .filter(|g| g.scale != 0.0 || g.rotate != 0.0)
        .count();
    assert!(
        applied > 0,
        "{name}: the fixture should transform some samples"
    );
    let out = pipe.apply(case.get("images"), &params, [c, h, w]).unwrap();
    let want = case.get("out64");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = out
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    println!(
        "{name}: error {err:.2e} of max|out| (EDM float32: {:.2e})",
        case.float32_error
    );
    assert!(err < 1e-12, "{name}: error {err:e}");
    let labels: Vec<f32> = params.iter().flat_map(|g| pipe.labels(g)).collect();
    for (k, (a, b)) in labels.iter().zip(case.get("labels")).enumerate() {
        let tol = (*b as f32).abs() * 2f32.powi(-23);
        assert!(
            (a - *b as f32).abs() <= tol,
            "{name}: label {k}: {a} vs {b}"
        );
    }
    assert_eq!(labels.len(), case.get("labels").len());
}

#[test]
fn edm_pipeline_matches_edm_on_a_gray_28x28_batch() {
    check("gray28");
}

#[test]
fn edm_pipeline_matches_edm_on_a_non_square_rgb_batch() {
    check("rgb12x16");
}
