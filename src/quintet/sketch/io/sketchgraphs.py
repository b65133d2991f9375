"""Reader of Onshape FeatureScript sketches, the raw format of SketchGraphs (Seff et al. 2020).

A sketch feature holds ``entities`` and ``constraints``. Entities kept:

* ``BTMSketchPoint`` -> :class:`Point`;
* ``BTMSketchCurveSegment`` with line geometry -> :class:`Line` (``pnt + param·dir``), with circle
  geometry -> :class:`Arc` (angle ``atan2(yDir, xDir) ± param``, ``-`` when ``clockwise``; a
  clockwise arc is stored counter-clockwise, i.e. Onshape's start is our end);
* ``BTMSketchCurve`` with circle geometry -> :class:`Circle`.

Everything else (ellipses, splines, conics, text, images) is *unsupported*: counted per type in
:attr:`ParsedSketch.unsupported_entities`, never an error. Constraints are mapped by type name;
those touching external geometry (Onshape's origin and projected edges: parameters named
``external*``) are dropped (:attr:`ParsedSketch.dropped_external`), as are unknown types and
references to entities that were not kept, and so are distances Onshape measures along x or y
only (``direction`` HORIZONTAL / VERTICAL, counted as ``distance/horizontal`` / ``.../vertical``):
our Distance is the Euclidean one. Numeric values come from the quantity expression
(``"2 mm"``, ``"4.0*millimeter"``, ``"45 deg"``) in metres / radians, ``None`` when it is an
expression we do not evaluate. A malformed field (a non-string type name or reference, a
parameter that is not an object) raises :class:`QuintetError` naming the document, sketch,
entity / constraint and field.

:func:`vitruvion_filter` applies the paper's data filter as the authors' pipeline does (6–16
entities, at most 64 constraints as stored, no unsupported entity, no mirror / pattern /
projected constraint, no zero-size primitive).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import ARITY, Constraint, ConstraintType, Ref, Sketch
from quintet.sketch.primitives import Arc, Circle, Line, Point

#: constraint types whose presence makes SketchGraphs' default sequence filter reject a sketch
REJECTED_CONSTRAINT_TYPES = ("mirror", "circular_pattern", "linear_pattern", "projected")

__all__ = ["REJECTED_CONSTRAINT_TYPES", "ParsedSketch", "parse_sketch", "parse_document", "read_sketchgraphs", "vitruvion_filter", "FilterResult"]

_TYPE_MAP = {
    "COINCIDENT": ConstraintType.COINCIDENT,
    "CONCENTRIC": ConstraintType.CONCENTRIC,
    "EQUAL": ConstraintType.EQUAL,
    "FIX": ConstraintType.FIX,
    "HORIZONTAL": ConstraintType.HORIZONTAL,
    "MIDPOINT": ConstraintType.MIDPOINT,
    "NORMAL": ConstraintType.NORMAL,
    "OFFSET": ConstraintType.OFFSET,
    "PARALLEL": ConstraintType.PARALLEL,
    "PERPENDICULAR": ConstraintType.PERPENDICULAR,
    "QUADRANT": ConstraintType.QUADRANT,
    "TANGENT": ConstraintType.TANGENT,
    "VERTICAL": ConstraintType.VERTICAL,
    "DISTANCE": ConstraintType.DISTANCE,
    "LENGTH": ConstraintType.LENGTH,
    "ANGLE": ConstraintType.ANGLE,
    "RADIUS": ConstraintType.RADIUS,
    "DIAMETER": ConstraintType.DIAMETER,
}
# Parameter ids naming the references, in the order they are read.
_REF_PARAMS = ("localFirst", "localSecond", "local0", "local1", "localEntity1", "localEntity2", "localMaster", "localOffset")
_UNITS = {
    "mm": 1e-3, "millimeter": 1e-3, "cm": 1e-2, "centimeter": 1e-2, "m": 1.0, "meter": 1.0,
    "in": 0.0254, "inch": 0.0254, "ft": 0.3048, "foot": 0.3048,
    "deg": math.pi / 180, "degree": math.pi / 180, "rad": 1.0, "radian": 1.0,
}
_EXPR = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*?\s*([a-z]*)\s*$")
ZERO_SIZE = 1e-9  # metres


@dataclass
class ParsedSketch:
    """One parsed sketch feature and what the parser had to leave out."""

    sketch: Sketch
    document: str
    index: int
    unsupported_entities: Counter = field(default_factory=Counter)
    unsupported_constraints: Counter = field(default_factory=Counter)
    dropped_external: int = 0
    dropped_unresolved: int = 0
    zero_size: int = 0
    n_raw_constraints: int = 0
    #: raw constraints of the types SketchGraphs' sequence pipeline rejects a sketch for
    #: (``mirror``, ``circular_pattern``, ``linear_pattern``, ``projected``), counted by type
    rejected_constraints: Counter = field(default_factory=Counter)

    @property
    def name(self) -> str:
        return self.sketch.name


def _num(msg: dict, key: str, where: str) -> float:
    try:
        v = float(msg[key])
    except (KeyError, TypeError, ValueError):
        raise QuintetError(f"{where}: missing or non-numeric field {key!r}") from None
    if not math.isfinite(v):
        raise QuintetError(f"{where}: field {key!r} is not finite ({v!r})")
    return v


def _parse_quantity(expr) -> float | None:
    if not isinstance(expr, str):
        return None
    m = _EXPR.match(expr.strip().lower())
    if not m:
        return None
    unit = m.group(2) or "m"
    if unit not in _UNITS:
        return None
    return float(m.group(1)) * _UNITS[unit]


def _sub_id(m: dict, key: str, eid: str, where: str) -> str:
    """Id of a sub-point (``startPointId`` -> ``start``...); ``<entityId>.<part>`` when absent."""
    v = m.get(key)
    if not v:
        return f"{eid}.{key.removesuffix('PointId').removesuffix('Id')}"
    if not isinstance(v, str):
        raise QuintetError(f"{where}: entity field {key!r} is not a string ({v!r})")
    return v


def _parse_entity(ent: dict, where: str):
    """``(kind or None, primitive or None, {sub id: part})``; kind names an unsupported type."""
    if not isinstance(ent, dict) or not isinstance(ent.get("message"), dict):
        raise QuintetError(f"{where}: entity is not an object with a 'message'")
    tname = ent.get("typeName", str(ent.get("type")))
    if not isinstance(tname, str):
        raise QuintetError(f"{where}: entity 'typeName' is not a string ({tname!r})")
    m = ent["message"]
    cons = bool(m.get("isConstruction", False))
    eid = m.get("entityId")
    if not isinstance(eid, str):
        raise QuintetError(f"{where}: entity has no 'entityId'")
    if tname == "BTMSketchPoint":
        return None, Point(_num(m, "x", where), _num(m, "y", where), cons), {}
    geom = m.get("geometry") if isinstance(m.get("geometry"), dict) else {}
    gname = geom.get("typeName", "")
    if not isinstance(gname, str):
        raise QuintetError(f"{where}: entity 'geometry.typeName' is not a string ({gname!r})")
    g = geom.get("message", {}) if isinstance(geom.get("message"), dict) else {}
    if tname == "BTMSketchCurveSegment" and gname == "BTCurveGeometryLine":
        px, py, dx, dy = (_num(g, k, where) for k in ("pntX", "pntY", "dirX", "dirY"))
        t0, t1 = _num(m, "startParam", where), _num(m, "endParam", where)
        line = Line(px + t0 * dx, py + t0 * dy, px + t1 * dx, py + t1 * dy, cons)
        subs = {_sub_id(m, "startPointId", eid, where): "start", _sub_id(m, "endPointId", eid, where): "end"}
        return None, line, subs
    if gname == "BTCurveGeometryCircle" and tname in ("BTMSketchCurveSegment", "BTMSketchCurve"):
        cx, cy, r = _num(g, "xCenter", where), _num(g, "yCenter", where), _num(g, "radius", where)
        if tname == "BTMSketchCurve":
            return None, Circle(cx, cy, abs(r), cons), {_sub_id(m, "centerId", eid, where): "center"}
        base = math.atan2(_num(g, "yDir", where), _num(g, "xDir", where))
        t0, t1 = _num(m, "startParam", where), _num(m, "endParam", where)
        clockwise = bool(g.get("clockwise", False))
        a0, a1 = (base - t0, base - t1) if clockwise else (base + t0, base + t1)
        start_id = _sub_id(m, "startPointId", eid, where)
        end_id = _sub_id(m, "endPointId", eid, where)
        if clockwise:  # the counter-clockwise arc runs from Onshape's end to its start
            a0, a1 = a1, a0
            start_id, end_id = end_id, start_id
        arc = Arc.from_center(cx, cy, abs(r), a0, a1, cons)
        subs = {start_id: "start", end_id: "end", _sub_id(m, "centerId", eid, where): "center"}
        return None, arc, subs
    label = gname.replace("BTCurveGeometry", "").lower() if gname else tname.replace("BTMSketch", "").lower()
    return label or "unknown", None, {}


def _constraint_params(raw: list, where: str) -> dict[str, dict]:
    """``parameterId -> message`` of one constraint's parameters."""
    params = {}
    for k, p in enumerate(raw):
        pm = p.get("message") if isinstance(p, dict) else None
        if not isinstance(pm, dict):
            raise QuintetError(f"{where}, parameter {k}: 'message' is not an object")
        pid = pm.get("parameterId")
        if pid is None:
            continue
        if not isinstance(pid, str):
            raise QuintetError(f"{where}, parameter {k}: 'parameterId' is not a string ({pid!r})")
        params[pid] = pm
    return params


def _ref_id(params: dict[str, dict], key: str, where: str) -> str:
    """The entity id a reference parameter names (its ``value``)."""
    v = params[key].get("value")
    if not isinstance(v, str):
        raise QuintetError(f"{where}: reference parameter {key!r} has a non-string 'value' ({v!r})")
    return v


def _is_zero_size(p) -> bool:
    if isinstance(p, Line):
        return p.length < ZERO_SIZE
    if isinstance(p, Circle):
        return p.r < ZERO_SIZE
    if isinstance(p, Arc):
        return p.is_degenerate or p.radius < ZERO_SIZE
    return False


_PART_ORDER = ("whole", "start", "end", "center")


def _ref_key(ref: Ref) -> tuple[int, int]:
    """References are sorted within a constraint (by primitive, then part), as Vitruvion sorts them."""
    return ref.index, _PART_ORDER.index(ref.part)


def _midpoint3(prims: list, refs: list[Ref], first_is_middle: bool) -> Constraint:
    """A midpoint between two points: ``Midpoint(point, line)`` when they are the two ends of one
    line, else ``Midpoint(point, a, b)``. ``refs`` holds the middle point first when the source
    says which it is; otherwise (SketchGraphs sequences sort references) it is the one nearest
    the midpoint of the other two."""
    xy = [prims[r.index].point(r.part) for r in refs]
    if not first_is_middle:
        def off(k: int) -> float:
            (ax, ay), (bx, by) = (xy[i] for i in range(3) if i != k)
            return math.hypot(xy[k][0] - (ax + bx) / 2, xy[k][1] - (ay + by) / 2)

        k = min(range(3), key=off)
        refs = [refs[k]] + [r for i, r in enumerate(refs) if i != k]
    point, a, b = refs
    if a.index == b.index and {a.part, b.part} == {"start", "end"} and isinstance(prims[a.index], Line):
        return Constraint(ConstraintType.MIDPOINT, (point, Ref(a.index, "whole")))
    return Constraint(ConstraintType.MIDPOINT, (point, *sorted((a, b), key=_ref_key)))


def parse_sketch(feature: dict, document: str = "", index: int = 0) -> ParsedSketch:
    """Parse one sketch feature; malformed input raises :class:`QuintetError` naming it."""
    where = f"sketch document {document or '<unnamed>'}, sketch {index}"
    if not isinstance(feature, dict) or not isinstance(feature.get("entities"), list) or not isinstance(feature.get("constraints"), list):
        raise QuintetError(f"{where}: expected an object with lists 'entities' and 'constraints'")
    prims, lookup = [], {}
    unsupported, zero = Counter(), 0
    for j, ent in enumerate(feature["entities"]):
        kind, prim, subs = _parse_entity(ent, f"{where}, entity {j}")
        if prim is None:
            unsupported[kind] += 1
            continue
        i = len(prims)
        prims.append(prim)
        zero += _is_zero_size(prim)
        lookup[ent["message"]["entityId"]] = Ref(i, "whole")
        for sid, part in subs.items():
            lookup[sid] = Ref(i, part)
    cons: list[Constraint] = []
    bad_types, external, unresolved, rejected = Counter(), 0, 0, Counter()
    for j, c in enumerate(feature["constraints"]):
        m = c.get("message") if isinstance(c, dict) else None
        if not isinstance(m, dict) or not isinstance(m.get("parameters"), list):
            raise QuintetError(f"{where}, constraint {j}: not an object with 'message.parameters'")
        name = str(m.get("constraintType"))
        if name.lower() in REJECTED_CONSTRAINT_TYPES:
            rejected[name.lower()] += 1
        params = _constraint_params(m["parameters"], f"{where}, constraint {j}")
        if any(k.startswith("external") for k in params):
            external += 1
            continue
        ctype = _TYPE_MAP.get(name)
        if ctype is None:
            bad_types[name.lower()] += 1
            continue
        ids = [_ref_id(params, k, f"{where}, constraint {j}") for k in _REF_PARAMS if k in params]
        if ctype == ConstraintType.MIDPOINT and ("localMidpoint" in params or len(ids) == 3):
            if "localMidpoint" in params:
                ids = [_ref_id(params, "localMidpoint", f"{where}, constraint {j}"), *ids[:2]]
            refs = [lookup.get(v) for v in ids]
            if len(refs) != 3 or any(r is None for r in refs):
                unresolved += 1
            elif any(r.part == "whole" and not isinstance(prims[r.index], Point) for r in refs):
                bad_types["midpoint3/curve"] += 1
            else:
                cons.append(_midpoint3(prims, refs, "localMidpoint" in params))
            continue
        refs = [lookup.get(v) for v in ids]
        if not refs or any(r is None for r in refs):
            unresolved += 1
            continue
        lo, hi = ARITY[ctype]
        if not lo <= len(refs) <= hi:
            bad_types[f"{name.lower()}/{len(refs)}"] += 1
            continue
        direction = params.get("direction", {}).get("value")
        if ctype == ConstraintType.DISTANCE and direction in ("HORIZONTAL", "VERTICAL"):
            # an x- or y-only distance: our Distance is the minimum (Euclidean) one
            bad_types[f"distance/{direction.lower()}"] += 1
            continue
        value = None
        if ctype in (ConstraintType.DISTANCE, ConstraintType.LENGTH, ConstraintType.RADIUS, ConstraintType.DIAMETER):
            value = _parse_quantity(params.get("length", {}).get("expression"))
        elif ctype == ConstraintType.ANGLE:
            value = _parse_quantity(params.get("angle", {}).get("expression"))
        cons.append(Constraint(ctype, tuple(sorted(refs, key=_ref_key)), value))
    name = f"{document.removesuffix('.json')}#{index}" if document else f"sketch#{index}"
    sketch = Sketch(prims, cons, name).validate()
    return ParsedSketch(sketch, document, index, unsupported, bad_types, external, unresolved, zero, len(feature["constraints"]),
                        rejected)


def parse_document(name: str, features: Iterable[dict]) -> list[ParsedSketch]:
    """Parse every sketch feature of one document."""
    return [parse_sketch(f, name, i) for i, f in enumerate(features)]


def read_sketchgraphs(data_dir=None) -> Iterator[ParsedSketch]:
    """Every sketch of the SketchGraphs sample (``sketchgraphs/sample_json.tar.xz``)."""
    from quintet.datasets import sketchgraphs_documents

    for name, features in sketchgraphs_documents(data_dir):
        yield from parse_document(name, features)


@dataclass(frozen=True)
class FilterResult:
    passed: bool
    reason: str = ""


def vitruvion_filter(parsed: ParsedSketch, min_primitives: int = 6, max_primitives: int = 16, max_constraints: int = 64) -> FilterResult:
    """Vitruvion's training-data filter; ``reason`` names the first rule that failed.

    As the authors' pipeline applies it (``img2cad/pipeline/filter_sequences_from_source.py``,
    which calls SketchGraphs' ``make_sequence_dataset.filter_sketch`` with its default
    configuration, then its own rendering checks), in this order:

    1. the number of entities as stored (unsupported ones included) is within
       ``min_primitives..max_primitives`` (6–16);
    2. at most ``max_constraints`` (4 × 16 = 64) constraints as stored (also those that touch
       external geometry or have types the model does not keep);
    3. no entity of a rejected type (conic, ellipse, spline, anything unknown);
    4. no constraint of a rejected type (mirror, circular / linear pattern, projected): such a
       sketch is dropped, not kept without them;
    5. no zero-size entity (zero-length line, zero radius, degenerate arc).
    """
    n = len(parsed.sketch.primitives) + sum(parsed.unsupported_entities.values())
    if n > max_primitives:
        return FilterResult(False, f"more than {max_primitives} primitives")
    if n < min_primitives:
        return FilterResult(False, f"fewer than {min_primitives} primitives")
    if max(parsed.n_raw_constraints, len(parsed.sketch.constraints)) > max_constraints:
        return FilterResult(False, f"more than {max_constraints} constraints")
    if parsed.unsupported_entities:
        return FilterResult(False, "unsupported entity")
    if parsed.rejected_constraints:
        return FilterResult(False, "mirror/pattern/projected constraint")
    if parsed.zero_size:
        return FilterResult(False, "zero-size primitive")
    return FilterResult(True)
