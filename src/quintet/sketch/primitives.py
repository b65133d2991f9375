"""Geometric primitives of a parametric CAD sketch (Vitruvion, Seff et al. ICLR 2022, §3.1).

Vitruvion keeps four primitive types, each with a construction flag (construction geometry
guides the design but is not part of the final profile):

=========  ======================================  =======================================
type       parameters (token order, :meth:`params`)  sub-points a constraint may reference
=========  ======================================  =======================================
``arc``    ``sx sy mx my ex ey`` (start, mid, end)   ``start``, ``center``, ``end``
``circle`` ``cx cy r``                               ``center``
``line``   ``x0 y0 x1 y1``                           ``start``, ``end``
``point``  ``x y``                                   (the point itself, part ``whole``)
=========  ======================================  =======================================

An :class:`Arc` is stored as three points, as Vitruvion tokenises it: it runs
**counter-clockwise** from ``start`` through ``mid`` to ``end`` (the triangle start, mid, end has
positive signed area). Any point of the arc strictly between its ends may serve as ``mid``;
:meth:`Arc.from_center` places it at the angular midpoint. Three collinear points make a
*degenerate* arc (zero curvature): it can be stored and tokenised, but has no centre.

All classes are frozen dataclasses of plain floats; every constructor rejects NaN / inf with a
:class:`~quintet.core.errors.QuintetError` naming the primitive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

from quintet.core.errors import QuintetError

__all__ = [
    "Point",
    "Line",
    "Circle",
    "Arc",
    "Primitive",
    "PRIMITIVE_TYPES",
    "N_PARAMS",
    "PARTS",
    "primitive_type",
    "primitive_from_params",
    "primitive_bbox",
]

#: Primitive type names in token order (the type token of ``PRIMITIVE_TYPES[k]`` is ``3 + k``).
PRIMITIVE_TYPES: tuple[str, ...] = ("arc", "circle", "line", "point")
#: Number of parameters (coordinate tokens) of each type, aligned with :data:`PRIMITIVE_TYPES`.
N_PARAMS: tuple[int, ...] = (6, 3, 4, 2)
#: Parts of each type a constraint may reference (``whole`` = the primitive itself).
PARTS: dict[str, tuple[str, ...]] = {
    "arc": ("whole", "start", "center", "end"),
    "circle": ("whole", "center"),
    "line": ("whole", "start", "end"),
    "point": ("whole",),
}


def _check_finite(kind: str, values: tuple[float, ...]) -> None:
    for v in values:
        if not math.isfinite(v):
            raise QuintetError(f"{kind} has a non-finite coordinate {v!r} in {values}")


@dataclass(frozen=True)
class Point:
    """A sketch point ``(x, y)`` (float coordinates; one of the four primitive types of §3.1)."""

    x: float
    y: float
    construction: bool = False

    type = "point"

    def __post_init__(self) -> None:
        _check_finite("point", (self.x, self.y))

    def params(self) -> tuple[float, ...]:
        return (self.x, self.y)

    def point(self, part: str = "whole") -> tuple[float, float]:
        if part != "whole":
            raise QuintetError(f"a point has no part {part!r}; valid: whole")
        return (self.x, self.y)

    def size(self) -> float:
        return 0.0


@dataclass(frozen=True)
class Line:
    """A line segment from ``(x0, y0)`` to ``(x1, y1)`` (float coordinates; a primitive of §3.1)."""

    x0: float
    y0: float
    x1: float
    y1: float
    construction: bool = False

    type = "line"

    def __post_init__(self) -> None:
        _check_finite("line", self.params())

    def params(self) -> tuple[float, ...]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def start(self) -> tuple[float, float]:
        return (self.x0, self.y0)

    @property
    def end(self) -> tuple[float, float]:
        return (self.x1, self.y1)

    @property
    def length(self) -> float:
        return math.hypot(self.x1 - self.x0, self.y1 - self.y0)

    @property
    def midpoint(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def point(self, part: str) -> tuple[float, float]:
        if part == "start":
            return self.start
        if part == "end":
            return self.end
        raise QuintetError(f"a line has no point {part!r}; valid: start, end")

    def size(self) -> float:
        return self.length


@dataclass(frozen=True)
class Circle:
    """A circle of centre ``(cx, cy)`` and radius ``r`` (``r > 0`` for a valid sketch; a primitive
    of §3.1)."""

    cx: float
    cy: float
    r: float
    construction: bool = False

    type = "circle"

    def __post_init__(self) -> None:
        _check_finite("circle", self.params())
        if self.r < 0:
            raise QuintetError(f"circle radius must be >= 0, got {self.r}")

    def params(self) -> tuple[float, ...]:
        return (self.cx, self.cy, self.r)

    @property
    def center(self) -> tuple[float, float]:
        return (self.cx, self.cy)

    @property
    def radius(self) -> float:
        return self.r

    def point(self, part: str) -> tuple[float, float]:
        if part == "center":
            return self.center
        raise QuintetError(f"a circle has no point {part!r}; valid: center")

    def size(self) -> float:
        return self.r


#: Relative tolerance below which three points count as collinear (twice the triangle's area over
#: the squared extent of the points).
_COLLINEAR = 1e-12


def _signed_area(ax: float, ay: float, bx: float, by: float, cx: float, cy: float) -> float:
    """Twice the signed area of triangle abc (> 0 when counter-clockwise)."""
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


@dataclass(frozen=True)
class Arc:
    """A circular arc running counter-clockwise from start through mid to end (a primitive of §3.1,
    parametrised by three float points as in the paper's tokens).

    Raises :class:`QuintetError` when the three points are clockwise (use :meth:`through`, which
    orders them). Collinear points give a degenerate arc (:attr:`is_degenerate`), whichever way
    rounding turns them.
    """

    sx: float
    sy: float
    mx: float
    my: float
    ex: float
    ey: float
    construction: bool = False

    type = "arc"

    def __post_init__(self) -> None:
        _check_finite("arc", self.params())
        # points collinear up to rounding (a degenerate arc) may come out slightly clockwise in
        # either order, so only a turn beyond the tolerance of :attr:`is_degenerate` is rejected
        if _signed_area(*self.params()) < -_COLLINEAR * self._scale() ** 2:
            raise QuintetError(
                f"arc points {self.params()} run clockwise; arcs go counter-clockwise from start "
                "through mid to end (Arc.through orders three points)"
            )

    # ---- constructors -------------------------------------------------------------------
    @classmethod
    def through(cls, start, mid, end, construction: bool = False) -> tuple["Arc", bool]:
        """The arc from ``start`` through ``mid`` to ``end``, oriented counter-clockwise.

        Returns ``(arc, swapped)``; ``swapped`` is True when start and end were exchanged.
        """
        if _signed_area(start[0], start[1], mid[0], mid[1], end[0], end[1]) < 0:
            return cls(end[0], end[1], mid[0], mid[1], start[0], start[1], construction), True
        return cls(start[0], start[1], mid[0], mid[1], end[0], end[1], construction), False

    @classmethod
    def from_center(
        cls, cx: float, cy: float, r: float, start_angle: float, end_angle: float, construction: bool = False
    ) -> "Arc":
        """Arc of centre ``(cx, cy)``, radius ``r``, counter-clockwise from ``start_angle`` to
        ``end_angle`` (radians; the sweep is taken modulo 2π in (0, 2π])."""
        _check_finite("arc", (cx, cy, r, start_angle, end_angle))
        sweep = (end_angle - start_angle) % (2 * math.pi)
        if sweep <= 1e-12:
            sweep = 2 * math.pi
        mid = start_angle + sweep / 2
        end = start_angle + sweep
        return cls(
            cx + r * math.cos(start_angle),
            cy + r * math.sin(start_angle),
            cx + r * math.cos(mid),
            cy + r * math.sin(mid),
            cx + r * math.cos(end),
            cy + r * math.sin(end),
            construction,
        )

    # ---- geometry -----------------------------------------------------------------------
    def params(self) -> tuple[float, ...]:
        return (self.sx, self.sy, self.mx, self.my, self.ex, self.ey)

    @property
    def start(self) -> tuple[float, float]:
        return (self.sx, self.sy)

    @property
    def mid(self) -> tuple[float, float]:
        return (self.mx, self.my)

    @property
    def end(self) -> tuple[float, float]:
        return (self.ex, self.ey)

    def _scale(self) -> float:
        return max(abs(self.ex - self.sx), abs(self.ey - self.sy), abs(self.mx - self.sx), abs(self.my - self.sy))

    @property
    def is_degenerate(self) -> bool:
        """True when the three points are (numerically) collinear or coincide."""
        scale = self._scale()
        return scale == 0.0 or _signed_area(*self.params()) <= _COLLINEAR * scale * scale

    @property
    def center(self) -> tuple[float, float]:
        """Circumcentre of start, mid, end; raises for a degenerate arc."""
        if self.is_degenerate:
            raise QuintetError(f"degenerate arc {self.params()}: its three points are collinear")
        ax, ay, bx, by, cx, cy = self.params()
        d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
        a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
        ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
        uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
        return (ux, uy)

    @property
    def radius(self) -> float:
        cx, cy = self.center
        return math.hypot(self.sx - cx, self.sy - cy)

    @property
    def angles(self) -> tuple[float, float]:
        """``(start_angle, end_angle)`` in radians with ``start < end <= start + 2π`` (CCW)."""
        cx, cy = self.center
        a0 = math.atan2(self.sy - cy, self.sx - cx)
        a1 = math.atan2(self.ey - cy, self.ex - cx)
        sweep = (a1 - a0) % (2 * math.pi)
        if sweep <= 1e-12:
            sweep = 2 * math.pi
        return a0, a0 + sweep

    @property
    def sweep(self) -> float:
        a0, a1 = self.angles
        return a1 - a0

    def point(self, part: str) -> tuple[float, float]:
        if part == "start":
            return self.start
        if part == "end":
            return self.end
        if part == "center":
            return self.center
        raise QuintetError(f"an arc has no point {part!r}; valid: start, center, end")

    def size(self) -> float:
        if self.is_degenerate:
            return 0.0
        return self.radius


Primitive = Union[Point, Line, Circle, Arc]

_CLASSES = {"arc": Arc, "circle": Circle, "line": Line, "point": Point}


def primitive_type(p: Primitive) -> int:
    """Index of ``p``'s type in :data:`PRIMITIVE_TYPES`."""
    return PRIMITIVE_TYPES.index(p.type)


def primitive_from_params(kind: str | int, params, construction: bool = False) -> Primitive:
    """Build a primitive from its type (name or index) and its parameters in token order.

    Arcs given clockwise are re-oriented (start and end swapped) so this never raises for
    orientation; use :meth:`Arc.through` when the swap matters to you.
    """
    name = PRIMITIVE_TYPES[kind] if isinstance(kind, int) else kind
    if name not in _CLASSES:
        raise QuintetError(f"unknown primitive type {kind!r}; valid: {', '.join(PRIMITIVE_TYPES)}")
    params = [float(v) for v in params]
    k = N_PARAMS[PRIMITIVE_TYPES.index(name)]
    if len(params) != k:
        raise QuintetError(f"a {name} takes {k} parameters, got {len(params)}")
    if name == "arc":
        return Arc.through(params[0:2], params[2:4], params[4:6], construction)[0]
    return _CLASSES[name](*params, construction=bool(construction))


def _arc_extent(arc: Arc) -> tuple[float, float, float, float]:
    if arc.is_degenerate:
        xs, ys = (arc.sx, arc.mx, arc.ex), (arc.sy, arc.my, arc.ey)
        return min(xs), min(ys), max(xs), max(ys)
    cx, cy = arc.center
    r = arc.radius
    a0, a1 = arc.angles
    xs, ys = [arc.sx, arc.ex], [arc.sy, arc.ey]
    k = math.ceil(a0 / (math.pi / 2))
    while k * math.pi / 2 < a1:
        ang = k * math.pi / 2
        xs.append(cx + r * math.cos(ang))
        ys.append(cy + r * math.sin(ang))
        k += 1
    return min(xs), min(ys), max(xs), max(ys)


def primitive_bbox(p: Primitive) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of one primitive."""
    if isinstance(p, Point):
        return p.x, p.y, p.x, p.y
    if isinstance(p, Line):
        return min(p.x0, p.x1), min(p.y0, p.y1), max(p.x0, p.x1), max(p.y0, p.y1)
    if isinstance(p, Circle):
        return p.cx - p.r, p.cy - p.r, p.cx + p.r, p.cy + p.r
    return _arc_extent(p)
