//! Small helpers between burn tensors, host arrays and seeded random numbers.
//!
//! All randomness in score-core is drawn on the host from [`rand`] generators seeded by
//! the caller, then uploaded: the same seed gives the same numbers on every device.

use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Result, ScoreError};

/// A 1-D tensor of `batch` copies of `sigma`.
pub fn sigma_tensor(sigma: f64, batch: usize, device: &Device) -> Tensor<1> {
    Tensor::<1>::full([batch], sigma as f32, device)
}

/// A 1-D tensor from host values.
pub fn tensor1(values: &[f64], device: &Device) -> Tensor<1> {
    let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    Tensor::<1>::from_data(TensorData::new(v, [values.len()]), device)
}

/// Reshape a per-sample vector `[B]` to `[B, 1, …, 1]` of rank `D` for broadcasting.
pub fn per_sample<const D: usize>(v: Tensor<1>) -> Tensor<D> {
    let b = v.dims()[0];
    let mut shape = [1usize; D];
    shape[0] = b;
    v.reshape(shape)
}

/// Standard normal noise of the given shape from a host generator.
pub fn randn<const D: usize>(shape: [usize; D], rng: &mut StdRng, device: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    Tensor::<D>::from_data(TensorData::new(v, shape), device)
}

/// Copy a float tensor to the host as `f32`.
pub fn to_vec_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ScoreError::TensorData(format!("{e:?}")))
}

/// How many elements of `t` are NaN or infinite (counted on the device).
pub fn count_non_finite<const D: usize>(t: &Tensor<D>) -> usize {
    let n: i64 = t.clone().is_finite().bool_not().int().sum().into_scalar();
    n as usize
}

/// `Ok` when every element of `t` is finite, else [`ScoreError::NonFiniteResult`]
/// naming `what` with `hint`.
pub fn ensure_finite<const D: usize>(t: &Tensor<D>, what: &str, hint: &str) -> Result<()> {
    match count_non_finite(t) {
        0 => Ok(()),
        count => Err(ScoreError::NonFiniteResult {
            what: what.into(),
            count,
            total: t.shape().num_elements(),
            hint: hint.into(),
        }),
    }
}

/// Copy a float tensor to the host as `f64`.
pub fn to_vec_f64<const D: usize>(t: Tensor<D>) -> Result<Vec<f64>> {
    t.into_data()
        .convert::<f64>()
        .try_into_vec::<f64>()
        .map_err(|e| ScoreError::TensorData(format!("{e:?}")))
}

/// A tensor from host `f64` values with the given shape and float dtype (use
/// `DType::F64` for float64 computations on backends that support it).
pub fn from_f64_as<const D: usize>(
    values: &[f64],
    shape: [usize; D],
    dtype: DType,
    device: &Device,
) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values.to_vec(), shape), (device, dtype))
}

/// A tensor from host `f32` values with the given shape.
pub fn from_f32<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values, shape), device)
}

/// A tensor from host `f64` values with the given shape (stored as `f32`).
pub fn from_f64<const D: usize>(values: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    from_f32(values.iter().map(|&x| x as f32).collect(), shape, device)
}

/// A generator for one (seed, stream, counter) triple. Counter-based seeding makes
/// every training step's randomness a pure function of the run seed and the step,
/// which is what lets a resumed run continue exactly as if it had never stopped.
pub fn stream_rng(seed: u64, stream: u64, counter: u64) -> StdRng {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    StdRng::seed_from_u64(splitmix(splitmix(splitmix(seed) ^ stream) ^ counter))
}

/// Standard normal noise with the shape, dtype and device of `like`.
pub fn randn_like<const D: usize>(like: &Tensor<D>, rng: &mut StdRng) -> Tensor<D> {
    let shape: [usize; D] = like.dims();
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    from_f64_as(&v, shape, like.dtype(), &like.device())
}

/// Tweedie on host rows: the score (D − x)/σ² from denoised values `d` at states `x`.
pub fn score_from_denoised(d: &[f64], x: &[f64], sigma: f64) -> Vec<f64> {
    d.iter()
        .zip(x)
        .map(|(d, xi)| (d - xi) / (sigma * sigma))
        .collect()
}

/// Evaluate a host (float64) denoiser `f(rows, σ)` on a batch tensor: rows that share a
/// σ (the samplers' case) go to `f` together, and the result comes back in `x`'s shape,
/// dtype and device. For closed-form models that compute on the host.
pub fn host_denoise<const D: usize>(
    x: Tensor<D>,
    sigma: Tensor<1>,
    f: impl Fn(&[f64], f64) -> Vec<f64>,
) -> Result<Tensor<D>> {
    let shape = x.shape();
    let b = x.dims()[0];
    let (device, dtype) = (x.device(), x.dtype());
    let xs = to_vec_f64(x)?;
    let ss = to_vec_f64(sigma)?;
    if ss.len() != b {
        return Err(ScoreError::Shape {
            what: "sigma".into(),
            expected: format!("[{b}]"),
            got: format!("[{}]", ss.len()),
        });
    }
    let d = xs.len() / b.max(1);
    let mut out = Vec::with_capacity(xs.len());
    let mut start = 0;
    while start < b {
        let mut end = start + 1;
        while end < b && ss[end] == ss[start] {
            end += 1;
        }
        out.extend(f(&xs[start * d..end * d], ss[start]));
        start = end;
    }
    Ok(from_f64_as(&out, [b, d], dtype, &device).reshape(shape))
}
