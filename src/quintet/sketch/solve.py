"""Solving sketches with SolveSpace (PyPI ``slvs`` 3.3), safely.

Vitruvion imports its samples into a CAD solver to make them exact (§4.3); here the solver is
SolveSpace's. :func:`solve` builds a system from a sketch — its coordinates are the initial
guess — solves it and returns a :class:`SolveResult`: the solved sketch, a status (``ok``,
``inconsistent`` with the failing constraints named, ``didnt_converge``, ``too_many_unknowns`` or
``error``) and the degrees of freedom left.

``slvs`` keeps one global system and aborts the whole process on some bad inputs, so every
solve runs in a worker process with a timeout (:class:`SolverWorker`); a crash or a hang becomes
an ``error`` result and a fresh worker, never a dead caller. :func:`solve_here` runs in-process.

Constraint translation (2-D, one workplane). Sub-points are SolveSpace points; circles have a
radius parameter; arcs are SolveSpace arcs (centre, start, end, counter-clockwise, start and end
equidistant from the centre). Tangency between a line and a circle/arc, or two circles/arcs, uses
a helper contact point ``T`` (on both curves, with the line perpendicular to centre–T, or T on the
line of centres); quadrant = on the circle and horizontal or vertical to the centre (whichever is
nearer in the initial sketch); offset = parallel (lines) or concentric (circles/arcs). A point on a
line is a zero point–line distance, never slvs' ``PT_ON_LINE`` (its hidden parameter starts
uninitialised and drags consistent geometry away). An angle between lines is met in the
orientation (v or π − v) nearer the input. Numeric constraints without a value keep the value
measured on the input; a distance to a whole circle or arc (Onshape measures it to the curve, on
a side we do not keep) is left untranslated. A sketch whose constraints already hold comes back
unchanged.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import threading
from dataclasses import dataclass, field

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Constraint, ConstraintType, Sketch
from quintet.sketch.primitives import Arc, Circle, Line, Point

__all__ = ["SolveResult", "solve", "solve_many", "solve_here", "SolverWorker"]

STATUS = {0: "ok", 1: "inconsistent", 2: "didnt_converge", 3: "too_many_unknowns", 4: "ok"}


@dataclass
class SolveResult:
    """Outcome of one solve; ``sketch`` is None unless status is ``ok``."""

    status: str
    sketch: Sketch | None = None
    dof: int = -1
    failed: list[int] = field(default_factory=list)
    unsupported: list[int] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self, sketch: Sketch | None = None) -> str:
        """One line: the status, the degrees of freedom left and any failing constraints."""
        text = f"{self.status}, {self.dof} degrees of freedom left"
        if self.failed:
            names = [f"{i} ({sketch.constraints[i].type.value})" if sketch else str(i) for i in self.failed]
            text += "; failing constraints: " + ", ".join(names)
        if self.unsupported:
            text += f"; {len(self.unsupported)} constraint(s) not translatable"
        if self.message:
            text += f"; {self.message}"
        return text


# ---- the system builder (runs inside the worker) -----------------------------------------------

class _System:
    def __init__(self, slvs, sketch: Sketch):
        self.s = slvs
        self.sketch = sketch
        slvs.clear_sketch()
        self.g = 2
        origin = slvs.add_point_3d(1, 0.0, 0.0, 0.0)
        self.nm = slvs.add_normal_3d(1, *slvs.make_quaternion(1.0, 0.0, 0.0, 0.0, 1.0, 0.0))
        self.wp = slvs.add_workplane(1, origin, self.nm)
        self.ents = []  # per primitive: dict part -> entity
        # endpoint pairs joined by a coincident constraint: tangency there uses SolveSpace's own
        # endpoint-tangent constraints, which converge better than a free contact point
        self.joined: dict[tuple[int, int], tuple[str, str]] = {}
        for c in sketch.constraints:
            if c.type == ConstraintType.COINCIDENT and all(r.part in ("start", "end") for r in c.refs):
                (a, b) = c.refs
                self.joined[(a.index, b.index)] = (a.part, b.part)
                self.joined[(b.index, a.index)] = (b.part, a.part)
        for p in sketch.primitives:
            self.ents.append(self._add_primitive(p))

    def _pt(self, x, y):
        return self.s.add_point_2d(self.g, float(x), float(y), self.wp)

    def _add_primitive(self, p):
        s, g, wp = self.s, self.g, self.wp
        if isinstance(p, Point):
            pt = self._pt(p.x, p.y)
            return {"whole": pt, "_points": [pt]}
        if isinstance(p, Line):
            a, b = self._pt(p.x0, p.y0), self._pt(p.x1, p.y1)
            return {"whole": s.add_line_2d(g, a, b, wp), "start": a, "end": b, "_points": [a, b]}
        if isinstance(p, Circle):
            c = self._pt(p.cx, p.cy)
            r = s.add_distance(g, float(p.r), wp)
            return {"whole": s.add_circle(g, self.nm, c, r, wp), "center": c, "_points": [c], "_radius": r}
        if p.is_degenerate:
            raise QuintetError("degenerate arc (collinear points) cannot be solved")
        cx, cy = p.center
        c, a, b = self._pt(cx, cy), self._pt(p.sx, p.sy), self._pt(p.ex, p.ey)
        return {"whole": s.add_arc(g, self.nm, c, a, b, wp), "center": c, "start": a, "end": b, "_points": [c, a, b]}

    # ---- helpers ----
    def ent(self, ref):
        return self.ents[ref.index][ref.part]

    def center(self, ref):
        p = self.sketch.primitives[ref.index]
        if ref.part != "whole" or isinstance(p, Point):
            return self.ent(ref)
        if isinstance(p, (Circle, Arc)):
            return self.ents[ref.index]["center"]
        return None

    def _c(self, ctype, v=0.0, p1=None, p2=None, e1=None, e2=None, other=0):
        s = self.s
        kw = {}
        if p1 is not None:
            kw["ptA"] = p1
        if p2 is not None:
            kw["ptB"] = p2
        if e1 is not None:
            kw["entityA"] = e1
        if e2 is not None:
            kw["entityB"] = e2
        return s.add_constraint(self.g, ctype, self.wp, float(v), other=other, **kw)

    def _on_line(self, pt, line) -> None:
        """Point ``pt`` on (the infinite extension of) ``line``, as a zero point–line distance.

        Not ``PT_ON_LINE``: slvs 3.x gives that constraint an extra parameter (the position
        along the line) that its library never initialises (``Slvs_CanInitiallySatisfy`` is
        false for it), so it starts at 0 — "the point is at the line's start" — and the solver
        drags already-consistent geometry towards that, moving or collapsing it.
        ``PT_LINE_DISTANCE`` is one equation with no hidden parameter and the same DOF count.
        """
        self._c(self.s.ConstraintType.PT_LINE_DISTANCE, p1=pt, e1=line)

    def _kind(self, ref) -> str:
        p = self.sketch.primitives[ref.index]
        if ref.part != "whole" or isinstance(p, Point):
            return "point"
        return p.type

    def _geom_point(self, ref):
        p = self.sketch.primitives[ref.index]
        return p.point(ref.part) if ref.part != "whole" else (p.x, p.y)

    def _contact(self, line_or_curve_a, kind_a, curve_b, guess):
        """Helper point T tangent-contact between (line|curve) a and curve b."""
        CT = self.s.ConstraintType
        t = self._pt(*guess)
        self._c(CT.PT_ON_CIRCLE, p1=t, e1=curve_b["whole"])
        if kind_a == "line":
            self._on_line(t, line_or_curve_a["whole"])
            helper = self.s.add_line_2d(self.g, curve_b["center"], t, self.wp)
            self._c(CT.PERPENDICULAR, e1=line_or_curve_a["whole"], e2=helper)
        else:
            self._c(CT.PT_ON_CIRCLE, p1=t, e1=line_or_curve_a["whole"])
            helper = self.s.add_line_2d(self.g, line_or_curve_a["center"], curve_b["center"], self.wp)
            self._on_line(t, helper)

    def add(self, c: Constraint) -> bool:
        """Translate one constraint; False when this combination is not supported."""
        from quintet.sketch.geometry import _circle_of, _line_dir

        CT = self.s.ConstraintType
        T = ConstraintType
        refs = c.refs
        kinds = [self._kind(r) for r in refs]
        prims = [self.sketch.primitives[r.index] for r in refs]
        t = c.type
        curves = ("circle", "arc")

        if t == T.FIX:
            ent = self.ents[refs[0].index]
            if refs[0].part != "whole":
                self.s.dragged(self.g, ent[refs[0].part], self.wp)
                return True
            for pt in ent["_points"]:
                self.s.dragged(self.g, pt, self.wp)
            if "_radius" in ent:
                self.s.diameter(self.g, ent["whole"], 2 * prims[0].r)
            return True
        if t in (T.HORIZONTAL, T.VERTICAL):
            ct = CT.HORIZONTAL if t == T.HORIZONTAL else CT.VERTICAL
            if len(refs) == 1:
                if kinds[0] != "line":
                    return False
                self._c(ct, e1=self.ent(refs[0]))
                return True
            a, b = self.center(refs[0]), self.center(refs[1])
            if a is None or b is None:
                return False
            self._c(ct, p1=a, p2=b)
            return True
        a_k, b_k = kinds[0], kinds[-1]
        if t == T.CONCENTRIC or (t == T.OFFSET and a_k in curves and b_k in curves):
            a, b = self.center(refs[0]), self.center(refs[1])
            if a is None or b is None:
                return False
            self._c(CT.POINTS_COINCIDENT, p1=a, p2=b)
            return True
        if t == T.COINCIDENT:
            ra, rb = refs
            if a_k != "point" and b_k == "point":
                ra, rb, a_k, b_k = rb, ra, b_k, a_k
            if a_k == "point" and b_k == "point":
                self._c(CT.POINTS_COINCIDENT, p1=self.ent(ra), p2=self.ent(rb))
            elif a_k == "point" and b_k == "line":
                self._on_line(self.ent(ra), self.ent(rb))
            elif a_k == "point" and b_k in curves:
                self._c(CT.PT_ON_CIRCLE, p1=self.ent(ra), e1=self.ent(rb))
            elif a_k == "line" and b_k == "line":
                eb = self.ents[rb.index]
                self._on_line(eb["start"], self.ent(ra))
                self._on_line(eb["end"], self.ent(ra))
            elif a_k in curves and b_k in curves:
                self._c(CT.POINTS_COINCIDENT, p1=self.center(ra), p2=self.center(rb))
                self._c(CT.EQUAL_RADIUS, e1=self.ent(ra), e2=self.ent(rb))
            else:
                return False
            return True
        if t == T.EQUAL:
            if a_k == "line" and b_k == "line":
                self._c(CT.EQUAL_LENGTH_LINES, e1=self.ent(refs[0]), e2=self.ent(refs[1]))
            elif a_k in curves and b_k in curves:
                self._c(CT.EQUAL_RADIUS, e1=self.ent(refs[0]), e2=self.ent(refs[1]))
            else:
                return False
            return True
        if t == T.MIDPOINT and len(refs) == 3:
            # a point midway between two points: the midpoint of a helper segment between them
            mid, a, b = (self.center(r) for r in refs)
            if mid is None or a is None or b is None:  # a whole line has no single point
                return False
            helper = self.s.add_line_2d(self.g, a, b, self.wp)
            self._c(CT.AT_MIDPOINT, p1=mid, e1=helper)
            return True
        if t == T.MIDPOINT:
            ra, rb = refs
            if a_k != "point":
                ra, rb, a_k, b_k = rb, ra, b_k, a_k
            if a_k == "point" and b_k == "line":
                self._c(CT.AT_MIDPOINT, p1=self.ent(ra), e1=self.ent(rb))
                return True
            if a_k == "point" and b_k == "arc":
                arc = self.ents[rb.index]
                self._c(CT.PT_ON_CIRCLE, p1=self.ent(ra), e1=arc["whole"])
                l1 = self.s.add_line_2d(self.g, self.ent(ra), arc["start"], self.wp)
                l2 = self.s.add_line_2d(self.g, self.ent(ra), arc["end"], self.wp)
                self._c(CT.EQUAL_LENGTH_LINES, e1=l1, e2=l2)
                return True
            return False
        if t in (T.PARALLEL, T.PERPENDICULAR, T.OFFSET):
            if a_k == "line" and b_k == "line":
                ct = CT.PERPENDICULAR if t == T.PERPENDICULAR else CT.PARALLEL
                self._c(ct, e1=self.ent(refs[0]), e2=self.ent(refs[1]))
                return True
            return False
        if t == T.NORMAL:
            ra, rb = refs
            if a_k != "line":
                ra, rb, a_k, b_k = rb, ra, b_k, a_k
            if a_k == "line" and b_k in curves:
                self._on_line(self.center(rb), self.ent(ra))
                return True
            return False
        if t == T.QUADRANT:
            ra, rb = refs
            if a_k != "point":
                ra, rb, a_k, b_k = rb, ra, b_k, a_k
            if a_k == "point" and b_k in curves:
                px, py = self._geom_point(ra)
                cx, cy, _ = _circle_of(self.sketch.primitives[rb.index])
                self._c(CT.PT_ON_CIRCLE, p1=self.ent(ra), e1=self.ent(rb))
                ct = CT.HORIZONTAL if abs(py - cy) < abs(px - cx) else CT.VERTICAL
                self._c(ct, p1=self.ent(ra), p2=self.center(rb))
                return True
            return False
        if t == T.TANGENT:
            ra, rb = refs
            if b_k == "line" and a_k != "line":
                ra, rb, a_k, b_k = rb, ra, b_k, a_k
            if a_k == "line" and b_k == "line":
                eb = self.ents[rb.index]
                self._on_line(eb["start"], self.ent(ra))
                self._on_line(eb["end"], self.ent(ra))
                return True
            if b_k not in curves or a_k not in ("line", *curves):
                return False
            joint = self.joined.get((ra.index, rb.index))
            if joint is not None and b_k == "arc" and a_k == "line":
                self._c(CT.ARC_LINE_TANGENT, e1=self.ent(rb), e2=self.ent(ra), other=int(joint[1] == "end"))
                return True
            if joint is not None and a_k == "arc" and b_k == "arc":
                self.s.add_constraint(self.g, CT.CURVE_CURVE_TANGENT, self.wp, 0.0, entityA=self.ent(ra), entityB=self.ent(rb),
                                      other=int(joint[0] == "end"), other2=int(joint[1] == "end"))
                return True
            cx, cy, r = _circle_of(self.sketch.primitives[rb.index])
            if a_k == "line":
                line = self.sketch.primitives[ra.index]
                ux, uy = _line_dir(line)
                s_ = (cx - line.x0) * ux + (cy - line.y0) * uy
                guess = (line.x0 + s_ * ux, line.y0 + s_ * uy)
            else:
                guess = _circle_contact(_circle_of(self.sketch.primitives[ra.index]), (cx, cy, r))
            self._contact(self.ents[ra.index], a_k, self.ents[rb.index], guess)
            return True
        # ---- numeric ----
        v = c.value
        if t == T.LENGTH and a_k == "line":
            ent = self.ents[refs[0].index]
            v = prims[0].length if v is None else v
            self.s.distance(self.g, ent["start"], ent["end"], float(v), self.wp)
            return True
        if t in (T.RADIUS, T.DIAMETER) and a_k in curves:
            r = _circle_of(prims[0])[2]
            d = 2 * r if v is None else (2 * v if t == T.RADIUS else v)
            self.s.diameter(self.g, self.ent(refs[0]), float(d))
            return True
        if t == T.ANGLE and a_k == "line" and b_k == "line":
            # SolveSpace fixes the angle between the lines' directions; an angle between
            # (unoriented) lines is met by v or pi - v, so flip one direction ("inverse") when
            # the sketch is nearer pi - v — otherwise a consistent sketch gets mirrored
            (ax, ay), (bx, by) = _line_dir(prims[0]), _line_dir(prims[1])
            measured = math.atan2(abs(ax * by - ay * bx), ax * bx + ay * by)
            # Onshape stores oriented angles (e.g. 290°); between lines only cos(v) matters
            v = measured if v is None else math.acos(max(-1.0, min(1.0, math.cos(v))))
            inverse = abs(measured - (math.pi - v)) < abs(measured - v)
            self.s.angle(self.g, self.ent(refs[0]), self.ent(refs[1]), math.degrees(v), self.wp, inverse)
            return True
        if t == T.DISTANCE:
            if any(k in curves for k in kinds):
                return False  # to a whole circle/arc: see geometry.residual
            ca, cb = self.center(refs[0]), self.center(refs[1])
            if ca is not None and cb is not None:
                if v is None:
                    pa = self._center_xy(refs[0])
                    pb = self._center_xy(refs[1])
                    v = math.hypot(pa[0] - pb[0], pa[1] - pb[1])
                self.s.distance(self.g, ca, cb, float(v), self.wp)
                return True
            ra, rb = refs
            if a_k == "line" and b_k == "line":
                # parallel lines at distance v: both ends of the second on the offset of the first
                line, other = prims[0], prims[1]
                ux, uy = _line_dir(line)
                for end in ("start", "end"):
                    px, py = other.point(end)
                    signed = (px - line.x0) * uy - (py - line.y0) * ux
                    dist = abs(signed) if v is None else v
                    self._c(CT.PT_LINE_DISTANCE, v=math.copysign(dist, signed), p1=self.ents[rb.index][end], e1=self.ent(ra))
                return True
            if b_k != "line":
                ra, rb = rb, ra
                ca, cb = cb, ca
            if ca is not None and self._kind(rb) == "line":
                px, py = self._center_xy(ra)
                line = self.sketch.primitives[rb.index]
                ux, uy = _line_dir(line)
                signed = (px - line.x0) * uy - (py - line.y0) * ux
                v = abs(signed) if v is None else v
                self._c(CT.PT_LINE_DISTANCE, v=math.copysign(v, signed), p1=ca, e1=self.ent(rb))
                return True
            return False
        return False

    def _center_xy(self, ref):
        p = self.sketch.primitives[ref.index]
        if ref.part != "whole":
            return p.point(ref.part)
        if isinstance(p, Point):
            return (p.x, p.y)
        if isinstance(p, Circle):
            return p.center
        return p.center

    def read(self) -> Sketch:
        get = self.s.get_param_value
        prims = []
        for p, ent in zip(self.sketch.primitives, self.ents):
            pts = [(get(e["param"][0]), get(e["param"][1])) for e in ent["_points"]]
            if isinstance(p, Point):
                prims.append(Point(*pts[0], construction=p.construction))
            elif isinstance(p, Line):
                prims.append(Line(*pts[0], *pts[1], construction=p.construction))
            elif isinstance(p, Circle):
                prims.append(Circle(*pts[0], abs(get(ent["_radius"]["param"][0])), construction=p.construction))
            else:
                prims.append(_solved_arc(*pts, construction=p.construction))
        return Sketch(prims, list(self.sketch.constraints), self.sketch.name)


def _circle_contact(a: tuple[float, float, float], b: tuple[float, float, float]) -> tuple[float, float]:
    """The contact point of circles ``a`` and ``b`` (``(cx, cy, r)``) for the tangency, internal or
    external, that their input positions are nearer: the solver's starting guess, so a tangency
    that already holds is kept as it is instead of being flipped to the other kind."""
    (ax, ay, ar), (bx, by, br) = a, b
    d = math.hypot(bx - ax, by - ay)
    if d == 0.0:
        return ax + ar, ay
    internal = abs(d - abs(ar - br)) < abs(d - (ar + br))
    if internal:  # on the larger circle, on the side of the smaller one
        (ox, oy, orad), (tx, ty) = ((ax, ay, ar), (bx, by)) if ar >= br else ((bx, by, br), (ax, ay))
        return ox + (tx - ox) / d * orad, oy + (ty - oy) / d * orad
    return ax + (bx - ax) / d * ar, ay + (by - ay) / d * ar


#: a solved arc's sweep is kept this far (radians) short of a full turn
_FULL_TURN_MARGIN = 1e-6


def _solved_arc(center, start, end, construction: bool) -> Arc:
    """A SolveSpace arc read back: counter-clockwise from ``start`` to ``end`` about ``center``,
    a full turn when they coincide (SolveSpace's ``ArcGetAngles``). A sweep within
    :data:`_FULL_TURN_MARGIN` of a full turn is kept just short of it, so the stored start /
    mid / end stay counter-clockwise instead of rounding into a clockwise (invalid) arc."""
    (cx, cy), (sx, sy), (ex, ey) = center, start, end
    a0, a1 = math.atan2(sy - cy, sx - cx), math.atan2(ey - cy, ex - cx)
    sweep = (a1 - a0) % (2 * math.pi)
    if sweep < _FULL_TURN_MARGIN:
        sweep += 2 * math.pi
    sweep = min(sweep, 2 * math.pi - _FULL_TURN_MARGIN)
    return Arc.from_center(cx, cy, math.hypot(sx - cx, sy - cy), a0, a0 + sweep, construction)


#: a constraint holds when its residual is within this fraction of the sketch's size
HOLD_TOLERANCE = 1e-9


def _holds(sketch: Sketch, indices) -> bool:
    """True when each constraint ``indices`` of ``sketch`` has a residual within
    :data:`HOLD_TOLERANCE` of the sketch's size (its bounding box's long side)."""
    from quintet.sketch.geometry import residual

    tol = HOLD_TOLERANCE * max(sketch.long_side(), 1e-12)
    for i in indices:
        r = residual(sketch, sketch.constraints[i])
        if r is None or r > tol:
            return False
    return True


def _already_holds(sketch: Sketch, unsupported: list[int]) -> bool:
    """True when every translated constraint holds on the input (see :func:`_holds`)."""
    skip = set(unsupported)
    return _holds(sketch, [i for i in range(len(sketch.constraints)) if i not in skip])


def _run(slvs, sketch: Sketch, skip: frozenset = frozenset()):
    system = _System(slvs, sketch)
    unsupported = []
    for i, c in enumerate(sketch.constraints):
        if i in skip:
            continue
        if not system.add(c):
            unsupported.append(i)
    res = slvs.solve_sketch(system.g, False)
    return system, res, unsupported


def solve_here(sketch: Sketch, name_failures: bool = True) -> SolveResult:
    """Solve in this process (``slvs`` may abort it on bad input: prefer :func:`solve`)."""
    import slvs

    if not sketch.primitives:
        return SolveResult("ok", Sketch([], [], sketch.name), 0)
    try:
        sketch.validate()
        system, res, unsupported = _run(slvs, sketch)
    except QuintetError as exc:
        return SolveResult("error", None, -1, message=str(exc))
    status = STATUS.get(int(res["result"]), "error")
    dof = int(res["dof"])
    if _already_holds(sketch, unsupported):
        # the input is a solution: never move it, and never call it inconsistent because
        # SolveSpace stalls on redundant equations (e.g. tangency, coincidence and
        # point-on-curve all on one contact point)
        note = "" if status == "ok" else f"SolveSpace reported {status} on redundant constraints that the input satisfies"
        return SolveResult("ok", Sketch(list(sketch.primitives), list(sketch.constraints), sketch.name), dof, [], unsupported, note)
    if status == "ok":
        return SolveResult("ok", system.read(), dof, [], unsupported)
    failed, message = [], ""
    if status == "inconsistent" and len(sketch.constraints) > 64:
        message = "failing constraints not searched (more than 64 constraints)"
    elif status == "inconsistent":
        # SolveSpace stalls on redundant equations that a perturbed sketch does not meet exactly
        # (a distance between parallel lines and their parallelism, a midpoint on a line through
        # both ends): a constraint whose removal lets it solve and that the solution then meets
        # anyway is redundant, and the sketch is solved. Otherwise a constraint is failing when
        # dropping it alone makes the system consistent.
        for i in range(len(sketch.constraints)):
            if i in unsupported:
                continue
            s2, r2, _u = _run(slvs, sketch, frozenset([i]))
            if STATUS.get(int(r2["result"])) != "ok":
                continue
            solved = s2.read()
            if _holds(solved, [i]):
                note = f"constraint {i} ({sketch.constraints[i].type.value}) is redundant: met without being imposed"
                return SolveResult("ok", solved, int(r2["dof"]), [], unsupported, note)
            failed.append(i)
            if not name_failures:
                break
        redundant = _redundant_set(slvs, sketch, unsupported)
        if redundant is not None:
            solved, dof, dropped = redundant
            note = f"constraints {', '.join(map(str, dropped))} are redundant: met without being imposed"
            return SolveResult("ok", solved, dof, [], unsupported, note)
    return SolveResult(status, None, dof, failed, unsupported, message)


def _redundant_set(slvs, sketch: Sketch, unsupported: list[int]) -> tuple[Sketch, int, list[int]] | None:
    """``(solution, degrees of freedom, dropped constraints)`` when SolveSpace's failure comes from
    several redundant constraints, else None. The constraints are added in order, each kept only
    when the system stays solvable; the sketch is solved when the kept set solves and its solution
    meets every dropped constraint too (redundancy), not when a dropped one is left unmet (conflict)."""
    skip = set(unsupported)
    order = [i for i in range(len(sketch.constraints)) if i not in skip]
    dropped: list[int] = []
    for k, i in enumerate(order):
        _s, res, _u = _run(slvs, sketch, frozenset(dropped + order[k + 1:]))
        if STATUS.get(int(res["result"])) != "ok":
            dropped.append(i)
    if not dropped:
        return None
    system, res, _u = _run(slvs, sketch, frozenset(dropped))
    if STATUS.get(int(res["result"])) != "ok":
        return None
    solved = system.read()
    return (solved, int(res["dof"]), dropped) if _holds(solved, dropped) else None


# ---- the worker process ------------------------------------------------------------------------

def _worker_main(conn) -> None:  # pragma: no cover - runs in the child
    import faulthandler

    faulthandler.disable()  # an abort in slvs is reported by the parent, not as a C traceback here
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        kind, payload = msg
        if kind == "crash":  # for tests: die the way slvs does
            os.abort()
        if kind == "hang":
            import time

            time.sleep(3600)
        out = []
        for item in payload:
            try:
                out.append(solve_here(Sketch.from_dict(item)))
            except QuintetError as exc:
                out.append(SolveResult("error", None, -1, message=str(exc)))
        conn.send([_result_to_wire(r) for r in out])


def _result_to_wire(r: SolveResult) -> dict:
    return {
        "status": r.status,
        "sketch": r.sketch.to_dict() if r.sketch is not None else None,
        "dof": r.dof,
        "failed": r.failed,
        "unsupported": r.unsupported,
        "message": r.message,
    }


def _result_from_wire(d: dict) -> SolveResult:
    sk = Sketch.from_dict(d["sketch"]) if d["sketch"] is not None else None
    return SolveResult(d["status"], sk, d["dof"], list(d["failed"]), list(d["unsupported"]), d["message"])


class SolverWorker:
    """A SolveSpace worker process; restarted after a crash or a timeout."""

    def __init__(self, timeout: float = 20.0):
        self.timeout = timeout
        self._proc = None
        self._conn = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
        ctx = mp.get_context(method)
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def close(self) -> None:
        if self._proc is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            self._proc.join(timeout=1)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._proc = self._conn = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._proc = self._conn = None

    def request(self, kind: str, payload, timeout: float | None = None):
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._start()
            timeout = self.timeout if timeout is None else timeout
            try:
                self._conn.send((kind, payload))
                if not self._conn.poll(timeout):
                    self._kill()
                    return "timeout"
                return self._conn.recv()
            except (EOFError, BrokenPipeError, ConnectionResetError, OSError):
                code = self._proc.exitcode if self._proc is not None else None
                self._kill()
                return f"crash (exit code {code})"

    def solve_many(self, sketches: list[Sketch], timeout: float | None = None) -> list[SolveResult]:
        """Solve every sketch in the worker, in order. After a crash or timeout the batch is retried
        one sketch at a time, so only the sketch that caused it gets an ``error`` result."""
        if not sketches:
            return []
        reply = self.request("solve", [s.to_dict() for s in sketches], timeout)
        if isinstance(reply, str):
            if len(sketches) == 1:
                return [SolveResult("error", None, -1, message=f"solver worker {reply}")]
            # retry one by one so one bad sketch does not fail its batch
            return [self.solve_many([s], timeout)[0] for s in sketches]
        return [_result_from_wire(d) for d in reply]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_DEFAULT: SolverWorker | None = None


def _default_worker() -> SolverWorker:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = SolverWorker()
    return _DEFAULT


def solve(sketch: Sketch, timeout: float = 20.0) -> SolveResult:
    """Solve ``sketch`` with SolveSpace in the shared worker process (crash or hang -> ``error``
    result), as the paper checks generated sketches (§4.3); the result carries the degrees of
    freedom left."""
    return _default_worker().solve_many([sketch], timeout)[0]


def solve_many(sketches: list[Sketch], timeout: float = 60.0) -> list[SolveResult]:
    """Solve several sketches in one round trip to the worker."""
    return _default_worker().solve_many(list(sketches), timeout)
