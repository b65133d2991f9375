"""Plain geometry on sketches: similarity transforms, constraint residuals (and, re-exported from
:mod:`quintet.sketch.primitives`, :func:`primitive_bbox`).

:func:`residual` measures how far a sketch is from satisfying one constraint, in sketch units
(angles as the sine of the angle error); ``None`` for a combination of primitives whose meaning
is not defined here. It is independent of SolveSpace and serves as the oracle in the tests.
"""

from __future__ import annotations

import math

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Constraint, ConstraintType, Ref, Sketch, remap_swapped_ends
from quintet.sketch.primitives import Arc, Circle, Line, Point, Primitive, primitive_bbox

__all__ = ["primitive_bbox", "transform_primitive", "transform_sketch", "residual", "residuals", "max_residual"]


def transform_primitive(p: Primitive, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0, angle: float = 0.0) -> Primitive:
    """Apply ``x -> scale · R(angle) · x + (dx, dy)`` (a similarity, so circles stay circles)."""
    if scale <= 0:
        raise QuintetError(f"scale must be > 0, got {scale}")
    c, s = math.cos(angle), math.sin(angle)

    def f(x: float, y: float) -> tuple[float, float]:
        return scale * (c * x - s * y) + dx, scale * (s * x + c * y) + dy

    if isinstance(p, Point):
        return Point(*f(p.x, p.y), construction=p.construction)
    if isinstance(p, Line):
        return Line(*f(p.x0, p.y0), *f(p.x1, p.y1), construction=p.construction)
    if isinstance(p, Circle):
        return Circle(*f(p.cx, p.cy), p.r * scale, construction=p.construction)
    # a similarity keeps the orientation; an almost collinear arc can still turn clockwise by
    # rounding, and is then stored with start and end exchanged (transform_sketch remaps them)
    return Arc.through(f(p.sx, p.sy), f(p.mx, p.my), f(p.ex, p.ey), construction=p.construction)[0]


_LENGTH_TYPES = frozenset((ConstraintType.DISTANCE, ConstraintType.LENGTH, ConstraintType.RADIUS, ConstraintType.DIAMETER))


def transform_sketch(sketch: Sketch, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0, angle: float = 0.0) -> Sketch:
    """The sketch under a similarity; numeric constraint values are rescaled (angles kept)."""
    cons = []
    for c in sketch.constraints:
        v = c.value
        if v is not None and scale != 1.0 and c.type in _LENGTH_TYPES:
            cons.append(Constraint(c.type, c.refs, v * scale))
        else:
            cons.append(c)  # constraints are immutable: share them
    prims = [transform_primitive(p, scale, dx, dy, angle) for p in sketch.primitives]
    swapped = {i for i, (p, q) in enumerate(zip(sketch.primitives, prims))
               if isinstance(p, Arc) and q.start != transform_primitive(Point(p.sx, p.sy), scale, dx, dy, angle).params()}
    return Sketch(prims, remap_swapped_ends(cons, swapped), sketch.name)


# ---- residuals ---------------------------------------------------------------------------------

def resolve_ref(sketch: Sketch, ref: Ref) -> Primitive:
    """The primitive a reference names, or the point of its start, end or center."""
    p = sketch.primitives[ref.index]
    if ref.part == "whole":
        return p
    return Point(*p.point(ref.part))


def _circle_of(p) -> tuple[float, float, float] | None:
    if isinstance(p, Circle):
        return p.cx, p.cy, p.r
    if isinstance(p, Arc) and not p.is_degenerate:
        cx, cy = p.center
        return cx, cy, p.radius
    return None


def _center_of(p) -> tuple[float, float] | None:
    if isinstance(p, Point):
        return p.x, p.y
    c = _circle_of(p)
    return None if c is None else (c[0], c[1])


def _line_dir(line: Line) -> tuple[float, float]:
    n = line.length
    if n == 0:
        return 0.0, 0.0
    return (line.x1 - line.x0) / n, (line.y1 - line.y0) / n


def _point_line_distance(x: float, y: float, line: Line) -> float:
    ux, uy = _line_dir(line)
    if ux == 0 and uy == 0:
        return math.hypot(x - line.x0, y - line.y0)
    return abs((x - line.x0) * uy - (y - line.y0) * ux)


def _cross(a: Line, b: Line) -> float:
    ax, ay = _line_dir(a)
    bx, by = _line_dir(b)
    return abs(ax * by - ay * bx)


def _dot(a: Line, b: Line) -> float:
    ax, ay = _line_dir(a)
    bx, by = _line_dir(b)
    return abs(ax * bx + ay * by)


def _arc_mid(p: Arc) -> tuple[float, float]:
    cx, cy = p.center
    a0, a1 = p.angles
    m = (a0 + a1) / 2
    return cx + p.radius * math.cos(m), cy + p.radius * math.sin(m)


def residual(sketch: Sketch, c: Constraint) -> float | None:
    """How far ``sketch`` is from satisfying ``c`` (0 = satisfied); ``None`` if undefined here."""
    T = ConstraintType
    objs = [resolve_ref(sketch, r) for r in c.refs]
    t = c.type
    if t == T.FIX:
        return 0.0
    if t in (T.HORIZONTAL, T.VERTICAL):
        k = 1 if t == T.HORIZONTAL else 0
        if len(objs) == 1:
            a = objs[0]
            if isinstance(a, Line):
                return abs(a.params()[2 + k] - a.params()[k])
            return None
        ca, cb = _center_of(objs[0]), _center_of(objs[1])
        if ca is None or cb is None:
            return None
        return abs(ca[k] - cb[k])
    a, b = objs[0], objs[-1]
    if t in (T.CONCENTRIC,):
        ca, cb = _center_of(a), _center_of(b)
        if ca is None or cb is None:
            return None
        return math.hypot(ca[0] - cb[0], ca[1] - cb[1])
    if t == T.COINCIDENT:
        if isinstance(b, Point) and not isinstance(a, Point):
            a, b = b, a
        if isinstance(a, Point) and isinstance(b, Point):
            return math.hypot(a.x - b.x, a.y - b.y)
        if isinstance(a, Point) and isinstance(b, Line):
            return _point_line_distance(a.x, a.y, b)
        if isinstance(a, Point) and _circle_of(b) is not None:
            cx, cy, r = _circle_of(b)
            return abs(math.hypot(a.x - cx, a.y - cy) - r)
        if isinstance(a, Line) and isinstance(b, Line):
            return max(_point_line_distance(b.x0, b.y0, a), _point_line_distance(b.x1, b.y1, a))
        ca, cb = _circle_of(a), _circle_of(b)
        if ca is not None and cb is not None:
            return math.hypot(ca[0] - cb[0], ca[1] - cb[1]) + abs(ca[2] - cb[2])
        return None
    if t == T.EQUAL:
        if isinstance(a, Line) and isinstance(b, Line):
            return abs(a.length - b.length)
        ca, cb = _circle_of(a), _circle_of(b)
        if ca is not None and cb is not None:
            return abs(ca[2] - cb[2])
        return None
    if t == T.MIDPOINT and len(objs) == 3:
        centers = [_center_of(o) for o in objs]
        if any(c is None for c in centers):  # a whole line has no single point
            return None
        (px, py), (ax, ay), (bx, by) = centers
        return math.hypot(px - (ax + bx) / 2, py - (ay + by) / 2)
    if t == T.MIDPOINT:
        if isinstance(b, Point) and not isinstance(a, Point):
            a, b = b, a
        if isinstance(a, Point) and isinstance(b, Line):
            mx, my = b.midpoint
            return math.hypot(a.x - mx, a.y - my)
        if isinstance(a, Point) and isinstance(b, Arc) and not b.is_degenerate:
            mx, my = _arc_mid(b)
            return math.hypot(a.x - mx, a.y - my)
        return None
    if t in (T.PARALLEL, T.OFFSET) and isinstance(a, Line) and isinstance(b, Line):
        return _cross(a, b) * max(a.length, b.length)
    if t == T.PERPENDICULAR and isinstance(a, Line) and isinstance(b, Line):
        return _dot(a, b) * max(a.length, b.length)
    if t == T.OFFSET:
        ca, cb = _circle_of(a), _circle_of(b)
        if ca is not None and cb is not None:
            return math.hypot(ca[0] - cb[0], ca[1] - cb[1])
        return None
    if t == T.NORMAL:
        if isinstance(b, Line):
            a, b = b, a
        if isinstance(a, Line) and _circle_of(b) is not None:
            cx, cy, _ = _circle_of(b)
            return _point_line_distance(cx, cy, a)
        return None
    if t == T.QUADRANT:
        if isinstance(b, Point):
            a, b = b, a
        if isinstance(a, Point) and _circle_of(b) is not None:
            cx, cy, r = _circle_of(b)
            return abs(math.hypot(a.x - cx, a.y - cy) - r) + min(abs(a.x - cx), abs(a.y - cy))
        return None
    if t == T.TANGENT:
        if isinstance(b, Line):
            a, b = b, a
        if isinstance(a, Line) and _circle_of(b) is not None:
            cx, cy, r = _circle_of(b)
            return abs(_point_line_distance(cx, cy, a) - r)
        ca, cb = _circle_of(a), _circle_of(b)
        if ca is not None and cb is not None:
            d = math.hypot(ca[0] - cb[0], ca[1] - cb[1])
            return min(abs(d - (ca[2] + cb[2])), abs(d - abs(ca[2] - cb[2])))
        if isinstance(a, Line) and isinstance(b, Line):
            return max(_point_line_distance(b.x0, b.y0, a), _point_line_distance(b.x1, b.y1, a))
        return None
    # numeric constraints
    v = c.value
    if v is None:
        return None
    if t == T.LENGTH and isinstance(a, Line):
        return abs(a.length - v)
    if t == T.RADIUS and _circle_of(a) is not None:
        return abs(_circle_of(a)[2] - v)
    if t == T.DIAMETER and _circle_of(a) is not None:
        return abs(2 * _circle_of(a)[2] - v)
    if t == T.ANGLE and isinstance(a, Line) and isinstance(b, Line):
        ax, ay = _line_dir(a)
        bx, by = _line_dir(b)
        ang = math.atan2(ax * by - ay * bx, ax * bx + ay * by)
        return min(abs(math.sin(ang - v)), abs(math.sin(ang + v)))
    if t == T.DISTANCE:
        if isinstance(a, (Circle, Arc)) or isinstance(b, (Circle, Arc)):
            # Onshape measures to a whole circle/arc's curve, on a side (half space) not kept
            return None
        ca, cb = _center_of(a), _center_of(b)
        if ca is not None and cb is not None:
            return abs(math.hypot(ca[0] - cb[0], ca[1] - cb[1]) - v)
        if isinstance(b, Line) and ca is not None:
            return abs(_point_line_distance(ca[0], ca[1], b) - v)
        if isinstance(a, Line) and cb is not None:
            return abs(_point_line_distance(cb[0], cb[1], a) - v)
        if isinstance(a, Line) and isinstance(b, Line):
            return max(abs(_point_line_distance(b.x0, b.y0, a) - v), abs(_point_line_distance(b.x1, b.y1, a) - v))
    return None


def residuals(sketch: Sketch) -> list[float | None]:
    """:func:`residual` of every constraint of the sketch, in order."""
    return [residual(sketch, c) for c in sketch.constraints]


def max_residual(sketch: Sketch, types=None) -> float:
    """Largest defined residual (optionally over constraint ``types`` only); 0 when none."""
    vals = [r for c, r in zip(sketch.constraints, residuals(sketch)) if r is not None and (types is None or c.type in types)]
    return max(vals, default=0.0)
