"""quintet.sorting vs diffsort 0.2.0 (and torchsort where installed): forward + backward time and
peak memory over n, for the bitonic and the odd-even network.

    .venv/bin/python benchmarks/sorting.py [--bitonic 4,...,4096] [--odd-even 4,...,256] [--threads 1]

Both implementations run on the same inputs, their outputs are checked equal first, then their
runs alternate (median reported).  diffsort is timed up to --reference-max-n (bitonic, 256) and
--reference-max-n-odd-even (128): its dense per-layer products cost O(n^3) each, minutes per run
beyond (the speed-up grows with n: quintet's products cost O(n) per comparator).  Odd-even keeps ~2 n^3 floats per row for the
backward in both implementations, so its sizes stop where that exceeds 3 GiB at batch 1.
Writes benchmarks/results/sorting.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from quintet.core.errors import QuintetError
from quintet.core.io import atomic_write_json
from quintet.core.runs import markdown_table
from quintet.sorting.bench import check_settings, run_benchmark

BITONIC = "4,5,8,16,32,64,100,128,256,512,1024,2048,4096"
ODD_EVEN = "4,5,8,16,32,64,128,256,512"


def _table(rows: list[dict]) -> str:
    table = []
    for r in rows:
        if "skipped" in r:
            table.append({"network": r["network"], "n": r["n"], "batch": "-", "quintet CPU ms": "-",
                          "diffsort CPU ms": "-", "speed-up (CPU)": f"not run: {r['skipped']}", "speed-up (wall)": "-",
                          "quintet peak MiB": "-", "diffsort peak MiB": "-",
                          "max abs diff P": "-"})
            continue
        table.append({
            "network": r["network"], "n": r["n"], "batch": r["batch"],
            "quintet CPU ms": round(1e3 * r["quintet_cpu_s"], 2),
            "diffsort CPU ms": round(1e3 * r["diffsort_cpu_s"], 2) if "diffsort_s" in r else "not timed",
            "speed-up (CPU)": f"{r['speedup_cpu_vs_diffsort']:.2f}x" if "diffsort_s" in r else "-",
            "speed-up (wall)": f"{r['speedup_vs_diffsort']:.2f}x" if "diffsort_s" in r else "-",
            "quintet peak MiB": r.get("quintet_peak_mib", "-"),
            "diffsort peak MiB": r.get("diffsort_peak_mib", "-"),
            "max abs diff P": f"{r['max_abs_diff_P']:.1e}" if "max_abs_diff_P" in r else "-",
        })
    return markdown_table(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bitonic", default=BITONIC, help="sizes for the bitonic network ('' for none)")
    parser.add_argument("--odd-even", default=ODD_EVEN, help="sizes for the odd-even network ('' for none)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference-max-n", type=int, default=256, help="largest n diffsort is timed at (bitonic)")
    parser.add_argument("--reference-max-n-odd-even", type=int, default=128,
                        help="largest n diffsort is timed at (odd-even: n layers, each a dense product)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sorting.json")
    args = parser.parse_args()
    plan = []
    try:
        if args.threads < 1:
            raise QuintetError(f"--threads must be >= 1, got {args.threads}")
        for network, text in (("bitonic", args.bitonic), ("odd_even", args.odd_even)):
            sizes = [int(s) for s in text.split(",") if s.strip()]
            if sizes:
                plan.append((check_settings(sizes, network, args.repeats), sizes))
    except (ValueError, QuintetError) as exc:
        parser.error(str(exc))
    torch.set_num_threads(args.threads)
    results = {}
    cap = {"bitonic": args.reference_max_n, "odd_even": args.reference_max_n_odd_even}
    for network, sizes in plan:
        results[network] = run_benchmark(sizes, network=network, repeats=args.repeats, memory=not args.no_memory,
                                         threads=args.threads, reference_max_n=cap[network])
        atomic_write_json(args.out, results)  # after each network, so that a long run keeps what it has
    print(_table([row for res in results.values() for row in res["rows"]]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
