"""Tokens (Vitruvion §3.1–3.2): layout, exact round trips, pointer references, bad input."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quintet.core.errors import QuintetError
from quintet.sketch import Arc, Circle, Constraint, Line, Point, Sketch
from quintet.sketch.constraints import ARITY, GEOMETRIC_TYPES
from quintet.sketch.tokens import (
    N_CONSTRAINT_SPECIAL,
    decode_constraints,
    decode_primitives,
    decode_sketch,
    dequantize_value,
    encode_sketch,
    normalize_sketch,
    quantize_sketch,
    quantize_value,
    reference_targets,
    vocab_size,
)


def _demo():
    return Sketch(
        [Line(0, 0, 2, 0), Line(2, 0, 2, 1), Arc.from_center(1, 1, 1, 0, math.pi), Circle(1, 0.5, 0.2, True), Point(0.5, 0.5)],
        [
            Constraint("coincident", [(0, "end"), (1, "start")]),
            Constraint("horizontal", [(0, "whole")]),
            Constraint("concentric", [(2, "center"), (3, "center")]),
            Constraint("length", [(0, "whole")], 2.0),
            Constraint("coincident", [(1, "end"), (2, "start")]),
        ],
    )


def test_layout_values():
    t = encode_sketch(_demo())
    assert vocab_size() == 73
    # Start, line(type 5) with bins (0,0,63,0), flag False (71)
    assert t.primitives.val[:7].tolist() == [1, 5, 7, 7, 70, 7, 71]
    assert t.primitives.val[-1] == 2 and t.primitives.pos[-1] == 5 + 2
    assert t.primitives.coord[:7].tolist() == [1, 1, 11, 12, 13, 14, 1]
    # the circle is construction -> flag True (72)
    assert 72 in t.primitives.val.tolist()
    # constraints: coincident(line0.end -> pos 1+3=4, line1.start -> 7+1=8), horizontal(line0 -> 1)
    assert t.constraints.val.tolist()[:7] == [1, 3, N_CONSTRAINT_SPECIAL + 4, N_CONSTRAINT_SPECIAL + 8, 7, N_CONSTRAINT_SPECIAL + 1, 4]
    assert t.n_dropped == 1  # the length dimension is not tokenised


def test_normalisation_and_quantisation():
    s, (cx, cy, scale) = normalize_sketch(_demo())
    x0, y0, x1, y1 = s.bbox()
    assert max(x1 - x0, y1 - y0) == pytest.approx(1.0)
    assert (x0 + x1) / 2 == pytest.approx(0.0) and (y0 + y1) / 2 == pytest.approx(0.0)
    assert scale == pytest.approx(0.5)
    assert quantize_value([-0.5, 0.5, 0.0]).tolist() == [0, 63, 32]
    assert dequantize_value(63) == pytest.approx(0.5)


def test_pointer_targets_and_arc_centre():
    t = encode_sketch(_demo())
    targets = reference_targets(t.primitives.val)
    arc_pos = 1 + 6 + 6  # two lines of 6 tokens each
    assert targets[arc_pos] == (2, "whole")
    assert targets[arc_pos + 3] == (2, "center")
    d = decode_sketch(t)
    assert d.constraints[2].refs[0].part == "center"


def test_round_trip_demo_exact():
    q = quantize_sketch(normalize_sketch(_demo())[0])
    t = encode_sketch(q, normalize=False)
    d = decode_sketch(t)
    assert d.primitives == q.primitives
    assert d.constraints == [c for c in q.constraints if c.type in GEOMETRIC_TYPES]


grid = st.integers(0, 63)


@st.composite
def quantised_sketches(draw):
    prims = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["arc", "circle", "line", "point"]))
        flag = draw(st.booleans())

        def v():
            return float(dequantize_value(draw(grid)))

        if kind == "point":
            prims.append(Point(v(), v(), flag))
        elif kind == "line":
            prims.append(Line(v(), v(), v(), v(), flag))
        elif kind == "circle":
            prims.append(Circle(v(), v(), float(dequantize_value(draw(st.integers(32, 63)))), flag))
        else:
            prims.append(Arc.through((v(), v()), (v(), v()), (v(), v()), flag)[0])
    parts = {"arc": ["whole", "start", "center", "end"], "circle": ["whole", "center"], "line": ["whole", "start", "end"], "point": ["whole"]}

    def ref():
        i = draw(st.integers(0, len(prims) - 1))
        return (i, draw(st.sampled_from(parts[prims[i].type])))

    cons = []
    for _ in range(draw(st.integers(0, 8))):
        t = draw(st.sampled_from(sorted(GEOMETRIC_TYPES, key=lambda g: g.value)))
        lo, hi = ARITY[t]  # fix: one reference; horizontal / vertical: one or two
        cons.append(Constraint(t, [ref() for _ in range(draw(st.integers(lo, hi)))]))
    return Sketch(prims, cons)


def test_round_trip_one_reference_constraints():
    q = quantize_sketch(normalize_sketch(_demo())[0])
    one = [Constraint("fix", [(3, "center")]), Constraint("horizontal", [(0, "whole")]), Constraint("vertical", [(1, "whole")]), Constraint("fix", [(4, "whole")])]
    s = Sketch(q.primitives, one)
    d = decode_sketch(encode_sketch(s, normalize=False))
    assert d.constraints == one


@settings(max_examples=150, deadline=None)
@given(quantised_sketches())
def test_round_trip_property(s):
    assert all(1 <= len(c.refs) <= 3 for c in s.constraints)  # midpoint: up to 3
    t = encode_sketch(s, normalize=False)
    d = decode_sketch(t)
    assert d.primitives == s.primitives
    assert d.constraints == s.constraints
    assert len(t.primitives.val) == len(t.primitives.coord) == len(t.primitives.pos)


def test_bad_tokens():
    with pytest.raises(QuintetError, match="Start"):
        decode_primitives([5, 7, 7])
    with pytest.raises(QuintetError, match="Stop"):
        decode_primitives([1, 6, 7, 7, 71])
    with pytest.raises(QuintetError, match="construction flag"):
        decode_primitives([1, 6, 7, 7, 7, 2])
    pval = encode_sketch(_demo()).primitives.val
    with pytest.raises(QuintetError, match="not a primitive"):
        decode_constraints([1, 3, N_CONSTRAINT_SPECIAL + 3, N_CONSTRAINT_SPECIAL + 4, 2], pval)  # points at a y token
    assert decode_constraints([1, 3, N_CONSTRAINT_SPECIAL + 3, 2], pval, strict=False) == []


def test_empty_and_unnormalised_sketch_errors():
    with pytest.raises(QuintetError, match="empty"):
        encode_sketch(Sketch())
    with pytest.raises(QuintetError, match="normalise"):
        encode_sketch(Sketch([Line(0, 0, 5, 0)]), normalize=False)
    with pytest.raises(QuintetError, match="zero size"):
        encode_sketch(Sketch([Point(1, 1)]))


def test_matches_model_grammar():
    grammar = pytest.importorskip("quintet.sketch.models.grammar")
    t = encode_sketch(_demo())
    g = grammar.PrimitiveGrammar()
    assert g.vocab_size == vocab_size()
    coord, pos = g.streams(t.primitives.val.tolist())
    assert coord == t.primitives.coord.tolist() and pos == t.primitives.pos.tolist()
    cg = grammar.ConstraintGrammar()
    assert cg.n_special == N_CONSTRAINT_SPECIAL
    coord, pos = cg.streams(t.constraints.val.tolist())
    assert coord == t.constraints.coord.tolist() and pos == t.constraints.pos.tolist()
