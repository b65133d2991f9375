"""The sketch model: primitives, constraints, JSON format, residuals, bad input."""

import json
import math

import pytest

from quintet.core.errors import QuintetError
from quintet.sketch import (
    Arc,
    Circle,
    Constraint,
    Line,
    Point,
    Sketch,
    load_sketch,
    residual,
    save_sketch,
)


def test_nan_coordinates_rejected():
    with pytest.raises(QuintetError, match="non-finite"):
        Line(0, 0, float("nan"), 1)
    with pytest.raises(QuintetError, match="non-finite"):
        Point(float("inf"), 0)


def test_arc_geometry_and_orientation():
    a = Arc.from_center(1.0, 2.0, 3.0, 0.0, math.pi / 2)
    assert a.center == pytest.approx((1.0, 2.0))
    assert a.radius == pytest.approx(3.0)
    assert a.angles == pytest.approx((0.0, math.pi / 2))
    assert a.mid == pytest.approx((1 + 3 / math.sqrt(2), 2 + 3 / math.sqrt(2)))
    with pytest.raises(QuintetError, match="clockwise"):
        Arc(a.ex, a.ey, a.mx, a.my, a.sx, a.sy)
    b, swapped = Arc.through(a.end, a.mid, a.start)
    assert swapped and b == a
    assert Arc(0, 0, 1, 0, 2, 0).is_degenerate


def test_arc_through_points_collinear_up_to_rounding():
    # on the quantisation grid these three points lie on one line; in floating point the triangle
    # comes out slightly clockwise in both orders, and the arc is degenerate rather than an error
    start, mid, end = (0.11904761904761907, -0.35714285714285715), (0.32539682539682535, -0.48412698412698413), (
        -0.5, 0.023809523809523836)
    arc, _swapped = Arc.through(start, mid, end)
    assert arc.is_degenerate
    with pytest.raises(QuintetError, match="clockwise"):
        Arc(-1.0, 0.0, 0.0, 1.0, 1.0, 0.0)


def test_constraint_arity_and_unknown_type():
    with pytest.raises(QuintetError, match="takes 2..2"):
        Constraint("parallel", [(0, "whole")])
    with pytest.raises(QuintetError, match="unknown constraint type"):
        Constraint("glue", [(0, "whole"), (1, "whole")])


def test_missing_primitive_reference():
    s = Sketch([Line(0, 0, 1, 0)], [Constraint("coincident", [(0, "end"), (3, "start")])])
    with pytest.raises(QuintetError, match="references primitive 3"):
        s.validate()
    with pytest.raises(QuintetError, match="part 'center' of a line"):
        Sketch([Line(0, 0, 1, 0)], [Constraint("fix", [(0, "center")])]).validate()


def test_json_round_trip(tmp_path):
    s = Sketch([Line(0, 0, 1, 0), Circle(0, 0, 1, True), Arc.from_center(0, 0, 2, 0, 1)], [Constraint("length", [(0, "whole")], 1.0), Constraint("concentric", [(1, "center"), (2, "center")])], "demo")
    path = save_sketch(s, tmp_path / "s.json")
    assert load_sketch(path) == s
    (tmp_path / "bad.json").write_text(json.dumps({"primitives": [{"type": "spline", "params": [0]}]}))
    with pytest.raises(QuintetError, match="unknown primitive type 'spline'"):
        load_sketch(tmp_path / "bad.json")
    (tmp_path / "nan.json").write_text('{"primitives": [{"type": "point", "params": [NaN, 0]}]}')
    with pytest.raises(QuintetError, match="non-finite"):
        load_sketch(tmp_path / "nan.json")


def test_residuals_values():
    s = Sketch(
        [Line(0, 0, 2, 0), Line(2, 0, 2, 3), Circle(5, 0, 1), Line(0, 1, 10, 1)],
        [
            Constraint("perpendicular", [(0, "whole"), (1, "whole")]),
            Constraint("coincident", [(0, "end"), (1, "start")]),
            Constraint("tangent", [(3, "whole"), (2, "whole")]),
            Constraint("length", [(1, "whole")], 2.5),
            Constraint("horizontal", [(1, "whole")]),
        ],
    )
    r = [residual(s, c) for c in s.constraints]
    assert r[:3] == [0.0, 0.0, 0.0]
    assert r[3] == pytest.approx(0.5)
    assert r[4] == pytest.approx(3.0)


@pytest.mark.parametrize("data, message", [
    ({"name": "s9", "primitives": {"type": "line"}}, "s9: 'primitives' must be a list, got dict"),
    ({"name": "s9", "primitives": [], "constraints": 3}, "s9: 'constraints' must be a list, got int"),
    ({"name": "s9", "primitives": [], "constraints": "fix"}, "s9: 'constraints' must be a list, got str"),
])
def test_from_dict_rejects_non_list_fields(data, message):
    with pytest.raises(QuintetError, match=message):
        Sketch.from_dict(data)
