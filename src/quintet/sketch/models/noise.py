"""Truncated-normal perturbation of quantised primitive coordinates (Vitruvion §3.2, "to make the
constraint model robust to imprecise geometry, we train it on primitives with injected noise").

Coordinates live in the normalised sketch frame [-0.5, 0.5]. Each coordinate is moved by
``std · z`` with ``z`` drawn from a standard normal truncated to ``[-max_sigma, max_sigma]``
(defaults std 0.15, max_sigma 0.15, i.e. at most 0.0225 of the sketch size ≈ 1.4 bins of 64 — the
setting of the authors' public configuration, whose truncation bounds are in standard deviations),
then re-quantised.
"""

from __future__ import annotations

import torch

from quintet.sketch.models.grammar import PrimitiveGrammar


def truncated_normal(shape: tuple[int, ...], max_sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal samples truncated to ``[-max_sigma, max_sigma]`` (inverse-CDF method)."""
    normal = torch.distributions.Normal(0.0, 1.0)
    lo, hi = normal.cdf(torch.tensor(-max_sigma)), normal.cdf(torch.tensor(max_sigma))
    u = lo + (hi - lo) * torch.rand(shape, generator=generator)
    return normal.icdf(u.clamp(1e-7, 1 - 1e-7))


def perturb_bins(
    val: torch.Tensor,
    grammar: PrimitiveGrammar,
    std: float = 0.15,
    max_sigma: float = 0.15,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Return a copy of the value stream ``val`` (any shape) with every coordinate token perturbed.

    Non-coordinate tokens are unchanged; a perturbed bin is clamped into ``0 … num_bins-1``.
    """
    top = grammar.num_bins - 1  # bins b <-> values -0.5 + b / top (quintet.sketch.tokens)
    is_bin = (val >= grammar.bin_offset) & (val < grammar.flag_offset)
    b = (val - grammar.bin_offset).float()
    shift = std * truncated_normal(tuple(val.shape), max_sigma, generator).to(val.device) * top
    b_new = torch.round(b + shift).clamp(0, top).long()
    return torch.where(is_bin, b_new + grammar.bin_offset, val)
