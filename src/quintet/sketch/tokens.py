"""Vitruvion's tokenisation of sketches (Seff et al., ICLR 2022, §3.1 primitives, §3.2 constraints).

**Normalisation** (§3.1): translate the sketch so its bounding box is centred at the origin and
scale it uniformly so the box's long side is 1; every coordinate then lies in [-0.5, 0.5].

**Quantisation**: each parameter ``v`` becomes the bin ``b = round((v + 0.5)·(B − 1))`` of
``B = 2**bits`` bins (6 bits: 64), decoded back to ``v = −0.5 + b/(B − 1)``, so both edges of the
box are exact. A circle radius uses the same grid with ``b >= B/2`` (it stays positive).

**Primitive sequence** — three parallel integer streams of equal length
(``Start (type p_1 … p_k flag)* Stop``):

* ``val`` (value tokens): 0 Pad, 1 Start, 2 Stop, ``3 + t`` primitive type ``t`` in
  (arc, circle, line, point), ``7 + b`` coordinate bin ``b``, ``7 + B`` construction False,
  ``8 + B`` construction True. With 6 bits the vocabulary has 73 tokens.
* ``coord`` (parameter type): 0 Pad, 1 non-coordinate (Start, type, flag, Stop), then one id per
  (type, parameter): arc ``2..7`` (sx sy mx my ex ey), circle ``8..10`` (cx cy r), line
  ``11..14`` (x0 y0 x1 y1), point ``15..16`` (x y).
* ``pos`` (primitive position): 0 Pad, 1 Start, ``i + 2`` for every token of primitive ``i``
  (0-based), ``n + 2`` for Stop.

Arcs are tokenised as start, mid, end points in counter-clockwise order
(:class:`~quintet.sketch.primitives.Arc`).

**Constraint sequence** (``Start (type ref ref?)* Stop``): ``val`` 0 Pad, 1 Start, 2 Stop,
``3 + k`` constraint type ``k`` of :data:`~quintet.sketch.constraints.GEOMETRIC_TYPES`, and a
*pointer* ``16 + p`` for a reference to token position ``p`` of the primitive ``val`` sequence
(Start is position 0). A reference to the whole primitive points at its type token; a sub-point at
the first coordinate token of that point: line start ``+1``, end ``+3``; circle centre ``+1``;
arc start ``+1``, centre ``+3`` (the mid-point slot: an arc's centre has no token of its own),
end ``+5`` (:data:`REF_OFFSETS`). Streams: ``coord`` 0 Pad, 1 Start/type/Stop, 2 first
reference, 3 second reference; ``pos`` 1 Start, ``i + 2`` for constraint ``i``, ``n + 2`` Stop.
Numeric constraints are not tokenised (counted in ``SketchTokens.n_dropped``).

This layout is the one of :mod:`quintet.sketch.models.grammar` (``PrimitiveGrammar`` /
``ConstraintGrammar`` defaults); ``decode(encode(s)) == s`` exactly for a quantised sketch ``s``
(:func:`quantize_sketch`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import GEOMETRIC_TYPES, Constraint, Ref, Sketch, remap_swapped_ends
from quintet.sketch.geometry import transform_sketch
from quintet.sketch.primitives import (
    N_PARAMS,
    PRIMITIVE_TYPES,
    Arc,
    Circle,
    Primitive,
    primitive_from_params,
    primitive_type,
)

__all__ = [
    "PAD", "START", "STOP", "NON_COORD", "TYPE_OFFSET", "N_TYPES", "DEFAULT_BITS",
    "bin_offset", "flag_offset", "vocab_size", "n_coord_ids", "coord_ids",
    "CONSTRAINT_TYPE_OFFSET", "N_CONSTRAINT_SPECIAL", "REF_OFFSETS",
    "PrimitiveTokens", "ConstraintTokens", "SketchTokens",
    "normalize_sketch", "quantize_value", "dequantize_value", "quantize_sketch",
    "encode_primitives", "decode_primitives", "primitive_token_positions", "reference_targets",
    "reference_map",
    "encode_constraints", "decode_constraints", "encode_sketch", "decode_sketch",
]

PAD, START, STOP = 0, 1, 2
NON_COORD = 1
TYPE_OFFSET = 3
N_TYPES = len(PRIMITIVE_TYPES)
DEFAULT_BITS = 6

CONSTRAINT_TYPE_OFFSET = 3
#: Pointer tokens start here: Pad, Start, Stop and the 13 constraint types come first.
N_CONSTRAINT_SPECIAL = CONSTRAINT_TYPE_OFFSET + len(GEOMETRIC_TYPES)

#: Token offset (from the primitive's type token) of each referencable part.
REF_OFFSETS: dict[str, dict[str, int]] = {
    "arc": {"whole": 0, "start": 1, "center": 3, "end": 5},
    "circle": {"whole": 0, "center": 1},
    "line": {"whole": 0, "start": 1, "end": 3},
    "point": {"whole": 0},
}
_PART_AT = {kind: {off: part for part, off in offs.items()} for kind, offs in REF_OFFSETS.items()}


def bin_offset(bits: int = DEFAULT_BITS) -> int:
    """First coordinate-bin token (7)."""
    return TYPE_OFFSET + N_TYPES


def flag_offset(bits: int = DEFAULT_BITS) -> int:
    """Construction-flag token for False (``7 + 2**bits``; True is one more)."""
    return bin_offset(bits) + (1 << bits)


def vocab_size(bits: int = DEFAULT_BITS) -> int:
    """Size of the primitive value vocabulary (73 for 6 bits)."""
    return flag_offset(bits) + 2


def n_coord_ids() -> int:
    """Size of the ``coord`` vocabulary (17)."""
    return 2 + sum(N_PARAMS)


def coord_ids(type_index: int) -> list[int]:
    """``coord`` ids of the parameters of primitive type ``type_index``."""
    start = 2 + sum(N_PARAMS[:type_index])
    return list(range(start, start + N_PARAMS[type_index]))


# ---- normalisation and quantisation ------------------------------------------------------------

def normalize_sketch(sketch: Sketch) -> tuple[Sketch, tuple[float, float, float]]:
    """Centre the bounding box at the origin and scale its long side to 1 (§3.1).

    Returns ``(normalised sketch, (cx, cy, scale))`` with ``x_norm = (x − c)·scale``.
    """
    if not sketch.primitives:
        raise QuintetError(f"sketch {sketch.name or '<unnamed>'} is empty: nothing to normalise")
    x0, y0, x1, y1 = sketch.bbox()
    side = max(x1 - x0, y1 - y0)
    if not side > 0:
        raise QuintetError(f"sketch {sketch.name or '<unnamed>'} has zero size: cannot normalise")
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2, 1.0 / side
    return transform_sketch(sketch, s, -cx * s, -cy * s), (cx, cy, s)


def quantize_value(v, bits: int = DEFAULT_BITS) -> np.ndarray:
    """Bins of values in [-0.5, 0.5] (clipped): ``round((v + 0.5)·(2**bits − 1))``."""
    top = (1 << bits) - 1
    return np.clip(np.rint((np.asarray(v, dtype=np.float64) + 0.5) * top), 0, top).astype(np.int64)


def dequantize_value(b, bits: int = DEFAULT_BITS) -> np.ndarray:
    """Centre value of bins ``b``: ``−0.5 + b/(2**bits − 1)``."""
    return -0.5 + np.asarray(b, dtype=np.float64) / ((1 << bits) - 1)


# The per-primitive helpers below work on a handful of floats, where plain Python is several
# times faster than NumPy calls (the corpus writer tokenises > 1000 sketches/s through them).
# ``round`` rounds half to even, as ``np.rint`` does, so the bins equal :func:`quantize_value`'s.


def _primitive_bins(p: Primitive, bits: int) -> list[int]:
    vals = p.params()
    lim = 0.5 + 1e-6
    if any(abs(v) > lim for v in vals):
        raise QuintetError(
            f"{p.type} parameters {tuple(round(v, 4) for v in vals)} lie outside [-0.5, 0.5]: normalise the sketch first"
        )
    top = (1 << bits) - 1
    bins = [min(max(int(round((v + 0.5) * top)), 0), top) for v in vals]
    if isinstance(p, Circle):
        bins[2] = max(bins[2], 1 << (bits - 1))
    return bins


def _from_bins(t: int, bins: list[int], construction: bool, bits: int) -> tuple[Primitive, bool]:
    """Primitive of type ``t`` from its bins; ``swapped`` is True when an arc was re-oriented."""
    top = float((1 << bits) - 1)
    vals = [-0.5 + b / top for b in bins]
    if PRIMITIVE_TYPES[t] == "arc":
        return Arc.through(vals[0:2], vals[2:4], vals[4:6], construction)
    if PRIMITIVE_TYPES[t] == "circle":
        vals[2] = abs(vals[2])
    return primitive_from_params(t, vals, construction), False


def quantize_sketch(sketch: Sketch, bits: int = DEFAULT_BITS) -> Sketch:
    """Snap a normalised sketch to the token grid (what :func:`decode_sketch` can return).

    An arc whose snapped points turn clockwise is re-oriented and references to its start/end
    are exchanged, so the constraints keep their meaning.
    """
    prims, swapped = [], set()
    for i, p in enumerate(sketch.primitives):
        q, sw = _from_bins(primitive_type(p), _primitive_bins(p, bits), p.construction, bits)
        prims.append(q)
        if sw:
            swapped.add(i)
    return Sketch(prims, remap_swapped_ends(sketch.constraints, swapped), sketch.name)


# ---- primitive sequence ------------------------------------------------------------------------

@dataclass
class PrimitiveTokens:
    """The three streams of a primitive sequence, int64 arrays of equal length ``(L,)``."""

    val: np.ndarray
    coord: np.ndarray
    pos: np.ndarray

    def __len__(self) -> int:
        return len(self.val)


def encode_primitives(primitives: list[Primitive], bits: int = DEFAULT_BITS) -> PrimitiveTokens:
    """Tokens ``Start (type bins… flag)* Stop`` of normalised primitives (values in [-0.5, 0.5])."""
    boff, foff = bin_offset(bits), flag_offset(bits)
    val, coord, pos = [START], [NON_COORD], [1]
    for i, p in enumerate(primitives):
        t = primitive_type(p)
        bins = _primitive_bins(p, bits)
        val.append(TYPE_OFFSET + t)
        val.extend(boff + b for b in bins)
        val.append(foff + int(bool(p.construction)))
        coord.append(NON_COORD)
        coord.extend(coord_ids(t))
        coord.append(NON_COORD)
        pos.extend([i + 2] * (len(bins) + 2))
    val.append(STOP)
    coord.append(NON_COORD)
    pos.append(len(primitives) + 2)
    return PrimitiveTokens(np.array(val, np.int64), np.array(coord, np.int64), np.array(pos, np.int64))


def _parse_primitive_val(val, bits: int) -> list[tuple[int, list[int], bool, int]]:
    """``[(type, bins, construction, position of the type token), ...]``; raises on bad grammar."""
    toks = [int(v) for v in np.asarray(val).reshape(-1).tolist()]
    boff, foff, nb = bin_offset(bits), flag_offset(bits), 1 << bits
    if not toks or toks[0] != START:
        raise QuintetError("a primitive token sequence must begin with Start (token 1)")
    out, i = [], 1
    while i < len(toks):
        tok = toks[i]
        if tok == STOP:
            return out
        t = tok - TYPE_OFFSET
        if not 0 <= t < N_TYPES:
            raise QuintetError(f"primitive token {tok} at position {i}: expected a primitive type (3..6) or Stop (2)")
        k = N_PARAMS[t]
        if i + k + 1 >= len(toks):
            raise QuintetError(f"primitive sequence ends inside the {PRIMITIVE_TYPES[t]} starting at position {i}")
        bins = [b - boff for b in toks[i + 1 : i + 1 + k]]
        if any(not 0 <= b < nb for b in bins):
            raise QuintetError(f"the {PRIMITIVE_TYPES[t]} at position {i} has a non-coordinate parameter token")
        flag = toks[i + 1 + k] - foff
        if flag not in (0, 1):
            raise QuintetError(f"token {toks[i + 1 + k]} at position {i + 1 + k}: expected a construction flag")
        out.append((t, bins, bool(flag), i))
        i += k + 2
    raise QuintetError("primitive token sequence has no Stop token")


def decode_primitives(val, bits: int = DEFAULT_BITS) -> list[Primitive]:
    """Primitives of a value-token sequence (tokens after Stop are ignored)."""
    return [_from_bins(t, bins, flag, bits)[0] for t, bins, flag, _ in _parse_primitive_val(val, bits)]


def primitive_token_positions(primitives: list[Primitive]) -> list[int]:
    """Position of each primitive's type token in its value sequence (Start is position 0)."""
    out, p = [], 1
    for prim in primitives:
        out.append(p)
        p += N_PARAMS[primitive_type(prim)] + 2
    return out


def reference_targets(val, bits: int = DEFAULT_BITS) -> dict[int, tuple[int, str]]:
    """Map ``token position -> (primitive index, part)`` of every position a constraint may
    point at in a primitive value sequence (a boolean pointer mask is its key set)."""
    out = {}
    for i, (t, _b, _f, p) in enumerate(_parse_primitive_val(val, bits)):
        for part, off in REF_OFFSETS[PRIMITIVE_TYPES[t]].items():
            out[p + off] = (i, part)
    return out


# ---- constraint sequence -----------------------------------------------------------------------

@dataclass
class ConstraintTokens:
    """The streams of a constraint sequence, int64 arrays ``(L,)``; pointers are ``16 + p``."""

    val: np.ndarray
    coord: np.ndarray
    pos: np.ndarray

    def __len__(self) -> int:
        return len(self.val)


def _tokenisable(c: Constraint) -> bool:
    return c.type in GEOMETRIC_TYPES


def encode_constraints(constraints: list[Constraint], primitives: list[Primitive]) -> tuple[ConstraintTokens, int]:
    """Tokens of the geometric constraints; returns ``(tokens, number of constraints dropped)``.

    Numeric constraints are dropped. References must be valid for ``primitives``.
    """
    positions = primitive_token_positions(primitives)
    val, coord, pos = [START], [1], [1]
    dropped = n = 0
    for c in constraints:
        if not _tokenisable(c):
            dropped += 1
            continue
        k = GEOMETRIC_TYPES.index(c.type)
        targets = []
        for r in c.refs:
            if not 0 <= r.index < len(primitives):
                raise QuintetError(f"constraint {c.type.value} references primitive {r.index}; there are {len(primitives)}")
            kind = primitives[r.index].type
            if r.part not in REF_OFFSETS[kind]:
                raise QuintetError(f"constraint {c.type.value} references part {r.part!r} of a {kind}")
            targets.append(positions[r.index] + REF_OFFSETS[kind][r.part])
        val.append(CONSTRAINT_TYPE_OFFSET + k)
        coord.append(1)
        pos.append(n + 2)
        for j, tgt in enumerate(targets):
            val.append(N_CONSTRAINT_SPECIAL + tgt)
            coord.append(2 + min(j, 1))
            pos.append(n + 2)
        n += 1
    val.append(STOP)
    coord.append(1)
    pos.append(n + 2)
    return ConstraintTokens(np.array(val, np.int64), np.array(coord, np.int64), np.array(pos, np.int64)), dropped


def decode_constraints(val, primitive_val, bits: int = DEFAULT_BITS, strict: bool = True) -> list[Constraint]:
    """Constraints of a constraint value sequence whose pointers index ``primitive_val``.

    ``strict=False`` skips constraints with an invalid pointer or arity instead of raising.
    """
    targets = reference_targets(primitive_val, bits)
    toks = [int(v) for v in np.asarray(val).reshape(-1).tolist()]
    if not toks or toks[0] != START:
        raise QuintetError("a constraint token sequence must begin with Start (token 1)")
    out: list[Constraint] = []
    i = 1
    while i < len(toks):
        tok = toks[i]
        if tok == STOP:
            return out
        k = tok - CONSTRAINT_TYPE_OFFSET
        if not 0 <= k < len(GEOMETRIC_TYPES):
            raise QuintetError(f"constraint token {tok} at position {i}: expected a constraint type or Stop")
        ctype = GEOMETRIC_TYPES[k]
        refs, bad = [], None
        i += 1
        while i < len(toks) and toks[i] >= N_CONSTRAINT_SPECIAL:
            p = toks[i] - N_CONSTRAINT_SPECIAL
            if p not in targets:
                bad = f"pointer to position {p}, which is not a primitive or one of its points"
            else:
                refs.append(Ref(*targets[p]))
            i += 1
        try:
            if bad is not None:
                raise QuintetError(f"constraint {ctype.value}: {bad}")
            out.append(Constraint(ctype, tuple(refs)))
        except QuintetError:
            if strict:
                raise
    if strict:
        raise QuintetError("constraint token sequence has no Stop token")
    return out


# ---- whole sketches ----------------------------------------------------------------------------

@dataclass
class SketchTokens:
    """Token streams of one sketch plus what normalisation removed."""

    primitives: PrimitiveTokens
    constraints: ConstraintTokens
    n_dropped: int = 0
    transform: tuple[float, float, float] = (0.0, 0.0, 1.0)


def encode_sketch(sketch: Sketch, bits: int = DEFAULT_BITS, normalize: bool = True) -> SketchTokens:
    """Normalise (unless told not to), quantise and tokenise a sketch."""
    sketch.validate()
    tf = (0.0, 0.0, 1.0)
    if normalize:
        sketch, tf = normalize_sketch(sketch)
    q = quantize_sketch(sketch, bits)
    ptoks = encode_primitives(q.primitives, bits)
    ctoks, dropped = encode_constraints(q.constraints, q.primitives)
    return SketchTokens(ptoks, ctoks, dropped, tf)


def decode_sketch(tokens: SketchTokens | tuple, bits: int = DEFAULT_BITS, strict: bool = True, name: str = "") -> Sketch:
    """Sketch of ``SketchTokens`` or of a pair ``(primitive val, constraint val)``.

    Arcs decoded clockwise are re-oriented and references to their ends exchanged.
    """
    if isinstance(tokens, SketchTokens):
        pval, cval = tokens.primitives.val, tokens.constraints.val
    else:
        pval, cval = tokens
    prims, swapped = _primitives_and_swapped(pval, bits)
    cons = [] if cval is None else decode_constraints(cval, pval, bits, strict)
    return Sketch(prims, remap_swapped_ends(cons, swapped), name)


def _primitives_and_swapped(pval, bits: int) -> tuple[list[Primitive], set[int]]:
    """The primitives of a value sequence and the indices of the arcs re-oriented counter-clockwise."""
    prims, swapped = [], set()
    for i, (t, bins, flag, _p) in enumerate(_parse_primitive_val(pval, bits)):
        q, sw = _from_bins(t, bins, flag, bits)
        prims.append(q)
        if sw:
            swapped.add(i)
    return prims, swapped


def reference_map(pval, bits: int = DEFAULT_BITS) -> dict[int, Ref]:
    """Map ``token position -> Ref`` into the sketch :func:`decode_sketch` returns for ``pval``
    (:func:`reference_targets` with the ends of re-oriented arcs exchanged)."""
    _prims, swapped = _primitives_and_swapped(pval, bits)
    return {p: Ref(i, part).ends_swapped() if i in swapped else Ref(i, part)
            for p, (i, part) in reference_targets(pval, bits).items()}
