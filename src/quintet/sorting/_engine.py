"""Building the relaxed permutation matrix ``P`` without dense per-layer matrix products.

Notation (row-vector convention of the reference package): ``P_0 = I`` and every layer mixes
pairs of *columns*, ``P_l = P_{l-1} M_l``; for a comparator ``(a, b)`` with mixing weight ``u``
(``u = 0`` keeps, ``u = 1`` swaps)::

    P_l[:, a] = P[:, a] - u * (P[:, a] - P[:, b])      P_l[:, b] = P[:, b] + u * (P[:, a] - P[:, b])

One layer therefore costs ``O(n)`` per comparator, ``O(n^2)`` per layer, instead of the
``O(n^3)`` of ``P_{l-1} @ M_l``.  The backward pass is the same mixing applied to the incoming
gradient ``G`` (``M_l`` is symmetric), and ``dL/du = -sum_rows (G_a - G_b) * (P_a - P_b)``,
so it needs the column differences ``P_a - P_b`` of every layer.

The bitonic path additionally uses that after block ``k`` every row of ``P`` is supported on
its aligned group of ``2^(k+1)`` wires: ``P`` is kept block-diagonal, ``(B, N/g, g, g)``, and the
layers of block ``k`` cost ``O(N 2^(k+1))``; all views, no gathers.  The total is
``O(N^2 log N)`` rather than ``O(N^2 log^2 N)``.  Rows of ``P`` are independent, so it is built
in chunks of rows that stay in cache.  Its differences, ``B N ((K - 1) N + 1)`` elements in all
(112 MiB at ``N = 256``, batch 64; 576 MiB at ``N = 1024``, batch 16), are kept from the forward
when they fit ``_KEEP_BUDGET`` bytes; otherwise the backward recomputes one chunk's differences at
a time, which bounds its memory by ``_CHUNK_BUDGET`` for one extra pass over the layers.  Both
give the same ``P`` exactly.  The generic path keeps its differences.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["bitonic_permutation", "pairs_permutation", "PairPlan", "differentiable_grads"]


# elements of per-layer differences one row chunk may hold in the backward (20 MiB in float32)
_CHUNK_BUDGET = 5 * 2**20
# bytes of per-layer differences (all rows) the forward may keep for the backward
_KEEP_BUDGET = 2**27


def _diffs_per_row(size: int) -> int:
    """Elements of all layers' differences ``P_a - P_b`` per row of ``P`` and batch entry: ``g / 2``
    per layer of group ``g``, ``(K - 1) N + 1`` in all."""
    return sum(g // 2 for _, g, _ in _layers(size.bit_length() - 1))


def _diff_bytes(us: Sequence[torch.Tensor], size: int) -> int:
    """Bytes of all layers' differences for every row of ``P``."""
    return us[0].shape[0] * size * _diffs_per_row(size) * us[0].element_size()


def _chunk_rows(batch: int, size: int) -> int:
    """Rows of ``P`` per chunk: the largest power of two whose differences fit ``_CHUNK_BUDGET``."""
    per_row = batch * _diffs_per_row(size)
    rows = size
    while rows > 1 and rows * per_row > _CHUNK_BUDGET:
        rows //= 2
    return rows


def _expand(state: torch.Tensor, r0: int, g: int) -> torch.Tensor:
    """Block start for rows ``r0 ..`` of a chunk: groups of ``h = g / 2`` columns become groups of
    ``g``; a row keeps its values in the half of the new group its old group was."""
    batch, groups, rows, h = state.shape
    if groups * rows >= g:  # whole groups: two diagonal (h, h) blocks per new group
        new = state.new_zeros(batch, groups // 2, g, g)
        old = state.view(batch, groups // 2, 2, h, h)
        new[:, :, :h, :h] = old[:, :, 0]
        new[:, :, h:, h:] = old[:, :, 1]
        return new
    half = (r0 % g) // h
    new = state.new_zeros(batch, 1, rows, g)
    new[..., half * h:(half + 1) * h] = state
    return new


def _contract(g_state: torch.Tensor, r0: int, g: int) -> torch.Tensor:
    """Adjoint of :func:`_expand`: keep the gradient of the entries the block start had."""
    batch, groups, rows, _ = g_state.shape
    h = g // 2
    if groups * rows >= g:
        blocks = torch.stack([g_state[:, :, :h, :h], g_state[:, :, h:, h:]], dim=2)
        return blocks.reshape(batch, 2 * groups, h, h)
    half = (r0 % g) // h
    return g_state[..., half * h:(half + 1) * h]


def _layer_views(state: torch.Tensor, u: torch.Tensor, r0: int, g: int, m: int):
    """Column halves ``(pa, pb)`` of every comparator of stride ``m`` and the chunk's weights."""
    batch, groups, rows, _ = state.shape
    s = g // (2 * m)
    view = state.view(batch, groups, rows, s, 2, m)
    first = r0 // g
    uu = u.view(batch, u.shape[1] // (s * m), 1, s, m)[:, first:first + groups]
    return view[..., 0, :], view[..., 1, :], uu


def _layers(blocks: int):
    """``(layer index, group size g = 2^(block + 1), stride m)`` of the bitonic network, in order."""
    li = 0
    for block in range(blocks):
        for step in range(block + 1):
            yield li, 2 ** (block + 1), 2 ** (block - step)
            li += 1


def _chunk_forward(us, size: int, r0: int, rows: int, diffs: list | None) -> torch.Tensor:
    """Rows ``r0 .. r0 + rows`` of ``P``, ``(B, groups, rows per group, g)`` per block; appends each
    layer's ``P_a - P_b`` to ``diffs`` when given (recomputation for the backward)."""
    state = us[0].new_ones(us[0].shape[0], rows, 1, 1)
    for li, g, m in _layers(size.bit_length() - 1):
        if m == g // 2:
            state = _expand(state, r0, g)
        pa, pb, u = _layer_views(state, us[li], r0, g, m)
        d = pa - pb
        pa.addcmul_(u, d, value=-1.0)
        pb.addcmul_(u, d)
        if diffs is not None:
            diffs.append(d)
    return state


def _bitonic_spec(size: int, device: torch.device) -> list[tuple]:
    """Per layer ``(a, b, sa, sb)``: all ``N / 2`` comparators of the bitonic network in the order of
    their lower wire (the order of the weights ``u_l``), and no fixed swaps."""
    none = torch.zeros(0, dtype=torch.long, device=device)
    spec = []
    for _, _, m in _layers(size.bit_length() - 1):
        a = (torch.arange(size // (2 * m), device=device).unsqueeze(1) * 2 * m
             + torch.arange(m, device=device)).flatten()
        spec.append((a, a + m, none, none))
    return spec


def differentiable_grads(spec: Sequence[tuple], size: int, us: Sequence[torch.Tensor], grad: torch.Tensor) -> list:
    """``dL/du_l`` for ``P`` built from ``us`` with the layers ``spec`` (``(a, b, sa, sb)`` per layer),
    computed with out-of-place operations under autograd so that it can be differentiated again
    (double backward).  Costs ``O(N^2)`` memory per layer; used only when a graph of the backward
    is requested."""
    with torch.enable_grad():
        ref = us[0]
        mat = torch.eye(size, dtype=ref.dtype, device=ref.device).expand(ref.shape[0], size, size)
        for (a, b, sa, sb), u in zip(spec, us):
            if len(a):
                ca, cb = mat.index_select(-1, a), mat.index_select(-1, b)
                d, w = ca - cb, u.unsqueeze(1)
                mat = mat.index_copy(-1, a, ca - w * d).index_copy(-1, b, cb + w * d)
            if len(sa):
                mat = mat.index_copy(-1, sa, mat.index_select(-1, sb)).index_copy(-1, sb, mat.index_select(-1, sa))
        wanted = [i for i, u in enumerate(us) if u.requires_grad and u.numel()]
        found = torch.autograd.grad(mat, [us[i] for i in wanted], grad, create_graph=True, allow_unused=True)
    grads: list[torch.Tensor | None] = [None] * len(us)
    for i, g in zip(wanted, found):
        grads[i] = g
    return grads


class _BitonicP(torch.autograd.Function):
    """``P`` of a full bitonic network on ``N = 2^K`` wires from per-layer weights ``u_l (B, N/2)``.

    Rows of ``P`` evolve independently (``P_l[r] = P_{l-1}[r] M_l``), so ``P`` is built in chunks
    of rows.  With ``keep`` each chunk's per-layer differences are saved for the backward;
    without, only the weights are, and the backward recomputes one chunk's differences at a time
    (memory bounded by ``_CHUNK_BUDGET``, one extra pass over the layers).
    """

    @staticmethod
    def forward(ctx, size: int, rows: int, keep: bool, *us: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        batch = us[0].shape[0]
        out = us[0].new_empty(batch, size, size)
        keep = keep and any(ctx.needs_input_grad[3:])
        ctx.chunk_diffs = []
        for r0 in range(0, size, rows):
            diffs: list[torch.Tensor] | None = [] if keep else None
            out[:, r0:r0 + rows] = _chunk_forward(us, size, r0, rows, diffs).view(batch, rows, size)
            ctx.chunk_diffs.append(diffs)
        ctx.size, ctx.rows = size, rows
        ctx.save_for_backward(*us)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        us = ctx.saved_tensors
        size, rows = ctx.size, ctx.rows
        if torch.is_grad_enabled():  # create_graph: a backward that is itself differentiable
            return (None, None, None, *differentiable_grads(_bitonic_spec(size, grad.device), size, us, grad))
        batch = grad.shape[0]
        layers = list(_layers(size.bit_length() - 1))
        grads = [u.new_zeros(batch, size // 2) if ctx.needs_input_grad[li + 3] else None
                 for li, u in enumerate(us)]
        for r0, kept in zip(range(0, size, rows), ctx.chunk_diffs):
            diffs: list[torch.Tensor | None] = [] if kept is None else list(kept)
            if kept is None:
                _chunk_forward(us, size, r0, rows, diffs)
            g_state = grad[:, r0:r0 + rows].reshape(batch, 1, rows, size).clone(memory_format=torch.contiguous_format)
            for li, g, m in reversed(layers):
                ga, gb, u = _layer_views(g_state, us[li], r0, g, m)
                e = ga - gb
                ga.addcmul_(u, e, value=-1.0)
                gb.addcmul_(u, e)
                if grads[li] is not None:
                    # dL/du = -sum over rows of e * d, reusing e's memory
                    first = r0 // g
                    target = grads[li].view(batch, size // g, g // (2 * m), m)[:, first:first + e.shape[1]]
                    target.sub_(e.mul_(diffs[li]).sum(2))
                diffs[li] = None
                if m == g // 2 and g > 2:  # the block's first layer: back to its start
                    g_state = _contract(g_state, r0, g)
        return (None, None, None, *grads)


def bitonic_permutation(size: int, us: Sequence[torch.Tensor], rows: int | None = None,
                        keep: bool | None = None) -> torch.Tensor:
    """``P (B, N, N)`` for the bitonic network on ``N = size`` wires; ``us[l]``: ``(B, N/2)``
    mixing weights of layer ``l`` in the order of the comparators' lower wire; ``rows``: rows of
    ``P`` per chunk (a power of two dividing ``N``; default from the memory budget); ``keep``:
    save the per-layer differences for the backward instead of recomputing them (default: when
    they fit ``_KEEP_BUDGET``)."""
    rows = _chunk_rows(us[0].shape[0], size) if rows is None else rows
    keep = _diff_bytes(us, size) <= _KEEP_BUDGET if keep is None else keep
    return _BitonicP.apply(size, rows, keep, *us)


class PairPlan:
    """Index tensors of a generic layout on one device: per layer the soft comparators
    ``(a, b)`` and the fixed swaps ``(sa, sb)``; ``adjacent`` layers (``b = a + 1`` on a run of
    consecutive pairs, as in odd-even) use views instead of gathers."""

    def __init__(self, size: int, layers: Sequence[tuple], device: torch.device):
        self.size = size
        self.layers = []
        for a, b, sa, sb in layers:
            adjacent = None
            if len(a) and (b - a == 1).all() and (len(a) == 1 or ((a[1:] - a[:-1]) == 2).all()):
                adjacent = (int(a[0]), len(a))
            self.layers.append((
                torch.as_tensor(a, device=device), torch.as_tensor(b, device=device),
                torch.as_tensor(sa, device=device), torch.as_tensor(sb, device=device), adjacent,
            ))


def _split(mat: torch.Tensor, a, b, adjacent):
    if adjacent is not None:
        start, count = adjacent
        view = mat[..., start:start + 2 * count].unflatten(-1, (count, 2))
        return view[..., 0], view[..., 1], True
    return mat.index_select(-1, a), mat.index_select(-1, b), False


def _mix_(mat: torch.Tensor, u: torch.Tensor, a, b, adjacent) -> torch.Tensor:
    """Mix the column pairs of ``mat (B, R, N)`` in place; return ``col_a - col_b`` (before)."""
    ca, cb, is_view = _split(mat, a, b, adjacent)
    d = ca - cb
    u = u.unsqueeze(1)
    if is_view:
        ca.addcmul_(u, d, value=-1.0)
        cb.addcmul_(u, d)
    else:
        mat.index_copy_(-1, a, ca.addcmul_(u, d, value=-1.0))
        mat.index_copy_(-1, b, cb.addcmul_(u, d))
    return d


def _swap_(mat: torch.Tensor, sa, sb) -> None:
    if len(sa):
        ca = mat.index_select(-1, sa)
        mat.index_copy_(-1, sa, mat.index_select(-1, sb))
        mat.index_copy_(-1, sb, ca)


class _PairsP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan: PairPlan, *us: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ref = us[0]
        batch, size = ref.shape[0], plan.size
        mat = torch.eye(size, dtype=ref.dtype, device=ref.device).expand(batch, size, size).clone()
        diffs = []
        for (a, b, sa, sb, adjacent), u in zip(plan.layers, us):
            diffs.append(_mix_(mat, u, a, b, adjacent) if len(a) else None)
            _swap_(mat, sa, sb)
        ctx.plan, ctx.diffs = plan, diffs
        ctx.save_for_backward(*us)
        return mat

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        us = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a backward that is itself differentiable
            spec = [layer[:4] for layer in ctx.plan.layers]
            return (None, *differentiable_grads(spec, ctx.plan.size, us, grad))
        g_mat = grad.clone()
        grads: list[torch.Tensor | None] = [None] * len(us)
        for li in reversed(range(len(us))):
            a, b, sa, sb, adjacent = ctx.plan.layers[li]
            _swap_(g_mat, sa, sb)
            if len(a):
                e = _mix_(g_mat, us[li], a, b, adjacent)
                grads[li] = e.mul_(ctx.diffs[li]).sum(1).neg_()
        return (None, *grads)


def pairs_permutation(plan: PairPlan, us: Sequence[torch.Tensor]) -> torch.Tensor:
    """``P (B, N, N)`` of a generic layout; ``us[l]``: ``(B, k_l)`` weights of layer ``l``'s
    soft comparators (an empty ``(B, 0)`` tensor for a layer with none)."""
    return _PairsP.apply(plan, *us)
