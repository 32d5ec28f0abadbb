#!/usr/bin/env bash
# Same-hour A/B of two xtask builds against PyTorch (issue 11, docs/performance.md).
#
#   bash benches/ab/run.sh BASE_XTASK NEW_XTASK OUT_DIR [PAIRS] [ROUNDS] [REPS]
#
# Runs `bench-vs-torch --rounds ROUNDS --reps REPS` PAIRS times in the order base, new,
# base, new, … (default 2 pairs, 2 rounds, 5 reps), writing OUT_DIR/{base,new}-<i>.json,
# then summarises them into OUT_DIR/summary.md (benches/ab/summary.py). Build BASE_XTASK
# from the base commit in a git worktree with the same CARGO_TARGET_DIR and copy both
# binaries out of the target folder first, so that neither is rebuilt in between.
set -euo pipefail
base=$1 new=$2 out=$3 pairs=${4:-2} rounds=${5:-2} reps=${6:-5}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for i in $(seq 1 "$pairs"); do
    for side in base new; do
        bin=$base
        [ "$side" = new ] && bin=$new
        echo "== pair $i: $side ($bin)"
        "$bin" bench-vs-torch --rounds "$rounds" --reps "$reps" --out "$tmp/$side-$i" >/dev/null
        cp "$tmp/$side-$i/bench_vs_torch.json" "$out/$side-$i.json"
    done
done
python3 "$(dirname "$0")/summary.py" "$out" >"$out/summary.md"
cat "$out/summary.md"
