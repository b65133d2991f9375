"""Relaxed Levenshtein distance between strings of class probabilities (Petersen et al.,
NeurIPS 2021, Sec. 5): the dynamic programme of :func:`~quintet.algovision.programs.edit_distance_program`
as a loop over table cells, plus the exact distance for integer strings."""

from __future__ import annotations

import torch

from quintet.algovision import relaxations as R
from quintet.core.errors import QuintetError

__all__ = ["soft_edit_distance", "levenshtein"]


def soft_edit_distance(a: torch.Tensor, b: torch.Tensor, beta: float, hard: bool = False) -> torch.Tensor:
    """Expected edit distance ``(batch,)`` of ``a: (batch, la, classes)`` and ``b: (batch, lb, classes)``
    (rows: probability vectors).  A cell copies its diagonal neighbour with probability
    ``<a[i], b[j]>`` and otherwise pays 1 plus the soft minimum of its three neighbours."""
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[2]:
        raise QuintetError(f"soft_edit_distance: expected (batch, la, classes) and (batch, lb, classes) with equal "
                           f"batch and classes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not beta > 0:
        raise QuintetError(f"soft_edit_distance: beta must be > 0, got {beta}")
    same = torch.einsum("bic,bjc->bij", a, b).clamp(0.0, 1.0)
    if hard:
        same = (same > 0.5).to(a.dtype)
    la, lb = a.shape[1], b.shape[1]
    prev = [torch.full_like(a[:, 0, 0], float(j)) for j in range(lb + 1)]
    for i in range(1, la + 1):
        row = [torch.full_like(prev[0], float(i))]
        for j in range(1, lb + 1):
            up, left, diag = prev[j], row[j - 1], prev[j - 1]
            best = torch.minimum(torch.minimum(up, left), diag) if hard else R.soft_min(up, left, diag, beta=beta)
            row.append(torch.lerp(1.0 + best, diag, same[:, i - 1, j - 1]))
        prev = row
    return prev[lb]


def levenshtein(a: list[int], b: list[int]) -> int:
    """The exact edit distance of two integer sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = [i]
        for j, y in enumerate(b, 1):
            row.append(prev[j - 1] if x == y else 1 + min(prev[j], row[j - 1], prev[j - 1]))
        prev = row
    return prev[-1]
