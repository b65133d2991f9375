"""Ranking supervision loss (ICML 2021 Sec. 5, Fig. 1): binary cross-entropy between the
relaxed permutation matrix ``P`` and the true permutation matrix ``Q``."""

from __future__ import annotations

import torch

from quintet.core.errors import QuintetError

__all__ = ["ranking_loss", "ranks_from_scores", "permutation_from_ranks"]


def ranks_from_scores(scores: torch.Tensor) -> torch.Tensor:
    """0-based ranks (0 = smallest) of ``scores (batch, n)`` -> ``int64 (batch, n)``; equal scores
    are ranked in their order of appearance (a stable sort)."""
    return torch.argsort(torch.argsort(scores, dim=-1, stable=True), dim=-1)


def permutation_from_ranks(ranks: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``Q (batch, n, n)`` with ``Q[b, i, j] = 1`` iff input ``i`` has rank ``j`` (the layout of
    ``P``: row = input, column = sorted position)."""
    if ranks.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise QuintetError(f"ranks must be an integer tensor of 0-based ranks, got {ranks.dtype}")
    n = ranks.shape[-1]
    if ranks.numel() and (int(ranks.min()) < 0 or int(ranks.max()) >= n):
        raise QuintetError(f"ranks must lie in 0..{n - 1}, got values in {int(ranks.min())}..{int(ranks.max())}")
    q = torch.nn.functional.one_hot(ranks.long(), n).to(dtype)
    if not bool((q.sum(-2) == 1).all()):
        raise QuintetError("ranks must be a permutation of 0..n-1 in every row (ties are not allowed)")
    return q


def ranking_loss(P: torch.Tensor, ranks: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``BCE(P, Q)`` over all ``n x n`` entries, as in the papers' experiments.

    ``P``: ``(batch, n, n)`` from :func:`diffsort`; ``ranks``: ``(batch, n)`` 0-based true ranks of
    the inputs (e.g. :func:`ranks_from_scores` of the true values).  ``P`` is clamped to ``[0, 1]``
    against rounding.
    """
    if P.dim() != 3 or P.shape[-1] != P.shape[-2]:
        raise QuintetError(f"P must have shape (batch, n, n), got {tuple(P.shape)}")
    if ranks.shape != P.shape[:2]:
        raise QuintetError(f"ranks must have shape {tuple(P.shape[:2])} to match P, got {tuple(ranks.shape)}")
    if reduction not in ("mean", "sum", "none"):
        raise QuintetError(f"unknown reduction {reduction!r}; expected one of: mean, none, sum")
    q = permutation_from_ranks(ranks, P.dtype)
    return torch.nn.functional.binary_cross_entropy(P.clamp(0.0, 1.0), q, reduction=reduction)
