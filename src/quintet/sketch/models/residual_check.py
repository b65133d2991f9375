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

from typing import Sequence

import numpy as np
import torch

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Constraint, ConstraintType, Ref, Sketch
from quintet.sketch.geometry import residual
from quintet.sketch.models.grammar import ConstraintGrammar

__all__ = ["relative_residuals", "calibrate_tolerance", "drop_unmet", "ResidualMask", "passing_share"]


def relative_residuals(sketch: Sketch) -> list[float | None]:
    """Residual of each constraint divided by the sketch's long side (``None`` where undefined)."""
    side = sketch.long_side()
    if not side > 0:
        return [None] * len(sketch.constraints)
    return [None if (r := residual(sketch, c)) is None else r / side for c in sketch.constraints]


def calibrate_tolerance(sketches: Sequence[Sketch], quantile: float = 0.99) -> float:
    """The ``quantile`` of the relative residuals of all constraints of ``sketches``."""
    if not 0 < quantile <= 1:
        raise QuintetError(f"quantile must be in (0, 1], got {quantile}")
    values = [r for sk in sketches for r in relative_residuals(sk) if r is not None]
    if not values:
        raise QuintetError("no constraint with a defined residual to calibrate the tolerance on")
    return float(np.quantile(values, quantile))


def drop_unmet(sketch: Sketch, tolerance: float) -> tuple[Sketch, int]:
    """``(sketch without the constraints whose relative residual exceeds tolerance, number dropped)``;
    constraints with no defined residual are kept."""
    rel = relative_residuals(sketch)
    kept = [c for c, r in zip(sketch.constraints, rel) if r is None or r <= tolerance]
    return Sketch(list(sketch.primitives), kept, sketch.name), len(sketch.constraints) - len(kept)


class ResidualMask:
    """Pointer mask for constraint decoding (§3.2) that keeps only constraints the primitives meet.

    ``seqs`` are the primitive value sequences being constrained (one per batch row). A constraint
    passes when its residual is defined (:func:`~quintet.sketch.geometry.residual` has none for
    pairings without a meaning, such as a line parallel to a point, or on a degenerate primitive),
    at most ``tolerance`` times the sketch's long side, and no two of its references name the same
    primitive. At each decoding step:

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
        self._completable: dict[tuple[int, int, tuple[int, ...]], bool] = {}

    def meets(self, row: int, k: int, positions: list[int]) -> bool:
        """Whether constraint type ``k`` on ``positions`` of row ``row`` passes."""
        refs = [self.refs[row].get(p) for p in positions]
        if any(r is None for r in refs) or len({r.index for r in refs}) < len(refs):
            return False
        try:
            c = Constraint(self.types[k], tuple(refs))
        except QuintetError:  # a reference the type does not take
            return False
        try:
            r = residual(self.sketches[row], c)
        except QuintetError:  # a degenerate primitive (an arc through collinear points)
            return False
        return r is not None and r <= self.tolerance * self.size[row]

    def completable(self, row: int, k: int, positions: tuple[int, ...]) -> bool:
        """Whether some completion of ``positions`` to type ``k``'s fewest references passes."""
        if len(positions) >= self.grammar.arity[k][0]:
            return self.meets(row, k, list(positions))
        key = (row, k, positions)
        if key not in self._completable:
            self._completable[key] = any(self.completable(row, k, positions + (q,)) for q in self.refs[row])
        return self._completable[key]

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
        for b, t in enumerate(tok.tolist()):
            if t >= self.grammar.n_special:
                self.partial[b].append(t - self.grammar.n_special)
            else:
                self.partial[b] = []


def passing_share(pvals: list[list[int]], cvals: list[list[int]], grammar: ConstraintGrammar, tolerance: float) -> float:
    """Share of the constraints of token sequences (``pvals`` primitives, ``cvals`` their
    constraints) that :class:`ResidualMask` lets through: how much true design intent it refuses."""
    mask = ResidualMask(pvals, grammar, tolerance)
    verdicts = [mask.meets(i, k, refs) for i, c in enumerate(cvals) for k, refs in grammar.decode(c)]
    return sum(verdicts) / max(len(verdicts), 1)
