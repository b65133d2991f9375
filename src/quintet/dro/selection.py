"""Model selection without group labels (paper Section 4.3) and group-wise evaluation.

Three rules pick one checkpoint from a training run:

* ``average``: the best average validation accuracy (what ERM practice does);
* ``oracle``: the best worst-group validation accuracy (needs group labels: an upper reference);
* ``minmax``: the paper's rule. Every adversary saved during training re-weights the validation
  set (``w = N softmax(r)`` over the whole set). Adversaries whose ``KL(q || p_hat) > log 10`` are
  rejected as too far from the data; the pool starts with the uniform weighting. The chosen
  checkpoint has the smallest worst-case (over the pool) weighted validation error.
"""

from __future__ import annotations

import math

import torch

from quintet.core.errors import QuintetError

__all__ = ["group_accuracies", "worst_group_accuracy", "adversary_pool", "minmax_select", "select_checkpoint", "RULES"]

RULES = ("average", "minmax", "oracle")
KL_THRESHOLD = math.log(10.0)


def group_accuracies(correct: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Accuracy per group ``(n_groups,)`` from ``correct: bool (N,)``; NaN for an empty group."""
    counts = torch.bincount(groups, minlength=n_groups).double()
    hits = torch.bincount(groups, weights=correct.double(), minlength=n_groups)
    return torch.where(counts > 0, hits / counts.clamp_min(1), torch.full_like(counts, float("nan")))


def worst_group_accuracy(correct: torch.Tensor, groups: torch.Tensor, n_groups: int) -> float:
    """The lowest accuracy over the non-empty groups (the paper's robust accuracy, Section 4).

    ``correct: bool (N,)``, ``groups: int64 (N,)`` in ``0..n_groups-1``.
    """
    accs = group_accuracies(correct, groups, n_groups)
    return float(accs[~accs.isnan()].min())


def adversary_pool(log_ratios: torch.Tensor, kl_threshold: float = KL_THRESHOLD) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised validation weights of the accepted adversaries, uniform first (paper
    Section 4.3: adversaries with ``KL(q || p_hat) > log 10`` are rejected).

    ``log_ratios: (A, N)`` (one row per saved adversary) -> ``(weights (1 + A', N), kls (A,))`` where
    each weight row sums to 1 and ``A'`` counts the adversaries with ``KL <= kl_threshold``.
    """
    if log_ratios.dim() != 2:
        raise QuintetError(f"log_ratios must be (adversaries, examples), got shape {tuple(log_ratios.shape)}")
    n = log_ratios.shape[1]
    log_q = torch.log_softmax(log_ratios.double(), dim=1)
    kls = (log_q.exp() * (log_q + math.log(n))).sum(1)
    accepted = log_q[kls <= kl_threshold].exp()
    uniform = torch.full((1, n), 1.0 / n, dtype=torch.float64)
    return torch.cat([uniform, accepted]), kls


def minmax_select(errors: torch.Tensor, log_ratios: torch.Tensor | None, kl_threshold: float = KL_THRESHOLD) -> tuple[int, torch.Tensor]:
    """Index of the checkpoint with the smallest worst weighted validation error (the paper's
    minmax rule, Section 4.3).

    ``errors: (C, N)`` 0/1 (or per-example losses) of each checkpoint on the validation set;
    ``log_ratios: (A, N)`` of the saved adversaries (or ``None``: the pool is just uniform, which
    reduces to the ``average`` rule). Returns (index, robust errors ``(C,)``).
    """
    n = errors.shape[1]
    if log_ratios is None or log_ratios.numel() == 0:
        log_ratios = torch.zeros(0, n)
    if log_ratios.shape[1] != n:
        raise QuintetError(f"errors cover {n} validation examples but log_ratios cover {log_ratios.shape[1]}")
    weights, _ = adversary_pool(log_ratios, kl_threshold)
    robust = (errors.double() @ weights.T).max(dim=1).values  # (C,)
    return int(torch.argmin(robust)), robust


def select_checkpoint(rule: str, valid_acc: list[float], valid_worst: list[float],
                      errors: torch.Tensor | None = None, log_ratios: torch.Tensor | None = None) -> int:
    """The checkpoint index chosen by ``rule`` (one of ``RULES``); ties go to the earliest."""
    from quintet.core.errors import check_choice

    check_choice("selection rule", rule, RULES)
    if rule == "average":
        return int(torch.tensor(valid_acc).argmax())
    if rule == "oracle":
        return int(torch.tensor(valid_worst).argmax())
    if errors is None:
        raise QuintetError("the minmax rule needs the validation errors of every checkpoint")
    return minmax_select(errors, log_ratios)[0]
