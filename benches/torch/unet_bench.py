"""The PyTorch twin of scorelab's demo UNet, for `cargo xtask bench-vs-torch`.

Builds score-nn's UNet (crates/score-nn/src/unet.rs: DDPM++-style residual
blocks, one-head self-attention at 7x7, average-pool down, nearest up, positional noise
embedding, EDM preconditioning) in torch, loads the EMA weights of a scorelab checkpoint
(burn's Linear stores [in, out]; torch's [out, in]), and then

  --check IN OUT   reads x [B,1,28,28] and sigma [B] from the .npy pair IN (x.npy,
                   sigma.npy in folder IN), writes D(x; sigma) to OUT (.npy, float32);
  --time           times the same operations as the Rust side and prints one JSON line.

Development-time reference only: nothing in scorelab imports torch at run time.
"""
import argparse
import json
import math
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        dtype = {"F32": np.float32, "F64": np.float64}[t["dtype"]]
        out[name] = torch.from_numpy(
            np.frombuffer(raw[base + a : base + b], dtype=dtype).reshape(t["shape"]).copy()
        ).float()
    return out, meta


class GN(torch.nn.GroupNorm):
    """burn's GroupNorm (eps 1e-5, affine gamma/beta) with the group count rule of
    unet.rs: min(groups, ch), lowered until it divides ch."""

    def __init__(self, groups, ch):
        g = max(1, min(groups, ch))
        while ch % g:
            g -= 1
        super().__init__(g, ch, eps=1e-5)


class Attention(torch.nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        self.norm = GN(groups, ch)
        self.qkv = torch.nn.Conv2d(ch, 3 * ch, 1)
        self.proj = torch.nn.Conv2d(ch, ch, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, c, h * w)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        att = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=2)
        out = (v @ att.transpose(1, 2)).reshape(b, c, h, w)
        return (x + self.proj(out)) * (1 / math.sqrt(2))


class ResBlock(torch.nn.Module):
    def __init__(self, cin, cout, emb, attn, groups):
        super().__init__()
        self.norm0 = GN(groups, cin)
        self.conv0 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.affine = torch.nn.Linear(emb, cout)
        self.norm1 = GN(groups, cout)
        self.conv1 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = torch.nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.attn = Attention(cout, groups) if attn else None

    def forward(self, x, emb):
        h = self.conv0(F.silu(self.norm0(x)))
        h = h + self.affine(emb)[:, :, None, None]
        h = self.conv1(F.silu(self.norm1(h)))
        s = self.skip(x) if self.skip is not None else x
        out = (h + s) * (1 / math.sqrt(2))
        return self.attn(out) if self.attn is not None else out


class UNet(torch.nn.Module):
    def __init__(self, res=28, cin=1, mc=16, mult=(1, 2, 2), blocks=1, attn_res=(7,), groups=8):
        super().__init__()
        emb = 4 * mc
        self.mc = mc
        self.map0 = torch.nn.Linear(mc, emb)
        self.map1 = torch.nn.Linear(emb, emb)
        self.conv_in = torch.nn.Conv2d(cin, mc, 3, padding=1)
        skips, ch, r = [mc], mc, res
        self.enc = torch.nn.ModuleList()
        for level, m in enumerate(mult):
            bl = torch.nn.ModuleList()
            for _ in range(blocks):
                bl.append(ResBlock(ch, mc * m, emb, r in attn_res, groups))
                ch = mc * m
                skips.append(ch)
            self.enc.append(bl)
            if level + 1 < len(mult):
                r //= 2
                skips.append(ch)
        self.dec = torch.nn.ModuleList()
        for level in reversed(range(len(mult))):
            bl = torch.nn.ModuleList()
            for _ in range(blocks + 1):
                s = skips.pop()
                bl.append(ResBlock(ch + s, mc * mult[level], emb, r in attn_res, groups))
                ch = mc * mult[level]
            self.dec.append(bl)
            if level > 0:
                r *= 2
        self.norm_out = GN(groups, ch)
        self.conv_out = torch.nn.Conv2d(ch, cin, 3, padding=1)

    def embed(self, c_noise):
        half = self.mc // 2
        freqs = torch.tensor(
            [1.0 / 10000 ** (i / half) for i in range(half)],
            dtype=torch.float32,
            device=c_noise.device,
        )
        arg = c_noise[:, None] * freqs[None, :]
        return torch.cat([arg.cos(), arg.sin()], 1)

    def forward(self, x, c_noise):
        emb = F.silu(self.map1(F.silu(self.map0(self.embed(c_noise)))))
        h = self.conv_in(x)
        skips = [h]
        for level, bl in enumerate(self.enc):
            for b in bl:
                h = b(h, emb)
                skips.append(h)
            if level + 1 < len(self.enc):
                h = F.avg_pool2d(h, 2)
                skips.append(h)
        for i, bl in enumerate(self.dec):
            for b in bl:
                h = b(torch.cat([h, skips.pop()], 1), emb)
            if i + 1 < len(self.dec):
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.conv_out(F.silu(self.norm_out(h)))


def load(path, prefix="ema."):
    tensors, meta = read_safetensors(path)
    net = UNet()
    state = {}
    for name in net.state_dict():
        module, leaf = name.rsplit(".", 1)
        if isinstance(net.get_submodule(module), torch.nn.GroupNorm):
            leaf = {"weight": "gamma", "bias": "beta"}[leaf]
        t = tensors[f"{prefix}{module}.{leaf}"]
        if t.dim() == 2:  # burn's Linear stores [in, out]
            t = t.t()
        state[name] = t
    net.load_state_dict(state, strict=True)
    sigma_data = json.loads(meta["scorelab"])["config"]["train"]["precond"]["sigma_data"]
    return net, sigma_data


def denoise(net, sigma_data, x, sigma):
    """EDM preconditioning (Karras et al. 2022, Table 1)."""
    s = sigma[:, None, None, None]
    c_skip = sigma_data**2 / (s**2 + sigma_data**2)
    c_out = s * sigma_data / (s**2 + sigma_data**2).sqrt()
    c_in = 1 / (sigma_data**2 + s**2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip * x + c_out * net(c_in * x, c_noise)


DEV = torch.device("cpu")


def sync():
    """Wait for the device (CUDA runs asynchronously)."""
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def median_time(f, reps):
    f()
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        sync()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def train_step_time(net, sigma_data, batch, reps, g, res=28):
    """Median seconds of one EDM training step (fwd + bwd + Adam) at `batch`, on
    `res`×`res` images."""
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, res, res, generator=g).to(DEV)
    s = torch.exp(torch.randn(batch, generator=g) * 1.2 - 1.2).to(DEV)
    n = torch.randn(batch, 1, res, res, generator=g).to(DEV)
    w = (s**2 + sigma_data**2) / (s * sigma_data) ** 2

    def step():
        opt.zero_grad()
        d = denoise(net, sigma_data, x + n * s[:, None, None, None], s)
        loss = (w[:, None, None, None] * (d - x) ** 2).sum() / batch
        loss.backward()
        opt.step()

    return median_time(step, reps)


def timings(net, sigma_data, reps):
    g = torch.Generator().manual_seed(0)
    out = {}
    x64 = torch.randn(64, 1, 28, 28, generator=g).to(DEV)
    s64 = torch.exp(torch.randn(64, generator=g) * 1.2 - 1.2).to(DEV)
    with torch.no_grad():
        out["denoiser_b64"] = median_time(lambda: denoise(net, sigma_data, x64, s64), reps)
    out["train_step_b32"] = train_step_time(net, sigma_data, 32, reps, g)
    gn = torch.nn.GroupNorm(8, 64).to(DEV)
    h = torch.randn(32, 64, 32, 32, generator=g).to(DEV).requires_grad_()
    with torch.no_grad():
        out["groupnorm_fwd"] = median_time(lambda: gn(h), reps)
    out["groupnorm_fwd_bwd"] = median_time(lambda: gn(h).sum().backward(), reps)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(DEV)
    with torch.no_grad():
        out["conv3x3_fwd"] = median_time(lambda: conv(h), reps)
    out["conv3x3_fwd_bwd"] = median_time(lambda: conv(h).sum().backward(), reps)
    a = torch.randn(1024, 1024, generator=g).to(DEV)
    b = torch.randn(1024, 1024, generator=g).to(DEV)
    out["matmul_1024"] = median_time(lambda: a @ b, reps)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--check", nargs=2, metavar=("IN", "OUT"))
    p.add_argument("--time", action="store_true")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scaling", help="comma-separated batch sizes: time only the training step")
    p.add_argument(
        "--size-scaling",
        help="comma-separated image sizes: the training step of a randomly initialised UNet "
        "of that resolution (attention at res/4) at batch --batch",
    )
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    a = p.parse_args()
    global DEV
    DEV = torch.device(a.device)
    if DEV.type == "cuda":
        # Strict fp32 like scorelab's side: no TF32 in cuDNN's convolutions (on by
        # default) or in matrix products.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(a.threads)
    net, sigma_data = load(a.checkpoint)
    net = net.to(DEV)
    if a.check:
        x = torch.from_numpy(np.load(f"{a.check[0]}/x.npy")).float().to(DEV)
        s = torch.from_numpy(np.load(f"{a.check[0]}/sigma.npy")).float().to(DEV)
        with torch.no_grad():
            d = denoise(net.eval(), sigma_data, x, s)
        np.save(a.check[1], d.cpu().numpy().astype(np.float32))
    if a.scaling:
        g = torch.Generator().manual_seed(0)
        t = {b: train_step_time(net, sigma_data, int(b), a.reps, g) for b in a.scaling.split(",")}
        print(json.dumps({"impl": "torch " + torch.__version__, "device": a.device, "threads": a.threads, "seconds": t}))
    if a.size_scaling:
        g = torch.Generator().manual_seed(0)
        t = {}
        for r in a.size_scaling.split(","):
            torch.manual_seed(0)
            net_r = UNet(res=int(r), attn_res=(int(r) // 4,)).to(DEV)
            t[r] = train_step_time(net_r, 0.5, a.batch, a.reps, g, int(r))
        print(json.dumps({"impl": "torch " + torch.__version__, "device": a.device, "threads": a.threads, "seconds": t}))
    if a.time:
        t = timings(net, sigma_data, a.reps)
        print(json.dumps({"impl": "torch " + torch.__version__, "device": a.device, "threads": a.threads, "seconds": t}))


if __name__ == "__main__":
    main()
