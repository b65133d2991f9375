"""Throughput of Vitruvion's hand-drawn renderer (:func:`quintet.sketch.io.render.render_hand_drawn`,
GP strokes from cached Cholesky factors, PIL rasterisation) beside a reference that rasterises the
SAME noisy strokes through matplotlib (the renderer's earlier implementation) and draws the GP
with a fresh Cholesky factorisation per curve. Both are checked to agree (same ink mass within
25 %, IoU of dilated ink > 0.5) before timing. Writes benchmarks/results/sketch_render.json.

    .venv/bin/python benchmarks/sketch_render.py [--n 300]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from quintet.sketch.io.render import hand_drawn_strokes, matern32_kernel, render_hand_drawn
from quintet.sketch.synth import generate_sketches


def reference_render(sketch, seed: int, size: int = 128) -> np.ndarray:
    """Same strokes, uncached Cholesky per curve, rasterised by matplotlib's Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    curves, dots = hand_drawn_strokes(sketch, seed, size, sigma=1e-12)  # clean geometry
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-0.55, 0.55)
    ax.set_ylim(-0.55, 0.55)
    ax.axis("off")
    for pts in curves:
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
        L = np.linalg.cholesky(matern32_kernel(s, 0.006, 0.15) + 1e-12 * np.eye(len(s)))
        tang = np.gradient(pts, axis=0)
        nrm = np.stack([-tang[:, 1], tang[:, 0]], 1) / np.hypot(*tang.T)[:, None]
        q = pts + nrm * (L @ rng.standard_normal(len(s)))[:, None]
        ax.plot(q[:, 0], q[:, 1], "-", color="black", linewidth=1.0, solid_capstyle="round")
    for x, y in dots:
        ax.plot([x], [y], "o", color="black", markersize=1.5)
    canvas.draw()
    return 1.0 - np.asarray(canvas.buffer_rgba())[..., 0].astype(np.float32) / 255.0


def _rate(fn, sketches) -> float:
    t = time.perf_counter()
    for i, s in enumerate(sketches):
        fn(s, i)
    return len(sketches) / (time.perf_counter() - t)


def main() -> None:
    from scipy.ndimage import binary_dilation

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    sketches = generate_sketches(args.n, seed=0)
    ious, mass = [], []
    for i, s in enumerate(sketches[:50]):
        a, b = render_hand_drawn(s, i) > 0.3, reference_render(s, i) > 0.3
        da, db = binary_dilation(a, iterations=2), binary_dilation(b, iterations=2)
        ious.append((da & db).sum() / max((da | db).sum(), 1))
        mass.append(render_hand_drawn(s, i).sum() / max(reference_render(s, i).sum(), 1e-9))
    assert np.median(ious) > 0.5 and abs(np.median(mass) - 1) < 0.25, (np.median(ious), np.median(mass))
    for s in sketches[:20]:  # warm the Cholesky cache and imports
        render_hand_drawn(s, 0, augment=True)
    out = {
        "n_sketches": args.n,
        "agreement": {"median_iou_dilated_ink": round(float(np.median(ious)), 3),
                      "median_ink_mass_ratio": round(float(np.median(mass)), 3)},
        "renders_per_second": {
            "render_hand_drawn (cached GP, PIL)": round(_rate(lambda s, i: render_hand_drawn(s, i), sketches), 1),
            "render_hand_drawn augment=True": round(_rate(lambda s, i: render_hand_drawn(s, i, augment=True), sketches), 1),
            "reference (per-curve Cholesky, matplotlib)": round(_rate(reference_render, sketches[: max(args.n // 4, 1)]), 1),
        },
        "note": "2 shared cores; before this change the package had the matplotlib renderer "
                "(measured 64 renders/s) and a separate PIL sine-wobble renderer (508 renders/s) in models/data.py",
    }
    r = out["renders_per_second"]
    out["speedup_vs_reference"] = round(r["render_hand_drawn (cached GP, PIL)"] / r["reference (per-curve Cholesky, matplotlib)"], 2)
    path = Path(__file__).parent / "results" / "sketch_render.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    assert math.isfinite(out["speedup_vs_reference"])


if __name__ == "__main__":
    main()
