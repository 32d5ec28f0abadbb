"""The equivariance error at sigma = 0.5 per transform (mean ± sd over seeds) from the
study reports given, arm by arm: `python3 per_transform.py REPORT.json [...]`.
(The study's own scoreaug.md has this table since it was added; this script renders it
for reports written before.)"""
import json
import statistics
import sys

KINDS = ["flip", "rot90", "translate", "cutout", "brightness"]
print("| report | arm | " + " | ".join(KINDS) + " |")
print("|---|---|" + "---|" * len(KINDS))
for path in sys.argv[1:]:
    r = json.load(open(path))
    for arm in [a["name"] for a in r["arms"]]:
        cells = []
        for k in KINDS:
            v = [e["error"] for run in r["runs"] if run["arm"] == arm
                 for e in run["report"]["equivariance"] if e["kind"] == k and e["sigma"] == 0.5]
            sd = statistics.stdev(v) if len(v) > 1 else float("nan")
            cells.append(f"{statistics.mean(v):.4f} ± {sd:.4f}" if v else "–")
        print(f"| {path.split('/')[-2]} | {arm} | " + " | ".join(cells) + " |")
