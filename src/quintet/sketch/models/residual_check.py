"""A residual check for inferred constraints (after Vitruvion §3.2's constraint model).

The constraint model reads noisy or sampled primitives and may name a constraint that the drawn
geometry is far from meeting (a horizontal constraint on a steep line, a coincidence of two
distant points). Imposed together, such constraints can contradict each other, and the solver
then fails on the whole sketch. The check drops every inferred constraint whose residual
(:func:`quintet.sketch.geometry.residual`) exceeds a tolerance relative to the sketch's long side.
The tolerance is calibrated on true constraints: the given quantile of their relative residuals on
quantised held-out sketches, so the check keeps that share of constraints a designer did impose.

:class:`ResidualMask` applies the same test while the constraint model decodes, instead of after:
a pointer that would complete a constraint the geometry misses is masked out, so the model's
next most likely reference that the geometry does meet takes its place.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Constraint, ConstraintType, Ref, Sketch
from quintet.sketch.geometry import residual, resolve_ref
from quintet.sketch.models.grammar import ConstraintGrammar
from quintet.sketch.primitives import Arc, Line, Point

__all__ = ["relative_residuals", "orientation_agrees", "ends_agree", "agrees", "PointIdentities",
           "calibrate_tolerance", "drop_unmet", "ResidualMask", "passing_share"]

_OTHER_END = {"start": "end", "end": "start"}
_DIRECTIONAL = (ConstraintType.HORIZONTAL, ConstraintType.VERTICAL, ConstraintType.PARALLEL,
                ConstraintType.PERPENDICULAR)


def relative_residuals(sketch: Sketch) -> list[float | None]:
    """Residual of each constraint divided by the sketch's long side (``None`` where undefined)."""
    side = sketch.long_side()
    if not side > 0:
        return [None] * len(sketch.constraints)
    return [None if (r := residual(sketch, c)) is None else r / side for c in sketch.constraints]


def orientation_agrees(sketch: Sketch, c: Constraint) -> bool:
    """Whether the whole lines of a directional constraint lie nearer its direction than the
    opposite one: a horizontal line at most 45° from horizontal, parallel (or collinear, a
    coincidence of two lines) lines at most 45° apart, perpendicular ones at least 45° apart. A
    residual relative to the sketch's size cannot tell a short vertical line from a horizontal one;
    on a line one grid bin long both residuals lie within any useful tolerance, and imposing both
    shrinks the line to a point. Other constraints, and directional ones on points, always agree."""
    directional = c.type in _DIRECTIONAL or (c.type == ConstraintType.COINCIDENT and len(c.refs) == 2)
    if not directional or any(r.part != "whole" for r in c.refs):
        return True
    lines = [sketch.primitives[r.index] for r in c.refs]
    if any(p.type != "line" for p in lines):
        return True
    (dx, dy), *rest = [(p.x1 - p.x0, p.y1 - p.y0) for p in lines]
    if c.type == ConstraintType.HORIZONTAL:
        return abs(dy) <= abs(dx)
    if c.type == ConstraintType.VERTICAL:
        return abs(dx) <= abs(dy)
    ex, ey = rest[0]
    cross, dot = abs(dx * ey - dy * ex), abs(dx * ex + dy * ey)
    return dot <= cross if c.type == ConstraintType.PERPENDICULAR else cross <= dot


def ends_agree(sketch: Sketch, c: Constraint) -> bool:
    """Whether a coincidence or midpoint names the nearest point of each primitive it refers to: an
    end of a line or arc coincident with a point lies at least as near that point as the
    primitive's other end, and the point a line's midpoint is tied to lies at least as near the
    midpoint as either end. Within a tolerance of a bin or two, the two ends of a short line are
    interchangeable by residual alone, and tying both to one point collapses the line."""
    if c.type not in (ConstraintType.COINCIDENT, ConstraintType.MIDPOINT) or len(c.refs) != 2:
        return True
    objs = [resolve_ref(sketch, r) for r in c.refs]
    for ref, other in zip(c.refs, reversed(objs)):
        if not isinstance(other, Point):
            continue
        p = sketch.primitives[ref.index]
        if c.type == ConstraintType.COINCIDENT and ref.part in _OTHER_END and isinstance(p, (Line, Arc)):
            near, far = p.point(ref.part), p.point(_OTHER_END[ref.part])
            if _distance(near, other) > _distance(far, other):
                return False
        if c.type == ConstraintType.MIDPOINT and ref.part == "whole" and isinstance(p, Line):
            ends = min(_distance((p.x0, p.y0), other), _distance((p.x1, p.y1), other))
            if _distance(p.midpoint, other) > ends:
                return False
    return True


def agrees(sketch: Sketch, c: Constraint) -> bool:
    """:func:`orientation_agrees` and :func:`ends_agree`: the constraint names the geometry the way a
    designer would have, beyond meeting it within a tolerance."""
    return orientation_agrees(sketch, c) and ends_agree(sketch, c)


def _distance(a: tuple[float, float], b: Point) -> float:
    return math.hypot(a[0] - b.x, a[1] - b.y)


class PointIdentities:
    """Which points a sequence of constraints has made one point (union–find over the ends, centres
    and line midpoints that coincidences and midpoint constraints tie together).

    A set of constraints that each hold within a tolerance can still tie two points of one
    primitive together — a point at a line's end and at its midpoint, a chain of coincidences from
    a line's start to its end, an arc's end on its own centre — and a solver meets that only by
    collapsing the primitive. :meth:`collapses` tells whether adding a constraint would do so."""

    def __init__(self, sketch: Sketch):
        self.sketch = sketch
        self.parent: dict[tuple[int, str], tuple[int, str]] = {}
        self.members: dict[tuple[int, str], set[tuple[int, str]]] = {}

    def _key(self, ref: Ref, midpoint_of: bool = False) -> tuple[int, str] | None:
        p = self.sketch.primitives[ref.index]
        if ref.part != "whole":
            return ref.index, ref.part
        if isinstance(p, Point):
            return ref.index, "whole"
        return (ref.index, "mid") if midpoint_of and isinstance(p, Line) else None

    def _pair(self, c: Constraint) -> tuple[tuple[int, str], tuple[int, str]] | None:
        if len(c.refs) != 2 or c.type not in (ConstraintType.COINCIDENT, ConstraintType.MIDPOINT):
            return None
        mid = c.type == ConstraintType.MIDPOINT
        a, b = (self._key(r, midpoint_of=mid) for r in c.refs)
        return None if a is None or b is None else (a, b)

    def _root(self, key: tuple[int, str]) -> tuple[int, str]:
        while self.parent.get(key, key) != key:
            key = self.parent[key]
        return key

    def collapses(self, c: Constraint) -> bool:
        """Whether ``c`` would make two distinct points of one primitive the same point."""
        pair = self._pair(c)
        if pair is None:
            return False
        ra, rb = (self._root(k) for k in pair)
        if ra == rb:
            return False
        own = {i for i, _ in self.members.get(ra, {ra})}
        return any(i in own for i, _ in self.members.get(rb, {rb}))

    def add(self, c: Constraint) -> None:
        """Record ``c`` (nothing for constraints that tie no two points)."""
        pair = self._pair(c)
        if pair is None:
            return
        ra, rb = (self._root(k) for k in pair)
        if ra != rb:
            self.parent[rb] = ra
            self.members[ra] = self.members.pop(ra, {ra}) | self.members.pop(rb, {rb})


def calibrate_tolerance(sketches: Sequence[Sketch], quantile: float = 0.99) -> float:
    """The ``quantile`` of the relative residuals of all constraints of ``sketches``."""
    if not 0 < quantile <= 1:
        raise QuintetError(f"quantile must be in (0, 1], got {quantile}")
    values = [r for sk in sketches for r in relative_residuals(sk) if r is not None]
    if not values:
        raise QuintetError("no constraint with a defined residual to calibrate the tolerance on")
    return float(np.quantile(values, quantile))


def drop_unmet(sketch: Sketch, tolerance: float) -> tuple[Sketch, int]:
    """``(sketch without the constraints whose relative residual exceeds tolerance, that name the
    geometry otherwise than it lies (:func:`agrees`) or that, with the constraints kept before them,
    would collapse a primitive (:class:`PointIdentities`), number dropped)``; constraints with no
    defined residual are kept."""
    rel = relative_residuals(sketch)
    points, kept = PointIdentities(sketch), []
    for c, r in zip(sketch.constraints, rel):
        if (r is None or r <= tolerance) and agrees(sketch, c) and not points.collapses(c):
            points.add(c)
            kept.append(c)
    return Sketch(list(sketch.primitives), kept, sketch.name), len(sketch.constraints) - len(kept)


class ResidualMask:
    """Pointer mask for constraint decoding (§3.2) that keeps only constraints the primitives meet.

    ``seqs`` are the primitive value sequences being constrained (one per batch row). A constraint
    passes when its residual is defined (:func:`~quintet.sketch.geometry.residual` has none for
    pairings without a meaning, such as a line parallel to a point, or on a degenerate primitive),
    at most ``tolerance`` times the sketch's long side, it names the geometry the way it lies
    (:func:`agrees`: orientation, nearest ends), no two of its references name the same
    primitive, and with the constraints already written it collapses no primitive
    (:class:`PointIdentities`). At each decoding step:

    * a constraint type may start only if some choice of its references passes;
    * a pointer that completes the constraint being written is allowed only if the completed
      constraint passes, an earlier pointer only if some completion of it passes;
    * ending the constraint (a new type or Stop) is allowed only if it passes as it stands.

    Completions are searched up to the type's fewest references (a midpoint's third reference is
    only checked when it is written). A row for which nothing passes keeps the grammar's mask, so
    decoding always continues; a constraint written there that misses the geometry is left for
    :func:`drop_unmet`.
    """

    def __init__(self, seqs: list[list[int]], grammar: ConstraintGrammar, tolerance: float, bits: int = 6):
        from quintet.sketch.tokens import decode_sketch, reference_map

        if not tolerance >= 0:
            raise QuintetError(f"tolerance must be a non-negative share of the sketch size, got {tolerance}")
        self.grammar, self.tolerance = grammar, tolerance
        self.types = [ConstraintType(t) for t in grammar.type_names]
        self.sketches = [decode_sketch((s, None), bits) for s in seqs]
        self.refs: list[dict[int, Ref]] = [reference_map(s, bits) for s in seqs]
        self.size = [sk.long_side() for sk in self.sketches]
        self.partial: list[list[int]] = [[] for _ in seqs]  # pointers of the constraint being written
        self.kind: list[int] = [-1 for _ in seqs]  # its type
        self.points = [PointIdentities(sk) for sk in self.sketches]  # what the written constraints tie together
        self._completable: list[dict[tuple[int, tuple[int, ...]], bool]] = [{} for _ in seqs]

    def _constraint(self, row: int, k: int, positions: list[int]) -> Constraint | None:
        """Constraint type ``k`` on ``positions`` of row ``row``; None where a position names
        nothing or the type does not take a reference."""
        refs = [self.refs[row].get(p) for p in positions]
        if None in refs:
            return None
        try:
            return Constraint(self.types[k], tuple(refs))
        except QuintetError:
            return None

    def meets(self, row: int, k: int, positions: list[int]) -> bool:
        """Whether constraint type ``k`` on ``positions`` of row ``row`` passes."""
        c = self._constraint(row, k, positions)
        if c is None or len({r.index for r in c.refs}) < len(c.refs):
            return False
        try:
            r = residual(self.sketches[row], c)
        except QuintetError:  # a degenerate primitive (an arc through collinear points)
            return False
        return (r is not None and r <= self.tolerance * self.size[row] and agrees(self.sketches[row], c)
                and not self.points[row].collapses(c))

    def completable(self, row: int, k: int, positions: tuple[int, ...]) -> bool:
        """Whether some completion of ``positions`` to type ``k``'s fewest references passes."""
        if len(positions) >= self.grammar.arity[k][0]:
            return self.meets(row, k, list(positions))
        cache = self._completable[row]
        if (k, positions) not in cache:
            cache[k, positions] = any(self.completable(row, k, positions + (q,)) for q in self.refs[row])
        return cache[k, positions]

    def restrict(self, allowed: torch.Tensor, cur: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
        """``allowed`` (batch, n_special + L) narrowed as described above; ``cur`` is each row's
        current constraint type (-1 before the first)."""
        g = self.grammar
        out = allowed.clone()
        for b in range(allowed.shape[0]):
            if bool(finished[b]):
                continue
            k, done = int(cur[b]), self.partial[b]
            row = out[b].clone()
            if k >= 0 and len(done) >= g.arity[k][0] and not self.meets(b, k, done):
                row[: g.n_special] = False
            for t in torch.nonzero(row[g.type_offset : g.n_special]).flatten().tolist():
                row[g.type_offset + t] = self.completable(b, t, ())
            if k >= 0 and len(done) < g.arity[k][1]:
                for p in torch.nonzero(row[g.n_special :]).flatten().tolist():
                    row[g.n_special + p] = self.completable(b, k, (*done, p))
            if bool(row.any()):
                out[b] = row
        return out

    def advance(self, tok: torch.Tensor) -> None:
        """Record the chosen tokens: a pointer extends the row's constraint, anything else starts anew."""
        g = self.grammar
        for b, t in enumerate(tok.tolist()):
            if t >= g.n_special:
                self.partial[b].append(t - g.n_special)
                continue
            k, done = self.kind[b], self.partial[b]
            if k >= 0 and len(done) >= g.arity[k][0] and (c := self._constraint(b, k, done)) is not None:
                self.points[b].add(c)
                self._completable[b].clear()  # verdicts cached before may have changed
            self.partial[b] = []
            self.kind[b] = t - g.type_offset if g.type_offset <= t < g.n_special else -1


def passing_share(pvals: list[list[int]], cvals: list[list[int]], grammar: ConstraintGrammar, tolerance: float) -> float:
    """Share of the constraints of token sequences (``pvals`` primitives, ``cvals`` their
    constraints) that :class:`ResidualMask` lets through: how much true design intent it refuses."""
    mask = ResidualMask(pvals, grammar, tolerance)
    verdicts = [mask.meets(i, k, refs) for i, c in enumerate(cvals) for k, refs in grammar.decode(c)]
    return sum(verdicts) / max(len(verdicts), 1)
