"""Drawing sketches: SVG/PNG with matplotlib, and Vitruvion's hand-drawn renderings (§3.3, App. B).

* :func:`draw_sketch` / :func:`save_figure_file` — CAD-style drawing; construction geometry dashed,
  optional constraint glyphs (a letter at the referenced geometry: ``H`` horizontal, ``V``
  vertical, ``∥`` parallel, ``⊥`` perpendicular, ``T`` tangent, ``=`` equal, ``◎`` concentric,
  ``M`` midpoint, dots for coincident points, ...).
* :func:`render_hand_drawn` — the image conditioning of Vitruvion: a 128×128 grayscale raster of
  the normalised sketch whose strokes are displaced normal to each curve by a Gaussian process with
  a Matérn-3/2 kernel ``k(d) = σ²(1 + √3 d/ℓ) exp(−√3 d/ℓ)`` over arc length, circles drawn as
  359° arcs starting at a random angle, and points jittered.
* :func:`augment_image` — random affine augmentation: rotation ±8°, translation, scale and shear.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import ConstraintType, Sketch
from quintet.sketch.primitives import Arc, Circle, Line, Point

__all__ = ["curve_points", "draw_sketch", "save_figure_file", "render_hand_drawn", "augment_image", "GLYPHS"]

GLYPHS = {
    ConstraintType.HORIZONTAL: "H", ConstraintType.VERTICAL: "V", ConstraintType.PARALLEL: "∥",
    ConstraintType.PERPENDICULAR: "⊥", ConstraintType.TANGENT: "T", ConstraintType.EQUAL: "=",
    ConstraintType.CONCENTRIC: "◎", ConstraintType.MIDPOINT: "M", ConstraintType.NORMAL: "N",
    ConstraintType.OFFSET: "O", ConstraintType.QUADRANT: "Q", ConstraintType.FIX: "F",
    ConstraintType.DISTANCE: "d", ConstraintType.LENGTH: "L", ConstraintType.ANGLE: "∠",
    ConstraintType.RADIUS: "R", ConstraintType.DIAMETER: "⌀",
}


def curve_points(p, n: int = 64) -> np.ndarray:
    """Points along a primitive: ``(k, 2)``; a point primitive gives ``(1, 2)``."""
    if isinstance(p, Point):
        return np.array([[p.x, p.y]])
    if isinstance(p, Line):
        t = np.linspace(0, 1, max(2, n // 8))[:, None]
        return np.array([p.x0, p.y0]) * (1 - t) + np.array([p.x1, p.y1]) * t
    if isinstance(p, Circle):
        a = np.linspace(0, 2 * math.pi, n)
        return np.stack([p.cx + p.r * np.cos(a), p.cy + p.r * np.sin(a)], 1)
    if p.is_degenerate:
        return np.array([[p.sx, p.sy], [p.mx, p.my], [p.ex, p.ey]])
    cx, cy = p.center
    a0, a1 = p.angles
    a = np.linspace(a0, a1, max(4, int(n * (a1 - a0) / (2 * math.pi)) + 2))
    return np.stack([cx + p.radius * np.cos(a), cy + p.radius * np.sin(a)], 1)


def _anchor(sketch: Sketch, ref) -> tuple[float, float]:
    p = sketch.primitives[ref.index]
    if ref.part != "whole":
        return p.point(ref.part)
    pts = curve_points(p, 16)
    return tuple(pts[len(pts) // 2])


def draw_sketch(sketch: Sketch, ax=None, constraints: bool = False, color: str = "black", linewidth: float = 1.5, title: str | None = None):
    """Draw ``sketch`` on a matplotlib axis (a new figure when ``ax`` is None); returns the axis."""
    from quintet.core.plotting import plt

    if ax is None:
        _fig, ax = plt.subplots(figsize=(4, 4))
    for p in sketch.primitives:
        pts = curve_points(p)
        style = "--" if p.construction else "-"
        c = "tab:blue" if p.construction else color
        if isinstance(p, Point):
            ax.plot(pts[:, 0], pts[:, 1], "o", color=c, markersize=3)
        else:
            ax.plot(pts[:, 0], pts[:, 1], style, color=c, linewidth=linewidth if not p.construction else linewidth * 0.7)
    if constraints and sketch.primitives:
        x0, y0, x1, y1 = sketch.bbox()
        off = 0.02 * max(x1 - x0, y1 - y0, 1e-12)
        for c in sketch.constraints:
            if c.type == ConstraintType.COINCIDENT and all(r.part != "whole" for r in c.refs):
                x, y = _anchor(sketch, c.refs[0])
                ax.plot([x], [y], ".", color="tab:red", markersize=5)
                continue
            for r in c.refs[:2]:
                x, y = _anchor(sketch, r)
                ax.text(x + off, y + off, GLYPHS.get(c.type, "?"), color="tab:red", fontsize=7, ha="left", va="bottom")
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=8)
    return ax


def save_figure_file(sketch: Sketch, path: str | os.PathLike, constraints: bool = False, dpi: int = 150) -> Path:
    """Write a PNG or SVG drawing of ``sketch`` (format from the suffix), atomically."""
    from quintet.core.io import atomic_write_bytes
    from quintet.core.plotting import plt

    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise QuintetError(f"cannot draw to {path}: the suffix must be .png or .svg")
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_sketch(sketch, ax, constraints=constraints, title=sketch.name or None)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


# ---- hand-drawn rendering ----------------------------------------------------------------------

def _matern32_noise(s: np.ndarray, rng: np.random.Generator, sigma: float, length: float) -> np.ndarray:
    """One GP sample at arc-length positions ``s`` with a Matérn-3/2 kernel."""
    d = np.abs(s[:, None] - s[None, :]) * math.sqrt(3) / length
    K = sigma**2 * (1 + d) * np.exp(-d) + 1e-9 * np.eye(len(s))
    return np.linalg.cholesky(K) @ rng.standard_normal(len(s))


def _wobble(pts: np.ndarray, rng, sigma: float, length: float) -> np.ndarray:
    if len(pts) < 2:
        return pts
    seg = np.diff(pts, axis=0)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(seg[:, 0], seg[:, 1]))])
    tang = np.gradient(pts, axis=0)
    norm = np.hypot(tang[:, 0], tang[:, 1])[:, None]
    normal = np.stack([-tang[:, 1], tang[:, 0]], 1) / np.maximum(norm, 1e-12)
    return pts + normal * _matern32_noise(s, rng, sigma, length)[:, None]


def render_hand_drawn(
    sketch: Sketch,
    rng: np.random.Generator | int | None = None,
    size: int = 128,
    sigma: float = 0.006,
    length: float = 0.15,
    linewidth: float = 1.0,
    include_construction: bool = False,
) -> np.ndarray:
    """Hand-drawn-looking raster of the (normalised) sketch: ``(size, size)`` float32 in [0, 1],
    1 = ink. Noise scale ``sigma`` and GP length scale ``length`` are in units of the sketch's
    long side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from quintet.sketch.tokens import normalize_sketch

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sk, _ = normalize_sketch(sketch)
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-0.55, 0.55)
    ax.set_ylim(-0.55, 0.55)
    ax.axis("off")
    for p in sk.primitives:
        if p.construction and not include_construction:
            continue
        if isinstance(p, Point):
            x, y = np.array([p.x, p.y]) + rng.normal(0, sigma, 2)
            ax.plot([x], [y], "o", color="black", markersize=linewidth * 1.5)
            continue
        if isinstance(p, Circle):
            a0 = rng.uniform(0, 2 * math.pi)
            a = np.linspace(a0, a0 + math.radians(359), 64)
            pts = np.stack([p.cx + p.r * np.cos(a), p.cy + p.r * np.sin(a)], 1)
        else:
            pts = curve_points(p, 64)
            if isinstance(p, Line):
                t = np.linspace(0, 1, 24)[:, None]
                pts = pts[0] * (1 - t) + pts[-1] * t
        pts = _wobble(pts, rng, sigma, length)
        ax.plot(pts[:, 0], pts[:, 1], "-", color="black", linewidth=linewidth, solid_capstyle="round")
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return (1.0 - rgba[..., 0].astype(np.float32) / 255.0).copy()


def augment_image(
    img: np.ndarray,
    rng: np.random.Generator | int | None = None,
    max_rotation: float = 8.0,
    max_translation: float = 0.08,
    scale_range: tuple[float, float] = (0.8, 1.1),
    max_shear: float = 8.0,
) -> np.ndarray:
    """Random affine transform of an ``(H, W)`` image about its centre: rotation ±8° (degrees),
    translation up to ``max_translation``·size, isotropic scale in ``scale_range``, shear ±8°."""
    from scipy.ndimage import affine_transform

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if img.ndim != 2:
        raise QuintetError(f"augment_image takes one (H, W) image, got shape {img.shape}")
    h, w = img.shape
    th = math.radians(rng.uniform(-max_rotation, max_rotation))
    sh = math.radians(rng.uniform(-max_shear, max_shear))
    sc = rng.uniform(*scale_range)
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    S = np.array([[1.0, math.tan(sh)], [0.0, 1.0]])
    A = sc * R @ S  # output = A (input - c) + c + t
    t = rng.uniform(-max_translation, max_translation, 2) * np.array([h, w])
    c = np.array([(h - 1) / 2, (w - 1) / 2])
    Ainv = np.linalg.inv(A)
    offset = c - Ainv @ (c + t)
    return affine_transform(img, Ainv, offset=offset, order=1, mode="constant", cval=0.0).astype(img.dtype)
