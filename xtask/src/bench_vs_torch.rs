//! `cargo xtask bench-vs-torch`: the demo UNet and its hot operations, scorelab against
//! PyTorch on the same CPU, side by side (issue 11).
//!
//! 1. Both sides load the shipped checkpoint's EMA weights (the torch twin is
//!    `benches/torch/unet_bench.py`); both denoise the same inputs, and the largest
//!    difference is reported (the check fails above 1e-3).
//! 2. Rounds alternate: scorelab's timings in this process, then torch's in a
//!    subprocess (A B A B …); each side reports the median of `reps` repetitions per
//!    round, and the table gives the median over rounds and the ratio torch/scorelab
//!    (> 1: scorelab faster).
//! 3. `--device wgpu` or `--device cuda` (xtask built with that feature) runs both on
//!    the first GPU: scorelab on burn's wgpu (Vulkan) or CUDA backend, PyTorch on CUDA;
//!    every timed repetition ends with a read-back on our side and
//!    `torch.cuda.synchronize()` on theirs.
//! 4. PyTorch comes from PyPI into a venv outside the clone
//!    (`~/.cache/scorelab/torchvenv`, created on first use: `python3 -m venv` and
//!    `pip install torch numpy`). Development-time only: nothing in scorelab uses it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use score_core::Denoiser;
use score_core::tensor::{randn, stream_rng, tensor1, to_vec_f32};
use score_nn::Preconditioned;
use score_nn::norm::group_norm;
use score_nn::precond::denoising_loss;
use score_train::pipeline;
use scorelab_kernels::conv2d_layer;

/// One side's timings of one round: (op key, seconds).
type Round = Vec<(String, f64)>;

/// The operations timed, in table order: (key, description).
pub const OPS: [(&str, &str); 7] = [
    (
        "train_step_b32",
        "UNet training step, batch 32 (fwd + bwd + Adam)",
    ),
    ("denoiser_b64", "denoiser evaluation, batch 64"),
    ("matmul_1024", "matmul 1024³"),
    (
        "conv3x3_fwd",
        "conv 3×3 64→64, 32×32, batch 32, forward (the networks': `scorelab_kernels::conv2d_layer`)",
    ),
    ("conv3x3_fwd_bwd", "same, forward + backward"),
    (
        "groupnorm_fwd",
        "GroupNorm (8 groups) on [32, 64, 32, 32], forward (the UNet's: `nn::norm::group_norm`)",
    ),
    ("groupnorm_fwd_bwd", "same, forward + backward"),
];

/// Seconds as milliseconds, with two decimals under 10 ms (GPU timings are fractions
/// of a millisecond) and one above.
fn ms(t: f64) -> String {
    let m = t * 1e3;
    if m < 10.0 {
        format!("{m:.2} ms")
    } else {
        format!("{m:.1} ms")
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn time_median(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

/// Force completion cheaply: one element to the host.
fn sync<const D: usize>(t: Tensor<D>) {
    let first = t.flatten::<1>(0, D - 1).narrow(0, 0, 1);
    let _ = to_vec_f32(first);
}

/// Waits for a module's pending updates: reads back its last float parameter (one
/// element), which on an in-order device queue follows every earlier update.
struct LastParam(Option<Tensor<1>>);

impl ModuleVisitor for LastParam {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0 = Some(param.val().flatten::<1>(0, D - 1));
    }
}

fn sync_module<M: Module>(m: &M) {
    let mut v = LastParam(None);
    m.visit(&mut v);
    if let Some(t) = v.0 {
        sync(t);
    }
}

/// The network a scaling point times: the shipped checkpoint (28×28), or the demo
/// architecture at another resolution with random weights (attention at res/4).
#[derive(Clone, Copy)]
pub enum Net<'a> {
    /// The shipped checkpoint.
    Shipped(&'a Path),
    /// Random initialisation at this resolution.
    Random(usize),
}

/// scorelab's training step at `batch` (seconds, median of `reps`).
fn our_train_step(net: Net<'_>, batch: usize, reps: usize, dev: &Device) -> Result<f64> {
    let ad = dev.clone().autodiff();
    let mut rng = stream_rng(0, 0x4256, batch as u64);
    let (net, precond, res) = match net {
        Net::Shipped(ck) => {
            let (n, _, p, _) = pipeline::load_unet(ck, &ad)?;
            (n, p, 28)
        }
        Net::Random(r) => {
            let mut c = pipeline::demo_unet_config();
            c.resolution = r;
            c.attn_resolutions = vec![r / 4];
            c.validate().map_err(anyhow::Error::msg)?;
            ad.seed(0);
            (c.init(&ad), score_core::Precond::edm(0.5), r)
        }
    };
    let x0 = randn([batch, 1, res, res], &mut rng, &ad);
    let noise = randn([batch, 1, res, res], &mut rng, &ad);
    let sigma = randn([batch], &mut rng, &ad)
        .mul_scalar(1.2)
        .sub_scalar(1.2)
        .exp();
    Ok(time_train_steps(net, &precond, (x0, sigma, noise), reps))
}

/// Median seconds of one training step of `net` (created on an autodiff device): the
/// EDM loss of the batch, backward, an Adam update, then a read-back of the weights.
pub(crate) fn time_train_steps<N: score_nn::ScoreNetwork<4>>(
    mut net: N,
    precond: &score_core::Precond,
    (x0, sigma, noise): (Tensor<4>, Tensor<1>, Tensor<4>),
    reps: usize,
) -> f64 {
    let mut optim = AdamConfig::new().init();
    time_median(reps, || {
        let loss = denoising_loss(
            &net,
            precond,
            x0.clone(),
            sigma.clone(),
            noise.clone(),
            None,
        )
        .mean();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(1e-4, net.clone(), grads);
        sync_module(&net);
    })
}

/// What a scaling run varies.
pub enum Axis {
    /// Batch sizes, at 28×28 with the shipped weights.
    Batch(Vec<usize>),
    /// Image sizes at this batch, random weights.
    Size(Vec<usize>, usize),
}

/// Training-step time against batch size or image size for both sides, alternating
/// rounds; writes `scaling.{md,json,svg}` (batch) or `scaling_size.{…}` under `out`.
pub fn scaling(
    checkpoint: &Path,
    out: &Path,
    axis: &Axis,
    rounds: usize,
    reps: usize,
    python: Option<PathBuf>,
    dev: &Named,
) -> Result<String> {
    let torch = Torch::new(python, dev)?;
    let (values, stem, what) = match axis {
        Axis::Batch(v) => (v.clone(), "scaling", "batch"),
        Axis::Size(v, _) => (v.clone(), "scaling_size", "image size"),
    };
    let batches = &values;
    let list: Vec<String> = values.iter().map(|b| b.to_string()).collect();
    let point = |v: usize| match axis {
        Axis::Batch(_) => (Net::Shipped(checkpoint), v),
        Axis::Size(_, b) => (Net::Random(v), *b),
    };
    let torch_args = scaling_torch_args(axis, &list);
    let (mut a, mut b): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        a.push(
            batches
                .iter()
                .map(|&v| {
                    let (net, batch) = point(v);
                    our_train_step(net, batch, reps, &dev.device)
                })
                .collect::<Result<_>>()?,
        );
        let mut args = torch_args.clone();
        args.extend(["--reps".to_string(), reps.to_string()]);
        let v = torch.run(checkpoint, &args)?;
        b.push(
            list.iter()
                .map(|k| {
                    v["seconds"][k]
                        .as_f64()
                        .context("torch scaling timing missing")
                })
                .collect::<Result<_>>()?,
        );
        eprintln!("scaling round {}/{rounds} done", r + 1);
    }
    let med = |v: &[Vec<f64>], i: usize| median(v.iter().map(|r| r[i]).collect());
    let header = scaling_header(axis, dev, &list, rounds, reps);
    let mut md = format!(
        "{header}; median over {rounds} alternating rounds of each side's median of {reps}.\n\n| {what} | scorelab | PyTorch | ratio torch/scorelab | scorelab ms/image | PyTorch ms/image |\n|---:|---:|---:|---:|---:|---:|\n"
    );
    let (mut ours_pts, mut theirs_pts) = (Vec::new(), Vec::new());
    for (i, &v) in batches.iter().enumerate() {
        let (ta, tb) = (med(&a, i), med(&b, i));
        let n = point(v).1;
        md += &format!(
            "| {v} | {:.1} ms | {:.1} ms | {:.2} | {:.2} | {:.2} |\n",
            ta * 1e3,
            tb * 1e3,
            tb / ta,
            ta * 1e3 / n as f64,
            tb * 1e3 / n as f64
        );
        ours_pts.push((v as f64, ta * 1e3));
        theirs_pts.push((v as f64, tb * 1e3));
    }
    std::fs::create_dir_all(out)?;
    scaling_plot(
        what,
        dev,
        ours_pts,
        theirs_pts,
        &out.join(format!("{stem}{}.svg", dev.suffix())),
    )?;
    let json = serde_json::json!({"axis": what, "values": batches, "scorelab_rounds": a, "torch_rounds": b});
    write_scaling(out, &format!("{stem}{}", dev.suffix()), &json, &md)?;
    Ok(md)
}

/// The PyTorch twin's flags for a scaling run over `list`.
fn scaling_torch_args(axis: &Axis, list: &[String]) -> Vec<String> {
    match axis {
        Axis::Batch(_) => vec!["--scaling".into(), list.join(",")],
        Axis::Size(_, b) => vec![
            "--size-scaling".into(),
            list.join(","),
            "--batch".into(),
            b.to_string(),
        ],
    }
}

/// `<out>/<name>.json` (the raw rounds) and `<out>/<name>.md` (the table).
fn write_scaling(out: &Path, name: &str, json: &serde_json::Value, md: &str) -> Result<()> {
    score_core::fs::write_atomic(
        &out.join(format!("{name}.json")),
        serde_json::to_string_pretty(json)?.as_bytes(),
    )?;
    score_core::fs::write_atomic(&out.join(format!("{name}.md")), md.as_bytes())?;
    Ok(())
}

/// The first line of a scaling table: the command that reproduces it and what it times.
fn scaling_header(axis: &Axis, dev: &Named, list: &[String], rounds: usize, reps: usize) -> String {
    match axis {
        Axis::Batch(_) => format!(
            "`cargo xtask bench-vs-torch{} --scaling {} --rounds {rounds} --reps {reps}`: the demo UNet's training step (fwd + bwd + Adam, 28×28, shipped weights) against batch size",
            dev.flag(),
            list.join(",")
        ),
        Axis::Size(_, bt) => format!(
            "`cargo xtask bench-vs-torch{} --scaling-size {} --scaling-batch {bt} --rounds {rounds} --reps {reps}`: the training step (fwd + bwd + Adam) of the demo architecture at each image size (attention at size/4; random weights, the same on neither side) at batch {bt}",
            dev.flag(),
            list.join(",")
        ),
    }
}

/// Step time against the scaled quantity, ours and PyTorch's, as an SVG at `path`.
fn scaling_plot(
    what: &str,
    dev: &Named,
    ours_pts: Vec<(f64, f64)>,
    theirs_pts: Vec<(f64, f64)>,
    path: &Path,
) -> Result<()> {
    score_eval::plot::Plot {
        title: format!("Demo UNet training step against {what} ({})", dev.machine()),
        x_label: what.into(),
        y_label: "ms per step".into(),
        log_x: true,
        log_y: true,
        series: vec![
            score_eval::plot::Series {
                label: format!("scorelab (burn-{})", dev.name),
                points: ours_pts,
                markers_only: false,
            },
            score_eval::plot::Series {
                label: "PyTorch".into(),
                points: theirs_pts,
                markers_only: false,
            },
        ],
        y_range: None,
    }
    .save(path)?;
    Ok(())
}

/// scorelab's timings (seconds, median of `reps`) for every key of [`OPS`].
fn ours(checkpoint: &Path, reps: usize, dev: &Device) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    let inf = dev.clone();
    let mut rng = stream_rng(0, 0x4256, 0);
    let (net, _, precond, _) = pipeline::load_unet(checkpoint, &inf)?;
    let den = Preconditioned::new(&net, precond);
    let x = randn([64, 1, 28, 28], &mut rng, &inf);
    let s = randn([64], &mut rng, &inf)
        .mul_scalar(1.2)
        .sub_scalar(1.2)
        .exp();
    out.push((
        "denoiser_b64".into(),
        time_median(reps, || sync(den.denoise(x.clone(), s.clone(), None))),
    ));
    out.push((
        "train_step_b32".into(),
        our_train_step(Net::Shipped(checkpoint), 32, reps, dev)?,
    ));
    let ad = inf.clone().autodiff();
    let a = randn([1024, 1024], &mut rng, &inf);
    let b = randn([1024, 1024], &mut rng, &inf);
    out.push((
        "matmul_1024".into(),
        time_median(reps, || sync(a.clone().matmul(b.clone()))),
    ));
    let conv =
        Conv2dConfig::new([64, 64], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
    let gn = GroupNormConfig::new(8, 64);
    let h = randn([32, 64, 32, 32], &mut rng, &inf);
    let (c_inf, g_inf) = (conv.init(&inf), gn.init(&inf));
    out.push((
        "conv3x3_fwd".into(),
        time_median(reps, || sync(conv2d_layer(&c_inf, h.clone()))),
    ));
    out.push((
        "groupnorm_fwd".into(),
        time_median(reps, || sync(group_norm(&g_inf, h.clone()))),
    ));
    let (c_ad, g_ad) = (conv.init(&ad), gn.init(&ad));
    let h_ad = randn([32, 64, 32, 32], &mut rng, &ad).require_grad();
    out.push((
        "conv3x3_fwd_bwd".into(),
        time_median(reps, || {
            let grads = conv2d_layer(&c_ad, h_ad.clone()).sum().backward();
            if let Some(g) = h_ad.grad(&grads) {
                sync(g);
            }
        }),
    ));
    out.push((
        "groupnorm_fwd_bwd".into(),
        time_median(reps, || {
            let grads = group_norm(&g_ad, h_ad.clone()).sum().backward();
            if let Some(g) = h_ad.grad(&grads) {
                sync(g);
            }
        }),
    ));
    Ok(out)
}

/// The device both sides run on: `flex` (PyTorch on the CPU), or `wgpu`/`cuda` (both on
/// the first GPU, PyTorch through CUDA).
pub struct Named {
    /// The name given to `--device`.
    pub name: String,
    /// scorelab's device.
    pub device: Device,
}

impl Named {
    /// `flex`, `wgpu` or `cuda` (the GPU ones need xtask built with that feature).
    pub fn new(name: &str) -> Result<Self> {
        if !matches!(name, "flex" | "wgpu" | "cuda") {
            bail!("--device: '{name}' is not timed against PyTorch; use flex, wgpu or cuda");
        }
        Ok(Self {
            name: name.into(),
            device: score_core::device::by_name(name)?,
        })
    }

    fn gpu(&self) -> bool {
        self.name != "flex"
    }

    /// The flag that reproduces this choice on the command line.
    fn flag(&self) -> String {
        if self.gpu() {
            format!(" --device {}", self.name)
        } else {
            String::new()
        }
    }

    /// Output file suffix (the CPU tables keep their names).
    fn suffix(&self) -> String {
        if self.gpu() {
            format!("_{}", self.name)
        } else {
            String::new()
        }
    }

    fn machine(&self) -> &'static str {
        if self.gpu() { "one GPU" } else { "2-core CPU" }
    }

    fn torch_device(&self) -> &'static str {
        if self.gpu() { "cuda" } else { "cpu" }
    }
}

/// The venv's python, creating the venv on first use.
pub fn torch_python(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/scorelab/torchvenv");
    let py = venv.join("bin/python");
    if !py.exists() {
        eprintln!(
            "creating {} with torch and numpy from PyPI (once)",
            venv.display()
        );
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet", "torch", "numpy"])
                .status()?
                .success();
        if !ok {
            bail!(
                "could not create {} (python3 -m venv, then pip install torch numpy)",
                venv.display()
            );
        }
    }
    Ok(py)
}

/// The torch twin: the venv's python and `benches/torch/unet_bench.py`.
pub struct Torch {
    python: PathBuf,
    script: PathBuf,
    device: &'static str,
}

impl Torch {
    /// With `python`, or the venv (created on first use).
    /// `benches/torch/unet_bench.py` of the checkout xtask was built from, or under the
    /// current directory for a binary copied elsewhere (a GPU machine).
    pub fn new(python: Option<PathBuf>, dev: &Named) -> Result<Self> {
        let rel = "benches/torch/unet_bench.py";
        let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
        let script = if built.exists() { built } else { rel.into() };
        if !script.exists() {
            bail!("{rel}: not found (run from the repository root)");
        }
        Ok(Self {
            python: torch_python(python)?,
            script,
            device: dev.torch_device(),
        })
    }

    /// Run the script on `checkpoint` with `args`; the last line of its output as JSON
    /// (`Null` when it prints nothing).
    fn run<S: AsRef<std::ffi::OsStr>>(
        &self,
        checkpoint: &Path,
        args: &[S],
    ) -> Result<serde_json::Value> {
        let out = Command::new(&self.python)
            .arg(&self.script)
            .arg("--checkpoint")
            .arg(checkpoint)
            .args(["--device", self.device])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!(
                "{} {}: {}",
                self.script.display(),
                args.iter()
                    .map(|a| a.as_ref().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        match out.stdout.split(|&b| b == b'\n').rfind(|l| !l.is_empty()) {
            Some(line) => Ok(serde_json::from_slice(line)?),
            None => Ok(serde_json::Value::Null),
        }
    }
}

/// Largest |D_scorelab − D_torch| on 16 inputs over σ ∈ [0.002, 80], and max |D|.
fn check(torch: &Torch, checkpoint: &Path, work: &Path, dev: &Device) -> Result<(f64, f64)> {
    let inf = dev.clone();
    let (net, _, precond, _) = pipeline::load_unet(checkpoint, &inf)?;
    let mut rng = stream_rng(1, 0x4256, 0);
    let sig: Vec<f64> = (0..16)
        .map(|i| 0.002 * (80.0f64 / 0.002).powf(i as f64 / 15.0))
        .collect();
    let x = randn([16, 1, 28, 28], &mut rng, &inf)
        * tensor1(&sig, &inf).reshape([16, 1, 1, 1]).add_scalar(0.5);
    let xs = to_vec_f32(x.clone())?;
    let d = to_vec_f32(Preconditioned::new(&net, precond).denoise(x, tensor1(&sig, &inf), None))?;
    std::fs::create_dir_all(work)?;
    score_io::npy::write_npy_f32(&work.join("x.npy"), &[16, 1, 28, 28], &xs)?;
    let s32: Vec<f32> = sig.iter().map(|&v| v as f32).collect();
    score_io::npy::write_npy_f32(&work.join("sigma.npy"), &[16], &s32)?;
    let out = work.join("d_torch.npy");
    torch.run(checkpoint, &[Path::new("--check"), work, &out])?;
    let theirs = score_io::npy::read_npy(&out)?.data;
    let diff = d
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (*a as f64 - b).abs())
        .fold(0.0, f64::max);
    let scale = d.iter().map(|a| a.abs() as f64).fold(0.0, f64::max);
    Ok((diff, scale))
}

/// torch's timings for one round.
fn theirs(torch: &Torch, checkpoint: &Path, reps: usize) -> Result<(String, Vec<(String, f64)>)> {
    let reps = reps.to_string();
    let v = torch.run(checkpoint, &["--time", "--reps", &reps, "--threads", "2"])?;
    let times = OPS
        .iter()
        .map(|(k, _)| {
            let t = v["seconds"][k]
                .as_f64()
                .with_context(|| format!("torch timing '{k}' missing"))?;
            Ok((k.to_string(), t))
        })
        .collect::<Result<_>>()?;
    Ok((v["impl"].as_str().unwrap_or("torch").to_string(), times))
}

/// Run the check and `rounds` alternating rounds; write `bench_vs_torch.md` and `.json`
/// under `out`; return the markdown.
pub fn run(
    checkpoint: &Path,
    out: &Path,
    rounds: usize,
    reps: usize,
    python: Option<PathBuf>,
    dev: &Named,
) -> Result<String> {
    let torch = Torch::new(python, dev)?;
    let work = std::env::temp_dir().join(format!("scorelab-bench-vs-torch-{}", std::process::id()));
    let (diff, scale) = check(&torch, checkpoint, &work, &dev.device)?;
    let _ = std::fs::remove_dir_all(&work);
    eprintln!(
        "same weights, same inputs: max |D_scorelab − D_torch| = {diff:.2e} (max |D| = {scale:.2})"
    );
    if diff > 1e-3 {
        bail!("the two UNets disagree by {diff:.2e}: fix the port before timing");
    }
    let (mut a, mut b): (Vec<Round>, Vec<Round>) = (Vec::new(), Vec::new());
    let mut torch_impl = String::new();
    for r in 0..rounds {
        a.push(ours(checkpoint, reps, &dev.device)?);
        let (name, t) = theirs(&torch, checkpoint, reps)?;
        torch_impl = name;
        b.push(t);
        eprintln!("round {}/{rounds} done", r + 1);
    }
    let pick = |v: &[Round], k: &str| {
        median(
            v.iter()
                .map(|round| round.iter().find(|(n, _)| n == k).map_or(f64::NAN, |x| x.1))
                .collect(),
        )
    };
    let (flag, name) = (dev.flag(), &dev.name);
    let place = if dev.gpu() {
        "on the GPU (CUDA, no TF32)"
    } else {
        "on CPU with 2 threads"
    };
    let mut md = format!(
        "`cargo xtask bench-vs-torch{flag} --rounds {rounds} --reps {reps}`: shipped demo checkpoint (EMA weights) in both; {torch_impl} {place}; scorelab on burn-{name} (dev profile, dependencies at opt-level 3). Same weights and inputs: max |D_scorelab − D_torch| = {diff:.1e} (max |D| = {scale:.2}). Median over {rounds} alternating rounds of each side's median of {reps} repetitions.\n\n| work | scorelab | PyTorch | ratio torch/scorelab |\n|---|---:|---:|---:|\n"
    );
    let mut json = Vec::new();
    for (k, what) in OPS {
        let (ta, tb) = (pick(&a, k), pick(&b, k));
        md += &format!("| {what} | {} | {} | {:.2} |\n", ms(ta), ms(tb), tb / ta);
        json.push(serde_json::json!({"op": k, "scorelab_s": ta, "torch_s": tb, "ratio": tb / ta}));
    }
    std::fs::create_dir_all(out)?;
    score_core::fs::write_atomic(
        &out.join(format!("bench_vs_torch{}.json", dev.suffix())),
        serde_json::to_string_pretty(&serde_json::json!({"check_max_abs_diff": diff, "rounds": rounds, "reps": reps, "torch": torch_impl, "ops": json, "scorelab_rounds": a, "torch_rounds": b}))?.as_bytes(),
    )?;
    score_core::fs::write_atomic(
        &out.join(format!("bench_vs_torch{}.md", dev.suffix())),
        md.as_bytes(),
    )?;
    Ok(md)
}
