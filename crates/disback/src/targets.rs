//! The targets of the DisBack study and tests: the spec's 2-D ring of eight Gaussians,
//! the 16-D mixture, and the MLP used for teachers, generators and fake scores.

use score_core::mixture::GaussianMixture;
use score_core::tensor::stream_rng;
use score_nn::mlp::MlpConfig;

/// The spec's 2-D mixture: 8 modes on a circle of radius 4, standard deviation 0.15,
/// weights proportional to 1, 2, …, 8 (counter-clockwise from angle 0).
pub fn ring8() -> GaussianMixture {
    let means = (0..8)
        .map(|k| {
            let a = std::f64::consts::TAU * k as f64 / 8.0;
            vec![4.0 * a.cos(), 4.0 * a.sin()]
        })
        .collect();
    GaussianMixture::new(
        (1..=8).map(f64::from).collect(),
        means,
        vec![vec![0.0225; 2]; 8],
    )
    .expect("valid mixture")
}

/// The 16-D mixture: 8 components with means drawn from N(0, 3²·I) (seed 16),
/// standard deviation 0.3, the same unequal weights as [`ring8`].
pub fn mix16() -> GaussianMixture {
    let r = GaussianMixture::random(8, 16, 3.0, 0.09, &mut stream_rng(16, 0, 0)).expect("valid");
    GaussianMixture::new((1..=8).map(f64::from).collect(), r.means, r.variances).expect("valid")
}

/// The MLP of teachers, generators and fake scores in the study.
pub fn mlp(dim: usize) -> MlpConfig {
    MlpConfig::new(dim).with_hidden(128).with_blocks(2)
}
