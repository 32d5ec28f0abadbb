//! Sampling as a library call (what `scorelab sample` runs): the shipped demo
//! checkpoint with Heun, image by image with resume, and settings the checkpoint
//! cannot take refused by their flag.

use burn::tensor::Device;
use score_core::samplers::{HeunOptions, Sampler};
use score_core::sigmas::GridKind;
use score_train::pipeline::{Weights, shipped_checkpoint};
use scorelab_run::{GridSpec, RunError, SampleSpec, sample};

fn spec(out: &std::path::Path) -> SampleSpec {
    SampleSpec {
        checkpoint: shipped_checkpoint(),
        weights: Weights::Ema,
        n: 2,
        sampler: Some(Sampler::Heun(HeunOptions::default())),
        grid: Some(GridSpec {
            kind: GridKind::Karras,
            steps: 4,
            sigma_min: None,
            sigma_max: None,
            rho: None,
        }),
        ems: None,
        class: None,
        guidance: 1.0,
        noise: None,
        teleport: None,
        batch: None,
        out: out.to_path_buf(),
        seed: 3,
    }
}

#[test]
fn the_shipped_checkpoint_samples_with_heun_and_image_by_image() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::flex();
    let steps = std::sync::Mutex::new(Vec::new());
    let record = |i: u64, n: u64| steps.lock().unwrap().push((i, n));
    let r = sample(&spec(dir.path()), &dev, &record).unwrap();
    // Heun on 4 levels and σ = 0: 2N − 1 = 7 evaluations (the last step, to σ = 0, is
    // an Euler step), over 4 steps of progress.
    assert_eq!((r.nfe, r.network_calls, r.n), (7, 7, 2));
    assert!(dir.path().join("samples.npy").is_file() && dir.path().join("samples.png").is_file());
    assert!(steps.lock().unwrap().iter().all(|&(_, n)| n == 4));
    // Image by image: two PNGs; a second run keeps both and writes none.
    let mut s = spec(dir.path());
    s.batch = Some(1);
    let first = sample(&s, &dev, &|_, _| {}).unwrap().per_image.unwrap();
    assert_eq!((first.written, first.kept), (2, 0));
    assert!(first.images.join("000001.png").is_file());
    let again = sample(&s, &dev, &|_, _| {}).unwrap().per_image.unwrap();
    assert_eq!(
        (again.written, again.kept, again.samples_npy),
        (0, 2, false)
    );
}

#[test]
fn settings_the_checkpoint_cannot_take_are_refused_by_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::flex();
    let mut s = spec(dir.path());
    s.class = Some(1);
    let e = sample(&s, &dev, &|_, _| {}).unwrap_err();
    assert!(
        matches!(&e, RunError::Invalid(m) if m.starts_with("--class/--guidance")),
        "{e}"
    );
    let mut s = spec(dir.path());
    s.batch = Some(0);
    assert!(
        sample(&s, &dev, &|_, _| {})
            .unwrap_err()
            .to_string()
            .contains("--batch")
    );
    let mut s = spec(dir.path());
    let g = s.grid.as_mut().unwrap();
    (g.kind, g.rho) = (GridKind::Vp, Some(7.0));
    let e = sample(&s, &dev, &|_, _| {}).unwrap_err().to_string();
    assert!(
        e.contains("--rho applies to the karras grid, not vp"),
        "{e}"
    );
}
