"""Write docs/crate-graph.dot: the workspace's crates, their roles and `src/` line counts,
and their normal dependencies on each other (read from `cargo metadata`).

    python3 docs/crate-graph.py && dot -Tsvg docs/crate-graph.dot -o docs/crate-graph.svg
"""
import json, os, subprocess

ROLE = {
    "score-core": "σ grids, preconditioning, Denoiser,\\nsamplers, guidance, sample metrics",
    "scorelab-kernels": "our kernels (backend\\nextensions): fused GroupNorm",
    "score-io": "IDX, .npy, PNG,\\nimage datasets",
    "score-nn": "UNet, MLP, norms,\\nMiniLM encoder",
    "score-eval": "FID/KID/P&R, Inception\\nand its readers, plots",
    "score-train": "training loop, checkpoints,\\nrun folder, recipes (pipeline)",
    "gaussian-score": "Gaussian scores,\\nteleportation, EV",
    "ntk-theory": "NTK, kernel GD,\\nearly stopping",
    "scoreaug": "ScoreAug, NLA",
    "disback": "distillation,\\nDisBack",
    "musicscore-data": "MusicScore data",
    "musicscore-gen": "text-to-score:\\ntraining, evaluation",
    "scorelab-experiments": "the papers' studies",
    "scorelab-run": "the commands' runs:\\ntrain, sample, fid",
    "scorelab": "the scorelab binary",
}
PAPER = {"gaussian-score", "ntk-theory", "scoreaug", "disback", "musicscore-data", "musicscore-gen"}

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=root))
out = ['digraph crates {',
       '  rankdir=BT; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
       '  edge [color="#666666"];']
edges = []
for p in meta["packages"]:
    name = p["name"]
    if name not in ROLE:
        continue
    src = os.path.join(os.path.dirname(p["manifest_path"]), "src")
    lines = sum(sum(1 for _ in open(os.path.join(d, f)))
                for d, _, fs in os.walk(src) for f in fs if f.endswith(".rs"))
    fill = "#dbe9f6" if name.startswith("score-") else "#e8f3e0" if name in PAPER else "#f6eedb"
    out.append(f'  "{name}" [label="{name}\\n{ROLE[name]}\\n{lines} lines", fillcolor="{fill}"];')
    for dep in p["dependencies"]:
        if dep["name"] in ROLE and dep["kind"] is None:
            edges.append(f'  "{name}" -> "{dep["name"]}";')
out += sorted(edges)
out.append('  { rank=same; "gaussian-score"; "ntk-theory"; "scoreaug"; "disback"; "musicscore-data"; }')
out.append("}")
open(os.path.join(root, "docs", "crate-graph.dot"), "w").write("\n".join(out) + "\n")
