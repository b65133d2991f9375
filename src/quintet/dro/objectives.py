"""Robust training objectives: ratio DRO (Michel, Hashimoto & Neubig, ICLR 2022), CVaR, Group DRO.

Every function takes per-example losses ``losses: (B,)`` (``reduction="none"``) and returns
scalars, so any model and loss can be made robust. Notation follows the paper (Section 3):
the adversary outputs a log-ratio ``r_psi(x, y)`` and the batch weights are
``w_i = B * softmax(r)_i`` (mini-batch normalisation, Eq. 5), so that ``mean(w) = 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from quintet.core.errors import QuintetError

__all__ = [
    "batch_weights",
    "batch_kl",
    "ratio_dro_objectives",
    "ratio_dro_value",
    "self_normalized_objectives",
    "cvar_loss",
    "GroupDRO",
    "group_mean_losses",
    "uniform_group_loss",
    "check_alpha",
    "check_tau",
]


def check_tau(tau: float) -> float:
    """The KL temperature must be positive (``tau > 0``)."""
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise QuintetError(f"tau must be a positive number (KL penalty temperature), got {tau!r}")
    return float(tau)


def check_alpha(alpha: float) -> float:
    """The CVaR level must lie in ``(0, 1]``."""
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0 < alpha <= 1):
        raise QuintetError(f"alpha must lie in (0, 1] (fraction of worst examples kept by CVaR), got {alpha!r}")
    return float(alpha)


def batch_weights(log_ratios: torch.Tensor) -> torch.Tensor:
    """Mini-batch normalised likelihood ratios ``w = B * softmax(r)`` (paper Eq. 5).

    ``log_ratios: (B,)`` -> ``(B,)``, non-negative, summing to ``B``.
    """
    if log_ratios.dim() != 1 or log_ratios.numel() == 0:
        raise QuintetError(f"log_ratios must be a non-empty 1-D tensor, got shape {tuple(log_ratios.shape)}")
    return log_ratios.numel() * torch.softmax(log_ratios, dim=0)


def batch_kl(log_ratios: torch.Tensor) -> torch.Tensor:
    """``KL(q || p_hat)`` of the batch distribution ``q = softmax(r)`` to the uniform empirical one.

    Equals ``mean(w log w)`` with ``w = B softmax(r)`` (paper Eq. 6); ``(B,)`` -> scalar, >= 0.
    """
    log_q = torch.log_softmax(log_ratios, dim=0)
    return (log_q.exp() * (log_q + math.log(log_ratios.numel()))).sum()


def ratio_dro_value(losses: torch.Tensor, log_ratios: torch.Tensor, tau: float = 0.01) -> torch.Tensor:
    """The game's value ``mean(w * losses) - tau * KL(q || p_hat)`` (paper Eq. 7), differentiable in both.

    The model minimises it in ``theta`` (through ``losses``), the adversary maximises it in ``psi``
    (through ``log_ratios``); :func:`ratio_dro_objectives` splits it into the two players' losses.
    """
    check_tau(tau)
    return (batch_weights(log_ratios) * losses).mean() - tau * batch_kl(log_ratios)


def _check_same_shape(losses: torch.Tensor, log_ratios: torch.Tensor) -> None:
    if losses.shape != log_ratios.shape:
        raise QuintetError(f"losses {tuple(losses.shape)} and log_ratios {tuple(log_ratios.shape)} differ in shape")


def _reduce(weighted: torch.Tensor, reduction: str) -> torch.Tensor:
    """``mean`` (ours) or ``sum`` (the authors' code: ``(w * l).sum()``, ``B`` times the mean)."""
    if reduction == "mean":
        return weighted.mean()
    if reduction == "sum":
        return weighted.sum()
    raise QuintetError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def ratio_dro_objectives(
    losses: torch.Tensor, log_ratios: torch.Tensor, tau: float = 0.01, reduction: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two players' losses for one mini-batch (paper Eq. 7, simultaneous updates).

    * model: ``mean(w.detach() * losses)`` — the re-weighted risk, minimised in ``theta``;
    * adversary: ``-(mean(w * losses.detach()) - tau * KL(q || p_hat))`` — its negated
      objective, minimised in ``psi`` (i.e. the adversary maximises the penalised risk).

    ``losses, log_ratios: (B,)``. Back-propagate both and step both optimisers on the same batch.
    ``reduction="sum"`` sums the model's weighted losses as the authors' code does (the adversary's
    loss stays a mean there too); with Adam only gradient clipping sees the difference.
    """
    check_tau(tau)
    _check_same_shape(losses, log_ratios)
    w = batch_weights(log_ratios)
    model_loss = _reduce(w.detach() * losses, reduction)
    adversary_loss = -((w * losses.detach()).mean() - tau * batch_kl(log_ratios))
    return model_loss, adversary_loss


def self_normalized_objectives(
    losses: torch.Tensor, log_ratios: torch.Tensor, tau: float = 0.01, beta: float = 1.0, reduction: str = "mean"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Self-normalisation variant (paper Section 3.2, the alternative to batch normalisation).

    The weights are the raw ratios ``w = exp(r)`` and the adversary is pushed towards
    ``E[exp r] = 1`` by a penalty ``beta * (log mean exp r)^2`` instead of dividing by the batch sum.
    The KL term is the (unnormalised) ``mean(w log w)``. Returns (model loss, adversary loss).
    This is term for term the authors' ``pdro_main.py`` with ``--ratio-model --adv-obj fwd_kl
    --self-norm-lambda beta`` and no ``--renorm-ratios`` (``reduction="sum"`` as there).
    """
    check_tau(tau)
    if beta < 0:
        raise QuintetError(f"beta must be >= 0, got {beta!r}")
    _check_same_shape(losses, log_ratios)
    w = log_ratios.exp()
    log_mean = torch.logsumexp(log_ratios, 0) - math.log(log_ratios.numel())
    kl = (w * log_ratios).mean()
    model_loss = _reduce(w.detach() * losses, reduction)
    adversary_loss = -((w * losses.detach()).mean() - tau * kl - beta * log_mean**2)
    return model_loss, adversary_loss


def cvar_loss(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """CVaR_alpha of the batch: the mean of the worst ``alpha`` fraction of losses (the
    non-parametric DRO baseline the paper compares against).

    ``losses: float (B,)`` -> scalar.

    The uncertainty set is every distribution with ratio ``w <= 1/alpha`` (Rockafellar & Uryasev);
    the maximiser puts weight ``1/(alpha B)`` on the top ``floor(alpha B)`` losses and the remainder
    on the next one, so the value is exact for any ``alpha in (0, 1]``. ``alpha = 1`` gives the mean.
    """
    check_alpha(alpha)
    n = losses.numel()
    sorted_losses, _ = torch.sort(losses, descending=True)
    budget = alpha * n  # total mass (in units of 1/n) spread with at most 1 per example
    k = int(math.floor(budget + 1e-9))
    weights = torch.zeros_like(sorted_losses)
    weights[:k] = 1.0
    if k < n and budget - k > 1e-9:
        weights[k] = budget - k
    return (weights * sorted_losses).sum() / budget


def group_mean_losses(losses: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group mean losses ``(n_groups,)`` and counts ``(n_groups,)``; empty groups give 0.

    ``losses: float (B,)``, ``groups: int64 (B,)`` in ``0..n_groups-1``. Used by the oracle-group
    baselines (Group DRO, uniform group weighting), not by ratio DRO.
    """
    counts = torch.bincount(groups, minlength=n_groups).to(losses.dtype)
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device).index_add(0, groups, losses)
    return sums / counts.clamp_min(1), counts


def uniform_group_loss(losses: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Uniform group weighting: the mean over the groups present of each group's mean loss.

    ``losses: float (B,)``, ``groups: int64 (B,)`` -> scalar. An oracle-group reference (it needs
    the group labels that ratio DRO does without).
    """
    means, counts = group_mean_losses(losses, groups, n_groups)
    present = counts > 0
    return means[present].mean()


@dataclass
class GroupDRO:
    """Online Group DRO with oracle groups (Sagawa et al., 2020, Algorithm 1).

    Keeps a distribution ``q`` over groups; each step ``q_g <- q_g exp(eta_q * L_g)`` for the
    groups present in the batch, renormalised.

    * ``variant="ours"``: the model minimises ``sum_g q_g L_g`` with the updated ``q``;
    * ``variant="authors"`` (``pdro_main.py --group-dro``): the model minimises
      ``mean_i q_{g_i} l_i`` with the ``q`` from before this batch's update (batches are drawn with
      every group equally likely, see :func:`quintet.dro.experiments.equal_group_order`).
    """

    n_groups: int
    eta_q: float = 0.01
    variant: str = "ours"

    def __post_init__(self) -> None:
        if self.n_groups < 1:
            raise QuintetError(f"n_groups must be >= 1, got {self.n_groups}")
        if not self.eta_q > 0:
            raise QuintetError(f"eta_q must be > 0, got {self.eta_q}")
        if self.variant not in ("ours", "authors"):
            raise QuintetError(f"Group DRO variant must be 'ours' or 'authors', got {self.variant!r}")
        self.q = torch.full((self.n_groups,), 1.0 / self.n_groups, dtype=torch.float64)

    def loss(self, losses: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """Update ``q`` with this batch's group losses and return the robust loss (scalar)."""
        means, counts = group_mean_losses(losses, groups, self.n_groups)
        if self.variant == "authors":
            before = (self.q.to(losses.dtype).to(losses.device)[groups] * losses).mean()
        with torch.no_grad():
            step = torch.where(counts > 0, self.eta_q * means.detach().double(), torch.zeros_like(self.q))
            self.q = self.q * torch.exp(step)
            self.q = self.q / self.q.sum()
        if self.variant == "authors":
            return before
        return (self.q.to(losses.dtype).to(losses.device) * means).sum()
