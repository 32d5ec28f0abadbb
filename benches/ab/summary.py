"""Summarise an A/B run of benches/ab/run.sh: per operation, each side's median over
all its rounds (each round is already a median of --reps repetitions), PyTorch's over
all rounds of both sides, the speed-up and both ratios torch/scorelab."""
import glob
import json
import statistics
import sys

NAMES = {
    "train_step_b32": "UNet training step, batch 32 (fwd + bwd + Adam)",
    "denoiser_b64": "denoiser evaluation, batch 64",
    "matmul_1024": "matmul 1024³",
    "conv3x3_fwd": "conv 3×3 64→64, 32×32, batch 32, forward",
    "conv3x3_fwd_bwd": "same, forward + backward",
    "groupnorm_fwd": "GroupNorm (8 groups) on [32, 64, 32, 32], forward",
    "groupnorm_fwd_bwd": "same, forward + backward",
}


def rounds(files, key):
    per_op = {}
    for f in files:
        for rnd in json.load(open(f))[key]:
            for op, t in rnd:
                per_op.setdefault(op, []).append(t * 1e3)
    return per_op


def main(folder):
    base = sorted(glob.glob(f"{folder}/base-*.json"))
    new = sorted(glob.glob(f"{folder}/new-*.json"))
    b, n = rounds(base, "scorelab_rounds"), rounds(new, "scorelab_rounds")
    t = rounds(base + new, "torch_rounds")
    print("| work | scorelab before | scorelab after | speed-up | PyTorch | ratio before | ratio after |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for op, name in NAMES.items():
        if op not in b or op not in n:
            continue
        mb, mn, mt = (statistics.median(v[op]) for v in (b, n, t))
        print(f"| {name} | {mb:.1f} ms | {mn:.1f} ms | {mb / mn:.2f}× | {mt:.1f} ms "
              f"| {mt / mb:.2f} | **{mt / mn:.2f}** |")
    print()
    for op in ("train_step_b32", "denoiser_b64"):
        fmt = lambda v: ", ".join(f"{x:.0f}" for x in v)
        print(f"- {op}: before [{fmt(b[op])}], after [{fmt(n[op])}], PyTorch [{fmt(t[op])}] ms")


if __name__ == "__main__":
    main(sys.argv[1])
