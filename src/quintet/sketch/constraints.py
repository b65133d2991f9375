"""Constraints and the :class:`Sketch` container (Vitruvion §3.2; SketchGraphs, Seff et al. 2020).

A constraint has a :class:`ConstraintType`, one or two references :class:`Ref` and, for the
numeric types, a value. A reference names a primitive by its index in ``Sketch.primitives`` and a
part of it: ``whole`` (the primitive) or one of its sub-points (``start``/``end`` of a line or arc,
``center`` of a circle or arc; see :data:`quintet.sketch.primitives.PARTS`).

The 13 types Vitruvion models (:data:`GEOMETRIC_TYPES`, in token order) are

coincident, concentric, equal, fix, horizontal, midpoint, normal, offset, parallel,
perpendicular, quadrant, tangent, vertical.

Arity: ``fix`` takes 1 reference, ``horizontal``/``vertical`` 1 (a line) or 2 (two points),
``midpoint`` 2 (a point and the line or arc it halves) or 3 (a point midway between the other two
points: SketchGraphs' three-reference midpoint), the others 2. The numeric types (:data:`NUMERIC_TYPES`: distance, length, angle, radius, diameter)
carry ``value`` (lengths in sketch units, angles in radians); they are kept for reading and
solving but not tokenised.

Sketch file format (``Sketch.to_dict`` / ``save_sketch``), JSON::

    {"format": "quintet-sketch/1", "name": "...",
     "primitives": [{"type": "line", "params": [x0, y0, x1, y1], "construction": false}, ...],
     "constraints": [{"type": "coincident", "refs": [[0, "end"], [1, "start"]]},
                     {"type": "length", "refs": [[0, "whole"]], "value": 2.5}, ...]}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterable, Sequence

from quintet.core.errors import QuintetError
from quintet.sketch.primitives import (
    PARTS,
    PRIMITIVE_TYPES,
    Primitive,
    primitive_bbox,
    primitive_from_params,
)

__all__ = [
    "ConstraintType",
    "GEOMETRIC_TYPES",
    "NUMERIC_TYPES",
    "ARITY",
    "Ref",
    "Constraint",
    "Sketch",
    "load_sketch",
    "save_sketch",
    "remap_swapped_ends",
]


class ConstraintType(str, Enum):
    """Constraint types (§3.2); the value is the lower-case name used in files and token tables."""

    COINCIDENT = "coincident"
    CONCENTRIC = "concentric"
    EQUAL = "equal"
    FIX = "fix"
    HORIZONTAL = "horizontal"
    MIDPOINT = "midpoint"
    NORMAL = "normal"
    OFFSET = "offset"
    PARALLEL = "parallel"
    PERPENDICULAR = "perpendicular"
    QUADRANT = "quadrant"
    TANGENT = "tangent"
    VERTICAL = "vertical"
    DISTANCE = "distance"
    LENGTH = "length"
    ANGLE = "angle"
    RADIUS = "radius"
    DIAMETER = "diameter"


#: The 13 constraint types of Vitruvion's constraint model, in token order (token ``3 + k``).
GEOMETRIC_TYPES: tuple[ConstraintType, ...] = tuple(list(ConstraintType)[:13])
#: Numeric (dimensional) constraints: read and solved, not tokenised.
NUMERIC_TYPES: tuple[ConstraintType, ...] = tuple(list(ConstraintType)[13:])
#: (min, max) number of references per type.
ARITY: dict[ConstraintType, tuple[int, int]] = {
    t: (1, 1) if t in (ConstraintType.FIX, ConstraintType.LENGTH, ConstraintType.RADIUS, ConstraintType.DIAMETER)
    else (1, 2) if t in (ConstraintType.HORIZONTAL, ConstraintType.VERTICAL)
    else (2, 3) if t == ConstraintType.MIDPOINT
    else (2, 2)
    for t in ConstraintType
}


@dataclass(frozen=True)
class Ref:
    """Reference to primitive ``index`` (int, into ``Sketch.primitives``) and its ``part``: whole,
    start, end or center; a constraint token points at it (§3.2)."""

    index: int
    part: str = "whole"

    def to_json(self) -> list:
        return [self.index, self.part]

    def ends_swapped(self) -> "Ref":
        """This reference with ``start`` and ``end`` exchanged (for an arc re-oriented counter-clockwise)."""
        return Ref(self.index, _SWAP_ENDS.get(self.part, self.part))


@dataclass(frozen=True)
class Constraint:
    """One constraint (§3.2): ``type`` applied to ``refs`` (a tuple of :class:`Ref`); ``value`` (float)
    for numeric types (distance, length, angle in radians, radius, diameter)."""

    type: ConstraintType
    refs: tuple[Ref, ...]
    value: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, ConstraintType):
            object.__setattr__(self, "type", parse_constraint_type(self.type))
        object.__setattr__(self, "refs", tuple(r if isinstance(r, Ref) else Ref(int(r[0]), str(r[1])) for r in self.refs))
        lo, hi = ARITY[self.type]
        if not lo <= len(self.refs) <= hi:
            raise QuintetError(f"constraint {self.type.value} takes {lo}..{hi} references, got {len(self.refs)}")
        if self.value is not None and not math.isfinite(self.value):
            raise QuintetError(f"constraint {self.type.value} has a non-finite value {self.value!r}")

    def to_json(self) -> dict:
        out: dict = {"type": self.type.value, "refs": [r.to_json() for r in self.refs]}
        if self.value is not None:
            out["value"] = self.value
        return out


def parse_constraint_type(name) -> ConstraintType:
    try:
        return ConstraintType(str(name).lower())
    except ValueError:
        valid = ", ".join(t.value for t in ConstraintType)
        raise QuintetError(f"unknown constraint type {name!r}; valid: {valid}") from None


@dataclass
class Sketch:
    """A parametric sketch (§3): primitives plus constraints referencing them by index."""

    primitives: list[Primitive] = field(default_factory=list)
    constraints: list[Constraint] = field(default_factory=list)
    name: str = ""

    def validate(self) -> "Sketch":
        """Check every reference (index in range, part valid for the primitive); returns self."""
        n = len(self.primitives)
        for k, c in enumerate(self.constraints):
            for r in c.refs:
                if not 0 <= r.index < n:
                    raise QuintetError(
                        f"sketch {self.name or '<unnamed>'}: constraint {k} ({c.type.value}) references "
                        f"primitive {r.index}, but the sketch has {n} primitives"
                    )
                kind = self.primitives[r.index].type
                if r.part not in PARTS[kind]:
                    raise QuintetError(
                        f"sketch {self.name or '<unnamed>'}: constraint {k} ({c.type.value}) references part "
                        f"{r.part!r} of a {kind}; valid: {', '.join(PARTS[kind])}"
                    )
        return self

    # ---- geometry helpers ---------------------------------------------------------------
    def bbox(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the drawn geometry (arcs by their true extent)."""
        if not self.primitives:
            raise QuintetError(f"sketch {self.name or '<unnamed>'} is empty: it has no bounding box")
        boxes = [primitive_bbox(p) for p in self.primitives]
        return (
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[2] for b in boxes),
            max(b[3] for b in boxes),
        )

    def long_side(self) -> float:
        """The long side of :meth:`bbox`: the sketch's size, against which tolerances are relative."""
        x0, y0, x1, y1 = self.bbox()
        return max(x1 - x0, y1 - y0)

    def counts(self) -> dict[str, int]:
        out = {t: 0 for t in PRIMITIVE_TYPES}
        for p in self.primitives:
            out[p.type] += 1
        return out

    # ---- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": "quintet-sketch/1",
            "name": self.name,
            "primitives": [
                {"type": p.type, "params": list(p.params()), "construction": bool(p.construction)} for p in self.primitives
            ],
            "constraints": [c.to_json() for c in self.constraints],
        }

    @classmethod
    def from_dict(cls, data: dict, name: str | None = None) -> "Sketch":
        label = name or (data.get("name") if isinstance(data, dict) else None) or "<sketch>"
        if not isinstance(data, dict) or "primitives" not in data:
            raise QuintetError(f"{label}: a sketch is a JSON object with 'primitives' (and 'constraints')")
        for key in ("primitives", "constraints"):
            if not isinstance(data.get(key, []), list):
                raise QuintetError(f"{label}: {key!r} must be a list, got {type(data[key]).__name__}")
        prims, swapped = [], set()
        for i, p in enumerate(data["primitives"]):
            try:
                prim = primitive_from_params(p["type"], p["params"], bool(p.get("construction", False)))
                if prim.type == "arc" and prim.start != (float(p["params"][0]), float(p["params"][1])):
                    swapped.add(i)  # a clockwise arc was stored counter-clockwise: start and end swap
                prims.append(prim)
            except (KeyError, TypeError, ValueError) as exc:
                raise QuintetError(f"{label}: primitive {i} is malformed ({exc})") from None
        cons = []
        for i, c in enumerate(data.get("constraints", [])):
            try:
                cons.append(Constraint(parse_constraint_type(c["type"]), tuple(Ref(int(r[0]), str(r[1])) for r in c["refs"]), c.get("value")))
            except (KeyError, TypeError, IndexError, ValueError) as exc:
                raise QuintetError(f"{label}: constraint {i} is malformed ({exc})") from None
        return cls(prims, remap_swapped_ends(cons, swapped), str(data.get("name", "") or name or "")).validate()


_SWAP_ENDS = {"start": "end", "end": "start"}


def remap_swapped_ends(constraints: Iterable[Constraint], swapped: set[int]) -> list[Constraint]:
    """``constraints`` with ``start``/``end`` exchanged in references to the arcs ``swapped``
    (arcs re-oriented counter-clockwise), so every constraint keeps its meaning."""
    out = []
    for c in constraints:
        if any(r.index in swapped for r in c.refs):
            c = Constraint(c.type, tuple(r.ends_swapped() if r.index in swapped else r for r in c.refs), c.value)
        out.append(c)
    return out


def save_sketch(sketch: Sketch, path: str | os.PathLike) -> Path:
    """Write ``sketch`` as JSON (atomically)."""
    from quintet.core.io import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(sketch.to_dict(), indent=1))
    return path


def load_sketch(path: str | os.PathLike) -> Sketch:
    """Read a sketch JSON file written by :func:`save_sketch` (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise QuintetError(f"sketch file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise QuintetError(f"sketch file {path}: not valid JSON ({exc})") from None
    return Sketch.from_dict(data, name=path.stem)


def renumber(sketch: Sketch, keep: Sequence[int]) -> Sketch:
    """Sub-sketch of primitives ``keep`` (in that order); constraints touching others are dropped."""
    new_index = {old: new for new, old in enumerate(keep)}
    prims = [sketch.primitives[i] for i in keep]
    cons = []
    for c in sketch.constraints:
        if all(r.index in new_index for r in c.refs):
            cons.append(Constraint(c.type, tuple(Ref(new_index[r.index], r.part) for r in c.refs), c.value))
    return Sketch(prims, cons, sketch.name)


def iter_refs(constraints: Iterable[Constraint]):
    for c in constraints:
        yield from c.refs
