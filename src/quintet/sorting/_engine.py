"""Building the relaxed permutation matrix ``P`` without dense per-layer matrix products.

Notation (row-vector convention of the reference package): ``P_0 = I`` and every layer mixes
pairs of *columns*, ``P_l = P_{l-1} M_l``; for a comparator ``(a, b)`` with mixing weight ``u``
(``u = 0`` keeps, ``u = 1`` swaps)::

    P_l[:, a] = P[:, a] - u * (P[:, a] - P[:, b])      P_l[:, b] = P[:, b] + u * (P[:, a] - P[:, b])

One layer therefore costs ``O(n)`` per comparator, ``O(n^2)`` per layer, instead of the
``O(n^3)`` of ``P_{l-1} @ M_l``.  The backward pass is the same mixing applied to the incoming
gradient ``G`` (``M_l`` is symmetric), and ``dL/du = -sum_rows (G_a - G_b) * (P_a - P_b)``,
so only the column differences ``P_a - P_b`` are kept per layer (half a matrix, not the
reference's two half matrices plus products).

The bitonic path additionally uses that after block ``k`` every row of ``P`` is supported on
its aligned group of ``2^(k+1)`` wires: ``P`` is kept block-diagonal, ``(B, N/g, g, g)``, and the
layers of block ``k`` cost ``O(N 2^(k+1))``; all views, no gathers.  The total is
``O(N^2 log N)`` rather than ``O(N^2 log^2 N)``.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["bitonic_permutation", "pairs_permutation", "PairPlan"]


class _BitonicP(torch.autograd.Function):
    """``P`` of a full bitonic network on ``N = 2^K`` wires from per-layer weights ``u_l (B, N/2)``."""

    @staticmethod
    def forward(ctx, size: int, *us: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        batch = us[0].shape[0]
        blocks = size.bit_length() - 1
        state = us[0].new_ones(batch, size, 1, 1)
        diffs: list[torch.Tensor] = []
        li = 0
        for block in range(blocks):
            g, h = 2 ** (block + 1), 2**block
            q = size // g
            new = state.new_zeros(batch, q, g, g)
            old = state.view(batch, q, 2, h, h)
            new[:, :, :h, :h] = old[:, :, 0]
            new[:, :, h:, h:] = old[:, :, 1]
            state = new
            for step in range(block + 1):
                m = 2 ** (block - step)
                s = g // (2 * m)
                view = state.view(batch, q, g, s, 2, m)
                pa, pb = view[..., 0, :], view[..., 1, :]
                d = pa - pb
                u = us[li].view(batch, q, 1, s, m)
                pa.addcmul_(u, d, value=-1.0)
                pb.addcmul_(u, d)
                diffs.append(d)
                li += 1
        ctx.size = size
        ctx.diffs = diffs
        ctx.save_for_backward(*us)
        return state.view(batch, size, size)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        us = ctx.saved_tensors
        diffs = ctx.diffs
        size = ctx.size
        batch = grad.shape[0]
        blocks = size.bit_length() - 1
        g_state = grad.reshape(batch, 1, size, size).clone()
        grads: list[torch.Tensor | None] = [None] * len(us)
        li = len(us) - 1
        for block in reversed(range(blocks)):
            g, h = 2 ** (block + 1), 2**block
            q = size // g
            for step in reversed(range(block + 1)):
                m = 2 ** (block - step)
                s = g // (2 * m)
                view = g_state.view(batch, q, g, s, 2, m)
                ga, gb = view[..., 0, :], view[..., 1, :]
                e = ga - gb
                u = us[li].view(batch, q, 1, s, m)
                ga.addcmul_(u, e, value=-1.0)
                gb.addcmul_(u, e)
                if ctx.needs_input_grad[li + 1]:
                    # -sum over rows of e * d, reusing e's memory
                    grads[li] = e.mul_(diffs[li]).sum(2).neg_().reshape(batch, size // 2)
                li -= 1
            if block > 0:
                g_state = torch.stack([g_state[:, :, :h, :h], g_state[:, :, h:, h:]], dim=2)
                g_state = g_state.reshape(batch, 2 * q, h, h)
        return (None, *grads)


def bitonic_permutation(size: int, us: Sequence[torch.Tensor]) -> torch.Tensor:
    """``P (B, N, N)`` for the bitonic network on ``N = size`` wires; ``us[l]``: ``(B, N/2)``
    mixing weights of layer ``l`` in the order of the comparators' lower wire."""
    return _BitonicP.apply(size, *us)


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
