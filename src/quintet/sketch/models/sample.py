"""Sampling from Vitruvion's models: grammar-constrained nucleus sampling of primitives (optionally
from a primer or an image) with a key/value cache, and constraint inference with the pointer model.

* :func:`nucleus_filter` — top-p filtering (Holtzman et al. 2020), the paper's sampler (p = 0.9).
* :func:`sample_primitives` — batched, grammar-constrained (§3.1) and, by default, restricted to
  valid geometry (:mod:`~quintet.sketch.models.validity`); primers (§4.2, autocomplete) are forced
  token by token, so primers of different lengths share one batch.
* :func:`infer_constraints` — constraints for given primitives (§3.2); greedy by default, with
  exact repeats removed (:func:`dedupe_constraints`), optionally restricted to constraints the
  primitives meet (:class:`~quintet.sketch.models.residual_check.ResidualMask`).
"""

from __future__ import annotations

import torch

from quintet.core.errors import QuintetError
from quintet.sketch.constraints import ConstraintType
from quintet.sketch.models.constraint import ConstraintModel
from quintet.sketch.models.grammar import (
    NON_COORD,
    PAD,
    START,
    ConstraintDecodeState,
    ConstraintGrammar,
    PrimitiveDecodeState,
    PrimitiveGrammar,
)
from quintet.sketch.models.primitive import PrimitiveModel
from quintet.sketch.models.residual_check import ResidualMask


def nucleus_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability mass reaches ``top_p``; others -> -inf.

    ``logits: (B, V)``. The most likely token is always kept; ``top_p >= 1`` keeps everything.
    """
    if not 0.0 < top_p <= 1.0:
        raise QuintetError(f"top_p must lie in (0, 1], got {top_p}")
    if top_p >= 1.0:
        return logits
    sorted_logits, idx = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    before = probs.cumsum(dim=-1) - probs  # mass of strictly more likely tokens
    drop_sorted = before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, idx, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (where ``accelerate`` left it after training)."""
    return next(model.parameters()).device


def on_model_device(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``batch`` with every tensor moved to ``model``'s device (batches are built on the CPU)."""
    dev = model_device(model)
    return {k: v.to(dev) for k, v in batch.items()}


def _pick(logits: torch.Tensor, top_p: float | None, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    if top_p is None:
        return logits.argmax(-1)
    logits = nucleus_filter(logits.float() / temperature, top_p)
    probs = logits.softmax(-1)
    if generator is not None and generator.device != probs.device:  # e.g. a CPU generator, GPU model
        return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(-1).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def check_primer(grammar: PrimitiveGrammar, primer: list[int], max_len: int, max_primitives: int | None = None) -> list[int]:
    """Validate a primer (value tokens from Start through complete primitives, no Stop) against the
    model's token budget ``max_len`` and primitive capacity ``max_primitives``."""
    prims = grammar.decode(primer, require_stop=False)  # raises QuintetError on a bad prefix
    toks = grammar.encode(prims)[:-1]  # drop Stop
    if len(toks) != len([t for t in primer if t != PAD]):
        raise QuintetError("a primer must end after a complete primitive and must not contain Stop")
    if max_primitives is not None and len(prims) > max_primitives:
        raise QuintetError(
            f"primer has {len(prims)} primitives, but the model supports at most {max_primitives} per sketch"
        )
    if len(toks) >= max_len:
        raise QuintetError(f"primer of {len(toks)} tokens leaves no room in max_len {max_len}")
    return toks


@torch.no_grad()
def sample_primitives(
    model: PrimitiveModel,
    n: int,
    *,
    primers: list[list[int]] | None = None,
    image: torch.Tensor | None = None,
    top_p: float | None = 0.9,
    temperature: float = 1.0,
    use_cache: bool = True,
    max_len: int | None = None,
    generator: torch.Generator | None = None,
    valid_geometry: bool = True,
) -> list[list[int]]:
    """Draw ``n`` primitive sequences (value tokens, Start … Stop) from ``model``.

    ``primers``: ``n`` prefixes (or one, shared) to complete. ``image``: (n or 1, 1, 128, 128)
    for an image-conditioned model. ``top_p=None`` decodes greedily. Every returned sequence is
    grammatical: the grammar mask leaves only valid tokens and forces Stop at ``max_len`` tokens
    or ``model.config.max_primitives`` primitives, whichever comes first.

    ``valid_geometry`` (default): the validity mask (:func:`~quintet.sketch.models.validity.forbidden_bins`)
    also removes the coordinate bins that would leave the current primitive degenerate, so every
    sampled primitive is a drawable entity (:func:`~quintet.sketch.models.data.tokens_to_sketch`
    accepts it); primers are kept as given. ``False`` samples the grammar-masked distribution alone.
    """
    model.eval()
    g = model.grammar
    max_len = max_len or model.config.max_len
    n_max = model.config.max_primitives
    dev = model_device(model)
    if primers is not None and len(primers) == 1 and n > 1:
        primers = primers * n
    if primers is not None and len(primers) != n:
        raise QuintetError(f"got {len(primers)} primers for {n} samples")
    prim = [check_primer(g, p, max_len, n_max) for p in primers] if primers is not None else [[START]] * n
    lengths = torch.tensor([len(p) for p in prim], device=dev)
    forced = torch.full((n, max_len), PAD, dtype=torch.long, device=dev)
    for i, p in enumerate(prim):
        forced[i, : len(p)] = torch.tensor(p, device=dev)

    memory = None
    if model.config.image:
        if image is None:
            raise QuintetError("this is an image-conditioned model: pass an image (--image PNG)")
        if image.dim() == 4 and image.shape[0] == 1 and n > 1:
            image = image.expand(n, -1, -1, -1)
        memory = model.encode_image(image.to(dev))
    elif image is not None:
        raise QuintetError("this primitive model is not image-conditioned; an image was given")

    val = torch.full((n, max_len), PAD, dtype=torch.long, device=dev)
    coord = torch.zeros_like(val)
    pos = torch.zeros_like(val)
    val[:, 0], coord[:, 0], pos[:, 0] = START, NON_COORD, 1
    state = PrimitiveDecodeState(g, n, max_len, dev, max_primitives=n_max, valid_geometry=valid_geometry)
    p0 = int(lengths.min())
    for t in range(1, p0):  # the common part of the primers is known: prefill it
        tok = forced[:, t]
        coord[:, t], pos[:, t] = state.streams(tok)
        val[:, t] = tok
        state.advance(tok)

    cache = model.new_cache(n, max_len) if use_cache else None
    logits = model(val[:, :p0], coord[:, :p0], pos[:, :p0], memory=memory, cache=cache)[:, -1]
    for t in range(p0, max_len):
        if bool(state.finished.all()):
            break
        allowed = state.allowed()
        tok = _pick(logits.masked_fill(~allowed, float("-inf")), top_p, temperature, generator)
        tok = torch.where(t < lengths, forced[:, t], tok)
        tok = tok.masked_fill(state.finished, PAD)
        c, p = state.streams(tok)
        val[:, t], coord[:, t], pos[:, t] = tok, c, p
        state.advance(tok)
        if t + 1 < max_len and not bool(state.finished.all()):
            if use_cache:
                logits = model(tok[:, None], c[:, None], p[:, None], memory=memory, cache=cache)[:, -1]
            else:
                logits = model(val[:, : t + 1], coord[:, : t + 1], pos[:, : t + 1], memory=memory)[:, -1]
    out = []
    for row in val.tolist():
        end = row.index(2) + 1 if 2 in row else len(row)
        out.append(row[:end])
    return out


def primitive_batch(grammar: PrimitiveGrammar, seqs: list[list[int]], max_len: int | None = None) -> dict[str, torch.Tensor]:
    """Pad value sequences into ``{"val","coord","pos","ref_mask"}`` tensors (B, L).

    ``ref_mask`` marks the positions a constraint may reference (:meth:`PrimitiveGrammar.reference_offsets`).
    """
    L = max_len or max(len(s) for s in seqs)
    B = len(seqs)
    val = torch.zeros(B, L, dtype=torch.long)
    coord = torch.zeros_like(val)
    pos = torch.zeros_like(val)
    ref = torch.zeros(B, L, dtype=torch.bool)
    for i, s in enumerate(seqs):
        s = s[:L]
        c, p = grammar.streams(s)
        val[i, : len(s)] = torch.tensor(s)
        coord[i, : len(s)] = torch.tensor(c)
        pos[i, : len(s)] = torch.tensor(p)
        for j, tok in enumerate(s):
            t = tok - grammar.type_offset
            if 0 <= t < grammar.n_types:
                for off in grammar.reference_offsets(t):
                    if j + off < L:
                        ref[i, j + off] = True
    return {"val": val, "coord": coord, "pos": pos, "ref_mask": ref}


@torch.no_grad()
def infer_constraints(
    model: ConstraintModel,
    seqs: list[list[int]],
    *,
    top_p: float | None = None,
    temperature: float = 1.0,
    use_cache: bool = True,
    max_len: int | None = None,
    generator: torch.Generator | None = None,
    dedupe: bool = True,
    tolerance: float | None = None,
) -> list[list[tuple[int, list[int]]]]:
    """Constraints ``[(type_index, [token positions…]), …]`` for each primitive sequence in ``seqs``.

    Greedy by default (``top_p=None``); decoding follows :class:`ConstraintGrammar`, and pointers
    only reach referenceable positions of the given sketch. ``dedupe`` drops exact repeats
    (:func:`dedupe_constraints`) after decoding; pass ``False`` and call
    :func:`dedupe_constraints` yourself to count them.

    ``tolerance``: decode under a :class:`~quintet.sketch.models.residual_check.ResidualMask`, so
    that pointers complete only constraints the primitives meet within that share of the sketch's
    long side (a constraint that nothing could complete within it is still written).
    """
    model.eval()
    for s in seqs:
        n_prims = len(model.grammar.decode(s))  # raises on ungrammatical primitives
        if n_prims > model.config.max_primitives:
            raise QuintetError(
                f"a sketch of {n_prims} primitives exceeds the constraint model's {model.config.max_primitives}"
            )
    dev = model_device(model)
    batch = on_model_device(primitive_batch(model.grammar, seqs), model)
    if batch["val"].shape[1] > model.config.max_len:
        raise QuintetError(f"primitive sequence of {batch['val'].shape[1]} tokens exceeds max_len {model.config.max_len}")
    cg = model.cgrammar
    n = len(seqs)
    max_len = max_len or model.config.max_constraint_len
    enc = model.encode(batch["val"], batch["coord"], batch["pos"])
    ref_mask, enc_valid = batch["ref_mask"], batch["val"] != PAD
    tok = torch.full((n, max_len), PAD, dtype=torch.long, device=dev)
    coord = torch.zeros_like(tok)
    pos = torch.zeros_like(tok)
    tok[:, 0], coord[:, 0], pos[:, 0] = START, 1, 1
    state = ConstraintDecodeState(cg, ref_mask, max_len)
    bits = model.grammar.num_bins.bit_length() - 1
    geometry = None if tolerance is None else ResidualMask(seqs, cg, tolerance, bits)
    cache = model.new_cache(n, max_len) if use_cache else None
    logits = model(tok[:, :1], coord[:, :1], pos[:, :1], enc, ref_mask, enc_valid=enc_valid, cache=cache)[:, -1]
    for t in range(1, max_len):
        if bool(state.finished.all()):
            break
        allowed = state.allowed()
        if geometry is not None:
            allowed = geometry.restrict(allowed, state.cur, state.finished)
        nxt = _pick(logits.masked_fill(~allowed, float("-inf")), top_p, temperature, generator)
        nxt = nxt.masked_fill(state.finished, PAD)
        c, p = state.streams(nxt)
        tok[:, t], coord[:, t], pos[:, t] = nxt, c, p
        state.advance(nxt)
        if geometry is not None:
            geometry.advance(nxt)
        if t + 1 < max_len and not bool(state.finished.all()):
            if use_cache:
                logits = model(nxt[:, None], c[:, None], p[:, None], enc, ref_mask, enc_valid=enc_valid, cache=cache)[:, -1]
            else:
                logits = model(tok[:, : t + 1], coord[:, : t + 1], pos[:, : t + 1], enc, ref_mask, enc_valid=enc_valid)[:, -1]
    out = []
    for row in tok.tolist():
        if 2 not in row:  # ran out of room: close the sequence after the last complete constraint
            row = row + [2]
        try:
            out.append(cg.decode(row))
        except QuintetError:
            out.append(cg.decode(_trim_incomplete(row, cg)))
    return [dedupe_constraints(c, cg)[0] for c in out] if dedupe else out


#: Types whose references play the same role, so ``(a, b)`` and ``(b, a)`` are one constraint
#: (horizontal/vertical in their two-point form). Midpoint (point, curve), quadrant (point,
#: circle/arc), normal (line, curve) and offset (a curve and its offset copy) give their references
#: different roles and stay ordered (conservative: the solver tells those roles apart by the kind
#: of reference, so a reversed pair would be a repeat there too; none occurred in measurements).
SYMMETRIC_TYPES: frozenset[ConstraintType] = frozenset({
    ConstraintType.COINCIDENT, ConstraintType.CONCENTRIC, ConstraintType.EQUAL, ConstraintType.PARALLEL,
    ConstraintType.PERPENDICULAR, ConstraintType.TANGENT, ConstraintType.HORIZONTAL, ConstraintType.VERTICAL,
})


def dedupe_constraints(
    constraints: list[tuple[int, list[int]]], grammar: ConstraintGrammar
) -> tuple[list[tuple[int, list[int]]], int]:
    """``(constraints without exact repeats, number removed)``; the first occurrence is kept.

    Two constraints repeat when they have the same type and the same references — in any order
    for :data:`SYMMETRIC_TYPES`, in the same order otherwise (token positions name references one
    to one, so this compares the :class:`~quintet.sketch.constraints.Constraint` objects they
    decode to). The decoder (§3.2) has no memory of a set: it may point at the same references
    twice; a repeat adds no information but makes the solver's system redundant (SolveSpace then
    under-reports the degrees of freedom left). Repeats are removed after decoding rather than masked during
    it: masking would renormalise the model's distribution over the remaining tokens (changing
    what the model predicts next, not only dropping a repeat), whereas this keeps the decoded
    sequence the model chose and only filters the resulting set.
    """
    names = {t.value for t in SYMMETRIC_TYPES}
    symmetric = {k for k, name in enumerate(grammar.type_names) if name in names}
    seen: set[tuple[int, tuple[int, ...]]] = set()
    kept = []
    for k, refs in constraints:
        key = (k, tuple(sorted(refs)) if k in symmetric else tuple(refs))
        if key not in seen:
            seen.add(key)
            kept.append((k, refs))
    return kept, len(constraints) - len(kept)


def _trim_incomplete(row: list[int], cg) -> list[int]:
    """Drop trailing tokens until the sequence parses (only needed at the length limit)."""
    body = row[: row.index(2)]
    while len(body) > 1:
        try:
            cg.decode(body + [2])
            return body + [2]
        except QuintetError:
            body = body[:-1]
    return [START, 2]
