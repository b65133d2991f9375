"""The SketchGraphs reader on the real sample: counts, filter, residuals, bad documents."""

import copy

import numpy as np
import pytest

from quintet.core.errors import QuintetError
from quintet.datasets import sketchgraphs_documents
from quintet.sketch.constraints import GEOMETRIC_TYPES
from quintet.sketch.geometry import residuals
from quintet.sketch.io.sketchgraphs import (
    parse_document,
    parse_sketch,
    read_sketchgraphs,
    vitruvion_filter,
)


@pytest.fixture(scope="module")
def parsed(data_dir):
    return list(read_sketchgraphs(data_dir))


def test_counts(parsed):
    assert len(parsed) == 237
    assert len({p.document for p in parsed}) == 84
    assert sum(len(p.sketch.primitives) for p in parsed) == 2410
    unsupported = sum((p.unsupported_entities for p in parsed), start=__import__("collections").Counter())
    assert unsupported["spline"] == 56 and unsupported["interpolatedspline"] == 10
    assert sum(p.dropped_external for p in parsed) == 496


def test_vitruvion_filter(parsed):
    from collections import Counter

    passed = [p for p in parsed if vitruvion_filter(p).passed]
    # the authors' pipeline (SketchGraphs' default filter + Vitruvion's checks) on this sample
    assert len(passed) == 53
    assert all(6 <= len(p.sketch.primitives) <= 16 and len(p.sketch.constraints) <= 64 for p in passed)
    assert all(not p.rejected_constraints and not p.unsupported_entities for p in passed)
    reasons = Counter(vitruvion_filter(p).reason for p in parsed)
    assert reasons["mirror/pattern/projected constraint"] == 13 and reasons["more than 16 primitives"] == 28


def test_real_sketches_satisfy_their_constraints(parsed):
    rel = []
    for p in parsed:
        s = p.sketch
        if not s.primitives:
            continue
        x0, y0, x1, y1 = s.bbox()
        size = max(x1 - x0, y1 - y0)
        rel += [r / size for c, r in zip(s.constraints, residuals(s)) if r is not None and c.type in GEOMETRIC_TYPES]
    rel = np.array(rel)
    assert len(rel) > 3500
    assert np.mean(rel < 1e-6) > 0.985  # one document (00273703) is stale in the sample


def test_unknown_entity_type_is_reported(data_dir):
    name, feats = next(iter(sketchgraphs_documents(data_dir)))
    feat = copy.deepcopy(feats[0])
    feat["entities"].append({"type": 999, "typeName": "BTMSketchWhatever", "message": {"entityId": "zz"}})
    p = parse_sketch(feat, name, 0)
    assert p.unsupported_entities["whatever"] == 1
    assert not vitruvion_filter(p).passed


def test_malformed_document_names_it():
    with pytest.raises(QuintetError, match="doc_x.json, sketch 0, entity 0"):
        parse_document("doc_x.json", [{"entities": [{"typeName": "BTMSketchPoint", "message": {"entityId": "a", "x": "oops", "y": 0}}], "constraints": []}])
    with pytest.raises(QuintetError, match="doc_y.json"):
        parse_document("doc_y.json", [{"entities": 3, "constraints": []}])


def test_missing_reference_is_dropped():
    feat = {
        "entities": [{"typeName": "BTMSketchPoint", "message": {"entityId": "p", "x": 0.0, "y": 0.0}}],
        "constraints": [{"message": {"constraintType": "COINCIDENT", "parameters": [
            {"message": {"parameterId": "localFirst", "value": "p"}},
            {"message": {"parameterId": "localSecond", "value": "ghost.start"}}]}}],
    }
    p = parse_sketch(feat, "d.json")
    assert p.dropped_unresolved == 1 and p.sketch.constraints == []


def _square(extra_constraint: dict | None = None, n_points: int = 6) -> dict:
    ents = [{"typeName": "BTMSketchPoint", "message": {"entityId": f"p{i}", "x": float(i), "y": 0.0}} for i in range(n_points)]
    cons = [{"message": {"constraintType": "COINCIDENT", "parameters": [
        {"message": {"parameterId": "localFirst", "value": "p0"}},
        {"message": {"parameterId": "localSecond", "value": "p1"}}]}}]
    return {"entities": ents, "constraints": cons + ([extra_constraint] if extra_constraint else [])}


def test_filter_rejects_mirror_and_counts_entities_as_stored():
    assert vitruvion_filter(parse_sketch(_square(), "d.json")).passed
    mirror = {"message": {"constraintType": "MIRROR", "parameters": [
        {"message": {"parameterId": "localFirst", "value": "p0"}},
        {"message": {"parameterId": "localSecond", "value": "p1"}}]}}
    p = parse_sketch(_square(mirror), "d.json")
    assert p.rejected_constraints["mirror"] == 1
    assert vitruvion_filter(p).reason == "mirror/pattern/projected constraint"
    # 16 points + 1 spline = 17 entities as stored: too many, whatever the parser kept
    feat = _square(n_points=16)
    feat["entities"].append({"typeName": "BTMSketchCurve", "message": {"entityId": "s", "geometry": {"typeName": "BTCurveGeometrySpline", "message": {}}}})
    assert vitruvion_filter(parse_sketch(feat, "d.json")).reason == "more than 16 primitives"


def _one_point_feature(**constraint_message) -> dict:
    cons = [{"message": {"constraintType": "FIX", "parameters": [{"message": {"parameterId": "localFirst", "value": "p"}}], **constraint_message}}]
    return {"entities": [{"typeName": "BTMSketchPoint", "message": {"entityId": "p", "x": 0.0, "y": 0.0}}], "constraints": cons}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f["entities"][0].update(typeName=7), r"doc_m.json, sketch 0, entity 0: entity 'typeName' is not a string"),
        (lambda f: f["entities"][0]["message"].update(geometry={"typeName": ["x"]}), r"entity 0: entity 'geometry.typeName'"),
        (lambda f: f["entities"][0]["message"].update(startPointId=[1]), r"entity 0: entity field 'startPointId'"),
        (lambda f: f["constraints"][0]["message"]["parameters"][0].update(message=["x"]), r"constraint 0, parameter 0: 'message' is not an object"),
        (lambda f: f["constraints"][0]["message"]["parameters"][0]["message"].update(value=["p"]), r"constraint 0: reference parameter 'localFirst' has a non-string 'value'"),
        (lambda f: f["constraints"][0]["message"]["parameters"][0]["message"].update(parameterId=[1]), r"constraint 0, parameter 0: 'parameterId' is not a string"),
    ],
)
def test_malformed_fields_are_quintet_errors_naming_them(mutate, message):
    feat = _one_point_feature()
    if "startPointId" in message or "geometry" in message:  # these need a curve entity
        feat["entities"][0] = {"typeName": "BTMSketchCurveSegment", "message": {"entityId": "p", "geometry": {"typeName": "BTCurveGeometryLine", "message": {
            "pntX": 0.0, "pntY": 0.0, "dirX": 1.0, "dirY": 0.0}}, "startParam": 0.0, "endParam": 1.0}}
    mutate(feat)
    with pytest.raises(QuintetError, match=message):
        parse_sketch(feat, "doc_m.json", 0)


def test_directional_distance_is_not_read_as_euclidean():
    """Onshape's HORIZONTAL/VERTICAL distances are x/y-only: left out, counted by direction."""
    ents = [{"typeName": "BTMSketchPoint", "message": {"entityId": n, "x": x, "y": y}} for n, x, y in (("a", 0.0, 0.0), ("b", 0.09, 0.07))]

    def dist(direction):
        return {"message": {"constraintType": "DISTANCE", "parameters": [
            {"message": {"parameterId": "localFirst", "value": "a"}}, {"message": {"parameterId": "localSecond", "value": "b"}},
            {"message": {"parameterId": "direction", "value": direction}}, {"message": {"parameterId": "length", "expression": "90 mm"}}]}}

    p = parse_sketch({"entities": ents, "constraints": [dist("HORIZONTAL"), dist("VERTICAL"), dist("MINIMUM")]}, "d.json")
    assert p.unsupported_constraints == {"distance/horizontal": 1, "distance/vertical": 1}
    assert [(c.type.value, c.value) for c in p.sketch.constraints] == [("distance", pytest.approx(0.09))]
