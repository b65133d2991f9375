"""A residual check for inferred constraints (after Vitruvion §3.2's constraint model).

The constraint model reads noisy or sampled primitives and may name a constraint that the drawn
geometry is far from meeting (a horizontal constraint on a steep line, a coincidence of two
distant points). Imposed together, such constraints can contradict each other, and the solver
then fails on the whole sketch. The check drops every inferred constraint whose residual
(:func:`quintet.sketch.geometry.residual`) exceeds a tolerance relative to the sketch's long side.
The tolerance is calibrated on true constraints: the given quantile of their relative residuals on
quantised held-out sketches, so the check keeps that share of constraints a designer did impose.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import Sketch
from quintet.sketch.geometry import residual

__all__ = ["relative_residuals", "calibrate_tolerance", "drop_unmet"]


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
