"""The relaxed bubble sort of :func:`~quintet.algovision.programs.bubble_sort_program` as a plain
loop over the columns of the array: the same outputs and gradients, without interpreting the
program (Petersen et al., NeurIPS 2021, Sec. 5.1)."""

from __future__ import annotations

import torch

from quintet.core.errors import QuintetError

__all__ = ["relaxed_bubble_sort"]


def relaxed_bubble_sort(x: torch.Tensor, beta: float, hard: bool = False, epsilon: float = 1e-5,
                        max_iter: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Relaxed bubble sort of ``x: (batch, n)``; returns the sorted array ``(batch, n)`` and the
    expected number of swaps ``(batch,)``.

    Each comparison swaps with probability ``sigmoid(beta (a - b))`` (both outcomes blended); a
    pass repeats while a swap happened, and the result is the expectation over the number of
    passes.  A comparison whose probability is at most ``epsilon`` for the whole batch is skipped,
    as the program's ``If`` does.  ``hard=True`` runs the discrete algorithm.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise QuintetError(f"relaxed_bubble_sort: expected a float tensor (batch, n), got "
                           f"{getattr(x, 'shape', type(x).__name__)}")
    if not beta > 0:
        raise QuintetError(f"relaxed_bubble_sort: beta must be > 0, got {beta}")
    cols = list(x.unbind(1))
    ones = torch.ones_like(cols[0])
    swaps = torch.zeros_like(cols[0])
    go = ones
    total_array, total_swaps = 0.0, 0.0
    length, passes = x.shape[1] - 1, 0
    while passes < max_iter and float(go.detach().max()) > epsilon:
        swapped = torch.zeros_like(ones)
        for i in range(length):
            a, b = cols[i], cols[i + 1]
            p = torch.sigmoid((a - b) * beta)
            if float(p.detach().max()) <= epsilon:
                continue
            if hard:
                p = (p > 0.5).to(p.dtype)
            cols[i], cols[i + 1] = torch.lerp(a, b, p), torch.lerp(b, a, p)
            swapped = torch.lerp(swapped, ones, p)
            swaps = swaps + p
        length -= 1
        passes += 1
        stop = go * (1 - ((swapped > 0.5).to(swapped.dtype) if hard else swapped))
        go = go - stop
        total_array = total_array + stop.unsqueeze(1) * torch.stack(cols, 1)
        total_swaps = total_swaps + stop * swaps
    return total_array + go.unsqueeze(1) * torch.stack(cols, 1), total_swaps + go * swaps
