"""quintet.render: binned GenDR vs the dense reference (every pixel × face pair), teapot silhouette.

Forward + backward of the 2464-face teapot's opacity (logistic on squared distances, τ = 1e-4,
probabilistic T-conorm), median of ``--repeats`` runs, and the peak resident memory each adds
(one subprocess per case; the dense reference is timed once). The outputs of both are checked equal before timing. The dense
reference runs only where its pair count stays below ``--dense-max-pairs`` (its memory grows as
B·S²·F); larger sizes list the binned renderer alone.

    .venv/bin/python benchmarks/render.py [--sizes 64,128,256] [--repeats 5]

Writes benchmarks/results/render.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from quintet.core.io import atomic_write_json
from quintet.core.runs import environment, markdown_table

SETTINGS = dict(dist="logistic", tau=1e-4, squared=True, tconorm="probabilistic", blend="none")


def _scene(size: int):
    from quintet.datasets.registry import data_root
    from quintet.render import RenderSettings, load_mesh, project

    mesh = load_mesh(data_root() / "meshes" / "teapot.obj")
    screen = mesh.face_vertices(project(mesh.vertices, 2.732, 30.0, 45.0, 30.0))
    return screen, RenderSettings(image_size=size, **SETTINGS)


def _step(fn, screen, settings) -> tuple[torch.Tensor, torch.Tensor]:
    x = screen.clone().requires_grad_()
    image = fn(x, settings)
    (grad,) = torch.autograd.grad((image * torch.linspace(0, 1, image.numel()).view_as(image)).sum(), x)
    return image.detach(), grad


def _timed(fn, screen, settings, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        _step(fn, screen, settings)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_mib(impl: str, size: int) -> float:
    """Peak resident memory added by one forward + backward, measured in a fresh process."""
    code = (
        "import resource, torch, sys; sys.path.insert(0, %r); torch.set_num_threads(1)\n"
        "from render import _scene, _step\nfrom quintet.render import render, render_dense\n"
        "screen, settings = _scene(%d)\nbase = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "_step(%s, screen, settings)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n"
    ) % (str(Path(__file__).parent), size, impl)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    return round(float(out.stdout.strip().splitlines()[-1]), 1)


def main() -> None:
    from quintet.render import render, render_dense

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dense-max-pairs", type=int, default=12_000_000)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "render.json")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    torch.set_num_threads(1)
    # memory first, from a small parent: a child's peak-RSS counter starts at the parent's RSS
    dense_max = args.dense_max_pairs
    faces = _scene(sizes[0])[0].shape[1]
    memory = {} if args.no_memory else {
        (impl, size): _peak_mib(impl, size) for size in sizes for impl in ("render", "render_dense")
        if impl == "render" or size * size * faces <= dense_max}
    rows = []
    for size in sizes:
        screen, settings = _scene(size)
        row = {"size": size, "faces": faces, "pairs_dense": size * size * faces,
               "cutoff": round(settings.cutoff, 5)}
        fast_image, fast_grad = _step(render, screen, settings)
        row["binned_s"] = _timed(render, screen, settings, args.repeats)
        if memory:
            row["binned_peak_mib"] = memory[("render", size)]
        if row["pairs_dense"] <= dense_max:
            start = time.perf_counter()
            dense_image, dense_grad = _step(render_dense, screen, settings)
            row["dense_s"] = time.perf_counter() - start  # one run: it takes seconds to minutes
            row["max_abs_diff_image"] = float((fast_image - dense_image).abs().max())
            row["max_abs_diff_grad"] = float((fast_grad - dense_grad).abs().max())
            assert row["max_abs_diff_image"] < 1e-4 and row["max_abs_diff_grad"] < 1e-2, row
            row["speedup"] = row["dense_s"] / row["binned_s"]
            if memory:
                row["dense_peak_mib"] = memory[("render_dense", size)]
                row["memory_ratio"] = row["dense_peak_mib"] / max(row["binned_peak_mib"], 1e-3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"benchmark": "teapot silhouette, forward + backward", "settings": SETTINGS, "threads": 1,
              "repeats": args.repeats, "rows": rows, "environment": environment(),
              "peak_rss_of_this_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    atomic_write_json(args.out, result)
    table = [{"size": f"{r['size']}×{r['size']}", "binned s": round(r["binned_s"], 4),
              "dense s": round(r["dense_s"], 3) if "dense_s" in r else "not run",
              "speed-up": f"{r['speedup']:.0f}x" if "speedup" in r else "-",
              "binned peak MiB": r.get("binned_peak_mib", "-"), "dense peak MiB": r.get("dense_peak_mib", "-"),
              "max |diff|": f"{r['max_abs_diff_image']:.1e}" if "max_abs_diff_image" in r else "-"} for r in rows]
    print(markdown_table(table))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
