"""The residual check of inferred constraints: relative residuals, the calibrated tolerance, and
that dropping a constraint the geometry misses lets a contradictory set solve without collapsing."""

from __future__ import annotations

import math

import pytest

from quintet.core.errors import QuintetError
from quintet.sketch import Constraint, Line, Ref, Sketch
from quintet.sketch.models.residual_check import calibrate_tolerance, drop_unmet, relative_residuals
from quintet.sketch.solve import solve


def _contradiction() -> Sketch:
    """A horizontal line and a nearly horizontal one, parallel, and the second also vertical."""
    lines = [Line(0, 0, 2, 0), Line(0, 1, 2, 1.1)]
    cons = [Constraint("horizontal", (Ref(0),)), Constraint("parallel", (Ref(0), Ref(1))),
            Constraint("vertical", (Ref(1),))]
    return Sketch(lines, cons)


def test_relative_residuals_are_residuals_over_the_long_side():
    rel = relative_residuals(_contradiction())
    assert rel[0] == 0.0
    # parallel: |cross of unit directions| times the longer line, over the long side (2)
    cross = 0.1 / math.hypot(2, 0.1)
    assert rel[1] == pytest.approx(cross * math.hypot(2, 0.1) / 2)
    assert rel[2] == pytest.approx(2 / 2)  # vertical: |x1 - x0| = 2


def test_calibrated_tolerance_is_the_quantile_of_true_residuals():
    sk = _contradiction()
    assert calibrate_tolerance([sk], 1.0) == pytest.approx(1.0)
    assert calibrate_tolerance([sk], 0.5) == pytest.approx(relative_residuals(sk)[1])
    with pytest.raises(QuintetError, match="quantile"):
        calibrate_tolerance([sk], 0.0)
    with pytest.raises(QuintetError, match="no constraint"):
        calibrate_tolerance([Sketch([Line(0, 0, 1, 0)], [])])


def test_dropping_the_unmet_constraint_solves_without_collapsing_a_line():
    from quintet.sketch.models.experiment import collapsed_primitives

    sk = _contradiction()
    # all three together are met only by shrinking the lines to points
    whole = solve(sk)
    assert whole.status != "ok" or collapsed_primitives(whole.sketch) >= 1
    kept, dropped = drop_unmet(sk, 0.06)
    assert dropped == 1 and [c.type.value for c in kept.constraints] == ["horizontal", "parallel"]
    result = solve(kept)
    assert result.status == "ok" and collapsed_primitives(result.sketch) == 0
    assert result.sketch.primitives[1].y0 == pytest.approx(result.sketch.primitives[1].y1, abs=1e-9)
    assert drop_unmet(sk, 1.0) == (sk, 0)


def test_constraints_without_a_residual_are_kept():
    # a horizontal constraint on a circle has no residual: the check leaves it to the solver
    from quintet.sketch import Circle

    sk = Sketch([Circle(0, 0, 1), Line(0, 0, 1, 1)], [Constraint("horizontal", (Ref(0),)),
                                                      Constraint("horizontal", (Ref(1),))])
    assert relative_residuals(sk)[0] is None
    kept, dropped = drop_unmet(sk, 0.01)
    assert dropped == 1 and kept.constraints == [sk.constraints[0]]
    # a three-reference midpoint that names a whole line (no single point) has none either
    mid = Sketch([Line(0, 0, 2, 0), Line(1, 1, 1, 2)],
                 [Constraint("midpoint", (Ref(1, "start"), Ref(0), Ref(1, "end")))])
    assert relative_residuals(mid) == [None]
