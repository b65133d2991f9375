"""Procedural mechanical sketches with their design-intent constraints.

The 15M-sketch SketchGraphs corpus Vitruvion trains on is not available here, so this module
draws sketches of the kinds that dominate it: plates (rectangles, optionally filleted;
parallelograms and isosceles trapezoids) and L / T / U brackets carrying holes, slots, bolt
circles, regular polygons, concentric bosses, ribs and datum points, with construction geometry
(centre lines, bolt circles, polygon circumcircles).

Each feature adds the constraints a designer would: coincident corners, horizontal / vertical
edges (or edges parallel / perpendicular to a horizontal one, as designers often draw them),
parallel sides of slanted plates, ribs perpendicular to an edge, hole-centre and datum points
(coincident, fixed), tangent fillets, equal radii, concentric rings, midpoints on centre lines, plus dimensions
(length, radius, diameter, distance to an edge) and one fixed anchor, so that a generated sketch
is fully constrained (0 degrees of freedom in SolveSpace) or nearly so. Coordinates are in mm;
sizes, proportions and the number of features vary (6–16 primitives by default, as Vitruvion's
filter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Constraint, ConstraintType, Ref, Sketch
from quintet.sketch.primitives import Arc, Circle, Line, Point

__all__ = ["FAMILIES", "generate_sketch", "generate_sketches", "SynthConfig"]

T = ConstraintType
FAMILIES = ("plate", "filleted_plate", "bracket", "slotted", "bolt_circle", "polygon", "concentric", "parallelogram",
            "trapezoid")


@dataclass(frozen=True)
class SynthConfig:
    """Ranges of the generator."""

    min_primitives: int = 6
    max_primitives: int = 16
    min_size: float = 10.0  # mm, overall size (log-uniform)
    max_size: float = 300.0
    dimension_prob: float = 1.0  # chance to add each numeric dimension (1 = fully constrained)


class _Builder:
    def __init__(self):
        self.prims: list = []
        self.cons: list[Constraint] = []

    def add(self, p) -> int:
        self.prims.append(p)
        return len(self.prims) - 1

    def c(self, t: ConstraintType, *refs, value: float | None = None) -> None:
        self.cons.append(Constraint(t, tuple(Ref(i, part) for i, part in refs), value))

    # ---- building blocks -----------------------------------------------------------------
    def closed_polyline(self, pts, construction=False) -> list[int]:
        n = len(pts)
        ids = [self.add(Line(*pts[i], *pts[(i + 1) % n], construction=construction)) for i in range(n)]
        for i in range(n):
            self.c(T.COINCIDENT, (ids[i], "end"), (ids[(i + 1) % n], "start"))
        return ids

    def hv(self, ids, rng=None, relative: float = 0.0) -> None:
        """Orient axis-aligned lines: each Horizontal / Vertical, or (with probability
        ``relative``, per sketch) the first one Horizontal/Vertical and each other one Parallel
        or Perpendicular to an earlier line of the same outline (the same degrees of freedom)."""
        rel = rng is not None and rng.random() < relative
        for k, i in enumerate(ids):
            p = self.prims[i]
            horizontal = abs(p.y1 - p.y0) < abs(p.x1 - p.x0)
            if not rel or k == 0:
                self.c(T.HORIZONTAL if horizontal else T.VERTICAL, (i, "whole"))
                continue
            earlier = ids[:k]
            parallel = [j for j in earlier if horizontal == (abs(self.prims[j].y1 - self.prims[j].y0) < abs(self.prims[j].x1 - self.prims[j].x0))]
            if parallel and rng.random() < 0.65:  # designers mostly pair an edge with its opposite
                earlier = parallel
            j = earlier[int(rng.integers(len(earlier)))]
            q = self.prims[j]
            same = horizontal == (abs(q.y1 - q.y0) < abs(q.x1 - q.x0))
            self.c(T.PARALLEL if same else T.PERPENDICULAR, (i, "whole"), (j, "whole"))

    def anchor(self, rng, ref: tuple[int, str], datum_prob: float = 0.3) -> None:
        """Fix the sketch in place: Fix on ``ref``, or (with ``datum_prob``) a fixed datum Point
        coincident with it (as a sketch point on the part origin)."""
        if rng.random() < datum_prob:
            x, y = self.prims[ref[0]].point(ref[1])
            d = self.add(Point(x, y))
            self.c(T.FIX, (d, "whole"))
            self.c(T.COINCIDENT, (d, "whole"), ref)
        else:
            self.c(T.FIX, ref)


def _rect_points(x0, y0, w, h):
    return [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]


def _plate(b: _Builder, rng, S, fillet: bool, dims: float):
    """Rectangle (optionally with 4 tangent fillets); returns (outline ids, inner box)."""
    w = S * rng.uniform(0.5, 1.0)
    h = w * rng.uniform(0.3, 1.0) if rng.random() < 0.8 else w
    if rng.random() < 0.5:
        w, h = h, w
    x0, y0 = -w / 2, -h / 2
    if not fillet:
        ids = b.closed_polyline(_rect_points(x0, y0, w, h))
        b.hv(ids, rng, relative=0.6)
        if abs(w - h) < 1e-9:
            b.c(T.EQUAL, (ids[0], "whole"), (ids[1], "whole"))
        else:
            b.c(T.LENGTH, (ids[1], "whole"), value=h)
        b.c(T.LENGTH, (ids[0], "whole"), value=w)
        b.anchor(rng, (ids[0], "start"))
        return ids, (x0, y0, w, h)
    r = min(w, h) * rng.uniform(0.08, 0.3)
    corners = _rect_points(x0, y0, w, h)
    dirs = [(1, 0), (0, 1), (-1, 0), (0, -1)]
    lines, arcs = [], []
    for i in range(4):
        (ax, ay), (bx, by) = corners[i], corners[(i + 1) % 4]
        dx, dy = dirs[i]
        lines.append(b.add(Line(ax + dx * r, ay + dy * r, bx - dx * r, by - dy * r)))
        ndx, ndy = dirs[(i + 1) % 4]
        cx, cy = bx - dx * r + ndx * r, by - dy * r + ndy * r
        a0 = math.atan2(-ndy, -ndx)
        arcs.append(b.add(Arc.from_center(cx, cy, r, a0, a0 + math.pi / 2)))
    for i in range(4):
        b.c(T.COINCIDENT, (lines[i], "end"), (arcs[i], "start"))
        b.c(T.COINCIDENT, (arcs[i], "end"), (lines[(i + 1) % 4], "start"))
        b.c(T.TANGENT, (lines[i], "whole"), (arcs[i], "whole"))
        b.c(T.TANGENT, (arcs[i], "whole"), (lines[(i + 1) % 4], "whole"))
    b.hv(lines)
    for i in range(1, 4):
        b.c(T.EQUAL, (arcs[0], "whole"), (arcs[i], "whole"))
    b.c(T.RADIUS, (arcs[0], "whole"), value=r)
    b.c(T.LENGTH, (lines[0], "whole"), value=w - 2 * r)
    b.c(T.LENGTH, (lines[1], "whole"), value=h - 2 * r)
    b.anchor(rng, (lines[0], "start"))
    return lines + arcs, (x0 + r, y0 + r, w - 2 * r, h - 2 * r)


def _bracket(b: _Builder, rng, S, kind: str):
    """L, T or U outline of orthogonal lines; returns (ids, inner box for holes)."""
    W = S
    H = S * rng.uniform(0.5, 1.0)
    t = min(W, H) * rng.uniform(0.2, 0.4)
    if kind == "L":
        pts = [(0, 0), (W, 0), (W, t), (t, t), (t, H), (0, H)]
        box = (0, 0, W, t)
    elif kind == "T":
        a = (W - t) / 2
        pts = [(a, 0), (a + t, 0), (a + t, H - t), (W, H - t), (W, H), (0, H), (0, H - t), (a, H - t)]
        box = (0, H - t, W, t)
    else:  # U
        pts = [(0, 0), (W, 0), (W, H), (W - t, H), (W - t, t), (t, t), (t, H), (0, H)]
        box = (0, 0, W, t)
    pts = [(x - W / 2, y - H / 2) for x, y in pts]
    box = (box[0] - W / 2, box[1] - H / 2, box[2], box[3])
    ids = b.closed_polyline(pts)
    b.hv(ids, rng, relative=0.5)
    # dimension every edge except one horizontal and one vertical (the closing ones)
    horiz = [i for i in ids if abs(b.prims[i].y1 - b.prims[i].y0) < 1e-12]
    vert = [i for i in ids if i not in horiz]
    for i in horiz[:-1] + vert[:-1]:
        b.c(T.LENGTH, (i, "whole"), value=b.prims[i].length)
    b.anchor(rng, (ids[0], "start"))
    return ids, box


def _slanted_plate(b: _Builder, rng, S, kind: str):
    """Parallelogram or isosceles trapezoid: bottom edge horizontal, top edge Parallel to it;
    a parallelogram's sides are Parallel too, a trapezoid's Equal. Dimensioned by the bottom
    length, the side (parallelogram) or top (trapezoid) length and the height (distance from a
    top corner to the bottom edge). Returns (outline ids, inner box)."""
    w = S * rng.uniform(0.6, 1.0)
    h = w * rng.uniform(0.35, 0.9)
    if kind == "parallelogram":
        s = h * rng.uniform(0.2, 0.8) * (1 if rng.random() < 0.5 else -1)
        pts = [(-w / 2 - s / 2, -h / 2), (w / 2 - s / 2, -h / 2), (w / 2 + s / 2, h / 2), (-w / 2 + s / 2, h / 2)]
        box = (-w / 2 + abs(s) / 2, -h / 2, w - abs(s), h)
    else:
        wt = w * rng.uniform(0.4, 0.8)
        pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (wt / 2, h / 2), (-wt / 2, h / 2)]
        box = (-wt / 2, -h / 2, wt, h)
    bottom, right, top, left = ids = b.closed_polyline(pts)
    b.c(T.HORIZONTAL, (bottom, "whole"))
    b.c(T.PARALLEL, (top, "whole"), (bottom, "whole"))
    b.c(T.LENGTH, (bottom, "whole"), value=w)
    if kind == "parallelogram":
        b.c(T.PARALLEL, (left, "whole"), (right, "whole"))
        b.c(T.LENGTH, (right, "whole"), value=b.prims[right].length)
    else:
        b.c(T.EQUAL, (left, "whole"), (right, "whole"))
        b.c(T.LENGTH, (top, "whole"), value=b.prims[top].length)
    b.c(T.DISTANCE, (top, "start"), (bottom, "whole"), value=h)
    b.anchor(rng, (bottom, "start"))
    return list(ids), box


def _place(b: _Builder, rng, anchor: tuple[int, str], xy, outline: list[int], dims: float):
    """Locate a feature's anchor point by distances to the outline's first horizontal edge and
    its first vertical edge (or, in a slanted plate, its first other edge), the usual way holes
    are dimensioned."""
    lines = [i for i in outline if isinstance(b.prims[i], Line)]
    horiz = next((i for i in lines if abs(b.prims[i].y1 - b.prims[i].y0) < 1e-12), None)
    other = next((i for i in lines if abs(b.prims[i].x1 - b.prims[i].x0) < 1e-12), None)
    if other is None:
        other = next((i for i in lines if i != horiz), None)
    for line in (horiz, other):
        if line is not None and rng.random() < dims:
            p = b.prims[line]
            ux, uy = (p.x1 - p.x0) / p.length, (p.y1 - p.y0) / p.length
            d = abs((xy[0] - p.x0) * uy - (xy[1] - p.y0) * ux)  # distance to the edge's line
            b.c(T.DISTANCE, anchor, (line, "whole"), value=d)


def _rib(b: _Builder, rng, box, outline, dims) -> int:
    """A rib: a line standing on the outline's first horizontal edge, Perpendicular to it, its
    foot on the edge (coincident), located by a distance to another edge, with a length."""
    base = next((i for i in outline if isinstance(b.prims[i], Line) and abs(b.prims[i].y1 - b.prims[i].y0) < 1e-12), None)
    if base is None:
        return 0
    e = b.prims[base]
    lo, hi = max(min(e.x0, e.x1), box[0]), min(max(e.x0, e.x1), box[0] + box[2])
    if hi - lo <= 0:
        return 0
    x = rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo))
    up = 1.0 if box[1] + box[3] / 2 > e.y0 else -1.0
    length = box[3] * rng.uniform(0.25, 0.6)
    r = b.add(Line(x, e.y0, x, e.y0 + up * length))
    b.c(T.COINCIDENT, (r, "start"), (base, "whole"))
    b.c(T.PERPENDICULAR, (r, "whole"), (base, "whole"))
    b.c(T.LENGTH, (r, "whole"), value=length)
    side = next((i for i in outline if isinstance(b.prims[i], Line) and abs(b.prims[i].y1 - b.prims[i].y0) > 1e-12), None)
    if side is not None and rng.random() < dims:  # the foot's distance to a side edge
        s = b.prims[side]
        ux, uy = (s.x1 - s.x0) / s.length, (s.y1 - s.y0) / s.length
        b.c(T.DISTANCE, (r, "start"), (side, "whole"), value=abs((x - s.x0) * uy - (e.y0 - s.y0) * ux))
    return 1


def _datum_point(b, rng, cx, cy, outline, dims) -> int:
    """A stand-alone sketch point (a hole position or datum), located by two distances."""
    i = b.add(Point(cx, cy))
    _place(b, rng, (i, "whole"), (cx, cy), outline, dims)
    return 1


def _hole(b, rng, cx, cy, size, outline, dims, center_point: bool = False):
    """A hole (circle with a diameter), located by distances; with ``center_point``, a sketch
    point is placed first (as drilling positions are marked) and the hole is Coincident with it."""
    if center_point:
        pt = b.add(Point(cx, cy))
        i = b.add(Circle(cx, cy, size / 2))
        b.c(T.COINCIDENT, (pt, "whole"), (i, "center"))
        b.c(T.DIAMETER, (i, "whole"), value=size)
        _place(b, rng, (pt, "whole"), (cx, cy), outline, dims)
        return 2
    i = b.add(Circle(cx, cy, size / 2))
    b.c(T.DIAMETER, (i, "whole"), value=size)
    _place(b, rng, (i, "center"), (cx, cy), outline, dims)
    return 1


def _slot(b, rng, cx, cy, size, outline, dims, vertical: bool):
    L = size * rng.uniform(0.8, 2.0)
    r = size * rng.uniform(0.2, 0.4)
    ang = math.pi / 2 if vertical else 0.0
    c, s = math.cos(ang), math.sin(ang)

    def P(u, v):
        return cx + c * u - s * v, cy + s * u + c * v

    bot = b.add(Line(*P(-L / 2, -r), *P(L / 2, -r)))
    right = b.add(Arc.from_center(*P(L / 2, 0), r, ang - math.pi / 2, ang + math.pi / 2))
    top = b.add(Line(*P(L / 2, r), *P(-L / 2, r)))
    left = b.add(Arc.from_center(*P(-L / 2, 0), r, ang + math.pi / 2, ang + 3 * math.pi / 2))
    loop = [bot, right, top, left]
    for i in range(4):
        b.c(T.COINCIDENT, (loop[i], "end"), (loop[(i + 1) % 4], "start"))
        b.c(T.TANGENT, (loop[i], "whole"), (loop[(i + 1) % 4], "whole"))
    b.c(T.VERTICAL if vertical else T.HORIZONTAL, (bot, "whole"))
    b.c(T.EQUAL, (right, "whole"), (left, "whole"))
    b.c(T.RADIUS, (right, "whole"), value=r)
    b.c(T.LENGTH, (bot, "whole"), value=L)
    n = 4
    if rng.random() < 0.4:  # construction centre line between the arc centres
        cl = b.add(Line(*P(-L / 2, 0), *P(L / 2, 0), construction=True))
        b.c(T.COINCIDENT, (cl, "start"), (left, "center"))
        b.c(T.COINCIDENT, (cl, "end"), (right, "center"))
        n += 1
    _place(b, rng, (right, "center"), P(L / 2, 0), outline, dims)
    return n


def _bolt_circle(b, rng, cx, cy, size, outline, dims, k: int, with_center: bool):
    R = size / 2
    rh = R * rng.uniform(0.12, 0.25)
    pc = b.add(Circle(cx, cy, R, construction=True))
    b.c(T.DIAMETER, (pc, "whole"), value=2 * R)
    holes = []
    for j in range(k):
        a = 2 * math.pi * j / k
        holes.append(b.add(Circle(cx + R * math.cos(a), cy + R * math.sin(a), rh)))
        b.c(T.COINCIDENT, (holes[-1], "center"), (pc, "whole"))
    for j in range(1, k):
        b.c(T.EQUAL, (holes[0], "whole"), (holes[j], "whole"))
        b.c(T.DISTANCE, (holes[j - 1], "center"), (holes[j], "center"), value=2 * R * math.sin(math.pi / k))
    b.c(T.RADIUS, (holes[0], "whole"), value=rh)
    b.c(T.HORIZONTAL, (holes[0], "center"), (pc, "center"))
    n = 1 + k
    if with_center:
        hub = b.add(Circle(cx, cy, R * rng.uniform(0.35, 0.6)))
        b.c(T.CONCENTRIC, (hub, "whole"), (pc, "whole"))
        b.c(T.DIAMETER, (hub, "whole"), value=2 * hub_radius(b, hub))
        n += 1
    _place(b, rng, (pc, "center"), (cx, cy), outline, dims)
    return n


def hub_radius(b, i):
    return b.prims[i].r


def _polygon(b, rng, cx, cy, size, outline, dims, k: int):
    R = size / 2
    a0 = -math.pi / 2 - math.pi / k  # bottom edge horizontal
    pts = [(cx + R * math.cos(a0 + 2 * math.pi * j / k), cy + R * math.sin(a0 + 2 * math.pi * j / k)) for j in range(k)]
    ids = b.closed_polyline(pts)
    circ = b.add(Circle(cx, cy, R, construction=True))
    for j in range(k):
        b.c(T.COINCIDENT, (ids[j], "start"), (circ, "whole"))
    for j in range(1, k):
        b.c(T.EQUAL, (ids[0], "whole"), (ids[j], "whole"))
    b.c(T.HORIZONTAL, (ids[0], "whole"))
    b.c(T.DIAMETER, (circ, "whole"), value=2 * R)
    _place(b, rng, (circ, "center"), (cx, cy), outline, dims)
    return k + 1


def _concentric(b, rng, cx, cy, size, outline, dims):
    r1 = size / 2
    c1 = b.add(Circle(cx, cy, r1))
    c2 = b.add(Circle(cx, cy, r1 * rng.uniform(0.4, 0.75)))
    b.c(T.CONCENTRIC, (c1, "whole"), (c2, "whole"))
    b.c(T.DIAMETER, (c1, "whole"), value=2 * r1)
    b.c(T.DIAMETER, (c2, "whole"), value=2 * b.prims[c2].r)
    _place(b, rng, (c1, "center"), (cx, cy), outline, dims)
    return 2


def _centerline(b, rng, outline):
    """Construction line joining the midpoints of a plate's left and right edges, with a point at
    its middle (a symmetry axis)."""
    verts = [i for i in outline if isinstance(b.prims[i], Line) and abs(b.prims[i].x1 - b.prims[i].x0) < 1e-12]
    if len(verts) != 2:
        return 0
    (xa, ya), (xb, yb) = b.prims[verts[0]].midpoint, b.prims[verts[1]].midpoint
    cl = b.add(Line(xb, yb, xa, ya, construction=True))
    b.c(T.MIDPOINT, (cl, "start"), (verts[1], "whole"))
    b.c(T.MIDPOINT, (cl, "end"), (verts[0], "whole"))
    return 1


_FEATURE_SIZE = {"hole": 1, "pointed_hole": 2, "slot": 4, "bolt": 4, "polygon": 6, "concentric": 2, "rib": 1, "point": 1}


def _inner_features(b, rng, box, outline, budget: int, dims: float, central: bool = False) -> None:
    """Fill ``budget`` primitives with features that keep clear of each other and, when ``central``,
    of the family's feature at the centre of ``box`` (a bolt circle, polygon, slot or bore)."""
    x0, y0, w, h = box
    if w <= 0 or h <= 0:
        return
    placed: list[tuple[float, float, float]] = [(x0 + w / 2, y0 + h / 2, 0.4 * min(w, h))] if central else []
    tries = 0
    while budget > 0 and tries < 12:
        tries += 1
        kind = str(rng.choice(["hole", "hole", "pointed_hole", "slot", "bolt", "polygon", "concentric", "rib", "point"]))
        if _FEATURE_SIZE[kind] > budget:
            continue
        size = min(w, h) * rng.uniform(0.15, 0.45)
        cx = x0 + rng.uniform(size, max(size, w - size)) if w > 2 * size else x0 + w / 2
        cy = y0 + rng.uniform(size, max(size, h - size)) if h > 2 * size else y0 + h / 2
        ext = size * (1.3 if kind == "slot" else 0.8)
        if any(math.hypot(cx - px, cy - py) < ext + pr for px, py, pr in placed):
            continue
        if kind == "rib":
            n = _rib(b, rng, box, outline, dims)
            budget -= n
            continue  # ribs stand on an edge; they do not take interior room
        if kind == "point":
            n = _datum_point(b, rng, cx, cy, outline, dims)
        elif kind in ("hole", "pointed_hole"):
            n = _hole(b, rng, cx, cy, size * 0.6, outline, dims, center_point=kind == "pointed_hole")
        elif kind == "slot":
            n = _slot(b, rng, cx, cy, size * 0.5, outline, dims, vertical=h > w)
        elif kind == "bolt":
            k = int(rng.integers(3, min(6, budget - 1) + 1))
            n = _bolt_circle(b, rng, cx, cy, size, outline, dims, k, with_center=budget - 1 - k >= 1 and rng.random() < 0.5)
        elif kind == "polygon":
            k = int(rng.integers(3, min(8, budget - 1) + 1))
            n = _polygon(b, rng, cx, cy, size * 0.9, outline, dims, k)
        else:
            n = _concentric(b, rng, cx, cy, size, outline, dims)
        placed.append((cx, cy, ext))
        budget -= n


def generate_sketch(rng: np.random.Generator, config: SynthConfig = SynthConfig(), family: str | None = None) -> Sketch:
    """One random sketch (``family`` from :data:`FAMILIES`, else drawn at random)."""
    if family is not None and family not in FAMILIES:
        raise QuintetError(f"unknown sketch family {family!r}; valid: {', '.join(FAMILIES)}")
    for _attempt in range(20):
        fam = family or FAMILIES[int(rng.integers(len(FAMILIES)))]
        b = _Builder()
        S = math.exp(rng.uniform(math.log(config.min_size), math.log(config.max_size)))
        target = int(rng.integers(config.min_primitives, config.max_primitives + 1))
        dims = config.dimension_prob
        if fam == "bracket":
            ids, box = _bracket(b, rng, S, str(rng.choice(["L", "T", "U"])))
        elif fam in ("parallelogram", "trapezoid"):
            ids, box = _slanted_plate(b, rng, S, fam)
        else:
            ids, box = _plate(b, rng, S, fillet=(fam == "filleted_plate" or (fam != "plate" and rng.random() < 0.3)), dims=dims)
            if fam != "filleted_plate" and len(ids) == 4 and rng.random() < 0.3:
                _centerline(b, rng, ids)
        budget = target - len(b.prims)
        before = budget  # a family's central feature spends some of it
        if fam == "slotted" and budget >= 4:
            n = _slot(b, rng, box[0] + box[2] / 2, box[1] + box[3] / 2, min(box[2], box[3]) * 0.3, ids, dims, vertical=box[3] > box[2])
            budget -= n
        elif fam == "bolt_circle" and budget >= 4:
            k = int(rng.integers(3, min(6, budget - 1) + 1))
            n = _bolt_circle(b, rng, box[0] + box[2] / 2, box[1] + box[3] / 2, min(box[2], box[3]) * 0.6, ids, dims, k, with_center=budget - 1 - k >= 1)
            budget -= n
        elif fam == "polygon" and budget >= 4:
            k = int(rng.integers(3, min(8, budget - 1) + 1))
            budget -= _polygon(b, rng, box[0] + box[2] / 2, box[1] + box[3] / 2, min(box[2], box[3]) * 0.6, ids, dims, k)
        elif fam == "concentric" and budget >= 2:
            budget -= _concentric(b, rng, box[0] + box[2] / 2, box[1] + box[3] / 2, min(box[2], box[3]) * 0.7, ids, dims)
        if budget > 0:
            _inner_features(b, rng, box, ids, budget, dims, central=budget < before)
        if config.min_primitives <= len(b.prims) <= config.max_primitives:
            return Sketch(b.prims, b.cons, fam)
    raise QuintetError(f"could not draw a {family or 'random'} sketch with {config.min_primitives}..{config.max_primitives} primitives")


def generate_sketches(n: int, seed: int = 0, config: SynthConfig = SynthConfig()) -> list[Sketch]:
    """``n`` sketches from a seeded generator."""
    rng = np.random.default_rng(seed)
    return [generate_sketch(rng, config) for _ in range(n)]
