#!/usr/bin/env bash
# The latent model's key adherence per key (docs/musicscore-generation.md): for each
# instrumentation and key below, `scorelab musicscore generate` draws N systems at
# guidance W (seed 0) and reads each one's key signature; keys.md tabulates how many
# show the prompt's number of sharps or flats, with Wilson 95 % intervals; pages/ keeps
# each prompt's first page (four systems).
# Usage: key-study.sh [SCORELAB] [N] [W]   (SCORELAB defaults to `cargo run -q -p scorelab --`)
# KEY_STUDY_CHECKPOINT (default: the shipped model) and KEY_STUDY_OUT (default: this
# folder) study another model; KEY_STUDY_WORK is where the samples go.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out_dir="${KEY_STUDY_OUT:-$here}"
bin="${1:-cargo run -q -p scorelab --}"
n="${2:-16}"
w="${3:-4}"
ck="${KEY_STUDY_CHECKPOINT:-$here/../../../data/checkpoints/musicscore-latent.safetensors}"
work="${KEY_STUDY_WORK:-$here/../../../out/key-study}"
prompts=(
  "violin|C major" "violin|G major" "violin|D major" "violin|A major"
  "violin|F major" "violin|B-flat major"
  "piano|A minor" "piano|G major" "piano|B minor" "piano|B-flat major"
  "2 violins, viola, cello|C major" "2 violins, viola, cello|G major"
  "2 violins, viola, cello|F major" "2 violins, viola, cello|B-flat major"
)
for p in "${prompts[@]}"; do
  inst="${p%%|*}"; key="${p#*|}"
  slug="$(echo "$inst-$key" | tr -c 'A-Za-z0-9\n' '-' | tr -s '-')"
  out="$work/$slug"
  if [ ! -f "$out/samples.json" ]; then
    $bin musicscore generate --checkpoint "$ck" --prompt \
      "a music score, instrumentation is $inst, key is $key" \
      --n "$n" --guidance "$w" --seed 0 --page 4 --out "$out" >/dev/null
  fi
  mkdir -p "$out_dir/pages"
  cp "$out/page-0.png" "$out_dir/pages/$slug.png"   # the first four systems as a page
done
python3 - "$work" "$out_dir/keys.md" "$n" "$w" <<'PY'
import json, math, os, sys
work, md, n, w = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def wilson(k, n, z=1.96):
    p = k / n; c = (p + z*z/(2*n)) / (1 + z*z/n)
    h = z * math.sqrt(p*(1-p)/n + z*z/(4*n*n)) / (1 + z*z/n)
    return max(0.0, c-h), min(1.0, c+h)
rows = ["| prompt | expected fifths | key signature read (fifths: count) | key agrees | staves agree |",
        "|---|---|---|---|---|"]
for d in sorted(os.listdir(work)):
    s = json.load(open(os.path.join(work, d, "samples.json")))
    keys = s["key_signatures"]; k = sum(1 for x in keys if x == s["expected_fifths"])
    st = sum(1 for x in s["detected_staves"] if x == s["expected_staves"])
    hist = {}
    for x in keys: hist[str(x)] = hist.get(str(x), 0) + 1
    lo, hi = wilson(k, len(keys)); slo, shi = wilson(st, len(keys))
    seen = ", ".join(f"{a}: {b}" for a, b in sorted(hist.items()))
    rows.append(f"| {s['prompt'].split(', ', 1)[1]} | {s['expected_fifths']} | {seen} | "
                f"{k}/{len(keys)} [{lo:.2f}, {hi:.2f}] | {st}/{len(keys)} [{slo:.2f}, {shi:.2f}] |")
open(md + ".tmp", "w").write(f"Key study: n = {n} per prompt, guidance {w}, seed 0.\n\n" + "\n".join(rows) + "\n")
os.replace(md + ".tmp", md)
print("\n".join(rows))
PY
