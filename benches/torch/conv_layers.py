"""PyTorch twin of the kernels bench's `conv3x3-unet` group (docs/performance.md):
the UNet's 3x3 convolutions at batch 32, forward, forward + input gradient, forward +
weight gradient, median of 20 after one warm-up, 2 threads. Development time only."""
import statistics as st
import time

import torch
torch.set_num_threads(2)
def tm(f, reps=20):
    f(); ts=[]
    for _ in range(reps):
        t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return st.median(ts)*1e3
for ci,co,hw in [(16,16,28),(32,32,14)]:
    conv=torch.nn.Conv2d(ci,co,3,padding=1)
    x=torch.randn(32,ci,hw,hw)
    with torch.no_grad():
        f=tm(lambda: conv(x))
    xg=x.clone().requires_grad_(True)
    for p in conv.parameters(): p.requires_grad_(False)
    def xgrad():
        xg.grad=None; conv(xg).sum().backward()
    a=tm(xgrad)
    for p in conv.parameters(): p.requires_grad_(True)
    def wgrad():
        conv.weight.grad=None; conv.bias.grad=None; conv(x).sum().backward()
    b=tm(wgrad)
    print(f"{ci}to{co}_{hw}: fwd {f:.2f} xgrad {a:.2f} wgrad {b:.2f} ms")
