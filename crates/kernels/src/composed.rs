//! The fused operation as a composition of burn's primitives, for any backend: the
//! default bodies of [`crate::GroupNormKernel`]. Same function as the burn-flex kernel,
//! one operation per primitive.

use burn::backend::{Backend, Scalar, TensorMetadata, tensor::FloatTensor};
use burn::tensor::Shape;

/// The γ, β and input gradients of [`crate::GroupNormKernel::gn_backward`].
pub struct GnGrads<B: Backend> {
    /// ∂L/∂x, the input's shape.
    pub x: FloatTensor<B>,
    /// ∂L/∂γ, `[C]`.
    pub gamma: FloatTensor<B>,
    /// ∂L/∂β, `[C]`.
    pub beta: FloatTensor<B>,
}

impl<B: Backend> GnGrads<B> {
    /// (∂x, ∂γ, ∂β).
    pub fn into_tuple(self) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
        (self.x, self.gamma, self.beta)
    }
}

/// `[N, G, M]`: the batch, the groups, the values per (item, group).
fn grouped(shape: &Shape, groups: usize) -> [usize; 3] {
    let n = shape[0];
    [n, groups, shape.num_elements() / (n * groups).max(1)]
}

/// `[1, C, 1, …]` of rank `rank`.
fn per_channel(c: usize, rank: usize) -> Shape {
    let mut dims = vec![1; rank];
    dims[1] = c;
    Shape::from(dims)
}

/// `v` (`[C]`) broadcast to `shape`.
fn channel_map<B: Backend>(v: FloatTensor<B>, shape: &Shape) -> FloatTensor<B> {
    let v = B::float_reshape(v, per_channel(shape[1], shape.num_dims()));
    B::float_expand(v, shape.clone())
}

/// x̂ = (x − μ)/√(σ² + ε) as `[N, G, M]`, and 1/√(σ² + ε) as `[N, G, 1]`.
fn normalized<B: Backend>(
    x: FloatTensor<B>,
    groups: usize,
    eps: f64,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let g3 = Shape::from(grouped(&x.shape(), groups).to_vec());
    let x3 = B::float_reshape(x, g3.clone());
    let mean = B::float_expand(B::float_mean_dim(x3.clone(), 2), g3.clone());
    let xc = B::float_sub(x3, mean);
    let var = B::float_mean_dim(B::float_mul(xc.clone(), xc.clone()), 2);
    let rstd = B::float_recip(B::float_sqrt(B::float_add_scalar(var, Scalar::from(eps))));
    let a = B::float_mul(xc, B::float_expand(rstd.clone(), g3));
    (a, rstd)
}

/// γ·x̂ + β at `shape` from x̂ as `[N, G, M]`.
fn affine<B: Backend>(
    a3: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    shape: &Shape,
) -> FloatTensor<B> {
    let a = B::float_reshape(a3, shape.clone());
    let scaled = B::float_mul(a, channel_map::<B>(gamma, shape));
    B::float_add(scaled, channel_map::<B>(beta, shape))
}

/// See [`crate::GroupNormKernel::gn_forward`].
pub fn forward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    groups: usize,
    eps: f64,
    silu: bool,
) -> FloatTensor<B> {
    let shape = x.shape();
    let (a3, _) = normalized::<B>(x, groups, eps);
    let z = affine::<B>(a3, gamma, beta, &shape);
    match silu {
        true => B::float_mul(z.clone(), B::sigmoid(z)),
        false => z,
    }
}

/// The sum of `t` over every axis but the channel axis 1, as `[C]`.
fn channel_sum<B: Backend>(t: FloatTensor<B>, shape: &Shape) -> FloatTensor<B> {
    let (n, c) = (shape[0], shape[1]);
    let rest = shape.num_elements() / (n * c).max(1);
    let t = B::float_reshape(t, Shape::from(vec![n, c, rest]));
    let t = B::float_sum_dim(B::float_sum_dim(t, 2), 0);
    B::float_reshape(t, Shape::from(vec![c]))
}

/// See [`crate::GroupNormKernel::gn_backward`]. With z = γ·x̂ + β and dz the gradient
/// at z (times SiLU′(z) = s(1 + z(1 − s)), s = sigmoid(z), when `silu`):
/// ∂γ = Σ dz·x̂, ∂β = Σ dz, and with g = γ·dz,
/// ∂x = (g − mean_group(g) − x̂·mean_group(g·x̂)) / √(σ² + ε).
pub fn backward<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    grad: FloatTensor<B>,
    groups: usize,
    eps: f64,
    silu: bool,
) -> GnGrads<B> {
    let shape = x.shape();
    let g3 = Shape::from(grouped(&shape, groups).to_vec());
    let (a3, rstd) = normalized::<B>(x, groups, eps);
    let dz = match silu {
        true => {
            let z = affine::<B>(a3.clone(), gamma.clone(), beta, &shape);
            crate::activation::composed_backward::<B>(z, grad)
        }
        false => grad,
    };
    let a = B::float_reshape(a3.clone(), shape.clone());
    let d_gamma = channel_sum::<B>(B::float_mul(dz.clone(), a), &shape);
    let d_beta = channel_sum::<B>(dz.clone(), &shape);
    let g = B::float_reshape(
        B::float_mul(dz, channel_map::<B>(gamma, &shape)),
        g3.clone(),
    );
    let mean_g = B::float_expand(B::float_mean_dim(g.clone(), 2), g3.clone());
    let mean_ga = B::float_mean_dim(B::float_mul(g.clone(), a3.clone()), 2);
    let proj = B::float_mul(a3, B::float_expand(mean_ga, g3.clone()));
    let centred = B::float_sub(B::float_sub(g, mean_g), proj);
    let dx = B::float_mul(centred, B::float_expand(rstd, g3));
    GnGrads {
        x: B::float_reshape(dx, shape),
        gamma: d_gamma,
        beta: d_beta,
    }
}
