"""Relaxations of the conditional swap: sigmoid functions ``f`` with ``f(-v) = 1 - f(v)``.

A relaxed conditional swap of wires ``(a, b)`` computes ``alpha = f(beta * (b - a))`` and
outputs ``min ~ alpha * a + (1 - alpha) * b`` and ``max ~ (1 - alpha) * a + alpha * b``
(Petersen et al., ICML 2021, Sec. 3, Eq. 2-3).

* ``logistic``      -- Eq. 3 of ICML 2021: ``sigma(beta x)``.
* ``logistic_phi``  -- the activation replacement trick (ART, ICML 2021 Sec. 3.2):
  ``sigma(beta x / (|x| + eps) ** lambda)``; alias ``art``.
* ``gaussian``      -- the normal CDF ``Phi(beta x)`` (ICLR 2022 Sec. 5, "erf" sigmoid); alias ``erf``.
* ``reciprocal``    -- ``f_R`` of ICLR 2022 (Eq. 9), written as in the reference package:
  ``(v / (2 + |v|) + 1) / 2`` with ``v = beta x``.
* ``cauchy``        -- ``f_C`` of ICLR 2022 (Eq. 10): ``arctan(beta x) / pi + 1/2``.
* ``optimal``       -- ``f_O`` of ICLR 2022 (Eq. 11): ``-1/(16 v)`` for ``v < -1/4``,
  ``1 - 1/(16 v)`` for ``v > 1/4`` and ``v + 1/2`` between.

``reciprocal``, ``cauchy`` and ``optimal`` are the monotonic ones (ICLR 2022 Thm. 5): their
derivative decays as ``Theta(1/x^2)``, so raising an input never lowers its soft output.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import torch

from quintet.core.errors import QuintetError

__all__ = ["RELAXATIONS", "MONOTONIC", "ALIASES", "relaxation_names", "resolve_relaxation", "swap_probability"]

#: the steepness: a number, or a 0-d tensor (learnable)
Beta = Union[float, torch.Tensor]

#: the ``eps`` added to ``|x|`` in ART (the reference uses 1e-10)
ART_EPS = 1e-10


def _logistic(x: torch.Tensor, beta: Beta, lam: float) -> torch.Tensor:
    return torch.sigmoid(x * beta)


def _logistic_phi(x: torch.Tensor, beta: Beta, lam: float) -> torch.Tensor:
    return torch.sigmoid(x * beta / (x.abs() + ART_EPS).pow(lam))


def _gaussian(x: torch.Tensor, beta: Beta, lam: float) -> torch.Tensor:
    # Phi(beta x) = (1 + erf(x / sigma / sqrt 2)) / 2 with sigma = 1 / beta, the reference's order
    # of operations (keeps float32 results within 1e-6 of it over 100 layers).
    return 0.5 + 0.5 * torch.erf(x / (1.0 / beta) / math.sqrt(2.0))


def _reciprocal(x: torch.Tensor, beta: Beta, lam: float) -> torch.Tensor:
    v = x * beta
    return 0.5 * (v / (2.0 + v.abs()) + 1.0)


def _cauchy(x: torch.Tensor, beta: Beta, lam: float) -> torch.Tensor:
    return torch.atan(x * beta) / math.pi + 0.5


def _optimal(x: torch.Tensor, beta: Beta, lam: float) -> torch.Tensor:
    v = x * beta
    inner = v.clamp(-0.25, 0.25) + 0.5
    # 1/(16|v|) only where |v| > 1/4; elsewhere a safe denominator keeps gradients finite.
    far = v.abs() > 0.25
    safe = torch.where(far, v.abs(), torch.ones_like(v))
    tail = torch.where(far, 0.25 - 1.0 / (16.0 * safe), torch.zeros_like(v))
    return inner + torch.sign(v) * tail


RELAXATIONS: dict[str, Callable[[torch.Tensor, Beta, float], torch.Tensor]] = {
    "logistic": _logistic,
    "logistic_phi": _logistic_phi,
    "gaussian": _gaussian,
    "reciprocal": _reciprocal,
    "cauchy": _cauchy,
    "optimal": _optimal,
}
ALIASES = {"art": "logistic_phi", "erf": "gaussian"}
MONOTONIC = ("reciprocal", "cauchy", "optimal")


def relaxation_names() -> list[str]:
    """All accepted names, aliases included."""
    return sorted([*RELAXATIONS, *ALIASES])


def resolve_relaxation(name: str) -> str:
    """The canonical name of ``name``; :class:`QuintetError` listing the valid ones otherwise."""
    if not isinstance(name, str) or name not in RELAXATIONS and name not in ALIASES:
        raise QuintetError(f"unknown relaxation {name!r}; expected one of: {', '.join(relaxation_names())}")
    return ALIASES.get(name, name)


def swap_probability(x: torch.Tensor, relaxation: str = "cauchy", steepness: float | torch.Tensor = 10.0,
                     art_lambda: float = 0.25) -> torch.Tensor:
    """``f(beta * x)``: the weight of the lower wire in the soft minimum; ``x = b - a``, any shape;
    ``steepness`` a positive number or a one-element tensor (kept, so that it receives gradients)."""
    from quintet.sorting.functional import check_art_lambda, check_steepness

    return RELAXATIONS[resolve_relaxation(relaxation)](x, check_steepness(steepness), check_art_lambda(art_lambda))
