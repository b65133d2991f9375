"""Smoothing distributions of GenDR (Petersen et al., CVPR 2022, Sec. 3.1 and Table 2).

A pixel at signed distance ``s`` from a triangle (``s > 0`` inside) is covered with probability
``F(s / τ)``, the CDF of a perturbation of the triangle's edge. With ``squared=True`` the signed
squared distance ``sign(s)·s²`` is used instead, which turns e.g. the logistic into SoftRas.

Every CDF here is a function of the standardised input ``z = s / τ``; the asymmetric ones (gamma,
exponential, Lévy and their reversals) also take a shift (in units of τ) and gamma a shape ``p``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from quintet.core.errors import QuintetError


def _positive(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mask, z_safe)`` with ``z_safe = z`` where ``z > 0`` and 1 elsewhere (NaN-free gradients)."""
    mask = z > 0
    return mask, torch.where(mask, z, torch.ones_like(z))


def _heaviside(z: torch.Tensor, p: float) -> torch.Tensor:
    return (z >= 0).to(z.dtype)


def _uniform(z: torch.Tensor, p: float) -> torch.Tensor:
    return ((z + 1) / 2).clamp(0, 1)


def _cubic_hermite(z: torch.Tensor, p: float) -> torch.Tensor:
    y = ((z + 1) / 2).clamp(0, 1)
    return y * y * (3 - 2 * y)


def _wigner_semicircle(z: torch.Tensor, p: float) -> torch.Tensor:
    inside = z.abs() < 1
    zs = torch.where(inside, z, torch.zeros_like(z))
    value = 0.5 + (zs * torch.sqrt(1 - zs * zs) + torch.asin(zs)) / math.pi
    return torch.where(inside, value, (z > 0).to(z.dtype))


def _gaussian(z: torch.Tensor, p: float) -> torch.Tensor:
    return torch.special.ndtr(z)


def _laplace(z: torch.Tensor, p: float) -> torch.Tensor:
    half = 0.5 * torch.exp(-z.abs())
    return torch.where(z < 0, half, 1 - half)


def _logistic(z: torch.Tensor, p: float) -> torch.Tensor:
    return torch.sigmoid(z)


def _gudermannian(z: torch.Tensor, p: float) -> torch.Tensor:
    return torch.atan(torch.tanh(z / 2)) * (2 / math.pi) + 0.5


def _cauchy(z: torch.Tensor, p: float) -> torch.Tensor:
    return torch.atan(z) / math.pi + 0.5


def _reciprocal(z: torch.Tensor, p: float) -> torch.Tensor:
    return z / (1 + z.abs()) / 2 + 0.5


def _gumbel_max(z: torch.Tensor, p: float) -> torch.Tensor:
    return torch.exp(-torch.exp(-z))


def _gumbel_min(z: torch.Tensor, p: float) -> torch.Tensor:
    return -torch.expm1(-torch.exp(z))


def _exponential(z: torch.Tensor, p: float) -> torch.Tensor:
    mask, zs = _positive(z)
    return torch.where(mask, -torch.expm1(-zs), torch.zeros_like(z))


def _gamma(z: torch.Tensor, p: float) -> torch.Tensor:
    mask, zs = _positive(z)
    shape = torch.as_tensor(p, dtype=z.dtype, device=z.device)
    return torch.where(mask, torch.special.gammainc(shape, zs), torch.zeros_like(z))


def _levy(z: torch.Tensor, p: float) -> torch.Tensor:
    mask, zs = _positive(z)
    return torch.where(mask, torch.special.erfc(torch.rsqrt(2 * zs)), torch.zeros_like(z))


def _reversed(cdf: Callable[[torch.Tensor, float], torch.Tensor]) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The CDF of ``-X``: ``1 - F(-z)`` (mirror image of a one-sided distribution)."""

    def reversed_cdf(z: torch.Tensor, p: float) -> torch.Tensor:
        return 1 - cdf(-z, p)

    return reversed_cdf


@dataclass(frozen=True)
class Distribution:
    """One smoothing distribution: its standardised CDF and whether it is one-sided (shiftable)."""

    name: str
    cdf: Callable[[torch.Tensor, float], torch.Tensor]
    family: str
    one_sided: bool = False
    needs_shape: bool = False


DISTRIBUTIONS: dict[str, Distribution] = {
    d.name: d
    for d in (
        Distribution("hard", _heaviside, "hard"),
        Distribution("uniform", _uniform, "finite support"),
        Distribution("cubic_hermite", _cubic_hermite, "finite support"),
        Distribution("wigner_semicircle", _wigner_semicircle, "finite support"),
        Distribution("gaussian", _gaussian, "exponential decay"),
        Distribution("laplace", _laplace, "exponential decay"),
        Distribution("logistic", _logistic, "exponential decay"),
        Distribution("gudermannian", _gudermannian, "exponential decay"),
        Distribution("cauchy", _cauchy, "linear decay"),
        Distribution("reciprocal", _reciprocal, "linear decay"),
        Distribution("gumbel_max", _gumbel_max, "asymmetric"),
        Distribution("gumbel_min", _gumbel_min, "asymmetric"),
        Distribution("exponential", _exponential, "asymmetric", one_sided=True),
        Distribution("exponential_rev", _reversed(_exponential), "asymmetric", one_sided=True),
        Distribution("gamma", _gamma, "asymmetric", one_sided=True, needs_shape=True),
        Distribution("gamma_rev", _reversed(_gamma), "asymmetric", one_sided=True, needs_shape=True),
        Distribution("levy", _levy, "asymmetric", one_sided=True),
        Distribution("levy_rev", _reversed(_levy), "asymmetric", one_sided=True),
    )
}
"""Every distribution of the paper, by name (``hyperbolic_secant`` is ``gudermannian``)."""

ALIASES = {"heaviside": "hard", "hyperbolic_secant": "gudermannian"}


def get_distribution(name: str) -> Distribution:
    """The distribution called ``name`` (or an alias); :class:`QuintetError` for an unknown name."""
    key = ALIASES.get(name, name)
    if key not in DISTRIBUTIONS:
        raise QuintetError(
            f"unknown distribution {name!r}; expected one of: {', '.join(DISTRIBUTIONS)}"
        )
    return DISTRIBUTIONS[key]


def check_distribution(name: str, tau: float, shape: float = 2.0, shift: float = 0.0) -> Distribution:
    """Validate a distribution and its parameters (τ > 0, gamma shape p > 0, finite shift)."""
    dist = get_distribution(name)
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise QuintetError(f"tau must be a finite number > 0, got {tau!r}")
    if dist.needs_shape and not (math.isfinite(shape) and shape > 0):
        raise QuintetError(f"the {dist.name} distribution needs a shape p > 0, got {shape!r}")
    if not math.isfinite(shift):
        raise QuintetError(f"shift must be finite, got {shift!r}")
    return dist


def cdf(z: torch.Tensor, name: str, shape: float = 2.0, shift: float = 0.0) -> torch.Tensor:
    """The standardised CDF ``F(z)`` of distribution ``name``; one-sided ones are shifted by ``shift``."""
    dist = get_distribution(name)
    if dist.one_sided:
        # gamma, exponential, Lévy start at -shift; their reversals end at +shift
        z = z - shift if name.endswith("_rev") else z + shift
    return dist.cdf(z, shape)


def coverage(
    signed_distance: torch.Tensor,
    name: str,
    tau: float,
    squared: bool = False,
    shape: float = 2.0,
    shift: float = 0.0,
) -> torch.Tensor:
    """Coverage probability ``F(s / τ)`` of a pixel at signed distance ``s`` (inside > 0).

    With ``squared=True`` the input is ``sign(s) s² / τ`` (SoftRas' convention).
    """
    s = signed_distance
    if squared:
        s = s * s.abs()
    return cdf(s / tau, name, shape, shift)


@lru_cache(maxsize=256)
def _cutoff_z(name: str, shape: float, shift: float, eps: float) -> float:
    """The largest standardised ``z <= 0`` with ``F(z) <= eps`` (``-inf`` if F never drops that low).

    Bisection on ``log(-z)`` over [1e-12, 1e12]; F is non-decreasing, so the boundary is unique.
    """

    def value(z: float) -> float:
        return float(cdf(torch.tensor([z], dtype=torch.float64), name, shape, shift)[0])

    if value(0.0) <= eps:
        return 0.0
    lo, hi = math.log(1e-12), math.log(1e12)  # F(-e^lo) > eps is assumed, F(-e^hi) <= eps checked
    if value(-math.exp(hi)) > eps:
        return -math.inf
    if value(-math.exp(lo)) <= eps:
        return -math.exp(lo)
    for _ in range(100):
        mid = (lo + hi) / 2
        if value(-math.exp(mid)) <= eps:
            hi = mid
        else:
            lo = mid
    return -math.exp(hi)


def cutoff_distance(
    name: str, tau: float, squared: bool = False, shape: float = 2.0, shift: float = 0.0, eps: float = 1e-6
) -> float:
    """Distance outside a triangle beyond which the coverage is ``<= eps`` (``inf``: never).

    The fast rasteriser bins each face only into the pixels within this distance of it; finite
    supports (uniform, cubic Hermite, Wigner) have an exact cut-off at ``eps = 0``.
    """
    z = _cutoff_z(get_distribution(name).name, float(shape), float(shift), float(eps))
    if not math.isfinite(z):
        return math.inf
    return math.sqrt(-z * tau) if squared else -z * tau
