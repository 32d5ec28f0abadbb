"""PyTorch side of `cargo xtask bench-edm`: EDM's CIFAR-10 DDPM++ network (the
transcription of EDM's networks.py in xtask/fixtures/edm_golden.py) at its published
configuration, EDMPrecond (sigma_data 0.5).

  --make DIR     write DIR/weights.safetensors (random weights, model.* keys as EDM's
                 EDMPrecond.state_dict()) and DIR/description.json, and
                 DIR/x.npy, DIR/d_torch.npy (D(x; sigma) of 4 inputs at sigma 0.5..20)
  --time DIR     time D(x; sigma) (eval) and one training step (EDM loss, backward,
                 Adam) at --batch, median of --reps; print JSON

Dropout is 0 on both sides (EDM trains CIFAR-10 with 0.13; the transcription has no
dropout layers, and a dropout mask costs little beside the convolutions).

Development time only (the venv's torch); scorelab never runs it.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../xtask/fixtures"))
import edm_golden as g  # noqa: E402

KW = dict(model_channels=128, channel_mult=[2, 2, 2], num_blocks=4, attn_resolutions=[16], augment_dim=9,
          embedding_type="positional", channel_mult_noise=1, encoder_type="standard", decoder_type="standard",
          resample_filter=[1, 1])
PRECOND = dict(class_name="EDMPrecond", sigma_data=0.5)


def build():
    return g.Song(32, 3, 3, **KW)


def denoise(net, x, sigma):
    c_skip, c_out, c_in, c_noise = g.coefficients(PRECOND, sigma)
    return c_skip * x + c_out * net(c_in * x, c_noise.flatten(), None, torch.zeros(x.shape[0], 9))


def make(out):
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(11)
    net = build().eval()
    g.randomise(net, gen)
    save_file({f"model.{k}": v.contiguous() for k, v in net.state_dict().items()}, f"{out}/weights.safetensors")
    desc = dict(network=dict(model_type="SongUNet", img_resolution=32, in_channels=3, out_channels=3,
                             dropout=0.0, **KW), precond=PRECOND)
    with open(f"{out}/description.json", "w") as f:
        json.dump(desc, f, indent=1)
    x = torch.randn(4, 3, 32, 32, generator=gen)
    sigma = torch.tensor([0.5, 2.0, 5.0, 20.0])
    with torch.no_grad():
        d = denoise(net, x * (1 + sigma.reshape(-1, 1, 1, 1)), sigma)
    np.save(f"{out}/x.npy", (x * (1 + sigma.reshape(-1, 1, 1, 1))).numpy())
    np.save(f"{out}/sigma.npy", sigma.numpy())
    np.save(f"{out}/d_torch.npy", d.numpy())
    print(json.dumps(dict(params=sum(v.numel() for v in net.state_dict().values()))))


def median_time(reps, f):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def timing(out, batch, reps):
    net = build()
    net.load_state_dict({k[len("model."):]: v for k, v in load_file(f"{out}/weights.safetensors").items()}, strict=False)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(batch, 3, 32, 32, generator=gen)
    noise = torch.randn(batch, 3, 32, 32, generator=gen)
    sigma = (torch.randn(batch, generator=gen) * 1.2 - 1.2).exp()
    net.eval()

    def fwd():
        with torch.no_grad():
            denoise(net, x0 + noise * sigma.reshape(-1, 1, 1, 1), sigma)

    t_fwd = median_time(reps, fwd)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        d = denoise(net, x0 + noise * sigma.reshape(-1, 1, 1, 1), sigma)
        w = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
        loss = (w.reshape(-1, 1, 1, 1) * (d - x0) ** 2).sum() / batch
        opt.zero_grad()
        loss.backward()
        opt.step()

    t_step = median_time(reps, step)
    print(json.dumps(dict(impl=f"torch {torch.__version__}", seconds=dict(forward=t_fwd, train_step=t_step))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make")
    ap.add_argument("--time")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.make:
        make(a.make)
    if a.time:
        timing(a.time, a.batch, a.reps)


if __name__ == "__main__":
    main()
