"""DPM-Solver-v3 on an exact Gaussian model from the CLI (issue 27 item 2).

Fits `scorelab gaussian fit` to ROWS rows of N(mu, diag v) in d = 4, estimates
DPM-Solver-v3's statistics with `scorelab ems --model`, samples the same unit noise
with v3 (orders 1-3), DPM-Solver++(2M) and Heun at N = 6 ... 48 Karras levels
(`gaussian sample`), and compares each to the closed-form end point
(`gaussian solve --x-start 80 z --sigma-start 80 --sigma-end 0`). Prints the mean
error per N and the log-log slope between the two finest N.

Usage: python3 benches/exact/v3_gaussian_order.py SCORELAB_BINARY WORK_DIR [ROWS [POINTS]]
(numpy needed; nothing else). ROWS (default 2000) are the data rows the statistics are
estimated over, POINTS (default 64) their λ points.
"""
import json, subprocess, sys, os
import numpy as np

bin_, work = sys.argv[1], sys.argv[2]
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
points = sys.argv[4] if len(sys.argv) > 4 else "64"
os.makedirs(work, exist_ok=True)
p = lambda f: os.path.join(work, f)
rng = np.random.default_rng(0)
mu = np.array([1.0, -0.5, 0.25, 0.0])
v = np.array([0.25, 1.0, 0.04, 0.5])
np.save(p("pts.npy"), (mu + np.sqrt(v) * rng.standard_normal((rows, 4))).astype(np.float64))
np.save(p("z.npy"), rng.standard_normal((256, 4)))
np.save(p("x80.npy"), 80.0 * np.load(p("z.npy")))

def run(*args):
    out = subprocess.run([bin_, *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

run("gaussian", "fit", "--data", p("pts.npy"), "--out", p("g.safetensors"))
run("ems", "--model", p("g.safetensors"), "--data", p("pts.npy"), "--n", str(rows),
    "--points", points, "--out", p("ems.json"))
run("gaussian", "solve", "--model", p("g.safetensors"), "--x-start", p("x80.npy"),
    "--sigma-start", "80", "--sigma-end", "0", "--out", p("exact.npy"))
exact = np.load(p("exact.npy")).astype(np.float64)
ns = [6, 12, 24, 48]
cases = [("dpm-solver-v3 order 1", ["--sampler", "dpm-solver-v3", "--ems", p("ems.json"), "--order", "1"]),
         ("dpm-solver-v3 order 2", ["--sampler", "dpm-solver-v3", "--ems", p("ems.json"), "--order", "2"]),
         ("dpm-solver-v3 order 3", ["--sampler", "dpm-solver-v3", "--ems", p("ems.json"), "--order", "3"]),
         ("dpmpp-2m", ["--sampler", "dpmpp-2m"]),
         ("heun", ["--sampler", "heun"])]
print("| sampler | " + " | ".join(f"N = {n}" for n in ns) + " | slope 24 → 48 |")
print("|---|" + "---|" * (len(ns) + 1))
for name, flags in cases:
    errs = []
    for n in ns:
        run("gaussian", "sample", "--model", p("g.safetensors"), *flags, "--steps", str(n),
            "--noise", p("z.npy"), "--out", p("s.npy"))
        x = np.load(p("s.npy")).astype(np.float64)
        errs.append(float(np.mean(np.linalg.norm(x - exact, axis=1))))
    slope = np.log2(errs[-2] / errs[-1])
    print(f"| {name} | " + " | ".join(f"{e:.2e}" for e in errs) + f" | {slope:.2f} |")
