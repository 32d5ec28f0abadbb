//! Gram construction and fit for n = 4096 DSM triples (d = 1, z ∈ R³): the analytic
//! NTK Gram matrix on all cores, and the kernel ridge fit (Cholesky of H + NγI).

use criterion::{Criterion, criterion_group, criterion_main};
use ntk_theory::dsm::{Target, Triples};
use ntk_theory::kernel_gd::alpha_krr;
use ntk_theory::kernels::Kernel;

fn ntk(c: &mut Criterion) {
    let mut g = c.benchmark_group("ntk-n4096");
    g.sample_size(10);
    let tr = Triples::draw(
        &Target::Gaussian {
            dim: 1,
            mean: 1.0,
            var: 0.25,
        },
        4096,
        0.01,
        2.0,
        0,
    );
    g.bench_function("gram_ntk1", |b| {
        b.iter(|| Kernel::Ntk1.gram(tr.z.view()).expect("gram"))
    });
    let h = Kernel::Ntk1.gram(tr.z.view()).expect("gram");
    g.bench_function("fit_ridge_cholesky", |b| {
        b.iter(|| alpha_krr(h.view(), tr.y.view(), 1e-6).expect("fit"))
    });
    g.finish();
}

criterion_group!(benches, ntk);
criterion_main!(benches);
