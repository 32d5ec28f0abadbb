"""Group a `perf report` by operation kind (issue 11, item 2).

    perf record -F 499 -g -o perf.data -- <command>
    perf report -i perf.data --stdio --no-children --sort symbol -g none \
        --percent-limit 0.05 > report.txt
    python3 benches/profile/op_kinds.py report.txt

Each symbol is put in the first kind whose pattern it matches (case-insensitive), and the
self-time percentages are summed per kind. The patterns are names of functions in burn,
burn-flex, gemm and the C library; a symbol that matches none counts as "other" and the
largest of those are listed so that the patterns can be checked.
"""
import re
import sys

KINDS = [
    ("convolution (conv, conv_transpose = input gradient, im2col)", r"conv|im2col|col2im"),
    ("matrix multiply (gemm micro-kernels)", r"gemm|matmul|sgemm|microkernel|dgemm"),
    ("layout copies (copy_2d_tiled, into_contiguous)", r"copy_2d_tiled|into_contiguous|filled_typed"),
    ("memory (copy, set, alloc, free, page faults)", r"memcpy|memmove|memset|malloc|free|realloc|alloc|dealloc|page_fault|clear_page|_raw_vec|copy_from_slice|to_vec|clone"),
    ("reductions (sum, mean, var, max)", r"reduce|sum|mean|_var|max_dim|argmax|fold"),
    ("scalar libm exp/erf (sigmoid in SiLU, softmax)", r"expf|erff|__exp|__erf"),
    ("activation / transcendental (exp, erf, silu, sigmoid, tanh)", r"exp|erf|silu|sigmoid|tanh|log|sqrt|powf"),
    ("elementwise and broadcast (add, mul, sub, div; macerator SIMD loops)", r"macerator|run_vectorized|binary|unary|elementwise|broadcast|zip|map|add|mul|sub|div|scalar|strided|iter"),
    ("optimizer (Adam, EMA)", r"adam|optim|ema"),
    ("autodiff bookkeeping", r"autodiff|backward|graph|node|checkpoint|step"),
    ("closures inlined from several ops (unattributed without frame pointers)", r"call_mut|call_once|LocalKey"),
    ("threading and kernel (rayon, spin, futex, scheduler)", r"rayon|crossbeam|spin|futex|park|sched|yield|task_switch|\[kernel\]"),
]


def main():
    rows = []
    for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
        m = re.match(r"\s*([\d.]+)%\s+\[([.k])\]\s+(.*?)(\s{2,}.*)?$", line)
        if m:
            sym = m.group(3).strip()
            rows.append((float(m.group(1)), ("[kernel] " if m.group(2) == "k" else "") + sym))
    total = sum(p for p, _ in rows)
    per = {k: 0.0 for k, _ in KINDS}
    per["other"] = 0.0
    others = []
    for p, sym in rows:
        for k, pat in KINDS:
            if re.search(pat, sym, re.IGNORECASE):
                per[k] += p
                break
        else:
            per["other"] += p
            others.append((p, sym))
    print(f"| kind | share of samples |\n|---|---:|")
    for k, v in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {v:.1f} % |")
    print(f"\n(sum over listed symbols: {total:.1f} %)\n\nlargest 'other' symbols:")
    for p, sym in sorted(others, reverse=True)[:12]:
        print(f"  {p:5.2f} %  {sym[:110]}")


if __name__ == "__main__":
    main()
