//! Training as a library call (what `scorelab train` runs): a vector run on an `.npy`
//! file resumes to more steps, a restated setting must agree, a changeable one is
//! applied and said, and `config.toml` is written beside the checkpoint.

use std::sync::Mutex;

use burn::tensor::Device;
use score_train::run::RunMode;
use scorelab_run::{TrainSpec, train_run};

fn points(dir: &std::path::Path) -> String {
    let p = dir.join("points.npy");
    let data: Vec<f64> = (0..64)
        .map(|i| ((i * 37) % 17) as f64 / 8.0 - 1.0)
        .collect();
    score_io::npy::write_npy_f64(&p, &[32, 2], &data).unwrap();
    p.display().to_string()
}

#[test]
fn a_vector_run_resumes_and_keeps_what_a_resume_cannot_change() {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::flex();
    let notes = Mutex::new(Vec::<String>::new());
    let note = |l: &str| notes.lock().unwrap().push(l.into());
    let mut spec = TrainSpec {
        out: dir.path().join("run"),
        data: Some(points(dir.path())),
        steps: Some(3),
        batch_size: Some(8),
        ..TrainSpec::default()
    };
    let r = train_run(&spec, &dev, &note).unwrap();
    assert_eq!(r.step, 3);
    assert!(r.loss.is_finite());
    let toml = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    assert!(
        toml.contains("steps = 3") && toml.contains("batch_size = 8"),
        "{toml}"
    );
    spec.mode = RunMode::Resume;
    spec.steps = Some(5);
    spec.batch_size = Some(4);
    let e = train_run(&spec, &dev, &note).unwrap_err().to_string();
    assert!(
        e.contains("--batch-size 4") && e.contains("--resume cannot change it"),
        "{e}"
    );
    spec.batch_size = None;
    spec.lr = Some(5e-4);
    assert_eq!(train_run(&spec, &dev, &note).unwrap().step, 5);
    let said = notes.lock().unwrap().join("\n");
    assert!(
        said.contains("at step 3 with lr") && said.contains("steps 3 -> 5"),
        "{said}"
    );
}
