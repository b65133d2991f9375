"""Token grammars of Vitruvion's two sequence models (Seff et al., ICLR 2022, §3.1 and §3.2).

A sketch's primitives are one sequence of three parallel integer streams:

* ``val``   — the value token: Start, a primitive-type token, a quantised coordinate bin, a
  construction flag, Stop (Pad = 0 after Stop);
* ``coord`` — the parameter type of the token (which coordinate of which primitive type), or the
  shared "non-coordinate" id for Start/type/flag/Stop tokens;
* ``pos``   — the index of the primitive the token belongs to (Start = 1, primitive ``i`` = ``i+2``,
  Stop = ``n+2``).

The primitive grammar is: ``Start (type c_1 … c_k flag)* Stop`` where ``k`` is the number of
parameters of ``type``. :class:`PrimitiveGrammar` turns that into per-step masks for constrained
decoding (§3.1, "we mask invalid tokens") and recomputes the ``coord``/``pos`` streams from the
``val`` stream.

Constraints are a second sequence ``Start (ctype ref ref?)* Stop`` where each ``ref`` points at a
token position of the primitive sequence (§3.2, the pointer scheme). The constraint model scores
one softmax over ``[constraint-type tokens ; primitive positions]``; :class:`ConstraintGrammar`
keeps the type part's layout and each type's arity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import ARITY, GEOMETRIC_TYPES
from quintet.sketch.models.validity import check_geometry_layout, forbidden_bins

PAD, START, STOP = 0, 1, 2
NON_COORD = 1  # coord-stream id of Start/type/flag/Stop tokens (0 is padding)


@dataclass(frozen=True)
class PrimitiveGrammar:
    """Layout of the primitive value vocabulary.

    ``val`` ids: 0 Pad, 1 Start, 2 Stop, ``3 … 3+T-1`` primitive types, then ``num_bins`` coordinate
    bins, then the two construction flags (False, True). ``coord`` ids: 0 pad, 1 non-coordinate,
    then one id per (type, parameter) pair.
    """

    type_names: tuple[str, ...] = ("arc", "circle", "line", "point")
    n_params: tuple[int, ...] = (6, 3, 4, 2)
    num_bins: int = 64

    # ---- value-token layout -------------------------------------------------------------
    @property
    def n_types(self) -> int:
        return len(self.type_names)

    @property
    def type_offset(self) -> int:
        return 3

    @property
    def bin_offset(self) -> int:
        return self.type_offset + self.n_types

    @property
    def flag_offset(self) -> int:
        return self.bin_offset + self.num_bins

    @property
    def vocab_size(self) -> int:
        return self.flag_offset + 2

    @property
    def n_coord_ids(self) -> int:
        return 2 + sum(self.n_params)

    def coord_ids(self, type_index: int) -> list[int]:
        """The coord-stream ids of the parameters of primitive type ``type_index``."""
        start = 2 + sum(self.n_params[:type_index])
        return list(range(start, start + self.n_params[type_index]))

    def type_token(self, type_index: int) -> int:
        return self.type_offset + type_index

    def bin_token(self, b: int) -> int:
        return self.bin_offset + b

    def flag_token(self, construction: bool) -> int:
        return self.flag_offset + int(bool(construction))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "PrimitiveGrammar":
        return cls(tuple(d["type_names"]), tuple(d["n_params"]), int(d["num_bins"]))

    # ---- sequences ----------------------------------------------------------------------
    def encode(self, primitives: list[tuple[int, list[int], bool]]) -> list[int]:
        """``[(type_index, bins, construction), ...]`` -> value tokens ``Start … Stop``."""
        out = [START]
        for t, bins, flag in primitives:
            if not 0 <= t < self.n_types:
                raise QuintetError(f"primitive type index {t} outside 0..{self.n_types - 1}")
            if len(bins) != self.n_params[t]:
                raise QuintetError(
                    f"a {self.type_names[t]} needs {self.n_params[t]} parameters, got {len(bins)}"
                )
            if any(not 0 <= b < self.num_bins for b in bins):
                raise QuintetError(f"coordinate bins {bins} outside 0..{self.num_bins - 1}")
            out.append(self.type_token(t))
            out.extend(self.bin_token(b) for b in bins)
            out.append(self.flag_token(flag))
        out.append(STOP)
        return out

    def decode(self, val: list[int] | torch.Tensor, *, require_stop: bool = True) -> list[tuple[int, list[int], bool]]:
        """Value tokens -> ``[(type_index, bins, construction), ...]``; raises on a grammar error.

        Stops at Stop (tokens after it are ignored). ``require_stop=False`` accepts a prefix that
        ends after a complete primitive (a primer).
        """
        toks = [int(v) for v in (val.tolist() if torch.is_tensor(val) else val)]
        if not toks or toks[0] != START:
            raise QuintetError("a primitive token sequence must begin with Start (token 1)")
        prims: list[tuple[int, list[int], bool]] = []
        i = 1
        while i < len(toks):
            tok = toks[i]
            if tok == STOP:
                return prims
            t = tok - self.type_offset
            if not 0 <= t < self.n_types:
                raise QuintetError(f"token {tok} at position {i}: expected a primitive type or Stop")
            k = self.n_params[t]
            if i + k + 1 >= len(toks):
                raise QuintetError(f"sequence ends inside the {self.type_names[t]} that starts at position {i}")
            bins = [b - self.bin_offset for b in toks[i + 1 : i + 1 + k]]
            if any(not 0 <= b < self.num_bins for b in bins):
                raise QuintetError(f"the {self.type_names[t]} at position {i} has a non-coordinate parameter token")
            flag = toks[i + 1 + k] - self.flag_offset
            if flag not in (0, 1):
                raise QuintetError(f"token {toks[i + 1 + k]} at position {i + 1 + k}: expected a construction flag")
            prims.append((t, bins, bool(flag)))
            i += k + 2
        if require_stop:
            raise QuintetError("primitive token sequence has no Stop token")
        return prims

    def is_valid(self, val: list[int] | torch.Tensor) -> bool:
        try:
            self.decode(val)
        except QuintetError:
            return False
        return True

    def streams(self, val: list[int]) -> tuple[list[int], list[int]]:
        """The ``coord`` and ``pos`` streams of a (possibly unfinished) value sequence."""
        coord, pos = [], []
        prim, t, j = -1, -1, 0  # current primitive, its type, parameters emitted
        for i, tok in enumerate(val):
            tok = int(tok)
            if tok == PAD:
                coord.append(0)
                pos.append(0)
            elif i == 0:
                coord.append(NON_COORD)
                pos.append(1)
            elif t >= 0 and j < self.n_params[t]:
                coord.append(self.coord_ids(t)[j])
                pos.append(prim + 2)
                j += 1
            elif t >= 0:  # the construction flag
                coord.append(NON_COORD)
                pos.append(prim + 2)
                t = -1
            else:  # type or Stop
                prim += 1
                coord.append(NON_COORD)
                pos.append(prim + 2)
                if self.type_offset <= tok < self.bin_offset:
                    t, j = tok - self.type_offset, 0
        return coord, pos

    def reference_offsets(self, type_index: int) -> list[int]:
        """Token offsets (from the type token) a constraint may point at: the whole primitive
        (offset 0) and each of its points (the first coordinate of each x/y pair)."""
        k = self.n_params[type_index]
        if k <= 2:  # a point: the primitive and its only point are one thing
            return [0]
        return [0] + [1 + 2 * p for p in range(k // 2)]


class PrimitiveDecodeState:
    """Batched state machine of :class:`PrimitiveGrammar` for constrained decoding.

    Tracks, per sequence, the current primitive type (-1 when a type or Stop comes next), the number
    of its parameters emitted so far, the primitive count and whether Stop was emitted.
    ``max_primitives`` (None: unbounded) caps the primitive count: once it is reached only Stop
    may follow, since the model has no position embedding for a further primitive.

    ``valid_geometry``: :meth:`allowed` also forbids the coordinate bins after which the primitive
    being sampled can only be degenerate (:func:`quintet.sketch.models.validity.forbidden_bins`),
    so every primitive it lets through decodes to a drawable entity. Should a row have no bin
    left (possible only after forced tokens), it falls back to the grammar mask for that step and
    :attr:`geometry_fallbacks` counts it.
    """

    def __init__(self, grammar: PrimitiveGrammar, batch: int, max_len: int, device: torch.device | str = "cpu",
                 max_primitives: int | None = None, valid_geometry: bool = False):
        self.g = grammar
        self.max_len = max_len
        self.max_primitives = max_primitives
        self.valid_geometry = valid_geometry
        if valid_geometry:
            check_geometry_layout(grammar.type_names, grammar.n_params)
        self.length = 1  # Start is in place
        self.cur_type = torch.full((batch,), -1, dtype=torch.long, device=device)
        self.n_done = torch.zeros(batch, dtype=torch.long, device=device)
        self.n_prims = torch.zeros(batch, dtype=torch.long, device=device)
        self.finished = torch.zeros(batch, dtype=torch.bool, device=device)
        self._n_params = torch.tensor(grammar.n_params, dtype=torch.long, device=device)
        self._coord_base = torch.tensor(
            [grammar.coord_ids(t)[0] for t in range(grammar.n_types)], dtype=torch.long, device=device
        )
        self.params = torch.zeros(batch, max(grammar.n_params), dtype=torch.long, device=device)  # bins so far
        self.geometry_fallbacks = torch.zeros(batch, dtype=torch.long, device=device)

    def allowed(self) -> torch.Tensor:
        """(batch, vocab) boolean mask of the tokens the grammar permits next.

        A type is allowed only if the primitive and a Stop still fit in ``max_len`` and fewer than
        ``max_primitives`` primitives were emitted; at the end of either budget only Stop
        remains, so every sampled sequence is complete.
        """
        g, B = self.g, self.cur_type.shape[0]
        mask = torch.zeros(B, g.vocab_size, dtype=torch.bool, device=self.cur_type.device)
        expect_type = (self.cur_type < 0) & ~self.finished
        remaining = self.max_len - self.length  # tokens that may still be appended
        fits = (self._n_params + 3)[None, :] <= remaining  # type + params + flag + Stop
        new_type = expect_type if self.max_primitives is None else expect_type & (self.n_prims < self.max_primitives)
        mask[:, g.type_offset : g.bin_offset] = new_type[:, None] & fits.expand(B, -1)
        mask[:, STOP] = expect_type
        in_params = (self.cur_type >= 0) & (self.n_done < self._n_params[self.cur_type.clamp(min=0)])
        mask[:, g.bin_offset : g.flag_offset] = in_params[:, None]
        at_flag = (self.cur_type >= 0) & ~in_params
        mask[:, g.flag_offset : g.flag_offset + 2] = at_flag[:, None]
        mask[:, PAD] = self.finished
        return self._restrict_geometry(mask) if self.valid_geometry else mask

    def _restrict_geometry(self, mask: torch.Tensor) -> torch.Tensor:
        """``mask`` without the bins :func:`forbidden_bins` names; a row left empty keeps ``mask``."""
        g = self.g
        bad = forbidden_bins(g.type_names, g.num_bins, self.cur_type, self.n_done, self.params)
        geo = mask.clone()
        geo[:, g.bin_offset : g.flag_offset] &= ~bad
        empty = ~geo.any(-1)
        self.geometry_fallbacks += empty.long()
        return torch.where(empty[:, None], mask, geo)

    def streams(self, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``coord`` and ``pos`` ids of the tokens ``tok`` (batch,) about to be appended."""
        is_type_or_stop = self.cur_type < 0
        in_params = (self.cur_type >= 0) & (self.n_done < self._n_params[self.cur_type.clamp(min=0)])
        coord = torch.full_like(tok, NON_COORD)
        coord = torch.where(in_params, self._coord_base[self.cur_type.clamp(min=0)] + self.n_done, coord)
        pos = torch.where(is_type_or_stop, self.n_prims + 2, self.n_prims + 1)
        pad = self.finished
        return coord.masked_fill(pad, 0), pos.masked_fill(pad, 0)

    def advance(self, tok: torch.Tensor) -> None:
        """Append ``tok`` (batch,) to every sequence."""
        g = self.g
        live = ~self.finished
        is_type = live & (tok >= g.type_offset) & (tok < g.bin_offset) & (self.cur_type < 0)
        is_stop = live & (tok == STOP) & (self.cur_type < 0)
        is_bin = live & (self.cur_type >= 0) & (self.n_done < self._n_params[self.cur_type.clamp(min=0)])
        is_flag = live & (self.cur_type >= 0) & ~is_bin
        slot = self.n_done.clamp(max=self.params.shape[1] - 1)[:, None]
        kept = self.params.gather(1, slot)[:, 0]
        self.params.scatter_(1, slot, torch.where(is_bin, tok - g.bin_offset, kept)[:, None])
        self.n_done = torch.where(is_bin, self.n_done + 1, self.n_done)
        self.cur_type = torch.where(is_flag, torch.full_like(self.cur_type, -1), self.cur_type)
        self.cur_type = torch.where(is_type, tok - g.type_offset, self.cur_type)
        self.n_done = torch.where(is_type, torch.zeros_like(self.n_done), self.n_done)
        self.n_prims = self.n_prims + is_type.long()
        self.finished = self.finished | is_stop
        self.length += 1


@dataclass(frozen=True)
class ConstraintGrammar:
    """Layout of the constraint model's output: ``[Pad, Start, Stop, types…] ; positions``.

    ``arity[k] = (min_refs, max_refs)`` of constraint type ``k``; references point at token
    positions of the primitive sequence, so target ``n_special + p`` means "position ``p``".
    """

    type_names: tuple[str, ...] = (
        "coincident", "concentric", "equal", "fix", "horizontal", "midpoint",
        "normal", "offset", "parallel", "perpendicular", "quadrant", "tangent", "vertical",
    )
    arity: tuple[tuple[int, int], ...] = field(default_factory=lambda: tuple(ARITY[t] for t in GEOMETRIC_TYPES))

    def __post_init__(self):
        if len(self.arity) != len(self.type_names):
            raise QuintetError(f"{len(self.type_names)} constraint types but {len(self.arity)} arities")

    @property
    def type_offset(self) -> int:
        return 3

    @property
    def n_special(self) -> int:
        """Size of the type part of the output softmax (Pad, Start, Stop and the types)."""
        return 3 + len(self.type_names)

    def type_token(self, name_or_index: str | int) -> int:
        k = self.type_names.index(name_or_index) if isinstance(name_or_index, str) else int(name_or_index)
        return self.type_offset + k

    def to_dict(self) -> dict:
        return {"type_names": list(self.type_names), "arity": [list(a) for a in self.arity]}

    @classmethod
    def from_dict(cls, d: dict) -> "ConstraintGrammar":
        return cls(tuple(d["type_names"]), tuple(tuple(a) for a in d["arity"]))

    def encode(self, constraints: list[tuple[int, list[int]]]) -> list[int]:
        """``[(type_index, [positions…]), …]`` -> targets ``Start (type pos…)* Stop`` in the joint
        output space (positions shifted by :attr:`n_special`)."""
        out = [START]
        for k, refs in constraints:
            lo, hi = self.arity[k]
            if not lo <= len(refs) <= hi:
                raise QuintetError(f"constraint {self.type_names[k]} takes {lo}..{hi} references, got {len(refs)}")
            out.append(self.type_token(k))
            out.extend(self.n_special + int(p) for p in refs)
        out.append(STOP)
        return out

    def decode(self, toks: list[int] | torch.Tensor) -> list[tuple[int, list[int]]]:
        """Joint tokens -> ``[(type_index, [positions…]), …]``; raises on a grammar error."""
        toks = [int(v) for v in (toks.tolist() if torch.is_tensor(toks) else toks)]
        if not toks or toks[0] != START:
            raise QuintetError("a constraint token sequence must begin with Start")
        out: list[tuple[int, list[int]]] = []
        i = 1
        while i < len(toks):
            tok = toks[i]
            if tok == STOP:
                return out
            k = tok - self.type_offset
            if not 0 <= k < len(self.type_names):
                raise QuintetError(f"token {tok} at position {i}: expected a constraint type or Stop")
            refs = []
            i += 1
            while i < len(toks) and toks[i] >= self.n_special and len(refs) < self.arity[k][1]:
                refs.append(toks[i] - self.n_special)
                i += 1
            if len(refs) < self.arity[k][0]:
                raise QuintetError(f"constraint {self.type_names[k]} has {len(refs)} references")
            out.append((k, refs))
        raise QuintetError("constraint token sequence has no Stop token")

    def streams(self, toks: list[int]) -> tuple[list[int], list[int]]:
        """Decoder input streams: ``coord`` (0 pad, 1 type/Start/Stop, 2 first ref, 3 second ref)
        and ``pos`` (constraint index: Start 1, constraint ``i`` -> ``i+2``)."""
        coord, pos = [], []
        c, r = 0, 0
        for i, tok in enumerate(toks):
            tok = int(tok)
            if tok == PAD:
                coord.append(0)
                pos.append(0)
            elif i == 0:
                coord.append(1)
                pos.append(1)
            elif tok >= self.n_special:
                r += 1
                coord.append(1 + min(r, 2))
                pos.append(c + 1)
            else:
                c += 1
                r = 0
                coord.append(1)
                pos.append(c + 1)
        return coord, pos


class ConstraintDecodeState:
    """Batched state machine of :class:`ConstraintGrammar` for constrained decoding."""

    def __init__(self, grammar: ConstraintGrammar, ref_mask: torch.Tensor, max_len: int):
        self.g = grammar
        self.ref_mask = ref_mask  # (batch, L) positions that may be referenced
        self.max_len = max_len
        self.length = 1
        B, dev = ref_mask.shape[0], ref_mask.device
        self.cur = torch.full((B,), -1, dtype=torch.long, device=dev)  # current type, -1 none
        self.n_refs = torch.zeros(B, dtype=torch.long, device=dev)
        self.n_cons = torch.zeros(B, dtype=torch.long, device=dev)
        self.finished = torch.zeros(B, dtype=torch.bool, device=dev)
        self._lo = torch.tensor([a[0] for a in grammar.arity], device=dev)
        self._hi = torch.tensor([a[1] for a in grammar.arity], device=dev)

    def allowed(self) -> torch.Tensor:
        """(batch, n_special + L) mask of permitted next outputs."""
        g = self.g
        B, L = self.ref_mask.shape
        mask = torch.zeros(B, g.n_special + L, dtype=torch.bool, device=self.ref_mask.device)
        k = self.cur.clamp(min=0)
        has = self.cur >= 0
        need_ref = has & (self.n_refs < self._lo[k])
        may_ref = has & (self.n_refs < self._hi[k])
        may_new = (~has | ~need_ref) & ~self.finished
        remaining = self.max_len - self.length
        new_fits = may_new & (remaining >= 2 + self._lo.max()) & self.ref_mask.any(1)  # type + refs + Stop
        mask[:, g.type_offset : g.n_special] = new_fits[:, None]
        mask[:, STOP] = may_new
        can_ref = may_ref & ~self.finished & (remaining >= 2)
        can_ref = can_ref | (need_ref & ~self.finished)
        mask[:, g.n_special :] = can_ref[:, None] & self.ref_mask
        mask[:, PAD] = self.finished
        return mask

    def streams(self, tok: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        is_ref = tok >= self.g.n_special
        coord = torch.where(is_ref, 2 + self.n_refs.clamp(max=1), torch.ones_like(tok))
        pos = torch.where(is_ref, self.n_cons + 1, self.n_cons + 2)
        return coord.masked_fill(self.finished, 0), pos.masked_fill(self.finished, 0)

    def advance(self, tok: torch.Tensor) -> None:
        g = self.g
        live = ~self.finished
        is_ref = live & (tok >= g.n_special)
        is_type = live & (tok >= g.type_offset) & (tok < g.n_special)
        self.finished = self.finished | (live & (tok == STOP))
        self.n_refs = torch.where(is_ref, self.n_refs + 1, self.n_refs)
        self.cur = torch.where(is_type, tok - g.type_offset, self.cur)
        self.n_refs = torch.where(is_type, torch.zeros_like(self.n_refs), self.n_refs)
        self.n_cons = self.n_cons + is_type.long()
        self.length += 1
