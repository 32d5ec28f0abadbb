#!/usr/bin/env bash
# The GPU rows of docs/performance.md (issue 11), as run on a lent NVIDIA machine that
# has PyTorch CUDA but no Rust toolchain and no network. scorelab runs on burn's wgpu
# backend (Vulkan): burn 0.22.1's `cuda` feature cannot be built offline (cubecl-cuda
# needs cubecl-llvm, whose build script downloads an LLVM bundle).
#   here:   cargo build -p scorelab -p xtask --features scorelab/wgpu,xtask/wgpu
#           (CARGO_TARGET_DIR=~/.cache/scorelab/target-gpu), then strip and xz the two
#           binaries into .gpubin/ (scorelab.xz, xtask.xz); the Vulkan and GL loaders
#           as Debian packages into .gl/ (`apt-get download libvulkan1 libegl1 libglvnd0
#           libopengl0 libgl1 libglx0 libgles2`);
#           With burn's fusion (opt-in since 2026-12-07, `--features scorelab/fusion`):
#           a third binary, .gpubin/scorelab-fusion.xz, for the `fusion` step;
#   there:  bash benches/gpu/device-check.sh   (from the repository root; OUT=results;
#           STEPS="bench demo" runs only those of bench, demo, train, scaling, fusion,
#           devices)
# Each step has its own time limit so that one slow step does not cost the others.
set -uo pipefail
BIN=${BIN:-.gpubin}
OUT=${OUT:-out/gpu}
mkdir -p "$OUT"
for f in "$BIN"/*.xz; do xz -dkf "$f"; done
chmod +x "$BIN/scorelab" "$BIN/xtask" "$BIN/scorelab-fusion" 2>/dev/null
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$VK_DRIVER_FILES" ] || unset VK_DRIVER_FILES
ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ 2>&1 | head
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0))' | tee -a "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"
# burn's autotune (on with --features wgpu|cuda since 2026-12-07) writes the kernel it
# chose for each operation and shape, with the candidates' times, to $OUT/autotune.log:
# cubecl reads cubecl.toml from the working directory.
cat > cubecl.toml <<TOML
[autotune.logger]
level = "minimal"
file = "$OUT/autotune.log"
TOML

STEPS=${STEPS:-bench demo train scaling fusion devices}  # the steps to run, by name
step() { # name, seconds, command...
    local name=$1 secs=$2; shift 2
    case " $STEPS " in *" $name "*) ;; *) echo "== $name skipped"; return ;; esac
    echo "== $name (limit ${secs}s)"
    local t0=$(date +%s%N)
    timeout "$secs" "$@" >"/tmp/$name.out" 2>"/tmp/$name.err"
    local rc=$?
    echo "   rc=$rc in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
    tail -n 25 "/tmp/$name.out"; grep -v '^ *[0-9]*: \(<unknown>\|__libc\)' "/tmp/$name.err" | tail -n 12
}

step bench 200 "$BIN/xtask" bench-vs-torch --device wgpu --python python3 --rounds 3 --reps 10 --out "$OUT"
step demo 60 "$BIN/scorelab" --device wgpu --json demo --no-fid
step train 70 "$BIN/scorelab" --device wgpu train --data fashion-mnist-test --subset 2048 \
    --steps 300 --batch-size 32 --channels 16 --out /tmp/gpu-train
cp /tmp/gpu-train/train.jsonl "$OUT/train.jsonl" 2>/dev/null
step scaling 100 "$BIN/xtask" bench-vs-torch --device wgpu --python python3 --scaling 8,32,128 \
    --rounds 2 --reps 5 --out "$OUT"
# burn's fusion: the demo checkpoint's samples on wgpu under fusion against burn-flex's
# (on software Vulkan they differ by up to 481 where values lie in [-1.2, 1.6]).
CK=data/checkpoints/fashion-mnist-unet.safetensors
step fusion 150 bash -c "'$BIN/scorelab-fusion' sample --device wgpu --checkpoint $CK --n 16 \
    --out /tmp/fusion-wgpu && '$BIN/scorelab' sample --checkpoint $CK --n 16 --out /tmp/fusion-flex \
    && python3 -c 'import numpy as n; a=n.load(\"/tmp/fusion-wgpu/samples.npy\"); \
b=n.load(\"/tmp/fusion-flex/samples.npy\"); print(\"fusion vs flex max|d|\", abs(a-b).max())'"
ls -la "$OUT"
# Data parallelism (`train --devices`, since 2026-12-08): two replicas on the one GPU
# against one device with the same two micro-batches: the same loss, and the overhead
# of the replica's copies and threads in the seconds.
DP="train --data fashion-mnist-test --subset 2048 --steps 50 --batch-size 32 --channels 16 --json"
step devices 120 bash -c "'$BIN/scorelab' $DP --devices wgpu,wgpu --out /tmp/dp2 \
    && '$BIN/scorelab' --device wgpu $DP --grad-accumulation 2 --out /tmp/dp1"
