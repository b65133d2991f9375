"""quintet.sorting vs diffsort 0.2.0 (and torchsort where installed): forward + backward time
(median of 5) and peak memory for n = 32, 256, 1024 (batch 64, 64, 16).

    .venv/bin/python benchmarks/sorting.py [--sizes 32,256,1024] [--threads 2]

Writes benchmarks/results/sorting.json and prints a Markdown table.  The diffsort run at
n = 1024 takes minutes; it is measured once here, never in the test suite.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from quintet.core.errors import QuintetError
from quintet.core.io import atomic_write_json
from quintet.core.runs import markdown_table
from quintet.sorting.bench import check_settings, run_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="32,256,1024")
    parser.add_argument("--network", default="bitonic")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sorting.json")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        check_settings(sizes, args.network, args.repeats)
    except (ValueError, QuintetError) as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    result = run_benchmark(sizes, network=args.network, repeats=args.repeats,
                           memory=not args.no_memory, threads=args.threads)
    atomic_write_json(args.out, result)
    table = []
    for r in result["rows"]:
        table.append({
            "n": r["n"], "batch": r["batch"],
            "quintet s": round(r["quintet_s"], 4),
            "diffsort s": round(r["diffsort_s"], 3) if "diffsort_s" in r else "-",
            "speed-up": f"{r['speedup_vs_diffsort']:.0f}x" if "speedup_vs_diffsort" in r else "-",
            "torchsort s (values only)": round(r["torchsort_s"], 4) if "torchsort_s" in r else "not installed",
            "quintet peak MiB": r.get("quintet_peak_mib", "-"),
            "diffsort peak MiB": r.get("diffsort_peak_mib", "-"),
            "max |diff| P": f"{r['max_abs_diff_P']:.1e}" if "max_abs_diff_P" in r else "-",
        })
    print(markdown_table(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
