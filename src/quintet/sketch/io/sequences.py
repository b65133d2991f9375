"""Reader of SketchGraphs construction sequences (Seff et al. 2020, §3 of the SketchGraphs paper).

A sequence is a list of operations: ``NodeOp`` adds a node (``External`` first, then ``Line``,
``Circle``, ``Arc``, ``Point`` with their Onshape parameters, each followed by its sub-nodes
``SN_Start`` / ``SN_End`` / ``SN_Center`` in SketchGraphs' order — line: start, end; arc: centre,
start, end; circle: centre — and ``Stop`` last); ``EdgeOp`` adds a constraint whose
``references`` name nodes by their index among the node operations, 0 being the external
geometry. Numeric constraints carry Onshape quantities (``"0.2 METER"``, ``"45.0 DEGREE"``).

:func:`sequence_to_feature` rewrites a sequence as the Onshape sketch feature it came from
(entities with ids, constraints with ``local*`` / ``external*`` reference parameters), so that
:func:`parse_sequence` goes through :func:`quintet.sketch.io.sketchgraphs.parse_sketch` and
:func:`~quintet.sketch.io.sketchgraphs.vitruvion_filter`: the same geometry read from either
format gives the same :class:`~quintet.sketch.constraints.Sketch`.

:func:`sequence_split` is the fixed train / validation / test split by sketch name (80 / 10 / 10
by the SHA-256 of the name), so it does not depend on the file's order or on the filter.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
from typing import Iterator

from quintet.core.errors import QuintetError
from quintet.sketch.io.sketchgraphs import ParsedSketch, parse_sketch

__all__ = ["SEQUENCES_FILE", "SPLITS", "sequence_to_feature", "parse_sequence", "read_sequences", "sequence_split"]

#: the sequences file under the data root
SEQUENCES_FILE = "sketchgraphs/sequences.jsonl.xz"
#: split name -> upper end of its share of the hash range
SPLITS = {"train": 0.8, "validation": 0.9, "test": 1.0}
_SUB_PARTS = {"SN_Start": "start", "SN_End": "end", "SN_Center": "center"}
_SUB_ID_KEYS = {"start": "startPointId", "end": "endPointId", "center": "centerId"}
_REF_KEYS = ("localFirst", "localSecond", "local0")
_INT = re.compile(r"-?\d+")


def sequence_split(name: str) -> str:
    """``train``, ``validation`` or ``test``: 80 / 10 / 10 by the SHA-256 of the sketch name."""
    u = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2.0 ** 64
    return next(split for split, hi in SPLITS.items() if u < hi)


def _entity(label: str, eid: str, params: dict, where: str) -> dict:
    """The FeatureScript entity of one primary node."""
    if not isinstance(params, dict):
        raise QuintetError(f"{where}: 'parameters' is not an object")
    cons = params.get("isConstruction", False)
    base = {"entityId": eid, "isConstruction": cons}
    if label == "Point":
        return {"typeName": "BTMSketchPoint", "message": {**base, "x": params.get("x"), "y": params.get("y")}}
    if label == "Line":
        geom = {k: params.get(k) for k in ("pntX", "pntY", "dirX", "dirY")}
        return {"typeName": "BTMSketchCurveSegment", "message": {
            **base, "startParam": params.get("startParam"), "endParam": params.get("endParam"),
            "geometry": {"typeName": "BTCurveGeometryLine", "message": geom}}}
    if label in ("Circle", "Arc"):
        geom = {k: params.get(k) for k in ("xCenter", "yCenter", "radius", "xDir", "yDir")}
        geom["clockwise"] = params.get("clockwise", False)
        msg = {**base, "geometry": {"typeName": "BTCurveGeometryCircle", "message": geom}}
        if label == "Circle":
            return {"typeName": "BTMSketchCurve", "message": msg}
        msg.update(startParam=params.get("startParam"), endParam=params.get("endParam"))
        return {"typeName": "BTMSketchCurveSegment", "message": msg}
    # any other entity (spline, ellipse, ...) is kept as an unsupported one, as in FeatureScript
    return {"typeName": "BTMSketchCurve", "message": {**base, "geometry": {"typeName": f"BTCurveGeometry{label}", "message": {}}}}


def _references(op: dict, where: str) -> list[int]:
    refs = op.get("references")
    if isinstance(refs, str):
        refs = [int(v) for v in _INT.findall(refs)]
    if not isinstance(refs, (list, tuple)) or not refs or not all(isinstance(v, int) and not isinstance(v, bool) for v in refs):
        raise QuintetError(f"{where}: 'references' must be a non-empty tuple of node indices, got {op.get('references')!r}")
    return list(refs)


def sequence_to_feature(ops: list, name: str = "") -> dict:
    """The Onshape sketch feature (``{"entities", "constraints"}``) of one construction sequence."""
    where_seq = f"sketch sequence {name or '<unnamed>'}"
    if not isinstance(ops, list):
        raise QuintetError(f"{where_seq}: 'ops' must be a list of operations")
    entities: list[dict] = []
    ids: dict[int, str | None] = {}  # node index -> entity / sub-point id (None: external)
    constraints: list[dict] = []
    node = 0
    parent: tuple[int, dict] | None = None  # (node index, entity message) of the last primary node
    for k, op in enumerate(ops):
        where = f"{where_seq}, op {k}"
        if not isinstance(op, dict) or op.get("kind") not in ("NodeOp", "EdgeOp") or not isinstance(op.get("label"), str):
            raise QuintetError(f"{where}: expected an object with 'kind' NodeOp/EdgeOp and a string 'label'")
        label = op["label"]
        if op["kind"] == "EdgeOp":
            refs = _references(op, where)
            if any(not 0 <= r < node for r in refs):
                raise QuintetError(f"{where}: {label} references node {max(refs)}, but only {node} nodes precede it")
            params = op.get("parameters") or {}
            if not isinstance(params, dict):
                raise QuintetError(f"{where}: 'parameters' is not an object")
            plist = [{"message": {"parameterId": ("external" if ids[r] is None else "local") + key.removeprefix("local"),
                                  "value": ids[r] or "external"}} for key, r in zip(_REF_KEYS, refs)]
            for key, value in params.items():
                field = "expression" if isinstance(value, str) and key in ("length", "angle") else "value"
                plist.append({"message": {"parameterId": key, field: value}})
            constraints.append({"message": {"constraintType": label.upper(), "parameters": plist}})
            continue
        if label in _SUB_PARTS:
            part = _SUB_PARTS[label]
            if parent is None:
                raise QuintetError(f"{where}: sub-node {label} has no primitive before it")
            ids[node] = parent[1].setdefault(_SUB_ID_KEYS[part], f"{parent[1]['entityId']}.{part}")
        elif label == "External":
            ids[node] = None
        elif label == "Stop":
            ids[node] = None
            parent = None
        else:
            entity = _entity(label, f"n{node}", op.get("parameters", {}), where)
            entities.append(entity)
            ids[node] = entity["message"]["entityId"]
            parent = (node, entity["message"])
        node += 1
    return {"entities": entities, "constraints": constraints}


def parse_sequence(record: dict) -> ParsedSketch:
    """Parse one ``{"name", "ops"}`` record into a :class:`ParsedSketch` named after it."""
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        raise QuintetError(f"a sketch sequence is an object with a string 'name' and a list 'ops', got {str(record)[:60]!r}")
    parsed = parse_sketch(sequence_to_feature(record.get("ops"), record["name"]), record["name"], 0)
    parsed.sketch.name = record["name"]
    return parsed


def read_sequences(data_dir: str | os.PathLike | None = None, split: str | None = None) -> Iterator[ParsedSketch]:
    """Every sketch of ``sketchgraphs/sequences.jsonl.xz`` (one JSON record a line), optionally of
    one :func:`sequence_split` only."""
    from quintet.datasets.registry import json_records, require_file

    if split is not None and split not in SPLITS:
        raise QuintetError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    path = require_file(SEQUENCES_FILE, data_dir)
    try:
        with lzma.open(path, "rt", encoding="utf-8") as handle:
            for record in json_records(handle, path):
                if split is not None and sequence_split(str(record.get("name", ""))) != split:
                    continue
                yield parse_sequence(record)
    except (lzma.LZMAError, EOFError) as exc:
        raise QuintetError(f"{path}: cannot read the archive ({exc})") from None
