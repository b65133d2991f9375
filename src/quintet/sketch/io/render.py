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
from quintet.sketch.primitives import Circle, Line, Point

__all__ = [
    "curve_points", "draw_sketch", "save_figure_file", "render_hand_drawn", "hand_drawn_strokes", "augment_image",
    "matern32_kernel", "gp_cholesky", "GLYPHS",
]

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
#
# Speed: training the image model renders every batch afresh, so the GP is sampled from cached
# Cholesky factors. A curve of (normalised) arc length L is drawn through n(L) points spaced
# evenly in arc length; L is rounded to a geometric grid of lengths (ratio ``_BUCKET_RATIO``),
# so all curves in one bucket share one covariance matrix and one factor, and all their noise
# comes from one matrix product. Strokes are rasterised with PIL at ``_SUPERSAMPLE``× the size
# and box-filtered down (anti-aliasing), instead of through matplotlib.

_BUCKET_RATIO = 1.1
_SUPERSAMPLE = 4


def matern32_kernel(s: np.ndarray, sigma: float, length: float) -> np.ndarray:
    """Matérn-3/2 covariance ``K_ij = σ²(1 + √3 d/ℓ) exp(−√3 d/ℓ)``, ``d = |s_i − s_j|``, of
    positions ``s`` ``(n,)`` -> ``(n, n)``."""
    d = np.abs(s[:, None] - s[None, :]) * math.sqrt(3) / length
    return sigma**2 * (1 + d) * np.exp(-d)


def _n_points(arc_length: float, size: int) -> int:
    """Points per curve: one per ~3 pixels of stroke, between 8 and 96."""
    return int(np.clip(math.ceil(arc_length * size / 3), 8, 96))


_CHOL_CACHE: dict[tuple[int, int, float, float], np.ndarray] = {}


def gp_cholesky(arc_length: float, n: int, sigma: float, length: float) -> tuple[np.ndarray, float]:
    """Cached lower Cholesky factor of the Matérn-3/2 covariance at ``n`` evenly spaced positions
    over the bucketed ``arc_length``; returns ``(L (n, n), bucket length)``."""
    b = int(round(math.log(max(arc_length, 1e-6)) / math.log(_BUCKET_RATIO)))
    key = (n, b, float(sigma), float(length))
    L = _CHOL_CACHE.get(key)
    lb = _BUCKET_RATIO**b
    if L is None:
        s = np.linspace(0.0, lb, n)
        L = np.linalg.cholesky(matern32_kernel(s, sigma, length) + (1e-9 * sigma**2 + 1e-14) * np.eye(n))
        if len(_CHOL_CACHE) > 4096:
            _CHOL_CACHE.clear()
        _CHOL_CACHE[key] = L
    return L, lb


def _stroke_points(p, rng: np.random.Generator, size: int) -> np.ndarray:
    """Clean points along a primitive, evenly spaced in arc length (a circle as a 359° arc from a
    random start angle, §3.3)."""
    if isinstance(p, Line):
        n = _n_points(math.hypot(p.x1 - p.x0, p.y1 - p.y0), size)
        t = np.linspace(0.0, 1.0, n)[:, None]
        return np.array([p.x0, p.y0]) * (1 - t) + np.array([p.x1, p.y1]) * t
    if isinstance(p, Circle):
        a0 = rng.uniform(0, 2 * math.pi)
        span, (cx, cy), r = math.radians(359), (p.cx, p.cy), p.r
    elif p.is_degenerate:
        n = _n_points(math.hypot(p.ex - p.sx, p.ey - p.sy), size)
        t = np.linspace(0.0, 1.0, n)[:, None]
        return np.array([p.sx, p.sy]) * (1 - t) + np.array([p.ex, p.ey]) * t
    else:
        (cx, cy), r = p.center, p.radius
        a0, a1 = p.angles
        span = a1 - a0
    a = np.linspace(a0, a0 + span, _n_points(r * span, size))
    return np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)


def _unit_normals(pts: np.ndarray) -> np.ndarray:
    tang = np.gradient(pts, axis=0)
    norm = np.hypot(tang[:, 0], tang[:, 1])[:, None]
    return np.stack([-tang[:, 1], tang[:, 0]], 1) / np.maximum(norm, 1e-12)


def hand_drawn_strokes(
    sketch: Sketch,
    rng: np.random.Generator | int | None = None,
    size: int = 128,
    sigma: float = 0.006,
    length: float = 0.15,
    include_construction: bool = False,
) -> tuple[list[np.ndarray], np.ndarray]:
    """The noisy geometry of :func:`render_hand_drawn` in the normalised frame (long side 1,
    centred): ``(polylines [(k_i, 2)], points (m, 2))``. Each curve is displaced along its unit
    normal by one draw of a zero-mean GP with the Matérn-3/2 kernel over arc length
    (std ``sigma``, length scale ``length``); point primitives are jittered by N(0, sigma²)."""
    from quintet.sketch.tokens import normalize_sketch

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    sk, _ = normalize_sketch(sketch)
    curves, dots, groups = [], [], {}
    for p in sk.primitives:
        if p.construction and not include_construction:
            continue
        if isinstance(p, Point):
            dots.append([p.x, p.y])
            continue
        pts = _stroke_points(p, rng, size)
        seg = np.hypot(*np.diff(pts, axis=0).T).sum()
        L, _ = gp_cholesky(seg, len(pts), sigma, length)
        groups.setdefault(id(L), (L, []))[1].append(len(curves))
        curves.append(pts)
    for L, members in groups.values():  # one matrix product per covariance bucket
        noise = L @ rng.standard_normal((L.shape[0], len(members)))
        for j, k in enumerate(members):
            curves[k] = curves[k] + _unit_normals(curves[k]) * noise[:, j : j + 1]
    dots = np.asarray(dots, dtype=float).reshape(-1, 2)
    if len(dots):
        dots = dots + rng.normal(0.0, sigma, dots.shape)
    return curves, dots


def render_hand_drawn(
    sketch: Sketch,
    rng: np.random.Generator | int | None = None,
    size: int = 128,
    sigma: float = 0.006,
    length: float = 0.15,
    linewidth: float = 1.0,
    include_construction: bool = False,
    augment: bool = False,
) -> np.ndarray:
    """Hand-drawn-looking raster of the (normalised) sketch (§3.3): ``(size, size)`` float32 in
    [0, 1], 1 = ink, y up. The sketch's long side spans 1/1.1 of the image. Noise scale ``sigma``
    and GP length scale ``length`` are in units of the long side; ``linewidth`` is in points at
    100 dpi (1 pt ≈ 1.39 px), as the earlier matplotlib renderer drew it. ``augment=True``
    applies the random affine augmentation of :func:`augment_image` (rotation ±8°, translation
    ±8 %, scale 0.8–1.1, shear ±8°) to the strokes before rasterising. Deterministic for a seed."""
    from PIL import Image, ImageDraw

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if size < 8:
        raise QuintetError(f"render size must be >= 8 pixels, got {size}")
    curves, dots = hand_drawn_strokes(sketch, rng, size, sigma, length, include_construction)
    if augment:  # the affine augmentation, applied to the strokes about the image centre
        A, t = _affine_params(rng, 8.0, 0.08, (0.8, 1.1), 8.0)
        t = t * 1.1  # fraction of the image side -> normalised units
        curves = [c @ A.T + t for c in curves]
        dots = dots @ A.T + t
    ss = _SUPERSAMPLE
    big = size * ss
    scale = big / 1.1  # the view is [-0.55, 0.55]²

    def px(xy: np.ndarray) -> np.ndarray:
        return np.stack([(xy[:, 0] + 0.55) * scale, (0.55 - xy[:, 1]) * scale], 1)

    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    width = max(1, int(round(linewidth * 1.389 * ss)))
    rad = width / 2
    for pts in curves:
        q = px(pts)
        draw.line(q.ravel().tolist(), fill=255, width=width)  # near-collinear joints: no round joins needed
        for x, y in q[[0, -1]]:  # round caps
            draw.ellipse([x - rad, y - rad, x + rad, y + rad], fill=255)
    if len(dots):
        r = 1.5 * linewidth * 1.389 * ss / 2 * 1.5
        for x, y in px(dots):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    small = img.reduce(ss) if ss > 1 else img
    return np.asarray(small, dtype=np.float32) / 255.0


def _affine_params(rng: np.random.Generator, max_rotation: float, max_translation: float,
                   scale_range: tuple[float, float], max_shear: float) -> tuple[np.ndarray, np.ndarray]:
    """One random affine ``(A (2, 2), t (2,))``: ``A = s·R(θ)·Shear(φ)``, θ, φ uniform in ±max
    (degrees), s uniform in ``scale_range``, ``t`` uniform in ±``max_translation`` (fraction of
    the image side)."""
    th = math.radians(rng.uniform(-max_rotation, max_rotation))
    sh = math.radians(rng.uniform(-max_shear, max_shear))
    sc = rng.uniform(*scale_range)
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    S = np.array([[1.0, math.tan(sh)], [0.0, 1.0]])
    return sc * R @ S, rng.uniform(-max_translation, max_translation, 2)


def augment_image(
    img: np.ndarray,
    rng: np.random.Generator | int | None = None,
    max_rotation: float = 8.0,
    max_translation: float = 0.08,
    scale_range: tuple[float, float] = (0.8, 1.1),
    max_shear: float = 8.0,
) -> np.ndarray:
    """Random affine transform of an ``(H, W)`` image about its centre: rotation ±8° (degrees),
    translation up to ``max_translation``·size, isotropic scale in ``scale_range``, shear ±8°.
    (:func:`render_hand_drawn` with ``augment=True`` draws the same distribution of transforms
    on the stroke coordinates instead, which is faster and does not blur.)"""
    from scipy.ndimage import affine_transform

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if img.ndim != 2:
        raise QuintetError(f"augment_image takes one (H, W) image, got shape {img.shape}")
    h, w = img.shape
    A, t = _affine_params(rng, max_rotation, max_translation, scale_range, max_shear)
    t = t * np.array([h, w])  # output = A (input - c) + c + t
    c = np.array([(h - 1) / 2, (w - 1) / 2])
    Ainv = np.linalg.inv(A)
    offset = c - Ainv @ (c + t)
    return affine_transform(img, Ainv, offset=offset, order=1, mode="constant", cval=0.0).astype(img.dtype)
