"""quintet.logic vs difflogic 0.1.0 on one CPU thread: one training step (forward + backward +
Adam) of a 4 x 8000-gate net on 784 inputs at batch 128, and discretised inference on thresholded
MNIST (4 x 8000 against difflogic's CompiledLogicNet, 6 x 8000 for quintet alone).

    .venv/bin/python tools/install_difflogic.py      # the peer's pure-Python path (no CUDA build)
    .venv/bin/python benchmarks/logic.py [--repeats 5] [--samples 100000] [--peer-opt-level 1]

Outputs and gradients are compared before anything is timed; both packages run in turn within
every repeat, and medians are reported (inference: wall-clock and the thread's CPU time). Writes
benchmarks/results/logic.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import torch

from quintet.core.io import atomic_write_json
from quintet.core.runs import markdown_table
from quintet.logic.bench import peer_available, run_benchmark


def _rates(row: dict, name: str) -> str:
    return (f"{row[f'{name}_samples_per_s'] / 1e6:.2f} M/s wall-clock, "
            f"{row[f'{name}_samples_per_cpu_s'] / 1e6:.2f} M per CPU second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--peer-opt-level", type=int, default=1, choices=range(4))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "logic.json")
    args = parser.parse_args()
    if args.repeats < 1 or args.samples < 1:
        parser.error("--repeats and --samples must be >= 1")
    if not peer_available():
        print("difflogic is not importable: installing its pure-Python path (tools/install_difflogic.py)")
        subprocess.run([sys.executable, str(Path(__file__).parents[1] / "tools" / "install_difflogic.py")], check=True)
    torch.set_num_threads(1)
    result = run_benchmark(repeats=args.repeats, samples=args.samples, peer_opt_level=args.peer_opt_level)
    atomic_write_json(args.out, result)
    table = []
    for r in result["rows"]:
        if "quintet_s" in r:
            table.append({"case": r["case"], "quintet": f"{r['quintet_s'] * 1e3:.1f} ms",
                          "difflogic": f"{r['difflogic_s'] * 1e3:.1f} ms" if "difflogic_s" in r else "-",
                          "speed-up": f"{r['speedup_vs_difflogic']:.1f}x" if "speedup_vs_difflogic" in r else "-",
                          "check": f"max |diff| out {r.get('max_abs_diff_output', float('nan')):.1e}, "
                                   f"grad {r.get('max_abs_diff_grad', float('nan')):.1e}"})
        else:
            table.append({"case": r["case"], "quintet": f"{_rates(r, 'quintet_c')} (C), compile {r['quintet_compile_s']} s",
                          "difflogic": f"{_rates(r, 'difflogic')}, compile {r['difflogic_compile_s']} s"
                                       if "difflogic_samples_per_s" in r else "-",
                          "speed-up": f"{r['speedup_vs_difflogic']:.1f}x (CPU time {r['speedup_vs_difflogic_cpu']:.1f}x)"
                                      if "speedup_vs_difflogic" in r else "-",
                          "check": f"C = torch: {r['quintet_equals_torch']}, NumPy = torch: {r['numpy_equals_torch']}"})
    print(markdown_table(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
