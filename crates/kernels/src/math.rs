//! The element-wise math the kernels share: e^x, sigmoid and SiLU′ in f32 without
//! library calls (so that loops over them vectorise), and borrowing a burn-flex
//! tensor's values.

use burn::backend::flex::FlexTensor;

/// e^x in f32 without a library call, so that loops over it vectorise (also on
/// baseline x86-64, where `floor` is one): x = k·ln 2 + r with |r| ≤ ln 2 / 2, k
/// rounded to nearest by adding 1.5·2²³ (which leaves k in the sum's low mantissa
/// bits), ln 2 split in two parts so that r is exact to f32, e^r by the degree-6
/// minimax polynomial of Cephes' `expf`, and 2^k from the exponent bits. Inputs are
/// clamped to [−87, 88] (e^−87 ≈ 1.6e−38 is the smallest normal result); NaN stays
/// NaN. Relative error below 2.4e−7 on the clamped range (tests).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const SHIFT: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + SHIFT;
    let k = t - SHIFT;
    let ki = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let r = x - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    // k ∈ [−126, 127] after the clamp: a normal power of two. A NaN input gives some
    // power of two here and `er` carries the NaN.
    f32::from_bits(((ki + 127) as u32 & 0xff) << 23) * er
}

/// 1 / (1 + e^−x).
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-x))
}

/// SiLU′(x) = s·(1 + x(1 − s)), s = sigmoid(x), with 1 − s taken as e^−x·s: computed
/// as 1 − s it would lose every digit where s rounds to 1 (x above about 16), and x
/// times that error is not small.
#[inline(always)]
pub fn silu_grad_f32(x: f32) -> f32 {
    let e = exp_f32(-x);
    let s = 1.0 / (1.0 + e);
    s * (1.0 + x * (e * s))
}

/// `f()` compiled for, and run on, the best instruction set this CPU has among those
/// pulp dispatches to (AVX2 + FMA on x86-64 where present): what `f` inlines (every
/// function below is `#[inline(always)]`) vectorises 8 lanes wide even in a
/// baseline x86-64 build. The same operations in the same order on every path: Rust
/// contracts no multiply and add into an FMA, so results are bit-identical.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}

/// The f32 values of `t`, borrowed when its layout is contiguous (no copy), else
/// copied out.
pub(crate) fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .into_data()
                .try_into_vec::<f32>()
                .expect("an f32 tensor"),
        ),
    }
}

/// Σ f(v) over `v` in a fixed order whatever the thread count: runs of 256 values are
/// summed in f32 over eight interleaved lanes (a loop the compiler vectorises, each
/// lane adding 32 terms, so within about 32·2⁻²⁴ ≈ 2e−6 of the run's Σ|term|), and
/// the runs' sums are added in f64.
#[inline(always)]
pub(crate) fn sum_lanes(v: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut total = 0.0f64;
    for run in v.chunks(256) {
        let mut acc = [0.0f32; 8];
        let chunks = run.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for j in 0..8 {
                acc[j] += f(c[j]);
            }
        }
        for (j, &t) in tail.iter().enumerate() {
            acc[j] += f(t);
        }
        total += acc.iter().map(|&a| a as f64).sum::<f64>();
    }
    total
}
