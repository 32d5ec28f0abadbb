//! The study on data with an exact score (spec, "What a CPU-scale reproduction
//! measures"): the 2-D 8-mode mixture with unequal weights and a 16-D mixture, teachers
//! (A) exact and (B) an MLP trained by DSM, the baseline, DisBack and the controls, and
//! the exact measures along training. `cargo xtask experiment disback` drives it.

pub mod images;
pub mod records;
pub mod report;

use burn::tensor::Device;
use score_core::Precond;
use score_core::mixture::GaussianMixture;
use score_core::precond::sigma_data_of;
use score_core::tensor::{randn, stream_rng, to_vec_f64};
use score_nn::mlp::MlpDenoiser;
use score_train::train::{TrainConfig, TrainOutput, VectorData, train};

pub use crate::disback::images::ImageOptions;
pub use crate::disback::records::{MixtureRun, Point, Report, RunRecord, StudyOptions, Summary};
use disback::config::{DistillConfig, Method, Order};
use disback::distill::{Distiller, RunOutput};
use disback::error::{DisbackError, Result};
use disback::measures::{mixture_measures, score_mismatch};
pub use disback::targets::{mix16, mlp, ring8};
use disback::teacher::Teacher;

/// Teacher (B): an MLP trained by DSM on `n` samples of `gm` for `steps` steps, on the
/// autodiff device, with its preconditioning (σ_data from the samples).
pub fn fit_teacher(
    gm: &GaussianMixture,
    n: usize,
    steps: usize,
    seed: u64,
) -> Result<(MlpDenoiser, Precond)> {
    let dev = Device::flex().autodiff();
    let data = gm.sample(n, &mut stream_rng(seed, 0x7eac, 0));
    let precond = Precond::edm(sigma_data_of(data.iter().copied()));
    let cfg = TrainConfig {
        steps,
        batch_size: 256,
        lr: 2e-3,
        warmup_steps: steps / 20 + 1,
        precond,
        seed,
        ema_halflife_kimg: 50.0,
        checkpoint_every: steps,
        log_every: steps,
        ..TrainConfig::default()
    };
    dev.seed(seed);
    let net = mlp(gm.dim()).with_seed(seed).init(&dev);
    let data = VectorData {
        data,
        dim: gm.dim(),
    };
    let out = train(
        net,
        &data,
        &cfg,
        serde_json::Value::Null,
        &TrainOutput::default(),
        None,
    )?;
    // The EMA weights, back on the training device (the loader keeps their structure).
    let ema = score_train::checkpoint::copy_weights(&out.ema, out.net)?;
    Ok((ema, precond))
}

/// One arm of the study: a method with its target order and path length.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Arm {
    /// Name in the report.
    pub name: &'static str,
    /// Baseline or DisBack.
    pub method: Method,
    /// Stage 2's order.
    pub order: Order,
    /// N.
    pub checkpoints: usize,
}

/// The baseline, DisBack and the spec's controls.
pub fn arms() -> Vec<Arm> {
    let a = |name, method, order, checkpoints| Arm {
        name,
        method,
        order,
        checkpoints,
    };
    vec![
        a("baseline", Method::Baseline, Order::Backward, 8),
        a("disback", Method::Disback, Order::Backward, 8),
        a("warm-start-only", Method::Disback, Order::WarmStartOnly, 8),
        a("forward", Method::Disback, Order::Forward, 8),
        a("shuffled", Method::Disback, Order::Shuffled, 8),
        a("n1", Method::Disback, Order::Backward, 1),
        a("interpolate", Method::Disback, Order::Interpolate, 8),
    ]
}

/// Distil `teacher` (B; its exact counterpart `gm` serves as teacher A with
/// `run.exact_teacher`) with `arm` and `seed`, measuring every `run.every` steps.
pub fn run_mixture(
    gm: &GaussianMixture,
    teacher_net: &MlpDenoiser,
    precond: &Precond,
    arm: &Arm,
    run: &MixtureRun,
    seed: u64,
) -> Result<Vec<Point>> {
    let teacher = if run.exact_teacher {
        Teacher::analytic(gm, teacher_net.clone(), *precond)
    } else {
        Teacher::network(teacher_net.clone(), *precond)
    };
    let mut cfg = DistillConfig::new(arm.method, run.steps, *precond, seed);
    for t in [&mut cfg.generator, &mut cfg.fake] {
        t.batch_size = run.batch;
    }
    cfg.generator.lr = run.lr;
    cfg.fake.lr = run.fake_lr;
    cfg.order = arm.order;
    cfg.switch_every = run.switch_every;
    cfg.path.checkpoints = arm.checkpoints;
    cfg.path.steps = run.record_steps;
    let d = gm.dim();
    let plain = Device::flex();
    let reference = gm.sample(run.samples, &mut stream_rng(seed, 0xda7a, 0));
    let z = randn([run.samples, d], &mut stream_rng(seed, 0x2e2e, 0), &plain);
    let noise = to_vec_f64(randn(
        [run.samples, d],
        &mut stream_rng(seed, 0x2e2f, 0),
        &plain,
    ))?;
    let g0 = if run.fresh_generator {
        let dev = Device::flex().autodiff();
        dev.seed(seed + 1);
        mlp(d).with_seed(seed + 1).init(&dev)
    } else {
        teacher_net.clone()
    };
    let mut distiller = Distiller::new(
        &teacher,
        g0,
        &[d],
        &cfg,
        serde_json::Value::Null,
        &RunOutput::default(),
    )?;
    let mut points = Vec::new();
    let mut observe = |dist: &Distiller<'_, 2, MlpDenoiser>,
                       _: Option<&disback::distill::StepStats>|
     -> Result<()> {
        if !dist.step().is_multiple_of(run.every.max(1)) {
            return Ok(());
        }
        let x = to_vec_f64(dist.sample(z.clone()))?;
        if x.iter().any(|v| !v.is_finite()) {
            return Err(DisbackError::invalid(
                "generator",
                format!("non-finite sample at step {}", dist.step()),
            ));
        }
        let measures = mixture_measures(gm, &x, &reference, seed)?;
        let target = dist.target();
        points.push(Point {
            step: dist.step(),
            updates: dist.updates(),
            measures,
            score_mismatch: score_mismatch(target.as_ref(), gm, &x, &noise)?,
            target: dist.target_index(),
        });
        Ok(())
    };
    distiller.run(&RunOutput::default(), &mut observe)?;
    Ok(points)
}

/// The data sets of the study.
pub fn dataset(name: &str) -> Result<GaussianMixture> {
    match name {
        "ring8" => Ok(ring8()),
        "mix16" => Ok(mix16()),
        other => Err(DisbackError::invalid(
            "dataset",
            format!("'{other}' is neither ring8 nor mix16"),
        )),
    }
}

/// One job of the mixture part.
#[derive(Debug, Clone)]
struct Job {
    dataset: &'static str,
    teacher: &'static str,
    arm: Arm,
    seed: u64,
}

fn jobs(o: &StudyOptions) -> Vec<Job> {
    let all = arms();
    let mut out = Vec::new();
    for seed in &o.seeds {
        for teacher in ["B", "A"] {
            for arm in &all[..2] {
                out.push(Job {
                    dataset: "ring8",
                    teacher,
                    arm: *arm,
                    seed: *seed,
                });
            }
        }
    }
    for seed in &o.control_seeds {
        for arm in &all[2..] {
            out.push(Job {
                dataset: "ring8",
                teacher: "B",
                arm: *arm,
                seed: *seed,
            });
        }
    }
    for seed in &o.seeds_16d {
        for arm in &all[..2] {
            out.push(Job {
                dataset: "mix16",
                teacher: "B",
                arm: *arm,
                seed: *seed,
            });
        }
    }
    out
}

/// The data's entropy H(p) = E_p[−log p], estimated on 20 000 samples.
pub fn entropy(gm: &GaussianMixture) -> f64 {
    gm.mean_nll(&gm.sample(20_000, &mut stream_rng(7, 0xe27, 0)))
}

/// A fitted teacher B as safetensors bytes (so that each worker thread loads its own).
struct Fitted {
    bytes: Vec<u8>,
    precond: Precond,
    entropy: f64,
}

fn fitted_teacher(gm: &GaussianMixture, steps: usize) -> Result<Fitted> {
    let (net, precond) = fit_teacher(gm, 10_000, steps, 0)?;
    let meta = score_train::checkpoint::CheckpointMeta::new(steps, 0, serde_json::Value::Null);
    Ok(Fitted {
        bytes: score_train::checkpoint::checkpoint_bytes(Some(&net), None, None, &meta)?,
        precond,
        entropy: entropy(gm),
    })
}

fn load_fitted(f: &Fitted, dim: usize) -> Result<MlpDenoiser> {
    let ck = score_train::checkpoint::CheckpointFile::from_bytes(
        std::path::Path::new("<teacher B>"),
        f.bytes.clone(),
    )?;
    Ok(ck.load_into(mlp(dim).init(&Device::flex().autodiff()), "model.", false)?)
}

fn run_job(job: &Job, o: &StudyOptions, fitted: &Fitted) -> Result<RunRecord> {
    let gm = dataset(job.dataset)?;
    let mut run = if job.dataset == "mix16" {
        o.run_16d.clone()
    } else {
        o.run.clone()
    };
    run.exact_teacher = job.teacher == "A";
    let net = load_fitted(fitted, gm.dim())?;
    let t0 = std::time::Instant::now();
    let points = run_mixture(&gm, &net, &fitted.precond, &job.arm, &run, job.seed)?;
    let tau = fitted.entropy + o.ce_margin;
    let hit = points.iter().find(|p| p.measures.cross_entropy <= tau);
    Ok(RunRecord {
        dataset: job.dataset.into(),
        teacher: job.teacher.into(),
        arm: job.arm.name.into(),
        seed: job.seed,
        reached_step: hit.map(|p| p.step),
        reached_updates: hit.map(|p| p.updates),
        seconds: t0.elapsed().as_secs_f64(),
        points,
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn mean_sd(v: &[f64]) -> [f64; 2] {
    let n = v.len().max(1) as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    [m, var.sqrt()]
}

/// Ratio of medians a/b with a 95 % percentile bootstrap interval (2 000 resamples of
/// each group, seeded).
pub fn ratio_of_medians(a: &[f64], b: &[f64], seed: u64) -> [f64; 3] {
    use rand::RngExt;
    let point = median(&mut a.to_vec()) / median(&mut b.to_vec());
    let mut rng = stream_rng(seed, 0xb007, 0);
    let mut draws: Vec<f64> = (0..2000)
        .map(|_| {
            let mut ra: Vec<f64> = (0..a.len())
                .map(|_| a[rng.random_range(0..a.len())])
                .collect();
            let mut rb: Vec<f64> = (0..b.len())
                .map(|_| b[rng.random_range(0..b.len())])
                .collect();
            median(&mut ra) / median(&mut rb)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    [point, draws[49], draws[1949]]
}

fn steps_to(r: &RunRecord, run: &MixtureRun, updates: bool) -> f64 {
    match (updates, r.reached_step, r.reached_updates) {
        (false, Some(s), _) => s as f64,
        (true, _, Some(u)) => u as f64,
        _ => {
            let last = r
                .points
                .last()
                .map_or(0, |p| if updates { p.updates } else { p.step });
            (last + if updates { run.every * 6 } else { run.every }) as f64
        }
    }
}

fn summarise(o: &StudyOptions, runs: &[RunRecord]) -> Vec<Summary> {
    let mut keys: Vec<(String, String, String)> = runs
        .iter()
        .map(|r| (r.dataset.clone(), r.teacher.clone(), r.arm.clone()))
        .collect();
    keys.dedup();
    keys.sort();
    keys.dedup();
    keys.iter()
        .map(|(ds, t, arm)| {
            let run = if ds == "mix16" { &o.run_16d } else { &o.run };
            let group = |a: &str| -> Vec<&RunRecord> {
                runs.iter()
                    .filter(|r| &r.dataset == ds && &r.teacher == t && r.arm == a)
                    .collect()
            };
            let mine = group(arm);
            let base = group("baseline");
            let col = |g: &[&RunRecord], u: bool| -> Vec<f64> {
                g.iter().map(|r| steps_to(r, run, u)).collect()
            };
            let last = |f: fn(&Point) -> f64| -> Vec<f64> {
                mine.iter().filter_map(|r| r.points.last().map(f)).collect()
            };
            // A ratio of two censored medians says nothing: none when neither group
            // reached the threshold in most of its runs.
            let most = |g: &[&RunRecord]| {
                2 * g.iter().filter(|r| r.reached_step.is_some()).count() > g.len()
            };
            let speed = |u: bool| {
                (arm != "baseline" && !base.is_empty() && (most(&base) || most(&mine)))
                    .then(|| ratio_of_medians(&col(&base, u), &col(&mine, u), 1))
            };
            Summary {
                dataset: ds.clone(),
                teacher: t.clone(),
                arm: arm.clone(),
                seeds: mine.len(),
                reached: mine.iter().filter(|r| r.reached_step.is_some()).count(),
                median_steps: median(&mut col(&mine, false)),
                median_updates: median(&mut col(&mine, true)),
                speedup_steps: speed(false),
                speedup_updates: speed(true),
                final_cross_entropy: mean_sd(&last(|p| p.measures.cross_entropy)),
                final_mode_weight_error: mean_sd(&last(|p| p.measures.mode_weight_error)),
                final_modes_covered: mean_sd(&last(|p| p.measures.modes_covered as f64))[0],
                final_sliced_w2: mean_sd(&last(|p| p.measures.sliced_w2)),
            }
        })
        .collect()
}

/// Run the study, writing `disback.json`, `disback.md` and the SVG plots to `out`
/// after every run (a stopped study keeps what it finished). `fid`: the FID network
/// and the held-out reference, when set up. `progress` hears about every run.
pub fn run_study(
    o: &StudyOptions,
    out: &std::path::Path,
    fid: Option<(
        &score_eval::fid::FidInception,
        &score_eval::fid::FidReference,
    )>,
    progress: impl Fn(&str) + Sync,
) -> Result<Report> {
    std::fs::create_dir_all(out).map_err(|e| score_core::ScoreError::io(out, e))?;
    let t0 = std::time::Instant::now();
    let mut fitted = std::collections::BTreeMap::new();
    for name in ["ring8", "mix16"] {
        let gm = dataset(name)?;
        fitted.insert(name, fitted_teacher(&gm, o.teacher_steps)?);
        progress(&format!(
            "teacher B for {name} fitted ({:.0} s)",
            t0.elapsed().as_secs_f64()
        ));
    }
    let thresholds = serde_json::json!(fitted
        .iter()
        .map(|(k, f)| (k.to_string(), serde_json::json!({"entropy": f.entropy, "cross_entropy_threshold": f.entropy + o.ce_margin})))
        .collect::<serde_json::Map<_, _>>());
    let mut report = Report {
        options: o.clone(),
        thresholds,
        runs: Vec::new(),
        summary: Vec::new(),
        image: None,
        seconds: 0.0,
    };
    let all = jobs(o);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let state = std::sync::Mutex::new((&mut report, None::<DisbackError>));
    std::thread::scope(|s| {
        for _ in 0..o.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(job) = all.get(i) else { break };
                    let result = run_job(job, o, &fitted[job.dataset]);
                    let mut st = state.lock().expect("no panics while held");
                    match result {
                        Ok(r) => {
                            progress(&format!(
                                "{:5} {} {:16} seed {:2}: reached {:?} (updates {:?}), final CE {:.2} in {:.0} s [{} / {}]",
                                r.dataset, r.teacher, r.arm, r.seed, r.reached_step, r.reached_updates,
                                r.points.last().map_or(f64::NAN, |p| p.measures.cross_entropy), r.seconds, i + 1, all.len()
                            ));
                            st.0.runs.push(r);
                            st.0.summary = summarise(o, &st.0.runs);
                            st.0.seconds = t0.elapsed().as_secs_f64();
                            if let Err(e) = write_report(st.0, out) {
                                st.1.get_or_insert(e);
                            }
                        }
                        Err(e) => {
                            st.1.get_or_insert(e);
                        }
                    }
                    if st.1.is_some() {
                        next.store(all.len(), std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let (_, err) = state.into_inner().expect("no panics while held");
    if let Some(e) = err {
        return Err(e);
    }
    if let Some(io) = &o.image {
        report.image = Some(crate::disback::images::run_images(io, out, fid, &progress)?);
    }
    report.seconds = t0.elapsed().as_secs_f64();
    write_report(&report, out)?;
    Ok(report)
}

fn write_report(r: &Report, out: &std::path::Path) -> Result<()> {
    let json = serde_json::to_vec(r).map_err(|e| DisbackError::invalid("report", e.to_string()))?;
    score_core::fs::write_atomic(&out.join("disback.json"), &json)?;
    score_core::fs::write_atomic(
        &out.join("disback.md"),
        crate::disback::report::markdown(r).as_bytes(),
    )?;
    crate::disback::report::plots(r, out)?;
    Ok(())
}

/// Recompute the summary of `out/disback.json` and rewrite `disback.json`,
/// `disback.md` and the plots from it (the runs are not repeated).
pub fn rewrite_report(out: &std::path::Path) -> Result<Report> {
    let p = out.join("disback.json");
    let bytes = score_core::fs::read_file(&p)?;
    let mut r: Report = serde_json::from_slice(&bytes)
        .map_err(|e| DisbackError::invalid("report", format!("{}: {e}", p.display())))?;
    r.summary = summarise(&r.options, &r.runs);
    write_report(&r, out)?;
    Ok(r)
}
