"""T-conorms that aggregate the coverage of all faces into a pixel's opacity (GenDR Sec. 3.2).

A T-conorm ``⊥`` is commutative, associative, monotone and has 0 as identity, so the opacity of a
pixel covered by faces with probabilities ``a₁ … aₙ`` is ``a₁ ⊥ a₂ ⊥ … ⊥ aₙ``. Each is evaluated
here in closed form over a whole axis (through its additive generator or as a product), never as a
loop, and written with products where the textbook form would divide by zero at ``a = 1``.
Faces padded in with coverage 0 leave every result unchanged.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from quintet.core.errors import QuintetError

_TINY = 1e-12


def _safe_pow(x: torch.Tensor, p: float) -> torch.Tensor:
    """``x ** p`` for ``x >= 0`` with 0 (and a zero gradient) where ``x == 0``, also for ``p < 1``."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)) ** p, torch.zeros_like(x))


def _complement_tnorm(tnorm: Callable[[torch.Tensor, int, float], torch.Tensor]):
    """The dual T-conorm ``⊥(a) = 1 - T(1 - a)`` of an n-ary T-norm."""

    def tconorm(a: torch.Tensor, dim: int, p: float) -> torch.Tensor:
        return 1 - tnorm(1 - a, dim, p)

    return tconorm


def _max(a: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    return a.amax(dim) if a.shape[dim] else a.sum(dim)


def _probabilistic(a: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    return 1 - torch.prod(1 - a, dim)


def _einstein(a: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    # tanh(Σ atanh aᵢ) = (1 − r)/(1 + r) with r = ∏ (1 − aᵢ)/(1 + aᵢ): factors in [0, 1], no overflow
    ratio = torch.prod((1 - a) / (1 + a), dim)
    return (1 - ratio) / (1 + ratio)


def _hamacher_tnorm(x: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    # generator g(x) = log((p + (1-p)x)/x): T = pU / (1 - (1-p)U), U = ∏ x/(p + (1-p)x) ∈ [0, 1]
    u = torch.prod(x / (p + (1 - p) * x), dim)
    return p * u / (1 - (1 - p) * u)


def _frank_tnorm(x: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    # T = log_p(1 + (p - 1) ∏ (pˣ - 1)/(p - 1))
    ratio = torch.expm1(x * math.log(p)) / (p - 1)
    return torch.log1p((p - 1) * torch.prod(ratio, dim)) / math.log(p)


def _yager(a: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    total = _safe_pow(a, p).sum(dim)
    return _safe_pow(total, 1.0 / p).clamp(max=1.0)


def _aczel_alsina_tnorm(x: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    minus_log = -torch.log(x.clamp_min(_TINY))
    return torch.exp(-_safe_pow(_safe_pow(minus_log, p).sum(dim), 1.0 / p))


def _dombi(a: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    odds = a / (1 - a).clamp_min(_TINY)
    return 1 - 1 / (1 + _safe_pow(_safe_pow(odds, p).sum(dim), 1.0 / p))


def _schweizer_sklar_tnorm(x: torch.Tensor, dim: int, p: float) -> torch.Tensor:
    # p < 0: T = (1 + Σ(xᵖ - 1))^(1/p); a neutral x = 1 adds 0
    return (1 + (x.clamp_min(_TINY) ** p - 1).sum(dim)) ** (1.0 / p)


def _positive(p: float) -> bool:
    return p > 0


# name -> (function, parameter check, text of the valid range, default parameter)
TCONORMS: dict[str, tuple[Callable[[torch.Tensor, int, float], torch.Tensor], Optional[Callable[[float], bool]], str, Optional[float]]] = {
    "max": (_max, None, "", None),
    "probabilistic": (_probabilistic, None, "", None),
    "einstein": (_einstein, None, "", None),
    "hamacher": (_complement_tnorm(_hamacher_tnorm), _positive, "p > 0", 2.0),
    "frank": (_complement_tnorm(_frank_tnorm), lambda p: p > 0 and p != 1, "p > 0 and p != 1", 2.0),
    "yager": (_yager, _positive, "p > 0", 2.0),
    "aczel_alsina": (_complement_tnorm(_aczel_alsina_tnorm), _positive, "p > 0", 0.5),
    "dombi": (_dombi, _positive, "p > 0", 1.0),
    "schweizer_sklar": (_complement_tnorm(_schweizer_sklar_tnorm), lambda p: p < 0, "p < 0", -1.0),
}
"""Every T-conorm of the paper: (closed form over an axis, parameter check, range, default p)."""


def check_tconorm(name: str, p: Optional[float] = None) -> float:
    """Validate a T-conorm name and parameter; returns the parameter to use (its default if None)."""
    if name not in TCONORMS:
        raise QuintetError(f"unknown T-conorm {name!r}; expected one of: {', '.join(TCONORMS)}")
    _fn, valid, text, default = TCONORMS[name]
    if valid is None:
        return 0.0 if p is None else float(p)
    p = default if p is None else p
    if not (isinstance(p, (int, float)) and math.isfinite(p) and valid(float(p))):
        raise QuintetError(f"the {name} T-conorm needs a parameter {text}, got p={p!r}")
    return float(p)


def tconorm(a: torch.Tensor, name: str = "probabilistic", p: Optional[float] = None, dim: int = -1) -> torch.Tensor:
    """Aggregate probabilities ``a`` (values in [0, 1]) along ``dim`` with the T-conorm ``name``.

    ``a: (..., n, ...)`` → ``(..., ...)``. ``p`` is the family parameter (Hamacher, Frank, Yager,
    Aczél–Alsina, Dombi: p > 0; Frank also p ≠ 1; Schweizer–Sklar: p < 0).
    """
    p = check_tconorm(name, p)
    return TCONORMS[name][0](a, dim, p)
