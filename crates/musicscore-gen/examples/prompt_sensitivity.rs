//! How much a text-to-score model's denoiser output moves when one field of the prompt
//! changes: for noise inputs x at several σ, the RMS of D(x; σ, p) − D(x; σ, base)
//! for prompts p that change the key or the instrumentation of `base`, in units of the
//! RMS of D(x; σ, base) − D(x; σ, ∅) (the whole prompt's effect). Over the whole
//! image and over its left eighth, where a system's clefs and key signatures are.
//! First, what the network is given: the pooled embeddings' cosine similarity to the
//! base prompt's, and the RMS difference of the token states (over the longer
//! prompt's tokens) relative to the base's RMS.
//!
//! ```text
//! cargo run --release -p musicscore-gen --example prompt_sensitivity -- \
//!     data/checkpoints/musicscore-latent.safetensors
//! ```

use std::path::Path;

use musicscore_gen::generator::TextModel;
use score_core::Denoiser;
use score_core::burn::tensor::{Device, Tensor};
use score_core::tensor::{randn, stream_rng, to_vec_f32};
use score_nn::Preconditioned;
use score_nn::text::TextEncoder;

const N: usize = 16;

fn prompt(inst: &str, key: &str) -> String {
    format!("a music score, instrumentation is {inst}, key is {key}")
}

/// RMS of `a − b` over all of each `[n, c, h, w]` image and over its left eighth.
fn rms(a: &[f32], b: &[f32], [c, h, w]: [usize; 3]) -> (f64, f64) {
    let (mut all, mut left, mut n_left) = (0.0f64, 0.0f64, 0usize);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (*x as f64 - *y as f64).powi(2);
        all += d;
        if i % w < w.div_ceil(8) {
            left += d;
            n_left += 1;
        }
    }
    let _ = (c, h);
    ((all / a.len() as f64).sqrt(), (left / n_left as f64).sqrt())
}

/// What the network is given for each prompt against `all[0]`: the pooled embeddings'
/// cosine, and the token states' RMS difference relative to the first's RMS.
fn print_inputs(enc: &TextEncoder, all: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let enc_all = enc.encode(all)?;
    let (tok, pooled) = (to_vec_f32(enc_all.tokens)?, to_vec_f32(enc_all.pooled)?);
    let (seq, dim) = (tok.len() / all.len() / 384, 384);
    let len = |i: usize| enc_all.ids[i].iter().filter(|&&t| t != 0).count();
    println!("| prompt | pooled cosine to base | token states: RMS difference / base's RMS |");
    println!("|---|---|---|");
    for (i, p) in all.iter().enumerate().skip(1) {
        let l = len(i).max(len(0));
        let (a, b) = (&tok[..l * dim], &tok[i * seq * dim..][..l * dim]);
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| ((x - y) as f64).powi(2))
            .sum::<f64>();
        let n = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
        let cos: f64 = (0..dim)
            .map(|k| pooled[k] as f64 * pooled[i * dim + k] as f64)
            .sum();
        println!("| {p} | {cos:.4} | {:.3} |", (d / n).sqrt());
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: prompt_sensitivity CHECKPOINT")?;
    let dev = Device::flex();
    let model = TextModel::load(Path::new(&path), &dev)?;
    let enc = TextEncoder::load(None, &dev)?;
    let base = prompt("violin", "D major");
    let others = [
        ("key", prompt("violin", "G major")),
        ("key", prompt("violin", "B-flat major")),
        ("key", prompt("violin", "F major")),
        ("instrumentation", prompt("piano", "D major")),
        (
            "instrumentation",
            prompt("2 violins, viola, cello", "D major"),
        ),
    ];
    let all: Vec<&str> = std::iter::once(base.as_str())
        .chain(others.iter().map(|(_, p)| p.as_str()))
        .collect();
    let bank = model.record.prompt_bank(&enc, all.iter().copied())?;
    print_inputs(&enc, &all)?;
    let shape = model.record.shape();
    let den = Preconditioned::new(&model.net, model.precond);
    println!("checkpoint {path}, step {}; base: {base}", model.meta.step);
    println!("| σ | change | prompt | RMS whole / base's prompt effect | left eighth / same |");
    println!("|---|---|---|---|---|");
    for sigma in [0.5, 2.0, 8.0] {
        let x: Tensor<4> = randn(
            [N, shape[0], shape[1], shape[2]],
            &mut stream_rng(7, 0, 0),
            &dev,
        )
        .mul_scalar(sigma);
        let s = Tensor::<1>::full([N], sigma, &dev);
        let d = |p: Option<&str>| -> Result<Vec<f32>, Box<dyn std::error::Error>> {
            let cond = match p {
                Some(p) => Some(bank.conditioning(&vec![p; N], &dev)?),
                None => None,
            };
            Ok(to_vec_f32(den.denoise(
                x.clone(),
                s.clone(),
                cond.as_ref(),
            ))?)
        };
        let (d_base, d_none) = (d(Some(&base))?, d(None)?);
        let effect = rms(&d_base, &d_none, shape);
        for (what, p) in &others {
            let r = rms(&d(Some(p))?, &d_base, shape);
            let field = p.rsplit_once(", key is ").map_or(p.as_str(), |(i, k)| {
                if *what == "key" {
                    k
                } else {
                    i.trim_start_matches("a music score, instrumentation is ")
                }
            });
            println!(
                "| {sigma} | {what} | {field} | {:.3} | {:.3} |",
                r.0 / effect.0,
                r.1 / effect.1
            );
        }
    }
    Ok(())
}
