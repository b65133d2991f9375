"""quintet.algovision vs algovision 0.1.2: forward + backward time of the same programs.

    .venv/bin/python benchmarks/algovision.py [--repeats 7] [--threads 1]

Cases: the README's bubble sort (batch 100, beta 5, n = 5, 9, 15) and relaxed Bellman-Ford with
traceback on a 12x12 grid (batch 32, beta 10, 24 sweeps), each written as a program and run by
algovision and by quintet's interpreter, and computed by quintet's loops (``relaxed_bubble_sort``,
``relaxed_shortest_path``).  Before timing, every case checks in float64 that outputs and input
gradients agree to 1e-6.  Median wall time and median CPU time of the process (``*_cpu_s``: on
shared cores the CPU time leaves out the time spent waiting for a core); runs of the libraries
alternate.  Writes benchmarks/results/algovision.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from quintet.algovision.bubble import relaxed_bubble_sort
from quintet.algovision.programs import bubble_sort_program, shortest_path_program
from quintet.algovision.shortest_path import relaxed_shortest_path
from quintet.core.io import atomic_write_json
from quintet.core.runs import environment, markdown_table


def fwd_bwd(fn: Callable, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    out = fn(x)
    out = out if isinstance(out, tuple) else (out,)
    gen = torch.Generator().manual_seed(0)
    sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in out).backward()
    return [o.detach() for o in out], x.grad


def max_diff(a, b) -> float:
    (out_a, g_a), (out_b, g_b) = a, b
    return max(float((x - y).abs().max()) for x, y in zip([*out_a, g_a], [*out_b, g_b]))


def time_cases(fns: dict[str, Callable], x: torch.Tensor, repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of forward + backward per implementation."""
    for fn in fns.values():
        fwd_bwd(fn, x)  # warm-up
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fwd_bwd(fn, x)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: (statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for name, t in times.items()}


def case(label: str, fns: dict[str, Callable], x: torch.Tensor, repeats: int) -> dict:
    reference = fwd_bwd(fns["algovision"], x.double())
    diffs = {name: max_diff(fwd_bwd(fn, x.double()), reference) for name, fn in fns.items() if name != "algovision"}
    for name, diff in diffs.items():
        if diff > 1e-6:
            raise RuntimeError(f"{label}: {name} differs from algovision by {diff:.2e}")
    times = time_cases(fns, x, repeats)
    (wall, cpu) = times["algovision"]
    row = {"case": label, "algovision_s": wall, "algovision_cpu_s": cpu}
    for name in fns:
        if name != "algovision":
            row[f"{name}_s"], row[f"{name}_cpu_s"] = times[name]
            row[f"speedup_{name}"] = wall / times[name][0]
            row[f"speedup_{name}_cpu"] = cpu / times[name][1]
            row[f"max_abs_diff_{name}"] = diffs[name]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "algovision.json")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    here = Path(__file__).resolve().parent  # this file is named algovision.py too: import the package
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    algovision = importlib.import_module("algovision")

    warnings.filterwarnings("ignore", category=UserWarning)  # algovision indexes with lists
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in (5, 9, 15):
        x = torch.randn(100, n, generator=gen)
        rows.append(case(f"bubble sort n={n}, batch 100, beta 5",
                         {"algovision": bubble_sort_program(5.0, language=algovision),
                          "quintet_program": bubble_sort_program(5.0),
                          "quintet": lambda v: relaxed_bubble_sort(v, 5.0)}, x, args.repeats))
        print(rows[-1])
    cost = torch.rand(32, 12, 12, generator=gen) * 9 + 0.5
    rows.append(case("Bellman-Ford 12x12, batch 32, beta 10, 24 sweeps",
                     {"algovision": shortest_path_program(10.0, 24, language=algovision),
                      "quintet_program": shortest_path_program(10.0, 24),
                      "quintet": lambda c: relaxed_shortest_path(c, 10.0, 24)}, cost, args.repeats))
    print(rows[-1])
    atomic_write_json(args.out, {"rows": rows, "repeats": args.repeats, "threads": args.threads,
                                 "load_average_1min": round(os.getloadavg()[0], 2),
                                 "algovision": getattr(algovision, "__version__", "0.1.2"),
                                 "environment": environment()})
    table = [{"case": r["case"], "algovision ms": round(1e3 * r["algovision_cpu_s"], 2),
              "quintet ms": round(1e3 * r["quintet_cpu_s"], 2), "speed-up": f"{r['speedup_quintet_cpu']:.1f}x",
              "quintet interpreter ms": round(1e3 * r["quintet_program_cpu_s"], 2),
              "interpreter speed-up": f"{r['speedup_quintet_program_cpu']:.1f}x",
              "max |diff| (float64), loop / interpreter":
                  f"{r['max_abs_diff_quintet']:.1e} / {r['max_abs_diff_quintet_program']:.1e}"} for r in rows]
    print("CPU time of forward + backward (wall times in the JSON)")
    print(markdown_table(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
