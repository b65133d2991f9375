"""Model selection without group labels (paper Section 4.3) and group-wise evaluation.

Three rules pick one checkpoint from a training run:

* ``average``: the best average validation accuracy (what ERM practice does);
* ``oracle``: the best worst-group validation accuracy (needs group labels: an upper reference);
* ``minmax``: the paper's rule. Every adversary saved during training re-weights the validation
  set (``w = N softmax(r)`` over the whole set). Adversaries whose ``KL(q || p_hat) > log 10`` are
  rejected as too far from the data; the pool starts with the uniform weighting. The chosen
  checkpoint has the smallest worst-case (over the pool) weighted validation error.
* ``greedy-minmax``: the authors' in-training version of the same rule (``pdro_main.py``,
  ``GreedyMinMaxStopping``): after each epoch the pool gains that epoch's adversary (if accepted)
  and the epoch's checkpoint replaces the best so far when its worst-case error under the pool as it
  stands is strictly lower than the best's. Later adversaries never revisit earlier decisions.

Across runs (seeds aside: hyper-parameters, methods) :func:`global_minmax_select` is the authors'
``pdro_compare_models.py``: every run's accepted adversaries form one pool and the run whose
selected checkpoint has the smallest worst-case error under it wins.
"""

from __future__ import annotations

import math

import torch

from quintet.core.errors import QuintetError

__all__ = ["group_accuracies", "worst_group_accuracy", "adversary_pool", "minmax_select", "select_checkpoint",
           "reverse_kl", "greedy_minmax_select", "global_minmax_select", "RULES"]

RULES = ("average", "minmax", "greedy-minmax", "oracle")
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


def reverse_kl(log_weights: torch.Tensor) -> torch.Tensor:
    """The authors' adversary filter score ``mean(w log w)`` of log-weights ``(A, N)`` -> ``(A,)``
    (``KL(q || p_hat)`` when the weights average to 1; NaN rows score ``inf``)."""
    lw = log_weights.double()
    score = (lw.exp() * lw).mean(-1)
    return torch.nan_to_num(score, nan=math.inf)


def _worst_case(errors: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """Worst weighted error ``max_a mean(w_a * e)`` of each row of ``errors (C, N)`` under the
    log-weights ``pool (A, N)`` -> ``(C,)``."""
    return (errors.double() @ pool.double().exp().T / errors.shape[1]).max(dim=1).values


def greedy_minmax_select(errors: torch.Tensor, log_weights: torch.Tensor | None,
                         kl_threshold: float = KL_THRESHOLD) -> int:
    """The authors' in-training minmax rule: the epoch kept after a greedy pass (see module doc).

    ``errors: (C, N)`` validation errors per epoch; ``log_weights: (C, N)`` the log-weights
    ``log w`` (averaging to 1 in ``w``) of the adversary saved at each epoch, or ``None`` for a
    method without one (the pool stays uniform: ERM, Group DRO). Returns the epoch index.
    """
    n = errors.shape[1]
    if log_weights is not None and log_weights.shape != errors.shape:
        raise QuintetError(f"log_weights {tuple(log_weights.shape)} must match errors {tuple(errors.shape)}")
    pool = [torch.zeros(n, dtype=torch.float64)]
    best = None
    for t in range(errors.shape[0]):
        if log_weights is not None and float(reverse_kl(log_weights[t : t + 1])[0]) <= kl_threshold:
            pool.append(log_weights[t].double())
        stacked = torch.stack(pool)
        if best is None or float(_worst_case(errors[t : t + 1], stacked)[0]) < float(
                _worst_case(errors[best : best + 1], stacked)[0]):
            best = t
    return int(best)


def global_minmax_select(errors: torch.Tensor, log_weights: torch.Tensor,
                         kl_threshold: float = KL_THRESHOLD) -> tuple[int, int]:
    """Cross-run minmax (``pdro_compare_models.py``): ``errors: (M, N)`` of each run's selected
    checkpoint, ``log_weights: (K, N)`` every run's adversaries (uniform rows included). Rows with
    reverse KL above the threshold are dropped. Returns (winning run, its worst adversary)."""
    if log_weights.dim() != 2 or log_weights.shape[1] != errors.shape[1]:
        raise QuintetError(f"log_weights must be (adversaries, {errors.shape[1]}), got {tuple(log_weights.shape)}")
    keep = reverse_kl(log_weights) <= kl_threshold
    if not bool(keep.any()):
        raise QuintetError("no adversary passes the KL filter; include the uniform weighting (zeros)")
    losses = log_weights[keep].double().exp() @ errors.double().T / errors.shape[1]  # (K', M)
    best = int(losses.max(0).values.argmin())
    return best, int(torch.nonzero(keep).flatten()[int(losses[:, best].argmax())])


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
        raise QuintetError(f"the {rule} rule needs the validation errors of every checkpoint")
    if rule == "greedy-minmax":
        return greedy_minmax_select(errors, log_ratios)
    return minmax_select(errors, log_ratios)[0]
