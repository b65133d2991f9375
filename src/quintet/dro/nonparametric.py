"""Non-parametric DRO baselines of the paper's comparison (Michel, Hashimoto & Neubig, ICLR 2022,
Section 5): the worst-case distribution over the mini-batch is the exact best response inside an
f-divergence ball around the uniform one, recomputed from the losses at every step.

* KL ball ``KL(q || p_hat) <= kappa``: ``q ∝ exp(l / tau*)`` with the temperature ``tau*`` found by
  bisection on ``log10 tau`` so that the KL equals ``kappa``;
* chi-square ball ``(1/2) mean((N q - 1)^2) <= rho``: ``q ∝ relu(l - eta*)`` with ``eta*`` found by
  bisection (Namkoong & Duchi's dual form);
* CVaR (``q <= 1 / (alpha N)``): the top ``alpha`` fraction of the losses.

The robust loss is ``sum_i q_i l_i`` with ``q`` a function of the losses: gradients flow through
``q`` for a fixed ``tau*`` / ``eta*`` (the solved constants are not differentiated), which is how
the authors' ``non_param_dro.py`` trains these baselines. ``losses: (B,)`` in, ``q: (B,)`` out,
``q >= 0`` summing to 1.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from quintet.core.errors import QuintetError
from quintet.dro.objectives import check_alpha

__all__ = ["ADVERSARIES", "kl_best_response", "chi2_best_response", "cvar_best_response", "best_response",
           "nonparametric_loss", "kl_divergence", "chi2_divergence"]

ADVERSARIES = ("kl", "chi2", "cvar")
#: losses whose spread is below this fraction of the largest are treated as equal (uniform response)
MIN_RELATIVE_SPREAD = 1e-5


def _bisect(f: Callable[[float], float], lo: float, hi: float, tol: float, iters: int = 100) -> float:
    """A root of ``f`` on ``[lo, hi]``; when ``f`` keeps its sign there, the end nearer to a root."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo * f_hi >= 0:
        return lo if abs(f_lo) < abs(f_hi) else hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        f_mid = f(mid)
        if f_mid == 0 or hi - lo < tol:
            return mid
        if f_lo * f_mid < 0:
            hi = mid
        else:
            lo, f_lo = mid, f_mid
    return 0.5 * (lo + hi)


def _check_size(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise QuintetError(f"{name} must be a positive number (size of the uncertainty set), got {value!r}")
    return float(value)


def _check_losses(losses: torch.Tensor) -> None:
    if losses.dim() != 1 or losses.numel() == 0:
        raise QuintetError(f"losses must be a non-empty 1-D tensor, got shape {tuple(losses.shape)}")
    if not torch.isfinite(losses).all():
        raise QuintetError("losses contain NaN or infinite values")


def kl_divergence(q: torch.Tensor) -> torch.Tensor:
    """``KL(q || uniform) = mean(w log w)`` with ``w = N q``."""
    w = q.numel() * q
    return torch.where(w > 0, w * torch.log(w.clamp_min(1e-300)), torch.zeros_like(w)).mean()


def chi2_divergence(q: torch.Tensor) -> torch.Tensor:
    """``(1/2) mean((N q - 1)^2)``, the chi-square divergence to the uniform distribution."""
    return 0.5 * ((q.numel() * q - 1) ** 2).mean()


def kl_best_response(losses: torch.Tensor, kappa: float, log10_tau_range: tuple[float, float] = (-10.0, 10.0)) -> torch.Tensor:
    """``q = softmax(l / tau*)`` with ``KL(q || uniform) = kappa`` (or the nearest end of the
    temperature range when the ball is larger than any tilt reaches)."""
    _check_size("kappa", kappa)
    _check_losses(losses)
    l64 = losses.detach().double()

    def gap(log_tau: float) -> float:
        return float(kl_divergence(torch.softmax(l64 / 10**log_tau, 0))) - kappa

    tau = 10 ** _bisect(gap, *log10_tau_range, tol=1e-5)
    return torch.softmax(losses / tau, 0)


def chi2_best_response(losses: torch.Tensor, rho: float) -> torch.Tensor:
    """``q ∝ relu(l - eta*)`` with ``(1/2) mean((N q - 1)^2) = rho``.

    Equal losses give the uniform response; a batch too small for the ball
    (``N <= 1 + 2 rho``) puts all the mass on the largest losses. The bisection bracket ends just
    below the largest loss: the authors' code brackets up to the largest loss itself, where the
    divergence is 0 again, so its bisection sees no sign change and returns the lower end (a mild
    tilt ``q ∝ l + max(l) / (sqrt(2 rho + 1) - 1)`` inside the ball, not on it).
    """
    _check_size("rho", rho)
    _check_losses(losses)
    n = losses.numel()
    top = float(losses.detach().max())
    if top <= 0 or (top - float(losses.detach().min())) / top <= MIN_RELATIVE_SPREAD:
        return torch.full_like(losses, 1.0 / n)
    if n <= 1 + 2 * rho:
        hit = (losses.detach() == top).to(losses.dtype)
        return hit / hit.sum()
    l64 = losses.detach().double()

    def gap(eta: float) -> float:
        q = (l64 - eta).clamp_min(1e-12)
        return float(chi2_divergence(q / q.sum())) - rho

    # the divergence grows with eta up to just below the largest loss (at eta = top every clamped
    # weight is equal and the response is uniform again, so the bracket stops short of it)
    spread = top - float(losses.detach().min())
    eta = _bisect(gap, -top / (math.sqrt(2 * rho + 1) - 1), top - 1e-6 * spread, tol=1e-9 * spread)
    q = torch.relu(losses - eta)
    return q / q.sum()


def cvar_best_response(losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """Weight ``1 / (alpha N)`` on the ``floor(alpha N)`` largest losses and the remaining mass on
    the next one; ``sum(q * l)`` equals :func:`quintet.dro.cvar_loss`."""
    check_alpha(alpha)
    _check_losses(losses)
    n = losses.numel()
    cutoff = int(math.floor(alpha * n + 1e-9))
    order = torch.argsort(losses.detach(), descending=True)
    q = torch.zeros_like(losses)
    q[order[:cutoff]] = 1.0 / (alpha * n)
    if cutoff < n:
        q[order[cutoff]] = 1.0 - cutoff / (alpha * n)
    return q


def best_response(kind: str, losses: torch.Tensor, size: float) -> torch.Tensor:
    """The adversary ``kind`` in ``ADVERSARIES`` (``size`` = kappa, rho or alpha)."""
    from quintet.core.errors import check_choice

    check_choice("non-parametric adversary", kind, ADVERSARIES)
    if kind == "kl":
        return kl_best_response(losses, size)
    if kind == "chi2":
        return chi2_best_response(losses, size)
    return cvar_best_response(losses, size)


def nonparametric_loss(kind: str, losses: torch.Tensor, size: float) -> torch.Tensor:
    """The robust batch loss ``sum_i q_i l_i`` under the best response ``q`` (scalar)."""
    return (best_response(kind, losses, size) * losses).sum()
