#!/usr/bin/env bash
# Issue 11: the cost a new user pays, measured from a fresh clone with an empty build
# cache. Runs, in order, the README's main command, its test command and the benches'
# build, each in the same new CARGO_TARGET_DIR, and prints each command's wall time and
# how many times it compiled burn (1, 0, 0 means burn was built once and shared).
#   bash benches/cold-build.sh [REPO] [WORKDIR]
# REPO defaults to this checkout (its committed HEAD); WORKDIR to a new temporary folder.
# The set-up caches outside the build (~/.cache/scorelab/fid, minilm) are reused if
# present: the measurement is of the build, not of the downloads.
set -euo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
git clone -q "$repo" "$work/main"
[ -e "$work/shared" ] || ln -s "$repo/../shared" "$work/shared"
export CARGO_TARGET_DIR="$work/target"
cd "$work/main"
run() { # label, command
    local label=$1; shift
    local t0=$(date +%s)
    bash -c "$*" >"$work/$label.log" 2>&1
    local secs=$(( $(date +%s) - t0 ))
    local burn=$(grep -c '^ *Compiling burn v' "$work/$label.log" || true)
    printf '%-5s %6d s  burn compiled %d time(s)  %s\n' "$label" "$secs" "$burn" "$*"
}
echo "fresh clone of $(git rev-parse --short HEAD) in $work, empty CARGO_TARGET_DIR, $(nproc) cores"
run main "cargo xtask fid-setup && cargo run -p scorelab -- demo"
run tests "cargo xtask setup && cargo test --workspace"
run bench "cargo bench -p scorelab-benches --profile dev --no-run"
