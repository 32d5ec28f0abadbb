//! The distillation run against what can be known exactly: the gradient at step 0, the
//! recorded path, the target schedules, exact resume.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Device;
use disback::config::{DistillConfig, Method, Order};
use disback::distill::{Distiller, RunOutput};
use disback::path::record_path;
use disback::teacher::Teacher;
use score_core::Precond;
use score_nn::mlp::{MlpConfig, MlpDenoiser};
use score_train::checkpoint::collect_params;
use score_train::train::clip_global_norm;

fn net(seed: u64) -> MlpDenoiser {
    let dev = Device::flex().autodiff();
    dev.seed(seed);
    MlpConfig::new(2)
        .with_hidden(16)
        .with_blocks(1)
        .with_seed(seed)
        .init(&dev)
}

fn cfg(method: Method, steps: usize) -> DistillConfig {
    let mut c = DistillConfig::new(method, steps, Precond::edm(1.0), 3);
    for t in [&mut c.generator, &mut c.fake] {
        t.batch_size = 16;
        t.lr = 1e-3;
        t.checkpoint_every = 2;
        t.log_every = 1;
    }
    c.fake_updates = 2;
    c.path.checkpoints = 3;
    c.path.steps = 6;
    c.switch_every = 2;
    c
}

/// A run of `cfg` on 2-D samples from `g0` with `teacher`.
fn start<'a>(
    teacher: &'a Teacher<'a, 2, MlpDenoiser>,
    g0: MlpDenoiser,
    cfg: &DistillConfig,
    out: &RunOutput,
) -> Distiller<'a, 2, MlpDenoiser> {
    Distiller::new(teacher, g0, &[2], cfg, serde_json::Value::Null, out).unwrap()
}

fn params(n: &MlpDenoiser) -> Vec<Vec<f32>> {
    collect_params(n)
        .into_iter()
        .map(|(_, _, d)| d.try_to_vec::<f32>().unwrap())
        .collect()
}

fn grad_norm(n: &MlpDenoiser, mut g: GradientsParams) -> f64 {
    clip_global_norm(n, &mut g, None).unwrap()
}

/// The baseline starts s_φ at the teacher, so at step 0 D_fake = D_target bit for bit
/// and the pseudo-gradient, hence every parameter gradient, is exactly zero (the
/// mismatch DisBack targets). After one step the fake score has moved and it is not.
#[test]
fn at_step_zero_with_the_fake_score_at_the_teacher_the_gradient_is_exactly_zero() {
    let t = net(0);
    let teacher = Teacher::network(t.clone(), Precond::edm(1.0));
    let mut d = start(
        &teacher,
        t,
        &cfg(Method::Baseline, 3),
        &RunOutput::default(),
    );
    let (index, g) = d.generator_gradients(0).unwrap();
    assert_eq!(index, 0);
    assert_eq!(grad_norm(&d.generator(), g), 0.0);
    let st = d.train_step().unwrap();
    assert_eq!(st.generator_grad_norm, 0.0);
    let (_, g) = d.generator_gradients(1).unwrap();
    assert!(grad_norm(&d.generator(), g) > 0.0);
    // DisBack's warm start: s_φ = s'_N ≠ teacher, a gradient from the first step.
    let t = net(0);
    let teacher = Teacher::network(t.clone(), Precond::edm(1.0));
    let d = start(&teacher, t, &cfg(Method::Disback, 3), &RunOutput::default());
    let (_, g) = d.generator_gradients(0).unwrap();
    assert!(grad_norm(&d.generator(), g) > 0.0);
}

/// Stage 1 gives N + 1 entries, s'_0 the teacher; s_φ starts at s'_N; each order walks
/// the path as documented, K steps per target, and ends at the teacher.
#[test]
fn the_path_has_n_plus_one_entries_and_each_order_walks_it() {
    let t = net(1);
    let teacher = Teacher::network(t.clone(), Precond::edm(1.0));
    let c = cfg(Method::Disback, 8);
    let path = record_path(&teacher, &t.valid(), &[2], &c, &RunOutput::default()).unwrap();
    assert_eq!(path.len(), c.path.checkpoints + 1);
    assert_eq!(path.steps, c.path_steps());
    assert_ne!(
        params(&path.nets[2]),
        params(&teacher.eval),
        "s'_N has moved"
    );
    let expect = [
        (Order::Backward, vec![2, 2, 1, 1, 0, 0, 0, 0]),
        (Order::Forward, vec![1, 1, 2, 2, 0, 0, 0, 0]),
        (Order::WarmStartOnly, vec![0; 8]),
        (Order::Interpolate, vec![2, 2, 1, 1, 0, 0, 0, 0]),
    ];
    for (order, want) in expect {
        let mut c = c.clone();
        c.order = order;
        let mut d = start(&teacher, t.clone(), &c, &RunOutput::default());
        // s_φ starts at s'_N (the same recording: every draw is seeded).
        assert_eq!(params(&d.fake()), params(&path.nets[2]), "{order:?}");
        let got: Vec<usize> = (0..8).map(|_| d.train_step().unwrap().target).collect();
        assert_eq!(got, want, "{order:?}");
    }
    // Shuffled visits s'_1 … s'_{N−1} once each, then the teacher.
    let mut c = c.clone();
    c.order = Order::Shuffled;
    let mut d = start(&teacher, t.clone(), &c, &RunOutput::default());
    let mut got: Vec<usize> = (0..8).map(|_| d.train_step().unwrap().target).collect();
    assert_eq!(&got[4..], &[0, 0, 0, 0]);
    got.truncate(4);
    got.sort();
    assert_eq!(got, vec![1, 1, 2, 2]);
}

/// A run stopped after a checkpoint and resumed from its folder ends with the same
/// generator, fake score and EMA, bit for bit, as one that never stopped.
#[test]
fn resume_equals_an_uninterrupted_run() {
    let t = net(2);
    let teacher = Teacher::network(t.clone(), Precond::edm(1.0));
    let c = cfg(Method::Disback, 6);
    let whole = tempfile::tempdir().unwrap();
    let parts = tempfile::tempdir().unwrap();
    let out = |d: &tempfile::TempDir, stop| RunOutput {
        dir: Some(d.path().to_path_buf()),
        progress: false,
        stop_after: stop,
    };
    let mut a = start(&teacher, t.clone(), &c, &out(&whole, None));
    a.run(&out(&whole, None), &mut |_, _| Ok(())).unwrap();
    let mut b = start(&teacher, t.clone(), &c, &out(&parts, Some(3)));
    b.run(&out(&parts, Some(3)), &mut |_, _| Ok(())).unwrap();
    assert_eq!(b.step(), 3);
    drop(b);
    let mut b = start(&teacher, t.clone(), &c, &out(&parts, None));
    assert_eq!(
        b.step(),
        3,
        "resumed from the checkpoint written at the stop"
    );
    b.run(&out(&parts, None), &mut |_, _| Ok(())).unwrap();
    assert_eq!(b.step(), 6);
    assert_eq!(params(&a.generator()), params(&b.generator()));
    assert_eq!(params(&a.fake()), params(&b.fake()));
    assert_eq!(params(a.generator_ema()), params(b.generator_ema()));
    // The log has each step once.
    let log = std::fs::read_to_string(parts.path().join("distill.jsonl")).unwrap();
    let steps: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, (1..=6).collect::<Vec<_>>());
    // Other settings on the same folder are refused.
    let mut other = c.clone();
    other.fake_updates = 3;
    let err = Distiller::new(
        &teacher,
        t,
        &[2],
        &other,
        serde_json::Value::Null,
        &out(&parts, None),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("other settings"), "{err}");
}
